//! The poll loop of one worker lcore: rx burst → handle → tx burst, with
//! control messages applied between bursts and an idle back-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use dpdk::{Mbuf, Mempool, RxQueue, TxQueue, MAX_BURST};

use crate::counters::DropReason;
use crate::worker::{Verdict, Worker, WorkerMsg};

/// This worker's queue pair on one port.
pub struct PortQueues {
    pub rx: RxQueue,
    pub tx: TxQueue,
}

#[derive(Debug, Clone, Copy)]
pub struct IdleBackoff {
    /// Consecutive empty polls before the worker starts sleeping; 0 disables
    /// the back-off (pure busy polling, as on a dedicated core).
    pub empty_polls: u32,
    pub sleep: Duration,
}

/// Runs until `stop` is set. Returns 0, as lcore functions do.
pub fn run_worker(
    mut worker: Worker,
    mut queues: Vec<PortQueues>,
    msgs: Receiver<WorkerMsg>,
    pool: Arc<Mempool>,
    stop: Arc<AtomicBool>,
    idle: IdleBackoff,
) -> i32 {
    let shared = worker.shared().clone();
    let counters = &shared.counters;
    let mut rx: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);
    let mut tx: Vec<Vec<Mbuf>> = (0..queues.len())
        .map(|_| Vec::with_capacity(2 * MAX_BURST))
        .collect();
    let mut empty = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let now_ms = rvs_ipvs::clock::now_ms();
        while let Ok(m) = msgs.try_recv() {
            worker.apply(&m, now_ms);
            shared.applied.fetch_add(1, Ordering::Release);
        }
        let mut got = 0;
        for (pi, q) in queues.iter_mut().enumerate() {
            got += q.rx.rx_burst(&mut rx);
            for mut m in rx.drain(..) {
                if m.is_chained() {
                    counters.drop(DropReason::MultiSegment);
                    continue;
                }
                if let Verdict::Tx(out) = worker.handle(pi, &mut m, now_ms) {
                    tx[out].push(m);
                }
            }
        }
        for (port, bytes) in worker.generated.drain(..) {
            match pool.alloc() {
                Some(mut m) => match m.append(bytes.len()) {
                    Some(buf) => {
                        buf.copy_from_slice(&bytes);
                        tx[port].push(m);
                    }
                    None => counters.drop(DropReason::NoMbuf),
                },
                None => counters.drop(DropReason::NoMbuf),
            }
        }
        for (pi, q) in queues.iter_mut().enumerate() {
            let n = tx[pi].len();
            if n > 0 {
                let sent = q.tx.tx_burst(&mut tx[pi]);
                counters.tx_packets.add(sent as u64);
                for _ in sent..n {
                    counters.drop(DropReason::TxFull);
                }
            }
        }
        worker.housekeeping(now_ms);
        if got == 0 {
            empty = empty.saturating_add(1);
            if idle.empty_polls > 0 && empty >= idle.empty_polls {
                counters.idle_sleeps.inc();
                std::thread::sleep(idle.sleep);
            }
        } else {
            empty = 0;
        }
    }
    0
}
