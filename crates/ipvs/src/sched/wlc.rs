//! Weighted least connection (`ip_vs_wlc.c`), ipvsadm's default: the dest
//! with the smallest overhead / weight, compared by cross-multiplying so no
//! division happens; the first eligible dest wins ties.

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl Scheduler for WeightedLeastConnection {
    fn name(&self) -> &'static str {
        "wlc"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let first = dests.iter().position(|d| d.is_available())?;
        let mut least = first;
        let mut loh = dests[first].shared.overhead();
        for (i, d) in dests.iter().enumerate().skip(first + 1) {
            if d.shared.is_overloaded() {
                continue;
            }
            let doh = d.shared.overhead();
            // loh / least.weight > doh / d.weight, without dividing; a
            // weight-0 dest never wins since the right side is then 0 * doh.
            if loh as u128 * d.weight() as u128 > doh as u128 * dests[least].weight() as u128 {
                least = i;
                loh = doh;
            }
        }
        Some(least)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn weighted_overhead() {
        let mut s = WeightedLeastConnection;
        // List order: .3 (w1) .2 (w3) .1 (w1)
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 3), ("10.0.0.3", 1)]);
        set_conns(&d[0], 1, 0); // 256 / 1
        set_conns(&d[1], 2, 0); // 512 / 3 = 170.7
        set_conns(&d[2], 0, 200); // 200 / 1
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
    }

    #[test]
    fn ties_keep_the_first() {
        let mut s = WeightedLeastConnection;
        let d = list(&[("10.0.0.1", 2), ("10.0.0.2", 1)]);
        // .2: 1*256 / 1 ; .1: 2*256 / 2 : equal, .2 is first in list order.
        set_conns(&d[0], 1, 0);
        set_conns(&d[1], 2, 0);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
    }

    #[test]
    fn all_idle_goes_to_list_head() {
        let mut s = WeightedLeastConnection;
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
    }
}
