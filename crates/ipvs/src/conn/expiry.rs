//! Connections leaving the table: on expiry, a slice of the slabs per
//! poll loop; early, under pressure: a half-open one for a new connection
//! (table pressure), and `drop_entry`'s random ones.
//!
//! Table pressure walks the slabs in a circle (a CLOCK): a full table gives
//! the place of the first half-open connection after the walk's last stop,
//! and the new connection takes that very slot, just behind the walk. So
//! under a flood that keeps the table full the walk meets connections in
//! the order they were made, oldest first, as a queue would give them, and
//! a legitimate client's half-open connection lives as long as it takes
//! the flood to make as many new ones as the table holds. (A slot freed by
//! expiry and reused is met in its place, not by its age.) It costs no
//! memory per connection: a queue of them cost 8 bytes each.

use super::key::SlotKey;
use super::slab::{in_pkts, state_from, ConnData, F_LIVE, F_REPLIED, IN_PKTS_MAX};
use super::{ConnRef, ConnTable, V6};
use crate::tcp_state::TcpState;
use crate::types::Protocol;

/// Most slots one insertion looks at for a half-open connection to give
/// up: an insertion into a full table never costs more than this walk (a
/// few kilobytes, read in order).
pub(super) const RECLAIM_SCAN: usize = 256;

/// Whether a TCP connection in `state` with `flags` is half-open: only the
/// client's SYN(s) seen, nothing from the real server.
pub(super) fn half_open(state: u8, flags: u8) -> bool {
    flags & (F_LIVE | F_REPLIED) == F_LIVE
        && matches!(
            state_from(state),
            TcpState::None | TcpState::SynRecv | TcpState::SynAck
        )
}

/// The slot at position `at` of the IPv4 slab (`len4` slots) followed by
/// the IPv6 one: how table pressure's walk and `drop_entry` number slots.
fn slot_at(at: usize, len4: usize) -> ConnRef {
    if at < len4 {
        ConnRef(at as u32)
    } else {
        ConnRef((at - len4) as u32 | V6)
    }
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

    /// Table pressure: removes the first half-open TCP connection the
    /// walk meets within [`RECLAIM_SCAN`] slots of where it stopped last,
    /// and stops just past it. False when there is none there (or
    /// reclaiming is off).
    pub(super) fn reclaim_one(&mut self) -> bool {
        if !self.reclaim_half_open {
            return false;
        }
        let found = self.walk_to_half_open(RECLAIM_SCAN);
        if let Some(r) = found {
            self.remove(r);
            self.reclaimed += 1;
            self.reclaim_at += 1;
        }
        found.is_some()
    }

    /// Moves table pressure's walk, over at most `budget` slots, to the
    /// next half-open TCP connection (staying on the one it is on), and
    /// returns it; none within `budget`.
    fn walk_to_half_open(&mut self, budget: usize) -> Option<ConnRef> {
        let (len4, len6) = (self.v4.slots.len(), self.v6.slots.len());
        let len = len4 + len6;
        if len == 0 {
            return None;
        }
        let mut at = self.reclaim_at;
        for _ in 0..budget.min(len) {
            if at >= len {
                at = 0;
            }
            let (tcp, d) = if at < len4 {
                let s = &self.v4.slots[at];
                (s.key.is_tcp(), s.data)
            } else {
                let s = &self.v6.slots[at - len4];
                (s.key.is_tcp(), s.data)
            };
            if tcp && half_open(d.state, d.flags) {
                self.reclaim_at = at;
                return Some(slot_at(at, len4));
            }
            at += 1;
        }
        self.reclaim_at = at;
        None
    }

    /// Between bursts, while the table is full: moves table pressure's
    /// walk on to the next half-open connection, over at most `budget`
    /// slots, so that the next new connection finds it at once. Costs
    /// nothing while the table has room (benchmarks and normal service).
    pub fn seek_half_open(&mut self, budget: usize) {
        if self.reclaim_half_open && self.len() >= self.capacity {
            self.walk_to_half_open(budget);
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
            let r = slot_at(at, len4);
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
