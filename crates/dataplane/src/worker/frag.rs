//! Fragments: datagrams to a VIP (and NAT servers' replies) that arrive in
//! IPv4 fragments or behind an IPv6 fragment header.
//!
//! Kernel IPVS reassembles first (netfilter's defrag) and lets the output
//! path fragment again. rvs forwards each fragment as it comes instead,
//! the way Katran and most hardware balancers do: the first fragment, the
//! only one with ports, is scheduled like any packet, and its decision is
//! kept for the datagram, keyed by (source, destination, protocol,
//! identification), so that the later fragments follow it to the same real
//! server, translated the same way for NAT. That needs no buffer per
//! datagram and no copy in the usual, in-order case, works on one mbuf at
//! a time like the rest of the worker, and the receiver reassembles what it
//! gets. NAT needs nothing more: only the first fragment holds the ports
//! and the transport checksum, whose incremental update stays right for the
//! whole datagram, and the later ones change the address alone.
//!
//! Fragments that come before their first wait, copied, for
//! [`HELD_MS`] at most, within [`HELD_BYTES_PER_WORKER`]; the decisions are
//! kept [`TRACK_MS`] after the last fragment, at most
//! [`TRACKED_PER_WORKER`] of them. Past those bounds a fragment is
//! counted and dropped, never waited for: a flood of fragments costs the
//! flood, not memory. A packet too big for its way out is fragmented there
//! (`Worker::finish`), DF permitting.
//!
//! (DPDK's rte_ip_frag would reassemble into chained mbufs, which the
//! worker, built on single-segment buffers that are `Vec`s in the tests and
//! fuzzing, does not take; forwarding fragments needs no reassembly.)

use std::net::IpAddr;

use rustc_hash::FxHashMap;
use rvs_ipvs::conn::FlowKey;
use rvs_ipvs::Protocol;
use rvs_packet::ethernet::{self, EtherType, EthernetFrame};
use rvs_packet::{ipv4, TcpSegment, UdpDatagram};

use super::conntrack::{flow_key, Flow, Target, L4};
use super::{Step, Verdict, Worker};
use crate::buf::PacketBuf;
use crate::counters::DropReason;

/// Most datagrams whose first fragment's decision a worker keeps.
pub const TRACKED_PER_WORKER: usize = 8192;
/// How long a decision is kept after the datagram's last fragment seen.
pub const TRACK_MS: u64 = 2000;
/// Most bytes of fragments waiting for their first, per worker.
pub const HELD_BYTES_PER_WORKER: usize = 256 * 1024;
/// How long a fragment waits for its first.
pub const HELD_MS: u64 = 200;
/// Least time between two walks of a full table for what expired.
const PRUNE_WHEN_FULL_MS: u64 = 10;

/// A datagram: what RFC 791 (and RFC 8200 for IPv6) says identifies its
/// fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub protocol: u8,
    pub ident: u32,
}

/// What the first fragment's handling decided, for the rest.
#[derive(Debug, Clone, Copy)]
enum FragAction {
    /// To a real server (the connection's target).
    In(Target),
    /// A NAT server's reply: the source becomes the VIP.
    Out { vaddr: IpAddr, vport: u16 },
    /// Another worker owns the connection.
    Redirect(usize),
    /// The director's kernel (its own address, no service on the port).
    Kernel,
    /// Dropped, for this reason.
    Drop(DropReason),
}

#[derive(Debug)]
struct Held {
    port: usize,
    since_ms: u64,
    frames: Vec<Vec<u8>>,
    bytes: usize,
}

/// One worker's fragment state.
#[derive(Debug, Default)]
pub(super) struct Fragments {
    tracked: FxHashMap<FragKey, (FragAction, u64)>,
    held: FxHashMap<FragKey, Held>,
    held_bytes: usize,
}

impl Fragments {
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty() && self.held.is_empty()
    }

    /// Fragments waiting for their first.
    pub fn waiting(&self) -> usize {
        self.held.values().map(|h| h.frames.len()).sum()
    }

    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

/// Ports and flags of a first fragment's transport header: TCP's whole
/// header must be there (RFC 1858: a first fragment too short for it is an
/// attack on filters); UDP's length counts the whole datagram.
pub(super) fn first_fragment_ports(protocol: Protocol, l4: &[u8]) -> Step<L4> {
    match protocol {
        Protocol::Tcp => {
            let t = TcpSegment::new_checked(l4).map_err(|_| DropReason::BadL4Header)?;
            Ok(L4 {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags(),
            })
        }
        _ => {
            let u = UdpDatagram::new_header_checked(l4).map_err(|_| DropReason::BadL4Header)?;
            Ok(L4 {
                sport: u.src_port(),
                dport: u.dst_port(),
                flags: 0,
            })
        }
    }
}

impl Worker {
    /// An IPv4 fragment of a TCP or UDP datagram (header validated, no
    /// options), truncated to its length.
    #[inline(never)]
    pub(super) fn ipv4_fragment<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        protocol: Protocol,
        local: bool,
        now_ms: u64,
    ) -> Step<Verdict> {
        let ip = ipv4::Ipv4Packet::new_checked(&pkt.data()[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::TruncatedIpv4)?;
        let fk = FragKey {
            src: IpAddr::V4(ip.src()),
            dst: IpAddr::V4(ip.dst()),
            protocol: ip.protocol(),
            ident: ip.ident() as u32,
        };
        let ip_len = ip.total_len() as u64;
        if ip.frag_offset() != 0 {
            return self.later_fragment(port, pkt, fk, now_ms);
        }
        let l4 = first_fragment_ports(protocol, ip.payload())?;
        let key = flow_key(protocol, fk.src, fk.dst, &l4);
        self.first_fragment(port, pkt, fk, key, l4, ip_len, local, now_ms)
    }

    /// The first fragment of a datagram: handled as a whole packet would
    /// be, and what that decided kept for the others (and applied to those
    /// that came before it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn first_fragment<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        fk: FragKey,
        key: FlowKey,
        l4: L4,
        ip_len: u64,
        local: bool,
        now_ms: u64,
    ) -> Step<Verdict> {
        let action = match self.decide(&key, l4, ip_len, local, now_ms) {
            Ok(a) => a,
            Err(r) => FragAction::Drop(r),
        };
        if !self.frags.tracked.contains_key(&fk) && self.frags.tracked.len() >= TRACKED_PER_WORKER {
            self.prune_fragments_when_due(now_ms);
            if self.frags.tracked.len() >= TRACKED_PER_WORKER {
                return Err(DropReason::FragmentTableFull);
            }
        }
        self.frags.tracked.insert(fk, (action, now_ms + TRACK_MS));
        self.shared.counters.fragments_tracked.inc();
        if let Some(h) = self.frags.held.remove(&fk) {
            self.frags.held_bytes -= h.bytes;
            for mut f in h.frames {
                // Each its own packet: what `process` does around `classify`.
                self.awaiting = None;
                self.oversize = false;
                let v = match self.apply_fragment(h.port, &mut f, action, now_ms) {
                    Ok(v) => v,
                    Err(r) => Verdict::Drop(r),
                };
                let v = self.finish(v, &f, now_ms);
                self.send_released(h.port, f, v);
            }
        }
        self.apply_fragment(port, pkt, action, now_ms)
    }

    /// Connection tracking for a first fragment (the steps of
    /// `handle_ipv4`, with the outcome kept rather than acted on).
    fn decide(
        &mut self,
        key: &FlowKey,
        l4: L4,
        ip_len: u64,
        local: bool,
        now_ms: u64,
    ) -> Step<FragAction> {
        if let Some(w) = self.elsewhere(key) {
            return Ok(FragAction::Redirect(w));
        }
        let (event, syn_only) = (l4.event(), l4.syn_only());
        if let Some(r) = self.established(key, event, syn_only, now_ms) {
            let (daddr, dport, fwd) = self.conns.target_counting_in(r, ip_len);
            return Ok(FragAction::In(Target { daddr, dport, fwd }));
        }
        match self.unknown_flow(key, event, syn_only, ip_len, now_ms) {
            Ok(Flow::In(t)) => Ok(FragAction::In(t)),
            Ok(Flow::Out { vaddr, vport }) => Ok(FragAction::Out { vaddr, vport }),
            Err(DropReason::NoService) if local && self.cfg.ports.iter().any(|p| p.kernel) => {
                Ok(FragAction::Kernel)
            }
            Err(r) => Err(r),
        }
    }

    /// A fragment other than the first: as its first decided, or held
    /// until the first comes.
    pub(super) fn later_fragment<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        fk: FragKey,
        now_ms: u64,
    ) -> Step<Verdict> {
        if let Some((action, expires)) = self.frags.tracked.get_mut(&fk) {
            *expires = now_ms + TRACK_MS;
            let action = *action;
            return self.apply_fragment(port, pkt, action, now_ms);
        }
        let len = pkt.data().len();
        if self.frags.held_bytes + len > HELD_BYTES_PER_WORKER {
            self.prune_fragments_when_due(now_ms);
            if self.frags.held_bytes + len > HELD_BYTES_PER_WORKER {
                return Err(DropReason::FragmentOrphan);
            }
        }
        let h = self.frags.held.entry(fk).or_insert(Held {
            port,
            since_ms: now_ms,
            frames: Vec::new(),
            bytes: 0,
        });
        h.frames.push(pkt.data().to_vec());
        h.bytes += len;
        self.frags.held_bytes += len;
        self.shared.counters.fragments_held.inc();
        Ok(Verdict::Consumed)
    }

    /// Forwards a fragment as its datagram's first fragment decided.
    fn apply_fragment<B: PacketBuf>(
        &mut self,
        port: usize,
        pkt: &mut B,
        action: FragAction,
        now_ms: u64,
    ) -> Step<Verdict> {
        let v6 = EthernetFrame::new_checked(pkt.data())
            .map_err(|_| DropReason::TruncatedEthernet)?
            .ethertype()
            == EtherType::Ipv6;
        match action {
            FragAction::In(t) => self.xmit(port, pkt, v6, t, now_ms),
            FragAction::Out { vaddr, vport } => self.xmit_out(port, pkt, vaddr, vport, now_ms),
            FragAction::Redirect(w) => Ok(Verdict::Redirect(w)),
            FragAction::Kernel => self.to_kernel(port, DropReason::NoService),
            FragAction::Drop(r) => Err(r),
        }
    }

    /// Where a held fragment, handled at last, goes: out of a port, to its
    /// owner, or counted as dropped.
    fn send_released(&mut self, port: usize, frame: Vec<u8>, v: Verdict) {
        let c = &self.shared.counters;
        match v {
            Verdict::Tx(out) => self.sent.push((out, frame)),
            Verdict::Redirect(w) => {
                c.redirected.inc();
                self.handed_over.push((w, port, frame));
            }
            Verdict::Drop(r) => c.drop(r),
            // Only the mbuf path hands frames to the kernel.
            Verdict::ToKernel => c.drop(DropReason::ToDirector),
            Verdict::Consumed => {}
        }
    }

    /// [`Worker::prune_fragments`] for a full table, at most every
    /// [`PRUNE_WHEN_FULL_MS`]: under a flood of fragments every packet
    /// finds it full, and a walk of the table per packet would make the
    /// flood cost the worker far more than it costs the sender.
    fn prune_fragments_when_due(&mut self, now_ms: u64) {
        if now_ms >= self.frags_pruned_ms + PRUNE_WHEN_FULL_MS {
            self.frags_pruned_ms = now_ms;
            self.prune_fragments(now_ms);
        }
    }

    /// Forgets decisions past their time, and drops (counted) the
    /// fragments that waited too long for their first.
    pub(super) fn prune_fragments(&mut self, now_ms: u64) {
        self.frags.tracked.retain(|_, (_, exp)| now_ms < *exp);
        let mut orphans = 0u64;
        let mut freed = 0;
        self.frags.held.retain(|_, h| {
            let keep = now_ms < h.since_ms + HELD_MS;
            if !keep {
                orphans += h.frames.len() as u64;
                freed += h.bytes;
            }
            keep
        });
        self.frags.held_bytes -= freed;
        for _ in 0..orphans {
            self.shared.counters.drop(DropReason::FragmentOrphan);
        }
    }

    /// A frame bigger than its port's MTU, without DF (the transmitters
    /// answered DF with ICMP already): sent in fragments, each held for the
    /// next hop's MAC like the frame would have been.
    #[inline(never)]
    pub(super) fn send_fragmented(&mut self, out: usize, frame: &[u8], now_ms: u64) -> Verdict {
        if EthernetFrame::new_checked(frame).map(|e| e.ethertype()) != Ok(EtherType::Ipv4) {
            return Verdict::Drop(DropReason::TooBig);
        }
        let mtu = self.cfg.ports[out].mtu as usize;
        let l2 = &frame[..ethernet::HEADER_LEN];
        let mut pieces = Vec::new();
        let made = ipv4::fragment(&frame[ethernet::HEADER_LEN..], mtu, |p| {
            let mut f = Vec::with_capacity(l2.len() + p.len());
            f.extend_from_slice(l2);
            f.extend_from_slice(p);
            pieces.push(f);
        });
        if made.is_err() {
            return Verdict::Drop(DropReason::TooBig);
        }
        let c = &self.shared.counters;
        c.packets_fragmented.inc();
        c.fragments_made.add(pieces.len() as u64);
        match self.awaiting.take() {
            Some((o, ip)) => {
                for f in pieces {
                    if let Verdict::Drop(r) = self.hold_for_neighbour(o, ip, &f, now_ms) {
                        self.shared.counters.drop(r);
                    }
                }
            }
            None => {
                c.forwarded.add(pieces.len() as u64);
                for f in pieces {
                    self.sent.push((out, f));
                }
            }
        }
        Verdict::Consumed
    }
}
