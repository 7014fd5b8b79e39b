//! The pure-Rust hot paths, without DPDK: parsing, connection lookup,
//! scheduling, and a whole packet through `Worker::handle` (DR and NAT).
//! `cargo bench -p rvs-bench` — regressions show up here first.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, Criterion};
use rvs_dataplane::Verdict;
use rvs_ipvs::conn::{ConnTable, FlowKey};
use rvs_ipvs::dest::{Dest, DestShared, DestSpec};
use rvs_ipvs::sched::{self, DestChange, SchedInput};
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{FwdMethod, Protocol};
use rvs_packet::{fixtures, EthernetFrame, Ipv4Packet, TcpSegment};

fn dests(n: u8) -> Vec<Dest> {
    (1..=n)
        .map(|i| {
            let spec = DestSpec {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)),
                port: 80,
                fwd: FwdMethod::Route,
                weight: 1 + i as u32 % 3,
                u_threshold: 0,
                l_threshold: 0,
            };
            Dest {
                spec,
                last_weight: spec.weight,
                shared: DestShared::new(&spec),
            }
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let f = fixtures::TCP_SYN;
    c.bench_function("parse eth+ipv4+tcp", |b| {
        b.iter(|| {
            let e = EthernetFrame::new_checked(black_box(&f[..])).unwrap();
            let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
            let ok = ip.verify_checksum();
            let t = TcpSegment::new_checked(ip.payload()).unwrap();
            black_box((ok, t.src_port(), t.dst_port(), t.flags()))
        })
    });
}

fn lookup(c: &mut Criterion) {
    let d = dests(1);
    let n = 100_000u32;
    let mut t = ConnTable::new(n as usize, Timeouts::default());
    let key = |i: u32| FlowKey {
        protocol: Protocol::Tcp,
        caddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        cport: 1024 + (i % 50_000) as u16,
        vaddr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
        vport: 80,
    };
    for i in 0..n {
        t.insert(key(i), &d[0], 0).unwrap();
    }
    let mut i = 0u32;
    c.bench_function("conn lookup (100k, hit)", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(t.lookup(&key(i)))
        })
    });
}

fn schedule(c: &mut Criterion) {
    let d = dests(8);
    for name in ["rr", "wrr", "wlc", "sh", "mh"] {
        let mut s = sched::by_name(name, 0).unwrap();
        s.update(&d, DestChange::Reset);
        let mut src = 0u32;
        c.bench_function(&format!("schedule {name} (8 dests)"), |b| {
            b.iter(|| {
                src = src.wrapping_add(0x9e37_79b9);
                let input = SchedInput {
                    saddr: IpAddr::V4(Ipv4Addr::from(src)),
                    sport: 40000,
                    daddr: IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
                    dport: 80,
                    now_ms: 0,
                };
                black_box(s.schedule(&d, &input))
            })
        });
    }
}

fn per_packet(c: &mut Criterion) {
    // DR twice, with and without the traffic counters: what counting costs
    // on the established path, measured in the same run.
    for (name, fwd, stats) in [
        ("DR", FwdMethod::Route, true),
        ("DR, counting off", FwdMethod::Route, false),
        ("NAT", FwdMethod::Masq, true),
    ] {
        let mut w = rvs_bench::one_service_worker(fwd, stats);
        let mut syn = fixtures::TCP_SYN.to_vec();
        assert_eq!(w.handle(0, &mut syn, 1), Verdict::Tx(0));
        let ack = fixtures::TCP_ACK_DATA.to_vec();
        let mut buf = ack.clone();
        c.bench_function(
            &format!("handle {name}, established (parse, lookup, state, rewrite)"),
            |b| {
                b.iter(|| {
                    buf.copy_from_slice(&ack);
                    black_box(w.handle(0, &mut buf, 2))
                })
            },
        );
    }
}

criterion_group!(benches, parse, lookup, schedule, per_packet);
criterion_main!(benches);
