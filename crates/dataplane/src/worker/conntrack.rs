//! Connection tracking, shared by both address families: the steps every
//! TCP or UDP packet to a VIP takes (`track`): its connection found and
//! stepped (`established`), a NAT server's reply or a new flow
//! (`unknown_flow`), a new flow scheduled and recorded (`new_flow`); and
//! the connection an ICMP error is about (`icmp_error_about`). Only the
//! headers differ between IPv4 and IPv6: `v4.rs` and `v6.rs` read them into
//! a `FlowKey` and an `L4`, and the transmitters of each family
//! (`xmit.rs`, `xmit6.rs`) write them.

use std::net::IpAddr;

use rvs_ipvs::conn::{Binding, Conn, ConnRef, FlowKey, Refused};
use rvs_ipvs::persist::TemplateKey;
use rvs_ipvs::sched::SchedInput;
use rvs_ipvs::tcp_state::{Event, TcpState};
use rvs_ipvs::{FwdMethod, Protocol};
use rvs_packet::{TcpSegment, UdpDatagram};

use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

/// A TCP or UDP header as connection tracking needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct L4 {
    pub(super) sport: u16,
    pub(super) dport: u16,
    /// TCP flags; 0 for UDP.
    pub(super) flags: u8,
}

impl L4 {
    /// The TCP state-machine event of the segment (none for UDP).
    pub(super) fn event(&self) -> Option<Event> {
        use rvs_packet::tcp::flags::{ACK, FIN, RST, SYN};
        let f = self.flags;
        Event::from_flags(f & SYN != 0, f & FIN != 0, f & ACK != 0, f & RST != 0)
    }

    /// Whether the segment may open a connection: SYN without RST.
    pub(super) fn syn_only(&self) -> bool {
        use rvs_packet::tcp::flags::{RST, SYN};
        self.flags & (SYN | RST) == SYN
    }
}

/// The flow of a packet from `src` to `dst` with transport header `l4`.
#[inline(always)]
pub(super) fn flow_key(protocol: Protocol, src: IpAddr, dst: IpAddr, l4: &L4) -> FlowKey {
    FlowKey {
        protocol,
        caddr: src,
        cport: l4.sport,
        vaddr: dst,
        vport: l4.dport,
    }
}

/// Ports and TCP flags. Plain fields rather than a tuple with an
/// `Option<Event>`: rustc packed that through the stack with a
/// store-forwarding stall per packet.
#[inline(always)]
pub(super) fn l4_ports(protocol: Protocol, l4: &[u8]) -> Step<L4> {
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

/// What connection tracking decided for a packet.
pub(super) enum Flow {
    /// Client to server: send it to this target.
    In(Target),
    /// A NAT server's reply: give it the VIP's address and port back.
    Out { vaddr: IpAddr, vport: u16 },
}

/// Where a connection's packets go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Target {
    pub(super) daddr: IpAddr,
    pub(super) dport: u16,
    pub(super) fwd: FwdMethod,
}

impl Target {
    pub(super) fn of(c: Conn<'_>) -> Target {
        Target {
            daddr: c.daddr,
            dport: c.dport,
            fwd: c.fwd,
        }
    }
}

/// What an ICMP error is about: the connection of the packet it quotes
/// (the kernel's `ip_vs_in_icmp` and `ip_vs_out_icmp` lookups).
pub(super) enum ErrorAbout {
    /// Another worker's connection: hand the error over.
    Elsewhere(usize),
    /// From the client side, about a reply we (or a DR/TUN server) sent
    /// from the VIP: goes on to the connection's real server.
    In(Target),
    /// From a NAT server's side, about a packet we sent it: goes back to
    /// the client, as if from the VIP.
    Out { vaddr: IpAddr, vport: u16 },
    /// About no connection of ours.
    Unrelated,
}

impl Worker {
    /// The steps of connection tracking for a TCP or UDP packet to a VIP
    /// (or a NAT server's reply) whose transport header `l4` was read, in
    /// either family: the owning worker, the connection's target, or a NAT
    /// reply or a new flow, then the family's transmitter. `ip_len` is the
    /// packet's IP length, for the traffic counters; `local`, that it is
    /// to the director's own address.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn track<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        key: &FlowKey,
        l4: L4,
        ip_len: u64,
        local: bool,
        now_ms: u64,
    ) -> Step<Verdict> {
        let (event, syn_only) = (l4.event(), l4.syn_only());
        if let Some(w) = self.elsewhere(key) {
            return Ok(Verdict::Redirect(w));
        }
        let v6 = key.vaddr.is_ipv6();
        if let Some(r) = self.established(key, event, syn_only, now_ms) {
            let (daddr, dport, fwd) = self.conns.target_counting_in(r, ip_len);
            return self.xmit(port, pkt, v6, Target { daddr, dport, fwd }, now_ms);
        }
        match self.unknown_flow(key, event, syn_only, ip_len, now_ms) {
            Ok(Flow::In(t)) => self.xmit(port, pkt, v6, t, now_ms),
            Ok(Flow::Out { vaddr, vport }) => self.xmit_out(port, pkt, vaddr, vport, now_ms),
            // The director's own address, a port that is no service's.
            Err(DropReason::NoService) if local => self.to_kernel(port, DropReason::NoService),
            Err(r) => Err(r),
        }
    }

    /// The connection an ICMP error is about, in either family. `fk` is
    /// the flow of the quoted packet turned round (the quote is of a
    /// packet going the other way), so it names the connection whichever
    /// side the error came from. `ip_len` is the error's IP length, counted
    /// in the connection's stats in or out, as the kernel counts it;
    /// `hops`, its TTL or hop limit: the director routes an error back to
    /// the client as it routes a NAT reply, so one on its last hop is
    /// dropped.
    pub(super) fn icmp_error_about(
        &mut self,
        fk: &FlowKey,
        ip_len: u64,
        hops: u8,
    ) -> Step<ErrorAbout> {
        if let Some(w) = self.elsewhere(fk) {
            return Ok(ErrorAbout::Elsewhere(w));
        }
        if let Some(r) = self.conns.lookup(fk) {
            self.icmp_error_out = true;
            if let Some(lane) = self.conns.lane(r) {
                lane.count_in(ip_len);
            }
            return Ok(ErrorAbout::In(Target::of(self.conns.get(r))));
        }
        let Some(r) = self.conns.lookup_out(&fk.as_reply()) else {
            return Ok(ErrorAbout::Unrelated);
        };
        if hops <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        self.icmp_error_out = true;
        if let Some(lane) = self.conns.lane(r) {
            lane.count_out(ip_len);
        }
        let c = self.conns.get(r);
        Ok(ErrorAbout::Out {
            vaddr: c.key.vaddr,
            vport: c.key.vport,
        })
    }

    /// Connection tracking, first step (both address families): the client
    /// side's connection of this packet, its state stepped and
    /// timer re-armed; none when there is none, or when a SYN finds it
    /// closed (the kernel's conn_reuse_mode 1: the SYN opens the next
    /// connection of the flow, unless a persistence template controls this
    /// one).
    ///
    /// The kernel ends the old connection by its timer, set to run at once
    /// (`ip_vs_conn_expire_now`), so the new one is scheduled while the old
    /// one still counts on its server (checked in the kernel VM:
    /// oracle/scenarios/states/reuse.toml). Here too: it is kept as
    /// `reopening`, `new_flow` puts the new connection in its slot once
    /// scheduled, and `unknown_flow` removes it if none was opened.
    #[inline(always)]
    pub(super) fn established(
        &mut self,
        key: &FlowKey,
        event: Option<Event>,
        syn_only: bool,
        now_ms: u64,
    ) -> Option<ConnRef> {
        let is_tcp = key.protocol == Protocol::Tcp;
        let r = self.conns.lookup_hinted(key, self.hint.take())?;
        let old = self.conns.state(r);
        if is_tcp
            && syn_only
            && matches!(old, TcpState::TimeWait | TcpState::Close)
            && !self.conns.is_controlled(r)
        {
            self.reopening = Some(r);
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
    pub(super) fn unknown_flow(
        &mut self,
        key: &FlowKey,
        event: Option<Event>,
        syn_only: bool,
        bytes: u64,
        now_ms: u64,
    ) -> Step<Flow> {
        // A NAT real server's reply?
        let flow = match self.conns.lookup_out(&key.as_reply()) {
            Some(r) => {
                self.conns.on_packet(r, key.protocol, true, event, now_ms);
                // ip_vs_out_stats: replies count only where they pass us (NAT).
                if let Some(lane) = self.conns.lane(r) {
                    lane.count_out(bytes);
                }
                let c = self.conns.get(r);
                Ok(Flow::Out {
                    vaddr: c.key.vaddr,
                    vport: c.key.vport,
                })
            }
            None => self
                .new_flow(key, syn_only, event, bytes, now_ms)
                .map(Flow::In),
        };
        // A closed connection a SYN was to reopen (see `established`),
        // and no new one was opened: it ends now.
        if let Some(r) = self.reopening.take() {
            self.conns.remove(r);
        }
        flow
    }

    /// Schedules the first packet of a flow (through a persistence template
    /// when the service has one) and records the connection, except for
    /// one-packet services. Returns where the packet goes. Kept out of line:
    /// established traffic never comes here. The connection and its first
    /// packet (`bytes` long) are counted, as `ip_vs_conn_stats` and
    /// `ip_vs_in_stats` count them.
    #[inline(never)]
    pub(super) fn new_flow(
        &mut self,
        key: &FlowKey,
        syn_only: bool,
        event: Option<Event>,
        bytes: u64,
        now_ms: u64,
    ) -> Step<Target> {
        let (protocol, src, dst, dport) = (key.protocol, key.caddr, key.vaddr, key.vport);
        // One search when the port has its own service: a map search of
        // the service key costs about as much as scheduling does.
        let svc = match self.director.lookup(protocol, dst, dport) {
            Some(svc) => svc,
            // A port-zero service takes every port of its VIP (it is
            // persistent).
            None => match self
                .director
                .lookup(protocol, dst, 0)
                .filter(|s| s.spec.persistent.is_some())
            {
                Some(svc) => svc,
                None => {
                    return Err(if self.director.is_vip(dst) {
                        DropReason::NoService
                    } else {
                        DropReason::NotForUs
                    })
                }
            },
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
        let tpl = match svc.spec.persistent {
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
                Some(tpl)
            }
            None => None,
        };
        let mut binding = match &tpl {
            Some(t) => Binding {
                daddr: t.daddr,
                dport: t.dport,
                fwd: t.fwd,
                dest: &t.dest,
                template: Some(t),
            },
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
        let target = Target {
            daddr: binding.daddr,
            dport: binding.dport,
            fwd: binding.fwd,
        };
        if one_packet {
            // Scheduled on its own, no connection entry kept.
            self.shared.counters.new_connections.inc();
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
        let r = match self.reopening.take() {
            // The flow's closed connection ends, the new one takes its slot
            // (see `established`).
            Some(r) => {
                self.conns.rebind(r, key.protocol, binding, now_ms);
                r
            }
            None => self
                .conns
                .insert_bound(*key, binding, now_ms)
                .map_err(|e| {
                    if let Some(t) = binding.template {
                        t.detach();
                    }
                    match e {
                        Refused::TableFull => DropReason::ConnTableFull,
                        Refused::ClientEndpointFull => DropReason::ClientEndpointFull,
                    }
                })?,
        };
        // Counted once recorded: a SYN refused for a full table and then
        // retransmitted is one connection, not two.
        self.shared.counters.new_connections.inc();
        self.conns.on_packet(r, key.protocol, false, event, now_ms);
        if let Some(lane) = self.conns.lane(r) {
            lane.count_conn();
            lane.count_in(bytes);
        }
        Ok(target)
    }
}
