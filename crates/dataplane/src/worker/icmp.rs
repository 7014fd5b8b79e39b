//! ICMP: echo replies, the errors that belong to tracked connections
//! (translated and sent on, as `ip_vs_in_icmp` / `ip_vs_out_icmp` do), and
//! the fragmentation-needed errors the director itself sends.

use std::net::{IpAddr, Ipv4Addr};

use rvs_ipvs::conn::FlowKey;
use rvs_ipvs::{FwdMethod, Protocol};
use rvs_packet::checksum;
use rvs_packet::ethernet::{self, EtherType, EthernetFrame};
use rvs_packet::icmp::{self, IcmpPacket};
use rvs_packet::ipv4::{self, Ipv4Packet};

use super::conntrack::ErrorAbout;
use super::nat_rewrite::Side;
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

/// The packet an ICMP error quotes: its IP header and the first 8 bytes of
/// its transport header, which is all an error must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quoted {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub sport: u16,
    pub dport: u16,
    /// Length of the quoted IP header.
    pub ihl: usize,
}

/// Parses the quoted packet leniently (its total length may exceed what
/// was quoted), but insists on a sane header and the 8 transport bytes.
pub(super) fn quoted(data: &[u8]) -> Option<Quoted> {
    if data.len() < ipv4::MIN_HEADER_LEN || data[0] >> 4 != 4 {
        return None;
    }
    let ihl = ((data[0] & 0x0f) as usize) * 4;
    if ihl < ipv4::MIN_HEADER_LEN || data.len() < ihl + 8 {
        return None;
    }
    let a = |o: usize| Ipv4Addr::new(data[o], data[o + 1], data[o + 2], data[o + 3]);
    let p = |o: usize| u16::from_be_bytes([data[o], data[o + 1]]);
    Some(Quoted {
        src: a(12),
        dst: a(16),
        protocol: data[9],
        sport: p(ihl),
        dport: p(ihl + 2),
        ihl,
    })
}

/// Rewrites one end of the quoted packet (address and port), keeping its
/// header checksum right. Its transport checksum is left alone, as the
/// kernel leaves it: the quote is usually cut short anyway.
fn rewrite_quoted(data: &mut [u8], q: &Quoted, side: Side, addr: Ipv4Addr, port: u16) {
    let (aoff, poff) = match side {
        Side::Src => (12, q.ihl),
        Side::Dst => (16, q.ihl + 2),
    };
    let old = u32::from_be_bytes([data[aoff], data[aoff + 1], data[aoff + 2], data[aoff + 3]]);
    let c = u16::from_be_bytes([data[10], data[11]]);
    let c = checksum::update32(c, old, u32::from(addr));
    data[10..12].copy_from_slice(&c.to_be_bytes());
    data[aoff..aoff + 4].copy_from_slice(&addr.octets());
    data[poff..poff + 2].copy_from_slice(&port.to_be_bytes());
}

impl Worker {
    pub(super) fn handle_icmp<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data_mut();
        let ip = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::TruncatedIpv4)?;
        let dst = ip.dst();
        // The director's own address comes here only when the port has no
        // kernel interface or the address is also a VIP; then rvsd answers
        // echo, and the kernel (when there is one) gets the rest.
        let local = self.is_local(dst);
        let ours = local || self.director.is_vip(IpAddr::V4(dst));
        let m = IcmpPacket::new_checked(ip.payload()).map_err(|_| DropReason::BadIcmp)?;
        if !m.verify_checksum() {
            return Err(DropReason::BadIcmp);
        }
        if m.msg_type() == icmp::kind::ECHO_REQUEST {
            return if ours {
                self.echo_reply(port, frame)
            } else {
                Err(DropReason::NotForUs)
            };
        }
        if !m.is_error() {
            return if local {
                self.to_kernel(port, DropReason::ToDirector)
            } else if ours {
                Err(DropReason::ToDirector)
            } else {
                Err(DropReason::NotForUs)
            };
        }
        let q = quoted(m.data()).ok_or(DropReason::BadIcmp)?;
        let protocol = match Protocol::from_number(q.protocol) {
            Some(p @ (Protocol::Tcp | Protocol::Udp)) => p,
            // About the kernel's ping, say.
            _ if local => return self.to_kernel(port, DropReason::IcmpUnrelated),
            _ => return Err(DropReason::IcmpUnrelated),
        };
        let ip_end = ethernet::HEADER_LEN + ip.total_len() as usize;
        let ttl = ip.ttl();
        // The quoted packet went the other way.
        let fk = FlowKey {
            protocol,
            caddr: IpAddr::V4(q.dst),
            cport: q.dport,
            vaddr: IpAddr::V4(q.src),
            vport: q.sport,
        };
        pkt.truncate(ip_end);
        let ip_len = (ip_end - ethernet::HEADER_LEN) as u64;
        match self.icmp_error_about(&fk, ip_len, ttl)? {
            ErrorAbout::Elsewhere(w) => Ok(Verdict::Redirect(w)),
            ErrorAbout::In(t) => match (t.fwd, t.daddr) {
                (FwdMethod::Masq, IpAddr::V4(d)) => {
                    self.translate_icmp(pkt.data_mut(), &q, Side::Dst, d, t.dport)?;
                    self.send_routed(pkt.data_mut(), d, now_ms)
                }
                // DR and TUN servers get the error as it is (a connection of
                // the other family is dropped there).
                _ => self.xmit(port, pkt, false, t, now_ms),
            },
            ErrorAbout::Out { vaddr, vport } => {
                let IpAddr::V4(vaddr) = vaddr else {
                    return Err(DropReason::UnsupportedForwarding);
                };
                self.translate_icmp(pkt.data_mut(), &q, Side::Src, vaddr, vport)?;
                let frame = pkt.data_mut();
                Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..])
                    .map_err(|_| DropReason::TruncatedIpv4)?
                    .decrement_ttl();
                self.send_routed(frame, q.src, now_ms)
            }
            // About the kernel's own traffic (a health check's port
            // unreachable, say).
            ErrorAbout::Unrelated if local => self.to_kernel(port, DropReason::IcmpUnrelated),
            ErrorAbout::Unrelated => Err(DropReason::IcmpUnrelated),
        }
    }

    /// NAT for an ICMP error. `Side::Dst`: client side to server, the outer
    /// destination and the quoted source become the server's. `Side::Src`:
    /// server side to client, the outer source and the quoted destination
    /// become the VIP's.
    fn translate_icmp(
        &mut self,
        frame: &mut [u8],
        q: &Quoted,
        side: Side,
        addr: Ipv4Addr,
        port: u16,
    ) -> Step<()> {
        let mut ip = Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::TruncatedIpv4)?;
        let old = match side {
            Side::Dst => ip.dst(),
            Side::Src => ip.src(),
        };
        let c = checksum::update32(ip.checksum(), u32::from(old), u32::from(addr));
        ip.set_checksum(c);
        match side {
            Side::Dst => ip.set_dst(addr),
            Side::Src => ip.set_src(addr),
        }
        let mut m = IcmpPacket::new_checked(ip.payload_mut()).map_err(|_| DropReason::BadIcmp)?;
        // The quoted packet is the other way round.
        let qside = match side {
            Side::Dst => Side::Src,
            Side::Src => Side::Dst,
        };
        rewrite_quoted(m.data_mut(), q, qside, addr, port);
        m.fill_checksum();
        Ok(())
    }

    /// Answers an ICMP echo request to a VIP or a director address in place.
    fn echo_reply(&mut self, port: usize, frame: &mut [u8]) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let mut ip = Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::TruncatedIpv4)?;
        let mut m = IcmpPacket::new_checked(ip.payload_mut()).map_err(|_| DropReason::BadIcmp)?;
        m.make_echo_reply();
        let (s, d) = (ip.src(), ip.dst());
        ip.set_src(d);
        ip.set_dst(s);
        ip.set_ttl(64);
        ip.fill_checksum();
        let mut eth = EthernetFrame::new_unchecked(frame);
        let client = eth.src();
        eth.set_dst(client);
        eth.set_src(p.mac);
        self.shared.counters.icmp_echo_replies.inc();
        Ok(Verdict::Tx(port))
    }

    /// Sends ICMP fragmentation-needed (with the next-hop `mtu`) to whoever
    /// sent `frame` to us on `in_port`, quoting the packet.
    pub(super) fn frag_needed(&mut self, in_port: usize, frame: &[u8], mtu: u16) {
        let Ok(ip) = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..]) else {
            return;
        };
        // RFC 1812: quote as much as fits in 576 bytes.
        let qlen = (ip.total_len() as usize).min(576 - 28);
        let quote = &frame[ethernet::HEADER_LEN..ethernet::HEADER_LEN + qlen];
        let total = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN + qlen;
        let mut f = vec![0u8; ethernet::HEADER_LEN + total];
        {
            let src = EthernetFrame::new_unchecked(frame);
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_dst(src.src());
            eth.set_src(self.cfg.ports[in_port].mac);
            eth.set_ethertype(EtherType::Ipv4);
        }
        let id = self.next_ip_id;
        self.next_ip_id = self.next_ip_id.wrapping_add(1);
        // From the address the packet was sent to (the VIP), as the kernel
        // answers from a local destination.
        let Ok(mut out) = Ipv4Packet::emit(
            &mut f[ethernet::HEADER_LEN..],
            ip.dst(),
            ip.src(),
            ipv4::protocol::ICMP,
            total as u16,
            64,
            id,
            false,
        ) else {
            return;
        };
        let Ok(mut m) = IcmpPacket::new_checked(out.payload_mut()) else {
            return;
        };
        m.set_msg_type(icmp::kind::DEST_UNREACHABLE);
        m.set_code(icmp::kind::CODE_FRAG_NEEDED);
        let [hi, lo] = mtu.to_be_bytes();
        m.set_rest_of_header([0, 0, hi, lo]);
        m.data_mut().copy_from_slice(quote);
        m.fill_checksum();
        self.generated.push((in_port, f));
        self.shared.counters.icmp_errors_sent.inc();
    }
}
