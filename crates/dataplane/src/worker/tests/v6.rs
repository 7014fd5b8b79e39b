//! IPv6: neighbour discovery, and DR, NAT and IPv6-in-IPv6, packet in →
//! exact packet out.

use std::net::Ipv6Addr;

use super::*;
use rvs_ipvs::{TunCsum, TunKind, TunSpec};
use rvs_packet::icmpv6::{self, Icmpv6Packet};
use rvs_packet::ipv6::{next_header, Ipv6Packet};

const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const DIRECTOR2_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd2]);

fn a(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn worker6(fwd: FwdMethod, rs_port: u16) -> Worker {
    let mut w = worker();
    w.cfg.ports[0].addr6 = Some((a("fd00:1::1"), 64));
    w.cfg.ports.push(PortInfo {
        mac: DIRECTOR2_MAC,
        addr: Ipv4Addr::new(172, 16, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        addr6: Some((a("fd00:2::1"), 64)),
        kernel: false,
        vip_arp: VipArp::Always,
    });
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(a("fd00:99::10")),
        port: 80,
    };
    let mut control = Director::new();
    for c in [
        Command::AddService(ServiceSpec {
            key,
            netmask: rvs_ipvs::PersistMask::V6Prefix(128),
            ..rr_spec(Protocol::Tcp, 80)
        }),
        Command::AddDest(
            key,
            DestSpec {
                addr: IpAddr::V6(a("fd00:2::2")),
                port: rs_port,
                fwd,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            },
        ),
    ] {
        let ch = control.apply(&c).unwrap();
        w.apply(&WorkerMsg::Change(ch), 0);
    }
    // Worker 0 solicited the new server's address.
    assert_eq!(w.generated.len(), 1);
    let (port, ns) = &w.generated[0];
    assert_eq!(*port, 1);
    assert_eq!(
        EthernetFrame::new_checked(&ns[..]).unwrap().dst(),
        MacAddr([0x33, 0x33, 0xff, 0, 0, 2])
    );
    w.generated.clear();
    w.neigh.learn(a("fd00:2::2"), SERVER_MAC, 0);
    w.neigh.learn(a("fd00:1::2"), CLIENT_MAC, 0);
    w.neigh_reader.refresh();
    w
}

fn frame6(
    macs: (MacAddr, MacAddr),
    src: Ipv6Addr,
    dst: Ipv6Addr,
    nh: u8,
    l4: &[u8],
    hops: u8,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + l4.len()];
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst(macs.1);
        e.set_src(macs.0);
        e.set_ethertype(EtherType::Ipv6);
    }
    f[54..].copy_from_slice(l4);
    let mut ip = Ipv6Packet::emit(&mut f[14..], src, dst, nh, l4.len() as u16, hops, 0).unwrap();
    match nh {
        next_header::TCP => TcpSegment::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum_v6(src, dst),
        next_header::ICMPV6 => Icmpv6Packet::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum(src, dst),
        _ => {}
    }
    f
}

fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[20..].copy_from_slice(payload);
    t
}

fn client_syn(payload: &[u8]) -> Vec<u8> {
    frame6(
        (CLIENT_MAC, DIRECTOR_MAC),
        a("fd00:1::2"),
        a("fd00:99::10"),
        next_header::TCP,
        &tcp(40000, 80, SYN, payload),
        64,
    )
}

#[test]
fn answers_neighbour_solicitations_for_vip_and_own_address() {
    let mut w = worker6(FwdMethod::Route, 80);
    for target in ["fd00:99::10", "fd00:1::1"] {
        let t = a(target);
        let group = icmpv6::solicited_node(t);
        let mut ns = vec![0u8; icmpv6::ND_LEN];
        icmpv6::emit_nd(&mut ns, true, t, CLIENT_MAC, a("fd00:1::2"), group).unwrap();
        let mut f = frame6(
            (CLIENT_MAC, icmpv6::multicast_mac(group)),
            a("fd00:1::2"),
            group,
            next_header::ICMPV6,
            &ns,
            255,
        );
        assert_eq!(w.handle(0, &mut f, 1), Verdict::Consumed, "{target}");
        let (port, na) = w.generated.pop().unwrap();
        assert_eq!(port, 0);
        let eth = EthernetFrame::new_checked(&na[..]).unwrap();
        assert_eq!((eth.src(), eth.dst()), (DIRECTOR_MAC, CLIENT_MAC));
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit()),
            (t, a("fd00:1::2"), 255)
        );
        let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum(ip.src(), ip.dst()));
        assert_eq!(m.msg_type(), icmpv6::kind::NEIGHBOR_ADVERT);
        assert_eq!(
            (m.nd_target(), m.nd_lladdr()),
            (Some(t), Some(DIRECTOR_MAC))
        );
    }
    // Not ours: ignored, and it teaches nothing (Linux's ndisc_recv_ns
    // drops it before looking at the asker).
    let mut ns = vec![0u8; icmpv6::ND_LEN];
    let other = a("fd00:1::77");
    icmpv6::emit_nd(
        &mut ns,
        true,
        other,
        CLIENT_MAC,
        a("fd00:1::5"),
        icmpv6::solicited_node(other),
    )
    .unwrap();
    let mut f = frame6(
        (CLIENT_MAC, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x77])),
        a("fd00:1::5"),
        icmpv6::solicited_node(other),
        next_header::ICMPV6,
        &ns,
        255,
    );
    assert_eq!(
        w.handle(0, &mut f, 1),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
    assert_eq!(
        w.neigh.lookup(a("fd00:1::5"), 1),
        crate::neighbour::Neighbour::Missing
    );
    assert_eq!(
        w.neigh.lookup(a("fd00:1::2"), 1),
        crate::neighbour::Neighbour::Reachable(CLIENT_MAC),
        "a known asker at the same MAC stays as it was"
    );
}

#[test]
fn dr6_rewrites_only_the_macs() {
    let mut w = worker6(FwdMethod::Route, 80);
    let orig = client_syn(b"");
    let mut f = orig.clone();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    let mut want = orig;
    want[0..6].copy_from_slice(&SERVER_MAC.0);
    want[6..12].copy_from_slice(&DIRECTOR2_MAC.0);
    assert_eq!(f, want);
}

#[test]
fn nat6_both_directions_byte_exact() {
    let mut w = worker6(FwdMethod::Masq, 8080);
    let mut f = client_syn(b"");
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    let want = frame6(
        (DIRECTOR2_MAC, SERVER_MAC),
        a("fd00:1::2"),
        a("fd00:2::2"),
        next_header::TCP,
        &tcp(40000, 8080, SYN, b""),
        64,
    );
    assert_eq!(f, want);
    let mut reply = frame6(
        (SERVER_MAC, DIRECTOR2_MAC),
        a("fd00:2::2"),
        a("fd00:1::2"),
        next_header::TCP,
        &tcp(8080, 40000, SYN | ACK, b""),
        64,
    );
    assert_eq!(w.handle(1, &mut reply, 2), Verdict::Tx(0));
    let want = frame6(
        (DIRECTOR_MAC, CLIENT_MAC),
        a("fd00:99::10"),
        a("fd00:1::2"),
        next_header::TCP,
        &tcp(80, 40000, SYN | ACK, b""),
        63,
    );
    assert_eq!(reply, want);
}

#[test]
fn ip6ip6_tunnel_and_packet_too_big() {
    let tun = FwdMethod::Tunnel(TunSpec {
        kind: TunKind::Ipip,
        port: 0,
        csum: TunCsum::None,
    });
    let mut w = worker6(tun, 80);
    let orig = client_syn(b"data");
    let mut f = orig.clone();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    let outer = Ipv6Packet::new_checked(&f[14..]).unwrap();
    assert_eq!((outer.src(), outer.dst()), (a("fd00:2::1"), a("fd00:2::2")));
    assert_eq!(outer.next_header(), next_header::IPV6);
    assert_eq!(outer.payload(), &orig[14..]);
    // 1500 bytes plus 40 do not fit: packet-too-big with MTU 1460.
    let mut big = client_syn(&[7u8; 1440]);
    assert_eq!(big.len(), 14 + 1500);
    assert_eq!(w.handle(0, &mut big, 2), Verdict::Drop(DropReason::TooBig));
    let (port, ptb) = w.generated.pop().unwrap();
    assert_eq!(port, 0);
    let ip = Ipv6Packet::new_checked(&ptb[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (a("fd00:99::10"), a("fd00:1::2")));
    let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum(ip.src(), ip.dst()));
    assert_eq!(m.msg_type(), icmpv6::kind::PACKET_TOO_BIG);
    assert_eq!(&ip.payload()[4..8], &1460u32.to_be_bytes());
    assert_eq!(
        ip.total_len(),
        1280,
        "quotes as much as fits the minimum MTU"
    );
}

#[test]
fn malformed_ipv6_is_dropped_by_reason() {
    let mut w = worker6(FwdMethod::Route, 80);
    let syn = client_syn(b"");
    let mut short = syn[..50].to_vec();
    assert_eq!(
        w.handle(0, &mut short, 1),
        Verdict::Drop(DropReason::TruncatedIpv6)
    );
    let mut bad = syn.clone();
    bad[18..20].copy_from_slice(&2000u16.to_be_bytes()); // payload length past the frame
    assert_eq!(
        w.handle(0, &mut bad, 1),
        Verdict::Drop(DropReason::TruncatedIpv6)
    );
    let mut ext = syn.clone();
    ext[20] = 0; // hop-by-hop options header
    assert_eq!(
        w.handle(0, &mut ext, 1),
        Verdict::Drop(DropReason::Ipv6ExtHeaders)
    );
    let mut csum = frame6(
        (CLIENT_MAC, DIRECTOR_MAC),
        a("fd00:1::2"),
        a("fd00:99::10"),
        next_header::ICMPV6,
        &[128, 0, 0, 0, 0, 1, 0, 1],
        64,
    );
    csum[57] ^= 1;
    assert_eq!(
        w.handle(0, &mut csum, 1),
        Verdict::Drop(DropReason::BadIcmp)
    );
    // An echo request to the VIP is answered.
    let mut echo = frame6(
        (CLIENT_MAC, DIRECTOR_MAC),
        a("fd00:1::2"),
        a("fd00:99::10"),
        next_header::ICMPV6,
        &[128, 0, 0, 0, 0, 1, 0, 1],
        64,
    );
    assert_eq!(w.handle(0, &mut echo, 1), Verdict::Tx(0));
    let ip = Ipv6Packet::new_checked(&echo[14..]).unwrap();
    let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), icmpv6::kind::ECHO_REPLY);
    assert!(m.verify_checksum(ip.src(), ip.dst()));
}

/// An ICMPv6 error from a NAT server about a packet it got from us goes
/// back to the client as from the VIP, routed by the director: its hop
/// limit drops by one, as every packet the director routes; at 1 it is not
/// forwarded.
#[test]
fn nat6_icmp_error_from_the_server_is_routed_with_its_hop_limit() {
    let mut w = worker6(FwdMethod::Masq, 8080);
    let mut syn = client_syn(b"");
    assert_eq!(w.handle(0, &mut syn, 1), Verdict::Tx(1));
    // Destination unreachable, port unreachable, quoting the SYN as the
    // server got it.
    let error = |hops: u8| {
        let mut m = vec![1u8, 4, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&syn[14..14 + 48]);
        frame6(
            (SERVER_MAC, DIRECTOR2_MAC),
            a("fd00:2::2"),
            a("fd00:1::2"),
            next_header::ICMPV6,
            &m,
            hops,
        )
    };
    let mut err = error(64);
    assert_eq!(w.handle(1, &mut err, 2), Verdict::Tx(0));
    let ip = Ipv6Packet::new_checked(&err[14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (a("fd00:99::10"), a("fd00:1::2")));
    assert_eq!(ip.hop_limit(), 63);
    let m = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum(ip.src(), ip.dst()));
    assert_eq!(w.shared.counters.icmp_errors_forwarded.get(), 1);

    let mut last_hop = error(1);
    assert_eq!(
        w.handle(1, &mut last_hop, 3),
        Verdict::Drop(DropReason::TtlExceeded)
    );
    assert_eq!(w.shared.counters.icmp_errors_forwarded.get(), 1);
}

/// A neighbour advertisement from `mac` on port 1 (the servers' network)
/// saying `target` is at `mac`, with the solicited/override flags `so`
/// and hop limit `hops`, unicast to the director.
fn advert(target: Ipv6Addr, mac: MacAddr, so: (bool, bool), hops: u8) -> Vec<u8> {
    let mut na = vec![0u8; icmpv6::ND_LEN];
    icmpv6::emit_nd(&mut na, false, target, mac, target, a("fd00:2::1")).unwrap();
    na[4] = (so.0 as u8) << 6 | (so.1 as u8) << 5;
    frame6(
        (mac, DIRECTOR2_MAC),
        target,
        a("fd00:2::1"),
        next_header::ICMPV6,
        &na,
        hops,
    )
}

/// Where a new flow to the IPv6 DR service goes out to.
fn dr6_next_mac(w: &mut Worker, cport: u16, now_ms: u64) -> MacAddr {
    w.refresh_neighbours();
    let mut f = frame6(
        (CLIENT_MAC, DIRECTOR_MAC),
        a("fd00:1::2"),
        a("fd00:99::10"),
        next_header::TCP,
        &tcp(cport, 80, SYN, b""),
        64,
    );
    assert_eq!(w.handle(0, &mut f, now_ms), Verdict::Tx(1));
    dst_mac(&f)
}

const SPOOF_MAC: MacAddr = MacAddr([0x02, 0xba, 0xd0, 0, 0, 0x66]);

#[test]
fn unsolicited_advertisements_create_nothing_and_moves_need_the_override_flag() {
    let mut w = worker6(FwdMethod::Route, 80);
    let server = a("fd00:2::2");
    let stranger = a("fd00:2::77");
    for so in [(false, true), (true, true), (false, false)] {
        w.handle(1, &mut advert(stranger, SPOOF_MAC, so, 255), 10);
    }
    assert_eq!(w.neigh.entry(stranger), None);
    assert_eq!(w.shared.counters.neighbour_unsolicited.get(), 3);
    // The server's address at another MAC, without the override flag:
    // refused (the entry turns stale, to be asked again).
    w.handle(1, &mut advert(server, SPOOF_MAC, (true, false), 255), 5000);
    assert_eq!(w.shared.counters.neighbour_locked.get(), 1);
    assert_eq!(dr6_next_mac(&mut w, 41000, 5001), SERVER_MAC);
    // With it, Linux moves it at once (ND has no locktime).
    w.handle(1, &mut advert(server, SPOOF_MAC, (false, true), 255), 5002);
    assert_eq!(w.shared.counters.neighbour_moved.get(), 1);
    assert_eq!(dr6_next_mac(&mut w, 41001, 5003), SPOOF_MAC);
}

#[test]
fn solicited_only_and_static_neighbours_keep_a_servers_v6_address() {
    use crate::neighbour::{LearnPolicy, NeighbourConfig};
    let server = a("fd00:2::2");
    for static_entry in [false, true] {
        let mut w = worker6(FwdMethod::Route, 80);
        let policy = if static_entry {
            LearnPolicy::Linux
        } else {
            LearnPolicy::SolicitedOnly
        };
        w.neigh = Arc::new(NeighbourTable::with_config(NeighbourConfig {
            policy,
            ..NeighbourConfig::new(300_000)
        }));
        w.neigh_reader = w.neigh.reader();
        if static_entry {
            w.neigh.add_static(server, SERVER_MAC);
        } else {
            w.neigh.learn(server, SERVER_MAC, 0);
        }
        for (so, now) in [((true, true), 5000), ((false, true), 6000)] {
            w.handle(1, &mut advert(server, SPOOF_MAC, so, 255), now);
        }
        let c = &w.shared.counters;
        let refused = if static_entry {
            c.neighbour_static_kept.get()
        } else {
            c.neighbour_not_an_answer.get()
        };
        assert_eq!(refused, 2, "static: {static_entry}");
        assert_eq!(dr6_next_mac(&mut w, 41000, 6001), SERVER_MAC);
    }
}

#[test]
fn neighbour_discovery_from_beyond_the_link_is_dropped() {
    let mut w = worker6(FwdMethod::Route, 80);
    let server = a("fd00:2::2");
    // Hop limit 64: it was routed here, so it is not the neighbour's.
    assert_eq!(
        w.handle(1, &mut advert(server, SPOOF_MAC, (true, true), 64), 5000),
        Verdict::Drop(DropReason::BadNeighbourDiscovery)
    );
    assert_eq!(dr6_next_mac(&mut w, 41000, 5001), SERVER_MAC);
    assert_eq!(w.shared.counters.neighbour_moved.get(), 0);
}
