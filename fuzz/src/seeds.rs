//! The seed corpora, made from the project's fixtures: the packet fixtures
//! and flows like those of the dataplane's unit tests, conf/ and the
//! Debian package's files, keepalived's example configurations, the oracle
//! scenarios' rvsadm lines and rvsadm's parser tests.
//!
//! They are written to `fuzz/seeds/<target>/` by
//! `RVS_FUZZ_WRITE_SEEDS=1 cargo test --manifest-path fuzz/Cargo.toml --lib`;
//! the same test, without the variable, fails when the files on disk are
//! not what this module makes.
//!
//! Why this file is long (about 920 lines): the seeds of all six targets,
//! one function each and mostly data (frames, configurations, command
//! lines); `worker_handle`'s frames and control records are about 410 of
//! them.

use std::net::Ipv4Addr;

use rvs_packet::{fixtures, MacAddr};

use crate::build::{self, eth4, eth6, ipv4, ipv6, tcp, udp, ACK, FIN, PSH, SYN};
use crate::wire;
use crate::worker_handle::{
    v6, Input, CLIENT, CLIENT6, CLIENT_MAC, DIRECTOR0_MAC, DIRECTOR1_MAC, MAX_CONTROLS, NAT_RS,
    NAT_RS_ROUTED, NAT_RS_UNKNOWN, PORT1_ADDR6, ROUTER_MAC, RS_MAC, VIP, VIP6, VIP_PERSIST,
    VIP_TUN,
};

pub type Seed = (String, Vec<u8>);

/// A client's frame to the director on port 0.
fn from_client(ip: &[u8]) -> Vec<u8> {
    eth4(DIRECTOR0_MAC, CLIENT_MAC, ip)
}

/// A server's frame to the director on port 1 (`via` the router's MAC for
/// servers behind it).
fn from_server(mac: MacAddr, ip: &[u8]) -> Vec<u8> {
    eth4(DIRECTOR1_MAC, mac, ip)
}

fn client_tcp(dst: Ipv4Addr, cport: u16, vport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    from_client(&ipv4(
        CLIENT,
        dst,
        wire::TCP,
        64,
        true,
        &tcp(cport, vport, flags, data),
    ))
}

fn client6_tcp(cport: u16, vport: u16, flags: u8, data: &[u8]) -> Vec<u8> {
    eth6(
        DIRECTOR0_MAC,
        CLIENT_MAC,
        &ipv6(
            v6(CLIENT6),
            v6(VIP6),
            wire::TCP,
            64,
            &tcp(cport, vport, flags, data),
        ),
    )
}

/// An ICMP error (`kind`, `code`) from `src` to `dst` quoting the first 28
/// bytes of the IP packet `quoted`.
fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let m = build::icmp(
        kind,
        code,
        [0, 0, 0x05, 0xdc],
        &quoted[..28.min(quoted.len())],
    );
    ipv4(src, dst, wire::ICMP, 64, false, &m)
}

/// `worker_handle`'s seeds.
pub fn worker_handle() -> Vec<Seed> {
    let mut seeds: Vec<(&str, Input)> = Vec::new();
    let nat_syn = client_tcp(VIP, 40001, 8080, SYN, b"");
    let nat_replies = [
        (NAT_RS, 80, RS_MAC),
        (NAT_RS_UNKNOWN, 8080, RS_MAC),
        (NAT_RS_ROUTED, 8080, ROUTER_MAC),
    ];

    seeds.push((
        "fixtures",
        Input::new(0)
            .frame_as_is(0, 0, &fixtures::ARP_REQUEST)
            .frame_as_is(0, 0, &fixtures::TCP_SYN)
            .frame_as_is(0, 0, &fixtures::TCP_ACK_DATA)
            .frame_as_is(0, 0, &fixtures::UDP_DNS)
            .frame_as_is(0, 0, &fixtures::ICMP_ECHO),
    ));

    let mut i = Input::new(0).frame(0, 0, &nat_syn);
    for (rs, port, mac) in nat_replies {
        let reply = ipv4(
            rs,
            CLIENT,
            wire::TCP,
            64,
            true,
            &tcp(port, 40001, SYN | ACK, b""),
        );
        i = i.frame(0, 1, &from_server(mac, &reply));
    }
    // The unknown server answers the director's ARP request: what waited
    // for it goes.
    i = i
        .frame(
            0,
            1,
            &build::arp(
                2,
                RS_MAC,
                NAT_RS_UNKNOWN,
                DIRECTOR1_MAC,
                Ipv4Addr::new(172, 16, 0, 1),
                DIRECTOR1_MAC,
            ),
        )
        .frame(
            0,
            0,
            &client_tcp(VIP, 40001, 8080, ACK | PSH, b"GET / HTTP/1.0\r\n\r\n"),
        )
        .advance(500)
        .frame(0, 0, &client_tcp(VIP, 40001, 8080, FIN | ACK, b""))
        .advance(5000);
    seeds.push(("nat-tcp", i));

    let mut i = Input::new(0).frame(0, 0, &fixtures::UDP_DNS);
    for (rs, port) in [(NAT_RS, 5353), (NAT_RS_UNKNOWN, 53)] {
        let reply = ipv4(
            rs,
            CLIENT,
            wire::UDP,
            64,
            false,
            &udp(port, 50000, b"answer"),
        );
        i = i.frame(0, 1, &from_server(RS_MAC, &reply));
        // The server's port unreachable about the translated datagram.
        let sent = ipv4(
            CLIENT,
            rs,
            wire::UDP,
            64,
            false,
            &udp(50000, port, b"query"),
        );
        i = i.frame(
            0,
            1,
            &from_server(RS_MAC, &icmp_error(rs, CLIENT, 3, 3, &sent)),
        );
    }
    seeds.push(("nat-udp-and-icmp-from-server", i));

    // The client's fragmentation-needed about the VIP's SYN-ACK.
    let synack = ipv4(
        VIP,
        CLIENT,
        wire::TCP,
        63,
        true,
        &tcp(8080, 40001, SYN | ACK, b""),
    );
    seeds.push((
        "icmp-from-client-nat",
        Input::new(0).frame(0, 0, &nat_syn).frame(
            0,
            0,
            &from_client(&icmp_error(CLIENT, VIP, 3, 4, &synack)),
        ),
    ));
    let synack = ipv4(
        VIP,
        CLIENT,
        wire::TCP,
        63,
        true,
        &tcp(80, 40000, SYN | ACK, b""),
    );
    seeds.push((
        "icmp-from-client-dr",
        Input::new(0).frame(0, 0, &fixtures::TCP_SYN).frame(
            0,
            0,
            &from_client(&icmp_error(CLIENT, VIP, 3, 4, &synack)),
        ),
    ));

    let mut i = Input::new(0);
    for cport in 41000..41006 {
        i = i.frame(0, 0, &client_tcp(VIP_TUN, cport, 80, SYN, b""));
    }
    i = i
        .frame(0, 0, &client_tcp(VIP_TUN, 41000, 80, ACK, b"hello"))
        .frame(0, 0, &client_tcp(VIP_TUN, 41001, 80, ACK, &[0x55; 1400]));
    let synack = ipv4(
        VIP_TUN,
        CLIENT,
        wire::TCP,
        63,
        true,
        &tcp(80, 41002, SYN | ACK, b""),
    );
    i = i.frame(
        0,
        0,
        &from_client(&icmp_error(CLIENT, VIP_TUN, 3, 4, &synack)),
    );
    seeds.push(("tunnels", i));

    let ops = ipv4(CLIENT, VIP_TUN, wire::UDP, 64, false, &udp(50001, 53, b"q"));
    seeds.push((
        "one-packet-udp",
        Input::new(0)
            .frame(0, 0, &from_client(&ops))
            .frame(0, 0, &from_client(&ops)),
    ));

    let udp500 = ipv4(
        CLIENT,
        VIP_PERSIST,
        wire::UDP,
        64,
        false,
        &udp(500, 500, b"ike"),
    );
    let reply500 = ipv4(NAT_RS, CLIENT, wire::UDP, 64, false, &udp(500, 500, b"ike"));
    seeds.push((
        "persistence",
        Input::new(0)
            .frame(0, 0, &client_tcp(VIP_PERSIST, 42000, 443, SYN, b""))
            .frame(0, 0, &client_tcp(VIP_PERSIST, 42001, 22, SYN, b""))
            .frame(0, 0, &from_client(&udp500))
            .frame(0, 1, &from_server(RS_MAC, &reply500))
            .advance(30_000)
            .frame(0, 0, &client_tcp(VIP_PERSIST, 42002, 443, SYN, b"")),
    ));

    let echo6 = ipv6(
        v6(CLIENT6),
        v6(VIP6),
        wire::ICMPV6,
        64,
        &build::icmp(128, 0, [0, 7, 0, 1], b"ping"),
    );
    let ns = ipv6(
        v6(CLIENT6),
        v6(VIP6),
        wire::ICMPV6,
        255,
        &build::nd(135, v6(VIP6), CLIENT_MAC),
    );
    seeds.push((
        "ipv6-dr-echo-nd",
        Input::new(0)
            .frame(
                0,
                0,
                &eth6(MacAddr([0x33, 0x33, 0xff, 0, 0, 0x10]), CLIENT_MAC, &ns),
            )
            .frame(0, 0, &client6_tcp(43000, 80, SYN, b""))
            .frame(0, 0, &client6_tcp(43000, 80, ACK, b"data"))
            .frame(0, 0, &eth6(DIRECTOR0_MAC, CLIENT_MAC, &echo6)),
    ));

    let mut i = Input::new(0).frame(0, 0, &client6_tcp(43001, 8080, SYN, b""));
    for (rs, port) in [("fd00:2::3", 80), ("fd00:2::5", 8080)] {
        let reply = ipv6(
            v6(rs),
            v6(CLIENT6),
            wire::TCP,
            64,
            &tcp(port, 43001, SYN | ACK, b""),
        );
        i = i.frame(0, 1, &eth6(DIRECTOR1_MAC, RS_MAC, &reply));
        // The server's destination unreachable about the translated SYN.
        let sent = ipv6(
            v6(CLIENT6),
            v6(rs),
            wire::TCP,
            64,
            &tcp(43001, port, SYN, b""),
        );
        let err = build::icmp(1, 4, [0; 4], &sent);
        let err = ipv6(v6(rs), v6(CLIENT6), wire::ICMPV6, 64, &err);
        i = i.frame(0, 1, &eth6(DIRECTOR1_MAC, RS_MAC, &err));
    }
    let na = ipv6(
        v6("fd00:2::5"),
        v6(PORT1_ADDR6),
        wire::ICMPV6,
        255,
        &build::nd(136, v6("fd00:2::5"), RS_MAC),
    );
    i = i
        .frame(0, 1, &eth6(DIRECTOR1_MAC, RS_MAC, &na))
        .advance(100);
    seeds.push(("ipv6-nat", i));

    seeds.push((
        "ipv6-tunnel",
        Input::new(0)
            .frame(0, 0, &client6_tcp(43002, 81, SYN, b""))
            .frame(0, 0, &client6_tcp(43002, 81, ACK, &[0x66; 1380])),
    ));

    let q6 = ipv6(
        v6(CLIENT6),
        v6(VIP6),
        wire::UDP,
        64,
        &udp(43003, 53, b"query"),
    );
    let a6 = ipv6(
        v6("fd00:2::3"),
        v6(CLIENT6),
        wire::UDP,
        64,
        &udp(5353, 43003, b"answer"),
    );
    // Fragments: a 3000-byte datagram to the NAT service, its last
    // fragment first (it waits), then its first (both go), then the
    // middle one (it follows); a datagram too big for the server side's
    // MTU, sent on in pieces; a fragment whose first never comes.
    let dgram = |cport: u16, n: usize, df: bool| {
        let data: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
        ipv4(CLIENT, VIP, wire::UDP, 64, df, &udp(cport, 53, &data))
    };
    let pieces = |ip: &[u8], mtu: usize| -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        rvs_packet::ipv4::fragment(ip, mtu, |p| v.push(from_client(p))).expect("fragmentable");
        v
    };
    let f = pieces(&dgram(44001, 3000, false), 1500);
    let mut orphan = pieces(&dgram(44003, 3000, false), 1500)[1].clone();
    orphan[14 + 4] = 0x99; // another datagram's identification
    seeds.push((
        "ipv4-fragments",
        Input::new(0)
            .frame_as_is(0, 0, &f[2])
            .frame_as_is(0, 0, &f[0])
            .frame_as_is(0, 0, &f[1])
            .frame_as_is(0, 0, &from_client(&dgram(44002, 1440, false)))
            .frame_as_is(0, 0, &from_client(&dgram(44002, 1440, true)))
            .frame(0, 0, &orphan)
            .advance(1000),
    ));
    // Two workers: fragments held by the one that received them go to
    // the owner of their connection with their first.
    let owner = |cport| {
        rvs_dataplane::FlowSharding::with_seed(0).owner_of(std::net::IpAddr::V4(CLIENT), cport, 2)
    };
    let cport = (45000..)
        .find(|p| owner(*p) == 1)
        .expect("an endpoint worker 1 owns");
    let f = pieces(&dgram(cport, 3000, false), 1500);
    seeds.push((
        "ipv4-fragments-handed-over",
        Input::new(2)
            .frame_as_is(0, 0, &f[1])
            .frame_as_is(0, 0, &f[0])
            .frame_as_is(0, 0, &f[2]),
    ));
    // IPv6: the persistent NAT service's datagram in fragments behind a
    // destination-options header, and a SYN behind hop-by-hop options.
    let u6 = {
        let data: Vec<u8> = (0..2600).map(|i| (i * 5) as u8).collect();
        let p = ipv6(v6(CLIENT6), v6(VIP6), wire::UDP, 64, &udp(43004, 53, &data));
        p[40..].to_vec()
    };
    let frag6 = |off: usize, more: bool, chunk: &[u8]| {
        let mut ext = vec![wire::FRAGMENT6, 0, 1, 4, 0, 0, 0, 0];
        let om = off as u16 | more as u16;
        ext.extend_from_slice(&[wire::UDP, 0]);
        ext.extend_from_slice(&om.to_be_bytes());
        ext.extend_from_slice(&0x5eed_u32.to_be_bytes());
        ext.extend_from_slice(chunk);
        let mut p = ipv6(v6(CLIENT6), v6(VIP6), 60, 64, &[]);
        p[4..6].copy_from_slice(&(ext.len() as u16).to_be_bytes());
        p.extend_from_slice(&ext);
        eth6(DIRECTOR0_MAC, CLIENT_MAC, &p)
    };
    let syn = tcp(43005, 80, SYN, b"");
    let mut hbh = ipv6(v6(CLIENT6), v6(VIP6), wire::TCP, 64, &syn);
    hbh[6] = 0;
    hbh.splice(40..40, [wire::TCP, 0, 1, 4, 0, 0, 0, 0]);
    let plen = (hbh.len() - 40) as u16;
    hbh[4..6].copy_from_slice(&plen.to_be_bytes());
    seeds.push((
        "ipv6-fragments-and-options",
        Input::new(0)
            .frame_as_is(0, 0, &frag6(1232, true, &u6[1232..2464]))
            .frame_as_is(0, 0, &frag6(0, true, &u6[..1232]))
            .frame_as_is(0, 0, &frag6(2464, false, &u6[2464..]))
            .frame_as_is(0, 0, &eth6(DIRECTOR0_MAC, CLIENT_MAC, &hbh)),
    ));

    seeds.push((
        "ipv6-udp-persistent-nat",
        Input::new(0)
            .frame(0, 0, &eth6(DIRECTOR0_MAC, CLIENT_MAC, &q6))
            .frame(0, 1, &eth6(DIRECTOR1_MAC, RS_MAC, &a6)),
    ));

    // Every control change, MAX_CONTROLS at a time.
    let menu = crate::worker_handle::CONTROL_MENU.len();
    for (n, first) in (0..menu).step_by(MAX_CONTROLS).enumerate() {
        let name = [
            "control-changes-1",
            "control-changes-2",
            "control-changes-3",
        ][n];
        let mut i = Input::new(0).frame(0, 0, &fixtures::TCP_SYN);
        for c in first..(first + MAX_CONTROLS).min(menu) {
            let c = c as u8;
            i = i
                .control(c)
                .frame(0, 0, &client_tcp(VIP, 44000 + c as u16, 80, SYN, b""));
        }
        i = i.advance(3000).frame(0, 0, &fixtures::TCP_ACK_DATA);
        seeds.push((name, i));
    }

    // Several workers: flows land on the wrong one and are handed over.
    for setup in [2u8, 3] {
        let mut i = Input::new(setup);
        for w in 0..setup {
            i = i
                .frame(w, 0, &fixtures::TCP_SYN)
                .frame(w, 0, &nat_syn)
                .frame(
                    w,
                    1,
                    &from_server(
                        RS_MAC,
                        &ipv4(
                            NAT_RS,
                            CLIENT,
                            wire::TCP,
                            64,
                            true,
                            &tcp(80, 40001, SYN | ACK, b""),
                        ),
                    ),
                )
                .frame(w, 0, &client6_tcp(43000, 80, SYN, b""));
        }
        seeds.push((
            if setup == 2 {
                "two-workers"
            } else {
                "three-workers"
            },
            i,
        ));
    }

    seeds.push((
        "sloppy-tcp",
        Input::new(4).frame(0, 0, &fixtures::TCP_ACK_DATA).frame(
            0,
            0,
            &client_tcp(VIP, 45000, 8080, ACK, b"mid-flow"),
        ),
    ));
    let mut i = Input::new(8);
    for cport in 46000..46006 {
        i = i.frame(0, 0, &client_tcp(VIP, cport, 80, SYN, b""));
    }
    seeds.push(("tiny-connection-table", i));
    seeds.push((
        "counting-off",
        Input::new(16)
            .frame(0, 0, &fixtures::TCP_SYN)
            .frame(0, 0, &fixtures::UDP_DNS),
    ));
    seeds
        .into_iter()
        .map(|(n, i)| (n.to_string(), i.0))
        .collect()
}

/// The repository's root.
fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The oracle scenarios' rvsadm lines, by scenario, with their variables
/// given the oracle's values (crates/oracle/src/topology.rs).
fn oracle_admin_lines() -> Vec<(String, Vec<String>)> {
    let vars = [
        ("$GUE_PORT", "6080"),
        ("$PHANTOM", "192.168.1.77"),
        ("$CLIENT", "192.168.1.100"),
        ("$VIP2", "192.168.1.11"),
        ("$VIP3", "192.168.1.12"),
        ("$VIP", "192.168.1.10"),
        ("$DIRS", "10.10.0.1"),
        ("$DIR", "192.168.1.213"),
        ("$RS1", "192.168.1.220"),
        ("$RS2", "192.168.1.193"),
        ("$RS3", "192.168.1.221"),
        ("$RS4", "192.168.1.222"),
    ];
    fn admin(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    match (k.as_str(), v) {
                        ("admin", toml::Value::Array(a)) => {
                            out.extend(a.iter().filter_map(|s| s.as_str().map(String::from)))
                        }
                        _ => admin(v, out),
                    }
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| admin(v, out)),
            _ => {}
        }
    }
    let mut files: Vec<_> = walk(&repo().join("oracle/scenarios"));
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let v: toml::Value = toml::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let mut lines = Vec::new();
            admin(&v, &mut lines);
            let lines = lines
                .into_iter()
                .map(|l| vars.iter().fold(l, |l, (k, v)| l.replace(k, v)))
                .collect();
            let name = p.strip_prefix(repo().join("oracle/scenarios")).unwrap();
            (name.display().to_string().replace(['/', '.'], "-"), lines)
        })
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The command lines of rvsadm's parser tests (`p("...")`, `err("...")`).
fn parser_test_lines() -> Vec<String> {
    let src = read("crates/rvsadm/src/parse/tests.rs");
    let mut out = Vec::new();
    for open in ["p(\"", "err(\""] {
        for (i, _) in src.match_indices(open) {
            let rest = &src[i + open.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// `rvsadm_args`'s seeds: arguments one per line.
pub fn rvsadm_args() -> Vec<Seed> {
    let mut lines: Vec<String> = oracle_admin_lines()
        .into_iter()
        .flat_map(|(_, l)| l)
        .collect();
    lines.extend(parser_test_lines());
    lines.extend(
        [
            "--socket /tmp/s.sock -Ln",
            "--status-file=/tmp/st --health",
            "-a -t 192.168.1.11:80 -r 10.9.0.12 -i --tun-type gue --tun-port 6080 --tun-csum",
            "-A -t [fd00:99::10]:80 -s mh -b mh-port,mh-fallback -p 30 -M 64",
            "-A -u 192.168.1.10:53 -s sh -o",
            "--set 900 120 300",
            "-Lc -n",
            "--totals-per-worker",
            "--reload",
            "--counters",
        ]
        .map(String::from),
    );
    let mut seen = std::collections::BTreeSet::new();
    lines
        .into_iter()
        .filter(|l| seen.insert(l.clone()))
        .enumerate()
        .map(|(i, l)| {
            (
                format!("line-{i:04}"),
                l.split_whitespace()
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes(),
            )
        })
        .collect()
}

/// Table commands of the oracle's scenarios, as rules files.
fn oracle_rules_files() -> Vec<(String, String)> {
    oracle_admin_lines()
        .into_iter()
        .map(|(name, lines)| {
            let table: Vec<String> = lines
                .into_iter()
                .filter(|l| {
                    let w: Vec<String> = l.split_whitespace().map(String::from).collect();
                    matches!(
                        rvsadm::parse::parse(&w, "rvsadm"),
                        Ok(rvsadm::parse::Action::Apply(_))
                    )
                })
                .collect();
            (name, table.join("\n") + "\n")
        })
        .filter(|(_, t)| !t.trim().is_empty())
        .collect()
}

/// `rules_file`'s seeds: a start file, NUL, a reload's file.
pub fn rules_file() -> Vec<Seed> {
    let files = oracle_rules_files();
    let mut seeds: Vec<Seed> = Vec::new();
    seeds.push((
        "packaged".into(),
        read("crates/rvsd/debian/rules").into_bytes(),
    ));
    seeds.push((
        "worker-table".into(),
        crate::worker_handle::RULES.as_bytes().to_vec(),
    ));
    seeds.push((
        "with-comments".into(),
        b"# saved by rvsadm -S -n\n\nipvsadm -A -t 10.0.0.1:80 -s rr\n\
rvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 2   # web 1\n\
-a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1 -x 100 -y 10\n"
            .to_vec(),
    ));
    seeds.extend(
        files
            .iter()
            .map(|(n, t)| (n.clone(), t.clone().into_bytes())),
    );
    // Reloads: each file after the next one (a table that changes), and
    // one after itself with a dest edited.
    for w in files.windows(2) {
        seeds.push((
            format!("reload-{}-to-{}", w[0].0, w[1].0),
            format!("{}\0{}", w[0].1, w[1].1).into_bytes(),
        ));
    }
    let start = crate::worker_handle::RULES;
    let edited = start
        .replace("-r 172.16.0.4:8080 -m -w 2", "-r 172.16.0.4:8080 -m -w 5")
        .replace(
            "-A -t 192.168.1.11:80 -s wrr",
            "-A -t 192.168.1.11:80 -s wlc",
        );
    seeds.push((
        "reload-edited".into(),
        format!("{start}\0{edited}").into_bytes(),
    ));
    seeds
}

/// `rvsd_toml`'s seeds: the configurations the project ships and a few
/// that use every section.
pub fn rvsd_toml() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = [
        "conf/rvsd.toml",
        "docker/rvsd.toml",
        "docker/rvsd-virtio.toml",
    ]
    .iter()
    .map(|p| (p.replace(['/', '.'], "-"), read(p).into_bytes()))
    .collect();
    // With a group that exists everywhere, so that it loads.
    seeds.push((
        "crates-rvsd-debian-rvsd-toml".into(),
        crate::rvsd_toml::packaged().into_bytes(),
    ));
    seeds.push((
        "every-section".into(),
        br#"[dpdk]
main_lcore = 0
hugepages = "off"
memory_mb = 256
mbufs = 8191
mbuf_data_room = 2048
extra_eal_args = ["--log-level=8"]

[[port]]
name = "lan"
device = "net_af_packet0,iface=veth0,qpairs=2"
address = "192.168.1.213/24"
address6 = "fd00:1::1/64"
mtu = 1500

[[port]]
name = "servers"
device = "0000:03:00.0"
address = "172.16.0.1/24"
mtu = 9000

[[route]]
to = "0.0.0.0/0"
via = "192.168.1.1"

[[route]]
to = "10.9.0.0/16"
via = "172.16.0.254"

[workers]
lcores = [1, 2]
idle_empty_polls = 0

[connections]
capacity_per_worker = 65536
syn_recv_timeout_s = 30
tcp_timeout_s = 900
tcp_fin_timeout_s = 120
udp_timeout_s = 300

[neighbours]
expiry_s = 600
arp_retry_ms = 500
static = [{ address = "172.16.0.254", mac = "02:00:00:00:01:fe" }, { address = "fd00:1::2", mac = "02:00:00:00:00:50" }]

[control]
socket = "/run/rvs/rvsd.sock"
rules = "rules"

[stats]
enabled = false

[metrics]
listen = "127.0.0.1:9105"
"#
        .to_vec(),
    ));
    seeds.push((
        "minimal".into(),
        b"[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n".to_vec(),
    ));
    seeds
}

/// `keepalived_conf`'s seeds: the example configurations, and files that
/// include each other with definitions and configuration ids.
pub fn keepalived_conf() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = ["http-dr.conf", "https-persistent.conf", "nat-sorry.conf"]
        .iter()
        .map(|f| {
            (
                f.replace('.', "-"),
                read(&format!("conf/keepalived/{f}")).into_bytes(),
            )
        })
        .collect();
    let main = "\
$VIP=192.168.1.10
@fuzz $RS=192.168.1.220
@^fuzz $RS=192.168.1.221
global_defs {
    lvs_flush
}
include a.conf
includer b*.conf
virtual_server_group web {
    $VIP 80
    192.168.1.11 80
}
virtual_server group web {
    delay_loop 3
    lb_algo sh
    flag-1
    lb_kind TUN
    tun_type gue
    tun_port 6080
    persistence_timeout
    persistence_granularity 255.255.255.0
    protocol TCP
    alpha
    omega
    quorum 1
    real_server ${RS} 80 {
        weight 2
        uthreshold 100
        lthreshold 10
        inhibit_on_failure
        HTTP_GET {
            url {
                path /health
                status_code 200-299
                digest 9b3a0c85a887a256d6939da88aabd8cd
            }
            connect_timeout 2
            nb_get_retry 2
        }
        MISC_CHECK {
            misc_path \"/bin/true\"
            misc_timeout 3
            misc_dynamic
        }
    }
}
";
    let a = "\
virtual_server 192.168.1.12 53 {
    protocol UDP
    lb_algo rr
    lb_kind DR
    ops
    real_server 192.168.1.193 53 {
        DNS_CHECK {
            type A
            name example.org
        }
        UDP_CHECK {
            payload 0102
            require_reply
        }
    }
}
";
    let b = "\
virtual_server [fd00:99::10]:443 {
    lb_algo wlc
    lb_kind NAT
    protocol TCP
    sorry_server fd00:2::9 443
    real_server fd00:2::2 8443 {
        SSL_GET {
            url {
                path /
                status_code 200
            }
        }
    }
}
";
    seeds.push(("includes".into(), format!("{main}\0{a}\0{b}").into_bytes()));
    seeds
}

/// `control_proto`'s seeds: a request of every kind, one per line, with
/// and without a stand-in worker.
pub fn control_proto() -> Vec<Seed> {
    use rvs_control::proto::Request;
    let mut cmds = Vec::new();
    for line in crate::worker_handle::RULES.lines().chain([
        "-E -t 192.168.1.10:80 -s wlc",
        "-e -t 192.168.1.10:80 -r 192.168.1.220:80 -g -w 3",
        "-d -t 192.168.1.10:80 -r 192.168.1.220:80",
        "-D -t 192.168.1.10:8080",
        "-C",
    ]) {
        let w: Vec<String> = line.split_whitespace().map(String::from).collect();
        if let Ok(rvsadm::parse::Action::Apply(c)) = rvsadm::parse::parse(&w, "rvsadm") {
            cmds.push(c);
        }
    }
    let key = match &cmds[0] {
        rvs_ipvs::Command::AddService(s) => s.key,
        c => panic!("{c:?}"),
    };
    let mut reqs: Vec<Request> = cmds[..cmds.len() - 5]
        .iter()
        .cloned()
        .map(Request::Apply)
        .collect();
    reqs.extend([
        Request::List,
        Request::Counters,
        Request::SetTimeouts {
            tcp: 10,
            tcpfin: 0,
            udp: 5,
        },
        Request::GetTimeouts,
        Request::ListConns { limit: 10 },
        Request::Zero(Some(key)),
        Request::Zero(None),
        Request::Totals,
        Request::Status,
        Request::Reload,
    ]);
    reqs.extend(cmds[cmds.len() - 5..].iter().cloned().map(Request::Apply));
    reqs.push(Request::ApplyAll(cmds[..3].to_vec()));
    reqs.push(Request::Restore(cmds.clone()));
    let lines: String = reqs
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    let mut seeds = Vec::new();
    for setup in [0u8, 1] {
        let mut s = vec![setup];
        s.extend_from_slice(lines.as_bytes());
        s.extend_from_slice(b"{not json\n");
        seeds.push((format!("every-request-{setup}"), s));
    }
    seeds
}
