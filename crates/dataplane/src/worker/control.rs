//! What the control thread tells a worker ([`WorkerMsg`]), and the `-Lc`
//! listings it asks for, walked a bounded slice per poll loop.

use std::net::IpAddr;

use rvs_ipvs::defense::{Defense, DefenseConfig};
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Change, ConnRow};

use super::rows::conn_row;
use super::Worker;

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
    /// The sync daemon's master started or stopped (`None`).
    SyncMaster(Option<SyncMaster>),
    /// A connection from a master's sync message, for the worker that owns
    /// its client endpoint. This and `SyncMaster` are not counted in
    /// `applied`: the sync daemon sends them, not the control thread's
    /// counted broadcast.
    Synced(rvs_sync::SyncConn),
}

/// The sync daemon's master as a worker runs it: each worker packs the
/// connections it syncs into messages of its own (the kernel's master
/// threads each fill their own too) and sends them (`worker/sync.rs`).
#[derive(Debug, Clone)]
pub struct SyncMaster {
    pub syncid: u8,
    /// The largest message, in bytes (UDP payload).
    pub maxlen: usize,
    pub sink: SyncSink,
}

/// Where a worker's sync messages go.
#[derive(Debug, Clone)]
pub enum SyncSink {
    /// Framed by the worker and sent on this port (index into the
    /// worker's ports), UDP multicast from the port's address: no thread
    /// and no kernel between the worker and the wire.
    Port {
        port: usize,
        group: std::net::Ipv4Addr,
        udp_port: u16,
        ttl: u8,
    },
    /// Handed, whole, to the daemon's thread, which sends them from a
    /// kernel socket: for an interface of the director's kernel that is
    /// not one of rvsd's ports (a separate sync network).
    Kernel(crossbeam_channel::Sender<Vec<u8>>),
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
pub(super) struct ActiveListing {
    req: ConnListing,
    cursor: rvs_ipvs::conn::ListCursor,
    /// Rows made but not yet taken by the (full) channel.
    pending: Vec<ConnRow>,
    sent: usize,
    walked: bool,
}

impl Worker {
    /// Applies a control message.
    pub fn apply(&mut self, msg: &WorkerMsg, now_ms: u64) {
        match msg {
            WorkerMsg::SetTimeouts(t) => self.conns.set_timeouts(*t),
            WorkerMsg::SyncMaster(m) => self.set_sync_master(m.clone()),
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
}
