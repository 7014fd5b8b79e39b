//! A fixed workload for counting instructions on the established fast path,
//! without DPDK: ACKs of 512 established DR flows go through the worker as
//! `run_worker` passes a burst, the frames copied in (as a PMD copies them),
//! then `prefetch_burst`, then `handle_hinted` per packet. Under callgrind
//! the count is the same from run to run on a busy, shared machine, where
//! timings are not; run it twice, with 0 packets and with N, and divide the
//! difference by N for the instructions per packet:
//!
//!     cargo build --release -p rvs-bench --bin fast-path
//!     valgrind --tool=callgrind target/release/fast-path 0
//!     valgrind --tool=callgrind target/release/fast-path 102400
//!
//! With `new-flows` after the count, the packets are those of the "New
//! flows" benchmark row instead: each flow's SYN, then its FIN, over and
//! over, so that every SYN finds its flow's last connection in TIME_WAIT,
//! ends it and schedules a new one in its slot (conn_reuse_mode 1).
//!
//! `callgrind_annotate --inclusive=yes` on the second run's output then says
//! where they go. (A call that LLVM left out of line shows as its own
//! function: that is how 649c077 found 71 instructions a packet.)

use std::net::IpAddr;
use std::process::ExitCode;

use rvs_bench::frames::{self, AckFrames, FrameSpec};
use rvs_dataplane::worker::PREFETCH_GROUP;
use rvs_dataplane::Verdict;
use rvs_ipvs::FwdMethod;

const FLOWS: usize = 512;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (packets, new_flows) = match (args.first().map(|a| a.parse::<usize>()), args.get(1)) {
        (Some(Ok(n)), None) => (n, false),
        (Some(Ok(n)), Some(m)) if m == "new-flows" => (n, true),
        _ => {
            eprintln!("usage: fast-path PACKETS [new-flows] (rounded down to whole bursts)");
            return ExitCode::from(2);
        }
    };
    let mut w = rvs_bench::one_service_worker(FwdMethod::Route, true);
    let spec = FrameSpec {
        size: 64,
        udp: false,
        dst_mac: rvs_bench::ONE_SERVICE_MAC,
        vip: IpAddr::V4(rvs_bench::ONE_SERVICE_VIP),
    };
    for flow in 0..FLOWS as u64 {
        let (caddr, cport) = frames::client(spec.vip, flow);
        let mut syn = frames::frame_to(&spec, caddr, cport, 80, 0, frames::SYN);
        if w.handle(0, &mut syn, 1) != Verdict::Tx(0) {
            eprintln!("fast-path: flow {flow}'s SYN was not forwarded");
            return ExitCode::FAILURE;
        }
    }
    let frames: Vec<Vec<u8>> = if new_flows {
        let bare = |flow, flags| {
            let (caddr, cport) = frames::client(spec.vip, flow);
            frames::frame_to(&spec, caddr, cport, 80, 0, flags)
        };
        let syns = (0..FLOWS as u64).map(|flow| bare(flow, frames::SYN));
        let fins = (0..FLOWS as u64).map(|flow| bare(flow, frames::FIN | frames::ACK));
        let frames: Vec<Vec<u8>> = syns.chain(fins).collect();
        // One round first, so that every SYN measured finds a connection
        // in TIME_WAIT, as in the benchmark's steady state.
        for f in &frames {
            if w.handle(0, &mut f.clone(), 1) != Verdict::Tx(0) {
                eprintln!("fast-path: a new-flow round's packet was not forwarded");
                return ExitCode::FAILURE;
            }
        }
        frames
    } else {
        let acks = AckFrames::new(&spec, 80);
        (0..FLOWS as u64)
            .map(|flow| {
                let mut f = vec![0; acks.len()];
                acks.write(flow, &mut f);
                f
            })
            .collect()
    };
    let mut burst: Vec<Vec<u8>> = vec![vec![0; frames[0].len()]; PREFETCH_GROUP];
    let mut hints = [None; PREFETCH_GROUP];
    let (mut forwarded, mut next) = (0, 0);
    for _ in 0..packets / PREFETCH_GROUP {
        for b in burst.iter_mut() {
            // The worker trims a bare SYN's or FIN's Ethernet padding.
            b.resize(frames[next].len(), 0);
            b.copy_from_slice(&frames[next]);
            next = (next + 1) % frames.len();
        }
        w.prefetch_burst(&burst, &mut hints);
        for (b, hint) in burst.iter_mut().zip(hints) {
            if std::hint::black_box(w.handle_hinted(0, b, 2, hint)) == Verdict::Tx(0) {
                forwarded += 1;
            }
        }
    }
    let whole = packets / PREFETCH_GROUP * PREFETCH_GROUP;
    println!("{forwarded} of {whole} packets forwarded");
    if forwarded == whole {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
