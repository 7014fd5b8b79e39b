//! Overflow connection (`ip_vs_ovf.c`): all new connections go to the dest
//! with the highest weight until its active connections exceed its weight,
//! then they overflow to the next highest.
//!
//! A dest is skipped when it is overloaded, has weight 0, or has
//! `activeconns > weight`; among the rest the first in list order with the
//! highest weight wins (strict `>`). Inactive connections do not count, so
//! this suits TCP better than UDP.

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct Overflow;

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(Overflow)
}

impl Scheduler for Overflow {
    fn name(&self) -> &'static str {
        "ovf"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, d) in dests.iter().enumerate() {
            let w = d.weight();
            if d.shared.is_overloaded() || d.shared.active() > w || w == 0 {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sed::testgen::*;
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn overflows_once_active_exceeds_weight() {
        let mut s = Overflow;
        // List order: .3 (w1) .2 (w2) .1 (w2)
        let d = list(&[("10.0.0.1", 2), ("10.0.0.2", 2), ("10.0.0.3", 1)]);
        // Each pick becomes an active connection on the chosen dest.
        let mut got = Vec::new();
        for _ in 0..9 {
            match s.schedule(&d, &input()) {
                Some(i) => {
                    let a = d[i].shared.active();
                    set_conns(&d[i], a + 1, 0);
                    got.push(d[i].spec.addr.to_string());
                }
                None => got.push("-".into()),
            }
        }
        // .2 takes 3 (0, 1, 2 <= 2), then .1 takes 3, then .3 takes 2
        // (0, 1 <= 1), then nothing is left.
        assert_eq!(
            got,
            [
                "10.0.0.2", "10.0.0.2", "10.0.0.2", "10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.3",
                "10.0.0.3", "-"
            ]
        );
    }

    #[test]
    fn inactive_does_not_count() {
        let mut s = Overflow;
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 3)]);
        set_conns(&d[0], 3, 10_000); // .2: active 3 <= 3 still fine
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
        set_conns(&d[0], 4, 0);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
    }

    #[test]
    fn skips_overloaded_and_weight_zero() {
        let mut s = Overflow;
        // List order: .3 (w0) .2 (w9) .1 (w1)
        let mut d = list(&[("10.0.0.1", 1), ("10.0.0.2", 9), ("10.0.0.3", 0)]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
        overload(&mut d[1]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }
}
