//! One worker's packet logic, over plain byte frames.
//!
//! Why this file is long (about 530 lines): the worker's state and
//! configuration, documented field by field, and the per-packet entry
//! points, which the fast path runs through in order.
//!
//! This file holds the worker's state, configuration and the per-packet
//! entry points (`handle*`, then `classify` by ethertype, then `finish` on
//! the way out); the rest is by concern:
//!
//! - `control.rs`: what the control thread sends ([`WorkerMsg`]) and the
//!   `-Lc` listings, walked a slice per poll loop; `rows.rs` makes the rows.
//! - `sharding.rs`: which worker owns a flow ([`FlowSharding`]).
//! - `burst.rs`: the burst stage's flow-key hints and prefetches.
//! - `arp.rs`: ARP, and what neighbours say (ARP and NDP) to the table;
//!   `pending.rs`: frames waiting for their next hop's MAC.
//! - `v4.rs`, `v6.rs`: the two address families as received; `icmp.rs`,
//!   `icmp6.rs`: ICMP and ICMPv6 (neighbour discovery included);
//!   `frag.rs`: fragments.
//! - `conntrack.rs`: connection tracking and scheduling, written once for
//!   both families (`track`, `icmp_error_about`).
//! - `xmit.rs`, `xmit6.rs`: the transmitters (`Worker::xmit` picks one by
//!   method and family), routing and neighbour resolution;
//!   `nat_rewrite.rs`: NAT's rewrite, both families.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use rvs_ipvs::conn::{ConnRef, ConnTable, SlotHint};
use rvs_ipvs::defense::{Defense, DefenseConfig, DefenseLevel};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::types::{prefix_mask_v4, prefix_mask_v6};
use rvs_ipvs::Director;
use rvs_packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};

use self::control::ActiveListing;
use self::pending::PendingNeighbour;
use crate::buf::PacketBuf;
use crate::counters::{BurstHistogram, Counters, DropReason};
use crate::neighbour::{NeighbourReader, NeighbourTable};

mod arp;
mod burst;
mod conntrack;
mod control;
mod frag;
mod icmp;
mod icmp6;
mod nat_rewrite;
mod pending;
mod rows;
mod sharding;
mod sync;
mod v4;
mod v6;
mod xmit;
mod xmit6;

pub use burst::PREFETCH_GROUP;
pub use control::{ConnListing, SyncMaster, SyncSink, WorkerMsg, LIST_CHUNK, LIST_SLOTS_PER_LOOP};
pub use sharding::{toeplitz, FlowSharding, MICROSOFT_RSS_KEY};

/// A port as the dataplane sees it: its MAC and the director's address on it.
#[derive(Debug, Clone, Copy)]
pub struct PortInfo {
    pub mac: MacAddr,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    /// Largest IP packet the link carries (for tunnel overhead checks).
    pub mtu: u16,
    /// The director's IPv6 address and prefix length on this port, if any.
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// Whether the port has a kernel interface (the exception path): frames
    /// for the director as a host go there instead of being dropped.
    pub kernel: bool,
    /// Who answers ARP and neighbour solicitations for the VIPs.
    pub vip_arp: VipArp,
}

/// Who answers ARP (and IPv6 neighbour solicitations) for a VIP on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VipArp {
    /// rvsd, for every VIP it has a service on.
    #[default]
    Always,
    /// The kernel, through the port's kernel interface: it answers only
    /// while that interface holds the VIP, which is how VRRP (keepalived
    /// `--vrrp`) gives a VIP to one director of several.
    Kernel,
}

/// A static route: packets for `dst/prefix_len` go to the gateway `via`,
/// which must be on a port's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub via: Ipv4Addr,
}

impl PortInfo {
    /// Whether `ip` is on this port's directly connected IPv6 network.
    pub fn contains6(&self, ip: Ipv6Addr) -> bool {
        match self.addr6 {
            Some((a, len)) => {
                let m = prefix_mask_v6(len);
                u128::from(ip) & m == u128::from(a) & m
            }
            None => false,
        }
    }

    /// Whether `ip` is on this port's directly connected network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = prefix_mask_v4(self.prefix_len);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// 0-based worker index; worker 0 also resolves newly added real servers.
    pub id: usize,
    /// How many workers there are. Each connection is owned by the worker
    /// its client endpoint hashes to; packets that arrive elsewhere are
    /// handed to the owner.
    pub workers: usize,
    /// Which worker owns a client endpoint: the same for every worker.
    pub sharding: FlowSharding,
    pub ports: Vec<PortInfo>,
    /// Static routes, beyond the ports' own networks.
    pub routes: Vec<Route>,
    /// Most connections this worker's table holds.
    pub conn_capacity: usize,
    pub timeouts: Timeouts,
    /// Least time between two ARP requests for the same address.
    pub arp_retry_ms: u64,
    /// Table slots the expiry sweep looks at per loop.
    pub expire_budget: usize,
    /// IPVS's `sloppy_tcp`: schedule TCP flows on any first packet but a
    /// RST, not only on a SYN (takeover of flows after a failover, and the
    /// replayed captures of benchmarks).
    pub sloppy_tcp: bool,
    /// Count traffic per real server, service and in total (`[stats]
    /// enabled`; the benchmark turns it off to measure what it costs).
    pub count_stats: bool,
    /// The SYN-flood defences (`[defense]`).
    pub defense: DefenseConfig,
}

/// What a worker shares with the control thread.
#[derive(Debug, Default)]
pub struct WorkerShared {
    pub counters: Counters,
    /// Messages applied so far; the control thread waits on it.
    pub applied: AtomicU64,
    /// How long the poll loop's passes that moved packets took (always
    /// kept; exported as a Prometheus histogram).
    pub bursts: BurstHistogram,
    /// Nanoseconds each non-empty burst took (rx to tx), when the loop
    /// records them; handed over when the worker stops. Benchmark builds
    /// only (feature `burst-histogram`).
    #[cfg(feature = "burst-histogram")]
    pub burst_ns: std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Set when the worker's poll loop has ended, by a return or by a
    /// panic (set while unwinding): the control thread stops rvsd when a
    /// worker ends before it was told to.
    pub exited: std::sync::atomic::AtomicBool,
    /// What the SYN-flood defence decided at its last update (once a
    /// second), for `rvsadm --defense`. The worker only ever try-locks it.
    pub defense: std::sync::Mutex<DefenseLevel>,
}

/// What to do with a frame after [`Worker::handle`] (which may have
/// rewritten it in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it out of this port (index into the worker's ports).
    Tx(usize),
    /// The director took it (an ARP reply it learned from).
    Consumed,
    /// Drop it; counted under the reason.
    Drop(DropReason),
    /// Another worker owns its connection: hand it over unchanged.
    Redirect(usize),
    /// For the director's kernel (the exception path): hand it, unchanged,
    /// to the kernel interface of the port it came in on.
    ToKernel,
}

/// The per-packet state one worker owns: its replica of the service table,
/// its connection table and its share of the neighbour table.
pub struct Worker {
    cfg: WorkerConfig,
    director: Director,
    conns: ConnTable,
    neigh: Arc<NeighbourTable>,
    /// The transmitters' cached view of `neigh`.
    neigh_reader: NeighbourReader,
    /// DR's and NAT's next hops towards real servers, read from
    /// `neigh_reader` (`worker/xmit.rs`).
    hops: [Option<xmit::Hop>; xmit::HOPS],
    templates: Arc<Templates>,
    shared: Arc<WorkerShared>,
    /// The slot the burst stage found for the packet being handled.
    hint: Option<SlotHint>,
    /// The closed connection a SYN is reopening, to be ended once the new
    /// one is scheduled (`worker/conntrack.rs`).
    reopening: Option<ConnRef>,
    /// Expiry sweep: slots owed to it, and when that was last worked out.
    sweep_credit: usize,
    sweep_ms: u64,
    /// When each neighbour was last asked for (ARP or NDP).
    arp_asked: FxHashMap<IpAddr, u64>,
    /// Frames the director generated (ARP requests, ICMP errors), to send
    /// by port index.
    pub generated: Vec<(usize, Vec<u8>)>,
    /// Forwarded frames the worker sends itself rather than through a
    /// verdict, by port index: frames that waited for their next hop's
    /// MAC, the fragments of a packet too big for its link, fragments
    /// that waited for their first.
    pub sent: Vec<(usize, Vec<u8>)>,
    /// IP identification of the outer headers this worker writes.
    next_ip_id: u16,
    /// Frames waiting for a next hop's MAC, by next hop (see
    /// [`PendingNeighbour`]).
    pending: FxHashMap<IpAddr, PendingNeighbour>,
    /// The next hop the frame being handled waits for, set by `resolve`.
    awaiting: Option<(usize, IpAddr)>,
    /// The frame being handled is an ICMP error about a connection, on its
    /// way on: counted as forwarded once it is sent (or held for its next
    /// hop), not when it is dropped on the way out.
    icmp_error_out: bool,
    /// `-Lc` listings in progress, oldest first.
    listings: std::collections::VecDeque<ActiveListing>,
    /// The SYN-flood defence, and when it was last updated.
    defense: Defense,
    defense_ms: Option<u64>,
    /// Random looks `drop_entry` still owes this second.
    dropentry_due: usize,
    /// Fragmented datagrams in flight (see `worker/frag.rs`).
    frags: frag::Fragments,
    frags_pruned_ms: u64,
    /// Frames the worker kept (fragments that came before their first)
    /// and now hands to their owner: (worker, port index, frame).
    pub handed_over: Vec<(usize, usize, Vec<u8>)>,
    /// The frame being handled was addressed (`set_l2`) to a port whose
    /// MTU it exceeds: it leaves in fragments.
    oversize: bool,
    /// The sync daemon's master, while it runs, with the message being
    /// filled (`worker/sync.rs`).
    sync_out: Option<sync::SyncOut>,
}

/// How often the defence looks at the table (the kernel's
/// `DEFENSE_TIMER_PERIOD`).
const DEFENSE_PERIOD_MS: u64 = 1000;
/// Most of `drop_entry`'s random looks per poll loop: its 1/32 of the
/// table a second is spread over the loops, as the expiry sweep is.
const DROPENTRY_PER_LOOP: usize = 256;
/// Most slots table pressure's walk moves over per poll loop while the
/// table is full, towards the next half-open connection.
const SEEK_PER_LOOP: usize = 256;
/// An ARP reply's frame: the Ethernet minimum without FCS.
const ARP_FRAME_LEN: usize = 60;
/// How often fragment state is looked over for what expired (a walk of
/// at most `frag::TRACKED_PER_WORKER` entries).
const FRAGMENT_PRUNE_MS: u64 = 50;

type Step<T> = Result<T, DropReason>;

impl Worker {
    pub fn new(
        cfg: WorkerConfig,
        neigh: Arc<NeighbourTable>,
        templates: Arc<Templates>,
        shared: Arc<WorkerShared>,
    ) -> Worker {
        let mut conns = ConnTable::new(cfg.conn_capacity, cfg.timeouts);
        conns.set_stats_lane(cfg.count_stats.then_some(cfg.id));
        conns.set_reclaim_half_open(cfg.defense.reclaim_half_open);
        let defense = Defense::new(cfg.defense);
        Worker {
            cfg,
            director: Director::new(),
            conns,
            neigh_reader: neigh.reader(),
            hops: [None; xmit::HOPS],
            neigh,
            templates,
            shared,
            hint: None,
            reopening: None,
            sweep_credit: 0,
            sweep_ms: 0,
            arp_asked: FxHashMap::default(),
            generated: Vec::new(),
            sent: Vec::new(),
            next_ip_id: 1,
            pending: FxHashMap::default(),
            awaiting: None,
            icmp_error_out: false,
            listings: std::collections::VecDeque::new(),
            defense,
            defense_ms: None,
            dropentry_due: 0,
            frags: Default::default(),
            frags_pruned_ms: 0,
            handed_over: Vec::new(),
            oversize: false,
            sync_out: None,
        }
    }

    pub fn shared(&self) -> &Arc<WorkerShared> {
        &self.shared
    }

    pub fn director(&self) -> &Director {
        &self.director
    }

    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// Fragments waiting for their datagram's first (`worker/frag.rs`).
    pub fn fragments_waiting(&self) -> usize {
        self.frags.waiting()
    }

    /// Periodic work from the poll loop: a slice of the expiry sweep. The
    /// sweep goes over the whole table once a second (timeouts are whole
    /// seconds), at most `expire_budget` slots per call: a busy loop then
    /// spends nothing on it most of the time.
    pub fn housekeeping(&mut self, now_ms: u64) {
        if now_ms > self.sweep_ms {
            let per_ms = self.conns.slots().div_ceil(1000);
            let due = per_ms * (now_ms - self.sweep_ms).min(1000) as usize;
            self.sweep_credit = (self.sweep_credit + due).min(self.conns.slots());
            self.sweep_ms = now_ms;
        }
        let budget = self.sweep_credit.min(self.cfg.expire_budget);
        self.sweep_credit -= budget;
        let n = self.conns.expire_some(now_ms, budget);
        if !self.pending.is_empty() {
            self.release_pending(now_ms);
        }
        if !self.frags.is_empty() && now_ms >= self.frags_pruned_ms + FRAGMENT_PRUNE_MS {
            self.frags_pruned_ms = now_ms;
            self.prune_fragments(now_ms);
        }
        self.defend(now_ms);
        if self.sync_out.is_some() {
            self.flush_sync_if_old(now_ms);
        }
        let c = &self.shared.counters;
        c.conns_expired.add(n as u64);
        c.connections.set(self.conns.len() as u64);
        c.half_open_reclaimed.set(self.conns.reclaimed());
        c.entries_dropped.set(self.conns.dropped_entries());
    }

    /// The SYN-flood defence's periodic work (the kernel's
    /// `defense_work_handler`): once a second, the levels from the table's
    /// free slots; then, while `drop_entry` is on, 1/32 of the table looked
    /// at at random, a slice per loop.
    fn defend(&mut self, now_ms: u64) {
        if self
            .defense_ms
            .is_none_or(|t| now_ms >= t + DEFENSE_PERIOD_MS)
        {
            self.defense_ms = Some(now_ms);
            if let Some(on) = self.defense.update(self.conns.free_slots()) {
                let syn = self.defense.config().secure_tcp_syn_timeout_s;
                self.conns.set_secure_tcp(on, syn);
            }
            self.dropentry_due = if self.defense.dropping_entries() {
                (self.conns.capacity() >> 5).max(1)
            } else {
                0
            };
            if let Ok(mut l) = self.shared.defense.try_lock() {
                *l = self.defense.level();
            }
        }
        self.conns.seek_half_open(SEEK_PER_LOOP);
        if self.dropentry_due > 0 {
            let n = self.dropentry_due.min(DROPENTRY_PER_LOOP);
            self.dropentry_due -= n;
            self.conns.random_dropentry(now_ms, n);
        }
    }

    /// Takes in what other workers (or the control thread) taught the
    /// neighbour table; once per poll loop.
    pub fn refresh_neighbours(&mut self) {
        self.neigh_reader.refresh();
    }

    /// Processes one received frame on port `port`, rewriting it in place
    /// when it is to be sent on.
    pub fn handle<B: PacketBuf>(&mut self, port: usize, pkt: &mut B, now_ms: u64) -> Verdict {
        self.handle_hinted(port, pkt, now_ms, None)
    }

    /// [`Worker::handle`] with the slot [`Worker::prefetch_burst`] found,
    /// for a frame received from one of this worker's queues.
    pub fn handle_hinted<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
        hint: Option<SlotHint>,
    ) -> Verdict {
        self.shared.counters.rx_packets.inc();
        self.process(port, pkt, now_ms, hint)
    }

    /// A frame another worker received (on `port`) and handed over through
    /// this worker's ring: counted as handed in, not received again.
    pub fn handle_handed_over<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
        hint: Option<SlotHint>,
    ) -> Verdict {
        self.shared.counters.redirected_in.inc();
        self.process(port, pkt, now_ms, hint)
    }

    #[inline(always)]
    fn process<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
        hint: Option<SlotHint>,
    ) -> Verdict {
        self.hint = hint;
        self.awaiting = None;
        self.icmp_error_out = false;
        let v = match self.classify(port, pkt, now_ms) {
            Ok(v) => v,
            Err(r) => Verdict::Drop(r),
        };
        let v = self.finish(v, pkt.data(), now_ms);
        let c = &self.shared.counters;
        match v {
            Verdict::Drop(r) => c.drop(r),
            Verdict::Redirect(_) => c.redirected.inc(),
            // Sent, or held for its next hop (`hold_for_neighbour`).
            Verdict::Tx(_) | Verdict::Consumed if self.icmp_error_out => {
                c.icmp_errors_forwarded.inc()
            }
            _ => {}
        }
        v
    }

    /// A handled frame on its way out: one too big for its port goes in
    /// fragments, one whose next hop's MAC is not known yet is held.
    #[inline(always)]
    fn finish(&mut self, v: Verdict, frame: &[u8], now_ms: u64) -> Verdict {
        let oversize = std::mem::take(&mut self.oversize);
        let Verdict::Tx(out) = v else {
            self.awaiting = None;
            return v;
        };
        if oversize {
            return self.send_fragmented(out, frame, now_ms);
        }
        match self.awaiting.take() {
            Some((out, ip)) => self.hold_for_neighbour(out, ip, frame, now_ms),
            None => v,
        }
    }

    #[inline(always)]
    fn classify<B: PacketBuf>(&mut self, port: usize, pkt: &mut B, now_ms: u64) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let frame = pkt.data_mut();
        let eth = EthernetFrame::new_checked(&*frame).map_err(|_| DropReason::TruncatedEthernet)?;
        if eth.src() == p.mac {
            return Err(DropReason::Looped);
        }
        let dst = eth.dst();
        match eth.ethertype() {
            EtherType::Arp => {
                let v = self.handle_arp(port, frame, now_ms)?;
                if v == Verdict::Tx(port) {
                    // A reply made in place: whatever the request carried
                    // after its ARP packet is not the reply's. A minimum
                    // frame, zero padded.
                    let len = pkt.data().len().min(ARP_FRAME_LEN);
                    pkt.truncate(len);
                    pkt.data_mut()[ethernet::HEADER_LEN + rvs_packet::arp::PACKET_LEN..].fill(0);
                }
                Ok(v)
            }
            EtherType::Ipv4 => {
                if dst != p.mac {
                    if dst.is_multicast() && p.kernel {
                        return self.ipv4_group(port, frame);
                    }
                    return Err(DropReason::NotOurMac);
                }
                self.handle_ipv4(port, pkt, now_ms)
            }
            EtherType::Ipv6 => {
                // Neighbour solicitations come to solicited-node multicast.
                if dst != p.mac && !dst.is_multicast() {
                    return Err(DropReason::NotOurMac);
                }
                if p.addr6.is_none() {
                    return self.ipv6_without_address(port, frame);
                }
                self.handle_ipv6(port, pkt, now_ms)
            }
            // LLDP and the like: a host's business.
            _ if p.kernel && (dst == p.mac || dst.is_multicast()) => Ok(Verdict::ToKernel),
            _ => Err(DropReason::UnknownEthertype),
        }
    }

    /// The exception path's verdict: the port's kernel interface when it
    /// has one, else a drop for `otherwise`.
    #[inline]
    pub(super) fn to_kernel(&self, port: usize, otherwise: DropReason) -> Step<Verdict> {
        if self.cfg.ports[port].kernel {
            Ok(Verdict::ToKernel)
        } else {
            Err(otherwise)
        }
    }
}

#[cfg(test)]
mod tests;
