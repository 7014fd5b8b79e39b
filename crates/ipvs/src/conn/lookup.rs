//! Finding a client's connection: the plain lookup, and the burst's two
//! prefetch stages (index line, then slots) with the lookup that uses them.

use super::key::{SlotKey, V4Key, V6Key};
use super::{ConnRef, ConnTable, FlowKey, V6};

/// A slot that a burst's prefetch stage found for a packet: probably its
/// connection, to be confirmed by [`ConnTable::lookup_hinted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotHint(pub(super) u32);

/// A flow key's hash, computed once per packet: a burst uses it to prefetch
/// the index line and slot its lookup will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash {
    pub(super) hash: u64,
    pub(super) v6: bool,
}

impl ConnTable {
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<ConnRef> {
        if let Some(k) = V4Key::from_flow(key) {
            let h = k.seeded_hash(&self.seed);
            let s = &self.v4;
            return s
                .index
                .find(h, |i| s.slots[i as usize].key == k)
                .map(ConnRef);
        }
        let k = V6Key::from_flow(key)?;
        let h = k.seeded_hash(&self.seed);
        let s = &self.v6;
        s.index
            .find(h, |i| s.slots[i as usize].key == k)
            .map(|i| ConnRef(i | V6))
    }

    /// The hash [`ConnTable::lookup`] will compute for `key`; `None` for a
    /// key with mixed address families (never in a table).
    #[inline]
    pub fn key_hash(&self, key: &FlowKey) -> Option<KeyHash> {
        if let Some(k) = V4Key::from_flow(key) {
            return Some(KeyHash {
                hash: k.seeded_hash(&self.seed),
                v6: false,
            });
        }
        V6Key::from_flow(key).map(|k| KeyHash {
            hash: k.seeded_hash(&self.seed),
            v6: true,
        })
    }

    /// The first burst stage: the index line `h`'s lookup starts at (for
    /// `prefetch`, which gets its address).
    #[inline]
    pub fn prefetch_index(&self, h: KeyHash, prefetch: impl Fn(*const u8)) {
        let line = if h.v6 {
            self.v6.index.home_line(h.hash)
        } else {
            self.v4.index.home_line(h.hash)
        };
        if let Some(p) = line {
            prefetch(p);
        }
    }

    /// The second burst stage, once the index line is in cache: the slots
    /// whose tags match `h` in it. Returns the first of them, for
    /// [`ConnTable::lookup_hinted`].
    #[inline]
    pub fn prefetch_slots(&self, h: KeyHash, prefetch: impl Fn(*const u8)) -> Option<SlotHint> {
        if h.v6 {
            self.v6
                .prefetch_candidates(h.hash, prefetch)
                .map(|i| SlotHint(i | V6))
        } else {
            self.v4.prefetch_candidates(h.hash, prefetch).map(SlotHint)
        }
    }

    /// [`ConnTable::lookup`], trying first the slot the burst stage found
    /// (it is the connection if it is live and holds this very key, keys
    /// being unique): the index line is not read a second time.
    #[inline]
    pub fn lookup_hinted(&self, key: &FlowKey, hint: Option<SlotHint>) -> Option<ConnRef> {
        if let Some(SlotHint(r)) = hint {
            let hit = if r & V6 == 0 {
                self.v4.holds(r, key)
            } else {
                self.v6.holds(r & !V6, key)
            };
            if hit {
                return Some(ConnRef(r));
            }
        }
        self.lookup(key)
    }
}
