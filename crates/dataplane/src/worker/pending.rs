//! Frames held for a next hop whose MAC is being asked for.

use std::net::IpAddr;

use rvs_packet::ethernet::EthernetFrame;

use super::{Verdict, Worker};
use crate::counters::DropReason;
use crate::neighbour::Neighbour;

/// Frames for a next hop whose MAC is being asked for, as the kernel keeps
/// an unresolved neighbour's queue (`unres_qlen_bytes`): sent once the
/// answer comes, dropped (and counted as neighbour misses) when it does not
/// come within [`PENDING_WAIT_RETRIES`] retries. Without it the first packet
/// to a new neighbour is lost: a NAT reply to a client, say.
#[derive(Debug)]
pub(super) struct PendingNeighbour {
    port: usize,
    since_ms: u64,
    frames: Vec<Vec<u8>>,
    bytes: usize,
}

/// Most bytes held for one next hop (the kernel's default is 212992).
const PENDING_BYTES_PER_NEIGHBOUR: usize = 64 * 1024;
/// Most next hops with frames waiting, per worker: a flood towards
/// addresses that never answer cannot hold more than this.
const PENDING_NEIGHBOURS: usize = 64;
/// How many ARP retry intervals a frame may wait (the kernel asks 3 times).
const PENDING_WAIT_RETRIES: u64 = 3;

impl Worker {
    /// Keeps a finished frame until `ip`'s MAC is known (see
    /// [`PendingNeighbour`]); a full queue drops it.
    #[inline(never)]
    pub(super) fn hold_for_neighbour(
        &mut self,
        port: usize,
        ip: IpAddr,
        frame: &[u8],
        now_ms: u64,
    ) -> Verdict {
        if !self.pending.contains_key(&ip) && self.pending.len() >= PENDING_NEIGHBOURS {
            return Verdict::Drop(DropReason::NeighbourMiss);
        }
        let q = self.pending.entry(ip).or_insert(PendingNeighbour {
            port,
            since_ms: now_ms,
            frames: Vec::new(),
            bytes: 0,
        });
        if q.bytes + frame.len() > PENDING_BYTES_PER_NEIGHBOUR {
            return Verdict::Drop(DropReason::NeighbourMiss);
        }
        q.bytes += frame.len();
        q.frames.push(frame.to_vec());
        self.shared.counters.neighbour_queued.inc();
        Verdict::Consumed
    }

    /// Sends the held frames whose next hop answered, and drops those whose
    /// next hop did not in time.
    pub(super) fn release_pending(&mut self, now_ms: u64) {
        let wait = self.cfg.arp_retry_ms.max(1) * PENDING_WAIT_RETRIES;
        let mut done = Vec::new();
        for (ip, q) in &self.pending {
            match self.neigh_reader.lookup(*ip, now_ms) {
                Neighbour::Reachable(mac) | Neighbour::Stale(mac) => done.push((*ip, Some(mac))),
                Neighbour::Missing if now_ms >= q.since_ms + wait => done.push((*ip, None)),
                Neighbour::Missing => {}
            }
        }
        for (ip, mac) in done {
            let Some(q) = self.pending.remove(&ip) else {
                continue;
            };
            match mac {
                Some(mac) => {
                    for mut f in q.frames {
                        EthernetFrame::new_unchecked(&mut f[..]).set_dst(mac);
                        self.sent.push((q.port, f));
                        self.shared.counters.forwarded.inc();
                    }
                }
                None => {
                    for _ in q.frames {
                        self.shared.counters.drop(DropReason::NeighbourMiss);
                    }
                }
            }
        }
    }
}
