//! `cargo xtask <task>`: the project's tasks, in Rust so they run the same
//! everywhere. Everything that touches the machine (packages, hugepages) is
//! in dpdk-build/setup.sh, which every task runs first.
//!
//! Why this file is long (about 720 lines): the task list (clap) and the
//! small tasks that need no module of their own (lab, demo, failover, test,
//! the kernel VM's three actions); each large task has its own file.

#![forbid(unsafe_code)]

mod bench;
mod bench_e2e;
mod bench_plots;
mod dist;
mod docker;
mod fuzz;
mod kernel_vm;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rvs_lab::{Lab, RvsdOptions, VIP};

#[derive(Parser)]
#[command(about = "rvs project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install packages, reserve hugepages (dpdk-build/setup.sh).
    Setup,
    /// The IPVS direct-routing walkthrough, end to end, then clean up.
    Demo,
    /// Build or remove the lab topology, with rvsd running and no services.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Every test, unit and end to end (needs root); builds the .deb first
    /// (as dist does) for the package test.
    Test,
    /// The Debian package: release binaries, man pages, completions, then
    /// cargo deb (target/debian/rvsd_*.deb).
    Dist,
    /// rvsd and dpdk-testpmd side by side on replayed captures; writes
    /// bench/RESULTS.md. --quick: a short smoke run (debug build).
    Bench {
        #[arg(long)]
        quick: bool,
        /// Only the end-to-end comparison (nginx, HAProxy, rvsd, direct);
        /// with --quick, one short run of each (debug build).
        #[arg(long)]
        e2e_only: bool,
        /// Only rewrite README.md's benchmark summary from bench/RESULTS.md.
        #[arg(long)]
        readme_only: bool,
        /// Only what the exception path costs: the DR row, 1 M flows, with
        /// the kernel interface on and off in alternating runs (release
        /// build); prints the pairs, writes nothing.
        #[arg(long)]
        exception_cost: bool,
        /// Only what counting traffic costs: the same DR pair with
        /// `[stats] enabled` on and off (release build); prints the pairs.
        #[arg(long)]
        counting_cost: bool,
        /// Only what the connection sync daemon costs the new-flow rate:
        /// the new-flow row with the master on and off in alternating runs
        /// (release build); prints the pairs.
        #[arg(long)]
        sync_cost: bool,
        /// Only the targets measured in pairs, as the full run measures
        /// them (release build): rvsd against testpmd 5tswap on DR over
        /// 1 M established flows with one worker and on new flows, and two
        /// workers against one on that DR row with either RSS split; each
        /// in pairs of alternating runs. Prints the pairs, writes nothing.
        #[arg(long)]
        target_pairs: bool,
        /// Only this build against another: DIR holds rvsd and rvsadm built
        /// from another commit (copied from its target/release). The main
        /// rows (DR, NAT, TUN, IPv6, DR on two workers with either RSS split,
        /// new flows) in pairs of alternating runs, both builds on the same
        /// captures; prints the pairs and each row's median ratio, writes
        /// nothing.
        #[arg(long, value_name = "DIR")]
        against: Option<std::path::PathBuf>,
        /// With --against: only the row named exactly this, or if none
        /// is, the rows whose name contains it (e.g. "RSS").
        #[arg(long, value_name = "TEXT", requires = "against")]
        rows: Option<String>,
        /// Only the SYN-flood row: established and legitimate new clients
        /// in a spoofed SYN flood four times the connection table (release
        /// build; debug with --quick); prints the row, writes nothing.
        #[arg(long)]
        flood: bool,
        /// Only the flow-count sweep: testpmd and rvsd with `flowgen` as
        /// the source over memif, 1k to 10M flows (1k with --quick);
        /// prints the rows, writes nothing.
        #[arg(long)]
        sweep: bool,
    },
    /// Failover and rejoin on the cluster lab: long-lived connections
    /// spread by ECMP over the directors, one rvsd killed and restarted,
    /// DR; mh without sync, wlc with connection sync, then mh to real
    /// servers behind the router by IPIP. Each ends with its `failover:
    /// ...` line.
    Failover {
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=4))]
        directors: u8,
        #[arg(long, default_value_t = 300)]
        connections: usize,
        /// The namespaces' prefix (not "rvs": `lab up` may be running).
        #[arg(long, default_value = "rvsfo")]
        prefix: String,
    },
    /// A VM with real kernel IPVS (Debian 12): the oracle rvs is compared
    /// against.
    KernelVm {
        #[command(subcommand)]
        action: KernelVmAction,
    },
    /// The rvs image and the walkthrough as containers (docker/).
    Docker {
        #[command(subcommand)]
        action: docker::Action,
    },
    /// The fuzz targets (fuzz/, docs/fuzzing.md): their harnesses' tests,
    /// then each target for --seconds from its seeds; fails on a crash.
    /// Needs cargo-fuzz (setup installs it).
    Fuzz {
        /// How long each target runs.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Only these targets (default: every one `cargo fuzz list` names).
        targets: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KernelVmAction {
    /// Build the image (cached under target/kernel-vm).
    Build,
    /// Boot it and run a shell command in this checkout (mounted at the
    /// same path); prints its output, exits with its code.
    Run {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Run the differential scenarios (oracle/scenarios), kernel IPVS
    /// against rvsd; only those whose name contains a FILTER, if given.
    Test { filters: Vec<String> },
}

#[derive(Subcommand)]
enum LabAction {
    /// Build it. Without --mode: the DR walkthrough (client, director, two
    /// real servers on one bridge). With --mode: the kernel selftest's
    /// topology (client side and server side on separate links).
    Up {
        #[arg(long, value_enum)]
        mode: Option<LabMode>,
        /// With --mode: also configure IPv6 (VIP fd00:99::10).
        #[arg(long, requires = "mode")]
        ipv6: bool,
        /// Several directors (2 to 4) behind a BIRD router with ECMP, four
        /// shared real servers (crates/lab/src/cluster.rs).
        #[arg(long, conflicts_with = "mode", value_parser = clap::value_parser!(u8).range(2..=4))]
        cluster: Option<u8>,
        /// With --cluster: the real servers behind the router, reached by
        /// IPIP tunnels, instead of DR on the directors' LAN.
        #[arg(long, requires = "cluster")]
        tunnel: bool,
    },
    Down,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LabMode {
    Dr,
    Nat,
    Ipip,
    Gue,
    Gre,
}

/// The lab a person uses by hand (and the demo): namespaces rvs-*.
const LAB_PREFIX: &str = "rvs";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

fn setup() -> Result<()> {
    sh(Command::new("bash").arg("dpdk-build/setup.sh"))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn build_binaries() -> Result<()> {
    sh(cargo().args([
        "build",
        "-p",
        "rvsd",
        "-p",
        "rvsadm",
        "-p",
        "rvs-keepalived",
        "-p",
        "rvs-announce",
    ]))
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup(),
        Task::Demo => demo(),
        Task::Lab {
            action:
                LabAction::Up {
                    cluster: Some(n),
                    tunnel,
                    ..
                },
        } => lab_up_cluster(usize::from(n), tunnel),
        Task::Lab {
            action: LabAction::Up { mode: None, .. },
        } => lab_up(),
        Task::Lab {
            action:
                LabAction::Up {
                    mode: Some(m),
                    ipv6,
                    ..
                },
        } => lab_up_selftest(m, ipv6),
        Task::Failover {
            directors,
            connections,
            prefix,
        } => failover(usize::from(directors), connections, &prefix),
        Task::Lab {
            action: LabAction::Down,
        } => {
            rvs_lab::teardown(LAB_PREFIX)?;
            println!("lab removed");
            Ok(())
        }
        Task::Test => test(),
        Task::Dist => dist::run(&root()).map(|_| ()),
        Task::KernelVm { action } => kernel_vm_task(action),
        Task::Docker { action } => docker::run(action),
        Task::Fuzz { seconds, targets } => {
            setup()?;
            fuzz::run(&root(), seconds, &targets)
        }
        Task::Bench {
            readme_only: true, ..
        } => {
            let readme = root().join("README.md");
            let results = std::fs::read_to_string(root().join("bench/RESULTS.md"))?;
            let text = std::fs::read_to_string(&readme)?;
            std::fs::write(&readme, bench::readme_with_summary(&text, &results)?)?;
            println!("benchmark summary in {} rewritten", readme.display());
            Ok(())
        }
        Task::Bench {
            e2e_only: true,
            quick,
            ..
        } => {
            setup()?;
            // Measured as the full benchmark does: the release rvsd (a
            // debug one for the quick smoke run).
            let (plan, profile) = if quick {
                (bench_e2e::Plan::QUICK, "debug")
            } else {
                (bench_e2e::Plan::FULL, "release")
            };
            let mut build = cargo();
            build.args(["build", "-p", "rvsd", "-p", "rvsadm"]);
            if !quick {
                build.arg("--release");
            }
            sh(&mut build)?;
            std::env::set_var("RVS_BIN_DIR", root().join("target").join(profile));
            let e2e = bench_e2e::run(plan)?;
            println!(
                "One real server\n\n{}\nSparse traffic\n\n{}\nTwo real servers\n\n{}",
                e2e.one_server, e2e.sparse, e2e.two_servers
            );
            println!(
                "rvsd, one real server, × direct: keep-alive {:.2} (paired runs {:.2}-{:.2}), new connection per request {:.2} ({:.2}-{:.2})",
                e2e.rvsd_one_ka.0, e2e.rvsd_one_ka.1, e2e.rvsd_one_ka.2,
                e2e.rvsd_one_nc.0, e2e.rvsd_one_nc.1, e2e.rvsd_one_nc.2
            );
            println!(
                "rvsd, sparse traffic, p50 × direct: {:.2}",
                e2e.sparse_p50_ratio
            );
            Ok(())
        }
        Task::Bench {
            against: Some(base),
            rows,
            ..
        } => {
            setup()?;
            build_for_bench(true)?;
            let table = bench::Bench::new(&root(), false).against(&base, rows.as_deref())?;
            println!("{table}");
            Ok(())
        }
        Task::Bench {
            target_pairs: true, ..
        } => {
            setup()?;
            build_for_bench(true)?;
            println!("{}", bench::Bench::new(&root(), false).target_pairs()?);
            Ok(())
        }
        Task::Bench {
            exception_cost,
            counting_cost,
            sync_cost,
            ..
        } if exception_cost || counting_cost || sync_cost => {
            setup()?;
            build_for_bench(true)?;
            let bench = bench::Bench::new(&root(), false);
            if counting_cost {
                let (table, median) = bench.counting_cost()?;
                println!("{table}");
                println!("counting on / off: {median:.3}");
            }
            if exception_cost {
                let (table, median) = bench.exception_cost()?;
                println!("{table}");
                println!("exception path on / off: {median:.3} (target ≥ 0.98)");
            }
            if sync_cost {
                let (table, median) = bench.sync_cost()?;
                println!("{table}");
                println!("new flows, sync on / off: {median:.3} (target ≥ 0.90)");
            }
            Ok(())
        }
        Task::Bench {
            flood: true, quick, ..
        } => {
            setup()?;
            build_for_bench(!quick)?;
            let b = bench::Bench::new(&root(), quick);
            let (on, off) = (b.flood(true)?, b.flood(false)?);
            println!("{}{}{}", bench::FLOOD_HEADER, on.table(), off.table());
            println!(
                "table pressure on: established clients lost {} packets (target 0); legitimate new clients completed {:.2} %",
                on.established_lost(),
                on.legit_completion() * 100.0
            );
            Ok(())
        }
        Task::Bench {
            sweep: true, quick, ..
        } => {
            setup()?;
            build_for_bench(!quick)?;
            println!("{}", bench::Bench::new(&root(), quick).sweep()?);
            Ok(())
        }
        Task::Bench { quick, .. } => {
            setup()?;
            build_for_bench(!quick)?;
            bench::Bench::new(&root(), quick).run()
        }
    }
}

/// Builds what the benchmarks run: rvsd with its benchmark mode's burst
/// histogram (feature `burst-histogram`, off in production builds),
/// rvsadm and the generators.
fn build_for_bench(release: bool) -> Result<()> {
    let mut build = cargo();
    build.arg("build");
    if release {
        build.arg("--release");
    }
    sh(build.args([
        "-p",
        "rvsd",
        "-p",
        "rvsadm",
        "-p",
        "rvs-bench",
        "--features",
        "rvsd/burst-histogram",
    ]))
}

fn kernel_vm_task(action: KernelVmAction) -> Result<()> {
    let vm = kernel_vm::KernelVm::new(&root());
    match action {
        KernelVmAction::Build => {
            vm.setup()?;
            let image = vm.image()?;
            println!("kernel-vm: image in {}", image.dir.display());
            Ok(())
        }
        KernelVmAction::Run { command } => {
            vm.setup()?;
            let image = vm.image()?;
            let started = std::time::Instant::now();
            let job = vm.run(
                &image,
                &format!("{}\n", command.join(" ")),
                std::time::Duration::from_secs(30 * 60),
                true,
            )?;
            eprintln!(
                "kernel-vm: exit {} after {:.1} s (boot included)",
                job.code,
                started.elapsed().as_secs_f64()
            );
            std::process::exit(job.code);
        }
        KernelVmAction::Test { filters } => kernel_vm::test(&root(), &filters),
    }
}

fn start_lab(socket: &str) -> Result<Lab> {
    let mut lab = Lab::create(LAB_PREFIX, Path::new("/run/rvs/lab"))?;
    lab.serve_http("rs1", 80, "RS1")?;
    lab.serve_http("rs2", 80, "RS2")?;
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(socket),
    })?;
    Ok(lab)
}

fn demo() -> Result<()> {
    setup()?;
    build_binaries()?;
    // Ctrl-C: remove everything, then leave.
    ctrlc::set_handler(|| {
        let _ = rvs_lab::teardown(LAB_PREFIX);
        std::process::exit(130);
    })?;
    println!("== building the lab: client, director (rvsd), rs1, rs2 on a bridge");
    let lab = start_lab("/run/rvs/demo.sock")?;
    for line in [
        "-A -t 192.168.1.10:80 -s rr",
        "-a -t 192.168.1.10:80 -r 192.168.1.220:80 -g -w 1",
        "-a -t 192.168.1.10:80 -r 192.168.1.193:80 -g -w 1",
    ] {
        println!("# rvsadm {line}");
        lab.rvsadm_ok(line)?;
    }
    println!("# rvsadm -Ln");
    print!("{}", lab.rvsadm_ok("-Ln")?);
    for _ in 0..6 {
        let body = lab.curl(&format!("http://{VIP}/"))?;
        println!("rvs-client$ curl http://{VIP}/  ->  {body}");
    }
    println!("# rvsadm -Ln (closed connections count as InActConn)");
    print!("{}", lab.rvsadm_ok("-Ln")?);
    println!("== removing the lab");
    drop(lab);
    Ok(())
}

fn lab_up() -> Result<()> {
    setup()?;
    build_binaries()?;
    let mut lab = start_lab(rvs_control_default_socket())?;
    lab.keep();
    let bin = root().join("target/debug");
    println!(
        "The lab is up: rvsd runs in namespace rvs-director with no services.\n\
Try:\n\
\x20 export PATH={bin}:$PATH\n\
\x20 rvsadm -A -t {VIP}:80 -s rr\n\
\x20 rvsadm -a -t {VIP}:80 -r 192.168.1.220 -g\n\
\x20 rvsadm -a -t {VIP}:80 -r 192.168.1.193 -g\n\
\x20 rvsadm -Ln\n\
\x20 ip netns exec rvs-client curl http://{VIP}/\n\
rvsd's log: /run/rvs/lab/rvsd.log. Remove it all with: cargo xtask lab down",
        bin = bin.display()
    );
    Ok(())
}

/// `lab up --cluster N`: N directors, each with rvsd (an `mh` HTTP
/// service on the cluster VIP), BIRD, and rvs-announce announcing the VIP
/// to the router while rvsd serves it.
fn lab_up_cluster(directors: usize, tunnel: bool) -> Result<()> {
    use rvs_lab::cluster::{Cluster, ClusterOptions, CLUSTER_VIP};
    setup()?;
    build_binaries()?;
    let mut c = Cluster::create(
        LAB_PREFIX,
        Path::new("/run/rvs/cluster"),
        ClusterOptions {
            tunnel,
            ..ClusterOptions::new(directors, 4)
        },
    )?;
    for r in 1..=4 {
        c.lab
            .serve_http(&Cluster::real_server_role(r), 80, &format!("RS{r}"))?;
    }
    for i in 1..=directors {
        c.start_rvsd(i)?;
        c.start_announcer(i)?;
    }
    c.configure_service("mh", 80)?;
    let all: Vec<usize> = (1..=directors).collect();
    c.wait_next_hops(CLUSTER_VIP, &all, std::time::Duration::from_secs(30))?;
    c.lab.keep();
    let dir = Path::new("/run/rvs/cluster");
    println!(
        "The cluster is up: {directors} directors (rvs-dir1..) announce {CLUSTER_VIP} to rvs-router,\n\
which spreads flows over them by ECMP; four real servers (rvs-rs1..4) by {how}.\n\
Try:\n\
\x20 ip netns exec rvs-router ip route show {CLUSTER_VIP}\n\
\x20 ip netns exec rvs-client curl http://{CLUSTER_VIP}/\n\
\x20 target/debug/rvsadm --socket {d}/rvsd-dir1.sock -Ln\n\
\x20 birdc -s {d}/bird-router.ctl show protocols\n\
\x20 target/debug/rvsadm --socket {d}/rvsd-dir1.sock --drain   (then --undrain)\n\
Logs and configurations: {d}. Remove it all with: cargo xtask lab down",
        d = dir.display(),
        how = if tunnel {
            "IPIP tunnels through the router (192.168.3.0/24)"
        } else {
            "DR"
        }
    );
    Ok(())
}

fn failover(directors: usize, connections: usize, prefix: &str) -> Result<()> {
    use rvs_lab::failover::{run, FailoverOptions};
    if !(1..=2000).contains(&connections) {
        bail!("--connections {connections}: give 1 to 2000");
    }
    build_binaries()?;
    let dir = std::env::temp_dir().join(format!("rvs-failover-{prefix}"));
    let mut broke = Vec::new();
    let mut runs = Vec::new();
    for (name, opts) in [
        ("mh, no sync", FailoverOptions::new(directors, connections)),
        (
            "wlc with sync",
            FailoverOptions::wlc_with_sync(directors, connections),
        ),
        (
            "mh, tunnelled real servers",
            FailoverOptions::tunnel(directors, connections),
        ),
    ] {
        println!("== {name}");
        let mut steps = Vec::new();
        let report = run(prefix, &dir, &opts, |s| {
            println!("== {s}");
            steps.push(format!("== {s}"));
        })?;
        println!("{report} ({name})");
        steps.push(format!("{report}"));
        runs.push((name, opts, steps));
        if report.broken_failover + report.broken_rejoin > 0 || report.probes_ok < report.probes {
            broke.push(format!("{name}: {report:?}"));
        }
    }
    if !broke.is_empty() {
        bail!(
            "connections broke: {} (logs in {})",
            broke.join("; "),
            dir.display()
        );
    }
    // bench/RESULTS.md takes this in as its failover section (`cargo
    // xtask bench` keeps it there).
    let path = root().join("bench/failover.md");
    std::fs::write(&path, failover_section(directors, connections, &runs))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The failover section of bench/RESULTS.md: what ran, what happened, and
/// how it compares with what Maglev and Katran publish.
fn failover_section(
    directors: usize,
    connections: usize,
    runs: &[(&str, rvs_lab::failover::FailoverOptions, Vec<String>)],
) -> String {
    use std::fmt::Write;
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut s = format!(
        "Command: `cargo xtask failover` ({date}; debug build, the same shared 2-CPU machine): the cluster lab with \
{directors} directors behind a BIRD 2 router (ECMP, L4 hash, BFD 3 × 100 ms), 4 real servers (by DR on the directors' \
LAN; in the third scenario behind the router, by IPIP), {connections} \
long-lived connections each streaming both ways with every byte checked; one director's rvsd is killed \
(`kill -9`) and, once every connection moves again, started again. Each scenario ends with its line.\n\n"
    );
    for (name, opts, steps) in runs {
        let _ = writeln!(
            s,
            "**{name}** (`-s {}`{}):\n\n```text\n{}\n```\n",
            opts.scheduler,
            if opts.sync {
                ", every director a sync master and backup"
            } else {
                ""
            },
            steps.join("\n")
        );
    }
    s.push_str(
        "Beside the published designs. Maglev (Eisenbud et al., NSDI 2016) and Katran (Facebook, 2018) keep no \
state shared between load balancers: each builds the same consistent-hash table from the same backends, so a \
flow that ECMP moves to another machine reaches the same backend there, and a connection breaks only when the \
backend set changes while its flow moves (local connection tables cover that case on the machine that has \
them). The first scenario is that design with the kernel's `mh` (Maglev's table) and `sloppy_tcp`: the \
survivors took the moved flows over mid-flow and none broke. Kernel IPVS adds state sharing instead, its \
sync daemon, so that any scheduler survives a move; the second scenario is that, with `wlc`: the survivors \
found every moved flow in their tables (nothing scheduled anew) and none broke. The third is the first with \
the real servers reached by tunnels, as Maglev and Katran reach theirs (by GRE and IPIP). Neither paper publishes a \
failover count in this form; the comparison is of behaviour, not of numbers.\n",
    );
    s
}

fn lab_up_selftest(mode: LabMode, ipv6: bool) -> Result<()> {
    use rvs_lab::selftest::{Mode, PORT, SERVER, VIP as SVIP};
    setup()?;
    build_binaries()?;
    let (m, flag) = match mode {
        LabMode::Dr => (Mode::Dr, "-g"),
        LabMode::Nat => (Mode::Nat, "-m"),
        LabMode::Ipip => (Mode::Tun("ipip"), "-i"),
        LabMode::Gue => (Mode::Tun("gue:6080"), "-i --tun-type gue --tun-port 6080"),
        LabMode::Gre => (Mode::Tun("gre"), "-i --tun-type gre"),
    };
    let dir = Path::new("/run/rvs/lab");
    let mut lab = if ipv6 {
        Lab::create_selftest_v6(LAB_PREFIX, dir, m)?
    } else {
        Lab::create_selftest(LAB_PREFIX, dir, m)?
    };
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(rvs_control_default_socket()),
    })?;
    lab.keep();
    let bin = root().join("target/debug");
    if ipv6 {
        println!(
            "IPv6 too: rvs-client fd00:1::2, rvsd fd00:1::1 and fd00:2::1, rvs-server fd00:2::2.\n\
\x20 rvsadm -A -t [fd00:99::10]:{PORT} -s rr\n\
\x20 rvsadm -a -t [fd00:99::10]:{PORT} -r [fd00:2::2]:{PORT} {flag}"
        );
    }
    println!(
        "The lab is up (the kernel selftest's topology): rvs-client 10.0.0.2, rvsd in\n\
rvs-director on 10.0.0.1 and 172.16.0.1, rvs-server 172.16.0.2. No services yet.\n\
Try:\n\
\x20 export PATH={bin}:$PATH\n\
\x20 rvsadm -A -t {SVIP}:{PORT} -s rr\n\
\x20 rvsadm -a -t {SVIP}:{PORT} -r {SERVER}:{PORT} {flag}\n\
\x20 rvsadm -Ln --tun-info\n\
\x20 ip netns exec rvs-server socat -u TCP4-LISTEN:{PORT},reuseaddr STDOUT &\n\
\x20 echo hello | ip netns exec rvs-client socat -u STDIN TCP4:{SVIP}:{PORT}\n\
rvsd's log: /run/rvs/lab/rvsd.log. Remove it all with: cargo xtask lab down",
        bin = bin.display()
    );
    Ok(())
}

fn rvs_control_default_socket() -> &'static str {
    // rvsadm's default, so that plain `rvsadm` finds the lab's rvsd.
    "/run/rvs/rvsd.sock"
}

fn test() -> Result<()> {
    setup()?;
    build_binaries()?;
    // The package test (crates/lab/tests/package.rs) installs this build's
    // .deb into a Debian 12 root, debootstrap'ed once and cached under
    // target/deb-test.
    dist::run(&root())?;
    rvs_lab::debian::bookworm_base(&root().join("target/deb-test"))?;
    let nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let result = if nextest {
        sh(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--run-ignored",
            "all",
            "--profile",
            "ci",
        ]))
    } else {
        sh(cargo().args([
            "test",
            "--workspace",
            "--",
            "--include-ignored",
            "--test-threads=1",
        ]))
    };
    // The fuzz harnesses' tests: fuzz/ is a workspace of its own, so the
    // run above does not reach them.
    let result = result.and(fuzz::harness_tests(&root()));
    // Every lab a test built must be gone, even after a failure.
    let leaked = rvs_lab::namespaces_starting(&rvs_lab::test_prefix())?;
    if !leaked.is_empty() {
        for ns in &leaked {
            let prefix = ns.rsplit_once('-').map(|(p, _)| p).unwrap_or(ns);
            rvs_lab::teardown(prefix)?;
        }
        if result.is_ok() {
            bail!("tests left namespaces behind: {}", leaked.join(" "));
        }
    }
    // And their scratch folders (each lab removes its own as it goes).
    let scratch = rvs_lab::test_dir(&rvs_lab::test_prefix());
    let start = scratch
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut left = Vec::new();
    for e in std::fs::read_dir(std::env::temp_dir())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&start) && std::env::var_os("RVS_KEEP_LAB_DIR").is_none() {
            let _ = std::fs::remove_dir_all(e.path());
            left.push(name);
        }
    }
    if !left.is_empty() && result.is_ok() {
        bail!("tests left scratch folders behind: {}", left.join(" "));
    }
    result
}
