//! A worker's connection table: which real server each flow was given, its
//! TCP state, and when it expires.
//!
//! Why this file is long (about 590 lines): it holds the public types and
//! the operations that need both slabs and the registries at once (insert,
//! remove, the reads, the listing); each part that stands alone has its own
//! file, listed below.
//!
//! Memory is the point. An IPv4 connection is one 32-byte slot (`slab.rs`: key,
//! dest handle, template handle, expiry in seconds, port, state, flags) in a
//! preallocated slab, plus its slot number in a bucket index (`index.rs`,
//! 7.9 bytes a connection, sized for the whole capacity up front):
//! about 40 bytes per connection, NAT or not, table overhead included. The
//! index is by client endpoint, as the kernel's is, so a NAT server's reply
//! finds its connection there too (`nat.rs`); table pressure walks the slab
//! (`expiry.rs`) and keeps nothing per connection. What many connections share (the
//! real server's address, forwarding method and counters; a persistence
//! template) lives once in small registries and is referred to by a 32-bit
//! handle. IPv6 connections have their own slab with wider keys.
//!
//! Expiry sweeps the slab a few slots per poll loop, resuming where it
//! stopped, so no loop ever scans the whole table.
//!
//! This file holds the public types and the table itself (making,
//! inserting, removing, reading and listing connections); the rest is by
//! concern: `key.rs` (slab keys and the seeded hashes), `slab.rs` (slots
//! and the slabs), `index.rs` (the bucket index), `lookup.rs` (lookups and
//! the burst's prefetches), `nat.rs` (a NAT server's reply), `registry.rs`
//! (dests and templates by handle), `tcp.rs` (state stepping per packet),
//! `expiry.rs` (expiry, table pressure and `drop_entry`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::dest::{Dest, DestShared};
use crate::persist::Template;
use crate::stats::Lane;
use crate::tcp_state::{StateTables, TcpState, Timeouts};
use crate::types::{FwdMethod, Protocol};

/// Dispatches to the shard a [`ConnRef`] names (defined before the
/// modules, which use it too).
macro_rules! with_shard {
    ($self:ident, $r:expr, |$s:ident, $i:ident| $body:expr) => {{
        let r: u32 = $r.0;
        if r & $crate::conn::V6 == 0 {
            let $s = &mut $self.v4;
            let $i = r as usize;
            $body
        } else {
            let $s = &mut $self.v6;
            let $i = (r & !$crate::conn::V6) as usize;
            $body
        }
    }};
}

mod expiry;
mod index;
mod key;
mod lookup;
mod nat;
mod registry;
mod slab;
mod tcp;

use self::key::{client_hash, Seed, SlotKey, V4Key, V6Key};
pub use self::lookup::{KeyHash, SlotHint};
use self::registry::{dest_id, DestId, DestRef, Registry};
pub use self::slab::V4_SLOT_BYTES;
use self::slab::{
    secs, state_from, ConnData, Shard, F_ACTIVE, F_LIVE, F_NO_OUTPUT, IN_PKTS_MAX, NONE,
};

/// A flow as the client sent it: protocol, client and virtual endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
}

impl FlowKey {
    /// The same packet read as a NAT server's reply: its source a real
    /// server's endpoint, its destination a client's.
    pub fn as_reply(&self) -> OutKey {
        OutKey {
            protocol: self.protocol,
            daddr: self.caddr,
            dport: self.cport,
            caddr: self.vaddr,
            cport: self.vport,
        }
    }
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
/// It borrows both: an `Arc` cloned for the call and dropped after it
/// would be two locked instructions on the dest's shared count, which every
/// worker's new flows would contend for. The table clones only what it
/// newly records.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwd: FwdMethod,
    pub dest: &'a Arc<DestShared>,
    pub template: Option<&'a Arc<Template>>,
}

impl<'a> Binding<'a> {
    pub fn to_dest(d: &'a Dest) -> Binding<'a> {
        Binding {
            daddr: d.spec.addr,
            dport: d.spec.port,
            fwd: d.spec.fwd,
            dest: &d.shared,
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

/// Why a new connection was not made: its flow is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The table is at its configured size, and table pressure (if on)
    /// found no half-open connection to give up.
    #[error("connection table full")]
    TableFull,
    /// The client's address and port have [`CONNS_PER_CLIENT_ENDPOINT`]
    /// connections in this table already.
    #[error("the client's address and port have {CONNS_PER_CLIENT_ENDPOINT} connections already")]
    ClientEndpointFull,
}

/// Most connections of one client endpoint (protocol, address, port) that
/// a new one's lookup may pass. The index is by client endpoint, so its
/// connections share one hash: without a bound, one source port sweeping
/// the ports of a port-zero or fwmark service would pile thousands of them
/// into one run of buckets, and every lookup that lands there would walk
/// it. A new connection is refused when this many of its endpoint's lie on
/// its insertion's way (home bucket to the first with room: the lines the
/// insertion reads anyway), which is all of them unless some were placed
/// further on while the way was full. A client's socket normally has one
/// connection per destination, and a table serves a handful of virtual
/// services.
pub const CONNS_PER_CLIENT_ENDPOINT: usize = 16;

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
    /// Table pressure: a full table gives a half-open TCP connection's
    /// place to a new connection.
    reclaim_half_open: bool,
    /// Where table pressure looks for a half-open connection next: a slot
    /// number over the IPv4 slab, then the IPv6 one (`expiry.rs`).
    reclaim_at: usize,
    /// Connections given up for new ones ([`ConnTable::insert_bound`]) and
    /// dropped by `drop_entry`, since the table was made.
    reclaimed: u64,
    dropped_entries: u64,
    /// `drop_entry`'s countdowns, by the connection's incoming packets
    /// (the kernel's `todrop_counter`).
    todrop_counter: [u8; IN_PKTS_MAX as usize],
    rng: fastrand::Rng,
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
            reclaim_half_open: false,
            reclaim_at: 0,
            reclaimed: 0,
            dropped_entries: 0,
            todrop_counter: [0; IN_PKTS_MAX as usize],
            rng: fastrand::Rng::new(),
        }
    }

    /// Table pressure on or off: when on, a full table gives a half-open
    /// TCP connection's place to a new connection, the first one its
    /// circular walk of the slab finds (`expiry.rs`).
    pub fn set_reclaim_half_open(&mut self, on: bool) {
        self.reclaim_half_open = on;
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
    pub fn insert(&mut self, key: FlowKey, dest: &Dest, now_ms: u64) -> Result<ConnRef, Refused> {
        self.insert_bound(key, Binding::to_dest(dest), now_ms)
    }

    /// Creates a connection as `binding` says (a template's dest, say).
    pub fn insert_bound(
        &mut self,
        key: FlowKey,
        b: Binding<'_>,
        now_ms: u64,
    ) -> Result<ConnRef, Refused> {
        if self.conns_of_client(&key) >= CONNS_PER_CLIENT_ENDPOINT {
            return Err(Refused::ClientEndpointFull);
        }
        if self.len() >= self.capacity && !self.reclaim_one() {
            return Err(Refused::TableFull);
        }
        let masq = b.fwd == FwdMethod::Masq;
        let data = self.bind(key.protocol, b, now_ms);
        let r = if let Some(k) = V4Key::from_flow(&key) {
            ConnRef(Self::put(&mut self.v4, &self.seed, k, data, masq))
        } else if let Some(k) = V6Key::from_flow(&key) {
            ConnRef(Self::put(&mut self.v6, &self.seed, k, data, masq) | V6)
        } else {
            // Mixed families never reach a table (a flow has one family).
            self.unbind(data, false);
            return Err(Refused::TableFull);
        };
        Ok(r)
    }

    /// Ends connection `r` and opens the next connection of the same flow
    /// in its slot, bound as `b` says: what [`ConnTable::remove`] then
    /// [`ConnTable::insert_bound`] would do, without taking the key out of
    /// the index and putting it back (a reopened flow's SYN saves a
    /// quarter of a new connection's instructions). The new binding is
    /// counted before the old one is released, so a dest both share never
    /// leaves the registry in between.
    pub fn rebind(&mut self, r: ConnRef, protocol: Protocol, b: Binding<'_>, now_ms: u64) {
        let masq = b.fwd == FwdMethod::Masq;
        let data = self.bind(protocol, b, now_ms);
        if !self.release(r) {
            // Not a connection (never, from the worker): the binding goes
            // back, and nothing is opened.
            self.unbind(data, false);
            return;
        }
        with_shard!(self, r, |s, i| {
            s.slots[i].data = data;
            s.nat_live += masq as usize;
        });
    }

    /// A new connection's data, bound as `b` says: the dest counts it,
    /// the registries hold its dest and template (cloning an `Arc` only
    /// where they take one anew).
    fn bind(&mut self, protocol: Protocol, b: Binding<'_>, now_ms: u64) -> ConnData {
        b.dest.bind_conn();
        let no_output = if b.fwd == FwdMethod::Masq {
            0
        } else {
            F_NO_OUTPUT
        };
        let timeout = match protocol {
            Protocol::Udp => self.timeouts.udp,
            _ => self.timeouts.tcp_timeout(TcpState::None),
        };
        let dest = self.dests.acquire(dest_id(b.dest, b.fwd), || DestRef {
            addr: b.daddr,
            fwd: b.fwd,
            stats: b.dest.stats.clone(),
            shared: b.dest.clone(),
        });
        let template = match b.template {
            Some(t) => self
                .templates
                .acquire(Arc::as_ptr(t) as usize, || t.clone()),
            None => NONE,
        };
        ConnData {
            dest,
            template,
            expires_s: secs(now_ms + timeout as u64 * 1000),
            dport: b.dport,
            state: TcpState::None as u8,
            flags: F_LIVE | no_output,
        }
    }

    /// Undoes [`ConnTable::bind`]: the dest stops counting the connection
    /// (`active`: in its active count), and the registries let go of its
    /// dest and template. Always inline: out of line it cost `release`, on
    /// every reopened flow, 20 instructions of call (callgrind).
    #[inline(always)]
    fn unbind(&mut self, data: ConnData, active: bool) {
        self.dests.get(data.dest).shared.unbind_conn(active);
        if data.template != NONE {
            self.templates
                .release(data.template, |t| Arc::as_ptr(t) as usize);
        }
        self.dests.release(data.dest, |x| dest_id(&x.shared, x.fwd));
    }

    /// The connections of `key`'s client endpoint on its insertion's way,
    /// counted up to [`CONNS_PER_CLIENT_ENDPOINT`].
    fn conns_of_client(&self, key: &FlowKey) -> usize {
        fn count<K: SlotKey>(s: &Shard<K>, h: u64, p: u8, key: &FlowKey) -> usize {
            s.index.count_on_the_way(h, CONNS_PER_CLIENT_ENDPOINT, |i| {
                s.slots[i as usize].key.is_client(p, key.caddr, key.cport)
            })
        }
        let p = key.protocol.number();
        let h = client_hash(&self.seed, p, key.caddr, key.cport);
        if key.caddr.is_ipv4() {
            count(&self.v4, h, p, key)
        } else {
            count(&self.v6, h, p, key)
        }
    }

    /// Removes the connection and releases its dest counters.
    pub fn remove(&mut self, r: ConnRef) {
        if self.release(r) {
            let seed = self.seed;
            with_shard!(self, r, |s, i| {
                let h = s.slots[i].key.seeded_hash(&seed);
                s.index.remove(h, i as u32);
                s.free.push(i as u32);
                s.live -= 1;
            });
        }
    }

    /// Ends the connection's binding: its dest and template released, and
    /// its slot no longer live (still indexed). False if it was not live.
    fn release(&mut self, r: ConnRef) -> bool {
        let d = self.data_only(r);
        if d.flags & F_LIVE == 0 {
            return false;
        }
        let masq = self.dests.get(d.dest).fwd == FwdMethod::Masq;
        with_shard!(self, r, |s, i| {
            s.nat_live -= masq as usize;
            s.slots[i].data.flags = 0;
        });
        if d.template != NONE {
            self.templates.get(d.template).detach();
        }
        self.unbind(d, d.flags & F_ACTIVE != 0);
        true
    }

    /// Whether a persistence template controls the connection (the
    /// kernel's `cp->control`).
    #[inline]
    pub fn is_controlled(&self, r: ConnRef) -> bool {
        self.data_only(r).template != NONE
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
mod tests;
