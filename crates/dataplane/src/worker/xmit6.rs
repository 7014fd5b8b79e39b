//! The IPv6 transmitters (DR, NAT, IPv6-in-IPv6; NAT's rewrite is in
//! `nat_rewrite.rs`), the MTU check (routers do not fragment IPv6) and the
//! way to a neighbour.

use std::net::Ipv6Addr;

use rvs_ipvs::{TunKind, TunSpec};
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};

use super::nat_rewrite::{rewrite_v6, Side};
use super::v6::IP;
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

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
