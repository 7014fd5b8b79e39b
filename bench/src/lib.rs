//! Benchmark support. Each benchmark is a binary under `src/bin/`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rvs_dataplane::{NeighbourTable, PortInfo, Worker, WorkerConfig, WorkerMsg, WorkerShared};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Command, DestSpec, Director, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use rvs_packet::MacAddr;

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
