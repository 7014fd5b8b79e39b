//! The transmitters, one per forwarding method (the kernel's
//! `ip_vs_xmit.c`), the table that picks one by method and family
//! (`Worker::xmit`), and the routing and neighbour resolution they share.
//! NAT's rewrite is in `nat_rewrite.rs`.

use std::net::{IpAddr, Ipv4Addr};

use rvs_ipvs::types::prefix_mask_v4;
use rvs_ipvs::{FwdMethod, TunCsum, TunKind, TunSpec};
use rvs_packet::checksum;
use rvs_packet::ethernet::{self, EthernetFrame, MacAddr};
use rvs_packet::ipv4::{self, Ipv4Packet};
use rvs_packet::UdpDatagram;

use super::conntrack::Target;
use super::nat_rewrite::{rewrite_v4, Side};
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;
use crate::neighbour::Neighbour;

/// Addresses one worker is asking for at a time (its `arp_asked`).
pub const ASKED_PER_WORKER: usize = 4096;

/// Bytes a tunnel adds in front of the inner packet.
pub(super) fn tun_overhead(t: &TunSpec) -> usize {
    ipv4::MIN_HEADER_LEN
        + match t.kind {
            TunKind::Ipip => 0,
            // UDP + the 4-byte GUE base header.
            TunKind::Gue => 8 + 4,
            // Flags/version + protocol, and checksum + reserved with csum.
            TunKind::Gre if t.csum == TunCsum::Csum => 8,
            TunKind::Gre => 4,
        }
}

/// Entries of a worker's next-hop memo ([`Hop`]), direct-mapped by address.
pub(super) const HOPS: usize = 16;

/// A real server's next hop as DR or NAT last found it: the port, the
/// frame's two MACs, and the largest frame the port takes. Good while the
/// neighbour snapshot it came from is the worker's current one and the
/// next hop's entry is reachable (the ports and routes do not change while
/// a worker runs); it spares an established packet the search of the ports
/// and routes and the neighbour lookup (callgrind, the `fast-path`
/// workload, DR: 929 instructions per packet without it, 796 with it).
#[derive(Clone, Copy)]
pub(super) struct Hop {
    daddr: Ipv4Addr,
    /// On the port's own network (DR sends only there), not through a
    /// route's gateway.
    on_link: bool,
    generation: u64,
    until_ms: u64,
    out: usize,
    max_frame: usize,
    /// Destination then source, as the frame begins.
    macs: [u8; 12],
}

fn hop_slot(daddr: Ipv4Addr) -> usize {
    (u32::from(daddr).wrapping_mul(0x9e37_79b9) >> 28) as usize % HOPS
}

impl Worker {
    /// The memo's hop to `daddr` for a frame of `len` bytes, if it holds a
    /// good one (`on_link`: only one on a port's network): its port and
    /// MACs.
    #[inline(always)]
    fn memo_hop(
        &self,
        daddr: Ipv4Addr,
        len: usize,
        on_link: bool,
        now_ms: u64,
    ) -> Option<(usize, [u8; 12])> {
        let h = self.hops[hop_slot(daddr)].as_ref()?;
        (h.daddr == daddr
            && (h.on_link || !on_link)
            && h.generation == self.neigh_reader.generation()
            && now_ms < h.until_ms
            && len <= h.max_frame)
            .then_some((h.out, h.macs))
    }

    /// [`Worker::set_l2`] with a hop from the memo (for a frame that fits).
    #[inline(always)]
    fn set_l2_from_memo(&mut self, frame: &mut [u8], macs: &[u8; 12]) -> Step<()> {
        frame
            .get_mut(..12)
            .ok_or(DropReason::TruncatedEthernet)?
            .copy_from_slice(macs);
        self.addressed(true);
        Ok(())
    }

    /// Keeps the way to `daddr` (port `out`, next hop `nh`) in the memo
    /// while `nh`'s entry is reachable.
    fn remember_hop(&mut self, daddr: Ipv4Addr, out: usize, nh: Ipv4Addr, now_ms: u64) {
        let Some((mac, until_ms)) = self.neigh_reader.reachable_until(nh, now_ms) else {
            return;
        };
        let mut macs = [0; 12];
        macs[..6].copy_from_slice(&mac.0);
        macs[6..].copy_from_slice(&self.cfg.ports[out].mac.0);
        self.hops[hop_slot(daddr)] = Some(Hop {
            daddr,
            on_link: nh == daddr,
            generation: self.neigh_reader.generation(),
            until_ms,
            out,
            max_frame: ethernet::HEADER_LEN + self.cfg.ports[out].mtu as usize,
            macs,
        });
    }
}

impl Worker {
    /// Sends a client's packet to its real server: the transmitter of the
    /// connection's method for the packet's family (`v6`). This table is
    /// where a forwarding method is wired in (ARCHITECTURE.md, "Where to
    /// make a change"); a connection of the other family than its packet
    /// (which configuration refuses) is dropped.
    #[inline(always)]
    pub(super) fn xmit<B: PacketBuf>(
        &mut self,
        in_port: usize,
        pkt: &mut B,
        v6: bool,
        t: Target,
        now_ms: u64,
    ) -> Step<Verdict> {
        match (t.daddr, t.fwd) {
            (IpAddr::V4(d), FwdMethod::Route) if !v6 => {
                self.xmit_dr(in_port, pkt.data_mut(), d, now_ms)
            }
            (IpAddr::V4(d), FwdMethod::Masq) if !v6 => {
                self.xmit_nat_in(in_port, pkt.data_mut(), d, t.dport, now_ms)
            }
            (IpAddr::V4(d), FwdMethod::Tunnel(tun)) if !v6 => {
                self.xmit_tun(in_port, pkt, d, tun, now_ms)
            }
            (IpAddr::V6(d), FwdMethod::Route) if v6 => {
                self.xmit6_dr(in_port, pkt.data_mut(), d, now_ms)
            }
            (IpAddr::V6(d), FwdMethod::Masq) if v6 => {
                self.xmit6_nat_in(in_port, pkt.data_mut(), d, t.dport, now_ms)
            }
            (IpAddr::V6(d), FwdMethod::Tunnel(tun)) if v6 => {
                self.xmit6_tun(in_port, pkt, d, tun, now_ms)
            }
            _ => Err(DropReason::UnsupportedForwarding),
        }
    }

    /// A NAT server's reply back to the client, from the VIP `vaddr` (of
    /// the packet's family) and `vport`.
    pub(super) fn xmit_out<B: PacketBuf>(
        &mut self,
        in_port: usize,
        pkt: &mut B,
        vaddr: IpAddr,
        vport: u16,
        now_ms: u64,
    ) -> Step<Verdict> {
        match vaddr {
            IpAddr::V4(v) => self.xmit_nat_out(in_port, pkt.data_mut(), v, vport, now_ms),
            IpAddr::V6(v) => self.xmit6_nat_out(in_port, pkt.data_mut(), v, vport, now_ms),
        }
    }

    /// Direct routing: re-address the frame to the real server's MAC; the IP
    /// packet is untouched. The real server must be on a port's network.
    /// Established traffic finds its next hop in the memo; the rest of the
    /// work is out of line.
    #[inline(always)]
    pub(super) fn xmit_dr(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        daddr: Ipv4Addr,
        now_ms: u64,
    ) -> Step<Verdict> {
        if let Some((out, macs)) = self.memo_hop(daddr, frame.len(), true, now_ms) {
            self.set_l2_from_memo(frame, &macs)?;
            return Ok(Verdict::Tx(out));
        }
        self.xmit_dr_resolving(in_port, frame, daddr, now_ms)
    }

    /// [`Worker::xmit_dr`] without the memo: finds the port and the
    /// neighbour, and keeps them in the memo.
    #[inline(never)]
    fn xmit_dr_resolving(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        daddr: Ipv4Addr,
        now_ms: u64,
    ) -> Step<Verdict> {
        let out = self.port_for(daddr).ok_or(DropReason::NoRoute)?;
        self.fits_v4(in_port, out, frame)?;
        let mac = self.resolve(out, daddr, now_ms)?;
        self.set_l2(frame, out, mac);
        self.remember_hop(daddr, out, daddr, now_ms);
        Ok(Verdict::Tx(out))
    }

    /// NAT, client to server: the destination becomes the real server's
    /// address and port.
    fn xmit_nat_in(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        daddr: Ipv4Addr,
        dport: u16,
        now_ms: u64,
    ) -> Step<Verdict> {
        if let Some((out, macs)) = self.memo_hop(daddr, frame.len(), false, now_ms) {
            rewrite_v4(&mut frame[ethernet::HEADER_LEN..], Side::Dst, daddr, dport)?;
            self.set_l2_from_memo(frame, &macs)?;
            return Ok(Verdict::Tx(out));
        }
        let (out, nh) = self.route(daddr).ok_or(DropReason::NoRoute)?;
        self.fits_v4(in_port, out, frame)?;
        let mac = self.resolve(out, nh, now_ms)?;
        rewrite_v4(&mut frame[ethernet::HEADER_LEN..], Side::Dst, daddr, dport)?;
        self.set_l2(frame, out, mac);
        self.remember_hop(daddr, out, nh, now_ms);
        Ok(Verdict::Tx(out))
    }

    /// NAT, server to client: the source becomes the VIP and its port; the
    /// director routes the reply, so the TTL drops by one.
    pub(super) fn xmit_nat_out(
        &mut self,
        in_port: usize,
        frame: &mut [u8],
        vaddr: Ipv4Addr,
        vport: u16,
        now_ms: u64,
    ) -> Step<Verdict> {
        let (client, ttl) = {
            let ip = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..])
                .map_err(|_| DropReason::TruncatedIpv4)?;
            (ip.dst(), ip.ttl())
        };
        if ttl <= 1 {
            return Err(DropReason::TtlExceeded);
        }
        let (out, nh) = self.route(client).ok_or(DropReason::NoRoute)?;
        self.fits_v4(in_port, out, frame)?;
        let mac = self.resolve(out, nh, now_ms)?;
        rewrite_v4(&mut frame[ethernet::HEADER_LEN..], Side::Src, vaddr, vport)?;
        Ipv4Packet::new_checked(&mut frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::TruncatedIpv4)?
            .decrement_ttl();
        self.set_l2(frame, out, mac);
        Ok(Verdict::Tx(out))
    }

    /// Tunnelling: the packet goes inside a new IPv4 header (and a GUE or
    /// GRE header) from the director to the real server. A packet that no
    /// longer fits the link gets ICMP fragmentation-needed back when it has
    /// DF set; without DF the outer packet is sent in fragments, which the
    /// real server reassembles before it decapsulates (as the kernel does:
    /// the outer header copies the inner DF).
    fn xmit_tun<B: PacketBuf>(
        &mut self,
        in_port: usize,
        pkt: &mut B,
        daddr: Ipv4Addr,
        tun: TunSpec,
        now_ms: u64,
    ) -> Step<Verdict> {
        let (out, nh) = self.route(daddr).ok_or(DropReason::NoRoute)?;
        let (inner_len, df, tos, flow_hash) = {
            let ip = Ipv4Packet::new_checked(&pkt.data()[ethernet::HEADER_LEN..])
                .map_err(|_| DropReason::TruncatedIpv4)?;
            let p = ip.payload();
            let ports = if p.len() >= 4 {
                u32::from_be_bytes([p[0], p[1], p[2], p[3]])
            } else {
                0
            };
            let h = (u32::from(ip.src()) ^ u32::from(ip.dst()).rotate_left(7) ^ ports)
                .wrapping_mul(0x9e37_79b9);
            (ip.total_len() as usize, ip.dont_frag(), ip.tos(), h)
        };
        let hdr = tun_overhead(&tun);
        let mtu = self.cfg.ports[out].mtu as usize;
        if inner_len + hdr > mtu && df {
            // rvsd's configuration keeps port MTUs well above any tunnel's
            // overhead; saturating all the same.
            self.frag_needed(in_port, pkt.data(), mtu.saturating_sub(hdr) as u16);
            return Err(DropReason::TooBig);
        }
        let mac = self.resolve(out, nh, now_ms)?;
        if !pkt.prepend(hdr) {
            return Err(DropReason::NoHeadroom);
        }
        let id = self.next_ip_id;
        self.next_ip_id = self.next_ip_id.wrapping_add(1);
        let src = self.cfg.ports[out].addr;
        let f = pkt.data_mut();
        f.copy_within(hdr..hdr + ethernet::HEADER_LEN, 0);
        let outer = ethernet::HEADER_LEN;
        let proto = match tun.kind {
            TunKind::Ipip => ipv4::protocol::IPIP,
            TunKind::Gue => ipv4::protocol::UDP,
            TunKind::Gre => ipv4::protocol::GRE,
        };
        let total = (inner_len + hdr) as u16;
        let mut ip = Ipv4Packet::emit(&mut f[outer..], src, daddr, proto, total, 64, id, df)
            .map_err(|_| DropReason::NoHeadroom)?;
        ip.set_tos(tos);
        ip.fill_checksum();
        let l4 = outer + ipv4::MIN_HEADER_LEN;
        match tun.kind {
            TunKind::Ipip => {}
            TunKind::Gue => {
                let len = (8 + 4 + inner_len) as u16;
                // Source port: flow entropy in the ephemeral range.
                let sport = 0xc000 | (flow_hash >> 18) as u16;
                f[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
                f[l4 + 2..l4 + 4].copy_from_slice(&tun.port.to_be_bytes());
                f[l4 + 4..l4 + 6].copy_from_slice(&len.to_be_bytes());
                f[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
                // GUE version 0, no options, carrying IPv4 (protocol 4).
                f[l4 + 8..l4 + 12].copy_from_slice(&[0, ipv4::protocol::IPIP, 0, 0]);
                // --tun-remcsum too: the kernel adds the remote checksum
                // option only for a packet whose own checksum is left to
                // offload (CHECKSUM_PARTIAL), never for a forwarded one, and
                // checksums the UDP header as with --tun-csum.
                if tun.csum != TunCsum::None {
                    let mut u = UdpDatagram::new_checked(&mut f[l4..l4 + len as usize])
                        .map_err(|_| DropReason::NoHeadroom)?;
                    u.fill_checksum_v4(src, daddr);
                }
            }
            TunKind::Gre => {
                let with_csum = tun.csum == TunCsum::Csum;
                f[l4..l4 + 2].copy_from_slice(&if with_csum { [0x80, 0] } else { [0, 0] });
                f[l4 + 2..l4 + 4].copy_from_slice(&0x0800u16.to_be_bytes());
                if with_csum {
                    f[l4 + 4..l4 + 8].copy_from_slice(&[0, 0, 0, 0]);
                    let end = outer + total as usize;
                    let c = !checksum::sum(&f[l4..end]);
                    f[l4 + 4..l4 + 6].copy_from_slice(&c.to_be_bytes());
                }
            }
        }
        self.set_l2(f, out, mac);
        Ok(Verdict::Tx(out))
    }

    /// Whether the IPv4 packet in `frame` fits port `out`'s MTU as it is. One
    /// that does not, with DF set, gets ICMP fragmentation-needed back and
    /// is dropped (the kernel's `ensure_mtu_is_adequate`); without DF it
    /// goes on, to be sent in fragments (`Worker::finish`). Checked before
    /// any rewriting, so that the ICMP error quotes what the sender sent.
    #[inline(always)]
    pub(super) fn fits_v4(&mut self, in_port: usize, out: usize, frame: &[u8]) -> Step<()> {
        let mtu = self.cfg.ports[out].mtu as usize;
        if frame.len() <= ethernet::HEADER_LEN + mtu {
            return Ok(());
        }
        self.too_big_v4(in_port, frame, mtu)
    }

    #[inline(never)]
    fn too_big_v4(&mut self, in_port: usize, frame: &[u8], mtu: usize) -> Step<()> {
        let ip = Ipv4Packet::new_checked(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::TruncatedIpv4)?;
        if ip.total_len() as usize <= mtu {
            return Ok(());
        }
        if ip.dont_frag() {
            self.frag_needed(in_port, frame, mtu.min(u16::MAX as usize) as u16);
            return Err(DropReason::TooBig);
        }
        Ok(())
    }

    /// Sends the frame towards `dst` as routing says, its IP packet as it is.
    pub(super) fn send_routed(
        &mut self,
        frame: &mut [u8],
        dst: Ipv4Addr,
        now_ms: u64,
    ) -> Step<Verdict> {
        let (out, nh) = self.route(dst).ok_or(DropReason::NoRoute)?;
        let mac = self.resolve(out, nh, now_ms)?;
        self.set_l2(frame, out, mac);
        Ok(Verdict::Tx(out))
    }

    /// Addresses the frame from port `out` to `mac`.
    pub(super) fn set_l2(&mut self, frame: &mut [u8], out: usize, mac: MacAddr) {
        let fits = frame.len() <= ethernet::HEADER_LEN + self.cfg.ports[out].mtu as usize;
        let mut eth = EthernetFrame::new_unchecked(frame);
        eth.set_dst(mac);
        eth.set_src(self.cfg.ports[out].mac);
        self.addressed(fits);
    }

    /// The frame being handled was addressed to its port (it `fits` the
    /// port's MTU or not): marks it for fragmenting and counts it.
    #[inline(always)]
    fn addressed(&mut self, fits: bool) {
        // Forwarded and too big for the link: `Worker::finish` sends it in
        // fragments (replies the director makes go as they are).
        self.oversize = !fits;
        // A frame held for its next hop's MAC counts when it leaves
        // (`release_pending`), not twice, nor when it is dropped instead;
        // one too big for the link counts as the fragments it leaves in
        // (`send_fragmented`), or not at all if it cannot be.
        if self.awaiting.is_none() && fits {
            self.shared.counters.forwarded.inc();
        }
    }

    /// The port of the network `ip` is on.
    pub(super) fn port_for(&self, ip: Ipv4Addr) -> Option<usize> {
        self.cfg
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.contains(ip))
            .max_by_key(|(_, p)| p.prefix_len)
            .map(|(i, _)| i)
    }

    /// Port and next hop for `dst`: directly if it is on a port's network,
    /// else through the longest matching static route.
    pub(super) fn route(&self, dst: Ipv4Addr) -> Option<(usize, Ipv4Addr)> {
        if let Some(p) = self.port_for(dst) {
            return Some((p, dst));
        }
        let r = self
            .cfg
            .routes
            .iter()
            .filter(|r| {
                let m = prefix_mask_v4(r.prefix_len);
                u32::from(dst) & m == u32::from(r.dst) & m
            })
            .max_by_key(|r| r.prefix_len)?;
        Some((self.port_for(r.via)?, r.via))
    }

    /// The MAC of neighbour `ip` on port `out`; asks (ARP or neighbour
    /// solicitation) when it is unknown or getting old. An unknown one gives
    /// a placeholder and marks the frame to be held until the answer.
    pub(super) fn resolve(
        &mut self,
        out: usize,
        ip: impl Into<IpAddr>,
        now_ms: u64,
    ) -> Step<MacAddr> {
        let ip = ip.into();
        let ask = |w: &mut Self| match ip {
            IpAddr::V4(a) => w.ask_arp(out, a, now_ms, false),
            IpAddr::V6(a) => w.ask_nd(out, a, now_ms, false),
        };
        match self.neigh_reader.lookup(ip, now_ms) {
            Neighbour::Reachable(m) => Ok(m),
            Neighbour::Stale(m) => {
                ask(self);
                Ok(m)
            }
            Neighbour::Missing => {
                // The frame is finished as if the MAC were known, then held
                // until it is (`Worker::hold_for_neighbour`).
                ask(self);
                self.awaiting = Some((out, ip));
                Ok(MacAddr::ZERO)
            }
        }
    }

    /// Whether to ask for `ip` now: at most once per retry interval (unless
    /// `force`), and for at most [`ASKED_PER_WORKER`] addresses at a time
    /// (traffic towards a flood of addresses asks for the first ones, and
    /// counts the rest). The table notes the request as outstanding, so
    /// that its answer may be taken.
    pub(super) fn may_ask(&mut self, ip: IpAddr, now_ms: u64, force: bool) -> bool {
        let retry = self.cfg.arp_retry_ms;
        match self.arp_asked.get(&ip) {
            Some(&t) if !force && now_ms < t.saturating_add(retry) => return false,
            Some(_) => {}
            None if self.arp_asked.len() >= ASKED_PER_WORKER => {
                self.arp_asked
                    .retain(|_, t| now_ms < t.saturating_add(retry));
                if self.arp_asked.len() >= ASKED_PER_WORKER {
                    self.shared.counters.neighbour_asks_limited.inc();
                    return false;
                }
            }
            None => {}
        }
        self.arp_asked.insert(ip, now_ms);
        if !self.neigh.asked(ip, now_ms) {
            // Sent, but its answer will be taken as an unsolicited one.
            self.shared.counters.neighbour_asks_limited.inc();
        }
        true
    }

    /// Queues an ARP request for `ip` on `port`, at most once per retry
    /// interval unless `force`.
    pub(super) fn ask_arp(&mut self, port: usize, ip: Ipv4Addr, now_ms: u64, force: bool) {
        use rvs_packet::arp::{self, ArpPacket, Operation};
        use rvs_packet::ethernet::EtherType;
        if !self.may_ask(IpAddr::V4(ip), now_ms, force) {
            return;
        }
        let p = self.cfg.ports[port];
        // 60 bytes: the Ethernet minimum without FCS.
        let mut f = vec![0u8; 60];
        {
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_dst(MacAddr::BROADCAST);
            eth.set_src(p.mac);
            eth.set_ethertype(EtherType::Arp);
        }
        let _ = ArpPacket::emit(
            &mut f[ethernet::HEADER_LEN..ethernet::HEADER_LEN + arp::PACKET_LEN],
            Operation::Request,
            p.mac,
            p.addr,
            MacAddr::ZERO,
            ip,
        );
        self.generated.push((port, f));
        self.shared.counters.arp_requests_sent.inc();
    }
}
