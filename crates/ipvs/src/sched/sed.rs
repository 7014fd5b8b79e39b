//! Shortest expected delay (`ip_vs_sed.c`): wlc with the expected delay
//! `(activeconns + 1) / weight` as the cost; inactive connections do not
//! count.
//!
//! `least` is the first dest that is not overloaded and has weight > 0; each
//! later dest that is not overloaded replaces it when
//! `cost(least) * d.weight > cost(d) * least.weight` (strict, 64-bit, so the
//! earliest wins ties, and a weight-0 dest never wins: its side is 0).

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(ShortestExpectedDelay)
}

/// The kernel's `ip_vs_sed_dest_overhead` (nq uses the same).
pub(super) fn expected_delay(d: &Dest) -> u64 {
    d.shared.active() as u64 + 1
}

/// `a.cost / a.weight > b.cost / b.weight`, by cross-multiplying.
pub(super) fn heavier(a_cost: u64, a_weight: u32, b_cost: u64, b_weight: u32) -> bool {
    a_cost as u128 * b_weight as u128 > b_cost as u128 * a_weight as u128
}

impl Scheduler for ShortestExpectedDelay {
    fn name(&self) -> &'static str {
        "sed"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let first = dests.iter().position(|d| d.is_available())?;
        let mut least = first;
        let mut loh = expected_delay(&dests[first]);
        for (i, d) in dests.iter().enumerate().skip(first + 1) {
            if d.shared.is_overloaded() {
                continue;
            }
            let doh = expected_delay(d);
            if heavier(loh, dests[least].weight(), doh, d.weight()) {
                least = i;
                loh = doh;
            }
        }
        Some(least)
    }
}

/// Helpers shared by the property tests of sed, nq, fo, ovf, twos, lblc and
/// lblcr.
#[cfg(test)]
pub(super) mod testgen {
    use proptest::prelude::*;

    use crate::dest::{Dest, DestShared, DestSpec};

    /// One dest of a generated list: weight, active, inactive, overloaded.
    pub type Gen = (u32, u32, u32, bool);

    pub fn arb_dests() -> impl Strategy<Value = Vec<Gen>> {
        prop::collection::vec((0u32..5, 0u32..6, 0u32..6, prop::bool::weighted(0.3)), 1..7)
    }

    /// Marks a dest overloaded the way the dataplane does: an upper threshold
    /// of 1 and one bound connection.
    pub fn overload(d: &mut Dest) {
        let spec = DestSpec {
            u_threshold: 1,
            ..d.spec
        };
        d.spec = spec;
        d.shared = DestShared::new(&spec);
        d.shared.bind_conn();
        assert!(d.shared.is_overloaded());
    }

    /// Builds a list (kernel order) from generated dests: .1 is added first.
    pub fn make(gens: &[Gen]) -> Vec<Dest> {
        let names: Vec<String> = (1..=gens.len()).map(|i| format!("10.0.0.{i}")).collect();
        let adds: Vec<(&str, u32)> = names
            .iter()
            .zip(gens)
            .map(|(n, g)| (n.as_str(), g.0))
            .collect();
        let mut v = super::super::testutil::list(&adds);
        // list() puts the last add first; gens[i] belongs to .(i+1).
        let n = v.len();
        for (i, g) in gens.iter().enumerate() {
            let d = &mut v[n - 1 - i];
            if g.3 {
                overload(d);
            }
            super::super::testutil::set_conns(d, g.1, g.2);
        }
        v
    }

    pub fn eligible(d: &Dest) -> bool {
        d.weight() > 0 && !d.shared.is_overloaded()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::testutil::*;
    use super::testgen::*;
    use super::*;

    #[test]
    fn expected_delay_ignores_inactive() {
        let mut s = ShortestExpectedDelay;
        // List order: .3 (w1) .2 (w2) .1 (w4)
        let d = list(&[("10.0.0.1", 4), ("10.0.0.2", 2), ("10.0.0.3", 1)]);
        set_conns(&d[0], 0, 0); // .3: 1/1 = 1
        set_conns(&d[1], 1, 0); // .2: 2/2 = 1 (tie with .3, .3 is first)
        set_conns(&d[2], 2, 900); // .1: 3/4, inactive ignored
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        set_conns(&d[2], 3, 0); // .1: 4/4 = 1: three-way tie, .3 wins
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.3"]);
    }

    #[test]
    fn idle_dests_favour_weight() {
        // wlc would take the list head when all are idle; sed compares
        // 1/w and takes the heaviest.
        let mut s = ShortestExpectedDelay;
        let d = list(&[("10.0.0.1", 3), ("10.0.0.2", 1)]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
    }

    #[test]
    fn skips_overloaded_and_weight_zero() {
        let mut s = ShortestExpectedDelay;
        // List order: .3 (w0) .2 (w1) .1 (w5)
        let mut d = list(&[("10.0.0.1", 5), ("10.0.0.2", 1), ("10.0.0.3", 0)]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
        overload(&mut d[1]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    #[test]
    fn sequence_with_growing_counters() {
        // Weights .1 = 2, .2 = 1; list order .2 .1. Each pick becomes an
        // active connection on the chosen dest.
        let mut s = ShortestExpectedDelay;
        let d = list(&[("10.0.0.1", 2), ("10.0.0.2", 1)]);
        let mut got = Vec::new();
        for _ in 0..6 {
            let i = s.schedule(&d, &input()).unwrap();
            let a = d[i].shared.active();
            set_conns(&d[i], a + 1, 0);
            got.push(d[i].spec.addr.to_string());
        }
        // costs (.2 w1, .1 w2): (1,1/2) -> .1; (1, 2/2) tie -> .2;
        // (2, 1) -> .1; (2, 3/2) -> .1; (2, 2) tie -> .2; (3, 2) -> .1
        assert_eq!(
            got,
            ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1"]
        );
    }

    proptest! {
        #[test]
        fn never_picks_ineligible(gens in arb_dests()) {
            let d = make(&gens);
            let mut s = ShortestExpectedDelay;
            match s.schedule(&d, &input()) {
                Some(i) => prop_assert!(eligible(&d[i])),
                None => prop_assert!(!d.iter().any(eligible)),
            }
        }

        /// For every scheduler of this group that picks from counters alone:
        /// an ineligible dest is never chosen, and None only when no dest is
        /// eligible (ovf adds its own `active <= weight` rule).
        #[test]
        fn group_never_picks_ineligible(gens in arb_dests(), seed in any::<u64>()) {
            let d = make(&gens);
            for name in ["sed", "nq", "fo", "ovf", "twos", "lblc", "lblcr"] {
                let mut s = if name == "twos" {
                    super::super::twos::with_seed(seed)
                } else {
                    super::super::by_name(name, 0).unwrap()
                };
                s.update(&d, DestChange::Reset);
                let ok = |d: &Dest| {
                    eligible(d) && (name != "ovf" || d.shared.active() <= d.weight())
                };
                for _ in 0..3 {
                    match s.schedule(&d, &input()) {
                        Some(i) => prop_assert!(ok(&d[i]), "{name} picked {i}"),
                        None => prop_assert!(!d.iter().any(ok), "{name} gave none"),
                    }
                }
            }
        }
    }
}
