//! IPv6 received: what is the host's, extension headers walked to the
//! transport header, and the hand-off to connection tracking (shared with
//! IPv4: `Worker::track` in `conntrack.rs`), which sends through
//! `Worker::xmit`. ICMPv6, neighbour discovery included, is in `icmp6.rs`;
//! the three forwarding methods (DR, NAT, IPv6-in-IPv6) in `xmit6.rs`.

use std::net::{IpAddr, Ipv6Addr};

use rvs_ipvs::Protocol;
use rvs_packet::ethernet;
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};

use super::conntrack::{flow_key, l4_ports};
use super::frag::{first_fragment_ports, FragKey};
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

pub(super) const IP: usize = ethernet::HEADER_LEN;

impl Worker {
    pub(super) fn is_local6(&self, ip: Ipv6Addr) -> bool {
        self.cfg
            .ports
            .iter()
            .any(|p| p.addr6.map(|(a, _)| a) == Some(ip))
    }

    pub(super) fn ours6(&self, ip: Ipv6Addr) -> bool {
        self.is_local6(ip) || self.director.is_vip(IpAddr::V6(ip))
    }

    /// Whether a packet to `dst` is the host's (for the kernel interface):
    /// the director's own address (unless a VIP too), a link-local address
    /// (the kernel's; rvsd uses none) or a multicast group.
    pub(super) fn kernel6(&self, dst: Ipv6Addr) -> bool {
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
        let key = flow_key(protocol, IpAddr::V6(src), IpAddr::V6(dst), &l4);
        self.track(port, pkt, &key, l4, (ip_end - IP) as u64, local, now_ms)
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
            let key = flow_key(protocol, IpAddr::V6(src), IpAddr::V6(dst), &l4);
            let ip_len = (ip_end - IP) as u64;
            return self.first_fragment(port, pkt, fk, key, l4, ip_len, local, now_ms);
        }
        let l4 = l4_ports(protocol, &pkt.data()[IP + u.offset..ip_end])?;
        let key = flow_key(protocol, IpAddr::V6(src), IpAddr::V6(dst), &l4);
        self.track(port, pkt, &key, l4, (ip_end - IP) as u64, local, now_ms)
    }
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
