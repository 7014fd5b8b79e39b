//! What the traffic counters cost per established DR packet, measured so
//! that a busy, shared machine does not drown a difference of a few per
//! cent: two workers, one counting and one not, take turns in short blocks
//! of packets (alternating which goes first), and each keeps its fastest
//! block. Other processes and interrupts only ever add time to a block, so
//! the minimum is the undisturbed cost. Everything is in cache, as in
//! `cargo bench -p rvs-bench`'s "handle DR" rows.
//!
//!     cargo run --release -p rvs-bench --bin counting-cost [-- BLOCKS]

use std::hint::black_box;
use std::time::Instant;

use rvs_bench::one_service_worker;
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
        one_service_worker(FwdMethod::Route, true),
        one_service_worker(FwdMethod::Route, false),
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
counting on {on:.2} ns, off {off:.2} ns: +{:.2} ns ({:+.1} %)",
        on - off,
        (on / off - 1.0) * 100.0
    );
}
