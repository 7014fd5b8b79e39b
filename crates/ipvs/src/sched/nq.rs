//! Never queue (`ip_vs_nq.c`): an idle server first, else shortest expected
//! delay.
//!
//! One pass in list order over the dests that are not overloaded and have
//! weight > 0: the first with `activeconns == 0` is taken at once; otherwise
//! the pass keeps the sed minimum of `(activeconns + 1) / weight` (strict
//! cross-multiplied comparison, so the earliest wins ties).

use super::sed::{expected_delay, heavier};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct NeverQueue;

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(NeverQueue)
}

impl Scheduler for NeverQueue {
    fn name(&self) -> &'static str {
        "nq"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            if d.shared.active() == 0 {
                return Some(i);
            }
            let doh = expected_delay(d);
            let replace = match least {
                None => true,
                Some((l, loh)) => heavier(loh, dests[l].weight(), doh, d.weight()),
            };
            if replace {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sed::testgen::*;
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn first_idle_wins_even_if_light() {
        let mut s = NeverQueue;
        // List order: .3 (w10) .2 (w1) .1 (w1)
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 10)]);
        set_conns(&d[0], 1, 0); // .3: busy, cost 2/10
        set_conns(&d[1], 0, 50); // .2: idle (inactive does not count)
        set_conns(&d[2], 0, 0); // .1: idle too, but later
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
    }

    #[test]
    fn no_idle_falls_back_to_sed() {
        let mut s = NeverQueue;
        // List order: .3 (w1) .2 (w3) .1 (w2)
        let d = list(&[("10.0.0.1", 2), ("10.0.0.2", 3), ("10.0.0.3", 1)]);
        set_conns(&d[0], 1, 0); // .3: 2/1
        set_conns(&d[1], 5, 0); // .2: 6/3 = 2 (tie with .3: .3 stays)
        set_conns(&d[2], 3, 0); // .1: 4/2 = 2 (tie)
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.3"]);
        set_conns(&d[2], 2, 0); // .1: 3/2 < 2
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
    }

    #[test]
    fn idle_but_unavailable_is_skipped() {
        let mut s = NeverQueue;
        // List order: .3 (w0, idle) .2 (w1, idle, overloaded) .1 (w1, busy)
        let mut d = list(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 0)]);
        overload(&mut d[1]);
        set_conns(&d[2], 4, 0);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }
}
