//! `rvsd_toml`: rvsd's configuration file, read by rvsd's own code.
//!
//! rvsd is a binary crate that links DPDK, so its configuration module
//! (`crates/rvsd/src/config.rs` and `config/`) is compiled here from its
//! source file (`#[path]`, below), unchanged: the very parsing and checks
//! `rvsd`, `rvsd --check-config` and reloads run, through their entry
//! point `Config::load`.
//!
//! Input: the file's text (invalid UTF-8 replaced), written to a file of
//! this process's own.
//!
//! Checked, besides "no panic": an error that names a line names one of
//! the file's; a configuration that loads has every value rvsd derives at
//! start readable (addresses, routes, neighbours' MACs, the metrics
//! address, the vdev arguments) and its timeouts in ipvsadm's range;
//! written back out as TOML it loads again to the same configuration
//! (nothing that a reload would report as changed); comparing it with the
//! packaged configuration (what a reload does) works.

#[allow(dead_code, unused_imports, clippy::all)]
#[path = "../../crates/rvsd/src"]
mod rvsd_src {
    pub mod config;
}

use std::path::PathBuf;
use std::sync::OnceLock;

pub use rvsd_src::config::{live, Config};

/// The packaged configuration, as a running rvsd's.
const PACKAGED: &str = include_str!("../../crates/rvsd/debian/rvsd.toml");

/// The packaged configuration with its control group (`rvs`, made by the
/// package's install) swapped for `root`: loading checks that the group
/// exists, and the fuzzing machine need not have rvsd's.
pub fn packaged() -> String {
    const GROUP: &str = "\ngroup = \"rvs\"\n";
    assert!(
        PACKAGED.contains(GROUP),
        "the packaged rvsd.toml no longer sets `group = \"rvs\"`: update the fuzz harness"
    );
    PACKAGED.replace(GROUP, "\ngroup = \"root\"\n")
}

fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        crate::scratch_dir().join(format!("rvs-fuzz-rvsd-{}.toml", std::process::id()))
    })
}

/// Removes the input's file. A libFuzzer process never gets to (it ends
/// with exit(); `cargo xtask fuzz` removes its scratch folder instead); the
/// harness tests do, so that a plain `cargo test --lib` leaves nothing in
/// /dev/shm.
pub fn remove_input_file() {
    let _ = std::fs::remove_file(path());
}

/// `Config::load` on `text`: the configuration, or its error without the
/// file name (`LINE: message` or `message`).
pub fn load(text: &str) -> Result<Config, String> {
    std::fs::write(path(), text).expect("writing the input's file");
    Config::load(path()).map_err(|e| {
        let e = e.to_string();
        let prefix = format!("{}:", path().display());
        e.strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{e}: the error names the file"))
            .trim_start()
            .to_string()
    })
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let cfg = match load(&text) {
        Ok(c) => c,
        Err(e) => {
            if let Some((n, _)) = e.split_once(": ") {
                if let Ok(n) = n.parse::<usize>() {
                    let lines = text.lines().count().max(1);
                    assert!((1..=lines + 1).contains(&n), "line {n} of {lines}: {e}");
                }
            }
            assert!(!e.trim().is_empty());
            return;
        }
    };
    cfg.parsed_routes().expect("validated");
    for p in &cfg.ports {
        p.parsed_address().expect("validated");
        p.parsed_address6().expect("validated");
        let _ = (p.is_vdev(), p.vdev_arg(cfg.workers.lcores.len()));
    }
    for n in &cfg.neighbours.statics {
        n.parsed_mac().expect("validated");
    }
    cfg.metrics.parsed_listen().expect("validated");
    let t = cfg.timeouts();
    for v in [t.tcp, t.tcp_fin, t.udp, t.syn_recv] {
        assert!((1..=2_678_400).contains(&v), "timeout {v}");
    }
    let _ = cfg.rules_path(std::path::Path::new("/etc/rvs/rvsd.toml"));

    let written =
        toml::to_string(&cfg).unwrap_or_else(|e| panic!("{cfg:?} does not serialise: {e}"));
    let again = load(&written)
        .unwrap_or_else(|e| panic!("written back out, it does not load: {e}\n{written}"));
    let changed = live::restart_needed(&cfg, &again);
    assert!(
        changed.is_empty(),
        "written and read back, it differs: {changed:?}"
    );
    assert_eq!(again.timeouts(), t);

    static PACKAGED_CFG: OnceLock<Config> = OnceLock::new();
    let packaged =
        PACKAGED_CFG.get_or_init(|| load(&packaged()).expect("the packaged configuration loads"));
    let _ = live::restart_needed(packaged, &cfg);
}
