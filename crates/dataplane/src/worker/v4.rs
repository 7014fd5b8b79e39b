//! IPv4: validation, the exception path's share, and the hand-off to
//! connection tracking and the transmitters (`xmit.rs`); ICMP is in
//! `icmp.rs`, fragments in `frag.rs`.

use std::net::{IpAddr, Ipv4Addr};

use rvs_ipvs::types::prefix_mask_v4;
use rvs_ipvs::Protocol;
use rvs_packet::ethernet;
use rvs_packet::ipv4::{self, Ipv4Error, Ipv4Packet};

use super::conntrack::{flow_key, l4_ports};
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

impl Worker {
    /// An IPv4 frame to a group MAC on a port with a kernel interface:
    /// multicast (VRRP's 224.0.0.18, OSPF, ...) and broadcasts go to the
    /// kernel, as a host's NIC would take them in; nothing rvsd serves comes
    /// this way.
    #[inline(never)]
    pub(super) fn ipv4_group(&self, port: usize, frame: &[u8]) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let ip = Ipv4Packet::new_validated(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::NotOurMac)?;
        let dst = ip.dst();
        let directed = p.prefix_len < 31
            && u32::from(dst) | prefix_mask_v4(p.prefix_len) == u32::MAX
            && p.contains(dst);
        if dst.is_multicast() || dst.is_broadcast() || directed {
            Ok(Verdict::ToKernel)
        } else {
            Err(DropReason::NotOurMac)
        }
    }

    pub(super) fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.cfg.ports.iter().any(|p| p.addr == ip)
    }

    #[inline(always)]
    pub(super) fn handle_ipv4<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        now_ms: u64,
    ) -> Step<Verdict> {
        let frame = pkt.data_mut();
        let ip =
            Ipv4Packet::new_validated(&frame[ethernet::HEADER_LEN..]).map_err(|e| match e {
                Ipv4Error::Truncated => DropReason::TruncatedIpv4,
                Ipv4Error::BadVersion => DropReason::BadIpVersion,
                Ipv4Error::BadIhl => DropReason::BadIhl,
                Ipv4Error::BadTotalLength => DropReason::BadTotalLength,
            })?;
        if !ip.verify_checksum() {
            return Err(DropReason::BadIpChecksum);
        }
        // Link padding of short frames is not part of the packet.
        let ip_len = ip.total_len() as usize;
        let ip_end = ethernet::HEADER_LEN + ip_len;
        let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
        // The director's own address (not also a VIP) is the host's: with a
        // kernel interface, all of it goes there, options and fragments too
        // (the kernel reassembles). Checked before the header's options, so
        // VIP traffic pays this one test it paid already.
        let local = self.is_local(dst);
        if local && self.cfg.ports[port].kernel && !self.director.is_vip(IpAddr::V4(dst)) {
            return Ok(Verdict::ToKernel);
        }
        if ip.has_options() {
            return Err(DropReason::IpOptions);
        }
        let fragment = ip.is_fragment();
        let protocol = match proto {
            ipv4::protocol::TCP => Protocol::Tcp,
            ipv4::protocol::UDP => Protocol::Udp,
            // A large ping: not forwarded, nor answered in pieces.
            ipv4::protocol::ICMP if fragment => return Err(DropReason::Fragment),
            ipv4::protocol::ICMP => return self.handle_icmp(port, pkt, now_ms),
            _ if local => return self.to_kernel(port, DropReason::ToDirector),
            _ if self.director.is_vip(IpAddr::V4(dst)) => return Err(DropReason::NoService),
            _ => return Err(DropReason::NotForUs),
        };
        // A service may be on the director's own address (kernel IPVS
        // allows it); without one, it is the host's.
        if local && !self.director.is_vip(IpAddr::V4(dst)) {
            return Err(DropReason::ToDirector);
        }
        if fragment {
            pkt.truncate(ip_end);
            return self.ipv4_fragment(port, pkt, protocol, local, now_ms);
        }
        let l4 = l4_ports(protocol, ip.payload())?;
        pkt.truncate(ip_end);
        let key = flow_key(protocol, IpAddr::V4(src), IpAddr::V4(dst), &l4);
        self.track(port, pkt, &key, l4, ip_len as u64, local, now_ms)
    }
}
