//! A packet of a connection passed: its TCP state stepped (or a UDP
//! flow's timer re-armed), its dest's active/inactive counts moved.

use super::slab::{
    in_pkts, secs, state_from, F_ACTIVE, F_NO_OUTPUT, F_REPLIED, IN_PKTS_MAX, IN_PKTS_SHIFT, NONE,
};
use super::{ConnRef, ConnTable};
use crate::tcp_state::{next_state_in, Direction, Event, TcpState};
use crate::types::Protocol;

impl ConnTable {
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

    /// The persistence template this connection was made through, if any.
    pub fn template_of(&self, r: ConnRef) -> Option<&std::sync::Arc<crate::persist::Template>> {
        let t = self.data_only(r).template;
        (t != super::slab::NONE).then(|| self.templates.get(t))
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
}
