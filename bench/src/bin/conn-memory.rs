//! Bytes per IPv4 connection in the connection table, at 1 M and 10 M
//! entries: by the table's own accounting (slab + index + registries) and by
//! the growth of the process's resident memory. Reference points: DPVS spends
//! about 576 bytes per connection, VPP's load balancer a 16-byte flow-hash
//! entry (no per-connection state beyond it).
//!
//!     cargo run --release -p rvs-bench --bin conn-memory [-- N...]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use rvs_bench::rss_bytes;
use rvs_ipvs::conn::{ConnTable, FlowKey, V4_SLOT_BYTES};
use rvs_ipvs::defense::DefenseConfig;
use rvs_ipvs::dest::{Dest, DestShared, DestSpec};
use rvs_ipvs::tcp_state::{Event, Timeouts};
use rvs_ipvs::{FwdMethod, Protocol};

fn dests() -> Vec<Dest> {
    (1..=4)
        .map(|i| {
            let spec = DestSpec {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)),
                port: 80,
                fwd: if i % 2 == 0 {
                    FwdMethod::Masq
                } else {
                    FwdMethod::Route
                },
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            };
            Dest {
                spec,
                last_weight: 1,
                shared: DestShared::new(&spec),
            }
        })
        .collect()
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000_000, 10_000_000]
    } else {
        sizes
    };
    let ds = dests();
    println!("IPv4 slot: {V4_SLOT_BYTES} bytes; half the connections NAT; table pressure on");
    println!(
        "{:>12} {:>14} {:>14} {:>12} {:>12}",
        "connections", "table B/conn", "RSS B/conn", "insert ns", "lookup ns"
    );
    for n in sizes {
        let rss0 = rss_bytes();
        let mut t = ConnTable::new(n, Timeouts::default());
        // As rvsd runs it, with table pressure on (the default).
        t.set_reclaim_half_open(DefenseConfig::default().reclaim_half_open);
        let key = |i: usize| FlowKey {
            protocol: Protocol::Tcp,
            caddr: IpAddr::V4(Ipv4Addr::from(
                0x0a00_0000u32.wrapping_add((i / 50_000) as u32),
            )),
            cport: 1024 + (i % 50_000) as u16,
            vaddr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            vport: 80,
        };
        let t0 = Instant::now();
        for i in 0..n {
            let r = t.insert(key(i), &ds[i % ds.len()], 0).expect("capacity");
            t.on_tcp(r, false, Some(Event::Syn), 0);
        }
        let ins = t0.elapsed().as_nanos() as f64 / n as f64;
        let t1 = Instant::now();
        let mut found = 0usize;
        for i in (0..n).step_by(7) {
            found += t.lookup(&key(i)).is_some() as usize;
        }
        let look = t1.elapsed().as_nanos() as f64 / found.max(1) as f64;
        assert_eq!(found, n.div_ceil(7));
        let rss = rss_bytes().saturating_sub(rss0);
        println!(
            "{:>12} {:>14.1} {:>14.1} {:>12.0} {:>12.0}",
            n,
            t.bytes() as f64 / n as f64,
            rss as f64 / n as f64,
            ins,
            look
        );
        assert_eq!(t.len(), n);
    }
}
