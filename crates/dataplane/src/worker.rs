//! One worker's packet logic, over plain byte frames.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use rvs_ipvs::conn::{Binding, Conn, ConnRef, ConnTable, FlowKey, OutKey, SlotHint};
use rvs_ipvs::defense::{Defense, DefenseConfig, DefenseLevel};
use rvs_ipvs::persist::{TemplateKey, Templates};
use rvs_ipvs::sched::SchedInput;
use rvs_ipvs::tcp_state::{Event, TcpState, Timeouts};
use rvs_ipvs::{Change, ConnRow, Director, FwdMethod, Protocol};
use rvs_packet::arp::{ArpPacket, Operation};
use rvs_packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use rvs_packet::ipv4::{self, Ipv4Error, Ipv4Packet};
use rvs_packet::{TcpSegment, UdpDatagram};

use crate::buf::PacketBuf;
use crate::counters::{BurstHistogram, Counters, DropReason};
use crate::neighbour::{Heard, Learned, Neighbour, NeighbourReader, NeighbourTable, Refusal};

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

fn prefix_mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32) as u32)
    }
}

impl PortInfo {
    /// Whether `ip` is on this port's directly connected IPv6 network.
    pub fn contains6(&self, ip: Ipv6Addr) -> bool {
        match self.addr6 {
            Some((a, len)) => {
                let m = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len.min(128) as u32)
                };
                u128::from(ip) & m == u128::from(a) & m
            }
            None => false,
        }
    }

    /// Whether `ip` is on this port's directly connected network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = prefix_mask(self.prefix_len);
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

/// What the control thread sends a worker.
#[derive(Debug, Clone)]
pub enum WorkerMsg {
    /// Replay a validated configuration change.
    Change(Change),
    /// `--set`: new connection timeouts (for state changes from now on).
    SetTimeouts(Timeouts),
    /// A reload changed `[defense]`: the new settings, in force at once
    /// (as a write to the kernel's sysctls).
    SetDefense(DefenseConfig),
    /// `-Lc`: list this worker's connections (a slice per poll loop).
    ListConns(ConnListing),
    /// The sync daemon's master started (where to offer connections) or
    /// stopped (`None`).
    SyncMaster(Option<crossbeam_channel::Sender<Vec<rvs_sync::SyncConn>>>),
    /// A connection from a master's sync message, for the worker that owns
    /// its client endpoint. This and `SyncMaster` are not counted in
    /// `applied`: the sync daemon sends them, not the control thread's
    /// counted broadcast.
    Synced(rvs_sync::SyncConn),
}

/// A `-Lc` request to one worker: up to `limit` connections, sent back in
/// chunks of at most [`LIST_CHUNK`] rows as the worker walks its table, a
/// bounded slice per poll loop (so a table of millions never stalls the
/// fast path for long). The listing ends when the worker drops `rows`: all
/// sent, or the reader went away.
#[derive(Debug, Clone)]
pub struct ConnListing {
    pub rows: crossbeam_channel::Sender<Vec<ConnRow>>,
    pub limit: usize,
}

/// Table slots one poll loop looks at for a listing. Measured on the
/// shared 2-CPU VM at 1 M connections (`list_slice_cost` in the tests,
/// release build): a slice takes about 40 µs (p99 115 µs), where building
/// every row in one loop (as `-Lc` did) stalled the worker for 90-250 ms.
pub const LIST_SLOTS_PER_LOOP: usize = 512;
/// Rows per chunk sent to the control socket's writer.
pub const LIST_CHUNK: usize = 512;

/// A listing in progress on a worker.
#[derive(Debug)]
struct ActiveListing {
    req: ConnListing,
    cursor: rvs_ipvs::conn::ListCursor,
    /// Rows made but not yet taken by the (full) channel.
    pending: Vec<ConnRow>,
    sent: usize,
    walked: bool,
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
    /// records them; handed over when the worker stops.
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

/// Which worker owns a flow: a keyed hash of its client endpoint (the same
/// answer for both directions of a flow, whatever the VIP or NAT port).
///
/// The key is drawn at random when rvsd starts, so a client cannot choose
/// addresses and ports that all land on one worker (with an unkeyed hash
/// it could, from rvsd's source). SipHash-1-3 is the keyed hash made for
/// inputs an adversary picks. `[workers] flow_seed` fixes the key, for
/// benchmarks whose captures are split by owner in advance (`pktgen
/// --shard K/N --flow-seed S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSharding {
    keys: (u64, u64),
}

impl FlowSharding {
    /// A key from a fixed seed (benchmarks, tests).
    pub fn with_seed(seed: u64) -> FlowSharding {
        // Two halves of one 64-bit seed: the second spreads the first so
        // that seeds 0, 1, 2... give unrelated keys.
        FlowSharding {
            keys: (
                seed,
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d,
            ),
        }
    }

    /// A key from the operating system's random source.
    pub fn random() -> std::io::Result<FlowSharding> {
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        let (k0, k1) = b.split_at(8);
        Ok(FlowSharding {
            keys: (
                u64::from_le_bytes(k0.try_into().expect("8 bytes")),
                u64::from_le_bytes(k1.try_into().expect("8 bytes")),
            ),
        })
    }

    /// The worker that owns connections of this client endpoint.
    #[inline]
    pub fn owner_of(&self, caddr: IpAddr, cport: u16, workers: usize) -> usize {
        use std::hash::Hasher;
        if workers <= 1 {
            return 0;
        }
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        // The bytes themselves, not std's `Hash` of `IpAddr`: pktgen must
        // get the same answer as rvsd, whatever builds them.
        match caddr {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.write(&cport.to_be_bytes());
        (h.finish() % workers as u64) as usize
    }
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
    templates: Arc<Templates>,
    shared: Arc<WorkerShared>,
    /// The slot the burst stage found for the packet being handled.
    hint: Option<SlotHint>,
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
    /// The sync daemon's master, while it runs, and the connections
    /// offered to it since the last poll loop (`worker/sync.rs`).
    sync_out: Option<crossbeam_channel::Sender<Vec<rvs_sync::SyncConn>>>,
    sync_batch: Vec<rvs_sync::SyncConn>,
}

/// How often the defence looks at the table (the kernel's
/// `DEFENSE_TIMER_PERIOD`).
const DEFENSE_PERIOD_MS: u64 = 1000;
/// Most of `drop_entry`'s random looks per poll loop: its 1/32 of the
/// table a second is spread over the loops, as the expiry sweep is.
const DROPENTRY_PER_LOOP: usize = 256;
/// Most stale entries pruned from the table-pressure queue's front per
/// poll loop: more than a loop's packets can make stale.
const PRUNE_PER_LOOP: usize = 256;
/// How often fragment state is looked over for what expired (a walk of
/// at most `frag::TRACKED_PER_WORKER` entries).
const FRAGMENT_PRUNE_MS: u64 = 50;

/// A connection as `-Lc` shows it.
fn conn_row(c: &Conn<'_>, now_ms: u64) -> ConnRow {
    ConnRow {
        protocol: c.key.protocol,
        caddr: c.key.caddr,
        cport: c.key.cport,
        vaddr: c.key.vaddr,
        vport: c.key.vport,
        daddr: c.daddr,
        dport: c.dport,
        state: match c.key.protocol {
            Protocol::Udp => "UDP".into(),
            _ => c.state.name().into(),
        },
        expires_s: c.expires_ms.saturating_sub(now_ms) / 1000,
    }
}

/// Frames for a next hop whose MAC is being asked for, as the kernel keeps
/// an unresolved neighbour's queue (`unres_qlen_bytes`): sent once the
/// answer comes, dropped (and counted as neighbour misses) when it does not
/// come within [`PENDING_WAIT_RETRIES`] retries. Without it the first packet
/// to a new neighbour is lost: a NAT reply to a client, say.
#[derive(Debug)]
struct PendingNeighbour {
    port: usize,
    since_ms: u64,
    frames: Vec<Vec<u8>>,
    bytes: usize,
}

/// Most bytes held for one next hop (the kernel's default is 212992).
const PENDING_BYTES_PER_NEIGHBOUR: usize = 64 * 1024;
/// Most next hops with frames waiting, per worker: a flood towards
/// addresses that never answer cannot hold more than this.
const PENDING_NEIGHBOURS: usize = 64;
/// How many ARP retry intervals a frame may wait (the kernel asks 3 times).
const PENDING_WAIT_RETRIES: u64 = 3;

type Step<T> = Result<T, DropReason>;

/// A TCP or UDP header as connection tracking needs it.
#[derive(Debug, Clone, Copy)]
struct L4 {
    sport: u16,
    dport: u16,
    /// TCP flags; 0 for UDP.
    flags: u8,
}

impl L4 {
    /// The TCP state-machine event of the segment (none for UDP).
    fn event(&self) -> Option<Event> {
        use rvs_packet::tcp::flags::{ACK, FIN, RST, SYN};
        let f = self.flags;
        Event::from_flags(f & SYN != 0, f & FIN != 0, f & ACK != 0, f & RST != 0)
    }

    /// Whether the segment may open a connection: SYN without RST.
    fn syn_only(&self) -> bool {
        use rvs_packet::tcp::flags::{RST, SYN};
        self.flags & (SYN | RST) == SYN
    }
}

/// Ports and TCP flags. Plain fields rather than a tuple with an
/// `Option<Event>`: rustc packed that through the stack with a
/// store-forwarding stall per packet.
#[inline(always)]
fn l4_ports(protocol: Protocol, l4: &[u8]) -> Step<L4> {
    match protocol {
        Protocol::Tcp => match TcpSegment::new_checked(l4) {
            Ok(t) => Ok(L4 {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags(),
            }),
            Err(_) => Err(DropReason::BadL4Header),
        },
        _ => match UdpDatagram::new_checked(l4) {
            Ok(u) => Ok(L4 {
                sport: u.src_port(),
                dport: u.dst_port(),
                flags: 0,
            }),
            Err(_) => Err(DropReason::BadL4Header),
        },
    }
}

/// Packets prefetched and handled as one group: two rx bursts when traffic
/// is heavy (the loop takes a second burst only after a full first one).
/// Measured at 1 M flows: 64 beats 32 by a few per cent (the prefetches have
/// longer to land) and 128 loses (the group's lines no longer stay in L1).
pub const PREFETCH_GROUP: usize = 2 * dpdk::MAX_BURST;

/// The flow key of a TCP or UDP frame, read without any checks: only a hint
/// for prefetching ([`Worker::handle`] validates the packet itself).
fn flow_key_hint(f: &[u8]) -> Option<FlowKey> {
    let protocol = |n: u8| match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        _ => None,
    };
    let word = |at: usize| Some(u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?));
    match word(12)? {
        0x0800 => {
            let l4 = ethernet::HEADER_LEN + (*f.get(14)? & 0x0f) as usize * 4;
            let addr = |at: usize| -> Option<Ipv4Addr> {
                Some(<[u8; 4]>::try_from(f.get(at..at + 4)?).ok()?.into())
            };
            Some(FlowKey {
                protocol: protocol(*f.get(23)?)?,
                caddr: IpAddr::V4(addr(26)?),
                cport: word(l4)?,
                vaddr: IpAddr::V4(addr(30)?),
                vport: word(l4 + 2)?,
            })
        }
        0x86dd => {
            let addr = |at: usize| -> Option<Ipv6Addr> {
                Some(<[u8; 16]>::try_from(f.get(at..at + 16)?).ok()?.into())
            };
            Some(FlowKey {
                protocol: protocol(*f.get(20)?)?,
                caddr: IpAddr::V6(addr(22)?),
                cport: word(54)?,
                vaddr: IpAddr::V6(addr(38)?),
                vport: word(56)?,
            })
        }
        _ => None,
    }
}

/// What connection tracking decided for a packet.
enum Flow {
    /// Client to server: send it to this target.
    In(Target),
    /// A NAT server's reply: give it the VIP's address and port back.
    Out { vaddr: IpAddr, vport: u16 },
}

/// Where a connection's packets go.
#[derive(Debug, Clone, Copy)]
struct Target {
    daddr: IpAddr,
    dport: u16,
    fwd: FwdMethod,
}

impl Target {
    fn of(c: Conn<'_>) -> Target {
        Target {
            daddr: c.daddr,
            dport: c.dport,
            fwd: c.fwd,
        }
    }
}

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
            neigh,
            templates,
            shared,
            hint: None,
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
            sync_out: None,
            sync_batch: Vec::new(),
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

    /// Applies a control message.
    pub fn apply(&mut self, msg: &WorkerMsg, now_ms: u64) {
        match msg {
            WorkerMsg::SetTimeouts(t) => self.conns.set_timeouts(*t),
            WorkerMsg::SyncMaster(tx) => {
                self.sync_out = tx.clone();
                self.sync_batch.clear();
            }
            WorkerMsg::Synced(c) => self.apply_synced(c, now_ms),
            WorkerMsg::SetDefense(d) => {
                if d.reclaim_half_open != self.cfg.defense.reclaim_half_open {
                    self.conns.set_reclaim_half_open(d.reclaim_half_open);
                }
                self.cfg.defense = *d;
                // The modes as written; the next loop decides on them.
                self.defense = Defense::new(*d);
                self.conns.set_secure_tcp(false, 0);
                self.defense_ms = None;
            }
            WorkerMsg::ListConns(req) => {
                self.listings.push_back(ActiveListing {
                    req: req.clone(),
                    cursor: Default::default(),
                    pending: Vec::new(),
                    sent: 0,
                    walked: false,
                });
            }
            WorkerMsg::Change(change) => {
                self.director.replay(change);
                // Resolve a new real server's MAC before its first packet.
                if let (0, Change::AddDest(_, spec, _)) = (self.cfg.id, change) {
                    match spec.addr {
                        IpAddr::V4(ip) => {
                            if let Some(port) = self.port_for(ip) {
                                self.ask_arp(port, ip, now_ms, true);
                            }
                        }
                        IpAddr::V6(ip) => {
                            if let Some(port) = self.port_for6(ip) {
                                self.ask_nd(port, ip, now_ms, true);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Fragments waiting for their datagram's first (`worker/frag.rs`).
    pub fn fragments_waiting(&self) -> usize {
        self.frags.waiting()
    }

    /// Whether a `-Lc` listing is in progress (the poll loop then does not
    /// nap, so that it ends soon).
    pub fn is_listing(&self) -> bool {
        !self.listings.is_empty()
    }

    /// A slice of the oldest `-Lc` listing in progress: at most
    /// [`LIST_SLOTS_PER_LOOP`] table slots looked at, the rows sent in
    /// chunks without ever blocking (a full channel keeps them for the next
    /// loop). Called once per poll loop.
    pub fn list_some(&mut self, now_ms: u64) {
        use crossbeam_channel::TrySendError;
        let Some(l) = self.listings.front_mut() else {
            return;
        };
        if !l.walked && l.pending.len() < LIST_CHUNK {
            // Rows beyond the limit are not made.
            let cap = l.req.limit.saturating_sub(l.sent);
            let pending = &mut l.pending;
            l.walked = self
                .conns
                .list_slice(&mut l.cursor, LIST_SLOTS_PER_LOOP, |c| {
                    if pending.len() < cap {
                        pending.push(conn_row(&c, now_ms));
                    }
                })
                || l.sent + pending.len() >= l.req.limit;
        }
        let mut gone = false;
        while !l.pending.is_empty() {
            let n = l.pending.len().min(LIST_CHUNK);
            let chunk: Vec<ConnRow> = l.pending.drain(..n).collect();
            match l.req.rows.try_send(chunk) {
                Ok(()) => l.sent += n,
                Err(TrySendError::Full(chunk)) => {
                    // Put back in front, in order; next loop tries again.
                    l.pending.splice(0..0, chunk);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    gone = true;
                    break;
                }
            }
        }
        if gone || (l.walked && l.pending.is_empty()) {
            // Dropping the sender tells the reader this worker is done.
            self.listings.pop_front();
        }
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
        if !self.sync_batch.is_empty() {
            self.hand_to_sync();
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
        self.conns.prune_half_open(PRUNE_PER_LOOP);
        if self.dropentry_due > 0 {
            let n = self.dropentry_due.min(DROPENTRY_PER_LOOP);
            self.dropentry_due -= n;
            self.conns.random_dropentry(now_ms, n);
        }
    }

    /// The burst stage before [`Worker::handle`]: hashes every packet's flow
    /// key and prefetches its index line, then, with those lines on their
    /// way, the table slots they point at. The lookups that follow find both
    /// in cache instead of waiting on memory two or three times per packet.
    ///
    /// `hints[i]` gets the slot found for `pkts[i]`, to pass to
    /// [`Worker::handle_hinted`]; packets beyond [`PREFETCH_GROUP`] get none.
    pub fn prefetch_burst<B: PacketBuf>(&self, pkts: &[B], hints: &mut [Option<SlotHint>]) {
        let mut hashes = [None; PREFETCH_GROUP];
        for (h, p) in hashes.iter_mut().zip(pkts) {
            *h = flow_key_hint(p.data()).and_then(|k| self.conns.key_hash(&k));
            if let Some(h) = *h {
                self.conns.prefetch_index(h, dpdk::prefetch);
            }
        }
        for (hint, h) in hints.iter_mut().zip(&hashes) {
            *hint = h.and_then(|h| self.conns.prefetch_slots(h, dpdk::prefetch));
        }
    }

    /// Keeps a finished frame until `ip`'s MAC is known (see
    /// [`PendingNeighbour`]); a full queue drops it.
    #[inline(never)]
    fn hold_for_neighbour(
        &mut self,
        port: usize,
        ip: IpAddr,
        frame: &[u8],
        now_ms: u64,
    ) -> Verdict {
        if !self.pending.contains_key(&ip) && self.pending.len() >= PENDING_NEIGHBOURS {
            return Verdict::Drop(DropReason::NeighbourMiss);
        }
        let q = self.pending.entry(ip).or_insert(PendingNeighbour {
            port,
            since_ms: now_ms,
            frames: Vec::new(),
            bytes: 0,
        });
        if q.bytes + frame.len() > PENDING_BYTES_PER_NEIGHBOUR {
            return Verdict::Drop(DropReason::NeighbourMiss);
        }
        q.bytes += frame.len();
        q.frames.push(frame.to_vec());
        self.shared.counters.neighbour_queued.inc();
        Verdict::Consumed
    }

    /// Sends the held frames whose next hop answered, and drops those whose
    /// next hop did not in time.
    fn release_pending(&mut self, now_ms: u64) {
        let wait = self.cfg.arp_retry_ms.max(1) * PENDING_WAIT_RETRIES;
        let mut done = Vec::new();
        for (ip, q) in &self.pending {
            match self.neigh_reader.lookup(*ip, now_ms) {
                Neighbour::Reachable(mac) | Neighbour::Stale(mac) => done.push((*ip, Some(mac))),
                Neighbour::Missing if now_ms >= q.since_ms + wait => done.push((*ip, None)),
                Neighbour::Missing => {}
            }
        }
        for (ip, mac) in done {
            let Some(q) = self.pending.remove(&ip) else {
                continue;
            };
            match mac {
                Some(mac) => {
                    for mut f in q.frames {
                        EthernetFrame::new_unchecked(&mut f[..]).set_dst(mac);
                        self.sent.push((q.port, f));
                        self.shared.counters.forwarded.inc();
                    }
                }
                None => {
                    for _ in q.frames {
                        self.shared.counters.drop(DropReason::NeighbourMiss);
                    }
                }
            }
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
        let Verdict::Tx(out) = v else {
            self.awaiting = None;
            return v;
        };
        if frame.len() > ethernet::HEADER_LEN + self.cfg.ports[out].mtu as usize {
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
            EtherType::Arp => self.handle_arp(port, frame, now_ms),
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
    fn to_kernel(&self, port: usize, otherwise: DropReason) -> Step<Verdict> {
        if self.cfg.ports[port].kernel {
            Ok(Verdict::ToKernel)
        } else {
            Err(otherwise)
        }
    }

    /// An IPv4 frame to a group MAC on a port with a kernel interface:
    /// multicast (VRRP's 224.0.0.18, OSPF, ...) and broadcasts go to the
    /// kernel, as a host's NIC would take them in; nothing rvsd serves comes
    /// this way.
    #[inline(never)]
    fn ipv4_group(&self, port: usize, frame: &[u8]) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let ip = Ipv4Packet::new_validated(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::NotOurMac)?;
        let dst = ip.dst();
        let directed = p.prefix_len < 31
            && u32::from(dst) | prefix_mask(p.prefix_len) == u32::MAX
            && p.contains(dst);
        if dst.is_multicast() || dst.is_broadcast() || directed {
            Ok(Verdict::ToKernel)
        } else {
            Err(DropReason::NotOurMac)
        }
    }

    /// IPv6 on a port without an IPv6 address: rvsd serves none of it, so
    /// the kernel (its link-local address, router advertisements) has it
    /// all, but for a VIP's.
    #[inline(never)]
    fn ipv6_without_address(&self, port: usize, frame: &[u8]) -> Step<Verdict> {
        if !self.cfg.ports[port].kernel {
            return Err(DropReason::NoIpv6);
        }
        let dst = frame
            .get(ethernet::HEADER_LEN + 24..ethernet::HEADER_LEN + 40)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or(DropReason::TruncatedIpv6)?;
        if self.director.is_vip(IpAddr::V6(Ipv6Addr::from(dst))) {
            return Err(DropReason::NoIpv6);
        }
        Ok(Verdict::ToKernel)
    }

    fn handle_arp(&mut self, port: usize, frame: &mut [u8], now_ms: u64) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let to_us = EthernetFrame::new_unchecked(&*frame).dst() == p.mac;
        let a = ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::BadArp)?;
        let (op, sip, smac, tip) = (a.operation(), a.sender_ip(), a.sender_mac(), a.target_ip());
        let own = tip == p.addr;
        let vip = self.director.is_vip(IpAddr::V4(tip));
        // With vip_arp = "kernel" the kernel answers for VIPs, and only for
        // those its interface holds (VRRP's master has them).
        let kernel_vip = vip && p.vip_arp == VipArp::Kernel && p.kernel;
        let answered = op == Operation::Request && (own || (vip && !kernel_vip));
        // What the sender says about itself, by the table's rules (Linux's
        // arp_process): only a neighbour on this network, with a unicast
        // MAC, about an address that is not the director's own or a VIP.
        if p.contains(sip)
            && !sip.is_unspecified()
            && !smac.is_multicast()
            && !self.is_local(sip)
            && !self.director.is_vip(IpAddr::V4(sip))
        {
            let heard = match op {
                Operation::Other(_) => return Err(DropReason::BadArp),
                _ if sip == tip => Heard::ArpGratuitous,
                Operation::Request if answered => Heard::AskedForUs,
                Operation::Request => Heard::ArpOther,
                Operation::Reply => Heard::ArpReply { unicast: to_us },
            };
            self.hear(sip, smac, heard, now_ms);
        }
        if answered {
            let mut a = ArpPacket::new_checked(&mut frame[ethernet::HEADER_LEN..])
                .map_err(|_| DropReason::BadArp)?;
            a.make_reply(p.mac);
            let mut eth = EthernetFrame::new_unchecked(&mut *frame);
            eth.set_dst(smac);
            eth.set_src(p.mac);
            self.shared.counters.arp_replies_sent.inc();
            return Ok(Verdict::Tx(port));
        }
        // The kernel sees the rest of what a host would: replies to the
        // director's address (its own requests went out with it; rvsd
        // took them by its rules above as well), questions about VIPs it
        // answers, and announcements (gratuitous ARP: sender = target).
        let for_kernel = p.kernel && (own || kernel_vip || sip == tip);
        match op {
            Operation::Reply | Operation::Request if for_kernel => Ok(Verdict::ToKernel),
            Operation::Reply => Ok(Verdict::Consumed),
            Operation::Request => Err(DropReason::ArpNotForUs),
            Operation::Other(_) => Err(DropReason::BadArp),
        }
    }

    /// A frame the director's kernel sends out of a port (the exception
    /// path): its ARP requests and neighbour solicitations are the
    /// director's requests too, so that their answers (which the kernel
    /// gets as well) may fill rvsd's table.
    pub fn sent_by_kernel(&self, frame: &[u8], now_ms: u64) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        match eth.ethertype() {
            EtherType::Arp => {
                if let Ok(a) = ArpPacket::new_checked(eth.payload()) {
                    if a.operation() == Operation::Request && a.sender_ip() != a.target_ip() {
                        self.neigh.asked(IpAddr::V4(a.target_ip()), now_ms);
                    }
                }
            }
            EtherType::Ipv6 => {
                let Ok(ip) = rvs_packet::ipv6::Ipv6Packet::new_checked(eth.payload()) else {
                    return;
                };
                if ip.next_header() != rvs_packet::ipv6::next_header::ICMPV6 {
                    return;
                }
                let Ok(m) = rvs_packet::icmpv6::Icmpv6Packet::new_checked(ip.payload()) else {
                    return;
                };
                if m.msg_type() == rvs_packet::icmpv6::kind::NEIGHBOR_SOLICIT {
                    if let Some(t) = m.nd_target() {
                        self.neigh.asked(IpAddr::V6(t), now_ms);
                    }
                }
            }
            _ => {}
        }
    }

    /// Offers what a neighbour said (ARP or NDP) to the table, which takes
    /// it or not by its rules; counts the outcome. What is taken is seen
    /// by this worker's next packet as well as by the others'.
    fn hear(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, heard: Heard, now_ms: u64) {
        let c = &self.shared.counters;
        match self.neigh.heard(ip, mac, heard, now_ms) {
            Learned::Unchanged => return,
            Learned::Refused(r) => {
                match r {
                    Refusal::Unsolicited => c.neighbour_unsolicited.inc(),
                    Refusal::Locked => c.neighbour_locked.inc(),
                    Refusal::Static => c.neighbour_static_kept.inc(),
                    Refusal::NotAnAnswer => c.neighbour_not_an_answer.inc(),
                    Refusal::RateLimited => c.neighbour_rate_limited.inc(),
                }
                // An advertisement refused may still have made the entry
                // stale.
                if r != Refusal::Locked {
                    return;
                }
            }
            Learned::Created { evicted } => {
                c.arp_learned.inc();
                c.neighbour_evicted.add(evicted as u64);
            }
            Learned::Moved => {
                c.arp_learned.inc();
                c.neighbour_moved.inc();
            }
            Learned::Confirmed => c.arp_learned.inc(),
        }
        self.neigh_reader.refresh();
    }

    fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.cfg.ports.iter().any(|p| p.addr == ip)
    }

    #[inline(always)]
    fn handle_ipv4<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data_mut();
        let ip =
            Ipv4Packet::new_validated(&frame[ethernet::HEADER_LEN..]).map_err(|e| match e {
                Ipv4Error::Truncated => DropReason::TruncatedIpv4,
                Ipv4Error::BadVersion => DropReason::BadIpVersion,
                Ipv4Error::BadIhl => DropReason::BadIhl,
                Ipv4Error::BadTotalLength => DropReason::BadTotalLength,
            })?;
        if !ip.verify_checksum() {
            return Err(DropReason::BadIpChecksum);
        }
        // Link padding of short frames is not part of the packet.
        let ip_len = ip.total_len() as usize;
        let ip_end = ethernet::HEADER_LEN + ip_len;
        let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
        // The director's own address (not also a VIP) is the host's: with a
        // kernel interface, all of it goes there, options and fragments too
        // (the kernel reassembles). Checked before the header's options, so
        // VIP traffic pays this one test it paid already.
        let local = self.is_local(dst);
        if local && self.cfg.ports[port].kernel && !self.director.is_vip(IpAddr::V4(dst)) {
            return Ok(Verdict::ToKernel);
        }
        if ip.has_options() {
            return Err(DropReason::IpOptions);
        }
        let fragment = ip.is_fragment();
        let protocol = match proto {
            ipv4::protocol::TCP => Protocol::Tcp,
            ipv4::protocol::UDP => Protocol::Udp,
            // A large ping: not forwarded, nor answered in pieces.
            ipv4::protocol::ICMP if fragment => return Err(DropReason::Fragment),
            ipv4::protocol::ICMP => return self.handle_icmp(port, pkt, now_ms),
            _ if local => return self.to_kernel(port, DropReason::ToDirector),
            _ if self.director.is_vip(IpAddr::V4(dst)) => return Err(DropReason::NoService),
            _ => return Err(DropReason::NotForUs),
        };
        // A service may be on the director's own address (kernel IPVS
        // allows it); without one, it is the host's.
        if local && !self.director.is_vip(IpAddr::V4(dst)) {
            return Err(DropReason::ToDirector);
        }
        if fragment {
            pkt.truncate(ip_end);
            return self.ipv4_fragment(port, pkt, protocol, local, now_ms);
        }
        let l4 = l4_ports(protocol, ip.payload())?;
        let (sport, dport, event, syn_only) = (l4.sport, l4.dport, l4.event(), l4.syn_only());
        pkt.truncate(ip_end);
        let key = FlowKey {
            protocol,
            caddr: IpAddr::V4(src),
            cport: sport,
            vaddr: IpAddr::V4(dst),
            vport: dport,
        };
        if let Some(w) = self.elsewhere(&key) {
            return Ok(Verdict::Redirect(w));
        }
        if let Some(r) = self.established(&key, event, syn_only, now_ms) {
            let (daddr, dport, fwd) = self.conns.target_counting_in(r, ip_len as u64);
            return self.xmit(port, pkt, Target { daddr, dport, fwd }, now_ms);
        }
        match self.unknown_flow(&key, event, syn_only, ip_len as u64, now_ms) {
            Ok(Flow::In(target)) => self.xmit(port, pkt, target, now_ms),
            Ok(Flow::Out { vaddr, vport }) => self.xmit_nat_out(port, pkt, vaddr, vport, now_ms),
            // The director's own address, a port that is no service's.
            Err(DropReason::NoService) if local => self.to_kernel(port, DropReason::NoService),
            Err(r) => Err(r),
        }
    }

    /// The worker owning this packet's connection, if not this one: the
    /// client is the source of packets to a VIP and the destination of
    /// anything else (a NAT server's reply).
    #[inline]
    fn elsewhere(&self, key: &FlowKey) -> Option<usize> {
        let n = self.cfg.workers;
        if n <= 1 {
            return None;
        }
        let w = if self.director.is_vip(key.vaddr) {
            self.cfg.sharding.owner_of(key.caddr, key.cport, n)
        } else {
            self.cfg.sharding.owner_of(key.vaddr, key.vport, n)
        };
        (w != self.cfg.id).then_some(w)
    }

    /// Connection tracking, first step (both address families): the client
    /// side's connection of this packet, its state stepped and
    /// timer re-armed; none when there is none, or when a SYN finds it
    /// closing (the kernel's conn_reuse_mode 1: it is removed, and the SYN
    /// starts a new one).
    #[inline(always)]
    fn established(
        &mut self,
        key: &FlowKey,
        event: Option<Event>,
        syn_only: bool,
        now_ms: u64,
    ) -> Option<ConnRef> {
        let is_tcp = key.protocol == Protocol::Tcp;
        let r = self.conns.lookup_hinted(key, self.hint.take())?;
        let old = self.conns.state(r);
        if is_tcp && syn_only && matches!(old, TcpState::TimeWait | TcpState::Close) {
            self.conns.remove(r);
            return None;
        }
        // Read only for the sync daemon's refresh (`worker/sync.rs`).
        let old_expires_s = match self.sync_out {
            Some(_) => self.conns.expires_s(r),
            None => 0,
        };
        self.conns.on_packet(r, key.protocol, false, event, now_ms);
        self.offer_to_sync(r, old, old_expires_s, now_ms);
        Some(r)
    }

    /// Connection tracking, second step, for a packet of no connection on the
    /// client side: a NAT real server's reply, or a new flow. Out of line,
    /// away from established traffic. (The two steps are separate so that an
    /// established packet's target goes straight to the transmitter, not
    /// through a `Flow` on the stack, which cost a store-forwarding stall.)
    /// `bytes` is the packet's IP length, for the traffic counters.
    #[inline(never)]
    fn unknown_flow(
        &mut self,
        key: &FlowKey,
        event: Option<Event>,
        syn_only: bool,
        bytes: u64,
        now_ms: u64,
    ) -> Step<Flow> {
        // A NAT real server's reply?
        let out = OutKey {
            protocol: key.protocol,
            daddr: key.caddr,
            dport: key.cport,
            caddr: key.vaddr,
            cport: key.vport,
        };
        if let Some(r) = self.conns.lookup_out(&out) {
            self.conns.on_packet(r, key.protocol, true, event, now_ms);
            // ip_vs_out_stats: replies count only where they pass us (NAT).
            if let Some(lane) = self.conns.lane(r) {
                lane.count_out(bytes);
            }
            let c = self.conns.get(r);
            return Ok(Flow::Out {
                vaddr: c.key.vaddr,
                vport: c.key.vport,
            });
        }
        self.new_flow(key, syn_only, event, bytes, now_ms)
            .map(Flow::In)
    }

    /// Schedules the first packet of a flow (through a persistence template
    /// when the service has one) and records the connection, except for
    /// one-packet services. Returns where the packet goes. Kept out of line:
    /// established traffic never comes here. The connection and its first
    /// packet (`bytes` long) are counted, as `ip_vs_conn_stats` and
    /// `ip_vs_in_stats` count them.
    #[inline(never)]
    fn new_flow(
        &mut self,
        key: &FlowKey,
        syn_only: bool,
        event: Option<Event>,
        bytes: u64,
        now_ms: u64,
    ) -> Step<Target> {
        let (protocol, src, dst, dport) = (key.protocol, key.caddr, key.vaddr, key.vport);
        let exact = rvs_ipvs::ServiceKey {
            protocol,
            addr: dst,
            port: dport,
        };
        // A port-zero service takes every port of its VIP (it is persistent).
        let svc_port = if self.director.service(&exact).is_some() {
            dport
        } else {
            0
        };
        let Some(svc) = self
            .director
            .lookup(protocol, dst, svc_port)
            .filter(|s| svc_port != 0 || s.spec.persistent.is_some())
        else {
            return Err(if self.director.is_vip(dst) {
                DropReason::NoService
            } else {
                DropReason::NotForUs
            });
        };
        let is_tcp = protocol == Protocol::Tcp;
        let may_open = syn_only || (self.cfg.sloppy_tcp && event != Some(Event::Rst));
        if is_tcp && !may_open {
            return Err(DropReason::NoConnection);
        }
        // drop_packet: under pressure, one new connection in the rate is
        // refused (`ip_vs_todrop` in the protocols' conn_schedule).
        if self.defense.drop_new() {
            return Err(DropReason::Defense);
        }
        let input = SchedInput {
            saddr: src,
            sport: key.cport,
            daddr: dst,
            dport,
            now_ms,
        };
        let one_packet = svc.spec.one_packet && protocol == Protocol::Udp;
        let mut binding = match svc.spec.persistent {
            Some(timeout) => {
                let tkey =
                    TemplateKey::new(protocol, src, svc.spec.netmask, dst, svc.spec.key.port);
                let tpl = match self.templates.get(&tkey) {
                    Some(t) => t,
                    None => {
                        let i = svc
                            .sched
                            .schedule(&svc.dests, &input)
                            .ok_or(DropReason::NoDestination)?;
                        self.templates.create(tkey, &svc.dests[i])
                    }
                };
                if one_packet {
                    tpl.touch(now_ms, timeout);
                } else {
                    tpl.attach(now_ms, timeout);
                }
                Binding {
                    daddr: tpl.daddr,
                    dport: tpl.dport,
                    fwd: tpl.fwd,
                    dest: tpl.dest.clone(),
                    template: Some(tpl),
                }
            }
            None => {
                let i = svc
                    .sched
                    .schedule(&svc.dests, &input)
                    .ok_or(DropReason::NoDestination)?;
                Binding::to_dest(&svc.dests[i])
            }
        };
        if binding.dport == 0 {
            binding.dport = dport;
        }
        self.shared.counters.new_connections.inc();
        let target = Target {
            daddr: binding.daddr,
            dport: binding.dport,
            fwd: binding.fwd,
        };
        if one_packet {
            // Scheduled on its own, no connection entry kept.
            binding
                .dest
                .conns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let lane = self.conns.stats_lane();
            if let Some(lane) = lane.and_then(|l| binding.dest.stats.lane(l)) {
                lane.count_conn();
                lane.count_in(bytes);
            }
            return Ok(target);
        }
        let template = binding.template.clone();
        let r = self
            .conns
            .insert_bound(*key, binding, now_ms)
            .map_err(|_| {
                if let Some(t) = template {
                    t.detach();
                }
                DropReason::ConnTableFull
            })?;
        self.conns.on_packet(r, key.protocol, false, event, now_ms);
        if let Some(lane) = self.conns.lane(r) {
            lane.count_conn();
            lane.count_in(bytes);
        }
        Ok(target)
    }
}

mod frag;
mod icmp;
mod sync;
mod v6;
mod xmit;

#[cfg(test)]
mod tests;
