//! IPv6: neighbour discovery, echo, and the three forwarding methods
//! (DR, NAT, IPv6-in-IPv6 tunnels) with their ICMPv6 errors, behind
//! extension headers too. Connection tracking and scheduling are shared
//! with IPv4 (`Worker::established`, `Worker::unknown_flow`, in
//! `conntrack.rs`).

use std::net::{IpAddr, Ipv6Addr};

use rvs_ipvs::conn::{FlowKey, OutKey};
use rvs_ipvs::{FwdMethod, Protocol, TunKind, TunSpec};
use rvs_packet::checksum;
use rvs_packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use rvs_packet::icmpv6::{self, kind, Icmpv6Packet};
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};
use rvs_packet::{TcpSegment, UdpDatagram};

use super::conntrack::{l4_ports, Flow, Target, L4};
use super::frag::{first_fragment_ports, FragKey};
use super::xmit::Side;
use super::{Step, Verdict, VipArp, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;
use crate::neighbour::Heard;

const IP: usize = ethernet::HEADER_LEN;

/// Rewrites one end of the IPv6 packet in `ipbuf` and fixes the transport
/// checksum incrementally (IPv6 has no header checksum). The transport
/// header may sit behind extension headers; a fragment other than the
/// first has none, and gets the address alone (as for IPv4).
fn rewrite_v6(ipbuf: &mut [u8], side: Side, addr: Ipv6Addr, port: u16) -> Step<()> {
    let mut ip = Ipv6Packet::new_checked(&mut *ipbuf).map_err(|_| DropReason::TruncatedIpv6)?;
    let old = if side == Side::Dst {
        ip.dst()
    } else {
        ip.src()
    };
    match side {
        Side::Dst => ip.set_dst(addr),
        Side::Src => ip.set_src(addr),
    }
    let (nh, l4) = match ip.next_header() {
        nh @ (next_header::TCP | next_header::UDP) => (nh, ip.payload_mut()),
        nh if !next_header::is_walked_extension(nh) => return Ok(()),
        _ => {
            let u = ipv6::upper_layer(&ipbuf[..]).map_err(|_| DropReason::Ipv6ExtHeaders)?;
            if u.fragment.is_some_and(|f| f.offset != 0) {
                return Ok(());
            }
            let end = ipv6::HEADER_LEN
                + Ipv6Packet::new_checked(&ipbuf[..])
                    .map_err(|_| DropReason::TruncatedIpv6)?
                    .payload_len() as usize;
            (u.protocol, &mut ipbuf[u.offset..end])
        }
    };
    match nh {
        next_header::TCP => {
            let mut t = TcpSegment::new_checked(l4).map_err(|_| DropReason::BadL4Header)?;
            let op = if side == Side::Dst {
                t.dst_port()
            } else {
                t.src_port()
            };
            t.set_checksum(checksum::update16(
                checksum::update128(t.checksum(), old, addr),
                op,
                port,
            ));
            match side {
                Side::Dst => t.set_dst_port(port),
                Side::Src => t.set_src_port(port),
            }
        }
        next_header::UDP => {
            let mut u = UdpDatagram::new_header_checked(l4).map_err(|_| DropReason::BadL4Header)?;
            let op = if side == Side::Dst {
                u.dst_port()
            } else {
                u.src_port()
            };
            let c = checksum::update16(checksum::update128(u.checksum(), old, addr), op, port);
            u.set_checksum(if c == 0 { 0xffff } else { c });
            match side {
                Side::Dst => u.set_dst_port(port),
                Side::Src => u.set_src_port(port),
            }
        }
        _ => {}
    }
    Ok(())
}

/// The quoted packet of an ICMPv6 error: its endpoints.
struct Quoted6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: Protocol,
    sport: u16,
    dport: u16,
}

fn quoted6(data: &[u8]) -> Option<Quoted6> {
    if data.len() < ipv6::HEADER_LEN + 8 || data[0] >> 4 != 6 {
        return None;
    }
    let protocol = match data[6] {
        next_header::TCP => Protocol::Tcp,
        next_header::UDP => Protocol::Udp,
        _ => return None,
    };
    let a = |o: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&data[o..o + 16]);
        Ipv6Addr::from(b)
    };
    let p = |o: usize| u16::from_be_bytes([data[o], data[o + 1]]);
    Some(Quoted6 {
        src: a(8),
        dst: a(24),
        protocol,
        sport: p(40),
        dport: p(42),
    })
}

impl Worker {
    fn is_local6(&self, ip: Ipv6Addr) -> bool {
        self.cfg
            .ports
            .iter()
            .any(|p| p.addr6.map(|(a, _)| a) == Some(ip))
    }

    fn ours6(&self, ip: Ipv6Addr) -> bool {
        self.is_local6(ip) || self.director.is_vip(IpAddr::V6(ip))
    }

    /// Whether a packet to `dst` is the host's (for the kernel interface):
    /// the director's own address (unless a VIP too), a link-local address
    /// (the kernel's; rvsd uses none) or a multicast group.
    fn kernel6(&self, dst: Ipv6Addr) -> bool {
        dst.is_multicast()
            || dst.segments()[0] & 0xffc0 == 0xfe80
            || (self.is_local6(dst) && !self.director.is_vip(IpAddr::V6(dst)))
    }

    pub(super) fn handle_ipv6<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data_mut();
        let ip = Ipv6Packet::new_checked(&frame[IP..]).map_err(|e| match e {
            rvs_packet::Error::Truncated => DropReason::TruncatedIpv6,
            rvs_packet::Error::Malformed => DropReason::BadIpVersion,
        })?;
        let (src, dst) = (ip.src(), ip.dst());
        let nh = ip.next_header();
        // The host's traffic goes to the kernel whole (extension headers
        // too); ICMPv6 first passes rvsd's neighbour discovery.
        let local = self.is_local6(dst);
        if nh != next_header::ICMPV6 && self.cfg.ports[port].kernel && self.kernel6(dst) {
            return Ok(Verdict::ToKernel);
        }
        let protocol = match nh {
            next_header::TCP => Protocol::Tcp,
            next_header::UDP => Protocol::Udp,
            next_header::ICMPV6 => return self.handle_icmpv6(port, pkt, now_ms),
            // To a VIP, or a NAT server's reply (fragments of a large one).
            _ if next_header::is_walked_extension(nh) && !dst.is_multicast() => {
                return self.ipv6_extensions(port, pkt, local, now_ms)
            }
            _ if self.ours6(dst) || dst.is_multicast() => return Err(DropReason::Ipv6ExtHeaders),
            _ => return Err(DropReason::NotForUs),
        };
        if dst.is_multicast() {
            return Err(DropReason::NotOurMac);
        }
        if local && !self.director.is_vip(IpAddr::V6(dst)) {
            return Err(DropReason::ToDirector);
        }
        let ip_end = IP + ip.total_len();
        let l4 = l4_ports(protocol, ip.payload())?;
        pkt.truncate(ip_end);
        self.flow6(port, pkt, src, dst, protocol, l4, local, now_ms)
    }

    /// A packet to a VIP (or the director) with extension headers in front
    /// of its transport header: walked to the transport header; a fragment
    /// is tracked as IPv4's are (`Worker::first_fragment`).
    #[inline(never)]
    fn ipv6_extensions<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        local: bool,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data();
        let ip = Ipv6Packet::new_checked(&frame[IP..]).map_err(|_| DropReason::TruncatedIpv6)?;
        let (src, dst, ip_end) = (ip.src(), ip.dst(), IP + ip.total_len());
        let u = ipv6::upper_layer(&frame[IP..]).map_err(|_| DropReason::Ipv6ExtHeaders)?;
        if local && !self.director.is_vip(IpAddr::V6(dst)) {
            return self.to_kernel(port, DropReason::ToDirector);
        }
        let fk = u.fragment.map(|f| FragKey {
            src: IpAddr::V6(src),
            dst: IpAddr::V6(dst),
            protocol: u.protocol,
            ident: f.ident,
        });
        if let (Some(fk), Some(f)) = (fk, u.fragment) {
            if f.offset != 0 {
                // No transport header: what its first fragment said decides.
                pkt.truncate(ip_end);
                return self.later_fragment(port, pkt, fk, now_ms);
            }
        }
        let protocol = match u.protocol {
            next_header::TCP => Protocol::Tcp,
            next_header::UDP => Protocol::Udp,
            _ => return Err(DropReason::Ipv6ExtHeaders),
        };
        pkt.truncate(ip_end);
        if let Some(fk) = fk {
            let l4 = first_fragment_ports(protocol, &pkt.data()[IP + u.offset..])?;
            let key = FlowKey {
                protocol,
                caddr: IpAddr::V6(src),
                cport: l4.sport,
                vaddr: IpAddr::V6(dst),
                vport: l4.dport,
            };
            let ip_len = (ip_end - IP) as u64;
            return self.first_fragment(port, pkt, fk, key, l4, ip_len, local, now_ms);
        }
        let l4 = l4_ports(protocol, &pkt.data()[IP + u.offset..ip_end])?;
        self.flow6(port, pkt, src, dst, protocol, l4, local, now_ms)
    }

    /// Connection tracking and forwarding of an IPv6 packet to a VIP (or a
    /// NAT server's reply), its transport header read.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn flow6<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        protocol: Protocol,
        l4: L4,
        local: bool,
        now_ms: u64,
    ) -> Step<Verdict> {
        let ip_end = pkt.data().len();
        let (sport, dport, event, syn_only) = (l4.sport, l4.dport, l4.event(), l4.syn_only());
        let key = FlowKey {
            protocol,
            caddr: IpAddr::V6(src),
            cport: sport,
            vaddr: IpAddr::V6(dst),
            vport: dport,
        };
        if let Some(w) = self.elsewhere(&key) {
            return Ok(Verdict::Redirect(w));
        }
        let ip_len = ip_end as u64 - IP as u64;
        if let Some(r) = self.established(&key, event, syn_only, now_ms) {
            let (daddr, dport, fwd) = self.conns.target_counting_in(r, ip_len);
            return self.xmit6(port, pkt, Target { daddr, dport, fwd }, now_ms);
        }
        match self.unknown_flow(&key, event, syn_only, ip_len, now_ms) {
            Ok(Flow::In(t)) => self.xmit6(port, pkt, t, now_ms),
            Ok(Flow::Out { vaddr, vport }) => {
                let IpAddr::V6(v) = vaddr else {
                    return Err(DropReason::UnsupportedForwarding);
                };
                self.xmit6_nat_out(port, pkt.data_mut(), v, vport, now_ms)
            }
            // The director's own address, a port that is no service's.
            Err(DropReason::NoService) if local => self.to_kernel(port, DropReason::NoService),
            Err(r) => Err(r),
        }
    }

    fn handle_icmpv6<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let frame = pkt.data_mut();
        let smac = EthernetFrame::new_unchecked(&*frame).src();
        let ip = Ipv6Packet::new_checked(&frame[IP..]).map_err(|_| DropReason::TruncatedIpv6)?;
        let (src, dst) = (ip.src(), ip.dst());
        let ip_end = IP + ip.total_len();
        let m = Icmpv6Packet::new_checked(ip.payload()).map_err(|_| DropReason::BadIcmp)?;
        if !m.verify_checksum(src, dst) {
            return Err(DropReason::BadIcmp);
        }
        let nd = matches!(m.msg_type(), kind::NEIGHBOR_SOLICIT | kind::NEIGHBOR_ADVERT);
        // RFC 4861 7.1: neighbour discovery comes from the link itself (hop
        // limit 255: nothing routed from afar), with code 0, and a
        // solicited advertisement is never multicast.
        if nd
            && (ip.hop_limit() != 255
                || m.code() != 0
                || (m.na_flags().solicited && dst.is_multicast()))
        {
            return Err(DropReason::BadNeighbourDiscovery);
        }
        match m.msg_type() {
            kind::NEIGHBOR_SOLICIT => {
                let target = m.nd_target().ok_or(DropReason::BadIcmp)?;
                // Answer for our addresses and VIPs (but with vip_arp =
                // "kernel", where the kernel answers for the VIPs it
                // holds); not duplicate-address probes (from ::), which
                // would need the all-nodes reply. The kernel gets what rvsd
                // does not answer: its link-local address is its own.
                let vip = self.director.is_vip(IpAddr::V6(target));
                let kernel_vip = vip && p.vip_arp == VipArp::Kernel && p.kernel;
                let answer = self.is_local6(target) || (vip && !kernel_vip);
                // The asker's address, as Linux's ndisc_recv_ns takes it:
                // only from a solicitation for one of our addresses.
                if let Some(mac) = m.nd_lladdr() {
                    if answer && self.may_learn6(port, src, mac) {
                        self.hear(src, mac, Heard::AskedForUs, now_ms);
                    }
                }
                if !answer || src.is_unspecified() {
                    return self.to_kernel(port, DropReason::ArpNotForUs);
                }
                self.send_nd(port, false, target, smac, target, src);
                Ok(Verdict::Consumed)
            }
            kind::NEIGHBOR_ADVERT => {
                if let (Some(t), Some(mac)) = (m.nd_target(), m.nd_lladdr()) {
                    if self.may_learn6(port, t, mac) {
                        let f = m.na_flags();
                        let heard = Heard::Advert {
                            solicited: f.solicited,
                            override_flag: f.override_flag,
                        };
                        self.hear(t, mac, heard, now_ms);
                    }
                }
                // The kernel's neighbour table wants it too (it applies
                // its own rules).
                Ok(if p.kernel {
                    Verdict::ToKernel
                } else {
                    Verdict::Consumed
                })
            }
            _ if p.kernel && self.kernel6(dst) && m.msg_type() >= 128 => Ok(Verdict::ToKernel),
            kind::ECHO_REQUEST if self.ours6(dst) => {
                pkt.truncate(ip_end);
                let frame = pkt.data_mut();
                let mut ip = Ipv6Packet::new_checked(&mut frame[IP..])
                    .map_err(|_| DropReason::TruncatedIpv6)?;
                ip.set_src(dst);
                ip.set_dst(src);
                ip.set_hop_limit(64);
                let mut m =
                    Icmpv6Packet::new_checked(ip.payload_mut()).map_err(|_| DropReason::BadIcmp)?;
                m.set_msg_type(kind::ECHO_REPLY);
                m.fill_checksum(dst, src);
                let mut eth = EthernetFrame::new_unchecked(frame);
                eth.set_dst(smac);
                eth.set_src(p.mac);
                self.shared.counters.icmp_echo_replies.inc();
                Ok(Verdict::Tx(port))
            }
            t if t < 128 => {
                pkt.truncate(ip_end);
                match self.icmp6_error(port, pkt, now_ms) {
                    // About the kernel's own traffic.
                    Err(DropReason::IcmpUnrelated | DropReason::BadIcmp)
                        if p.kernel && self.kernel6(dst) =>
                    {
                        Ok(Verdict::ToKernel)
                    }
                    v => v,
                }
            }
            _ if self.ours6(dst) => Err(DropReason::ToDirector),
            _ => Err(DropReason::NotForUs),
        }
    }

    /// An ICMPv6 error about a tracked connection goes on, translated for
    /// NAT, as for IPv4.
    fn icmp6_error<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data_mut();
        let q = {
            let ip =
                Ipv6Packet::new_checked(&frame[IP..]).map_err(|_| DropReason::TruncatedIpv6)?;
            let m = Icmpv6Packet::new_checked(ip.payload()).map_err(|_| DropReason::BadIcmp)?;
            quoted6(m.data()).ok_or(DropReason::BadIcmp)?
        };
        let fk = FlowKey {
            protocol: q.protocol,
            caddr: IpAddr::V6(q.dst),
            cport: q.dport,
            vaddr: IpAddr::V6(q.src),
            vport: q.sport,
        };
        // The quoted packet is the other way round, so `fk` names the
        // connection whichever side the error came from.
        if let Some(w) = self.elsewhere(&fk) {
            return Ok(Verdict::Redirect(w));
        }
        let ip_len = frame.len() as u64 - IP as u64;
        if let Some(r) = self.conns.lookup(&fk) {
            let t = Target::of(self.conns.get(r));
            self.icmp_error_out = true;
            if let Some(lane) = self.conns.lane(r) {
                lane.count_in(ip_len);
            }
            if t.fwd == FwdMethod::Masq {
                let IpAddr::V6(d) = t.daddr else {
                    return Err(DropReason::UnsupportedForwarding);
                };
                translate_icmp6(frame, Side::Dst, d, t.dport)?;
                return self.send6(frame, d, now_ms);
            }
            return self.xmit6(port, pkt, t, now_ms);
        }
        let ok = OutKey {
            protocol: q.protocol,
            daddr: IpAddr::V6(q.dst),
            dport: q.dport,
            caddr: IpAddr::V6(q.src),
            cport: q.sport,
        };
        if let Some(r) = self.conns.lookup_out(&ok) {
            let c = self.conns.get(r);
            let (IpAddr::V6(vaddr), vport) = (c.key.vaddr, c.key.vport) else {
                return Err(DropReason::UnsupportedForwarding);
            };
            // Routed by the director, as a NAT reply is (`xmit6_nat_out`):
            // not on its last hop, and one hop less.
            let hops = Ipv6Packet::new_checked(&frame[IP..])
                .map_err(|_| DropReason::TruncatedIpv6)?
                .hop_limit();
            if hops <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            self.icmp_error_out = true;
            if let Some(lane) = self.conns.lane(r) {
                lane.count_out(ip_len);
            }
            translate_icmp6(frame, Side::Src, vaddr, vport)?;
            Ipv6Packet::new_checked(&mut frame[IP..])
                .map_err(|_| DropReason::TruncatedIpv6)?
                .set_hop_limit(hops - 1);
            return self.send6(frame, q.src, now_ms);
        }
        Err(DropReason::IcmpUnrelated)
    }

    pub(super) fn xmit6<B: PacketBuf>(
        &mut self,
        in_port: usize,
        pkt: &mut B,
        t: Target,
        now_ms: u64,
    ) -> Step<Verdict> {
        let IpAddr::V6(daddr) = t.daddr else {
            return Err(DropReason::UnsupportedForwarding);
        };
        match t.fwd {
            FwdMethod::Route => {
                self.fits_v6(in_port, daddr, pkt.data())?;
                self.send6(pkt.data_mut(), daddr, now_ms)
            }
            FwdMethod::Masq => {
                self.fits_v6(in_port, daddr, pkt.data())?;
                let frame = pkt.data_mut();
                rewrite_v6(&mut frame[IP..], Side::Dst, daddr, t.dport)?;
                self.send6(frame, daddr, now_ms)
            }
            FwdMethod::Tunnel(tun) => self.xmit6_tun(in_port, pkt, daddr, tun, now_ms),
            FwdMethod::Local => Err(DropReason::UnsupportedForwarding),
        }
    }

    pub(super) fn xmit6_nat_out(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        vaddr: Ipv6Addr,
        vport: u16,
        now_ms: u64,
    ) -> Step<Verdict> {
        let (client, hops) = {
            let ip =
                Ipv6Packet::new_checked(&frame[IP..]).map_err(|_| DropReason::TruncatedIpv6)?;
            (ip.dst(), ip.hop_limit())
        };
        if hops <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        self.fits_v6(in_port, client, frame)?;
        rewrite_v6(&mut frame[IP..], Side::Src, vaddr, vport)?;
        Ipv6Packet::new_checked(&mut frame[IP..])
            .map_err(|_| DropReason::TruncatedIpv6)?
            .set_hop_limit(hops - 1);
        self.send6(frame, client, now_ms)
    }

    /// IPv6-in-IPv6 (the kernel's TUN over IPv6). A packet that outgrows the
    /// link gets ICMPv6 packet-too-big back.
    fn xmit6_tun<B: PacketBuf>(
        &mut self,
        in_port: usize,
        pkt: &mut B,
        daddr: Ipv6Addr,
        tun: TunSpec,
        now_ms: u64,
    ) -> Step<Verdict> {
        if tun.kind != TunKind::Ipip {
            return Err(DropReason::UnsupportedForwarding);
        }
        let out = self.port_for6(daddr).ok_or(DropReason::NoRoute)?;
        let (inner_len, tc) = {
            let ip = Ipv6Packet::new_checked(&pkt.data()[IP..])
                .map_err(|_| DropReason::TruncatedIpv6)?;
            (ip.total_len(), ip.traffic_class())
        };
        let hdr = ipv6::HEADER_LEN;
        let mtu = self.cfg.ports[out].mtu as usize;
        if inner_len + hdr > mtu {
            // Configured MTUs of IPv6 ports are 1280 at least; saturating
            // all the same.
            self.packet_too_big(in_port, pkt.data(), mtu.saturating_sub(hdr) as u32);
            return Err(DropReason::TooBig);
        }
        let mac = self.resolve(out, daddr, now_ms)?;
        let Some((src, _)) = self.cfg.ports[out].addr6 else {
            return Err(DropReason::NoIpv6);
        };
        if !pkt.prepend(hdr) {
            return Err(DropReason::NoHeadroom);
        }
        let f = pkt.data_mut();
        f.copy_within(hdr..hdr + IP, 0);
        Ipv6Packet::emit(
            &mut f[IP..],
            src,
            daddr,
            next_header::IPV6,
            inner_len as u16,
            64,
            tc,
        )
        .map_err(|_| DropReason::NoHeadroom)?;
        self.set_l2(f, out, mac);
        Ok(Verdict::Tx(out))
    }

    /// Whether the IPv6 packet in `frame` fits the MTU of the port towards
    /// `dst`. Routers do not fragment IPv6: one that does not fit gets
    /// ICMPv6 packet-too-big back (before any rewriting, so that it quotes
    /// what the sender sent) and is dropped.
    #[inline(always)]
    fn fits_v6(&mut self, in_port: usize, dst: Ipv6Addr, frame: &[u8]) -> Step<()> {
        let Some(out) = self.port_for6(dst) else {
            return Ok(());
        };
        let mtu = self.cfg.ports[out].mtu as usize;
        if frame.len() <= IP + mtu {
            return Ok(());
        }
        self.packet_too_big(in_port, frame, mtu as u32);
        Err(DropReason::TooBig)
    }

    /// Sends the frame to `dst` on its network, the IPv6 packet as it is.
    fn send6(&mut self, frame: &mut [u8], dst: Ipv6Addr, now_ms: u64) -> Step<Verdict> {
        let out = self.port_for6(dst).ok_or(DropReason::NoRoute)?;
        let mac = self.resolve(out, dst, now_ms)?;
        self.set_l2(frame, out, mac);
        Ok(Verdict::Tx(out))
    }

    pub(super) fn port_for6(&self, ip: Ipv6Addr) -> Option<usize> {
        self.cfg
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.contains6(ip))
            .max_by_key(|(_, p)| p.addr6.map(|(_, l)| l))
            .map(|(i, _)| i)
    }

    /// Whether a neighbour message may teach the table `ip` at `mac`: a
    /// unicast MAC for an address on the port's network that is neither
    /// the director's nor a VIP.
    fn may_learn6(&self, port: usize, ip: Ipv6Addr, mac: MacAddr) -> bool {
        !ip.is_unspecified()
            && !mac.is_multicast()
            && self.cfg.ports[port].contains6(ip)
            && !self.is_local6(ip)
            && !self.director.is_vip(IpAddr::V6(ip))
    }

    /// Queues a neighbour solicitation for `ip`, rate-limited like ARP.
    pub(super) fn ask_nd(&mut self, port: usize, ip: Ipv6Addr, now_ms: u64, force: bool) {
        let Some((me, _)) = self.cfg.ports[port].addr6 else {
            return;
        };
        if !self.may_ask(IpAddr::V6(ip), now_ms, force) {
            return;
        }
        let group = icmpv6::solicited_node(ip);
        self.send_nd(port, true, ip, icmpv6::multicast_mac(group), me, group);
    }

    /// Generates an NS (`solicit`) or NA for `target` from `src` to `dst`.
    fn send_nd(
        &mut self,
        port: usize,
        solicit: bool,
        target: Ipv6Addr,
        dst_mac: MacAddr,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) {
        let p = self.cfg.ports[port];
        let mut f = vec![0u8; IP + ipv6::HEADER_LEN + icmpv6::ND_LEN];
        {
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_dst(dst_mac);
            eth.set_src(p.mac);
            eth.set_ethertype(EtherType::Ipv6);
        }
        // Neighbour discovery travels with hop limit 255 (RFC 4861).
        let ok = Ipv6Packet::emit(
            &mut f[IP..],
            src,
            dst,
            next_header::ICMPV6,
            icmpv6::ND_LEN as u16,
            255,
            0,
        )
        .is_ok()
            && icmpv6::emit_nd(
                &mut f[IP + ipv6::HEADER_LEN..],
                solicit,
                target,
                p.mac,
                src,
                dst,
            )
            .is_ok();
        if ok {
            self.generated.push((port, f));
            if solicit {
                self.shared.counters.nd_solicitations_sent.inc();
            } else {
                self.shared.counters.nd_advertisements_sent.inc();
            }
        }
    }

    /// ICMPv6 packet-too-big with `mtu` to the sender of `frame`.
    fn packet_too_big(&mut self, in_port: usize, frame: &[u8], mtu: u32) {
        let Ok(ip) = Ipv6Packet::new_checked(&frame[IP..]) else {
            return;
        };
        // RFC 4443: as much of the packet as fits in the minimum MTU.
        let qlen = ip
            .total_len()
            .min(1280 - ipv6::HEADER_LEN - icmpv6::HEADER_LEN);
        let plen = icmpv6::HEADER_LEN + qlen;
        let mut f = vec![0u8; IP + ipv6::HEADER_LEN + plen];
        {
            let src = EthernetFrame::new_unchecked(frame);
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_dst(src.src());
            eth.set_src(self.cfg.ports[in_port].mac);
            eth.set_ethertype(EtherType::Ipv6);
        }
        let (from, to) = (ip.dst(), ip.src());
        if Ipv6Packet::emit(
            &mut f[IP..],
            from,
            to,
            next_header::ICMPV6,
            plen as u16,
            64,
            0,
        )
        .is_err()
        {
            return;
        }
        let Ok(mut m) = Icmpv6Packet::new_checked(&mut f[IP + ipv6::HEADER_LEN..]) else {
            return;
        };
        m.set_msg_type(kind::PACKET_TOO_BIG);
        m.set_code(0);
        m.set_rest_of_header(mtu.to_be_bytes());
        m.data_mut().copy_from_slice(&frame[IP..IP + qlen]);
        m.fill_checksum(from, to);
        self.generated.push((in_port, f));
        self.shared.counters.icmp_errors_sent.inc();
    }
}

/// NAT of an ICMPv6 error, as `translate_icmp` for IPv4: the outer address
/// on `side` and the opposite end of the quoted packet become `addr:port`;
/// the checksum is recomputed (its pseudo-header changed).
fn translate_icmp6(frame: &mut [u8], side: Side, addr: Ipv6Addr, port: u16) -> Step<()> {
    let mut ip =
        Ipv6Packet::new_checked(&mut frame[IP..]).map_err(|_| DropReason::TruncatedIpv6)?;
    match side {
        Side::Dst => ip.set_dst(addr),
        Side::Src => ip.set_src(addr),
    }
    let (src, dst) = (ip.src(), ip.dst());
    let mut m = Icmpv6Packet::new_checked(ip.payload_mut()).map_err(|_| DropReason::BadIcmp)?;
    let q = m.data_mut();
    let (aoff, poff) = match side {
        Side::Dst => (8, 40),
        Side::Src => (24, 42),
    };
    q[aoff..aoff + 16].copy_from_slice(&addr.octets());
    q[poff..poff + 2].copy_from_slice(&port.to_be_bytes());
    m.fill_checksum(src, dst);
    Ok(())
}

impl Worker {
    /// IPv6 on a port without an IPv6 address: rvsd serves none of it, so
    /// the kernel (its link-local address, router advertisements) has it
    /// all, but for a VIP's.
    #[inline(never)]
    pub(super) fn ipv6_without_address(&self, port: usize, frame: &[u8]) -> Step<Verdict> {
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
}
