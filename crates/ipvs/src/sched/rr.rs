//! Round robin (`ip_vs_rr.c`).
//!
//! The cursor remembers the last dest chosen; scheduling scans forward from
//! the one after it, wrapping, and takes the first dest with weight > 0 that
//! is not overloaded. Before any pick the cursor sits at the list head, so the
//! first pick is the newest dest.

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;
use crate::types::DestKey;

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// The last dest chosen; None is the list head.
    last: Option<DestKey>,
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "rr"
    }

    fn update(&mut self, dests: &[Dest], change: DestChange) {
        match change {
            // The kernel moves the cursor back one if its dest is removed.
            DestChange::Removed { index, key } if self.last == Some(key) => {
                self.last = index.checked_sub(1).map(|i| dests[i].key());
            }
            DestChange::Reset => self.last = None,
            _ => {}
        }
    }

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        let n = dests.len();
        let start = match self
            .last
            .and_then(|k| dests.iter().position(|d| d.key() == k))
        {
            Some(p) => p + 1,
            None => 0,
        };
        // One full turn: from the head that is the list once; from a dest it
        // wraps round and ends with the last-chosen dest itself.
        for off in 0..n {
            let i = (start + off) % n;
            if dests[i].is_available() {
                self.last = Some(dests[i].key());
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::dest::DestSpec;

    #[test]
    fn newest_first_then_alternate() {
        let mut s = RoundRobin::default();
        let d = build(&mut s, &[("10.0.0.220", 1), ("10.0.0.193", 1)]);
        assert_eq!(
            picks(&mut s, &d, 4),
            ["10.0.0.193", "10.0.0.220", "10.0.0.193", "10.0.0.220"]
        );
    }

    #[test]
    fn skips_weight_zero() {
        let mut s = RoundRobin::default();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        d[1].spec = DestSpec {
            weight: 0,
            ..d[1].spec
        };
        s.update(&d, DestChange::Edited(1));
        assert_eq!(
            picks(&mut s, &d, 4),
            ["10.0.0.3", "10.0.0.1", "10.0.0.3", "10.0.0.1"]
        );
    }

    #[test]
    fn removing_the_cursor_dest_steps_back() {
        let mut s = RoundRobin::default();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        // List: .3 .2 .1; pick .3 then .2
        assert_eq!(picks(&mut s, &d, 2), ["10.0.0.3", "10.0.0.2"]);
        let key = d[1].key();
        d.remove(1);
        s.update(&d, DestChange::Removed { index: 1, key });
        // Cursor moved back to .3, so the next is .1.
        assert_eq!(picks(&mut s, &d, 2), ["10.0.0.1", "10.0.0.3"]);
    }

    #[test]
    fn none_when_all_unavailable() {
        let mut s = RoundRobin::default();
        let d = build(&mut s, &[("10.0.0.1", 0)]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
        let empty: Vec<Dest> = Vec::new();
        assert_eq!(s.schedule(&empty, &input()), None);
    }
}
