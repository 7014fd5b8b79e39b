//! `keepalived_conf`: rvs-keepalived's configuration loader
//! (`rvs_keepalived::config::load`: lexer with includes, parser,
//! validation), then what the daemon does with a configuration: its health
//! state engine started, checks reported up and down, a reload, the status
//! file.
//!
//! Input: up to three files separated by NUL bytes (invalid UTF-8
//! replaced): `/etc/keepalived/keepalived.conf` and the `a.conf` and
//! `b.conf` beside it, which it may `include`. They are held in memory
//! (`config::files::InMemory`): the loader's file-system calls were half
//! of each run's time, and in memory an `include` cannot reach the
//! machine's files. The lexer's tests check that both sources behave
//! alike.
//!
//! Checked, besides "no panic": the file can be read, so `load` succeeds
//! (every problem is a diagnostic); diagnostics name one of the three files
//! and a line of it; the table the engine wants holds only services and
//! real servers of the configuration; every command that makes it can be
//! written in rvsadm's words; the status file serialises and reads back
//! the same.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rvs_control_proto::format::{self, Numeric};
use rvs_control_proto::health::HealthStatus;
use rvs_control_proto::table::{diff, Table};
use rvs_keepalived::config;
use rvs_keepalived::config::files::{Files, InMemory};
use rvs_keepalived::state::{Engine, Outcome};

const FILES: [&str; 3] = ["keepalived.conf", "a.conf", "b.conf"];

const DIR: &str = "/etc/keepalived";

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let dir = Path::new(DIR);
    let texts: Vec<&str> = FILES.iter().map(|_| parts.next().unwrap_or("")).collect();
    let mut files = InMemory::new();
    for (name, t) in FILES.iter().zip(&texts) {
        files.insert(dir.join(name), *t);
    }
    let main = dir.join(FILES[0]);
    let line_counts: Vec<usize> = texts.iter().map(|t| t.lines().count().max(1)).collect();
    let loaded = config::load_from(&files, &main, Some("fuzz")).expect("the file is there to read");
    for d in loaded.diags.all() {
        let Some(pos) = &d.pos else { continue };
        // However an include spelled it.
        let file = files.canonical(Path::new(&*pos.file));
        let i = FILES
            .iter()
            .position(|f| dir.join(f) == file)
            .unwrap_or_else(|| panic!("{d}: a file that is not the input's"));
        let lines = line_counts[i];
        assert!(
            (1..=lines).contains(&pos.line),
            "{d}: line {} of {lines}",
            pos.line
        );
    }
    let cfg = &loaded.config;
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut engine = Engine::new(cfg, fastrand::Rng::with_seed(7), now);
    engine.start(now);
    check_table(&engine);
    // A few rounds of checks, their results from the input's bytes.
    let mut results = data.iter().cycle();
    for round in 1..=4u64 {
        let t = now + Duration::from_secs(30 * round);
        for job in engine.due(t) {
            let outcome = match results.next().map_or(0, |b| b % 4) {
                0 => Outcome::Up(None),
                1 => Outcome::Down("Connection refused".into()),
                2 => Outcome::Exit(2),
                _ => Outcome::TimedOut,
            };
            engine.on_result(job.r, outcome, t, wall);
        }
        let _ = engine.take_actions();
        check_table(&engine);
    }
    engine.reload(cfg, now + Duration::from_secs(150));
    check_table(&engine);
    let status = engine.status(1, &main.display().to_string(), wall);
    let json = serde_json::to_string(&status).expect("the status serialises");
    let back: HealthStatus = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(back, status);
    let _ = rvs_control_proto::health::table(&status, 1_700_000_000_000);
    engine.stop();
    let _ = engine.take_actions();
}

fn check_table(engine: &Engine) {
    let table = engine.table();
    for (k, s) in &table.services {
        assert!(
            engine.manages_service(k.key()),
            "{k:?} is not the configuration's"
        );
        for d in s.dests.keys() {
            assert!(
                engine.manages_dest(k.key(), d.key()),
                "{k:?} {d:?} is not the configuration's"
            );
        }
    }
    for cmd in diff(&Table::default(), table) {
        let _ = format::command(&cmd, &Numeric);
    }
}
