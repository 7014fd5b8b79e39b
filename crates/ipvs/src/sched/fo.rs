//! Weighted fail over (`ip_vs_fo.c`): the dest with the highest weight among
//! those that are not overloaded. The comparison is a strict `>` starting
//! from 0, so the earliest in list order wins ties and a weight-0 dest is
//! never chosen. Connection counters play no part.

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct FailOver;

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(FailOver)
}

impl Scheduler for FailOver {
    fn name(&self) -> &'static str {
        "fo"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut hw = 0;
        for (i, d) in dests.iter().enumerate() {
            if !d.shared.is_overloaded() && d.weight() > hw {
                best = Some(i);
                hw = d.weight();
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::super::sed::testgen::*;
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn highest_weight_first_wins_ties() {
        let mut s = FailOver;
        // List order: .4 (w2) .3 (w5) .2 (w5) .1 (w1)
        let d = list(&[
            ("10.0.0.1", 1),
            ("10.0.0.2", 5),
            ("10.0.0.3", 5),
            ("10.0.0.4", 2),
        ]);
        // Busy or not, .3 (first of the two 5s in list order) gets it all.
        set_conns(&d[1], 1000, 1000);
        assert_eq!(picks(&mut s, &d, 3), ["10.0.0.3", "10.0.0.3", "10.0.0.3"]);
    }

    #[test]
    fn fails_over_when_overloaded() {
        let mut s = FailOver;
        // List order: .3 (w1) .2 (w3) .1 (w2)
        let mut d = list(&[("10.0.0.1", 2), ("10.0.0.2", 3), ("10.0.0.3", 1)]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
        overload(&mut d[1]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.3"]);
        overload(&mut d[0]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    #[test]
    fn never_weight_zero() {
        let mut s = FailOver;
        let d = list(&[("10.0.0.1", 0), ("10.0.0.2", 0)]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }
}
