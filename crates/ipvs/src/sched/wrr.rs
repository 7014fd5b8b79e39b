//! Weighted round robin (`ip_vs_wrr.c`).
//!
//! `cw` is the current weight: a pass over the list takes dests whose weight
//! is at least `cw`; at the end of the list `cw` drops by `di` (the gcd of the
//! weights) and wraps to `mw` (the max weight, less `di - 1`). With list order
//! A (3), B (1) that gives A A A B A A A B ...

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    /// Index of the last dest chosen; None is the list head.
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Max weight less (di - 1).
    mw: i64,
    /// Gcd of the positive weights (1 if none).
    di: i64,
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl WeightedRoundRobin {
    fn recompute(&mut self, dests: &[Dest]) {
        let g = dests
            .iter()
            .map(|d| d.weight() as i64)
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        self.di = if g > 0 { g } else { 1 };
        let max = dests.iter().map(|d| d.weight() as i64).max().unwrap_or(0);
        self.mw = max - (self.di - 1);
    }
}

impl Scheduler for WeightedRoundRobin {
    fn name(&self) -> &'static str {
        "wrr"
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) {
        self.recompute(dests);
        if change == DestChange::Reset {
            self.cl = None;
            self.cw = self.mw;
            return;
        }
        // ip_vs_wrr_dest_changed: back to the head, clamp cw.
        self.cl = None;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        if self.mw <= 0 || dests.is_empty() {
            return None;
        }
        let n = dests.len();
        let last = self.cl;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        // Scan position: the next index to look at.
        let mut pos = match self.cl {
            Some(i) => i + 1,
            None => 0,
        };
        loop {
            while pos < n {
                let d = &dests[pos];
                if !d.shared.is_overloaded() && d.weight() as i64 >= self.cw {
                    self.cl = Some(pos);
                    return Some(pos);
                }
                if Some(pos) == stop {
                    return None;
                }
                pos += 1;
            }
            // End of the list: lower the bar and go round again.
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // A pass at weight >= 1 found nothing: either it covered the
                // whole list (started at the head) or it was the last pass.
                if last_pass || last.is_none() {
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first pass at weight >= 1 only saw dests after `last`;
                // check the ones up to it too, then stop.
                stop = last;
            }
            pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::dest::DestSpec;

    /// A scheduler started over a complete list (as `-E` switching to wrr
    /// does) begins with cw = mw.
    fn fresh(adds: &[(&str, u32)]) -> (WeightedRoundRobin, Vec<Dest>) {
        let mut s = WeightedRoundRobin::default();
        let d = list(adds);
        s.update(&d, DestChange::Reset);
        (s, d)
    }

    fn names(seq: &str) -> Vec<String> {
        seq.chars().map(|c| format!("10.0.0.{}", c)).collect()
    }

    #[test]
    fn spec_example_a3_b1() {
        // List order A=.1 (3), B=.2 (1): B added first, A last.
        let (mut s, d) = fresh(&[("10.0.0.2", 1), ("10.0.0.1", 3)]);
        assert_eq!(picks(&mut s, &d, 8), names("11121112"));
    }

    #[test]
    fn weights_5_3_1_full_cycle() {
        // Added A=.1 (5), B=.2 (3), C=.3 (1): list order C, B, A.
        // cw=5: A; 4: A; 3: B A; 2: B A; 1: C B A; then again.
        let (mut s, d) = fresh(&[("10.0.0.1", 5), ("10.0.0.2", 3), ("10.0.0.3", 1)]);
        assert_eq!(picks(&mut s, &d, 18), names("112121321112121321"));
    }

    #[test]
    fn dests_added_one_by_one_start_low() {
        // The kernel's clamp on each add: after A (3) alone di = 3, mw = 1,
        // cw = 1; adding B (1) makes mw = 3 but keeps cw = 1. So the first
        // round is taken at weight 1: B A, then A A A B ...
        let mut s = WeightedRoundRobin::default();
        let d = build(&mut s, &[("10.0.0.1", 3), ("10.0.0.2", 1)]);
        assert_eq!(picks(&mut s, &d, 10), names("2111211121"));
    }

    #[test]
    fn gcd_steps() {
        // Weights 4 and 2: di = 2, mw = 3; cw takes 3, then 1.
        let (mut s, d) = fresh(&[("10.0.0.1", 4), ("10.0.0.2", 2)]);
        // List: .2 (2), .1 (4). cw=3: .1; cw=1: .2 .1
        assert_eq!(picks(&mut s, &d, 6), names("121121"));
    }

    #[test]
    fn edit_resets_cursor_and_clamps() {
        let (mut s, mut d) = fresh(&[("10.0.0.1", 3), ("10.0.0.2", 1)]);
        assert_eq!(picks(&mut s, &d, 1), names("1"));
        d[1].spec = DestSpec {
            weight: 0,
            ..d[1].spec
        };
        s.update(&d, DestChange::Edited(1));
        // Only .2 (weight 1) is left: mw = 1.
        assert_eq!(picks(&mut s, &d, 3), names("222"));
    }

    #[test]
    fn all_zero_gives_none() {
        let mut s = WeightedRoundRobin::default();
        let d = build(&mut s, &[("10.0.0.1", 0), ("10.0.0.2", 0)]);
        assert_eq!(picks(&mut s, &d, 2), ["-", "-"]);
    }
}
