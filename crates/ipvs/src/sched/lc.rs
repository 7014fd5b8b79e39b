//! Least connection (`ip_vs_lc.c`): the smallest overhead
//! (active * 256 + inactive) wins; ties go to the earliest in list order.

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct LeastConnection;

impl Scheduler for LeastConnection {
    fn name(&self) -> &'static str {
        "lc"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let oh = d.shared.overhead();
            if least.is_none_or(|(_, l)| oh < l) {
                least = Some((i, oh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn least_overhead_first_wins_ties() {
        let mut s = LeastConnection;
        // List order: .3 .2 .1
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 5), ("10.0.0.3", 1)]);
        set_conns(&d[0], 1, 0); // .3: 256
        set_conns(&d[1], 0, 10); // .2: 10
        set_conns(&d[2], 0, 10); // .1: 10 (tie with .2; .2 is earlier)
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
    }
}
