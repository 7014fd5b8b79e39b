//! The connection table's hash index: slot numbers in cache-line buckets.
//!
//! Why not `hashbrown`: a packet's lookup there touches a control-byte group
//! and, elsewhere, the bucket's value, and neither address is known before
//! the probe, so a burst cannot prefetch them. Here a key's home bucket is
//! one 64-byte line holding ten 16-bit tags and ten slot numbers; a burst
//! prefetches every packet's home line, then the slots whose tags match,
//! then does the lookups with both in cache (the scheme of DPDK's
//! `rte_hash_lookup_bulk`).
//!
//! Full buckets spill into the next one (linear probing by whole lines). Each
//! bucket counts the entries that went past it, so a lookup stops at the
//! first bucket with a zero count and a removal needs no tombstone (F14's
//! overflow counts). Entries never move, and the index never rehashes while
//! it stays within the capacity it was made for.

const WAYS: usize = 10;
/// Entries per ten buckets at the most, on average, before the index
/// grows: 81 % of the ways, 7.9 bytes per entry. Not more: runs of full
/// buckets lengthen fast past 80 % (at 85 %, an insertion into a full
/// table took 1.8 times as long).
const LOAD_PER_TEN: usize = 81;
const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u16; WAYS],
    slots: [u32; WAYS],
    /// Entries homed here or earlier that were placed further on (saturates:
    /// a saturated count is never decremented).
    overflow: u16,
    used: u16,
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

const EMPTY_BUCKET: Bucket = Bucket {
    tags: [0; WAYS],
    slots: [EMPTY; WAYS],
    overflow: 0,
    used: 0,
};

#[derive(Debug, Default)]
pub(super) struct Index {
    buckets: Vec<Bucket>,
    len: usize,
}

fn tag(h: u64) -> u16 {
    h as u16
}

impl Bucket {
    /// The ways holding an entry tagged `t`. The tags are compared in one
    /// pass (which the compiler turns into vector compares) into a bit
    /// mask, then the set bits are walked.
    #[inline]
    fn tagged(&self, t: u16) -> impl Iterator<Item = usize> + '_ {
        let mut m = 0u32;
        for w in 0..WAYS {
            m |= ((self.tags[w] == t) as u32) << w;
        }
        std::iter::from_fn(move || {
            let w = m.trailing_zeros() as usize;
            m &= m.wrapping_sub(1);
            (w < WAYS).then_some(w)
        })
        .filter(|&w| self.slots[w] != EMPTY)
    }
}

impl Index {
    /// An index that holds `capacity` entries without growing.
    pub(super) fn with_capacity(capacity: usize) -> Index {
        let n = (capacity * 10).div_ceil(LOAD_PER_TEN);
        Index {
            buckets: vec![EMPTY_BUCKET; n],
            len: 0,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    pub(super) fn bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    /// The bucket a hash starts at (the high half of the hash, scaled to
    /// the bucket count: no power-of-two rounding of the table's size).
    #[inline]
    fn home(&self, h: u64) -> usize {
        (((h >> 32) * self.buckets.len() as u64) >> 32) as usize
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        if b + 1 == self.buckets.len() {
            0
        } else {
            b + 1
        }
    }

    /// The address of the line a lookup of `h` reads first, to prefetch.
    #[inline]
    pub(super) fn home_line(&self, h: u64) -> Option<*const u8> {
        if self.buckets.is_empty() {
            return None;
        }
        Some(&self.buckets[self.home(h)] as *const Bucket as *const u8)
    }

    /// Calls `f` with each slot in `h`'s home bucket whose tag matches: the
    /// slots a lookup will compare keys with.
    #[inline]
    pub(super) fn home_candidates(&self, h: u64, mut f: impl FnMut(u32)) {
        if self.buckets.is_empty() {
            return;
        }
        let b = &self.buckets[self.home(h)];
        for w in b.tagged(tag(h)) {
            f(b.slots[w]);
        }
    }

    /// The slot of the entry with hash `h` for which `eq` holds.
    #[inline]
    pub(super) fn find(&self, h: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(h, &mut eq)
            .map(|(b, w)| self.buckets[b].slots[w])
    }

    /// How many entries with hash `h` that satisfy `eq` lie on the way
    /// an insertion under `h` would take: from the home bucket to the first
    /// with room, where it would go. Counts no further than `limit`. Reads
    /// only the lines the insertion reads next (a full count would walk on
    /// to the end of the run, which is often further).
    pub(super) fn count_on_the_way(
        &self,
        h: u64,
        limit: usize,
        mut eq: impl FnMut(u32) -> bool,
    ) -> usize {
        let mut n = 0;
        if self.buckets.is_empty() {
            return n;
        }
        let t = tag(h);
        let mut b = self.home(h);
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            n += bucket.tagged(t).filter(|&w| eq(bucket.slots[w])).count();
            if n >= limit || (bucket.used as usize) < WAYS {
                break;
            }
            b = self.next(b);
        }
        n.min(limit)
    }

    fn position(&self, h: u64, eq: &mut impl FnMut(u32) -> bool) -> Option<(usize, usize)> {
        if self.buckets.is_empty() {
            return None;
        }
        let t = tag(h);
        let mut b = self.home(h);
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[b];
            if let Some(w) = bucket.tagged(t).find(|&w| eq(bucket.slots[w])) {
                return Some((b, w));
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Adds `slot` under hash `h`. When the index is at its load limit it
    /// first grows to twice its size, asking `rehash` for the hash of each
    /// slot already in it.
    pub(super) fn insert(&mut self, h: u64, slot: u32, rehash: impl Fn(u32) -> u64) {
        debug_assert_ne!(slot, EMPTY);
        if (self.len + 1) * 10 > self.buckets.len() * LOAD_PER_TEN {
            self.grow(&rehash);
        }
        self.place(h, slot);
    }

    fn place(&mut self, h: u64, slot: u32) {
        let mut b = self.home(h);
        loop {
            let bucket = &mut self.buckets[b];
            if (bucket.used as usize) < WAYS {
                let w = bucket
                    .slots
                    .iter()
                    .position(|&s| s == EMPTY)
                    .expect("a bucket with room has an empty way");
                bucket.slots[w] = slot;
                bucket.tags[w] = tag(h);
                bucket.used += 1;
                self.len += 1;
                return;
            }
            bucket.overflow = bucket.overflow.saturating_add(1);
            b = self.next(b);
        }
    }

    /// Removes the entry for `slot`, stored under hash `h`; false when
    /// there is none.
    pub(super) fn remove(&mut self, h: u64, slot: u32) -> bool {
        let Some((at, w)) = self.position(h, &mut |s| s == slot) else {
            return false;
        };
        let mut b = self.home(h);
        while b != at {
            let bucket = &mut self.buckets[b];
            if bucket.overflow != u16::MAX {
                bucket.overflow -= 1;
            }
            b = self.next(b);
        }
        let bucket = &mut self.buckets[at];
        bucket.slots[w] = EMPTY;
        bucket.used -= 1;
        self.len -= 1;
        true
    }

    fn grow(&mut self, rehash: &impl Fn(u32) -> u64) {
        let n = (self.buckets.len() * 2).max(1);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY_BUCKET; n]);
        self.len = 0;
        for bucket in &old {
            for &s in &bucket.slots {
                if s != EMPTY {
                    self.place(rehash(s), s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A deliberately poor hash so that tags and homes collide.
    fn h(k: u32) -> u64 {
        ((k as u64 % 7) << 32) | (k as u64 % 3)
    }

    #[test]
    fn finds_what_it_holds_through_collisions_and_removals() {
        let mut ix = Index::with_capacity(64);
        for k in 0..64 {
            ix.insert(h(k), k, h);
        }
        for k in 0..64 {
            assert_eq!(ix.find(h(k), |s| s == k), Some(k));
        }
        for k in (0..64).step_by(2) {
            assert!(ix.remove(h(k), k));
            assert!(!ix.remove(h(k), k));
        }
        for k in 0..64 {
            let want = (k % 2 == 1).then_some(k);
            assert_eq!(ix.find(h(k), |s| s == k), want);
        }
        assert_eq!(ix.len(), 32);
    }

    #[test]
    fn counts_entries_of_a_hash_on_an_insertions_way() {
        let mut ix = Index::with_capacity(64);
        // 25 entries under one hash fill two buckets and spill into a
        // third.
        let h = 7 << 32 | 3;
        for k in 0..25 {
            ix.insert(h, k, |_| h);
        }
        ix.insert(9 << 32 | 4, 99, |_| 0);
        assert_eq!(ix.count_on_the_way(h, 100, |_| true), 25);
        assert_eq!(ix.count_on_the_way(h, 100, |s| s % 2 == 0), 13);
        assert_eq!(ix.count_on_the_way(h, 10, |_| true), 10);
        assert_eq!(ix.count_on_the_way(5 << 32 | 1, 100, |_| true), 0);
        // Room in the home bucket again: an insertion goes there, and
        // what lies beyond is not on its way.
        assert!(ix.remove(h, 0));
        assert_eq!(ix.count_on_the_way(h, 100, |_| true), 9);
    }

    #[test]
    fn grows_from_empty() {
        let mut ix = Index::default();
        assert_eq!(ix.find(1, |_| true), None);
        assert!(ix.home_line(1).is_none());
        for k in 0..1000u32 {
            ix.insert((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), k, |s| {
                (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            });
        }
        for k in 0..1000u32 {
            let hk = (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(ix.find(hk, |s| s == k), Some(k));
        }
        assert!(ix.bytes() <= 1000 * 16);
    }

    #[test]
    fn candidates_include_the_match() {
        let mut ix = Index::with_capacity(100);
        for k in 0..100u32 {
            ix.insert((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), k, |_| 0);
        }
        let hk = 42u64.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut seen = Vec::new();
        ix.home_candidates(hk, |s| seen.push(s));
        // 42 is in its home bucket unless that bucket overflowed.
        assert!(seen.contains(&42) || ix.find(hk, |s| s == 42) == Some(42));
    }

    proptest! {
        /// Against a model: any sequence of inserts and removals (with heavy
        /// hash collisions) leaves exactly the model's entries findable.
        #[test]
        fn matches_a_set(ops in proptest::collection::vec((any::<bool>(), 0u32..300), 1..600)) {
            let mut ix = Index::with_capacity(16);
            let mut model = std::collections::BTreeSet::new();
            for (add, k) in ops {
                if add {
                    if model.insert(k) {
                        ix.insert(h(k), k, h);
                    }
                } else {
                    prop_assert_eq!(ix.remove(h(k), k), model.remove(&k));
                }
            }
            prop_assert_eq!(ix.len(), model.len());
            for k in 0..300 {
                prop_assert_eq!(ix.find(h(k), |s| s == k).is_some(), model.contains(&k));
            }
        }
    }
}
