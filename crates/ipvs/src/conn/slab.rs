//! The slabs connections live in: one fixed-size slot each, preallocated,
//! found through the bucket index (`index.rs`).

use super::index::Index;
use super::key::{Seed, SlotKey, V4Key};
use super::{ConnTable, FlowKey};
use crate::tcp_state::TcpState;

/// What every connection stores beside its key: 16 bytes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(super) struct ConnData {
    /// Handle in the dest registry.
    pub(super) dest: u32,
    /// Handle in the template registry, or NONE.
    pub(super) template: u32,
    /// Expiry, in whole seconds of the dataplane clock.
    pub(super) expires_s: u32,
    /// The real server's port (the packet's, for port-zero services).
    pub(super) dport: u16,
    pub(super) state: u8,
    pub(super) flags: u8,
}

pub(super) const NONE: u32 = u32::MAX;

pub(super) const F_LIVE: u8 = 1;

pub(super) const F_ACTIVE: u8 = 2;

pub(super) const F_NO_OUTPUT: u8 = 4;

/// A packet from the real server passed (NAT): the connection is not
/// half-open, whatever its state.
pub(super) const F_REPLIED: u8 = 8;

/// The high four bits count the client's packets, up to
/// [`IN_PKTS_MAX`] (the kernel's `in_pkts`, as `drop_entry` reads it).
pub(super) const IN_PKTS_SHIFT: u32 = 4;

pub(super) const IN_PKTS_MAX: u8 = 9;

pub(super) fn in_pkts(flags: u8) -> u8 {
    flags >> IN_PKTS_SHIFT
}

pub(super) fn state_from(u: u8) -> TcpState {
    TcpState::ALL[u as usize]
}

pub(super) fn secs(ms: u64) -> u32 {
    ms.div_ceil(1000).min(u32::MAX as u64) as u32
}

/// One slab entry: the key and the connection's data. Aligned so that an
/// IPv4 slot is half a cache line and never straddles two.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
pub(super) struct Slot<K> {
    pub(super) key: K,
    pub(super) data: ConnData,
}

/// Bytes one IPv4 connection's slot takes.
pub const V4_SLOT_BYTES: usize = std::mem::size_of::<Slot<V4Key>>();

/// One slab with its hash index.
#[derive(Debug)]
pub(super) struct Shard<K> {
    pub(super) slots: Vec<Slot<K>>,
    pub(super) free: Vec<u32>,
    /// Every connection by its client endpoint, for both directions.
    pub(super) index: Index,
    pub(super) live: usize,
    /// Live NAT connections: while there are none, a packet that is no
    /// client's is not looked up as a reply.
    pub(super) nat_live: usize,
    pub(super) sweep_at: usize,
}

impl<K: SlotKey> Shard<K> {
    pub(super) fn new(capacity: usize) -> Self {
        Shard {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            index: Index::with_capacity(capacity),
            live: 0,
            nat_live: 0,
            sweep_at: 0,
        }
    }

    /// Whether slot `i` holds a live connection with this key (keys being
    /// unique, it is then that connection).
    #[inline]
    pub(super) fn holds(&self, i: u32, key: &FlowKey) -> bool {
        self.slots
            .get(i as usize)
            .is_some_and(|s| s.data.flags & F_LIVE != 0 && Some(s.key) == K::from_flow(key))
    }

    /// Prefetches the slots whose tags match `hash` in its home bucket;
    /// returns the first.
    #[inline]
    pub(super) fn prefetch_candidates(
        &self,
        hash: u64,
        prefetch: impl Fn(*const u8),
    ) -> Option<u32> {
        let mut first = None;
        self.index.home_candidates(hash, |i| {
            first.get_or_insert(i);
            prefetch(&self.slots[i as usize] as *const Slot<K> as *const u8)
        });
        first
    }

    pub(super) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K>>()
            + self.free.capacity() * 4
            + self.index.bytes()
    }
}

impl ConnTable {
    /// Stores a connection in a slab and its index; `masq` for NAT.
    pub(super) fn put<K: SlotKey>(
        s: &mut Shard<K>,
        seed: &Seed,
        key: K,
        data: ConnData,
        masq: bool,
    ) -> u32 {
        let slot = Slot { key, data };
        let i = match s.free.pop() {
            Some(i) => {
                s.slots[i as usize] = slot;
                i
            }
            None => {
                s.slots.push(slot);
                (s.slots.len() - 1) as u32
            }
        };
        let slots = &s.slots;
        s.index.insert(key.seeded_hash(seed), i, |j| {
            slots[j as usize].key.seeded_hash(seed)
        });
        s.nat_live += masq as usize;
        s.live += 1;
        i
    }
}
