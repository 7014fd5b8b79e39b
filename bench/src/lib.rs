//! Benchmark support. Each benchmark is a binary under `src/bin/`.

pub mod frames;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rvs_dataplane::{
    toeplitz, NeighbourTable, PortInfo, Worker, WorkerConfig, WorkerMsg, WorkerShared,
    MICROSOFT_RSS_KEY,
};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Command, DestSpec, Director, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use rvs_packet::MacAddr;

/// The receive queue (of `queues`) a NIC with the Microsoft key and its
/// default redirection table puts a TCP or UDP packet on: the Toeplitz
/// hash over source address, destination address, source port and
/// destination port, as sent. The table modelled has 128 entries (common,
/// e.g. Intel's 82599) filled round robin over the queues, as DPDK does by
/// default: the same pattern as rvsd's own, so `dpdk::reta_queue` gives
/// its queue.
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
    dpdk::reta_queue(toeplitz(&MICROSOFT_RSS_KEY, &input), queues)
}

/// The receive queue (of `queues`) a NIC programmed as rvsd programs it
/// (`dpdk::PortConfig::rss_key`) puts a TCP or UDP packet from this
/// client endpoint on: the Toeplitz hash over source address and port
/// alone under `key`, through rvsd's redirection table. Computed here bit
/// by bit, apart from rvsd's table-driven `owner_of`, so that a benchmark
/// that hands packets over with this split shows the two disagree.
pub fn client_endpoint_rss_queue(key: &[u8], src: IpAddr, sport: u16, queues: usize) -> usize {
    let mut input = match src {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    input.extend_from_slice(&sport.to_be_bytes());
    dpdk::reta_queue(toeplitz(key, &input), queues)
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

/// The VIP of [`one_service_worker`]'s service (TCP port 80).
pub const ONE_SERVICE_VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
/// The MAC of [`one_service_worker`]'s port: what frames to it are sent to.
pub const ONE_SERVICE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];

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
            mac: MacAddr(ONE_SERVICE_MAC),
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
        addr: IpAddr::V4(ONE_SERVICE_VIP),
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

    /// pktgen's split on the client endpoint (bit by bit) gives each
    /// worker the flows rvsd's `owner_of` (table-driven) says it owns.
    #[test]
    fn the_client_endpoint_split_is_rvsds_owner() {
        for seed in [0, 5] {
            let sharding = rvs_dataplane::FlowSharding::with_seed(seed);
            for i in 0..5000u32 {
                let v4 = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7));
                let v6 = IpAddr::V6(std::net::Ipv6Addr::from(
                    0xfd00_000c_u128 << 96 | u128::from(i),
                ));
                let port = 1024 + (i % 60000) as u16;
                for a in [v4, v6] {
                    for n in [2, 3, 4] {
                        assert_eq!(
                            client_endpoint_rss_queue(&sharding.rss_key(), a, port, n),
                            sharding.owner_of(a, port, n)
                        );
                    }
                }
            }
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
