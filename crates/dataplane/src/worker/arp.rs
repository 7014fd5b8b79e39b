//! ARP: answers for the director's addresses and VIPs, what the exception
//! path's kernel asks, and what neighbours say (ARP and NDP alike) offered
//! to the neighbour table.

use std::net::IpAddr;

use rvs_packet::arp::{ArpPacket, Operation};
use rvs_packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};

use super::{Step, Verdict, VipArp, Worker};
use crate::counters::DropReason;
use crate::neighbour::{Heard, Learned, Refusal};

impl Worker {
    pub(super) fn handle_arp(
        &mut self,
        port: usize,
        frame: &mut [u8],
        now_ms: u64,
    ) -> Step<Verdict> {
        let p = self.cfg.ports[port];
        let to_us = EthernetFrame::new_unchecked(&*frame).dst() == p.mac;
        let a = ArpPacket::new_checked(&frame[ethernet::HEADER_LEN..])
            .map_err(|_| DropReason::BadArp)?;
        let (op, sip, smac, tip) = (a.operation(), a.sender_ip(), a.sender_mac(), a.target_ip());
        let own = tip == p.addr;
        let vip = self.director.is_vip(IpAddr::V4(tip));
        // With vip_arp = "kernel" the kernel answers for VIPs, and only for
        // those its interface holds (VRRP's master has them).
        let kernel_vip = vip && p.vip_arp == VipArp::Kernel && p.kernel;
        let answered = op == Operation::Request && (own || (vip && !kernel_vip));
        // What the sender says about itself, by the table's rules (Linux's
        // arp_process): only a neighbour on this network, with a unicast
        // MAC, about an address that is not the director's own or a VIP.
        if p.contains(sip)
            && !sip.is_unspecified()
            && !smac.is_multicast()
            && !self.is_local(sip)
            && !self.director.is_vip(IpAddr::V4(sip))
        {
            let heard = match op {
                Operation::Other(_) => return Err(DropReason::BadArp),
                _ if sip == tip => Heard::ArpGratuitous,
                Operation::Request if answered => Heard::AskedForUs,
                Operation::Request => Heard::ArpOther,
                Operation::Reply => Heard::ArpReply { unicast: to_us },
            };
            self.hear(sip, smac, heard, now_ms);
        }
        if answered {
            let mut a = ArpPacket::new_checked(&mut frame[ethernet::HEADER_LEN..])
                .map_err(|_| DropReason::BadArp)?;
            a.make_reply(p.mac);
            let mut eth = EthernetFrame::new_unchecked(&mut *frame);
            eth.set_dst(smac);
            eth.set_src(p.mac);
            self.shared.counters.arp_replies_sent.inc();
            return Ok(Verdict::Tx(port));
        }
        // The kernel sees the rest of what a host would: replies to the
        // director's address (its own requests went out with it; rvsd
        // took them by its rules above as well), questions about VIPs it
        // answers, and announcements (gratuitous ARP: sender = target).
        let for_kernel = p.kernel && (own || kernel_vip || sip == tip);
        match op {
            Operation::Reply | Operation::Request if for_kernel => Ok(Verdict::ToKernel),
            Operation::Reply => Ok(Verdict::Consumed),
            Operation::Request => Err(DropReason::ArpNotForUs),
            Operation::Other(_) => Err(DropReason::BadArp),
        }
    }

    /// A frame the director's kernel sends out of a port (the exception
    /// path): its ARP requests and neighbour solicitations are the
    /// director's requests too, so that their answers (which the kernel
    /// gets as well) may fill rvsd's table.
    pub fn sent_by_kernel(&self, frame: &[u8], now_ms: u64) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return;
        };
        match eth.ethertype() {
            EtherType::Arp => {
                if let Ok(a) = ArpPacket::new_checked(eth.payload()) {
                    if a.operation() == Operation::Request && a.sender_ip() != a.target_ip() {
                        self.neigh.asked(IpAddr::V4(a.target_ip()), now_ms);
                    }
                }
            }
            EtherType::Ipv6 => {
                let Ok(ip) = rvs_packet::ipv6::Ipv6Packet::new_checked(eth.payload()) else {
                    return;
                };
                if ip.next_header() != rvs_packet::ipv6::next_header::ICMPV6 {
                    return;
                }
                let Ok(m) = rvs_packet::icmpv6::Icmpv6Packet::new_checked(ip.payload()) else {
                    return;
                };
                if m.msg_type() == rvs_packet::icmpv6::kind::NEIGHBOR_SOLICIT {
                    if let Some(t) = m.nd_target() {
                        self.neigh.asked(IpAddr::V6(t), now_ms);
                    }
                }
            }
            _ => {}
        }
    }

    /// Offers what a neighbour said (ARP or NDP) to the table, which takes
    /// it or not by its rules; counts the outcome. What is taken is seen
    /// by this worker's next packet as well as by the others'.
    pub(super) fn hear(&mut self, ip: impl Into<IpAddr>, mac: MacAddr, heard: Heard, now_ms: u64) {
        let c = &self.shared.counters;
        match self.neigh.heard(ip, mac, heard, now_ms) {
            Learned::Unchanged => return,
            Learned::Refused(r) => {
                match r {
                    Refusal::Unsolicited => c.neighbour_unsolicited.inc(),
                    Refusal::Locked => c.neighbour_locked.inc(),
                    Refusal::Static => c.neighbour_static_kept.inc(),
                    Refusal::NotAnAnswer => c.neighbour_not_an_answer.inc(),
                    Refusal::RateLimited => c.neighbour_rate_limited.inc(),
                }
                // An advertisement refused may still have made the entry
                // stale.
                if r != Refusal::Locked {
                    return;
                }
            }
            Learned::Created { evicted } => {
                c.arp_learned.inc();
                c.neighbour_evicted.add(evicted as u64);
            }
            Learned::Moved => {
                c.arp_learned.inc();
                c.neighbour_moved.inc();
            }
            Learned::Confirmed => c.arp_learned.inc(),
        }
        self.neigh_reader.refresh();
    }
}
