//! Per-worker counters. Each worker writes only its own, so an increment is
//! a relaxed load and store (no locked instruction); the control thread reads
//! them for `rvsadm --counters` and the metrics.

use serde::{Deserialize, Serialize};

pub use rvs_ipvs::stats::Counter;

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DropReason {
    /// Shorter than an Ethernet header.
    TruncatedEthernet,
    /// EtherType other than IPv4 and ARP.
    UnknownEthertype,
    /// A malformed ARP packet (not Ethernet/IPv4, or cut short).
    BadArp,
    /// An ARP request for an address that is neither a VIP nor ours.
    ArpNotForUs,
    /// Unicast frame for another station's MAC.
    NotOurMac,
    /// A frame we sent ourselves, seen again.
    Looped,
    /// A packet spread over several mbuf segments.
    MultiSegment,
    TruncatedIpv4,
    BadIpVersion,
    BadIhl,
    BadTotalLength,
    BadIpChecksum,
    IpOptions,
    /// A fragment rvsd does not forward: of an ICMP message (a large ping).
    Fragment,
    /// A fragment whose datagram's first fragment did not come within
    /// `frag::HELD_MS`, or that found no room to wait for it.
    FragmentOrphan,
    /// A first fragment when the worker already follows as many fragmented
    /// datagrams as it may (`frag::TRACKED_PER_WORKER`).
    FragmentTableFull,
    /// TCP/UDP header cut short or malformed.
    BadL4Header,
    /// Neither a VIP nor a director address.
    NotForUs,
    /// For the director itself but nothing it answers.
    ToDirector,
    /// For a VIP, but no service on that protocol and port.
    NoService,
    /// A non-SYN TCP segment of an unknown flow.
    NoConnection,
    /// The scheduler found no available real server.
    NoDestination,
    ConnTableFull,
    /// The client's address and port have as many connections as one
    /// endpoint may (`rvs_ipvs::conn::CONNS_PER_CLIENT_ENDPOINT`).
    ClientEndpointFull,
    /// The real server is on no connected network.
    NoRoute,
    /// The real server's MAC is not known yet (an ARP request went out).
    NeighbourMiss,
    /// Forwarding method not implemented.
    UnsupportedForwarding,
    /// The transmit queue was full.
    TxFull,
    /// No mbuf for a packet the director generates.
    NoMbuf,
    /// The owning worker's hand-over ring was full.
    RedirectFull,
    /// A forwarded packet's TTL ran out.
    TtlExceeded,
    /// Too big for the link after encapsulation (ICMP sent back when DF).
    TooBig,
    /// No room in front of the packet for the tunnel headers.
    NoHeadroom,
    /// An ICMP error that belongs to no tracked connection.
    IcmpUnrelated,
    /// An ICMP message that is malformed or quotes a malformed packet.
    BadIcmp,
    /// Shorter than an IPv6 header, or than its payload length says.
    TruncatedIpv6,
    /// IPv6 extension headers rvsd does not walk past: a routing header
    /// with segments left, a malformed chain, more than eight headers, or
    /// something other than TCP or UDP behind them.
    Ipv6ExtHeaders,
    /// IPv6 on a port without an IPv6 address.
    NoIpv6,
    /// A neighbour solicitation or advertisement that breaks RFC 4861's
    /// rules (hop limit not 255: sent from beyond the link; code not 0; a
    /// solicited advertisement to a multicast group).
    BadNeighbourDiscovery,
    /// For the director's kernel, but its interface's queue was full (the
    /// kernel is not reading): dropped rather than wait.
    KernelFull,
    /// A new connection's first packet, refused by the SYN-flood defence
    /// (`drop_packet`).
    Defense,
}

impl DropReason {
    pub const ALL: [DropReason; 41] = [
        DropReason::TruncatedEthernet,
        DropReason::UnknownEthertype,
        DropReason::BadArp,
        DropReason::ArpNotForUs,
        DropReason::NotOurMac,
        DropReason::Looped,
        DropReason::MultiSegment,
        DropReason::TruncatedIpv4,
        DropReason::BadIpVersion,
        DropReason::BadIhl,
        DropReason::BadTotalLength,
        DropReason::BadIpChecksum,
        DropReason::IpOptions,
        DropReason::Fragment,
        DropReason::FragmentOrphan,
        DropReason::FragmentTableFull,
        DropReason::BadL4Header,
        DropReason::NotForUs,
        DropReason::ToDirector,
        DropReason::NoService,
        DropReason::NoConnection,
        DropReason::NoDestination,
        DropReason::ConnTableFull,
        DropReason::ClientEndpointFull,
        DropReason::NoRoute,
        DropReason::NeighbourMiss,
        DropReason::UnsupportedForwarding,
        DropReason::TxFull,
        DropReason::NoMbuf,
        DropReason::RedirectFull,
        DropReason::TtlExceeded,
        DropReason::TooBig,
        DropReason::NoHeadroom,
        DropReason::IcmpUnrelated,
        DropReason::BadIcmp,
        DropReason::TruncatedIpv6,
        DropReason::Ipv6ExtHeaders,
        DropReason::NoIpv6,
        DropReason::BadNeighbourDiscovery,
        DropReason::KernelFull,
        DropReason::Defense,
    ];

    /// The counter's name, as `rvsadm --counters` prints it.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::TruncatedEthernet => "drop_truncated_ethernet",
            DropReason::UnknownEthertype => "drop_unknown_ethertype",
            DropReason::BadArp => "drop_bad_arp",
            DropReason::ArpNotForUs => "drop_arp_not_for_us",
            DropReason::NotOurMac => "drop_not_our_mac",
            DropReason::Looped => "drop_looped",
            DropReason::MultiSegment => "drop_multi_segment",
            DropReason::TruncatedIpv4 => "drop_truncated_ipv4",
            DropReason::BadIpVersion => "drop_bad_ip_version",
            DropReason::BadIhl => "drop_bad_ihl",
            DropReason::BadTotalLength => "drop_bad_total_length",
            DropReason::BadIpChecksum => "drop_bad_ip_checksum",
            DropReason::IpOptions => "drop_ip_options",
            DropReason::Fragment => "drop_fragment",
            DropReason::FragmentOrphan => "drop_fragment_orphan",
            DropReason::FragmentTableFull => "drop_fragment_table_full",
            DropReason::BadL4Header => "drop_bad_l4_header",
            DropReason::NotForUs => "drop_not_for_us",
            DropReason::ToDirector => "drop_to_director",
            DropReason::NoService => "drop_no_service",
            DropReason::NoConnection => "drop_no_connection",
            DropReason::NoDestination => "drop_no_destination",
            DropReason::ConnTableFull => "drop_conn_table_full",
            DropReason::ClientEndpointFull => "drop_client_endpoint_full",
            DropReason::NoRoute => "drop_no_route",
            DropReason::NeighbourMiss => "drop_neighbour_miss",
            DropReason::UnsupportedForwarding => "drop_unsupported_forwarding",
            DropReason::TxFull => "drop_tx_full",
            DropReason::NoMbuf => "drop_no_mbuf",
            DropReason::RedirectFull => "drop_redirect_full",
            DropReason::TtlExceeded => "drop_ttl_exceeded",
            DropReason::TooBig => "drop_too_big",
            DropReason::NoHeadroom => "drop_no_headroom",
            DropReason::IcmpUnrelated => "drop_icmp_unrelated",
            DropReason::BadIcmp => "drop_bad_icmp",
            DropReason::TruncatedIpv6 => "drop_truncated_ipv6",
            DropReason::Ipv6ExtHeaders => "drop_ipv6_ext_headers",
            DropReason::NoIpv6 => "drop_no_ipv6",
            DropReason::BadNeighbourDiscovery => "drop_bad_neighbour_discovery",
            DropReason::KernelFull => "drop_kernel_full",
            DropReason::Defense => "drop_defense",
        }
    }
}

/// Declares the counters once: the struct fields and their export follow.
macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Everything one worker counts.
        #[derive(Debug)]
        pub struct Counters {
            $($(#[$doc])* pub $name: Counter,)*
            drops: [Counter; DropReason::ALL.len()],
        }

        impl Default for Counters {
            fn default() -> Self {
                Counters {
                    $($name: Counter::default(),)*
                    drops: std::array::from_fn(|_| Counter::default()),
                }
            }
        }

        impl Counters {
            /// Name and value of every counter, for export.
            pub fn snapshot(&self) -> Vec<(String, u64)> {
                let mut v = vec![$((stringify!($name).to_string(), self.$name.get()),)*];
                for r in DropReason::ALL {
                    v.push((r.name().to_string(), self.drops(r)));
                }
                v
            }
        }
    };
}

counters! {
    rx_packets,
    tx_packets,
    forwarded,
    new_connections,
    /// Live connections in this worker's table.
    connections,
    conns_expired,
    arp_replies_sent,
    arp_requests_sent,
    arp_learned,
    /// Packets held until their next hop's MAC was known (then sent).
    neighbour_queued,
    /// Neighbour messages not taken: no entry, and rvsd had not asked
    /// (an unsolicited ARP reply, a gratuitous ARP, an unsolicited
    /// advertisement), as Linux with `arp_accept=0`.
    neighbour_unsolicited,
    /// Another MAC for a known address within the locktime (1 s), or an
    /// advertisement without the override flag: the entry kept its MAC.
    neighbour_locked,
    /// Another MAC for a static neighbour: never taken.
    neighbour_static_kept,
    /// `learn = "solicited-only"`: not an answer to a request of rvsd's.
    neighbour_not_an_answer,
    /// New entries from neighbours' own requests beyond the rate limit.
    neighbour_rate_limited,
    /// Known addresses that moved to another MAC.
    neighbour_moved,
    /// Entries removed to make room (`[neighbours] max_entries`).
    neighbour_evicted,
    /// Requests not sent, or sent untracked, for want of room.
    neighbour_asks_limited,
    nd_advertisements_sent,
    nd_solicitations_sent,
    icmp_echo_replies,
    icmp_errors_sent,
    icmp_errors_forwarded,
    idle_sleeps,
    /// Naps a frame ended early: one another worker handed over, or one on
    /// a port whose queues are kernel sockets (af_packet's): `dpdk::RxWait`.
    idle_woken,
    /// Packets handed to the worker that owns their connection.
    redirected,
    /// Packets received from other workers.
    redirected_in,
    /// Frames handed to the director's kernel (the exception path).
    to_kernel,
    /// Frames the director's kernel sent, out of its port.
    from_kernel,
    /// Half-open connections that gave their place in a full table to a
    /// new one (table pressure).
    half_open_reclaimed,
    /// Connections the defence's `drop_entry` removed.
    entries_dropped,
    /// Fragmented datagrams whose first fragment was handled (its decision
    /// kept for the rest).
    fragments_tracked,
    /// Fragments that came before their first and waited for it.
    fragments_held,
    /// Packets too big for their way out, sent in fragments (the kernel's
    /// FragOKs).
    packets_fragmented,
    /// Fragments made of them (FragCreates).
    fragments_made,
    /// Connections (and templates) put in a sync message (master).
    sync_offered,
    /// Sync messages sent (master).
    sync_messages,
    /// Connections not sent: a message limit too small for one, or the
    /// daemon thread's queue full (a master on a non-port interface).
    sync_not_sent,
    /// Connections a master's sync message created here (backup).
    synced_created,
    /// Connections a sync message brought up to date.
    synced_updated,
    /// Sync entries skipped: no such service or real server here, a
    /// template, a protocol or state rvs does not know, a full table.
    synced_skipped,
}

impl Counters {
    #[inline]
    pub fn drop(&self, r: DropReason) {
        self.drops[r as usize].inc();
    }

    pub fn drops(&self, r: DropReason) -> u64 {
        self.drops[r as usize].get()
    }
}

/// Upper bounds of the burst-time buckets, in nanoseconds: from a microsecond
/// (a few packets) to 20 ms (a worker that lost its CPU).
pub const BURST_BOUNDS_NS: [u64; 12] = [
    1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 5_000_000,
    20_000_000,
];

/// How long the poll loop's passes that moved packets took, in fixed
/// buckets of plain single-writer counters: cheap enough to be always on
/// (it times passes with the clock reading each pass takes anyway; a few
/// compares and two stores per non-empty pass), unlike the benchmark's
/// hdrhistogram.
#[derive(Debug, Default)]
pub struct BurstHistogram {
    /// `counts[i]`: passes of at most `BURST_BOUNDS_NS[i]` (and more than
    /// the bound before); the last, longer than every bound.
    counts: [Counter; BURST_BOUNDS_NS.len() + 1],
    sum_ns: Counter,
}

impl BurstHistogram {
    #[inline]
    pub fn record(&self, ns: u64) {
        let i = BURST_BOUNDS_NS.partition_point(|&b| b < ns);
        self.counts[i].inc();
        self.sum_ns.add(ns);
    }

    /// Bucket counts (not cumulative) and the sum of all durations.
    pub fn snapshot(&self) -> (Vec<u64>, u64) {
        (
            self.counts.iter().map(Counter::get).collect(),
            self.sum_ns.get(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_exported() {
        let c = Counters::default();
        c.icmp_errors_sent.inc();
        c.drop(DropReason::BadIcmp);
        let snap = c.snapshot();
        assert!(snap.contains(&("icmp_errors_sent".to_string(), 1)));
        assert!(snap.contains(&("drop_bad_icmp".to_string(), 1)));
        assert_eq!(snap.len(), 41 + DropReason::ALL.len());
    }

    #[test]
    fn burst_buckets_take_their_upper_bound() {
        let h = BurstHistogram::default();
        for ns in [1, 1_000, 1_001, 20_000_000, 20_000_001, u64::MAX / 2] {
            h.record(ns);
        }
        let (counts, sum) = h.snapshot();
        assert_eq!(counts.len(), BURST_BOUNDS_NS.len() + 1);
        assert_eq!(counts[0], 2, "1 ns and exactly 1 µs");
        assert_eq!(counts[1], 1);
        assert_eq!(counts[BURST_BOUNDS_NS.len() - 1], 1, "exactly 20 ms");
        assert_eq!(counts[BURST_BOUNDS_NS.len()], 2, "beyond every bound");
        assert_eq!(
            sum,
            1u64.wrapping_add(1_000 + 1_001 + 20_000_000 + 20_000_001)
                .wrapping_add(u64::MAX / 2)
        );
    }

    #[test]
    fn drop_reasons_index_their_own_counter() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of order in ALL");
        }
    }
}
