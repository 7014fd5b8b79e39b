//! Source hashing (`ip_vs_sh.c`).
//!
//! A table of 256 buckets is filled walking the dest list (newest first): a
//! dest keeps the cursor for `weight` buckets, then the next dest takes over,
//! wrapping round the list until every bucket is filled. A dest of weight 0
//! still gets one bucket per turn (and is unusable). The table is rebuilt on
//! every add, edit and delete.
//!
//! `key(off) = (off + hash_32(port + fold(saddr), 8)) & 255`, with `port` the
//! source port in host order when the service has `sh-port`, else 0. A
//! connection goes to bucket `key(0)`; if that dest has weight 0 or is
//! overloaded there is no dest, unless the service has `sh-fallback`: then,
//! with `ih = key(0)`, the buckets `key((off + ih) % 256)` are tried for `off`
//! in 0..256 and the first usable dest is taken. The offset is added *after*
//! hashing, so the probes are the buckets `2 * ih + off` (mod 256).

use super::hash::{fold, hash_32};
use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;
use crate::sched::sched_flags;

const TAB_BITS: u32 = 8;
const TAB_SIZE: usize = 1 << TAB_BITS;
const TAB_MASK: u32 = TAB_SIZE as u32 - 1;
/// A bucket with no dest (the list was empty).
const EMPTY: u32 = u32::MAX;

#[derive(Debug)]
pub struct SourceHashing {
    /// `sh-fallback`.
    fallback: bool,
    /// `sh-port`.
    port: bool,
    /// Index into the dest list of the last update, or [`EMPTY`].
    buckets: [u32; TAB_SIZE],
}

pub fn new(flags: u32) -> Box<dyn Scheduler> {
    Box::new(SourceHashing::with_flags(flags))
}

impl SourceHashing {
    fn with_flags(flags: u32) -> Self {
        SourceHashing {
            fallback: flags & sched_flags::SCHED1 != 0,
            port: flags & sched_flags::SCHED2 != 0,
            buckets: [EMPTY; TAB_SIZE],
        }
    }

    fn reassign(&mut self, dests: &[Dest]) {
        if dests.is_empty() {
            self.buckets = [EMPTY; TAB_SIZE];
            return;
        }
        let mut p = 0;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            *b = p as u32;
            count += 1;
            // A dest keeps the cursor until it has `weight` buckets (at
            // least one, since the count is checked after taking one).
            if count >= dests[p].weight() {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    /// The bucket index for this key and probe offset.
    fn key(hash: u32, off: u32) -> usize {
        (off.wrapping_add(hash) & TAB_MASK) as usize
    }

    /// The dest in bucket `b` if it is usable: Ok(index); Err(true) if the
    /// bucket is empty, Err(false) if its dest is unusable.
    fn usable(&self, dests: &[Dest], b: usize) -> Result<usize, bool> {
        let i = self.buckets[b] as usize;
        match dests.get(i) {
            None => Err(true),
            Some(d) if d.is_available() => Ok(i),
            Some(_) => Err(false),
        }
    }
}

impl Scheduler for SourceHashing {
    fn name(&self) -> &'static str {
        "sh"
    }

    fn update(&mut self, dests: &[Dest], _change: DestChange) {
        self.reassign(dests);
    }

    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize> {
        let port = if self.port { u32::from(input.sport) } else { 0 };
        let hash = hash_32(port.wrapping_add(fold(input.saddr)), TAB_BITS);
        let ih = Self::key(hash, 0);
        match self.usable(dests, ih) {
            Ok(i) => return Some(i),
            Err(true) => return None,
            Err(false) if !self.fallback => return None,
            Err(false) => {}
        }
        for off in 0..TAB_SIZE as u32 {
            let roff = (off + ih as u32) % TAB_SIZE as u32;
            match self.usable(dests, Self::key(hash, roff)) {
                Ok(i) => return Some(i),
                Err(true) => return None,
                Err(false) => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::testutil::*;
    use super::*;
    use crate::dest::{DestShared, DestSpec};
    use proptest::prelude::*;

    const FALLBACK: u32 = sched_flags::SCHED1;
    const PORT: u32 = sched_flags::SCHED2;

    fn overload(d: &mut Dest) {
        let spec = DestSpec {
            u_threshold: 1,
            ..d.spec
        };
        d.shared = DestShared::new(&spec);
        d.shared.bind_conn();
        assert!(d.shared.is_overloaded());
    }

    fn names(s: &SourceHashing, d: &[Dest], range: std::ops::Range<usize>) -> Vec<String> {
        s.buckets[range]
            .iter()
            .map(|&i| d[i as usize].spec.addr.to_string())
            .collect()
    }

    #[test]
    fn bucket_fill_follows_weights() {
        let mut s = SourceHashing::with_flags(0);
        let d = build(&mut s, &[("10.0.0.1", 2), ("10.0.0.2", 0), ("10.0.0.3", 3)]);
        // List .3 (3), .2 (0), .1 (2): a period of 3 + 1 + 2 = 6 buckets.
        let period = [
            "10.0.0.3", "10.0.0.3", "10.0.0.3", "10.0.0.2", "10.0.0.1", "10.0.0.1",
        ];
        assert_eq!(names(&s, &d, 0..6), period);
        assert_eq!(names(&s, &d, 6..12), period);
        // 256 = 42 * 6 + 4: the table ends part way through a period.
        assert_eq!(names(&s, &d, 252..256), period[..4]);
    }

    #[test]
    fn big_weight_fills_the_table() {
        let mut s = SourceHashing::with_flags(0);
        let d = build(&mut s, &[("10.0.0.1", 1), ("10.0.0.2", 300)]);
        // .2 comes first and keeps the cursor for all 256 buckets.
        assert!(s
            .buckets
            .iter()
            .all(|&i| d[i as usize].spec.addr.to_string() == "10.0.0.2"));
    }

    #[test]
    fn picks_by_source_address() {
        let mut s = SourceHashing::with_flags(0);
        let d = build(&mut s, &[("10.0.0.1", 2), ("10.0.0.2", 0), ("10.0.0.3", 3)]);
        // 192.168.1.50 = 0xC0A80132; * 0x61C88647 = 0x404880DE: bucket 64.
        // 64 % 6 = 4: .1. The source port is ignored without sh-port.
        assert_eq!(picks(&mut s, &d, 2), ["10.0.0.1", "10.0.0.1"]);
        let other_port = SchedInput {
            sport: 1234,
            ..input()
        };
        assert_eq!(s.schedule(&d, &other_port), Some(2));
    }

    #[test]
    fn sh_port_adds_the_source_port() {
        let mut s = SourceHashing::with_flags(PORT);
        let d = build(&mut s, &[("10.0.0.1", 2), ("10.0.0.2", 0), ("10.0.0.3", 3)]);
        // 40000 + 0xC0A80132 = 0xC0A89D72; * 0x61C88647 = 0xE43D569E:
        // bucket 228, 228 % 6 = 0: .3.
        assert_eq!(hash_32(0xC0A8_9D72, 8), 228);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.3"]);
        // Port 5: 0xC0A80137 * 0x61C88647 = 0x29332041, bucket 41, 41 % 6 = 5:
        // .1. Port 2: 0xC0A80134 -> 0x03D98D6C, bucket 3, 3 % 6 = 3: .2,
        // whose weight is 0, so no dest.
        let with = |sport| SchedInput { sport, ..input() };
        assert_eq!(s.schedule(&d, &with(5)), Some(2));
        assert_eq!(s.schedule(&d, &with(2)), None);
    }

    #[test]
    fn unavailable_without_fallback_is_none() {
        let mut s = SourceHashing::with_flags(0);
        let mut d = build(&mut s, &[("10.0.0.1", 2), ("10.0.0.2", 1), ("10.0.0.3", 3)]);
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
        // Quiesce .1 instead: the table is rebuilt, .1 keeps one bucket per
        // period of 3 + 1 + 1 = 5, and 64 % 5 = 4 is still .1, now unusable.
        let mut d = build(&mut s, &[("10.0.0.1", 2), ("10.0.0.2", 1), ("10.0.0.3", 3)]);
        d[2].spec.weight = 0;
        s.update(&d, DestChange::Edited(2));
        assert_eq!(&s.buckets[..6], &[0, 0, 0, 1, 2, 0]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
        // Back to weight 2: a period of 6, 64 % 6 = 4 is .1 again.
        d[2].spec.weight = 2;
        s.update(&d, DestChange::Edited(2));
        assert_eq!(&s.buckets[..6], &[0, 0, 0, 1, 2, 2]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
    }

    #[test]
    fn fallback_probe_order() {
        // List .4 (1), .3 (2), .2 (1), .1 (1): a period of 5 buckets,
        // bucket % 5 = 0 .4, 1 .3, 2 .3, 3 .2, 4 .1.
        let mut s = SourceHashing::with_flags(FALLBACK);
        let adds = [
            ("10.0.0.1", 1),
            ("10.0.0.2", 1),
            ("10.0.0.3", 2),
            ("10.0.0.4", 1),
        ];
        let mut d = build(&mut s, &adds);
        // The key's bucket is 64 (64 % 5 = 4: .1).
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.1"]);
        // .1 and .3 overloaded. The probes are key(64 + off) = 128 + off:
        // 128 % 5 = 3 is .2, usable. (Probing from 65 would give .4.)
        overload(&mut d[3]);
        overload(&mut d[1]);
        assert_eq!(picks(&mut s, &d, 2), ["10.0.0.2", "10.0.0.2"]);
        // .2 overloaded too: 128 .2, 129 .1, 130 .4.
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.4"]);
        // All unusable: none after all 256 probes.
        overload(&mut d[0]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    #[test]
    fn fallback_probe_order_with_port() {
        // sh-port and sh-fallback together: the port is in every probe.
        let mut s = SourceHashing::with_flags(FALLBACK | PORT);
        let adds = [
            ("10.0.0.1", 1),
            ("10.0.0.2", 1),
            ("10.0.0.3", 2),
            ("10.0.0.4", 1),
        ];
        let mut d = build(&mut s, &adds);
        // Port 40000: bucket 228, 228 % 5 = 3: .2 (index 2).
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.2"]);
        // .2 overloaded: probes (2 * 228 + off) & 255 = 200, 201, ...
        // 200 % 5 = 0: .4.
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.4"]);
        // .4 overloaded: 201 % 5 = 1: .3.
        overload(&mut d[0]);
        assert_eq!(picks(&mut s, &d, 1), ["10.0.0.3"]);
    }

    #[test]
    fn empty_list_is_none_even_with_fallback() {
        let mut s = SourceHashing::with_flags(FALLBACK);
        let mut d = build(&mut s, &[("10.0.0.1", 1)]);
        let key = d[0].key();
        d.remove(0);
        s.update(&d, DestChange::Removed { index: 0, key });
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    proptest! {
        #[test]
        fn never_picks_unavailable(
            ws in proptest::collection::vec((0u32..4, any::<bool>()), 1..8),
            flags in 0u32..4,
            keys in proptest::collection::vec((any::<u32>(), any::<u16>()), 32),
        ) {
            let adds: Vec<(String, u32)> = ws
                .iter()
                .enumerate()
                .map(|(i, (w, _))| (format!("10.0.0.{}", i + 1), *w))
                .collect();
            let adds: Vec<(&str, u32)> = adds.iter().map(|(a, w)| (a.as_str(), *w)).collect();
            let mut s = SourceHashing::with_flags(flags << 3);
            let mut d = build(&mut s, &adds);
            for (dest, (_, over)) in d.iter_mut().rev().zip(&ws) {
                if *over {
                    overload(dest);
                }
            }
            let any_usable = d.iter().any(|x| x.is_available());
            for (a, sport) in keys {
                let inp = SchedInput { saddr: IpAddr::from(a.to_be_bytes()), sport, ..input() };
                match s.schedule(&d, &inp) {
                    Some(i) => prop_assert!(d[i].is_available()),
                    // With fallback the probes cover every bucket, and every
                    // dest has at least one bucket.
                    None => prop_assert!(!s.fallback || !any_usable),
                }
            }
        }
    }
}
