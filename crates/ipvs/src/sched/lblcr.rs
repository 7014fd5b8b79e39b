//! Locality-based least connection with replication (`ip_vs_lblcr.c`): like
//! lblc, but each destination address maps to a *set* of dests that grows
//! when its members get busy and shrinks when it has been stable a long
//! time.
//!
//! Why this file is long (about 580 lines): the scheduler is about 230
//! lines; the rest is its tests.
//!
//! Scheduling, for `daddr` (same cache, hashing and aging as lblc, see
//! [`super::lblc`]; the full check uses `lblcr_expiration`, 24 h):
//!
//! - Miss: pick by wlc over the whole list; none: no dest. Else create the
//!   entry with the set `{dest}` (set modified now).
//! - Hit: the entry's last use becomes now. Then:
//!   1. `min`: the wlc-least member of the set, walking the set from its most
//!      recently added member: skip members that are threshold-overloaded;
//!      the first with weight > 0 still in the service starts, a later one
//!      replaces it on `loh * w > doh * lw` (strict).
//!   2. If the set has more than one member and was last modified more than
//!      `lblcr_expiration` ago (strictly), the most loaded member is dropped
//!      (set modified now): first member with weight > 0, then a later one
//!      with weight > 0 replaces it on `moh * w < doh * mw`. This step looks
//!      neither at the overload flag nor at whether the member is still in
//!      the service, and it may drop `min` itself, which is still returned.
//!   3. If there is a `min` and it is not overloaded in lblc's sense
//!      (`active > weight` while some dest is under half its weight), it is
//!      the answer.
//!   4. Otherwise pick by wlc over the whole list (none: no dest) and add it
//!      to the set if it is not there yet (set modified now).
//!
//! Set members name their dest by [`DestKey`]. Like the kernel, which holds
//! a deleted dest in its trash while a set refers to it, a deleted member
//! stays in its sets: unusable for step 1 but counted, with its weight at
//! deletion and its live counters, in step 2; adding the dest back makes it
//! usable again.

use std::collections::HashMap;
use std::sync::Arc;

use super::lblc::{lblc_overloaded, wlc_pick, Cache};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::{Dest, DestShared};
use crate::types::DestKey;

/// The dests an address maps to, most recently added first.
#[derive(Debug)]
struct DestSet {
    members: Vec<DestKey>,
    lastmod: u64,
}

/// What a set member refers to now.
enum Member<'a> {
    /// In the service, at this index.
    Live(usize),
    /// Deleted: the weight it had then and its (still counting) counters.
    Gone(u32, &'a DestShared),
}

#[derive(Debug, Default)]
pub struct LocalityLeastConnectionReplicated {
    cache: Cache<DestSet>,
    /// The dests of the service as of the last update (weight and counters),
    /// to remember a dest that gets deleted.
    known: HashMap<DestKey, (u32, Arc<DestShared>)>,
    /// Deleted dests some set may still name.
    gone: HashMap<DestKey, (u32, Arc<DestShared>)>,
    /// `cache.full_checks` when `gone` was last tidied.
    tidied_at: u64,
}

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(LocalityLeastConnectionReplicated::default())
}

impl LocalityLeastConnectionReplicated {
    fn resolve<'a>(&'a self, dests: &[Dest], key: DestKey) -> Option<Member<'a>> {
        if let Some(i) = dests.iter().position(|d| d.key() == key) {
            return Some(Member::Live(i));
        }
        self.gone
            .get(&key)
            .map(|(w, shared)| Member::Gone(*w, shared))
    }

    /// Step 1: the wlc-least usable member.
    fn set_min(&self, dests: &[Dest], set: &DestSet) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for &key in &set.members {
            // Deleted members are never usable.
            let Some(Member::Live(i)) = self.resolve(dests, key) else {
                continue;
            };
            let d = &dests[i];
            if d.shared.is_overloaded() {
                continue;
            }
            let doh = d.shared.overhead();
            let take = match least {
                None => d.weight() > 0,
                Some((l, loh)) => {
                    loh as u128 * d.weight() as u128 > doh as u128 * dests[l].weight() as u128
                }
            };
            if take {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }

    /// Step 2's choice: the member with the most load per weight.
    fn set_max(&self, dests: &[Dest], set: &DestSet) -> Option<DestKey> {
        let mut most: Option<(DestKey, u32, u64)> = None;
        for &key in &set.members {
            let (w, oh) = match self.resolve(dests, key) {
                Some(Member::Live(i)) => (dests[i].weight(), dests[i].shared.overhead()),
                Some(Member::Gone(w, shared)) => (w, shared.overhead()),
                None => continue,
            };
            if w == 0 {
                continue;
            }
            let replace = match most {
                None => true,
                Some((_, mw, moh)) => (moh as u128 * w as u128) < (oh as u128 * mw as u128),
            };
            if replace {
                most = Some((key, w, oh));
            }
        }
        most.map(|(k, _, _)| k)
    }

    /// Forgets deleted dests that no set names any more; run after the
    /// cache's full checks, which are when the kernel's sets shrink most.
    fn tidy_gone(&mut self) {
        if self.cache.full_checks == self.tidied_at {
            return;
        }
        self.tidied_at = self.cache.full_checks;
        if self.gone.is_empty() {
            return;
        }
        let mut named: Vec<DestKey> = Vec::new();
        for en in self.cache.iter() {
            for k in &en.val.members {
                if self.gone.contains_key(k) && !named.contains(k) {
                    named.push(*k);
                }
            }
        }
        self.gone.retain(|k, _| named.contains(k));
    }
}

impl Scheduler for LocalityLeastConnectionReplicated {
    fn name(&self) -> &'static str {
        "lblcr"
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) {
        match change {
            DestChange::Reset => {
                self.cache.clear();
                self.gone.clear();
                self.tidied_at = 0;
            }
            DestChange::Removed { key, .. } => {
                if let Some(v) = self.known.remove(&key) {
                    self.gone.insert(key, v);
                }
            }
            _ => {}
        }
        self.known = dests
            .iter()
            .map(|d| (d.key(), (d.weight(), d.shared.clone())))
            .collect();
        // A dest added back is the one the sets name again.
        self.gone.retain(|k, _| !self.known.contains_key(k));
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let now = input.now_ms;
        self.cache.advance(now);
        self.tidy_gone();

        let Some(en) = self.cache.get_mut(input.daddr) else {
            // Miss: a new entry with a one-member set.
            let i = wlc_pick(dests)?;
            let set = DestSet {
                members: vec![dests[i].key()],
                lastmod: now,
            };
            self.cache.insert(input.daddr, now, set);
            return Some(i);
        };
        en.lastuse = now;
        // Take the set out while it is read against `self`.
        let mut set = std::mem::replace(
            &mut en.val,
            DestSet {
                members: Vec::new(),
                lastmod: 0,
            },
        );

        let min = self.set_min(dests, &set);
        let expiration = self.cache.expiration_ms;
        if set.members.len() > 1 && now > set.lastmod.saturating_add(expiration) {
            if let Some(m) = self.set_max(dests, &set) {
                if let Some(p) = set.members.iter().position(|k| *k == m) {
                    set.members.remove(p);
                    set.lastmod = now;
                }
            }
        }

        let pick = match min {
            Some(i) if !lblc_overloaded(&dests[i], dests) => Some(i),
            _ => wlc_pick(dests).inspect(|&i| {
                let key = dests[i].key();
                if !set.members.contains(&key) {
                    set.members.insert(0, key);
                    set.lastmod = now;
                }
            }),
        };
        if let Some(en) = self.cache.get_mut(input.daddr) {
            en.val = set;
        }
        pick
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::lblc::{CHECK_EXPIRE_INTERVAL_MS, DEFAULT_EXPIRATION_MS};
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

    fn set_of(s: &mut LocalityLeastConnectionReplicated, daddr: &str) -> Vec<String> {
        let a: IpAddr = daddr.parse().unwrap();
        s.cache
            .get_mut(a)
            .map(|en| en.val.members.iter().map(|k| k.addr.to_string()).collect())
            .unwrap_or_default()
    }

    const V: &str = "172.16.0.9";

    #[test]
    fn miss_then_least_of_the_set() {
        let mut s = LocalityLeastConnectionReplicated::default();
        // List order: .3 .2 .1, all weight 1.
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
        assert_eq!(set_of(&mut s, V), ["10.0.0.3"]);
        // .3 busier than the others but not lblc-overloaded (1 > 1 fails):
        // the set's only member stays the answer.
        set_conns(&d[0], 1, 0);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
    }

    #[test]
    fn set_grows_when_member_overloaded() {
        let mut s = LocalityLeastConnectionReplicated::default();
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
        // .3: 2 active > weight 1, and .2 has 0 * 2 < 1: overloaded. wlc
        // over all: .2 (0) beats .3 (512); .1 (0) ties with .2 and loses.
        set_conns(&d[0], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 1000), "10.0.0.2");
        assert_eq!(set_of(&mut s, V), ["10.0.0.2", "10.0.0.3"]);
        // Now min over the set {.2, .3}: .2 (0 conns).
        assert_eq!(pick(&mut s, &d, V, 2000), "10.0.0.2");
        // .2 gets busy too (2 > 1, and .1 is idle): grows to .1.
        set_conns(&d[1], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 3000), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        // The set min among .1 (0), .2 (512), .3 (512) is .1.
        assert_eq!(pick(&mut s, &d, V, 4000), "10.0.0.1");
    }

    #[test]
    fn overloaded_min_with_wlc_choice_already_in_set() {
        let mut s = LocalityLeastConnectionReplicated::default();
        // List order: .2 (w1) .1 (w4)
        let d = build(&mut s, &[("10.0.0.1", 4), ("10.0.0.2", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.2");
        // .2 overloaded in lblc's sense (2 > 1 while .1 has 0 < 4); wlc
        // gives .1 (0 vs 512), added at 5.
        set_conns(&d[0], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 5), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.1", "10.0.0.2"]);
        // .1: 5 active (1280 / 4 = 320) > 4 while .2 (0 active, 1000
        // inactive: 1000 / 1) is under half its weight. The set min is .1,
        // overloaded; wlc over the list picks .1 again (1000 * 4 > 1280),
        // which is already a member: the set is not modified.
        set_conns(&d[0], 0, 1000);
        set_conns(&d[1], 5, 0);
        assert_eq!(pick(&mut s, &d, V, 9), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.1", "10.0.0.2"]);
        let a: IpAddr = V.parse().unwrap();
        assert_eq!(s.cache.get_mut(a).unwrap().val.lastmod, 5);
    }

    #[test]
    fn set_shrinks_after_expiration() {
        let mut s = LocalityLeastConnectionReplicated::default();
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
        set_conns(&d[0], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 10), "10.0.0.2"); // set modified at 10
        set_conns(&d[1], 1, 0);
        // Keep the entry in use (no full-check expiry), no modification.
        let mut t = 10;
        while t < DEFAULT_EXPIRATION_MS {
            t += 600_000;
            assert_eq!(
                pick(&mut s, &d, V, t.min(DEFAULT_EXPIRATION_MS + 10)),
                "10.0.0.2"
            );
        }
        assert_eq!(set_of(&mut s, V), ["10.0.0.2", "10.0.0.3"]);
        // Exactly 24 h after the modification: not yet (strictly later).
        assert_eq!(pick(&mut s, &d, V, DEFAULT_EXPIRATION_MS + 10), "10.0.0.2");
        assert_eq!(set_of(&mut s, V).len(), 2);
        // 1 ms later the most loaded (.3: 512 vs .2: 256) is dropped.
        assert_eq!(pick(&mut s, &d, V, DEFAULT_EXPIRATION_MS + 11), "10.0.0.2");
        assert_eq!(set_of(&mut s, V), ["10.0.0.2"]);
        // A one-member set never shrinks.
        for k in 1..=25 {
            let t = DEFAULT_EXPIRATION_MS + 11 + k * 3_600_000;
            assert_eq!(pick(&mut s, &d, V, t), "10.0.0.2");
        }
        assert_eq!(set_of(&mut s, V), ["10.0.0.2"]);
    }

    #[test]
    fn shrink_may_drop_the_returned_min() {
        let mut s = LocalityLeastConnectionReplicated::default();
        // List order: .2 (w1) .1 (w1)
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.2");
        set_conns(&d[0], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.1");
        // .2 quiesced: the only member with weight > 0 is .1, which is both
        // min and max. At the shrink it is dropped but still returned.
        d[0].spec = DestSpec {
            weight: 0,
            ..d[0].spec
        };
        s.update(&d, DestChange::Edited(0));
        set_conns(&d[0], 0, 0);
        let t = DEFAULT_EXPIRATION_MS + 1;
        // Keep the entry alive for the full checks on the way.
        for k in 1..24 {
            pick(&mut s, &d, V, k * 3_600_000);
        }
        assert_eq!(pick(&mut s, &d, V, t), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.2"]);
        // Next time the set has no usable member: wlc over all, added.
        assert_eq!(pick(&mut s, &d, V, t + 1), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.1", "10.0.0.2"]);
    }

    #[test]
    fn deleted_member_kept_counted_and_restored() {
        let mut s = LocalityLeastConnectionReplicated::default();
        // List order: .3 .2 .1, weight 1 each.
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
        set_conns(&d[0], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.2");
        assert_eq!(set_of(&mut s, V), ["10.0.0.2", "10.0.0.3"]);
        // Delete .3: its connections keep counting (5 active now).
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                index: 0,
                key: gone.key(),
            },
        );
        set_conns(&gone, 5, 0);
        // Still in the set, not usable: .2 is the min.
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.2");
        assert_eq!(set_of(&mut s, V), ["10.0.0.2", "10.0.0.3"]);
        // Added back: usable again (and less loaded than .2 once its
        // counters drop).
        set_conns(&gone, 0, 0);
        set_conns(&d[0], 1, 0);
        d.insert(0, gone);
        s.update(&d, DestChange::Added(0));
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
    }

    #[test]
    fn shrink_counts_deleted_member() {
        let mut s = LocalityLeastConnectionReplicated::default();
        // List order: .3 .2 .1, weight 1 each.
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.3");
        set_conns(&d[0], 2, 0);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.2");
        // .3 deleted with 1 active; .2 has 3 active: .2 is the most loaded.
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                index: 0,
                key: gone.key(),
            },
        );
        set_conns(&gone, 1, 0);
        set_conns(&d[0], 3, 0);
        // .2: 3 > 1 but nobody is under half weight (.1 has 1 active... set
        // it so): the min .2 stays the answer.
        set_conns(&d[1], 1, 0);
        let mut t = 0;
        while t < DEFAULT_EXPIRATION_MS {
            t += 3_600_000;
            assert_eq!(pick(&mut s, &d, V, t), "10.0.0.2");
        }
        // At the shrink .2 (768) outweighs the deleted .3 (256) and is
        // dropped, though returned this once; the set is left with the
        // deleted .3, so the next pick goes by wlc: .1.
        assert_eq!(pick(&mut s, &d, V, DEFAULT_EXPIRATION_MS + 1), "10.0.0.2");
        assert_eq!(set_of(&mut s, V), ["10.0.0.3"]);
        assert_eq!(pick(&mut s, &d, V, DEFAULT_EXPIRATION_MS + 2), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.1", "10.0.0.3"]);
    }

    #[test]
    fn full_check_expires_idle_entries_and_forgets_deleted() {
        let mut s = LocalityLeastConnectionReplicated::default();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        let t0 = 0;
        assert_eq!(pick(&mut s, &d, V, t0), "10.0.0.2");
        let gone = d.remove(0);
        s.update(
            &d,
            DestChange::Removed {
                index: 0,
                key: gone.key(),
            },
        );
        assert_eq!(s.gone.len(), 1);
        // Another address keeps the timer going; V is left idle. The full
        // checks run every 30 min; the first at or after 24 h since V's last
        // use drops V's entry, and with it the last mention of .2.
        let step = 30 * CHECK_EXPIRE_INTERVAL_MS;
        let mut t = t0;
        while t < DEFAULT_EXPIRATION_MS {
            t += step;
            assert_eq!(pick(&mut s, &d, "172.16.0.1", t), "10.0.0.1");
        }
        assert_eq!(s.cache.len(), 1);
        assert!(s.gone.is_empty());
        // V is a miss again.
        assert_eq!(pick(&mut s, &d, V, t), "10.0.0.1");
        assert_eq!(set_of(&mut s, V), ["10.0.0.1"]);
    }

    #[test]
    fn never_weight_zero_or_overloaded() {
        // Members are skipped by the set min when overloaded; the wlc
        // fallback skips them too.
        let mut s = LocalityLeastConnectionReplicated::default();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.2");
        overload(&mut d[0]);
        assert_eq!(pick(&mut s, &d, V, 0), "10.0.0.1");
        overload(&mut d[1]);
        assert_eq!(pick(&mut s, &d, V, 0), "-");
    }

    /// What the property test does between picks.
    #[derive(Debug, Clone)]
    enum Op {
        Pick(u8),
        ToggleOverload(usize),
        SetWeight(usize, u32),
        SetActive(usize, u32),
        Wait(u64),
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4).prop_map(Op::Pick),
            1 => (0usize..8).prop_map(Op::ToggleOverload),
            1 => (0usize..8, 0u32..4).prop_map(|(i, w)| Op::SetWeight(i, w)),
            2 => (0usize..8, 0u32..6).prop_map(|(i, a)| Op::SetActive(i, a)),
            1 => (0u64..3 * DEFAULT_EXPIRATION_MS).prop_map(Op::Wait),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Through overloads, weight edits, load changes and time: lblcr
        /// never picks a dest with weight 0 or the OVERLOAD flag; lblc never
        /// picks weight 0, and an overloaded dest only from its cache (the
        /// previous pick for the same address).
        #[test]
        fn cached_schedulers_never_pick_ineligible(
            gens in arb_dests(),
            ops in prop::collection::vec(arb_op(), 1..60),
        ) {
            for name in ["lblc", "lblcr"] {
                let mut d = make(&gens);
                let mut s = super::super::by_name(name, 0).unwrap();
                s.update(&d, DestChange::Reset);
                let mut last: [Option<DestKey>; 4] = [None; 4];
                let mut now = 0;
                for op in &ops {
                    match *op {
                        Op::Pick(a) => {
                            let daddr = IpAddr::from([172, 16, 0, a]);
                            let inp = SchedInput { daddr, now_ms: now, ..input() };
                            match s.schedule(&d, &inp) {
                                Some(i) => {
                                    let p = &d[i];
                                    prop_assert!(p.weight() > 0, "{name}: weight 0");
                                    if p.shared.is_overloaded() {
                                        prop_assert!(
                                            name == "lblc" && last[a as usize] == Some(p.key()),
                                            "{name}: overloaded {}", p.key()
                                        );
                                    }
                                    last[a as usize] = Some(p.key());
                                }
                                None => prop_assert!(!d.iter().any(eligible), "{name}: none"),
                            }
                        }
                        Op::ToggleOverload(i) => {
                            let i = i % d.len();
                            if d[i].shared.is_overloaded() {
                                d[i].shared.set_thresholds(0, 0);
                            } else {
                                overload(&mut d[i]);
                            }
                        }
                        Op::SetWeight(i, w) => {
                            let i = i % d.len();
                            d[i].spec = DestSpec { weight: w, ..d[i].spec };
                            s.update(&d, DestChange::Edited(i));
                        }
                        Op::SetActive(i, a) => {
                            let i = i % d.len();
                            let inact = d[i].shared.inactive();
                            set_conns(&d[i], a, inact);
                        }
                        Op::Wait(ms) => now += ms,
                    }
                }
            }
        }
    }
}
