//! What one feature costs per established DR packet, measured so that a
//! busy, shared machine does not drown a difference of a few per cent: two
//! workers, the feature on in one and off in the other, take turns in short
//! blocks of packets (alternating which goes first), and each keeps its
//! fastest block. Other processes and interrupts only ever add time to a
//! block, so the minimum is the undisturbed cost. Everything is in cache, as
//! in `cargo bench -p rvs-bench`'s "handle DR" rows.
//!
//! - `counting`: the traffic counters (`[stats] enabled`).
//! - `exception`: the port's kernel interface (`[[port]] kernel_interface`).
//!   The poll loop's part (a look at the tap every 100 µs, which net_tap
//!   answers without a system call while the kernel sent nothing) is outside
//!   this measurement; `cargo xtask bench --exception-cost` measures both.
//!
//!     cargo run --release -p rvs-bench --bin handle-cost -- counting|exception [BLOCKS]

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use rvs_bench::one_service_worker_on;
use rvs_dataplane::{Verdict, Worker};
use rvs_ipvs::FwdMethod;
use rvs_packet::fixtures;

const PACKETS_PER_BLOCK: u32 = 2000;

fn block(w: &mut Worker, ack: &[u8], buf: &mut Vec<u8>) -> f64 {
    let t = Instant::now();
    for _ in 0..PACKETS_PER_BLOCK {
        buf.copy_from_slice(ack);
        black_box(w.handle(0, buf, 2));
    }
    t.elapsed().as_nanos() as f64 / PACKETS_PER_BLOCK as f64
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    // (what, worker with the feature on, worker with it off)
    let (what, on, off) = match args.next().as_deref() {
        Some("counting") => (
            "counting",
            one_service_worker_on(FwdMethod::Route, true, false),
            one_service_worker_on(FwdMethod::Route, false, false),
        ),
        Some("exception") => (
            "kernel interface",
            one_service_worker_on(FwdMethod::Route, true, true),
            one_service_worker_on(FwdMethod::Route, true, false),
        ),
        _ => {
            eprintln!("usage: handle-cost counting|exception [BLOCKS]");
            return ExitCode::from(2);
        }
    };
    let blocks: u32 = match args.next().map(|a| a.parse()) {
        None => 4000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("handle-cost: BLOCKS is a number above 0");
            return ExitCode::from(2);
        }
    };
    let mut workers = [on, off];
    for w in &mut workers {
        let mut syn = fixtures::TCP_SYN.to_vec();
        assert_eq!(w.handle(0, &mut syn, 1), Verdict::Tx(0));
    }
    let ack = fixtures::TCP_ACK_DATA.to_vec();
    let mut buf = ack.clone();
    let mut best = [f64::MAX; 2];
    for b in 0..blocks {
        let order = if b % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            best[i] = best[i].min(block(&mut workers[i], &ack, &mut buf));
        }
    }
    let [on, off] = best;
    println!(
        "established DR packet, fastest of {blocks} blocks of {PACKETS_PER_BLOCK}: \
{what} on {on:.2} ns, off {off:.2} ns: {:+.2} ns ({:+.1} %)",
        on - off,
        (on / off - 1.0) * 100.0
    );
    ExitCode::SUCCESS
}
