//! ICMPv6: neighbour discovery (answers, what neighbours say, rvsd's own
//! solicitations), echo, the errors that belong to tracked connections
//! (translated for NAT and sent on) and the packet-too-big errors the
//! director sends.

use std::net::{IpAddr, Ipv6Addr};

use rvs_ipvs::conn::FlowKey;
use rvs_ipvs::{FwdMethod, Protocol};
use rvs_packet::ethernet::{EtherType, EthernetFrame, MacAddr};
use rvs_packet::icmpv6::{self, kind, Icmpv6Packet};
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};

use super::conntrack::ErrorAbout;
use super::nat_rewrite::Side;
use super::v6::IP;
use super::{Step, Verdict, VipArp, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;
use crate::neighbour::Heard;

/// The quoted packet of an ICMPv6 error: its endpoints.
pub(super) struct Quoted6 {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    protocol: Protocol,
    sport: u16,
    dport: u16,
}

pub(super) fn quoted6(data: &[u8]) -> Option<Quoted6> {
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

/// NAT of an ICMPv6 error, as `translate_icmp` for IPv4: the outer address
/// on `side` and the opposite end of the quoted packet become `addr:port`;
/// the checksum is recomputed (its pseudo-header changed).
pub(super) fn translate_icmp6(frame: &mut [u8], side: Side, addr: Ipv6Addr, port: u16) -> Step<()> {
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
    pub(super) fn handle_icmpv6<B: PacketBuf>(
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
    pub(super) fn icmp6_error<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data_mut();
        let (q, hops) = {
            let ip =
                Ipv6Packet::new_checked(&frame[IP..]).map_err(|_| DropReason::TruncatedIpv6)?;
            let m = Icmpv6Packet::new_checked(ip.payload()).map_err(|_| DropReason::BadIcmp)?;
            (
                quoted6(m.data()).ok_or(DropReason::BadIcmp)?,
                ip.hop_limit(),
            )
        };
        // The quoted packet went the other way.
        let fk = FlowKey {
            protocol: q.protocol,
            caddr: IpAddr::V6(q.dst),
            cport: q.dport,
            vaddr: IpAddr::V6(q.src),
            vport: q.sport,
        };
        let ip_len = frame.len() as u64 - IP as u64;
        match self.icmp_error_about(&fk, ip_len, hops)? {
            ErrorAbout::Elsewhere(w) => Ok(Verdict::Redirect(w)),
            ErrorAbout::In(t) => match (t.fwd, t.daddr) {
                (FwdMethod::Masq, IpAddr::V6(d)) => {
                    let frame = pkt.data_mut();
                    translate_icmp6(frame, Side::Dst, d, t.dport)?;
                    self.send6(frame, d, now_ms)
                }
                // DR and TUN servers get the error as it is (a connection of
                // the other family is dropped there).
                _ => self.xmit(port, pkt, true, t, now_ms),
            },
            // Routed by the director, as a NAT reply is (`xmit6_nat_out`):
            // one hop less.
            ErrorAbout::Out { vaddr, vport } => {
                let IpAddr::V6(vaddr) = vaddr else {
                    return Err(DropReason::UnsupportedForwarding);
                };
                let frame = pkt.data_mut();
                translate_icmp6(frame, Side::Src, vaddr, vport)?;
                Ipv6Packet::new_checked(&mut frame[IP..])
                    .map_err(|_| DropReason::TruncatedIpv6)?
                    .set_hop_limit(hops - 1);
                self.send6(frame, q.src, now_ms)
            }
            ErrorAbout::Unrelated => Err(DropReason::IcmpUnrelated),
        }
    }

    /// ICMPv6 packet-too-big with `mtu` to the sender of `frame`.
    pub(super) fn packet_too_big(&mut self, in_port: usize, frame: &[u8], mtu: u32) {
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

    /// Whether a neighbour message may teach the table `ip` at `mac`: a
    /// unicast MAC for an address on the port's network that is neither
    /// the director's nor a VIP.
    pub(super) fn may_learn6(&self, port: usize, ip: Ipv6Addr, mac: MacAddr) -> bool {
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
    pub(super) fn send_nd(
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
}
