//! The seeds on disk are the ones [`crate::seeds`] makes, and each passes
//! its harness; the worker's seeds reach every path its checks cover.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::seeds::{self, Seed};
use crate::worker_handle::Harness;

fn all_seeds() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("worker_handle", seeds::worker_handle()),
        ("rvsadm_args", seeds::rvsadm_args()),
        ("control_proto", seeds::control_proto()),
        ("rules_file", seeds::rules_file()),
        ("rvsd_toml", seeds::rvsd_toml()),
        ("keepalived_conf", seeds::keepalived_conf()),
    ]
}

type Run = fn(&[u8]);

/// Every target, by name, with its harness.
const TARGETS: [(&str, Run); 6] = [
    ("worker_handle", Harness::run),
    ("rvsadm_args", crate::rvsadm_args::run),
    ("control_proto", crate::control_proto::run),
    ("rules_file", crate::rules_file::run),
    ("rvsd_toml", crate::rvsd_toml::run),
    ("keepalived_conf", crate::keepalived_conf::run),
];

/// Every seed passes its target's checks.
#[test]
fn every_seed_passes_its_target() {
    /// rvsd_toml's input file goes when the test ends, passed or failed.
    struct RemoveInput;
    impl Drop for RemoveInput {
        fn drop(&mut self) {
            crate::rvsd_toml::remove_input_file();
        }
    }
    let _input = RemoveInput;
    for ((name, seeds), (t, run)) in all_seeds().into_iter().zip(TARGETS) {
        assert_eq!(name, t);
        assert!(!seeds.is_empty(), "{name} has seeds");
        for (seed, data) in seeds {
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{name}/{seed} failed its checks");
            }
        }
    }
}

/// Writes the seeds with `RVS_FUZZ_WRITE_SEEDS=1`; otherwise checks that
/// `fuzz/seeds/` holds exactly them.
#[test]
fn seeds_on_disk_are_the_generated_ones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = std::env::var_os("RVS_FUZZ_WRITE_SEEDS").is_some();
    for (target, seeds) in all_seeds() {
        let dir = root.join(target);
        if write {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, data) in &seeds {
                std::fs::write(dir.join(name), data).unwrap();
            }
        }
        let mut on_disk: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (RVS_FUZZ_WRITE_SEEDS=1 makes it)", dir.display()))
        {
            let e = e.unwrap();
            on_disk.insert(
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            );
        }
        let want: BTreeMap<String, Vec<u8>> = seeds.into_iter().collect();
        assert_eq!(
            on_disk.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{target}: rerun with RVS_FUZZ_WRITE_SEEDS=1"
        );
        for (name, data) in &want {
            assert!(
                on_disk[name] == *data,
                "{target}/{name} is stale: rerun with RVS_FUZZ_WRITE_SEEDS=1"
            );
        }
    }
}

#[test]
fn worker_seeds_pass_every_check_and_reach_every_path() {
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for (name, data) in seeds::worker_handle() {
        let s = std::panic::catch_unwind(|| Harness::run_seen(&data))
            .unwrap_or_else(|_| panic!("seed {name} failed a check"));
        for (k, v) in s {
            *seen.entry(k).or_default() += v;
        }
    }
    let want = [
        "arp reply",
        "arp request",
        "direct routing",
        "direct routing v6",
        "dropped",
        "echo reply",
        "echo reply v6",
        "fragment handed over",
        "fragment held",
        "fragment orphaned",
        "fragmentation needed",
        "fragments",
        "fragments released",
        "gre",
        "gre with checksum",
        "gue",
        "gue with checksum",
        "held",
        "icmp error forwarded",
        "icmp error passed on",
        "icmp error to the client (NAT)",
        "icmp error to the server (NAT)",
        "icmpv6 error (NAT)",
        "ip6ip6",
        "ipip",
        "nat",
        "nat reply",
        "nat reply v6",
        "nat v6",
        "neighbour advertisement",
        "neighbour solicitation",
        "packet too big",
        "redirected",
        "released",
        "sent in fragments",
    ];
    let missing: Vec<_> = want.iter().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "no seed reaches {missing:?}; seen: {seen:?}"
    );
}

/// The harness loads its table without the control replica's checks
/// (they cost as much as the rest of a run): they pass.
#[test]
fn the_table_is_what_a_director_accepts() {
    let mut d = rvs_ipvs::Director::new();
    for (i, line) in crate::worker_handle::RULES.lines().enumerate() {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        match rvsadm::parse::parse(&words, "rvsadm") {
            Ok(rvsadm::parse::Action::Apply(c)) => {
                d.apply(&c)
                    .unwrap_or_else(|e| panic!("line {}: {line}: {e}", i + 1));
            }
            other => panic!("line {}: {line}: {other:?}", i + 1),
        }
    }
}

/// Every input a fuzzing run once failed on (`fuzz/regressions/TARGET/`,
/// see docs/fuzzing.md) passes its target's checks now.
#[test]
fn past_crashes_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let dir = e.unwrap().path();
        let target = dir.file_name().unwrap().to_str().unwrap().to_string();
        let (_, run) = TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .unwrap_or_else(|| panic!("{}: not a fuzz target", dir.display()));
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let data = std::fs::read(&f).unwrap();
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                panic!("{} fails its target's checks again", f.display());
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "{}: no inputs", root.display());
}
