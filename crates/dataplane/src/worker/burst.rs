//! The burst stage before the per-packet logic: flow keys read without
//! checks, and the connection table's lines prefetched for the group.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_ipvs::conn::{FlowKey, SlotHint};
use rvs_ipvs::Protocol;
use rvs_packet::ethernet;

use super::Worker;
use crate::buf::PacketBuf;

/// Packets prefetched and handled as one group: two rx bursts when traffic
/// is heavy (the loop takes a second burst only after a full first one).
/// Measured at 1 M flows: 64 beats 32 by a few per cent (the prefetches have
/// longer to land) and 128 loses (the group's lines no longer stay in L1).
pub const PREFETCH_GROUP: usize = 2 * dpdk::MAX_BURST;

/// The flow key of a TCP or UDP frame, read without any checks: only a hint
/// for prefetching ([`Worker::handle`] validates the packet itself).
pub(super) fn flow_key_hint(f: &[u8]) -> Option<FlowKey> {
    let protocol = |n: u8| match n {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        _ => None,
    };
    let word = |at: usize| Some(u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?));
    match word(12)? {
        0x0800 => {
            let l4 = ethernet::HEADER_LEN + (*f.get(14)? & 0x0f) as usize * 4;
            let addr = |at: usize| -> Option<Ipv4Addr> {
                Some(<[u8; 4]>::try_from(f.get(at..at + 4)?).ok()?.into())
            };
            Some(FlowKey {
                protocol: protocol(*f.get(23)?)?,
                caddr: IpAddr::V4(addr(26)?),
                cport: word(l4)?,
                vaddr: IpAddr::V4(addr(30)?),
                vport: word(l4 + 2)?,
            })
        }
        0x86dd => {
            let addr = |at: usize| -> Option<Ipv6Addr> {
                Some(<[u8; 16]>::try_from(f.get(at..at + 16)?).ok()?.into())
            };
            Some(FlowKey {
                protocol: protocol(*f.get(20)?)?,
                caddr: IpAddr::V6(addr(22)?),
                cport: word(54)?,
                vaddr: IpAddr::V6(addr(38)?),
                vport: word(56)?,
            })
        }
        _ => None,
    }
}

impl Worker {
    /// The burst stage before [`Worker::handle`]: hashes every packet's flow
    /// key and prefetches its index line, then, with those lines on their
    /// way, the table slots they point at. The lookups that follow find both
    /// in cache instead of waiting on memory two or three times per packet.
    ///
    /// `hints[i]` gets the slot found for `pkts[i]`, to pass to
    /// [`Worker::handle_hinted`]; packets beyond [`PREFETCH_GROUP`] get none.
    pub fn prefetch_burst<B: PacketBuf>(&self, pkts: &[B], hints: &mut [Option<SlotHint>]) {
        let mut hashes = [None; PREFETCH_GROUP];
        for (h, p) in hashes.iter_mut().zip(pkts) {
            *h = flow_key_hint(p.data()).and_then(|k| self.conns.key_hash(&k));
            if let Some(h) = *h {
                self.conns.prefetch_index(h, dpdk::prefetch);
            }
        }
        for (hint, h) in hints.iter_mut().zip(&hashes) {
            *hint = h.and_then(|h| self.conns.prefetch_slots(h, dpdk::prefetch));
        }
    }
}
