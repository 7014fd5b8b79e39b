//! `cargo xtask fuzz`: the fuzz targets (fuzz/, cargo-fuzz and libFuzzer;
//! docs/fuzzing.md), as CI runs them. First the harnesses' own tests
//! (every seed and every input a run once failed on passes its target),
//! then each target for a while, from its seeds, on a fresh corpus.
//!
//! cargo-fuzz asks for nightly; `RUSTC_BOOTSTRAP=1` lets it run on the
//! stable toolchain the rest of the project uses. The targets are built
//! without a sanitizer: the code they reach has no `unsafe` of its own
//! (see docs/fuzzing.md), and AddressSanitizer would halve the rate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// What one target's run printed at its end (libFuzzer's `-print_final_stats`).
#[derive(Default)]
struct Stats {
    executions: Option<u64>,
    per_second: Option<u64>,
    coverage: Option<String>,
}

fn stats(log: &str) -> Stats {
    let mut s = Stats::default();
    for line in log.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            s.executions = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("stat::average_exec_per_sec:") {
            s.per_second = v.trim().parse().ok();
        } else if line.starts_with('#') && line.contains(" cov: ") {
            // "#1234  NEW cov: 10 ft: 20 corp: 3/40b ...": the last one wins.
            let from = line.find("cov: ").unwrap_or(0);
            let until = line.find(" lim: ").or_else(|| line.find(" exec/s: "));
            s.coverage = Some(line[from..until.unwrap_or(line.len())].to_string());
        }
    }
    s
}

/// Cargo for the fuzz workspace, without the variables `cargo run` set
/// for xtask itself: ring's build script reruns when
/// `CARGO_MANIFEST_DIR` changes, so they would make every build after a
/// hand-run `cargo fuzz build` (and the next one by hand) start over.
fn fuzz_workspace_cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name)
        {
            c.env_remove(name);
        }
    }
    c
}

fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut c = fuzz_workspace_cargo();
    c.arg("fuzz")
        .current_dir(fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1");
    c
}

/// The targets cargo-fuzz knows (`fuzz/Cargo.toml`'s `[[bin]]`s).
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let out = cargo_fuzz(fuzz_dir)
        .arg("list")
        .output()
        .context("running cargo fuzz list (cargo install cargo-fuzz --locked)")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let names: Vec<String> = String::from_utf8(out.stdout)?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if names.is_empty() {
        bail!("cargo fuzz list names no target");
    }
    Ok(names)
}

/// Where the runs' corpora go: a tmpfs when there is one (libFuzzer writes
/// a file for every new input).
fn scratch(root: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        root.join("fuzz/target")
    };
    base.join(format!("rvs-xtask-fuzz-{}", std::process::id()))
}

/// Removes the scratch corpora however the run ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The harnesses' own tests (fuzz/src/tests.rs): every seed passes its
/// checks, and `fuzz/seeds/` holds exactly the seeds the fixtures make now.
/// `cargo xtask test` runs them too, since a change to the data plane or a
/// shipped config can make a seed stale without any fuzzing.
pub fn harness_tests(root: &Path) -> Result<()> {
    let scratch = Scratch(scratch(root));
    harness_tests_in(&scratch.0)
}

/// Where the harnesses write their own files (a rules file, a
/// keepalived.conf per process): under the scratch folder, so they go with
/// it.
fn harness_files(scratch: &Path) -> PathBuf {
    scratch.join("harness")
}

fn harness_tests_in(scratch: &Path) -> Result<()> {
    crate::sh(
        fuzz_workspace_cargo()
            .env("RVS_FUZZ_SCRATCH", harness_files(scratch))
            .args(["test", "--manifest-path", "fuzz/Cargo.toml", "--lib"]),
    )
}

/// Runs the harness tests, builds every target, runs each (or those named)
/// for `seconds`; fails, naming the artifacts, if any target found a crash.
pub fn run(root: &Path, seconds: u64, only: &[String]) -> Result<()> {
    let fuzz_dir = root.join("fuzz");
    let scratch = Scratch(scratch(root));
    harness_tests_in(&scratch.0)?;
    let harness_files = harness_files(&scratch.0);
    let all = targets(&fuzz_dir)?;
    for name in only {
        if !all.contains(name) {
            bail!("no fuzz target {name:?}; there are: {}", all.join(", "));
        }
    }
    let chosen: Vec<&String> = all
        .iter()
        .filter(|t| only.is_empty() || only.contains(t))
        .collect();
    let status = cargo_fuzz(&fuzz_dir)
        .args(["build", "--sanitizer", "none"])
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    let mut failed = Vec::new();
    for target in chosen {
        let corpus = scratch.0.join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("creating {}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(target);
        println!("fuzz: {target} for {seconds} s");
        let started = Instant::now();
        let out = cargo_fuzz(&fuzz_dir)
            .args(["run", "--sanitizer", "none", target])
            .env("RVS_FUZZ_SCRATCH", &harness_files)
            .arg(&corpus)
            .arg(&seeds)
            .args([
                "--".to_string(),
                format!("-max_total_time={seconds}"),
                // An input that takes this long is a hang: a failure.
                "-timeout=20".to_string(),
                "-print_final_stats=1".to_string(),
            ])
            .output()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let s = stats(&log);
        let corpus_files = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        println!(
            "fuzz: {target}: {} in {:.0} s, {} executions ({}/s), {}, {corpus_files} corpus files",
            if out.status.success() { "ok" } else { "FAILED" },
            started.elapsed().as_secs_f64(),
            s.executions.map_or("?".into(), |n| n.to_string()),
            s.per_second.map_or("?".into(), |n| n.to_string()),
            s.coverage.as_deref().unwrap_or("no coverage line"),
        );
        if !out.status.success() {
            // What libFuzzer said about the failure: the panic, the input,
            // where it wrote it.
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
            failed.push(target.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (the inputs are in fuzz/artifacts/TARGET/; \
             replay one with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none TARGET FILE; \
             see docs/fuzzing.md)",
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stats;

    #[test]
    fn final_stats_are_read() {
        let log = "\
#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 27Mb
#4096\tpulse  cov: 12 ft: 13 corp: 2/3b lim: 4 exec/s: 2048 rss: 28Mb
#5000\tDONE   cov: 14 ft: 15 corp: 3/5b lim: 4 exec/s: 2500 rss: 28Mb
Done 5000 runs in 2 second(s)
stat::number_of_executed_units: 5000
stat::average_exec_per_sec:     2500
stat::new_units_added:          2
";
        let s = stats(log);
        assert_eq!(s.executions, Some(5000));
        assert_eq!(s.per_second, Some(2500));
        assert_eq!(s.coverage.as_deref(), Some("cov: 14 ft: 15 corp: 3/5b"));
    }
}
