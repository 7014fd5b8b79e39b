//! Traffic counters as the kernel keeps them (`struct ip_vs_stats`: conns,
//! inpkts, outpkts, inbytes, outbytes) and its rate estimator
//! (`net/netfilter/ipvs/ip_vs_est.c`).
//!
//! Where they are counted: each real server ("dest") has one cache line of
//! counters per worker ([`DestStats`], a [`Lane`] each). A worker writes only
//! its own lane, with a relaxed load and store (no locked instruction, no
//! line shared with another writer), and the control thread sums the lanes
//! when it reads them. The kernel also counts per service and in total; here
//! those are sums the control thread forms over the dests (every packet the
//! kernel counts goes to a dest, its service and the total together), so an
//! established packet touches one extra cache line, not three.

use std::ops::{Add, AddAssign, Sub};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A counter with a single writer: an increment is a relaxed load and store,
/// which other threads may read at any time.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
}

/// One worker's counters of one dest: a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct Lane {
    pub conns: Counter,
    pub inpkts: Counter,
    pub outpkts: Counter,
    pub inbytes: Counter,
    pub outbytes: Counter,
}

impl Lane {
    /// A packet from the client side (`ip_vs_in_stats`); `bytes` is its IP
    /// length, as the kernel's `skb->len` at the hook.
    #[inline]
    pub fn count_in(&self, bytes: u64) {
        self.inpkts.inc();
        self.inbytes.add(bytes);
    }

    /// A reply that passes the director (`ip_vs_out_stats`: NAT, ICMP).
    #[inline]
    pub fn count_out(&self, bytes: u64) {
        self.outpkts.inc();
        self.outbytes.add(bytes);
    }

    /// A new connection (`ip_vs_conn_stats`).
    #[inline]
    pub fn count_conn(&self) {
        self.conns.inc();
    }

    pub fn snapshot(&self) -> Stats {
        Stats {
            conns: self.conns.get(),
            inpkts: self.inpkts.get(),
            outpkts: self.outpkts.get(),
            inbytes: self.inbytes.get(),
            outbytes: self.outbytes.get(),
        }
    }
}

/// A dest's counters: one [`Lane`] per worker, shared by every replica of
/// the dest and every connection bound to it.
#[derive(Debug, Clone)]
pub struct DestStats(Arc<[Lane]>);

impl DestStats {
    /// Counters for `lanes` workers (at least one).
    pub fn new(lanes: usize) -> DestStats {
        DestStats((0..lanes.max(1)).map(|_| Lane::default()).collect())
    }

    /// Worker `i`'s lane; none if there is no such worker.
    #[inline]
    pub fn lane(&self, i: usize) -> Option<&Lane> {
        self.0.get(i)
    }

    pub fn lanes(&self) -> &[Lane] {
        &self.0
    }

    /// The lanes summed: what the kernel's per-CPU summing gives.
    pub fn sum(&self) -> Stats {
        self.0
            .iter()
            .map(Lane::snapshot)
            .fold(Stats::default(), Add::add)
    }

    pub fn ptr_eq(&self, other: &DestStats) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether this is the last handle on the counters (nothing counts
    /// into them any more).
    pub fn is_unshared(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

/// The five counters of `struct ip_vs_kstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Add for Stats {
    type Output = Stats;
    fn add(self, o: Stats) -> Stats {
        Stats {
            conns: self.conns.wrapping_add(o.conns),
            inpkts: self.inpkts.wrapping_add(o.inpkts),
            outpkts: self.outpkts.wrapping_add(o.outpkts),
            inbytes: self.inbytes.wrapping_add(o.inbytes),
            outbytes: self.outbytes.wrapping_add(o.outbytes),
        }
    }
}

impl AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        *self = *self + o;
    }
}

/// Wrapping, as the kernel's `kstats - kstats0`.
impl Sub for Stats {
    type Output = Stats;
    fn sub(self, o: Stats) -> Stats {
        Stats {
            conns: self.conns.wrapping_sub(o.conns),
            inpkts: self.inpkts.wrapping_sub(o.inpkts),
            outpkts: self.outpkts.wrapping_sub(o.outpkts),
            inbytes: self.inbytes.wrapping_sub(o.inbytes),
            outbytes: self.outbytes.wrapping_sub(o.outbytes),
        }
    }
}

/// Rates per second as `ip_vs_read_estimator` decodes them: connections,
/// packets in and out, bytes in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// `struct ip_vs_estimator`: an exponentially weighted moving average of
/// the rates over 2-second intervals, avg += (rate - avg) / 4, kept scaled
/// (2^10 for connections and packets, 2^5 for bytes) in the kernel's
/// integers, so that the same counter series gives the same figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    cps: u64,
    inpps: u64,
    outpps: u64,
    inbps: u64,
    outbps: u64,
}

/// One EWMA step: `avg += ((s64)rate - (s64)avg) >> 2`, with the kernel's
/// wrapping 64-bit arithmetic and arithmetic shift.
fn ewma(avg: u64, rate: u64) -> u64 {
    avg.wrapping_add(((rate as i64).wrapping_sub(avg as i64) >> 2) as u64)
}

impl Estimator {
    /// The kernel's estimation timer period.
    pub const TICK: Duration = Duration::from_secs(2);

    /// An estimator whose counters stand at `now` (a new object: zeros).
    pub fn new(now: Stats) -> Estimator {
        Estimator {
            last: now,
            ..Estimator::default()
        }
    }

    /// One timer tick over the current counters (`estimation_timer`):
    /// connections and packets are scaled by 2^10 and bytes by 2^5, each
    /// delta covering two seconds (hence the shifts by 9 and 4).
    pub fn tick(&mut self, now: Stats) {
        let d = now - self.last;
        self.last = now;
        self.cps = ewma(self.cps, d.conns << 9);
        self.inpps = ewma(self.inpps, d.inpkts << 9);
        self.outpps = ewma(self.outpps, d.outpkts << 9);
        self.inbps = ewma(self.inbps, d.inbytes << 4);
        self.outbps = ewma(self.outbps, d.outbytes << 4);
    }

    /// The rates, rounded as `ip_vs_read_estimator` rounds them.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: self.cps.wrapping_add(0x1FF) >> 10,
            inpps: self.inpps.wrapping_add(0x1FF) >> 10,
            outpps: self.outpps.wrapping_add(0x1FF) >> 10,
            inbps: self.inbps.wrapping_add(0xF) >> 5,
            outbps: self.outbps.wrapping_add(0xF) >> 5,
        }
    }

    /// `ip_vs_zero_estimator`: the averages restart from zero and the next
    /// tick measures from the counters as they stand at `now`.
    pub fn zero(&mut self, now: Stats) {
        *self = Estimator::new(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's estimator transcribed literally (C semantics on i64 and
    /// u64), to compare against on synthetic series.
    struct KernelEst {
        last_conns: u64,
        last_inbytes: u64,
        cps: u64,
        inbps: u64,
    }

    impl KernelEst {
        fn timer(&mut self, conns: u64, inbytes: u64) {
            let rate = (conns - self.last_conns) << 9;
            self.last_conns = conns;
            self.cps = (self.cps as i64 + ((rate as i64 - self.cps as i64) >> 2)) as u64;
            let rate = (inbytes - self.last_inbytes) << 4;
            self.last_inbytes = inbytes;
            self.inbps = (self.inbps as i64 + ((rate as i64 - self.inbps as i64) >> 2)) as u64;
        }

        fn read(&self) -> (u64, u64) {
            ((self.cps + 0x1FF) >> 10, (self.inbps + 0xF) >> 5)
        }
    }

    fn stats(conns: u64, inbytes: u64) -> Stats {
        Stats {
            conns,
            inbytes,
            ..Stats::default()
        }
    }

    #[test]
    fn matches_the_kernel_formulas_tick_by_tick() {
        // Ramp up, hold, burst, stop: every step of the series, including
        // the falling ones where the shift of a negative difference rounds
        // towards minus infinity.
        let per_tick: Vec<(u64, u64)> = [(0, 0), (7, 700), (200, 30_000), (200, 30_000)]
            .into_iter()
            .chain((0..10).map(|i| (1000 + i, 1_500_000 + 3 * i)))
            .chain([(5, 40), (0, 0), (0, 0), (1, 1), (0, 0)])
            .chain((0..80).map(|_| (0, 0)))
            .collect();
        let mut k = KernelEst {
            last_conns: 0,
            last_inbytes: 0,
            cps: 0,
            inbps: 0,
        };
        let mut e = Estimator::default();
        let (mut conns, mut bytes) = (0u64, 0u64);
        for (dc, db) in per_tick {
            conns += dc;
            bytes += db;
            k.timer(conns, bytes);
            e.tick(stats(conns, bytes));
            let r = e.rates();
            assert_eq!((r.cps, r.inbps), k.read(), "after +{dc} conns, +{db} bytes");
        }
        // Quiet ticks bring it down to exactly zero (the shift of a negative
        // difference rounds down), as in the kernel.
        assert_eq!(e.rates(), Rates::default());
    }

    #[test]
    fn a_steady_rate_converges_as_one_minus_three_quarters_to_the_n() {
        // 100 connections and 1 MB a second: after n ticks the average is
        // rate * (1 - (3/4)^n), within the kernel's integer rounding.
        let mut e = Estimator::default();
        let mut now = Stats::default();
        for n in 1..=30 {
            now.conns += 200;
            now.inpkts += 2000;
            now.inbytes += 2_000_000;
            e.tick(now);
            let want = 1.0 - 0.75f64.powi(n);
            let r = e.rates();
            assert!((r.cps as f64 - 100.0 * want).abs() <= 1.0, "n={n} {r:?}");
            assert!((r.inpps as f64 - 1000.0 * want).abs() <= 1.0, "n={n} {r:?}");
            assert!(
                (r.inbps as f64 - 1e6 * want).abs() <= 1e6 * 1e-4,
                "n={n} {r:?}"
            );
        }
        assert_eq!(e.rates().cps, 100);
    }

    #[test]
    fn zero_restarts_the_average_from_the_current_counters() {
        let mut e = Estimator::default();
        let mut now = stats(0, 0);
        for _ in 0..5 {
            now.conns += 20;
            e.tick(now);
        }
        assert!(e.rates().cps > 5);
        e.zero(now);
        assert_eq!(e.rates(), Rates::default());
        // The next tick sees only what came after the zeroing.
        now.conns += 2;
        e.tick(now);
        // One connection a second, a quarter of it after one tick: 256/1024
        // rounds to zero in the kernel's decoding.
        assert_eq!(e.rates().cps, 0);
        for _ in 0..10 {
            now.conns += 2;
            e.tick(now);
        }
        assert_eq!(e.rates().cps, 1);
    }

    #[test]
    fn lanes_are_cache_lines_and_sum() {
        assert_eq!(std::mem::size_of::<Lane>(), 64);
        assert_eq!(std::mem::align_of::<Lane>(), 64);
        let s = DestStats::new(3);
        s.lane(0).unwrap().count_in(100);
        s.lane(2).unwrap().count_in(60);
        s.lane(2).unwrap().count_out(40);
        s.lane(1).unwrap().count_conn();
        assert!(s.lane(3).is_none());
        assert_eq!(
            s.sum(),
            Stats {
                conns: 1,
                inpkts: 2,
                outpkts: 1,
                inbytes: 160,
                outbytes: 40
            }
        );
        let lanes = s.lanes();
        let a = &lanes[0] as *const Lane as usize;
        let b = &lanes[1] as *const Lane as usize;
        assert_eq!(b - a, 64);
        assert_eq!(a % 64, 0);
    }
}
