//! A worker's connection table: which real server each flow was given, its
//! TCP state, and when it expires.
//!
//! Memory is the point. An IPv4 connection is one 32-byte [`Slot`] (key,
//! dest handle, template handle, expiry in seconds, port, state, flags) in a
//! preallocated slab, plus its slot number in a bucket index (`index.rs`, 8
//! bytes a connection) and in the NAT reply index (8 more), both sized for
//! the whole capacity up front: about 48 bytes per connection, table
//! overhead included, and 8 more for the table-pressure queue (on by
//! default: [`ConnTable::set_reclaim_half_open`]). What many connections share (the
//! real server's address, forwarding method and counters; a persistence
//! template) lives once in small registries and is referred to by a 32-bit
//! handle. IPv6 connections have their own slab with wider keys.
//!
//! Expiry sweeps the slab a few slots per poll loop, resuming where it
//! stopped, so no loop ever scans the whole table.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::dest::{Dest, DestShared};
use crate::persist::Template;
use crate::stats::{DestStats, Lane};
use crate::tcp_state::{next_state_in, Direction, Event, StateTables, TcpState, Timeouts};
use crate::types::{FwdMethod, Protocol};

mod index;
use index::Index;

/// A flow as the client sent it: protocol, client and virtual endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
}

/// A NAT connection as its replies carry it: the real server's endpoint and
/// the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutKey {
    pub protocol: Protocol,
    pub daddr: IpAddr,
    pub dport: u16,
    pub caddr: IpAddr,
    pub cport: u16,
}

/// Where a new connection goes: a dest, directly or through a template.
#[derive(Debug, Clone)]
pub struct Binding {
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwd: FwdMethod,
    pub dest: Arc<DestShared>,
    pub template: Option<Arc<Template>>,
}

impl Binding {
    pub fn to_dest(d: &Dest) -> Binding {
        Binding {
            daddr: d.spec.addr,
            dport: d.spec.port,
            fwd: d.spec.fwd,
            dest: d.shared.clone(),
            template: None,
        }
    }
}

/// A connection as callers see it, assembled from its slot and the
/// registries.
#[derive(Debug, Clone, Copy)]
pub struct Conn<'a> {
    pub key: FlowKey,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwd: FwdMethod,
    pub state: TcpState,
    /// When it expires, in the dataplane clock (milliseconds, whole seconds).
    pub expires_ms: u64,
    active: bool,
    dest: &'a Arc<DestShared>,
}

impl Conn<'_> {
    /// The key of this connection's replies, for NAT.
    pub fn out_key(&self) -> OutKey {
        OutKey {
            protocol: self.key.protocol,
            daddr: self.daddr,
            dport: self.dport,
            caddr: self.key.caddr,
            cport: self.key.cport,
        }
    }

    pub fn dest(&self) -> &Arc<DestShared> {
        self.dest
    }

    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// Where a listing ([`ConnTable::list_slice`]) goes on from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListCursor {
    v6: bool,
    at: usize,
}

/// A handle to a table slot; valid until the entry is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef(u32);

/// High bit of a [`ConnRef`]: the IPv6 slab.
const V6: u32 = 1 << 31;

/// The table is at its configured size; the new flow is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection table full")]
pub struct TableFull;

/// What every connection stores beside its key: 16 bytes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct ConnData {
    /// Handle in the dest registry.
    dest: u32,
    /// Handle in the template registry, or NONE.
    template: u32,
    /// Expiry, in whole seconds of the dataplane clock.
    expires_s: u32,
    /// The real server's port (the packet's, for port-zero services).
    dport: u16,
    state: u8,
    flags: u8,
}

const NONE: u32 = u32::MAX;
const F_LIVE: u8 = 1;
const F_ACTIVE: u8 = 2;
const F_NO_OUTPUT: u8 = 4;
/// A packet from the real server passed (NAT): the connection is not
/// half-open, whatever its state.
const F_REPLIED: u8 = 8;
/// The high four bits count the client's packets, up to
/// [`IN_PKTS_MAX`] (the kernel's `in_pkts`, as `drop_entry` reads it).
const IN_PKTS_SHIFT: u32 = 4;
const IN_PKTS_MAX: u8 = 9;

fn in_pkts(flags: u8) -> u8 {
    flags >> IN_PKTS_SHIFT
}

/// Whether a TCP connection in `state` with `flags` is half-open: only the
/// client's SYN(s) seen, nothing from the real server.
fn half_open(state: u8, flags: u8) -> bool {
    flags & (F_LIVE | F_REPLIED) == F_LIVE
        && matches!(
            state_from(state),
            TcpState::None | TcpState::SynRecv | TcpState::SynAck
        )
}

/// The address family specific part of a slot.
trait SlotKey: Copy + Default + PartialEq {
    fn from_flow(k: &FlowKey) -> Option<Self>;
    fn to_flow(&self) -> FlowKey;
    fn seeded_hash(&self, seed: &Seed) -> u64;
}

/// The seeds of a table's hashes, random per table: clients choose their
/// addresses and ports, and must not be able to aim them at one bucket.
#[derive(Debug, Clone, Copy)]
struct Seed(u64, u64);

impl Seed {
    fn random() -> Seed {
        let s = std::collections::hash_map::RandomState::new();
        Seed(s.hash_one(1u8) | 1, s.hash_one(2u8) | 1)
    }

    /// Two words into one hash: one 64×64→128-bit multiply, folded (the
    /// mixing step of wyhash/foldhash); every output bit depends on every
    /// input bit.
    #[inline]
    fn hash2(&self, a: u64, b: u64) -> u64 {
        let p = (a ^ self.0) as u128 * (b ^ self.1) as u128;
        (p as u64) ^ (p >> 64) as u64
    }

    #[inline]
    fn hash_addrs(&self, x: u128, y: u128, rest: u64) -> u64 {
        let h = self.hash2((x >> 64) as u64, x as u64);
        let h = self.hash2(h ^ (y >> 64) as u64, y as u64);
        self.hash2(h, rest)
    }
}

fn ip_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An IPv4 flow key: 16 bytes (13 used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
struct V4Key {
    caddr: u32,
    vaddr: u32,
    cport: u16,
    vport: u16,
    protocol: u8,
}

/// An IPv6 flow key: 40 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
struct V6Key {
    caddr: [u8; 16],
    vaddr: [u8; 16],
    cport: u16,
    vport: u16,
    protocol: u8,
}

impl SlotKey for V4Key {
    fn from_flow(k: &FlowKey) -> Option<Self> {
        match (k.caddr, k.vaddr) {
            (IpAddr::V4(c), IpAddr::V4(v)) => Some(V4Key {
                caddr: c.into(),
                vaddr: v.into(),
                cport: k.cport,
                vport: k.vport,
                protocol: k.protocol.number(),
            }),
            _ => None,
        }
    }

    #[inline]
    fn seeded_hash(&self, seed: &Seed) -> u64 {
        seed.hash2(
            (self.caddr as u64) << 32 | self.vaddr as u64,
            (self.cport as u64) << 32 | (self.vport as u64) << 16 | self.protocol as u64,
        )
    }

    fn to_flow(&self) -> FlowKey {
        FlowKey {
            protocol: Protocol::from_number(self.protocol).unwrap_or(Protocol::Tcp),
            caddr: IpAddr::V4(Ipv4Addr::from(self.caddr)),
            cport: self.cport,
            vaddr: IpAddr::V4(Ipv4Addr::from(self.vaddr)),
            vport: self.vport,
        }
    }
}

impl SlotKey for V6Key {
    fn from_flow(k: &FlowKey) -> Option<Self> {
        match (k.caddr, k.vaddr) {
            (IpAddr::V6(c), IpAddr::V6(v)) => Some(V6Key {
                caddr: c.octets(),
                vaddr: v.octets(),
                cport: k.cport,
                vport: k.vport,
                protocol: k.protocol.number(),
            }),
            _ => None,
        }
    }

    #[inline]
    fn seeded_hash(&self, seed: &Seed) -> u64 {
        seed.hash_addrs(
            u128::from_be_bytes(self.caddr),
            u128::from_be_bytes(self.vaddr),
            (self.cport as u64) << 32 | (self.vport as u64) << 16 | self.protocol as u64,
        )
    }

    fn to_flow(&self) -> FlowKey {
        FlowKey {
            protocol: Protocol::from_number(self.protocol).unwrap_or(Protocol::Tcp),
            caddr: IpAddr::V6(Ipv6Addr::from(self.caddr)),
            cport: self.cport,
            vaddr: IpAddr::V6(Ipv6Addr::from(self.vaddr)),
            vport: self.vport,
        }
    }
}

/// One slab entry: the key and the connection's data. Aligned so that an
/// IPv4 slot is half a cache line and never straddles two.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(32))]
struct Slot<K> {
    key: K,
    data: ConnData,
}

/// Bytes one IPv4 connection's slot takes.
pub const V4_SLOT_BYTES: usize = std::mem::size_of::<Slot<V4Key>>();

/// Interned things many connections point at, by 32-bit handle, with a
/// reference count; a handle is reused once nothing refers to it. `I` is
/// what tells two items apart: everything a connection reads from the item.
#[derive(Debug)]
struct Registry<T, I> {
    items: Vec<Option<(T, u32)>>,
    free: Vec<u32>,
    by_id: FxHashMap<I, u32>,
}

impl<T, I> Default for Registry<T, I> {
    fn default() -> Self {
        Registry {
            items: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
        }
    }
}

impl<T, I: std::hash::Hash + Eq> Registry<T, I> {
    /// The handle of the item identified by `id`, made with `make` when new;
    /// counts one more reference.
    fn acquire(&mut self, id: I, make: impl FnOnce() -> T) -> u32 {
        if let Some(&h) = self.by_id.get(&id) {
            if let Some((_, n)) = &mut self.items[h as usize] {
                *n += 1;
            }
            return h;
        }
        let item = Some((make(), 1));
        let h = match self.free.pop() {
            Some(h) => {
                self.items[h as usize] = item;
                h
            }
            None => {
                self.items.push(item);
                (self.items.len() - 1) as u32
            }
        };
        self.by_id.insert(id, h);
        h
    }

    fn get(&self, h: u32) -> &T {
        &self.items[h as usize]
            .as_ref()
            .expect("live registry handle")
            .0
    }

    fn release(&mut self, h: u32, id: impl FnOnce(&T) -> I) {
        let slot = &mut self.items[h as usize];
        if let Some((t, n)) = slot {
            *n -= 1;
            if *n == 0 {
                self.by_id.remove(&id(t));
                *slot = None;
                self.free.push(h);
            }
        }
    }
}

/// A real server as its connections refer to it.
#[derive(Debug)]
struct DestRef {
    addr: IpAddr,
    fwd: FwdMethod,
    shared: Arc<DestShared>,
    /// `shared.stats`, held here too so that counting a packet reads this
    /// entry (which the packet's target needs anyway) and its lane, and not
    /// the line of `shared` that other workers write.
    stats: DestStats,
}

/// What tells two dest entries apart: the dest (its shared part's
/// address) and the whole forwarding method, tunnel parameters included.
/// `-e` keeps the `DestShared` and may change the method or the tunnel:
/// connections made before keep their entry, later ones get a new one.
type DestId = (usize, FwdMethod);

fn dest_id(shared: &Arc<DestShared>, fwd: FwdMethod) -> DestId {
    (Arc::as_ptr(shared) as usize, fwd)
}

/// One slab with its hash index.
#[derive(Debug)]
struct Shard<K> {
    slots: Vec<Slot<K>>,
    free: Vec<u32>,
    index: Index,
    /// NAT connections by their replies' key.
    out_index: Index,
    live: usize,
    sweep_at: usize,
}

impl<K: SlotKey> Shard<K> {
    fn new(capacity: usize) -> Self {
        Shard {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            index: Index::with_capacity(capacity),
            // Sized up front too (8 bytes a connection, NAT or not): grown
            // on demand it would rehash on the worker, under traffic.
            out_index: Index::with_capacity(capacity),
            live: 0,
            sweep_at: 0,
        }
    }

    /// Whether slot `i` holds a live connection with this key (keys being
    /// unique, it is then that connection).
    #[inline]
    fn holds(&self, i: u32, key: &FlowKey) -> bool {
        self.slots
            .get(i as usize)
            .is_some_and(|s| s.data.flags & F_LIVE != 0 && Some(s.key) == K::from_flow(key))
    }

    /// Prefetches the slots whose tags match `hash` in its home bucket;
    /// returns the first.
    #[inline]
    fn prefetch_candidates(&self, hash: u64, prefetch: impl Fn(*const u8)) -> Option<u32> {
        let mut first = None;
        self.index.home_candidates(hash, |i| {
            first.get_or_insert(i);
            prefetch(&self.slots[i as usize] as *const Slot<K> as *const u8)
        });
        first
    }

    fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot<K>>()
            + self.free.capacity() * 4
            + self.index.bytes()
            + self.out_index.bytes()
    }
}

/// One worker's connections. Not shared: the worker that owns it is the only
/// reader and writer, so no locks are taken.
#[derive(Debug)]
pub struct ConnTable {
    v4: Shard<V4Key>,
    v6: Shard<V6Key>,
    dests: Registry<DestRef, DestId>,
    templates: Registry<Arc<Template>, usize>,
    capacity: usize,
    seed: Seed,
    timeouts: Timeouts,
    /// `timeouts` by TCP state, in seconds (a load instead of a match per
    /// segment).
    state_secs: [u32; TcpState::ALL.len()],
    /// The lane of every dest's traffic counters this table's worker
    /// counts in; none when counting is off.
    lane: Option<usize>,
    /// Which TCP state tables connections step with (`secure_tcp`).
    tables: StateTables,
    /// Half-open timeout while `secure_tcp` is on (0: the usual ones).
    secure_syn_secs: u32,
    /// Table pressure: TCP connections in the order they were made, so
    /// that a full table gives the oldest half-open one's place to a new
    /// connection. `None` when off.
    half_open: Option<HalfOpenQueue>,
    /// Connections given up for new ones ([`ConnTable::insert_bound`]) and
    /// dropped by `drop_entry`, since the table was made.
    reclaimed: u64,
    dropped_entries: u64,
    /// `drop_entry`'s countdowns, by the connection's incoming packets
    /// (the kernel's `todrop_counter`).
    todrop_counter: [u8; IN_PKTS_MAX as usize],
    rng: fastrand::Rng,
}

/// TCP connections oldest first, by slot and a tag of their key (a slot
/// reused by a later connection no longer matches): a ring sized for the
/// whole table up front, 8 bytes a connection. Entries of connections that
/// got established or went away are skipped when they reach the front.
#[derive(Debug)]
struct HalfOpenQueue {
    ring: std::collections::VecDeque<(ConnRef, u32)>,
    capacity: usize,
}

/// Most stale queue entries one insertion skips looking for a half-open
/// connection to reclaim: an insertion never costs more than this.
const RECLAIM_SCAN: usize = 256;
/// Random slots an insertion looks at for a half-open connection when the
/// queue has none.
const RECLAIM_PROBES: usize = 64;

/// A slot that a burst's prefetch stage found for a packet: probably its
/// connection, to be confirmed by [`ConnTable::lookup_hinted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotHint(u32);

/// A flow key's hash, computed once per packet: a burst uses it to prefetch
/// the index line and slot its lookup will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash {
    hash: u64,
    v6: bool,
}

fn out_hash(
    seed: &Seed,
    protocol: u8,
    daddr: IpAddr,
    dport: u16,
    caddr: IpAddr,
    cport: u16,
) -> u64 {
    seed.hash_addrs(
        ip_bits(daddr),
        ip_bits(caddr),
        (dport as u64) << 32 | (cport as u64) << 16 | protocol as u64,
    )
}

fn state_from(u: u8) -> TcpState {
    TcpState::ALL[u as usize]
}

fn secs(ms: u64) -> u32 {
    ms.div_ceil(1000).min(u32::MAX as u64) as u32
}

/// Dispatches to the shard a [`ConnRef`] names.
macro_rules! with_shard {
    ($self:ident, $r:expr, |$s:ident, $i:ident| $body:expr) => {{
        let r: u32 = $r.0;
        if r & V6 == 0 {
            let $s = &mut $self.v4;
            let $i = r as usize;
            $body
        } else {
            let $s = &mut $self.v6;
            let $i = (r & !V6) as usize;
            $body
        }
    }};
}

impl ConnTable {
    /// A table for `capacity` connections, preallocated so that it never
    /// rehashes (and stalls its worker) while filling up. The IPv6 slab
    /// grows on demand.
    pub fn new(capacity: usize, timeouts: Timeouts) -> ConnTable {
        ConnTable {
            v4: Shard::new(capacity),
            v6: Shard::new(0),
            dests: Registry::default(),
            templates: Registry::default(),
            capacity,
            seed: Seed::random(),
            timeouts,
            state_secs: TcpState::ALL.map(|s| timeouts.tcp_timeout(s)),
            lane: Some(0),
            tables: StateTables::Normal,
            secure_syn_secs: 0,
            half_open: None,
            reclaimed: 0,
            dropped_entries: 0,
            todrop_counter: [0; IN_PKTS_MAX as usize],
            rng: fastrand::Rng::new(),
        }
    }

    /// Table pressure on or off: when on, a full table gives the oldest
    /// half-open TCP connection's place to a new connection (its queue, 8
    /// bytes a connection, is allocated here, once).
    pub fn set_reclaim_half_open(&mut self, on: bool) {
        self.half_open = on.then(|| HalfOpenQueue {
            ring: std::collections::VecDeque::with_capacity(self.capacity),
            capacity: self.capacity,
        });
    }

    /// `secure_tcp` on or off: the kernel's `tcp_states_dos` tables, and
    /// `syn_timeout_s` (if not 0) for the half-open states, from the next
    /// state change of each connection on.
    pub fn set_secure_tcp(&mut self, on: bool, syn_timeout_s: u32) {
        self.tables = if on {
            StateTables::Secure
        } else {
            StateTables::Normal
        };
        self.secure_syn_secs = if on { syn_timeout_s } else { 0 };
        self.state_secs = self.state_timeouts();
    }

    pub fn secure_tcp(&self) -> bool {
        self.tables == StateTables::Secure
    }

    fn state_timeouts(&self) -> [u32; TcpState::ALL.len()] {
        let t = self.timeouts;
        let short = self.secure_syn_secs;
        TcpState::ALL.map(|s| match s {
            TcpState::SynRecv | TcpState::SynAck if short > 0 => short,
            _ => t.tcp_timeout(s),
        })
    }

    /// Connections that gave their place to a new one, since the table was
    /// made.
    pub fn reclaimed(&self) -> u64 {
        self.reclaimed
    }

    /// Connections `drop_entry` dropped, since the table was made.
    pub fn dropped_entries(&self) -> u64 {
        self.dropped_entries
    }

    /// Free connection slots: what the defence's `amemthresh` is compared
    /// with.
    pub fn free_slots(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    /// Counts traffic in lane `lane` of the dests' counters (the worker's
    /// index), or not at all (`None`: `[stats] enabled = false`).
    pub fn set_stats_lane(&mut self, lane: Option<usize>) {
        self.lane = lane;
    }

    pub fn stats_lane(&self) -> Option<usize> {
        self.lane
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// New timeouts, for state changes from now on (`--set`).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
        self.state_secs = self.state_timeouts();
    }

    pub fn len(&self) -> usize {
        self.v4.live + self.v6.live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Slab slots in use or free (what an expiry sweep goes over).
    pub fn slots(&self) -> usize {
        self.v4.slots.len() + self.v6.slots.len()
    }

    /// Heap bytes the table holds (slabs, indexes and registries).
    pub fn bytes(&self) -> usize {
        self.v4.bytes()
            + self.v6.bytes()
            + self.dests.items.capacity() * std::mem::size_of::<Option<(DestRef, u32)>>()
            + self.templates.items.capacity() * 16
            + self.half_open.as_ref().map_or(0, |q| q.ring.capacity() * 8)
    }

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

    /// The NAT connection a reply from a real server belongs to.
    #[inline]
    pub fn lookup_out(&self, key: &OutKey) -> Option<ConnRef> {
        let matches = |c: &Conn| c.out_key() == *key;
        let h = || {
            out_hash(
                &self.seed,
                key.protocol.number(),
                key.daddr,
                key.dport,
                key.caddr,
                key.cport,
            )
        };
        if key.caddr.is_ipv4() {
            if self.v4.out_index.is_empty() {
                return None;
            }
            self.v4
                .out_index
                .find(h(), |i| matches(&self.view(ConnRef(i))))
                .map(ConnRef)
        } else {
            if self.v6.out_index.is_empty() {
                return None;
            }
            self.v6
                .out_index
                .find(h(), |i| matches(&self.view(ConnRef(i | V6))))
                .map(|i| ConnRef(i | V6))
        }
    }

    fn data(&self, r: ConnRef) -> (FlowKey, ConnData) {
        if r.0 & V6 == 0 {
            let s = &self.v4.slots[r.0 as usize];
            (s.key.to_flow(), s.data)
        } else {
            let s = &self.v6.slots[(r.0 & !V6) as usize];
            (s.key.to_flow(), s.data)
        }
    }

    /// The connection's data alone (no key conversion), for the fast path.
    #[inline(always)]
    fn data_only(&self, r: ConnRef) -> ConnData {
        if r.0 & V6 == 0 {
            self.v4.slots[r.0 as usize].data
        } else {
            self.v6.slots[(r.0 & !V6) as usize].data
        }
    }

    /// The connection's TCP state.
    #[inline]
    pub fn state(&self, r: ConnRef) -> TcpState {
        state_from(self.data_only(r).state)
    }

    /// Where the connection's packets go: real server address, port and
    /// forwarding method.
    #[inline]
    pub fn target(&self, r: ConnRef) -> (IpAddr, u16, FwdMethod) {
        let d = self.data_only(r);
        let dest = self.dests.get(d.dest);
        (dest.addr, d.dport, dest.fwd)
    }

    /// [`ConnTable::target`] for a client packet of `bytes` (its IP length),
    /// counted in the dest's stats: the established fast path, one read of
    /// the dest entry for both.
    #[inline]
    pub fn target_counting_in(&self, r: ConnRef, bytes: u64) -> (IpAddr, u16, FwdMethod) {
        let d = self.data_only(r);
        let dest = self.dests.get(d.dest);
        if let Some(lane) = self.lane.and_then(|l| dest.stats.lane(l)) {
            lane.count_in(bytes);
        }
        (dest.addr, d.dport, dest.fwd)
    }

    /// This worker's lane of the connection's dest counters; none when
    /// counting is off.
    #[inline]
    pub fn lane(&self, r: ConnRef) -> Option<&Lane> {
        let l = self.lane?;
        self.dests.get(self.data_only(r).dest).stats.lane(l)
    }

    fn view(&self, r: ConnRef) -> Conn<'_> {
        let (key, d) = self.data(r);
        let dest = self.dests.get(d.dest);
        Conn {
            key,
            daddr: dest.addr,
            dport: d.dport,
            fwd: dest.fwd,
            state: state_from(d.state),
            expires_ms: d.expires_s as u64 * 1000,
            active: d.flags & F_ACTIVE != 0,
            dest: &dest.shared,
        }
    }

    #[inline]
    pub fn get(&self, r: ConnRef) -> Conn<'_> {
        self.view(r)
    }

    /// Creates the connection of a newly scheduled flow, bound to `dest`.
    pub fn insert(&mut self, key: FlowKey, dest: &Dest, now_ms: u64) -> Result<ConnRef, TableFull> {
        self.insert_bound(key, Binding::to_dest(dest), now_ms)
    }

    /// Creates a connection as `binding` says (a template's dest, say).
    pub fn insert_bound(
        &mut self,
        key: FlowKey,
        b: Binding,
        now_ms: u64,
    ) -> Result<ConnRef, TableFull> {
        if self.len() >= self.capacity && !self.reclaim_one() {
            return Err(TableFull);
        }
        b.dest.bind_conn();
        let masq = b.fwd == FwdMethod::Masq;
        let no_output = if masq { 0 } else { F_NO_OUTPUT };
        let timeout = match key.protocol {
            Protocol::Udp => self.timeouts.udp,
            _ => self.timeouts.tcp_timeout(TcpState::None),
        };
        let (addr, fwd, shared) = (b.daddr, b.fwd, b.dest.clone());
        let dest = self.dests.acquire(dest_id(&b.dest, b.fwd), || DestRef {
            addr,
            fwd,
            stats: shared.stats.clone(),
            shared,
        });
        let template = match &b.template {
            Some(t) => {
                let t = t.clone();
                self.templates.acquire(Arc::as_ptr(&t) as usize, || t)
            }
            None => NONE,
        };
        let data = ConnData {
            dest,
            template,
            expires_s: secs(now_ms + timeout as u64 * 1000),
            dport: b.dport,
            state: TcpState::None as u8,
            flags: F_LIVE | no_output,
        };
        let oh = out_hash(
            &self.seed,
            key.protocol.number(),
            b.daddr,
            b.dport,
            key.caddr,
            key.cport,
        );
        let r = if let Some(k) = V4Key::from_flow(&key) {
            let (seed, dests) = (&self.seed, &self.dests);
            ConnRef(Self::put(
                &mut self.v4,
                seed,
                dests,
                k,
                data,
                masq.then_some(oh),
            ))
        } else if let Some(k) = V6Key::from_flow(&key) {
            let (seed, dests) = (&self.seed, &self.dests);
            ConnRef(Self::put(&mut self.v6, seed, dests, k, data, masq.then_some(oh)) | V6)
        } else {
            // Mixed families never reach a table (a flow has one family).
            b.dest.unbind_conn(false);
            return Err(TableFull);
        };
        if key.protocol == Protocol::Tcp {
            let tag = self.tag(r);
            if let Some(q) = &mut self.half_open {
                if q.ring.len() >= q.capacity {
                    q.ring.pop_front();
                }
                q.ring.push_back((r, tag));
            }
        }
        Ok(r)
    }

    /// What tells the connection in a slot from a later one in the same
    /// slot: its key's hash.
    fn tag(&self, r: ConnRef) -> u32 {
        if r.0 & V6 == 0 {
            self.v4.slots[r.0 as usize].key.seeded_hash(&self.seed) as u32
        } else {
            self.v6.slots[(r.0 & !V6) as usize]
                .key
                .seeded_hash(&self.seed) as u32
        }
    }

    /// Table pressure: removes the oldest half-open TCP connection, looking
    /// at no more than [`RECLAIM_SCAN`] stale entries of the queue; failing
    /// that (the queue was just turned on, or lost entries when it was
    /// full), a half-open connection among [`RECLAIM_PROBES`] slots picked
    /// at random. False when there is none (or reclaiming is off).
    fn reclaim_one(&mut self) -> bool {
        if self.half_open.is_none() {
            return false;
        }
        for _ in 0..RECLAIM_SCAN {
            let Some((r, tag)) = self.half_open.as_mut().and_then(|q| q.ring.pop_front()) else {
                break;
            };
            let d = self.data_only(r);
            if half_open(d.state, d.flags) && self.tag(r) == tag {
                self.remove(r);
                self.reclaimed += 1;
                return true;
            }
        }
        let (len4, len6) = (self.v4.slots.len(), self.v6.slots.len());
        for _ in 0..RECLAIM_PROBES.min(len4 + len6) {
            let at = self.rng.usize(0..len4 + len6);
            let r = if at < len4 {
                ConnRef(at as u32)
            } else {
                ConnRef((at - len4) as u32 | V6)
            };
            let (key, d) = self.data(r);
            if key.protocol == Protocol::Tcp && half_open(d.state, d.flags) {
                self.remove(r);
                self.reclaimed += 1;
                return true;
            }
        }
        false
    }

    /// Drops, from the front of the table-pressure queue, up to `budget`
    /// entries that no longer name a half-open connection (it got
    /// established, or went away), so that a full table finds the oldest
    /// half-open connection at once. Called from the poll loop.
    pub fn prune_half_open(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some(&(r, tag)) = self.half_open.as_ref().and_then(|q| q.ring.front()) else {
                return;
            };
            let d = self.data_only(r);
            if half_open(d.state, d.flags) && self.tag(r) == tag {
                return;
            }
            if let Some(q) = &mut self.half_open {
                q.ring.pop_front();
            }
        }
    }

    /// `drop_entry`'s work (the kernel's `ip_vs_random_dropentry`, which
    /// looks at 1/32 of the table each second): looks at `n` slots picked
    /// at random and removes, among the connections there, the half-open
    /// TCP ones, and established TCP and UDP ones that have been idle for
    /// a minute and have had few packets (one in `k` of those with `k`
    /// packets, `k` ≤ 8). Returns how many it removed.
    pub fn random_dropentry(&mut self, now_ms: u64, n: usize) -> usize {
        let now_s = (now_ms / 1000) as u32;
        let mut removed = 0;
        for _ in 0..n {
            let (len4, len6) = (self.v4.slots.len(), self.v6.slots.len());
            if len4 + len6 == 0 {
                break;
            }
            let at = self.rng.usize(0..len4 + len6);
            let r = if at < len4 {
                ConnRef(at as u32)
            } else {
                ConnRef((at - len4) as u32 | V6)
            };
            let (key, d) = self.data(r);
            if d.flags & F_LIVE == 0 {
                continue;
            }
            let state = state_from(d.state);
            let drop = match key.protocol {
                Protocol::Tcp => match state {
                    TcpState::SynRecv | TcpState::SynAck => true,
                    TcpState::Established => {
                        self.todrop_entry(d, self.state_secs[d.state as usize], now_s)
                    }
                    _ => false,
                },
                _ => self.todrop_entry(d, self.timeouts.udp, now_s),
            };
            if drop {
                self.remove(r);
                self.dropped_entries += 1;
                removed += 1;
            }
        }
        removed
    }

    /// The kernel's `todrop_entry`: a connection idle for less than 60 s is
    /// kept; otherwise one with `k` packets from the client (1 ≤ k ≤ 8) is
    /// dropped once in `k` times.
    fn todrop_entry(&mut self, d: ConnData, timeout_s: u32, now_s: u32) -> bool {
        // Last packet = expiry - timeout (timeouts are whole seconds).
        let last = d.expires_s.saturating_sub(timeout_s);
        if now_s < last.saturating_add(60) {
            return false;
        }
        let k = in_pkts(d.flags);
        if k == 0 || k >= IN_PKTS_MAX {
            return false;
        }
        let c = &mut self.todrop_counter[k as usize];
        *c = c.saturating_sub(1);
        if *c > 0 {
            return false;
        }
        *c = k;
        true
    }

    /// Stores a connection in a slab and its index (and, for NAT, the reply
    /// index under `nat_out_hash`).
    fn put<K: SlotKey>(
        s: &mut Shard<K>,
        seed: &Seed,
        dests: &Registry<DestRef, DestId>,
        key: K,
        data: ConnData,
        nat_out_hash: Option<u64>,
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
        if let Some(oh) = nat_out_hash {
            s.out_index.insert(oh, i, |j| {
                let slot = &slots[j as usize];
                let k = slot.key.to_flow();
                let dest = dests.get(slot.data.dest);
                out_hash(
                    seed,
                    k.protocol.number(),
                    dest.addr,
                    slot.data.dport,
                    k.caddr,
                    k.cport,
                )
            });
        }
        s.live += 1;
        i
    }

    /// Removes the connection and releases its dest counters.
    pub fn remove(&mut self, r: ConnRef) {
        let (key, d) = self.data(r);
        if d.flags & F_LIVE == 0 {
            return;
        }
        let dest = self.dests.get(d.dest);
        dest.shared.unbind_conn(d.flags & F_ACTIVE != 0);
        let masq = dest.fwd == FwdMethod::Masq;
        let oh = out_hash(
            &self.seed,
            key.protocol.number(),
            dest.addr,
            d.dport,
            key.caddr,
            key.cport,
        );
        let seed = self.seed;
        with_shard!(self, r, |s, i| {
            let h = s.slots[i].key.seeded_hash(&seed);
            s.index.remove(h, i as u32);
            if masq {
                s.out_index.remove(oh, i as u32);
            }
            s.slots[i].data.flags = 0;
            s.free.push(i as u32);
            s.live -= 1;
        });
        if d.template != NONE {
            self.templates.get(d.template).detach();
            self.templates
                .release(d.template, |t| Arc::as_ptr(t) as usize);
        }
        self.dests.release(d.dest, |x| dest_id(&x.shared, x.fwd));
    }

    /// A TCP segment of this connection passed: step the state machine, move
    /// the dest's active/inactive counters, re-arm the timer.
    pub fn on_tcp(&mut self, r: ConnRef, output: bool, event: Option<Event>, now_ms: u64) {
        let d = self.data_only(r);
        let dir = if output {
            Direction::Output
        } else if d.flags & F_NO_OUTPUT != 0 {
            Direction::InputOnly
        } else {
            Direction::Input
        };
        let old = state_from(d.state);
        let new = next_state_in(self.tables, dir, old, event);
        let was_active = d.flags & F_ACTIVE != 0;
        let now_active = if new != old {
            new.is_active()
        } else {
            was_active
        };
        if now_active != was_active {
            self.dests.get(d.dest).shared.set_conn_active(now_active);
        }
        // A template whose connection got established is "assured"
        // (`ip_vs_control_assure_ct`).
        if new != old && new == TcpState::Established && d.template != NONE {
            self.templates.get(d.template).assure();
        }
        let expires_s = secs(now_ms + self.state_secs[new as usize] as u64 * 1000);
        // The common case, a segment of an established flow within the same
        // second, past its first few packets: nothing to write.
        let flags_done = if output {
            d.flags & (F_NO_OUTPUT | F_REPLIED) == F_REPLIED
        } else {
            in_pkts(d.flags) >= IN_PKTS_MAX
        };
        if new == old && expires_s == d.expires_s && flags_done {
            return;
        }
        with_shard!(self, r, |s, i| {
            let data = &mut s.slots[i].data;
            if output {
                data.flags = (data.flags & !F_NO_OUTPUT) | F_REPLIED;
            } else if in_pkts(data.flags) < IN_PKTS_MAX {
                data.flags += 1 << IN_PKTS_SHIFT;
            }
            data.state = new as u8;
            data.flags = if now_active {
                data.flags | F_ACTIVE
            } else {
                data.flags & !F_ACTIVE
            };
            data.expires_s = expires_s;
        });
    }

    /// When this connection expires, in whole seconds of the dataplane
    /// clock.
    pub fn expires_s(&self, r: ConnRef) -> u32 {
        self.data_only(r).expires_s
    }

    /// The client's packets of this connection so far, counting up to 9
    /// (the kernel's `in_pkts`, which the sync daemon's threshold reads).
    pub fn in_pkts(&self, r: ConnRef) -> u8 {
        in_pkts(self.data_only(r).flags)
    }

    /// A backup's connection, as its master's sync message says it stands:
    /// this TCP state (moving the real server's active and inactive counts
    /// as a state change does; `None` for UDP, whose count stays) and a
    /// timer of `timeout_s` from now.
    pub fn set_synced(&mut self, r: ConnRef, state: Option<TcpState>, timeout_s: u32, now_ms: u64) {
        let d = self.data_only(r);
        let was_active = d.flags & F_ACTIVE != 0;
        let now_active = state.map_or(was_active, TcpState::is_active);
        let state = state.map_or(d.state, |s| s as u8);
        if now_active != was_active {
            self.dests.get(d.dest).shared.set_conn_active(now_active);
        }
        let expires_s = secs(now_ms + timeout_s as u64 * 1000);
        with_shard!(self, r, |s, i| {
            let data = &mut s.slots[i].data;
            data.state = state;
            data.flags = if now_active {
                data.flags | F_ACTIVE
            } else {
                data.flags & !F_ACTIVE
            };
            data.expires_s = expires_s;
        });
    }

    /// A packet of this connection passed: a TCP segment steps the state
    /// machine ([`ConnTable::on_tcp`]), a UDP datagram re-arms the timer.
    #[inline]
    pub fn on_packet(
        &mut self,
        r: ConnRef,
        protocol: Protocol,
        output: bool,
        event: Option<Event>,
        now_ms: u64,
    ) {
        match protocol {
            Protocol::Tcp => self.on_tcp(r, output, event, now_ms),
            _ => self.on_udp(r, output, now_ms),
        }
    }

    /// A UDP datagram of this connection passed: re-arm the timer. A reply
    /// (`output`, a NAT server's) assures its template, as
    /// `udp_state_transition` does.
    pub fn on_udp(&mut self, r: ConnRef, output: bool, now_ms: u64) {
        let e = secs(now_ms + self.timeouts.udp as u64 * 1000);
        if output {
            let t = self.data_only(r).template;
            if t != NONE {
                self.templates.get(t).assure();
            }
        }
        with_shard!(self, r, |s, i| {
            let data = &mut s.slots[i].data;
            data.expires_s = e;
            if output {
                data.flags |= F_REPLIED;
            } else if in_pkts(data.flags) < IN_PKTS_MAX {
                data.flags += 1 << IN_PKTS_SHIFT;
            }
        });
    }

    /// Looks at up to `budget` slots (split over both slabs) from where the
    /// last call stopped and removes the expired connections among them;
    /// returns how many.
    pub fn expire_some(&mut self, now_ms: u64, budget: usize) -> usize {
        let now_s = (now_ms / 1000) as u32;
        let mut removed = 0;
        // IPv6 gets a smaller share of the budget; it is usually the
        // smaller table.
        for (v6, n) in [(false, budget), (true, budget / 4 + 1)] {
            let len = if v6 {
                self.v6.slots.len()
            } else {
                self.v4.slots.len()
            };
            if len == 0 {
                continue;
            }
            let mut at = if v6 {
                self.v6.sweep_at
            } else {
                self.v4.sweep_at
            };
            for _ in 0..n.min(len) {
                if at >= len {
                    at = 0;
                }
                let d = if v6 {
                    self.v6.slots[at].data
                } else {
                    self.v4.slots[at].data
                };
                if d.flags & F_LIVE != 0 && d.expires_s <= now_s {
                    self.remove(ConnRef(at as u32 | if v6 { V6 } else { 0 }));
                    removed += 1;
                }
                at += 1;
            }
            if v6 {
                self.v6.sweep_at = at;
            } else {
                self.v4.sweep_at = at;
            }
        }
        removed
    }

    /// A slice of a listing: calls `f` with each live connection among the
    /// next `budget` slots from `cursor` (IPv4 slab, then IPv6), and moves
    /// the cursor past them; true once the whole table was walked. The
    /// table may change between two slices, as the kernel's may between two
    /// reads of /proc/net/ip_vs_conn: a connection made or removed meanwhile
    /// may or may not be listed, and none twice.
    pub fn list_slice(
        &self,
        cursor: &mut ListCursor,
        budget: usize,
        mut f: impl FnMut(Conn<'_>),
    ) -> bool {
        let mut left = budget;
        while left > 0 {
            let (slots, tag) = if cursor.v6 {
                (self.v6.slots.len(), V6)
            } else {
                (self.v4.slots.len(), 0)
            };
            if cursor.at >= slots {
                if cursor.v6 {
                    return true;
                }
                *cursor = ListCursor { v6: true, at: 0 };
                continue;
            }
            let end = slots.min(cursor.at + left);
            for i in cursor.at..end {
                let live = if cursor.v6 {
                    self.v6.slots[i].data.flags & F_LIVE != 0
                } else {
                    self.v4.slots[i].data.flags & F_LIVE != 0
                };
                if live {
                    f(self.view(ConnRef(i as u32 | tag)));
                }
            }
            left -= end - cursor.at;
            cursor.at = end;
        }
        cursor.v6 && cursor.at >= self.v6.slots.len()
    }

    /// Every live connection (for listing).
    pub fn iter(&self) -> impl Iterator<Item = Conn<'_>> {
        let v4 = (0..self.v4.slots.len() as u32)
            .filter(|&i| self.v4.slots[i as usize].data.flags & F_LIVE != 0)
            .map(ConnRef);
        let v6 = (0..self.v6.slots.len() as u32)
            .filter(|&i| self.v6.slots[i as usize].data.flags & F_LIVE != 0)
            .map(|i| ConnRef(i | V6));
        v4.chain(v6).map(|r| self.view(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::DestSpec;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn dest() -> Dest {
        let spec = DestSpec {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        Dest {
            spec,
            last_weight: 1,
            shared: DestShared::new(&spec),
        }
    }

    fn key(cport: u16) -> FlowKey {
        FlowKey {
            protocol: Protocol::Tcp,
            caddr: "192.168.1.50".parse().unwrap(),
            cport,
            vaddr: "192.168.1.10".parse().unwrap(),
            vport: 80,
        }
    }

    #[test]
    fn counters_follow_dr_handshake_and_expiry() {
        let d = dest();
        let mut t = ConnTable::new(10, Timeouts::default());
        let r = t.insert(key(1), &d, 0).unwrap();
        assert_eq!((d.shared.active(), d.shared.inactive()), (0, 1));
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert_eq!(t.get(r).state, TcpState::SynRecv);
        t.on_tcp(r, false, Some(Event::Ack), 0);
        assert_eq!(t.get(r).state, TcpState::Established);
        assert_eq!((d.shared.active(), d.shared.inactive()), (1, 0));
        t.on_tcp(r, false, Some(Event::Fin), 1000);
        assert_eq!(t.get(r).state, TcpState::FinWait);
        assert_eq!((d.shared.active(), d.shared.inactive()), (0, 1));
        // FIN_WAIT lasts 120 s.
        assert_eq!(t.expire_some(120_999, 100), 0);
        assert_eq!(t.expire_some(121_000, 100), 1);
        assert!(t.is_empty());
        assert_eq!((d.shared.active(), d.shared.inactive()), (0, 0));
    }

    #[test]
    fn ipv4_slot_is_32_bytes_and_fill_stays_under_64_per_conn() {
        assert_eq!(V4_SLOT_BYTES, 32);
        let d = dest();
        let n = 100_000;
        let mut t = ConnTable::new(n, Timeouts::default());
        // Table pressure's queue, on by default, counts too.
        t.set_reclaim_half_open(true);
        for i in 0..n as u32 {
            let k = FlowKey {
                protocol: Protocol::Tcp,
                caddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                cport: (i % 60000) as u16,
                vaddr: "192.168.1.10".parse().unwrap(),
                vport: 80,
            };
            t.insert(k, &d, 0).unwrap();
        }
        let per = t.bytes() as f64 / n as f64;
        assert!(per <= 64.0, "{per} bytes per connection");
    }

    #[test]
    fn ipv6_and_nat_replies() {
        let spec = DestSpec {
            addr: "fd00:2::2".parse().unwrap(),
            port: 8080,
            fwd: FwdMethod::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        let d = Dest {
            spec,
            last_weight: 1,
            shared: DestShared::new(&spec),
        };
        let mut t = ConnTable::new(10, Timeouts::default());
        let mut refs = vec![];
        // Enough NAT entries to make the reply index grow.
        for p in 1..=8u16 {
            let k = FlowKey {
                protocol: Protocol::Tcp,
                caddr: "fd00:1::2".parse().unwrap(),
                cport: p,
                vaddr: "fd00:99::10".parse().unwrap(),
                vport: 80,
            };
            refs.push((k, t.insert(k, &d, 0).unwrap()));
        }
        for (k, r) in &refs {
            assert_eq!(t.lookup(k), Some(*r));
            let c = t.get(*r);
            assert_eq!(
                (c.daddr, c.dport, c.fwd),
                (spec.addr, 8080, FwdMethod::Masq)
            );
            assert_eq!(t.lookup_out(&c.out_key()), Some(*r));
        }
        let (k, r) = refs[3];
        let out = t.get(r).out_key();
        t.remove(r);
        assert_eq!(t.lookup(&k), None);
        assert_eq!(t.lookup_out(&out), None);
        assert_eq!(t.len(), 7);
        assert_eq!(d.shared.inactive(), 7);
        assert_eq!(t.iter().count(), 7);
    }

    /// `-e` of a tunnel server's `--tun-type`/`--tun-port` keeps its dest
    /// (the same `DestShared`): connections made after the edit go by the
    /// new tunnel while those made before keep theirs.
    #[test]
    fn edited_tunnel_reaches_new_connections_while_old_ones_live() {
        let ipip = FwdMethod::Tunnel(crate::types::TunSpec::default());
        let gue = FwdMethod::Tunnel(crate::types::TunSpec {
            kind: crate::types::TunKind::Gue,
            port: 6080,
            csum: crate::types::TunCsum::None,
        });
        let d = dest();
        let bind = |fwd| Binding {
            fwd,
            ..Binding::to_dest(&d)
        };
        let mut t = ConnTable::new(10, Timeouts::default());
        let old = t.insert_bound(key(1), bind(ipip), 0).unwrap();
        let new = t.insert_bound(key(2), bind(gue), 0).unwrap();
        assert_eq!(t.get(old).fwd, ipip);
        assert_eq!(t.get(new).fwd, gue, "the edit reaches the new connection");
        // Once the old connection is gone, its tunnel's entry goes too and
        // a third connection also takes the new one.
        t.remove(old);
        let third = t.insert_bound(key(3), bind(gue), 0).unwrap();
        assert_eq!(t.get(third).fwd, gue);
        assert_eq!(t.get(new).fwd, gue);
        t.remove(new);
        t.remove(third);
        assert!(t.dests.by_id.is_empty(), "every dest entry released");
    }

    /// The NAT reply index is sized with the table, as the slab is: filling
    /// the table never grows (and rehashes) it on the worker.
    #[test]
    fn nat_reply_index_never_grows() {
        let spec = DestSpec {
            fwd: FwdMethod::Masq,
            ..dest().spec
        };
        let d = Dest {
            spec,
            last_weight: 1,
            shared: DestShared::new(&spec),
        };
        let n = 10_000;
        let mut t = ConnTable::new(n, Timeouts::default());
        let before = t.v4.out_index.bytes();
        for i in 0..n as u32 {
            let k = FlowKey {
                caddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                ..key(1)
            };
            t.insert(k, &d, 0).unwrap();
        }
        assert!(before > 0, "allocated up front");
        assert_eq!(t.v4.out_index.bytes(), before, "never grew");
    }

    /// A listing in slices sees every connection once, IPv4 and IPv6, and
    /// no slice looks at more slots than its budget.
    #[test]
    fn listing_in_slices_sees_each_connection_once() {
        let d = dest();
        let mut t = ConnTable::new(100, Timeouts::default());
        for p in 0..50 {
            t.insert(key(p), &d, 0).unwrap();
        }
        let v6 = |p| FlowKey {
            caddr: "fd00::50".parse().unwrap(),
            vaddr: "fd00::10".parse().unwrap(),
            ..key(p)
        };
        for p in 0..7 {
            t.insert(v6(p), &d, 0).unwrap();
        }
        // Holes in the slab: removed connections are not listed.
        for p in [3, 17, 40] {
            let r = t.lookup(&key(p)).unwrap();
            t.remove(r);
        }
        let mut cursor = ListCursor::default();
        let mut seen = Vec::new();
        let mut slices = 0;
        loop {
            slices += 1;
            let mut n = 0;
            let done = t.list_slice(&mut cursor, 8, |c| {
                n += 1;
                seen.push(c.key)
            });
            assert!(n <= 8);
            if done {
                break;
            }
            assert!(slices < 100, "the listing ends");
        }
        assert_eq!(slices, 8, "57 slots, 8 a slice");
        assert_eq!(seen.len(), 54);
        let mut want: Vec<FlowKey> = t.iter().map(|c| c.key).collect();
        want.sort_by_key(|k| format!("{k:?}"));
        seen.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(seen, want);
        // Walked to the end, a cursor stays there.
        assert!(t.list_slice(&mut cursor, 8, |_| panic!("listed twice")));
    }

    #[test]
    fn full_table_refuses() {
        let d = dest();
        let mut t = ConnTable::new(2, Timeouts::default());
        t.insert(key(1), &d, 0).unwrap();
        t.insert(key(2), &d, 0).unwrap();
        assert_eq!(t.insert(key(3), &d, 0), Err(TableFull));
        assert_eq!(d.shared.inactive(), 2, "a refused flow is not counted");
    }

    fn nat_dest() -> Dest {
        let mut d = dest();
        d.spec.fwd = FwdMethod::Masq;
        d.shared = DestShared::new(&d.spec);
        d
    }

    /// A flood of SYNs into a full table: each new one takes the place of
    /// the oldest half-open connection; established connections and those
    /// whose server answered (NAT) keep theirs.
    #[test]
    fn full_table_reclaims_the_oldest_half_open_first() {
        let (dr, nat) = (dest(), nat_dest());
        let mut t = ConnTable::new(4, Timeouts::default());
        t.set_reclaim_half_open(true);
        let est = t.insert(key(1), &dr, 0).unwrap();
        t.on_tcp(est, false, Some(Event::Syn), 0);
        t.on_tcp(est, false, Some(Event::Ack), 0);
        let answered = t.insert(key(2), &nat, 0).unwrap();
        t.on_tcp(answered, false, Some(Event::Syn), 0);
        t.on_tcp(answered, true, Some(Event::Syn), 0);
        assert_eq!(t.get(answered).state, TcpState::SynRecv);
        let old = t.insert(key(3), &dr, 0).unwrap();
        t.on_tcp(old, false, Some(Event::Syn), 0);
        let young = t.insert(key(4), &dr, 0).unwrap();
        t.on_tcp(young, false, Some(Event::Syn), 0);
        assert_eq!(t.len(), 4);

        // Full: the oldest half-open one (key 3) goes.
        let r = t.insert(key(5), &dr, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert_eq!(t.reclaimed(), 1);
        assert!(t.lookup(&key(3)).is_none());
        for k in [1, 2, 4, 5] {
            assert!(t.lookup(&key(k)).is_some(), "key {k}");
        }
        // Then key 4, then key 5: a flood cycles through the half-open.
        for (n, gone) in [(6, 4), (7, 5), (8, 6)] {
            let r = t.insert(key(n), &dr, 0).unwrap();
            t.on_tcp(r, false, Some(Event::Syn), 0);
            assert!(t.lookup(&key(gone)).is_none(), "key {gone}");
        }
        assert_eq!(t.reclaimed(), 4);
        assert!(t.lookup(&key(1)).is_some() && t.lookup(&key(2)).is_some());
        // The dests' counters follow: four connections left (IPVS counts
        // SYN_RECV as active, so all four are).
        assert_eq!(
            dr.shared.active() + dr.shared.inactive() + nat.shared.active() + nat.shared.inactive(),
            4
        );

        // Nothing half-open left once they are established: full again.
        for k in [7, 8] {
            let r = t.lookup(&key(k)).unwrap();
            t.on_tcp(r, false, Some(Event::Ack), 0);
        }
        let answered = t.lookup(&key(2)).unwrap();
        t.on_tcp(answered, true, Some(Event::Ack), 0);
        assert_eq!(t.insert(key(9), &dr, 0), Err(TableFull));
    }

    /// A slot reused by a later connection is not taken for the one the
    /// queue remembers there.
    #[test]
    fn reclaim_skips_reused_slots() {
        let d = dest();
        let mut t = ConnTable::new(2, Timeouts::default());
        t.set_reclaim_half_open(true);
        let a = t.insert(key(1), &d, 0).unwrap();
        t.on_tcp(a, false, Some(Event::Syn), 0);
        let b = t.insert(key(2), &d, 0).unwrap();
        t.on_tcp(b, false, Some(Event::Syn), 0);
        // Key 1 goes away (a RST would close it; here it is removed), and
        // key 3 takes its slot: queue is [slot a (key 1, stale), key 2, key 3].
        t.remove(a);
        let c = t.insert(key(3), &d, 0).unwrap();
        assert_eq!(c, a, "the freed slot is reused");
        t.on_tcp(c, false, Some(Event::Syn), 0);
        // Full: key 2 is the oldest half-open, not key 3 in key 1's slot.
        t.insert(key(4), &d, 0).unwrap();
        assert!(t.lookup(&key(2)).is_none());
        assert!(t.lookup(&key(3)).is_some());
    }

    /// Entries of connections that got established are pruned from the
    /// queue's front between bursts, so that a full table never spends its
    /// scan on them.
    #[test]
    fn pruning_clears_established_entries_from_the_front() {
        let d = dest();
        let n = 3 * RECLAIM_SCAN as u16;
        let mut t = ConnTable::new(n as usize + 1, Timeouts::default());
        t.set_reclaim_half_open(true);
        for k in 0..n {
            let r = t.insert(key(k), &d, 0).unwrap();
            t.on_tcp(r, false, Some(Event::Syn), 0);
            t.on_tcp(r, false, Some(Event::Ack), 0);
        }
        let r = t.insert(key(n), &d, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        for _ in 0..4 {
            t.prune_half_open(RECLAIM_SCAN);
        }
        assert_eq!(t.half_open.as_ref().unwrap().ring.len(), 1);
        t.insert(key(n + 1), &d, 0).unwrap();
        assert_eq!(t.reclaimed(), 1);
        assert!(t.lookup(&key(n)).is_none());
    }

    #[test]
    fn without_reclaim_a_full_table_refuses_syns() {
        let d = dest();
        let mut t = ConnTable::new(1, Timeouts::default());
        let r = t.insert(key(1), &d, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert_eq!(t.insert(key(2), &d, 0), Err(TableFull));
        assert_eq!(t.reclaimed(), 0);
    }

    /// `ip_vs_random_dropentry`: half-open connections go; established
    /// ones only after a minute idle, one in k for k packets; busy ones stay.
    #[test]
    fn random_dropentry_follows_the_kernels_rules() {
        let d = dest();
        let mut t = ConnTable::new(64, Timeouts::default());
        let mut keys = Vec::new();
        // 10 half-open, 10 established with 1 packet... (SYN + ACK = 2
        // packets), 10 established with 20 packets.
        for k in 0..30u16 {
            let r = t.insert(key(k), &d, 0).unwrap();
            t.on_tcp(r, false, Some(Event::Syn), 0);
            if k >= 10 {
                t.on_tcp(r, false, Some(Event::Ack), 0);
            }
            if k >= 20 {
                for _ in 0..18 {
                    t.on_tcp(r, false, Some(Event::Ack), 0);
                }
            }
            keys.push(k);
        }
        // Enough random looks to see every slot many times.
        t.random_dropentry(1_000, 3000);
        for k in 0..10 {
            assert!(t.lookup(&key(k)).is_none(), "half-open {k} dropped");
        }
        for k in 10..30 {
            assert!(t.lookup(&key(k)).is_some(), "established {k} idle < 60 s");
        }
        // A minute idle later: those with 2 packets go (one in two looks),
        // the busy ones (more than 8 packets) stay.
        t.random_dropentry(61_000, 3000);
        for k in 10..20 {
            assert!(t.lookup(&key(k)).is_none(), "idle, 2 packets: {k}");
        }
        for k in 20..30 {
            assert!(t.lookup(&key(k)).is_some(), "busy {k}");
        }
        assert_eq!(t.dropped_entries(), 20);
    }

    #[test]
    fn secure_tcp_shortens_half_open_and_needs_the_servers_answer() {
        let (dr, nat) = (dest(), nat_dest());
        let mut t = ConnTable::new(8, Timeouts::default());
        t.set_secure_tcp(true, 10);
        let r = t.insert(key(1), &dr, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert_eq!(t.get(r).state, TcpState::SynAck);
        assert_eq!(t.get(r).expires_ms, 10_000);
        let n = t.insert(key(2), &nat, 0).unwrap();
        t.on_tcp(n, false, Some(Event::Syn), 0);
        t.on_tcp(n, false, Some(Event::Ack), 0);
        assert_eq!(t.get(n).state, TcpState::SynRecv, "no answer yet");
        assert_eq!(t.get(n).expires_ms, 10_000);
        t.set_secure_tcp(false, 10);
        t.on_tcp(n, false, Some(Event::Ack), 0);
        assert_eq!(t.get(n).state, TcpState::Established);
        let r = t.insert(key(3), &dr, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert_eq!(t.get(r).state, TcpState::SynRecv);
        assert_eq!(t.get(r).expires_ms, 60_000);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u64),
        Lookup(u16),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..64, 0u64..5000).prop_map(|(p, t)| Op::Insert(p, t)),
            (0u16..64).prop_map(Op::Lookup),
            (0u64..5000).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Insert, lookup and full expiry sweeps agree with a HashMap model
        /// (expiry has one-second resolution).
        #[test]
        fn matches_hashmap_model(ops in proptest::collection::vec(op(), 1..200)) {
            let d = dest();
            let mut t = ConnTable::new(1000, Timeouts::default());
            let mut model: HashMap<u16, u64> = HashMap::new();
            let mut now = 0u64;
            for o in ops {
                match o {
                    Op::Insert(p, dt) => {
                        now += dt;
                        if t.lookup(&key(p)).is_none() {
                            t.insert(key(p), &d, now).unwrap();
                            // State NONE: 2 s, kept in whole seconds.
                            model.insert(p, (now + 2000).div_ceil(1000));
                        }
                    }
                    Op::Lookup(p) => {
                        prop_assert_eq!(t.lookup(&key(p)).is_some(), model.contains_key(&p));
                    }
                    Op::Expire(dt) => {
                        now += dt;
                        let cap = t.v4.slots.len();
                        t.expire_some(now, cap);
                        model.retain(|_, exp| *exp > now / 1000);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(d.shared.inactive() as usize, model.len());
            }
        }
    }
}
