//! Destination hashing (`ip_vs_dh.c`).
//!
//! A table of 256 buckets is filled by walking the dest list round robin, one
//! bucket per dest per turn, weights ignored: bucket `i` holds the dest at
//! list index `i % n` (newest dest first). A connection goes to the bucket
//! `hash_32(fold(daddr), 8)`; if that dest has weight 0 or is overloaded
//! there is no dest: dh has no fallback. The table is rebuilt on every change
//! of the list (the kernel rebuilds on add and delete; an edit cannot change
//! it, as it depends on the list order only).

use super::hash::{fold, hash_32};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
/// A bucket with no dest (the list was empty).
const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
pub struct DestinationHashing {
    /// Index into the dest list of the last update, or [`EMPTY`].
    buckets: [u32; TAB_SIZE],
}

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    Box::new(DestinationHashing {
        buckets: [EMPTY; TAB_SIZE],
    })
}

impl DestinationHashing {
    fn reassign(&mut self, dests: &[Dest]) {
        let n = dests.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if n == 0 { EMPTY } else { (i % n) as u32 };
        }
    }
}

impl Scheduler for DestinationHashing {
    fn name(&self) -> &'static str {
        "dh"
    }

    fn update(&mut self, dests: &[Dest], _change: DestChange) {
        self.reassign(dests);
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let b = hash_32(fold(input.daddr), TAB_BITS) as usize;
        let i = self.buckets[b] as usize;
        dests.get(i).filter(|d| d.is_available()).map(|_| i)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::testutil::*;
    use super::*;
    use crate::dest::{DestShared, DestSpec};
    use proptest::prelude::*;

    fn fresh() -> DestinationHashing {
        DestinationHashing {
            buckets: [EMPTY; TAB_SIZE],
        }
    }

    fn to(daddr: &str) -> SchedInput {
        SchedInput {
            daddr: daddr.parse().unwrap(),
            ..input()
        }
    }

    #[test]
    fn buckets_round_robin_over_list_order() {
        let mut s = fresh();
        // Weights do not matter.
        let d = build(&mut s, &[("10.0.0.1", 5), ("10.0.0.2", 1), ("10.0.0.3", 0)]);
        // List order .3 .2 .1: buckets 0, 1, 2, 3, ... are .3 .2 .1 .3 ...
        assert_eq!(&s.buckets[..7], &[0, 1, 2, 0, 1, 2, 0]);
        // 255 = 85 * 3: the last bucket is the list head again.
        assert_eq!(s.buckets[255], 0);
        assert_eq!(d[0].spec.addr.to_string(), "10.0.0.3");
    }

    #[test]
    fn picks_by_destination_address() {
        let mut s = fresh();
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        // 192.168.1.10 = 0xC0A8010A; * 0x61C88647 = 0xF8F385C6 (mod 2^32),
        // top byte 0xF8 = 248.
        assert_eq!(hash_32(0xC0A8_010A, 8), 248);
        // 248 % 3 = 2: the third in list order, .1. Always the same.
        assert_eq!(picks(&mut s, &d, 3), ["10.0.0.1", "10.0.0.1", "10.0.0.1"]);
        // 10.1.1.1 = 0x0A010101: * 0x61C88647 = 0x7695CD47 (mod 2^32),
        // bucket 0x76 = 118, 118 % 3 = 1: .2.
        assert_eq!(hash_32(0x0A01_0101, 8), 118);
        assert_eq!(s.schedule(&d, &to("10.1.1.1")), Some(1));
        // The source address is not looked at.
        let other_src = SchedInput {
            saddr: "1.2.3.4".parse().unwrap(),
            ..to("10.1.1.1")
        };
        assert_eq!(s.schedule(&d, &other_src), Some(1));
    }

    #[test]
    fn ipv6_destination_folds() {
        let mut s = fresh();
        let d = build(&mut s, &[("2001:db8::1", 1), ("2001:db8::2", 1)]);
        // fold(2001:db8::5:6) = 0x20010db8 ^ 0x00050006 = 0x20040dbe;
        // * 0x61C88647 = 0xBAC143B2 (mod 2^32), bucket 0xBA = 186,
        // 186 % 2 = 0: the newest, ::2.
        assert_eq!(hash_32(0x2004_0dbe, 8), 186);
        assert_eq!(s.schedule(&d, &to("2001:db8::5:6")), Some(0));
        // 2001:db8::6:5 folds to 0x20070dbd: 0xEBCDBD6B, bucket 235, odd: ::1.
        assert_eq!(s.schedule(&d, &to("2001:db8::6:5")), Some(1));
    }

    #[test]
    fn unavailable_means_no_dest() {
        let mut s = fresh();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        // Default input goes to index 2 (.1); quiesce it.
        d[2].spec = DestSpec {
            weight: 0,
            ..d[2].spec
        };
        s.update(&d, DestChange::Edited(2));
        assert_eq!(picks(&mut s, &d, 2), ["-", "-"]);
        // Overloaded: also none, other dests are not tried.
        let spec = DestSpec {
            weight: 1,
            u_threshold: 1,
            ..d[2].spec
        };
        d[2].spec = spec;
        d[2].shared = DestShared::new(&spec);
        d[2].shared.bind_conn();
        s.update(&d, DestChange::Edited(2));
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    #[test]
    fn removal_rebuilds() {
        let mut s = fresh();
        let mut d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        let key = d[0].key();
        d.remove(0);
        s.update(&d, DestChange::Removed { index: 0, key });
        // List .2 .1; bucket 248 -> 248 % 2 = 0: .2.
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
        let key = d[0].key();
        d.remove(0);
        s.update(&d, DestChange::Removed { index: 0, key });
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        let key = d[0].key();
        d.remove(0);
        s.update(&d, DestChange::Removed { index: 0, key });
        assert!(s.buckets.iter().all(|&b| b == EMPTY));
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    proptest! {
        #[test]
        fn never_picks_unavailable(
            ws in proptest::collection::vec((0u32..3, any::<bool>()), 1..8),
            daddrs in proptest::collection::vec(any::<u32>(), 32),
        ) {
            let adds: Vec<(String, u32)> = ws
                .iter()
                .enumerate()
                .map(|(i, (w, _))| (format!("10.0.0.{}", i + 1), *w))
                .collect();
            let adds: Vec<(&str, u32)> = adds.iter().map(|(a, w)| (a.as_str(), *w)).collect();
            let mut s = fresh();
            let mut d = build(&mut s, &adds);
            for (dest, (_, over)) in d.iter_mut().rev().zip(&ws) {
                if *over {
                    let spec = DestSpec { u_threshold: 1, ..dest.spec };
                    dest.shared = DestShared::new(&spec);
                    dest.shared.bind_conn();
                }
            }
            for a in daddrs {
                let inp = SchedInput { daddr: IpAddr::from(a.to_be_bytes()), ..input() };
                let b = hash_32(a, 8) as usize;
                match s.schedule(&d, &inp) {
                    Some(i) => {
                        prop_assert!(d[i].is_available());
                        prop_assert_eq!(i, b % d.len());
                    }
                    None => prop_assert!(!d[b % d.len()].is_available()),
                }
            }
        }
    }
}
