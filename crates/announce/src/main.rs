//! rvs-announce: see the library's documentation.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rvs_announce::{Announcer, Bird};
use rvs_control_proto::client::request_within;
use rvs_control_proto::proto::Request;

/// Announce this director's VIPs through BIRD while rvsd serves them;
/// withdraw them when rvsd stops, dies, drains (`rvsadm --drain`) or has no
/// available real server. On SIGTERM or SIGINT it withdraws and exits.
#[derive(Parser, Debug)]
#[command(name = "rvs-announce", version)]
struct Args {
    /// rvsd's control socket.
    #[arg(long, default_value = "/run/rvs/rvsd.sock")]
    socket: PathBuf,
    /// BIRD's control socket.
    #[arg(long, default_value = "/run/bird/bird.ctl")]
    bird_socket: PathBuf,
    /// The file of IPv4 routes BIRD's static protocol includes (rewritten
    /// whole on every change).
    #[arg(long)]
    routes_file: PathBuf,
    /// The same for IPv6 VIPs; without it they are not announced.
    #[arg(long)]
    routes_file_v6: Option<PathBuf>,
    /// BIRD's client.
    #[arg(long, default_value = "birdc")]
    birdc: PathBuf,
    /// How long a rvsd that is there but does not answer (a busy machine)
    /// keeps its announcement, in milliseconds; one that is gone loses it
    /// at once. A dead dataplane loses it anyway: BFD runs through it.
    #[arg(long, default_value_t = 3000)]
    grace_ms: u64,
    /// How often to ask rvsd, in milliseconds (20 to 10000).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(20..=10_000))]
    interval_ms: u64,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let Some(dir) = args.routes_file.parent() else {
        bail!("--routes-file {} names no file", args.routes_file.display());
    };
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        bail!(
            "--routes-file {}: directory {} does not exist",
            args.routes_file.display(),
            dir.display()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("handling signals")?;
    }
    let mut announcer = Announcer::new(
        Bird {
            birdc: args.birdc.clone(),
            socket: args.bird_socket.clone(),
            routes_v4: args.routes_file.clone(),
            routes_v6: args.routes_file_v6.clone(),
        },
        args.routes_file_v6.is_some(),
    );
    announcer.grace = Duration::from_millis(args.grace_ms);
    let interval = Duration::from_millis(args.interval_ms);
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let answer = request_within(&args.socket, &Request::Announcement, Duration::from_secs(1));
        announcer.observe(answer, Instant::now());
        if let Some(rest) = interval.checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    announcer.step(Vec::new(), "rvs-announce stops");
    Ok(())
}
