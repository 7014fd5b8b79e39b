//! Locality-based least connection (`ip_vs_lblc.c`): a cache maps each
//! destination address of the traffic to a dest, so that one address keeps
//! going to one server (built for cache clusters).
//!
//! Why this file is long (about 550 lines): the scheduler is about 280
//! lines; the rest is its tests.
//!
//! Scheduling: look `daddr` up in the cache (1024 buckets,
//! `hash_32(fold(daddr), 10)`). On a hit the entry's last use becomes now,
//! and its dest is returned if it is still in the service, has weight > 0
//! and is not overloaded *in lblc's sense*: `activeconns > weight` while
//! some dest of the service has `activeconns * 2 < weight`. (The kernel does
//! not look at the threshold OVERLOAD flag on this path, so neither does
//! this.) Otherwise the dest is chosen as wlc does (first dest that is not
//! overloaded with weight > 0, then strict `overhead * weight` cross
//! comparison over the later non-overloaded ones) and the entry is created
//! or re-pointed at it.
//!
//! Aging is the kernel's periodic timer, replayed lazily from `now_ms` when
//! [`Scheduler::schedule`] runs: one tick every 60 s after the first call.
//! Every 30th tick (counted only while the table holds at most 16384
//! entries) is a full check that drops entries unused for `lblc_expiration`
//! (24 h). A tick that finds more than 16384 entries instead walks the
//! buckets from a rover, dropping entries unused for 6 min until
//! `(entries - 16384) * 4 / 3` (at most 8192) are gone. So with fewer
//! entries than that, an entry idle for 6 min is *not* dropped.
//!
//! Entries name their dest by [`DestKey`]. The kernel keeps an entry whose
//! dest was deleted (the dest waits in its trash, no longer available): the
//! next lookup reschedules, unless the dest was added back first, in which
//! case it is used again. Resolving the key against the current list gives
//! the same, so removals leave the cache alone.

use std::net::IpAddr;

use super::hash::{fold, hash_32};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;
use crate::types::DestKey;

/// `CONFIG_IP_VS_LBLC_TAB_BITS` (and lblcr's), default 10.
const TAB_BITS: u32 = 10;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: usize = TAB_SIZE - 1;
/// Above this many entries a tick drops entries idle for [`ENTRY_TIMEOUT_MS`].
const MAX_SIZE: usize = TAB_SIZE * 16;
pub(super) const CHECK_EXPIRE_INTERVAL_MS: u64 = 60 * 1000;
pub(super) const ENTRY_TIMEOUT_MS: u64 = 6 * 60 * 1000;
/// The default of the `lblc_expiration` / `lblcr_expiration` sysctls.
pub(super) const DEFAULT_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// One cache entry: a destination address and what it maps to.
#[derive(Debug)]
pub(super) struct Entry<V> {
    pub addr: IpAddr,
    pub lastuse: u64,
    pub val: V,
}

/// The hash table and the aging timer shared by lblc and lblcr.
#[derive(Debug)]
pub(super) struct Cache<V> {
    /// Empty until the first insert, then [`TAB_SIZE`] buckets.
    buckets: Vec<Vec<Entry<V>>>,
    entries: usize,
    rover: usize,
    counter: u32,
    /// When the next timer tick is due; None before the first schedule.
    next_tick: Option<u64>,
    /// `lblc_expiration` / `lblcr_expiration`, for the full check.
    pub expiration_ms: u64,
    /// Full checks done so far (lblcr tidies its own records after one).
    pub full_checks: u64,
}

impl<V> Default for Cache<V> {
    fn default() -> Self {
        Cache {
            buckets: Vec::new(),
            entries: 0,
            rover: 0,
            counter: 1,
            next_tick: None,
            expiration_ms: DEFAULT_EXPIRATION_MS,
            full_checks: 0,
        }
    }
}

fn bucket_of(addr: IpAddr) -> usize {
    hash_32(fold(addr), TAB_BITS) as usize
}

impl<V> Cache<V> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn get_mut(&mut self, addr: IpAddr) -> Option<&mut Entry<V>> {
        self.buckets
            .get_mut(bucket_of(addr))?
            .iter_mut()
            .find(|e| e.addr == addr)
    }

    /// Adds an entry for an address that has none.
    pub fn insert(&mut self, addr: IpAddr, now: u64, val: V) {
        if self.buckets.is_empty() {
            self.buckets.resize_with(TAB_SIZE, Vec::new);
        }
        self.buckets[bucket_of(addr)].push(Entry {
            addr,
            lastuse: now,
            val,
        });
        self.entries += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry<V>> {
        self.buckets.iter().flatten()
    }

    /// Drops every entry in bucket `j` unused since `now - timeout`; returns
    /// how many went.
    fn expire_bucket(&mut self, j: usize, now: u64, timeout: u64) -> usize {
        let b = &mut self.buckets[j];
        let before = b.len();
        b.retain(|e| now < e.lastuse.saturating_add(timeout));
        let gone = before - b.len();
        self.entries -= gone;
        gone
    }

    fn full_check(&mut self, now: u64) {
        self.full_checks += 1;
        if self.buckets.is_empty() {
            return;
        }
        // The kernel walks every bucket from rover + 1 round to rover, so
        // the rover does not move.
        for j in 0..TAB_SIZE {
            self.expire_bucket(j, now, self.expiration_ms);
        }
    }

    /// The garbage collection of a tick that finds the table over size.
    fn partial_check(&mut self, now: u64) {
        let mut goal = ((self.entries - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2) as i64;
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & TAB_MASK;
            goal -= self.expire_bucket(j, now, ENTRY_TIMEOUT_MS) as i64;
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }

    /// Runs the timer ticks due by `now`, each at its own time. The first
    /// call starts the timer.
    pub fn advance(&mut self, now: u64) {
        let mut next = *self
            .next_tick
            .get_or_insert(now.saturating_add(CHECK_EXPIRE_INTERVAL_MS));
        while next <= now {
            if self.entries <= MAX_SIZE {
                // Until the table grows (only schedule() adds), each tick
                // either counts or, when the counter reaches 30, runs a full
                // check; later full checks drop a superset of what earlier
                // ones would, so only the last due one needs running.
                let due = (now - next) / CHECK_EXPIRE_INTERVAL_MS + 1;
                let until_full = (COUNT_FOR_FULL_EXPIRATION - self.counter + 1) as u64;
                if due < until_full {
                    self.counter += due as u32;
                } else {
                    let k = (due - until_full) / COUNT_FOR_FULL_EXPIRATION as u64;
                    let last_full = until_full + k * COUNT_FOR_FULL_EXPIRATION as u64;
                    self.full_check(next + (last_full - 1) * CHECK_EXPIRE_INTERVAL_MS);
                    self.full_checks += k;
                    self.counter = 1 + (due - last_full) as u32;
                }
                next += due * CHECK_EXPIRE_INTERVAL_MS;
                break;
            }
            // The kernel tests `counter % 30 == 0`; the counter never
            // passes 30.
            if self.counter == COUNT_FOR_FULL_EXPIRATION {
                self.full_check(next);
                self.counter = 1;
            } else {
                self.partial_check(next);
            }
            next += CHECK_EXPIRE_INTERVAL_MS;
        }
        self.next_tick = Some(next);
    }

    pub fn clear(&mut self) {
        *self = Cache {
            expiration_ms: self.expiration_ms,
            ..Cache::default()
        };
    }
}

/// The kernel's `__ip_vs_lblc_schedule` (the same in lblcr): weighted least
/// connection over the whole list.
pub(super) fn wlc_pick(dests: &[Dest]) -> Option<usize> {
    let first = dests.iter().position(|d| d.is_available())?;
    let mut least = first;
    let mut loh = dests[first].shared.overhead();
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.shared.is_overloaded() {
            continue;
        }
        let doh = d.shared.overhead();
        if loh as u128 * d.weight() as u128 > doh as u128 * dests[least].weight() as u128 {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// lblc's and lblcr's `is_overloaded`: more active connections than its
/// weight while some dest (any, this one included) is under half its
/// weight.
pub(super) fn lblc_overloaded(d: &Dest, dests: &[Dest]) -> bool {
    d.shared.active() > d.weight()
        && dests
            .iter()
            .any(|m| (m.shared.active() as u64) * 2 < m.weight() as u64)
}

#[derive(Debug, Default)]
pub struct LocalityLeastConnection {
    cache: Cache<DestKey>,
}

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(LocalityLeastConnection::default())
}

impl Scheduler for LocalityLeastConnection {
    fn name(&self) -> &'static str {
        "lblc"
    }

    fn update(&mut self, _dests: &[Dest], change: DestChange) {
        if change == DestChange::Reset {
            self.cache.clear();
        }
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now_ms;
        self.cache.advance(now);
        let cached = self.cache.get_mut(input.daddr).map(|en| {
            en.lastuse = now;
            en.val
        });
        if let Some(key) = cached {
            if let Some(i) = dests.iter().position(|d| d.key() == key) {
                let d = &dests[i];
                if d.weight() > 0 && !lblc_overloaded(d, dests) {
                    return Some(i);
                }
            }
        }
        let i = wlc_pick(dests)?;
        let key = dests[i].key();
        match self.cache.get_mut(input.daddr) {
            // Re-pointed: the kernel replaces the entry by a fresh one, used
            // now (which the lookup above already set).
            Some(en) => en.val = key,
            None => self.cache.insert(input.daddr, now, key),
        }
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sed::testgen::*;
    use super::super::testutil::*;
    use super::*;
    use crate::dest::DestSpec;

    fn at(daddr: &str, now_ms: u64) -> SchedInput {
        SchedInput {
            daddr: daddr.parse().unwrap(),
            now_ms,
            ..input()
        }
    }

    fn pick(s: &mut dyn Scheduler, d: &[Dest], daddr: &str, now_ms: u64) -> String {
        match s.schedule(d, &at(daddr, now_ms)) {
            Some(i) => d[i].spec.addr.to_string(),
            None => "-".into(),
        }
    }

    /// Each pick becomes an active connection, as in a busy cluster.
    fn pick_conn(s: &mut dyn Scheduler, d: &[Dest], daddr: &str, now_ms: u64) -> String {
        let i = s.schedule(d, &at(daddr, now_ms)).unwrap();
        let a = d[i].shared.active();
        set_conns(&d[i], a + 1, 0);
        d[i].spec.addr.to_string()
    }

    #[test]
    fn bucket_is_hash_32_of_fold() {
        assert_eq!(bucket_of("0.0.0.1".parse().unwrap()), 0x61C8_8647 >> 22);
        // 2001:db8::1:0:0:1 folds to 0x20010db8 ^ 0x00010000 ^ 0x00000001.
        assert_eq!(
            bucket_of("2001:db8::1:0:0:1".parse().unwrap()),
            bucket_of("32.0.13.185".parse().unwrap())
        );
        // 192.168.1.10 = 0xC0A8010A; * 0x61C88647 mod 2^32 = 0xF8F385C6.
        assert_eq!(
            bucket_of("192.168.1.10".parse().unwrap()),
            0xF8F3_85C6 >> 22
        );
    }

    #[test]
    fn same_daddr_sticks_others_spread() {
        let mut s = LocalityLeastConnection::default();
        // List order: .2 .1, both weight 1.
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        // First address: wlc picks the head .2; it stays there although .1
        // becomes less loaded.
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.1", 0), "10.0.0.2");
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.1", 0), "10.0.0.2");
        // A new address goes by wlc: .1 (0 conns) beats .2 (2).
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.2", 0), "10.0.0.1");
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.1", 0), "10.0.0.2");
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.2", 0), "10.0.0.1");
        assert_eq!(s.cache.len(), 2);
    }

    #[test]
    fn moves_when_overloaded_in_lblc_sense() {
        let mut s = LocalityLeastConnection::default();
        // List order: .2 (w2) .1 (w4)
        let d = build(&mut s, &[("10.0.0.1", 4), ("10.0.0.2", 2)]);
        set_conns(&d[1], 1, 0); // .1 busier by wlc: 256/4 = 64 vs 0
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.2");
        // .2 at 3 active > weight 2, but no dest is under half its weight
        // (.2: 6 < 2 no; .1: 2 * 2 < 4 no): the entry holds.
        set_conns(&d[0], 3, 0);
        set_conns(&d[1], 2, 0);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.2");
        // .1 drops to 1 active (2 < 4): now .2 counts as overloaded and the
        // entry moves to the wlc choice .1 (256 * 2 < 768 * 4).
        set_conns(&d[1], 1, 0);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.1");
        // And stays there.
        set_conns(&d[0], 0, 0);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.1");
        assert_eq!(s.cache.len(), 1);
    }

    #[test]
    fn moves_when_weight_zero_or_removed_and_comes_back() {
        let mut s = LocalityLeastConnection::default();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.2");
        // Quiesced: rescheduled to .1.
        d[0].spec = DestSpec {
            weight: 0,
            ..d[0].spec
        };
        s.update(&d, DestChange::Edited(0));
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.1");
        d[0].spec = DestSpec {
            weight: 1,
            ..d[0].spec
        };
        s.update(&d, DestChange::Edited(0));
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.1");
        // .1 deleted and added back before the address shows up again: the
        // kernel finds its entry's dest (back from the trash) usable.
        let gone = d.remove(1);
        s.update(
            &d,
            DestChange::Removed {
                index: 1,
                key: gone.key(),
            },
        );
        d.insert(0, gone);
        s.update(&d, DestChange::Added(0));
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.1");
        // Deleted for good: rescheduled to .2.
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                index: 0,
                key: gone.key(),
            },
        );
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.2");
    }

    #[test]
    fn cached_dest_used_despite_threshold_overload() {
        // As in the kernel, a cache hit does not look at the OVERLOAD flag
        // (only at lblc's own overload rule); a miss does.
        let mut s = LocalityLeastConnection::default();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.2");
        overload(&mut d[0]);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "10.0.0.2");
        assert_eq!(pick(&mut s, &d, "172.16.0.10", 0), "10.0.0.1");
    }

    #[test]
    fn no_dest_keeps_no_entry() {
        let mut s = LocalityLeastConnection::default();
        let d = build(&mut s, &[("10.0.0.1", 0)]);
        assert_eq!(pick(&mut s, &d, "172.16.0.9", 0), "-");
        assert_eq!(s.cache.len(), 0);
    }

    #[test]
    fn idle_entry_survives_six_minutes_in_a_small_table() {
        let mut s = LocalityLeastConnection::default();
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        let t0 = 1_000_000;
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.9", t0), "10.0.0.2");
        // 10 minutes later .1 is less loaded, but the entry is still there:
        // only a table over 16384 entries drops 6-minute-idle ones.
        assert_eq!(pick(&mut s, &d, "172.16.0.9", t0 + 600_000), "10.0.0.2");
        assert_eq!(s.cache.len(), 1);
    }

    #[test]
    fn full_check_expires_after_lblc_expiration() {
        let mut s = LocalityLeastConnection::default();
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        let t0 = 5_000;
        // Timer ticks at t0 + k * 60 s; full checks at ticks 30, 60, ...
        assert_eq!(pick_conn(&mut s, &d, "172.16.0.9", t0), "10.0.0.2");
        let tick = |k: u64| t0 + k * CHECK_EXPIRE_INTERVAL_MS;
        // Touched at tick 30 + 1 ms (just after that full check), then
        // idle: the first full check at least 24 h later is tick
        // 30 + 1440 + 30 = 1500.
        assert_eq!(pick(&mut s, &d, "172.16.0.9", tick(30) + 1), "10.0.0.2");
        assert_eq!(s.cache.full_checks, 1);
        // The full check at tick 1470 comes 24 h less 1 ms after the last
        // use: the entry stays.
        assert_eq!(pick(&mut s, &d, "172.16.0.8", tick(1499)), "10.0.0.1");
        assert_eq!(s.cache.full_checks, 49);
        assert_eq!(s.cache.len(), 2);
        // Tick 1500 drops .9's entry (idle 24 h 30 min less 1 ms); .8 was
        // used at tick 1499, so it stays. .9 then goes by wlc: .2 has one
        // conn, .1 none.
        assert_eq!(pick(&mut s, &d, "172.16.0.9", tick(1500)), "10.0.0.1");
        assert_eq!(s.cache.full_checks, 50);
        assert_eq!(s.cache.len(), 2);
    }

    #[test]
    fn timer_replay_matches_tick_by_tick() {
        // Advancing in one jump or a few seconds at a time gives the same
        // table.
        let mut a: Cache<u32> = Cache::default();
        let mut b: Cache<u32> = Cache::default();
        for c in [&mut a, &mut b] {
            c.expiration_ms = 150 * CHECK_EXPIRE_INTERVAL_MS;
            c.advance(0);
            for i in 0..50u32 {
                let addr = IpAddr::from([10, 1, 0, i as u8]);
                c.insert(addr, i as u64 * 200_000, i);
            }
        }
        let end = 200 * CHECK_EXPIRE_INTERVAL_MS + 5;
        a.advance(end);
        let mut t = 0;
        while t <= end {
            b.advance(t);
            t += 7_000;
        }
        b.advance(end);
        // Full checks at ticks 30, 60, ..., 180; the one at 180 (10.8e6 ms)
        // drops what was last used at or before 10.8e6 - 9e6: i = 0..=9.
        assert_eq!((a.full_checks, b.full_checks), (6, 6));
        assert_eq!((a.counter, b.counter), (21, 21));
        assert_eq!((a.len(), b.len()), (40, 40));
    }

    #[test]
    fn oversized_table_drops_six_minute_idle_entries() {
        let mut c: Cache<u32> = Cache::default();
        c.advance(0);
        // 16384 + 300 entries: 300 of them old (used at 0), the rest used
        // at 5 min.
        let n = MAX_SIZE + 300;
        for i in 0..n as u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            let t = if i < 300 { 0 } else { 300_000 };
            c.insert(addr, t, i);
        }
        // Ticks at 1..=5 min find nothing 6 min idle; the one at 6 min has
        // goal 300 * 4 / 3 = 400 but only the 300 old entries qualify, so
        // the walk goes round the whole table and drops them all.
        c.advance(6 * CHECK_EXPIRE_INTERVAL_MS);
        assert_eq!(c.len(), MAX_SIZE);
        assert_eq!(c.counter, 1, "partial checks do not count");
        assert_eq!(c.rover, 0, "a full round leaves the rover in place");
        // From now on the ticks count towards the full check again.
        c.advance(7 * CHECK_EXPIRE_INTERVAL_MS);
        assert_eq!(c.counter, 2);
        assert_eq!(c.len(), MAX_SIZE);
    }

    #[test]
    fn partial_check_stops_at_goal() {
        let mut c: Cache<u32> = Cache::default();
        c.advance(0);
        // All entries used at 0; 16384 + 3 of them: goal 3 * 4 / 3 = 4, so
        // the walk from rover + 1 stops after the bucket that brings the
        // count of dropped entries to 4 or more.
        let n = MAX_SIZE + 3;
        for i in 0..n as u32 {
            c.insert(IpAddr::from(i.to_be_bytes()), 0, i);
        }
        let sizes: Vec<usize> = c.buckets.iter().map(Vec::len).collect();
        let (mut j, mut dropped) = (0, 0);
        while dropped < 4 {
            j += 1;
            dropped += sizes[j];
        }
        c.advance(6 * CHECK_EXPIRE_INTERVAL_MS);
        assert_eq!(c.rover, j);
        assert_eq!(c.len(), n - dropped);
        assert!(c.buckets[1..=j].iter().all(Vec::is_empty));
        assert!(c.buckets[j + 1..]
            .iter()
            .zip(&sizes[j + 1..])
            .all(|(b, s)| b.len() == *s));
    }
}
