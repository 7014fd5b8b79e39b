//! What the exception path costs per established DR packet: the same
//! method as `counting-cost` (two workers, the port's kernel interface on in
//! one and off in the other, taking turns in short blocks; each keeps its
//! fastest block, which other processes can only slow down). The poll
//! loop's part (a look at the tap every 100 µs, which net_tap answers
//! without a system call while the kernel sent nothing) is outside this
//! measurement; `cargo xtask bench --exception-cost` measures both at once.
//!
//!     cargo run --release -p rvs-bench --bin exception-cost [-- BLOCKS]

use std::hint::black_box;
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

fn main() {
    let blocks: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4000);
    let mut workers = [
        one_service_worker_on(FwdMethod::Route, true, true),
        one_service_worker_on(FwdMethod::Route, true, false),
    ];
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
kernel interface on {on:.2} ns, off {off:.2} ns: {:+.2} ns ({:+.1} %)",
        on - off,
        (on / off - 1.0) * 100.0
    );
}
