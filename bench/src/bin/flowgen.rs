//! The traffic source of the flow-count sweep: established TCP flows, as
//! `pktgen --traffic ack` writes them, made on the fly on one lcore and sent
//! over a shared-memory interface (DPDK's `net_memif`) to the measured
//! side, rvsd or testpmd, which serves it:
//!
//!     flowgen --socket /run/x.sock --flows 10000000 --cpu 0 --seconds 60
//!
//! Why: a capture of 10 M flows does not fit in a pool of mbufs, and
//! net_pcap's replay copies every packet out of a capture mbuf that is long
//! out of cache. Here each frame is one flow's ACK, written into an mbuf
//! from a template with the client's address, port and sequence number
//! patched in (`rvs_bench::frames::AckFrames`), flow after flow, forever.
//!
//! flowgen is memif's client with zero-copy: the measured side (the server)
//! copies each packet out of flowgen's mbufs on receive, as net_pcap
//! copies, and into them on transmit. flowgen takes back and frees what
//! the measured side forwards, so its transmit ring never fills.
//!
//! It stops after `--seconds` (or on SIGINT/SIGTERM) and prints one JSON
//! line: frames sent and received back, and how many of its tries to send
//! a burst the measured side did not take whole ("refused_tries": its ring
//! was full, so the measured side set the pace).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use rvs_bench::frames::{AckFrames, FrameSpec};

/// Sends established TCP flows over memif to a benchmarked daemon (see the
/// top of `bench/src/bin/flowgen.rs`).
#[derive(Parser, Debug)]
#[command(name = "flowgen")]
struct Args {
    /// The memif socket the measured side listens on (its
    /// `net_memif0,role=server,socket=...,socket-abstract=no`).
    #[arg(long)]
    socket: PathBuf,
    /// Flows, each one client endpoint; frames go round them in order.
    #[arg(long, default_value_t = 1000)]
    flows: u64,
    /// Frame size in bytes, FCS included.
    #[arg(long, default_value_t = 64)]
    size: usize,
    #[arg(long, default_value = "10.99.0.1")]
    vip: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    vport: u16,
    /// The CPU flowgen's lcore runs on.
    #[arg(long, default_value_t = 0)]
    cpu: u32,
    /// Stop after this many seconds, connected or not.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
}

/// Frames per transmit burst.
const BURST: usize = 32;

fn main() -> Result<()> {
    let a = Args::parse();
    if a.flows == 0 || a.flows > u64::from(u32::MAX) {
        bail!("--flows must be 1..=4294967295");
    }
    let spec = FrameSpec {
        size: a.size,
        udp: false,
        dst_mac: [0x02, 0x70, 0x63, 0x61, 0x70, 0x00],
        vip: IpAddr::V4(a.vip),
    };
    let acks = AckFrames::new(&spec, a.vport);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("signal handler")?;
    }
    let eal_cfg = dpdk::EalConfig {
        lcores: vec![a.cpu],
        vdevs: vec![format!(
            "net_memif0,role=client,socket={},socket-abstract=no,zero-copy=yes",
            a.socket.display()
        )],
        no_pci: true,
        no_huge: true,
        memory_mb: Some(256),
        // Zero-copy memif shares the client's pool with the server through
        // a file descriptor, which needs the memory in one file per segment.
        extra: vec![
            "--single-file-segments".into(),
            "--log-level=lib.eal:error".into(),
        ],
        ..Default::default()
    };
    let eal = dpdk::Eal::init(&eal_cfg.to_args("flowgen")).context("starting DPDK's EAL")?;
    let pool = Arc::new(dpdk::Mempool::new(eal, "flowgen", 16383, 256, 2048)?);
    let id = dpdk::Port::id_by_name(eal, "net_memif0")?;
    let mut port = dpdk::Port::start(eal, id, &dpdk::PortConfig::default(), pool.clone())?;
    let mut rxq = port.take_rx_queues().pop().context("no receive queue")?;
    let mut txq = port.take_tx_queues().pop().context("no transmit queue")?;

    let started = Instant::now();
    let bound = Duration::from_secs_f64(a.seconds.max(0.0));
    let (mut sent, mut refused, mut received, mut tries) = (0u64, 0u64, 0u64, 0u64);
    let mut first_sent: Option<Instant> = None;
    let mut flow = 0u64;
    let mut out = Vec::with_capacity(BURST);
    let mut back = Vec::with_capacity(64);
    let mut polls = 0u64;
    loop {
        polls += 1;
        if polls.is_multiple_of(1024)
            && (stop.load(Ordering::Relaxed) || started.elapsed() >= bound)
        {
            break;
        }
        // What the measured side forwarded comes back here: take it and
        // free it, so that its transmit never finds the ring full.
        rxq.rx_burst(&mut back);
        received += back.len() as u64;
        back.clear();
        while out.len() < BURST {
            let Some(mut m) = pool.alloc() else { break };
            let Some(buf) = m.append(acks.len()) else {
                bail!("an mbuf holds no {}-byte frame", acks.len());
            };
            acks.write((flow + out.len() as u64) % a.flows, buf);
            out.push(m);
        }
        let n = out.len();
        let took = txq.tx_burst(&mut out) as u64;
        if took > 0 {
            first_sent.get_or_insert_with(Instant::now);
        }
        // Once connected, a burst the measured side did not take whole
        // means its ring was full: it, not flowgen, set the pace.
        if first_sent.is_some() && n > 0 {
            tries += 1;
            if took < n as u64 {
                refused += 1;
            }
        }
        // Refused frames were freed; their flows go first next time, so
        // that every flow keeps its turn.
        sent += took;
        flow = (flow + took) % a.flows;
    }
    let secs = first_sent.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "{}",
        serde_json::json!({
            "flows": a.flows,
            "sent": sent,
            "received": received,
            "tries": tries,
            "refused_tries": refused,
            "sending_seconds": secs,
            "sent_pps": if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        })
    );
    drop((rxq, txq, port));
    eal.remove_own_runtime_dir();
    Ok(())
}
