//! rvs-oracle: runs differential scenarios inside the kernel VM
//! (`rvs-oracle run`), and compares their transcripts (`rvs-oracle compare`).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use rvs_oracle::runner::{self, Bins, DirectorKind};
use rvs_oracle::scenario::Scenario;
use rvs_oracle::{result_path, scenario_name};

#[derive(Parser)]
#[command(about = "Kernel-IPVS differential scenarios")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Which {
    Kernel,
    Rvs,
    Both,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs scenarios (as root, where kernel IPVS is) and writes one
    /// transcript per scenario and director into --out.
    Run {
        #[arg(long, value_enum, default_value = "both")]
        director: Which,
        #[arg(long)]
        out: PathBuf,
        /// The scenarios folder (names are paths under it).
        #[arg(long, default_value = "oracle/scenarios")]
        root: PathBuf,
        /// Where rvsd and rvsadm are.
        #[arg(long, default_value = "target/debug")]
        bin_dir: PathBuf,
        scenarios: Vec<PathBuf>,
    },
    /// Parses scenario files and reports errors, without running them.
    Check { scenarios: Vec<PathBuf> },
    /// Exchanges connection sync messages with kernel IPVS, both ways (as
    /// root, where kernel IPVS is).
    SyncInterop,
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::SyncInterop => rvs_oracle::sync_interop::run(),
        Cmd::Check { scenarios } => {
            for s in &scenarios {
                Scenario::load(s)?;
            }
            println!("{} scenario files parse", scenarios.len());
            Ok(())
        }
        Cmd::Run {
            director,
            out,
            root,
            bin_dir,
            scenarios,
        } => {
            std::fs::create_dir_all(&out)?;
            let bin_dir = std::fs::canonicalize(&bin_dir)
                .with_context(|| format!("bin dir {}", bin_dir.display()))?;
            let bins = Bins {
                rvsd: bin_dir.join("rvsd"),
                rvsadm: bin_dir.join("rvsadm"),
                rvs_keepalived: bin_dir.join("rvs-keepalived"),
                work: std::env::temp_dir().join("rvs-oracle"),
            };
            let kinds: &[DirectorKind] = match director {
                Which::Kernel => &[DirectorKind::Kernel],
                Which::Rvs => &[DirectorKind::Rvs],
                Which::Both => &[DirectorKind::Kernel, DirectorKind::Rvs],
            };
            // Tunnel endpoints exist in every namespace once their modules
            // are in; kernel IPVS loads its own modules on first use.
            let st = std::process::Command::new("modprobe")
                .args(["-a", "ipip", "ip_gre", "fou"])
                .status()
                .context("running modprobe")?;
            if !st.success() {
                anyhow::bail!(
                    "modprobe ipip ip_gre fou failed: the real servers cannot decapsulate"
                );
            }
            let mut failed = 0;
            for file in &scenarios {
                let name = scenario_name(&root, file);
                let sc = match Scenario::load(file) {
                    Ok(sc) => sc,
                    Err(e) => {
                        failed += 1;
                        for k in kinds {
                            let path = result_path(&out, &name, k.name());
                            std::fs::write(
                                &path,
                                format!("@@ 0 error exact\nscenario not loaded: {e:#}\n"),
                            )?;
                        }
                        println!("oracle: {name} FAILED to load: {e:#}");
                        continue;
                    }
                };
                let started = Instant::now();
                let results = runner::run_lockstep(&sc, kinds, &bins);
                let mut line = format!("oracle: {name} {:.1} s", started.elapsed().as_secs_f64());
                for (k, res) in kinds.iter().zip(results) {
                    let path = result_path(&out, &name, k.name());
                    match res {
                        Ok(t) => std::fs::write(&path, t.render())?,
                        Err(e) => {
                            failed += 1;
                            // The comparison shows it as a difference.
                            std::fs::write(
                                &path,
                                format!("@@ 0 error exact\nrun failed: {e:#}\n"),
                            )?;
                            line.push_str(&format!("; {} run FAILED: {e:#}", k.name()));
                        }
                    }
                }
                println!("{line}");
            }
            if failed > 0 {
                anyhow::bail!("{failed} runs failed");
            }
            Ok(())
        }
    }
}
