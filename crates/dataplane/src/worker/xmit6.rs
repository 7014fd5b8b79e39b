//! The IPv6 transmitters (DR, NAT, IPv6-in-IPv6), the NAT rewrite, the
//! MTU check (routers do not fragment IPv6) and the way to a neighbour.

use std::net::Ipv6Addr;

use rvs_ipvs::{TunKind, TunSpec};
use rvs_packet::checksum;
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};

use super::v6::IP;
use super::xmit::{rewrite_ports, Side};
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

/// Rewrites one end of the IPv6 packet in `ipbuf` and fixes the transport
/// checksum incrementally (IPv6 has no header checksum). The transport
/// header may sit behind extension headers; a fragment other than the
/// first has none, and gets the address alone (as for IPv4).
pub(super) fn rewrite_v6(ipbuf: &mut [u8], side: Side, addr: Ipv6Addr, port: u16) -> Step<()> {
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
    rewrite_ports(l4, nh, side, port, false, |c| {
        checksum::update128(c, old, addr)
    })
}

impl Worker {
    /// Direct routing: the frame re-addressed to the real server's MAC.
    pub(super) fn xmit6_dr(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        daddr: Ipv6Addr,
        now_ms: u64,
    ) -> Step<Verdict> {
        self.fits_v6(in_port, daddr, frame)?;
        self.send6(frame, daddr, now_ms)
    }

    /// NAT, client to server: the destination becomes the real server's.
    pub(super) fn xmit6_nat_in(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        daddr: Ipv6Addr,
        dport: u16,
        now_ms: u64,
    ) -> Step<Verdict> {
        self.fits_v6(in_port, daddr, frame)?;
        rewrite_v6(&mut frame[IP..], Side::Dst, daddr, dport)?;
        self.send6(frame, daddr, now_ms)
    }

    /// NAT, server to client: the source becomes the VIP and its port; the
    /// director routes the reply, so the hop limit drops by one.
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
    pub(super) fn xmit6_tun<B: PacketBuf>(
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
    pub(super) fn fits_v6(&mut self, in_port: usize, dst: Ipv6Addr, frame: &[u8]) -> Step<()> {
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
    pub(super) fn send6(&mut self, frame: &mut [u8], dst: Ipv6Addr, now_ms: u64) -> Step<Verdict> {
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
}
