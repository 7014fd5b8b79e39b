//! Connections leaving the table: on expiry, a slice of the slabs per
//! poll loop; early, under pressure: the oldest half-open one for a new
//! connection (table pressure), and `drop_entry`'s random ones.

use super::slab::{in_pkts, state_from, ConnData, F_LIVE, F_REPLIED, IN_PKTS_MAX};
use super::{ConnRef, ConnTable, V6};
use crate::tcp_state::TcpState;
use crate::types::Protocol;

/// TCP connections oldest first, by slot and a tag of their key (a slot
/// reused by a later connection no longer matches): a ring sized for the
/// whole table up front, 8 bytes a connection. Entries of connections that
/// got established or went away are skipped when they reach the front.
#[derive(Debug)]
pub(super) struct HalfOpenQueue {
    pub(super) ring: std::collections::VecDeque<(ConnRef, u32)>,
    pub(super) capacity: usize,
}

/// Most stale queue entries one insertion skips looking for a half-open
/// connection to reclaim: an insertion never costs more than this.
pub(super) const RECLAIM_SCAN: usize = 256;

/// Random slots an insertion looks at for a half-open connection when the
/// queue has none.
const RECLAIM_PROBES: usize = 64;

/// Whether a TCP connection in `state` with `flags` is half-open: only the
/// client's SYN(s) seen, nothing from the real server.
pub(super) fn half_open(state: u8, flags: u8) -> bool {
    flags & (F_LIVE | F_REPLIED) == F_LIVE
        && matches!(
            state_from(state),
            TcpState::None | TcpState::SynRecv | TcpState::SynAck
        )
}

impl ConnTable {
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

    /// Table pressure: removes the oldest half-open TCP connection, looking
    /// at no more than [`RECLAIM_SCAN`] stale entries of the queue; failing
    /// that (the queue was just turned on, or lost entries when it was
    /// full), a half-open connection among [`RECLAIM_PROBES`] slots picked
    /// at random. False when there is none (or reclaiming is off).
    pub(super) fn reclaim_one(&mut self) -> bool {
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
    pub(super) fn todrop_entry(&mut self, d: ConnData, timeout_s: u32, now_s: u32) -> bool {
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
}
