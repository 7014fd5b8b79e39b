//! The worker's part of IPVS connection sync (the daemons' start and stop,
//! and the backup's socket, live in rvs-control; the wire format in
//! rvs-sync):
//!
//! - as master, a connection is synced at the moments the kernel's
//!   `ip_vs_sync_conn_needed` picks with its default sysctls
//!   (`sync_threshold` 3): TCP when it enters FIN_WAIT, CLOSE, CLOSE_WAIT
//!   or TIME_WAIT, or is ESTABLISHED at the client's third packet; UDP at
//!   the client's third packet. After that the kernel sends a connection
//!   again every `sync_period` (50) packets, so that a backup that starts
//!   late learns it and its timer stays fresh; rvs counts a connection's
//!   packets only up to 9 (four bits of its slot) and sends it again every
//!   [`REFRESH_S`] seconds instead, at the first client packet of a second
//!   in its phase (the phase from its client port, so that refreshes
//!   spread over the seconds). The worker writes the entry straight into
//!   the message it is filling (rvs-sync's `Encoder`), and sends the
//!   message when the next entry would not fit or its oldest entry has
//!   waited [`FLUSH_MS`] (the kernel's `IPVS_SYNC_FLUSH_TIME`): on a port,
//!   it frames the message as UDP multicast itself; for an interface that
//!   is not a port it hands it to the daemon's thread (`SyncSink`).
//!   Sending from the worker is what keeps sync cheap: handing every
//!   connection to a thread that sent through the kernel interface (and
//!   so back through this worker's exception path) cost the new-flow rate
//!   a fifth (`cargo xtask bench --sync-cost`);
//! - as backup, a connection from a master's message is created (or its
//!   state and timer updated) bound to the same real server, so that its
//!   packets, should they come here, go on to that server whatever the
//!   scheduler would pick; a persistence template (sent with each
//!   connection made through one, as the kernel sends a connection's
//!   controlling template) is made or renewed here.

use std::net::IpAddr;

use rvs_ipvs::conn::{Binding, ConnRef, FlowKey};
use rvs_ipvs::service::Service;
use rvs_ipvs::tcp_state::TcpState;
use rvs_ipvs::{Director, FwdMethod, Protocol};
use rvs_sync::{flags, SyncConn};

use super::{SyncMaster, SyncSink, Worker};

/// The kernel's `sync_threshold`: a connection is first sent at its
/// client's third packet.
const SYNC_THRESHOLD: u8 = 3;
/// How often a connection with traffic is sent again.
pub const REFRESH_S: u32 = 2;
/// How long a message that is not full waits for more entries (the
/// kernel's `IPVS_SYNC_FLUSH_TIME`).
pub const FLUSH_MS: u64 = 2000;

/// A running master on this worker: where its messages go, the one being
/// filled and when its first entry went in.
pub(super) struct SyncOut {
    cfg: SyncMaster,
    enc: rvs_sync::Encoder,
    oldest_ms: Option<u64>,
}

fn fwd_flags(f: FwdMethod) -> u32 {
    match f {
        FwdMethod::Masq => flags::MASQ,
        FwdMethod::Local => flags::LOCALNODE,
        FwdMethod::Tunnel(_) => flags::TUNNEL,
        FwdMethod::Route => flags::DROUTE,
    }
}

impl Worker {
    /// After a client packet of connection `r` stepped it from state `old`
    /// and timer `old_expires_s`: offers it to the sync daemon if now is a
    /// time to.
    #[inline]
    pub(super) fn offer_to_sync(
        &mut self,
        r: ConnRef,
        old: TcpState,
        old_expires_s: u32,
        now_ms: u64,
    ) {
        if self.sync_out.is_some() {
            self.offer_to_sync_slow(r, old, old_expires_s, now_ms);
        }
    }

    #[inline(never)]
    fn offer_to_sync_slow(&mut self, r: ConnRef, old: TcpState, old_expires_s: u32, now_ms: u64) {
        let c = self.conns.get(r);
        let pkts = self.conns.in_pkts(r);
        let expires_s = self.conns.expires_s(r);
        // The first packet of a second in the connection's phase.
        let refresh = pkts > SYNC_THRESHOLD
            && expires_s != old_expires_s
            && (expires_s + c.key.cport as u32).is_multiple_of(REFRESH_S);
        let due = match c.key.protocol {
            Protocol::Tcp => match c.state {
                TcpState::FinWait | TcpState::Close | TcpState::CloseWait | TcpState::TimeWait => {
                    c.state != old
                }
                TcpState::Established => pkts == SYNC_THRESHOLD || refresh,
                _ => false,
            },
            _ => pkts == SYNC_THRESHOLD || refresh,
        };
        if !due {
            return;
        }
        let entry = SyncConn {
            protocol: match c.key.protocol {
                Protocol::Tcp => rvs_sync::TCP,
                _ => rvs_sync::UDP,
            },
            flags: fwd_flags(c.fwd),
            state: if c.key.protocol == Protocol::Tcp {
                c.state as u16
            } else {
                0
            },
            caddr: c.key.caddr,
            vaddr: c.key.vaddr,
            daddr: c.daddr,
            cport: c.key.cport,
            vport: c.key.vport,
            dport: c.dport,
            fwmark: 0,
            // Just re-armed: the state's timeout.
            timeout_s: (c.expires_ms.saturating_sub(now_ms)).div_ceil(1000) as u32,
            seq: None,
            pe_data: Vec::new(),
            pe_name: Vec::new(),
        };
        // The persistence template it was made through goes with it, as
        // the kernel sends a connection's controlling template.
        // (By reference: an entry is over a hundred bytes, and moving it
        // through an iterator chain cost a copy each way.)
        self.sync_entry(&entry, now_ms);
        if let Some(t) = self.template_entry(r, &entry, now_ms) {
            self.sync_entry(&t, now_ms);
        }
    }

    /// The sync entry of connection `r`'s persistence template, if it has
    /// one: the client's network (the service's netmask applied), no client
    /// port, the service's port, and the template's time left.
    fn template_entry(&self, r: ConnRef, conn: &SyncConn, now_ms: u64) -> Option<SyncConn> {
        let t = self.conns.template_of(r)?;
        let protocol = if conn.protocol == rvs_sync::TCP {
            Protocol::Tcp
        } else {
            Protocol::Udp
        };
        let svc = synced_service(&self.director, protocol, conn.vaddr, conn.vport)?;
        let tkey = rvs_ipvs::persist::TemplateKey::new(
            protocol,
            conn.caddr,
            svc.spec.netmask,
            conn.vaddr,
            svc.spec.key.port,
        );
        Some(SyncConn {
            flags: flags::TEMPLATE | fwd_flags(t.fwd),
            state: 0,
            caddr: tkey.cnet,
            cport: 0,
            vport: tkey.vport,
            daddr: t.daddr,
            dport: t.dport,
            timeout_s: t.expires_ms().saturating_sub(now_ms).div_ceil(1000) as u32,
            ..conn.clone()
        })
    }

    /// Starts (or restarts with new settings) or stops the master; what
    /// the old one had in its message is sent first.
    pub(super) fn set_sync_master(&mut self, m: Option<SyncMaster>) {
        self.flush_sync();
        self.sync_out = m.map(|cfg| {
            // On a port, each message is filled after room for the frame's
            // headers, which are then written in front of it, in place.
            let head = match cfg.sink {
                SyncSink::Port { .. } => rvs_sync::frame::HEADERS,
                SyncSink::Kernel(_) => 0,
            };
            SyncOut {
                enc: rvs_sync::Encoder::with_headroom(cfg.syncid, cfg.maxlen, head),
                cfg,
                oldest_ms: None,
            }
        });
    }

    /// Adds an entry to the message being filled, sending the message it
    /// completed, if any.
    fn sync_entry(&mut self, e: &SyncConn, now_ms: u64) {
        let Some(out) = self.sync_out.as_mut() else {
            return;
        };
        let c = &self.shared.counters;
        match out.enc.push(e) {
            Ok(done) => {
                c.sync_offered.inc();
                if done.is_some() {
                    out.oldest_ms = None;
                }
                out.oldest_ms.get_or_insert(now_ms);
                if let Some(msg) = done {
                    self.send_sync_message(msg);
                }
            }
            // Only a limit too small for one entry (`--sync-maxlen`).
            Err(_) => c.sync_not_sent.inc(),
        }
    }

    /// From the poll loop: sends the message being filled if its first
    /// entry has waited long enough.
    pub(super) fn flush_sync_if_old(&mut self, now_ms: u64) {
        if let Some(t) = self.sync_out.as_ref().and_then(|o| o.oldest_ms) {
            if now_ms >= t + FLUSH_MS {
                self.flush_sync();
            }
        }
    }

    /// Sends the message being filled, if it holds an entry.
    pub(super) fn flush_sync(&mut self) {
        let Some(out) = self.sync_out.as_mut() else {
            return;
        };
        out.oldest_ms = None;
        if let Some(msg) = out.enc.finish() {
            self.send_sync_message(msg);
        }
    }

    /// Sends a complete message where the master's settings say.
    fn send_sync_message(&mut self, msg: Vec<u8>) {
        let Some(out) = self.sync_out.as_ref() else {
            return;
        };
        let c = &self.shared.counters;
        match &out.cfg.sink {
            SyncSink::Kernel(tx) => {
                // The header's count of entries.
                let entries = msg.get(4).copied().unwrap_or(0) as u64;
                match tx.try_send(msg) {
                    Ok(()) => c.sync_messages.inc(),
                    Err(_) => c.sync_not_sent.add(entries),
                }
            }
            &SyncSink::Port {
                port,
                group,
                udp_port,
                ttl,
            } => {
                let entries = msg.get(rvs_sync::frame::HEADERS + 4).copied().unwrap_or(0) as u64;
                let Some(info) = self.cfg.ports.get(port) else {
                    return c.sync_not_sent.add(entries);
                };
                let wire = rvs_sync::frame::Wire {
                    mac: info.mac,
                    src: info.addr,
                    group,
                    port: udp_port,
                    ttl,
                };
                let id = self.next_ip_id;
                self.next_ip_id = self.next_ip_id.wrapping_add(1);
                let mut f = msg;
                if rvs_sync::frame::frame(&mut f, &wire, id).is_some() {
                    self.generated.push((port, f));
                    c.sync_messages.inc();
                } else {
                    c.sync_not_sent.add(entries);
                }
            }
        }
    }

    /// A connection a master sent (this worker owns its client endpoint):
    /// created bound to the real server the master chose, or brought to the
    /// master's state. One whose service or real server this director does
    /// not have is skipped and counted, as the kernel's backup skips one
    /// without a service.
    pub(super) fn apply_synced(&mut self, s: &SyncConn, now_ms: u64) {
        let c = &self.shared.counters;
        let protocol = match s.protocol {
            rvs_sync::TCP => Protocol::Tcp,
            rvs_sync::UDP => Protocol::Udp,
            _ => return c.synced_skipped.inc(),
        };
        if s.flags & flags::TEMPLATE != 0 {
            return self.apply_synced_template(protocol, s, now_ms);
        }
        let state = if protocol == Protocol::Tcp {
            match TcpState::ALL.get(s.state as usize) {
                Some(st) => Some(*st),
                None => return c.synced_skipped.inc(),
            }
        } else {
            None
        };
        let key = FlowKey {
            protocol,
            caddr: s.caddr,
            cport: s.cport,
            vaddr: s.vaddr,
            vport: s.vport,
        };
        if let Some(r) = self.conns.lookup(&key) {
            self.conns.set_synced(r, state, s.timeout_s, now_ms);
            return self.shared.counters.synced_updated.inc();
        }
        let Some(mut binding) = synced_binding(&self.director, protocol, s.vaddr, s.vport, s.daddr)
        else {
            return self.shared.counters.synced_skipped.inc();
        };
        binding.dport = s.dport;
        match self.conns.insert_bound(key, binding, now_ms) {
            Ok(r) => {
                self.conns.set_synced(r, state, s.timeout_s, now_ms);
                self.shared.counters.synced_created.inc();
            }
            Err(_) => self.shared.counters.synced_skipped.inc(),
        }
    }

    /// A persistence template a master sent: made (or renewed) here, so
    /// that the client network's next connection goes to the same real
    /// server whichever director it reaches.
    fn apply_synced_template(&mut self, protocol: Protocol, s: &SyncConn, now_ms: u64) {
        let Some(svc) = synced_service(&self.director, protocol, s.vaddr, s.vport) else {
            return self.shared.counters.synced_skipped.inc();
        };
        let Some(dest) = svc.dests.iter().find(|d| d.spec.addr == s.daddr) else {
            return self.shared.counters.synced_skipped.inc();
        };
        let tkey = rvs_ipvs::persist::TemplateKey::new(
            protocol,
            s.caddr,
            svc.spec.netmask,
            s.vaddr,
            svc.spec.key.port,
        );
        let made = self.templates.get(&tkey).is_none();
        let t = match self.templates.get(&tkey) {
            Some(t) => t,
            None => self.templates.create(tkey, dest),
        };
        t.touch(now_ms, s.timeout_s);
        let c = &self.shared.counters;
        if made {
            c.synced_created.inc();
        } else {
            c.synced_updated.inc();
        }
    }
}

/// The service a synced entry belongs to: the one on `vaddr:vport`, or the
/// VIP's port-zero persistent service. (Of the director alone, not the
/// worker, so that a binding borrowed from it leaves the connection table
/// free to take it.)
fn synced_service(
    director: &Director,
    protocol: Protocol,
    vaddr: IpAddr,
    vport: u16,
) -> Option<&Service> {
    let key = |port| rvs_ipvs::ServiceKey {
        protocol,
        addr: vaddr,
        port,
    };
    director
        .service(&key(vport))
        .or_else(|| director.service(&key(0)))
}

/// A binding to the real server `daddr` of the service on `vaddr:vport`
/// (or its port-zero persistent service), as this director has it (its
/// port may differ: a NAT port mapping, or a port-zero service's).
fn synced_binding(
    director: &Director,
    protocol: Protocol,
    vaddr: IpAddr,
    vport: u16,
    daddr: IpAddr,
) -> Option<Binding<'_>> {
    synced_service(director, protocol, vaddr, vport)?
        .dests
        .iter()
        .find(|d| d.spec.addr == daddr)
        .map(Binding::to_dest)
}
