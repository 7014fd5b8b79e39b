//! Benchmark support. Each benchmark is a binary under `src/bin/`.

pub mod frames;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rvs_dataplane::{NeighbourTable, PortInfo, Worker, WorkerConfig, WorkerMsg, WorkerShared};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Command, DestSpec, Director, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use rvs_packet::MacAddr;

/// The 40-byte RSS key Microsoft publishes with its RSS verification
/// suite, which NIC drivers (DPDK's among them) use as their default.
pub const MICROSOFT_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash a NIC computes for receive-side scaling: for every
/// set bit of `input` (most significant first), the 32 key bits starting at
/// that bit's position are XORed in. Written here because it is a dozen
/// lines and no maintained crate offers it; the tests check it against
/// Microsoft's published values. `key` must be at least 4 bytes longer
/// than `input`.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    assert!(key.len() >= input.len() + 4, "RSS key too short for input");
    let mut hash = 0u32;
    // The key's 32-bit window at the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, byte) in input.iter().enumerate() {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                hash ^= window;
            }
            // Slide the window one bit along the key.
            window = (window << 1) | u32::from((key[i + 4] >> bit) & 1);
        }
    }
    hash
}

/// Entries in the redirection table of the NIC modelled: the hash's low
/// bits pick an entry, the entry names the queue. 128 is common (e.g.
/// Intel's 82599); DPDK fills it round robin over the queues by default.
pub const RSS_RETA_SIZE: u32 = 128;

/// The receive queue (of `queues`) a NIC with the Microsoft key and a
/// round-robin redirection table puts a TCP or UDP packet on: the Toeplitz
/// hash over source address, destination address, source port and
/// destination port, as sent.
pub fn rss_queue(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, queues: usize) -> usize {
    let mut input = Vec::with_capacity(36);
    for a in [src, dst] {
        match a {
            IpAddr::V4(v) => input.extend_from_slice(&v.octets()),
            IpAddr::V6(v) => input.extend_from_slice(&v.octets()),
        }
    }
    input.extend_from_slice(&sport.to_be_bytes());
    input.extend_from_slice(&dport.to_be_bytes());
    let entry = toeplitz(&MICROSOFT_RSS_KEY, &input) % RSS_RETA_SIZE;
    entry as usize % queues.max(1)
}

/// Resident set size of this process, in bytes (from /proc/self/statm).
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A worker with one TCP service (192.168.1.10:80, rr) and one real server
/// (192.168.1.220, its MAC known) forwarded by `fwd`, counting traffic or
/// not: what the per-packet benchmarks put packets through.
pub fn one_service_worker(fwd: FwdMethod, count_stats: bool) -> Worker {
    one_service_worker_on(fwd, count_stats, false)
}

/// [`one_service_worker`] with the port's kernel interface (the exception
/// path) on or off.
pub fn one_service_worker_on(fwd: FwdMethod, count_stats: bool, kernel: bool) -> Worker {
    let cfg = WorkerConfig {
        id: 0,
        workers: 1,
        sharding: rvs_dataplane::FlowSharding::with_seed(0),
        ports: vec![PortInfo {
            mac: MacAddr([2, 0, 0, 0, 0, 0xd1]),
            addr: Ipv4Addr::new(192, 168, 1, 213),
            prefix_len: 24,
            mtu: 1500,
            addr6: None,
            kernel,
            vip_arp: rvs_dataplane::VipArp::Always,
        }],
        routes: vec![],
        conn_capacity: 1000,
        timeouts: Timeouts::default(),
        arp_retry_ms: 1000,
        expire_budget: 64,
        sloppy_tcp: false,
        count_stats,
        defense: Default::default(),
    };
    let neigh = Arc::new(NeighbourTable::new(300_000));
    neigh.add_static(Ipv4Addr::new(192, 168, 1, 220), MacAddr([2, 0, 0, 0, 0, 1]));
    let mut w = Worker::new(
        cfg,
        neigh,
        Arc::new(Templates::new()),
        Arc::new(WorkerShared::default()),
    );
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
        port: 80,
    };
    let mut control = Director::new();
    for cmd in [
        Command::AddService(ServiceSpec {
            key,
            scheduler: "rr".into(),
            sched_flags: 0,
            persistent: None,
            netmask: rvs_ipvs::PersistMask::V4(Ipv4Addr::BROADCAST),
            one_packet: false,
        }),
        Command::AddDest(
            key,
            DestSpec {
                addr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 220)),
                port: if fwd == FwdMethod::Masq { 8080 } else { 80 },
                fwd,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            },
        ),
    ] {
        w.apply(&WorkerMsg::Change(control.apply(&cmd).unwrap()), 0);
    }
    w.generated.clear();
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft's "Verifying the RSS Hash Calculation" table (IPv4 with
    /// TCP ports, and IPv4 alone): destination, source, expected hashes.
    #[test]
    fn toeplitz_matches_microsofts_verification_values() {
        let cases = [
            (
                "161.142.100.80",
                1766,
                "66.9.149.187",
                2794,
                0x51cc_c178u32,
                0x323e_8fc2u32,
            ),
            (
                "65.69.140.83",
                4739,
                "199.92.111.2",
                14230,
                0xc626_b0ea,
                0xd718_262a,
            ),
            (
                "12.22.207.184",
                38024,
                "24.19.198.95",
                12898,
                0x5c2b_394a,
                0xd2d0_a5de,
            ),
            (
                "209.142.163.6",
                2217,
                "38.27.205.30",
                48228,
                0xafc7_327f,
                0x8298_9176,
            ),
            (
                "202.188.127.2",
                1303,
                "153.39.163.191",
                44251,
                0x10e8_28a2,
                0x5d18_09c5,
            ),
        ];
        for (dst, dport, src, sport, with_ports, addrs_only) in cases {
            let (d, s): (Ipv4Addr, Ipv4Addr) = (dst.parse().unwrap(), src.parse().unwrap());
            let mut input = [s.octets(), d.octets()].concat();
            assert_eq!(
                toeplitz(&MICROSOFT_RSS_KEY, &input),
                addrs_only,
                "{src} -> {dst}"
            );
            input.extend_from_slice(&(sport as u16).to_be_bytes());
            input.extend_from_slice(&(dport as u16).to_be_bytes());
            assert_eq!(
                toeplitz(&MICROSOFT_RSS_KEY, &input),
                with_ports,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn rss_queue_spreads_flows_over_queues() {
        let vip = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
        let mut per_queue = [0u32; 2];
        for i in 0..10_000u32 {
            let c = IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i));
            per_queue[rss_queue(c, vip, 1024 + (i % 60000) as u16, 80, 2)] += 1;
        }
        // A fair split: each queue within 5 % of half.
        for n in per_queue {
            assert!((4750..=5250).contains(&n), "{per_queue:?}");
        }
    }
}
