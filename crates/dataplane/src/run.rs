//! The poll loop of one worker lcore: rx burst → handle → tx burst, with
//! control messages applied between bursts, packets handed between workers
//! through rings, and an idle back-off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use dpdk::{Mbuf, Mempool, RingConsumer, RingProducer, RxQueue, TxQueue, MAX_BURST};

use crate::counters::DropReason;
use crate::worker::{Verdict, Worker, WorkerMsg, PREFETCH_GROUP};
use rvs_ipvs::conn::SlotHint;

/// This worker's queue pair on one port.
pub struct PortQueues {
    pub rx: RxQueue,
    pub tx: TxQueue,
    /// This worker's queue pair on the port's kernel interface (the
    /// exception path), when it has one.
    pub kernel: Option<KernelQueues>,
}

/// A worker's queues on a port's kernel interface (a tap): frames for the
/// director's kernel go out of `tx`, frames the kernel sends come in on
/// `rx`. Each worker has its own pair, so no lock is taken.
pub struct KernelQueues {
    pub rx: RxQueue,
    pub tx: TxQueue,
}

/// How often a worker looks for frames from its kernel interfaces. The
/// kernel sends little (its own sessions, ARP). net_tap reads its file
/// descriptors only after the kernel signalled it (SIGIO), so an empty look
/// makes no system call (a busy-polling worker was seen to make none in
/// 2 s); pacing the looks leaves the fast path one time comparison per
/// pass, and adds at most 0.1 ms to a frame the kernel sends. A full burst
/// is followed by another look at once.
pub const KERNEL_POLL_INTERVAL: Duration = Duration::from_micros(100);

/// Rings between workers: this worker's inbox, and every worker's inbox to
/// hand packets to (indexed by worker id). A worker that hands frames over
/// rings the peer's doorbell once per pass, which ends the peer's nap.
pub struct Handover {
    pub inbox: RingConsumer,
    pub peers: Vec<RingProducer>,
}

#[derive(Debug, Clone, Copy)]
pub struct IdleBackoff {
    /// Consecutive empty polls before the worker starts sleeping (it yields
    /// the CPU after each empty poll until then); 0 disables the back-off
    /// (pure busy polling, as on a dedicated core).
    pub empty_polls: u32,
    /// The first nap; each further nap in a row doubles, up to `max_sleep`
    /// (an idle worker then wakes a thousand times a second, not ten
    /// thousand: in a VM each wake-up costs tens of microseconds).
    pub sleep: Duration,
    pub max_sleep: Duration,
    /// Also record each non-empty pass's time in an hdrhistogram
    /// (benchmarks; the fixed-bucket histogram is always kept).
    #[cfg(feature = "burst-histogram")]
    pub record_bursts: bool,
    /// A test hook: in debug builds the worker panics this long after its
    /// loop starts (rvsd sets it from `RVSD_TEST_WORKER_PANIC_MS`, to show
    /// that a worker's panic stops rvsd cleanly). Release builds ignore it.
    pub panic_after: Option<Duration>,
}

/// Marks the worker's end in its shared state, however the loop ends.
struct ExitMark(Arc<crate::worker::WorkerShared>);

impl Drop for ExitMark {
    fn drop(&mut self) {
        self.0.exited.store(true, Ordering::Release);
    }
}

/// What a loop iteration sends: per port, the mbufs to transmit, and
/// those for the port's kernel interface.
struct Out {
    tx: Vec<Vec<Mbuf>>,
    kernel: Vec<Vec<Mbuf>>,
    /// Per peer worker: frames were handed to it this pass (its doorbell
    /// is rung once, after the pass's hand-overs). Empty when workers
    /// busy-poll: none ever sleeps, so no doorbell is rung (each ring
    /// costs a full fence).
    handed: Vec<bool>,
}

impl Out {
    /// Hands `m` to worker `w` through its ring, noted for its doorbell.
    /// False when there is no such ring or it is full: `m` is then freed.
    fn hand_to(&mut self, handover: &Option<Handover>, w: usize, m: Mbuf) -> bool {
        let Some(p) = handover.as_ref().and_then(|h| h.peers.get(w)) else {
            return false;
        };
        let sent = p.enqueue(m).is_ok();
        if sent {
            if let Some(h) = self.handed.get_mut(w) {
                *h = true;
            }
        }
        sent
    }

    /// Rings the doorbell of each peer handed frames this pass.
    fn ring_doorbells(&mut self, handover: &Option<Handover>) {
        let Some(h) = handover else { return };
        for (p, handed) in h.peers.iter().zip(self.handed.iter_mut()) {
            if std::mem::take(handed) {
                p.ring_doorbell();
            }
        }
    }

    /// Handles one frame (`handed_in`: from another worker's hand-over) and
    /// queues it for sending, hands it over, or lets it go.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        worker: &mut Worker,
        handover: &Option<Handover>,
        pi: usize,
        mut m: Mbuf,
        now_ms: u64,
        hint: Option<SlotHint>,
        handed_in: bool,
    ) {
        if m.is_chained() {
            worker.shared().counters.drop(DropReason::MultiSegment);
            return;
        }
        let v = if handed_in {
            worker.handle_handed_over(pi, &mut m, now_ms, hint)
        } else {
            worker.handle_hinted(pi, &mut m, now_ms, hint)
        };
        match v {
            Verdict::Tx(out) => self.tx[out].push(m),
            Verdict::Redirect(w) => {
                if !self.hand_to(handover, w, m) {
                    worker.shared().counters.drop(DropReason::RedirectFull);
                }
            }
            Verdict::ToKernel => self.kernel[pi].push(m),
            Verdict::Consumed | Verdict::Drop(_) => {}
        }
    }
}

/// A worker's packet buffers.
#[derive(Clone)]
pub struct Pools {
    /// What its ports receive into (and handed-over frames are copied to).
    pub rx: Arc<Mempool>,
    /// The frames it makes itself (ARP, ICMP errors, sync messages,
    /// fragments): in a pool of their own with room for a full frame, so
    /// that they fit whatever the receive pool's data room (benchmarks
    /// use small ones) and never take the buffers traffic needs.
    pub generated: Arc<Mempool>,
}

/// Runs until `stop` is set. Returns 0, as lcore functions do.
pub fn run_worker(
    mut worker: Worker,
    mut queues: Vec<PortQueues>,
    mut handover: Option<Handover>,
    msgs: Receiver<WorkerMsg>,
    pools: Pools,
    stop: Arc<AtomicBool>,
    idle: IdleBackoff,
) -> i32 {
    let pool = &pools.rx;
    let shared = worker.shared().clone();
    let _exit = ExitMark(shared.clone());
    let counters = &shared.counters;
    #[cfg(debug_assertions)]
    let panic_at = idle.panic_after.map(|d| std::time::Instant::now() + d);
    // DPDK port id → index among this worker's ports (for handed-over mbufs).
    let mut port_index = vec![
        usize::MAX;
        1 + queues
            .iter()
            .map(|q| q.rx.port_id() as usize)
            .max()
            .unwrap_or(0)
    ];
    for (i, q) in queues.iter().enumerate() {
        port_index[q.rx.port_id() as usize] = i;
    }
    let mut rx: Vec<Mbuf> = Vec::with_capacity(PREFETCH_GROUP);
    // What the burst stage found for each packet of `rx`.
    let mut hints = [None; PREFETCH_GROUP];
    let mut out = Out {
        tx: (0..queues.len())
            .map(|_| Vec::with_capacity(2 * MAX_BURST))
            .collect(),
        kernel: (0..queues.len()).map(|_| Vec::new()).collect(),
        handed: match &handover {
            Some(h) if idle.empty_polls > 0 => vec![false; h.peers.len()],
            _ => Vec::new(),
        },
    };
    let mut from_kernel: Vec<Mbuf> = Vec::with_capacity(MAX_BURST);
    let has_kernel = queues.iter().any(|q| q.kernel.is_some());
    let mut next_kernel_poll = std::time::Instant::now();
    let mut empty = 0u32;
    let mut nap = idle.sleep;
    // Naps end at the first frame on queues whose driver allows it.
    let mut rx_wait = dpdk::RxWait::new(
        &queues.iter().map(|q| &q.rx).collect::<Vec<_>>(),
        handover.as_ref().map(|h| &h.inbox),
    );
    #[cfg(feature = "burst-histogram")]
    let mut bursts = idle.record_bursts.then(|| {
        // 1 ns to 10 s at 3 significant digits; saturating beyond.
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("valid bounds")
    });
    // The clock is read once per pass, at its start: that reading is the
    // pass's time (now_ms) and ends the previous pass, whose duration goes
    // into the burst histogram if it moved packets (it then never napped).
    // So the histogram costs no clock read of its own.
    let mut pass_start = std::time::Instant::now();
    let mut moved = false;
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::Instant::now();
        if moved {
            let ns = now.saturating_duration_since(pass_start).as_nanos() as u64;
            shared.bursts.record(ns);
            #[cfg(feature = "burst-histogram")]
            if let Some(h) = bursts.as_mut() {
                h.saturating_record(ns);
            }
        }
        pass_start = now;
        #[cfg(debug_assertions)]
        if panic_at.is_some_and(|t| now >= t) {
            panic!("injected worker panic (RVSD_TEST_WORKER_PANIC_MS)");
        }
        let now_ms = rvs_ipvs::clock::ms_at(now);
        while let Ok(m) = msgs.try_recv() {
            worker.apply(&m, now_ms);
            if !matches!(m, WorkerMsg::Synced(_) | WorkerMsg::SyncMaster(_)) {
                shared.applied.fetch_add(1, Ordering::Release);
            }
        }
        worker.refresh_neighbours();
        let mut got = 0;
        if let Some(h) = handover.as_mut() {
            got += h.inbox.dequeue_burst(&mut rx);
            worker.prefetch_burst(&rx, &mut hints);
        }
        for (m, hint) in rx
            .drain(..)
            .zip(hints.into_iter().chain(std::iter::repeat(None)))
        {
            match port_index.get(m.port() as usize) {
                Some(&pi) if pi != usize::MAX => {
                    out.dispatch(&mut worker, &handover, pi, m, now_ms, hint, true)
                }
                _ => {
                    counters.redirected_in.inc();
                    counters.drop(DropReason::NotOurMac)
                }
            }
        }
        for (pi, q) in queues.iter_mut().enumerate() {
            while q.rx.rx_burst(&mut rx) == MAX_BURST && rx.len() < PREFETCH_GROUP {}
            got += rx.len();
            worker.prefetch_burst(&rx, &mut hints);
            for (m, hint) in rx
                .drain(..)
                .zip(hints.into_iter().chain(std::iter::repeat(None)))
            {
                out.dispatch(&mut worker, &handover, pi, m, now_ms, hint, false);
            }
        }
        // Frames from the kernel go out of their port unchanged, paced
        // (see KERNEL_POLL_INTERVAL).
        if has_kernel && now >= next_kernel_poll {
            let mut more = false;
            for (pi, q) in queues.iter_mut().enumerate() {
                let Some(k) = q.kernel.as_mut() else {
                    continue;
                };
                let n = k.rx.rx_burst(&mut from_kernel);
                more |= n == MAX_BURST;
                got += n;
                counters.from_kernel.add(n as u64);
                for m in from_kernel.drain(..) {
                    if m.is_chained() {
                        counters.drop(DropReason::MultiSegment);
                    } else {
                        worker.sent_by_kernel(m.data(), now_ms);
                        out.tx[pi].push(m);
                    }
                }
            }
            next_kernel_poll = if more {
                now
            } else {
                now + KERNEL_POLL_INTERVAL
            };
        }
        // Fragments that waited for their first, whose connection another
        // worker owns: copied into mbufs as if they had just arrived.
        for (w, pi, bytes) in worker.handed_over.drain(..) {
            let copied = pool.alloc().and_then(|mut m| {
                m.append(bytes.len())?.copy_from_slice(&bytes);
                m.set_port(queues[pi].rx.port_id());
                Some(m)
            });
            match copied {
                None => counters.drop(DropReason::NoMbuf),
                Some(m) => {
                    if !out.hand_to(&handover, w, m) {
                        counters.drop(DropReason::RedirectFull);
                    }
                }
            }
        }
        out.ring_doorbells(&handover);
        for (port, bytes) in worker.generated.drain(..).chain(worker.sent.drain(..)) {
            match pools.generated.alloc() {
                Some(mut m) => match m.append(bytes.len()) {
                    Some(buf) => {
                        buf.copy_from_slice(&bytes);
                        out.tx[port].push(m);
                    }
                    None => counters.drop(DropReason::NoMbuf),
                },
                None => counters.drop(DropReason::NoMbuf),
            }
        }
        for (pi, q) in queues.iter_mut().enumerate() {
            let n = out.tx[pi].len();
            if n > 0 {
                let sent = q.tx.tx_burst(&mut out.tx[pi]);
                counters.tx_packets.add(sent as u64);
                for _ in sent..n {
                    counters.drop(DropReason::TxFull);
                }
            }
        }
        // Frames for the kernel: what its queue does not take is dropped,
        // never waited for.
        for (pi, q) in queues.iter_mut().enumerate() {
            let n = out.kernel[pi].len();
            if n == 0 {
                continue;
            }
            match q.kernel.as_mut() {
                Some(k) => {
                    let sent = k.tx.tx_burst(&mut out.kernel[pi]);
                    counters.to_kernel.add(sent as u64);
                    for _ in sent..n {
                        counters.drop(DropReason::KernelFull);
                    }
                }
                None => {
                    out.kernel[pi].clear();
                    for _ in 0..n {
                        counters.drop(DropReason::ToDirector);
                    }
                }
            }
        }
        moved = got > 0;
        worker.housekeeping(now_ms);
        worker.list_some(now_ms);
        if got == 0 && !worker.is_listing() {
            empty = empty.saturating_add(1);
            if idle.empty_polls > 0 {
                if empty >= idle.empty_polls {
                    counters.idle_sleeps.inc();
                    // The first nap of a lull is a plain one: under steady
                    // traffic, frames gather meanwhile and are handled in
                    // one pass (a NIC's interrupt coalescing), where waking
                    // at each frame cost a context switch per frame. The
                    // longer naps after it end at the first frame.
                    if nap > idle.sleep {
                        if rx_wait.wait(nap) {
                            counters.idle_woken.inc();
                        }
                    } else {
                        std::thread::sleep(nap);
                    }
                    nap = (nap * 2).min(idle.max_sleep.max(idle.sleep));
                } else {
                    // On a CPU shared with other work (containers, labs),
                    // let whatever else is runnable go first; alone on its
                    // CPU the worker is straight back.
                    std::thread::yield_now();
                }
            }
        } else {
            empty = 0;
            nap = idle.sleep;
        }
    }
    #[cfg(feature = "burst-histogram")]
    if let Ok(mut slot) = shared.burst_ns.lock() {
        *slot = bursts;
    }
    0
}
