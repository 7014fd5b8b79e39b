//! NAT, tunnelling and ICMP, packet in → exact packet out. The director has
//! a client-side port (0) and a server-side port (1), as in the kernel's
//! selftest.

use super::*;
use rvs_ipvs::{TunCsum, TunKind, TunSpec};
use rvs_packet::checksum;

pub(super) const SERVER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
pub(super) const DIRECTOR2_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd2]);
pub(super) const RS_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
pub(super) const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 50);
pub(super) const VIP_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

pub(super) fn two_port_worker(fwd: FwdMethod, rs_port: u16) -> Worker {
    let mut w = worker();
    w.cfg.ports.push(PortInfo {
        mac: DIRECTOR2_MAC,
        addr: Ipv4Addr::new(172, 16, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        addr6: None,
        kernel: false,
        vip_arp: VipArp::Always,
    });
    let mut control = Director::new();
    let key = vip_key(Protocol::Tcp, 80);
    let ukey = vip_key(Protocol::Udp, 53);
    let d = |port| DestSpec {
        addr: IpAddr::V4(RS_IP),
        port,
        fwd,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    };
    for c in [
        Command::AddService(rr_spec(Protocol::Tcp, 80)),
        Command::AddDest(key, d(rs_port)),
        Command::AddService(rr_spec(Protocol::Udp, 53)),
        Command::AddDest(ukey, d(if rs_port == 80 { 53 } else { 5353 })),
    ] {
        let ch = control.apply(&c).unwrap();
        w.apply(&WorkerMsg::Change(ch), 0);
    }
    w.generated.clear();
    w.neigh.learn(RS_IP, SERVER_MAC, 0);
    w.neigh.learn(CLIENT_IP, CLIENT_MAC, 0);
    w.neigh_reader.refresh();
    w
}

/// Two workers of one director with the NAT services (real servers on
/// 8080), each owning its share of client endpoints.
pub(super) fn two_nat_workers() -> Vec<Worker> {
    (0..2)
        .map(|id| {
            let mut w = two_port_worker(FwdMethod::Masq, 8080);
            w.cfg.id = id;
            w.cfg.workers = 2;
            w
        })
        .collect()
}

/// Builds an Ethernet/IPv4 frame around `l4` with correct checksums.
pub(super) fn frame(
    macs: (MacAddr, MacAddr),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4: &[u8],
    ttl: u8,
    df: bool,
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst(macs.1);
        e.set_src(macs.0);
        e.set_ethertype(EtherType::Ipv4);
    }
    f[34..].copy_from_slice(l4);
    let total = (20 + l4.len()) as u16;
    Ipv4Packet::emit(&mut f[14..], src, dst, proto, total, ttl, 77, df).unwrap();
    let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
    match proto {
        ipv4::protocol::TCP => TcpSegment::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum_v4(src, dst),
        ipv4::protocol::UDP => UdpDatagram::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum_v4(src, dst),
        ipv4::protocol::ICMP => IcmpPacket::new_checked(ip.payload_mut())
            .unwrap()
            .fill_checksum(),
        _ => {}
    }
    f
}

pub(super) fn tcp_l4(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[20..].copy_from_slice(payload);
    t
}

pub(super) fn udp_l4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    u
}

pub(super) fn client_syn(payload: &[u8]) -> Vec<u8> {
    frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::TCP,
        &tcp_l4(40000, 80, SYN, payload),
        64,
        true,
    )
}

#[test]
fn nat_inbound_rewrites_destination_with_port_mapping() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let mut f = client_syn(b"");
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    // Expected: built from scratch, checksums computed in full.
    let want = frame(
        (DIRECTOR2_MAC, SERVER_MAC),
        CLIENT_IP,
        RS_IP,
        ipv4::protocol::TCP,
        &tcp_l4(40000, 8080, SYN, b""),
        64,
        true,
    );
    assert_eq!(f, want, "incremental checksums equal recomputed ones");
}

#[test]
fn nat_reply_gets_the_vip_back_and_counts_states() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    w.handle(0, &mut client_syn(b""), 1);
    let mut reply = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::TCP,
        &tcp_l4(8080, 40000, SYN | ACK, b""),
        64,
        true,
    );
    assert_eq!(w.handle(1, &mut reply, 2), Verdict::Tx(0));
    let want = frame(
        (DIRECTOR_MAC, CLIENT_MAC),
        VIP_IP,
        CLIENT_IP,
        ipv4::protocol::TCP,
        &tcp_l4(80, 40000, SYN | ACK, b""),
        63,
        true,
    );
    assert_eq!(reply, want);
    // NAT sees both directions: INPUT/OUTPUT tables, SYN_RECV after the
    // server's SYN-ACK, ESTABLISHED after the client's ACK.
    let c = w.conns.iter().next().unwrap();
    assert_eq!(c.state, TcpState::SynRecv);
    let mut ack = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::TCP,
        &tcp_l4(40000, 80, ACK, b"GET /"),
        64,
        true,
    );
    assert_eq!(w.handle(0, &mut ack, 3), Verdict::Tx(1));
    let c = w.conns.iter().next().unwrap();
    assert_eq!(c.state, TcpState::Established);
    assert_eq!(c.dest().active(), 1);
}

#[test]
fn nat_udp_with_checksum_and_without() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let mut f = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(50000, 53, b"query"),
        64,
        false,
    );
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    let want = frame(
        (DIRECTOR2_MAC, SERVER_MAC),
        CLIENT_IP,
        RS_IP,
        ipv4::protocol::UDP,
        &udp_l4(50000, 5353, b"query"),
        64,
        false,
    );
    assert_eq!(f, want);
    // A datagram without checksum keeps none.
    let mut f = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(50001, 53, b"query"),
        64,
        false,
    );
    f[40..42].copy_from_slice(&[0, 0]);
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    assert_eq!(&f[40..42], &[0, 0]);
}

fn tunnel(kind: TunKind, csum: TunCsum) -> FwdMethod {
    FwdMethod::Tunnel(TunSpec {
        kind,
        port: if kind == TunKind::Gue { 6080 } else { 0 },
        csum,
    })
}

/// The outer header, and the inner packet after `hdr` bytes of tunnel.
fn check_outer(f: &[u8], proto: u8, hdr: usize, inner: &[u8]) {
    let eth = EthernetFrame::new_checked(f).unwrap();
    assert_eq!((eth.src(), eth.dst()), (DIRECTOR2_MAC, SERVER_MAC));
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        ip.src(),
        Ipv4Addr::new(172, 16, 0, 1),
        "outer source: the director"
    );
    assert_eq!(ip.dst(), RS_IP);
    assert_eq!(ip.protocol(), proto);
    assert!(ip.dont_frag(), "DF copied from the inner packet");
    assert_eq!(ip.ttl(), 64);
    assert_eq!(ip.total_len() as usize, hdr + inner.len());
    assert_eq!(&f[14 + hdr..], inner, "inner packet unchanged");
}

#[test]
fn tun_ipip_gue_gre() {
    for (kind, csum, proto, hdr) in [
        (TunKind::Ipip, TunCsum::None, ipv4::protocol::IPIP, 20),
        (TunKind::Gue, TunCsum::None, ipv4::protocol::UDP, 32),
        (TunKind::Gue, TunCsum::Csum, ipv4::protocol::UDP, 32),
        // Remote checksum offload: what the kernel sends for a packet whose
        // own checksum is complete (every forwarded one), a checksummed
        // UDP header and no remcsum option.
        (TunKind::Gue, TunCsum::RemCsum, ipv4::protocol::UDP, 32),
        (TunKind::Gre, TunCsum::None, ipv4::protocol::GRE, 24),
        (TunKind::Gre, TunCsum::Csum, ipv4::protocol::GRE, 28),
    ] {
        let mut w = two_port_worker(tunnel(kind, csum), 80);
        let orig = client_syn(b"hello");
        let mut f = orig.clone();
        assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1), "{kind:?}");
        check_outer(&f, proto, hdr, &orig[14..]);
        let l4 = &f[34..];
        match kind {
            TunKind::Gue => {
                assert_eq!(&l4[2..4], &6080u16.to_be_bytes());
                assert_eq!(
                    u16::from_be_bytes([l4[4], l4[5]]) as usize,
                    12 + orig.len() - 14
                );
                assert_eq!(&l4[8..12], &[0, 4, 0, 0], "GUE v0 carrying IPv4");
                let u = UdpDatagram::new_checked(l4).unwrap();
                assert_eq!(u.checksum() != 0, csum != TunCsum::None, "{csum:?}");
                assert!(u.verify_checksum_v4(Ipv4Addr::new(172, 16, 0, 1), RS_IP));
            }
            TunKind::Gre => {
                assert_eq!(&l4[2..4], &[0x08, 0x00]);
                if csum == TunCsum::Csum {
                    assert_eq!(l4[0], 0x80);
                    assert_eq!(checksum::sum(l4), 0xffff, "GRE checksum");
                }
            }
            TunKind::Ipip => {}
        }
    }
}

#[test]
fn too_big_for_the_tunnel_gets_frag_needed() {
    let mut w = two_port_worker(tunnel(TunKind::Ipip, TunCsum::None), 80);
    // 1500-byte packet with DF: no room for 20 more bytes.
    let mut f = client_syn(&[0x55; 1460]);
    assert_eq!(f.len(), 14 + 1500);
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Drop(DropReason::TooBig));
    assert_eq!(w.generated.len(), 1);
    let (port, g) = &w.generated[0];
    assert_eq!(*port, 0, "back out of the client's port");
    let eth = EthernetFrame::new_checked(&g[..]).unwrap();
    assert_eq!(eth.dst(), CLIENT_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src(), ip.dst()), (VIP_IP, CLIENT_IP));
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum());
    assert_eq!((m.msg_type(), m.code()), (3, 4));
    assert_eq!(m.rest_of_header(), [0, 0, 0x05, 0xc8], "next-hop MTU 1480");
    assert_eq!(
        &m.data()[..28],
        &client_syn(&[0x55; 1460])[14..42],
        "quotes the packet"
    );
    assert_eq!(ip.total_len(), 576, "RFC 1812 size");
    // Without DF the outer packet goes in two fragments (tunnel header and
    // most of the packet, then the rest), no ICMP error.
    let mut f = client_syn(&[0x55; 1460]);
    f[20] &= !0x40;
    Ipv4Packet::new_checked(&mut f[14..])
        .unwrap()
        .fill_checksum();
    let inner = f[14..].to_vec();
    w.generated.clear();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Consumed);
    assert!(w.generated.is_empty());
    assert_eq!(w.sent.len(), 2);
    let mut outer = Vec::new();
    for (i, (port, g)) in w.sent.iter().enumerate() {
        assert_eq!(*port, 1);
        assert!(g.len() <= 14 + 1500);
        let ip = Ipv4Packet::new_checked(&g[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.protocol(), ip.dst()), (ipv4::protocol::IPIP, RS_IP));
        assert_eq!(ip.more_frags(), i == 0);
        assert_eq!(ip.frag_offset() as usize, outer.len());
        outer.extend_from_slice(ip.payload());
    }
    assert_eq!(outer, inner, "the inner packet, whole, across the two");
    assert_eq!(w.shared.counters.fragments_made.get(), 2);
}

/// A link whose MTU is below the tunnel's own overhead (rvsd's configuration
/// refuses one; the dataplane must not underflow on one all the same).
#[test]
fn mtu_below_the_tunnel_overhead_drops_without_underflow() {
    for kind in [TunKind::Ipip, TunKind::Gue, TunKind::Gre] {
        let mut w = two_port_worker(tunnel(kind, TunCsum::None), 80);
        w.cfg.ports[1].mtu = 16;
        let mut f = client_syn(b"");
        assert_eq!(w.handle(0, &mut f, 1), Verdict::Drop(DropReason::TooBig));
        let (_, g) = w.generated.pop().expect("frag-needed sent");
        let ip = Ipv4Packet::new_checked(&g[14..]).unwrap();
        let m = IcmpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(m.rest_of_header(), [0, 0, 0, 0], "next-hop MTU 0");
    }
}

/// An ICMP error from `src` to `dst` quoting the first 28 bytes of `quoted`.
pub(super) fn icmp_error(
    macs: (MacAddr, MacAddr),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    quoted: &[u8],
) -> Vec<u8> {
    let mut m = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&quoted[..28]);
    frame(macs, src, dst, ipv4::protocol::ICMP, &m, 64, false)
}

#[test]
fn nat_port_unreachable_from_server_reaches_client_as_from_vip() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let mut f = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(50000, 53, b"query"),
        64,
        false,
    );
    w.handle(0, &mut f, 1);
    // The server answers the translated datagram with port unreachable.
    let mut err = icmp_error((SERVER_MAC, DIRECTOR2_MAC), RS_IP, CLIENT_IP, &f[14..]);
    assert_eq!(w.handle(1, &mut err, 2), Verdict::Tx(0));
    let want_quote = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(50000, 53, b"query"),
        64,
        false,
    );
    let ip = Ipv4Packet::new_checked(&err[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src(), ip.dst(), ip.ttl()), (VIP_IP, CLIENT_IP, 63));
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum());
    // The quoted header is the client's own packet again (VIP:53), with a
    // valid header checksum; the UDP checksum inside is the server's.
    assert_eq!(&m.data()[..24], &want_quote[14..38]);
    assert_eq!(checksum::sum(&m.data()[..20]), 0xffff);
    assert_eq!(w.shared.counters.icmp_errors_forwarded.get(), 1);
}

#[test]
fn client_side_error_about_a_nat_reply_goes_to_the_server() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    w.handle(0, &mut client_syn(b""), 1);
    // The client says "fragmentation needed" about the VIP's SYN-ACK.
    let synack = frame(
        (DIRECTOR_MAC, CLIENT_MAC),
        VIP_IP,
        CLIENT_IP,
        ipv4::protocol::TCP,
        &tcp_l4(80, 40000, SYN | ACK, b""),
        63,
        true,
    );
    let mut err = icmp_error((CLIENT_MAC, DIRECTOR_MAC), CLIENT_IP, VIP_IP, &synack[14..]);
    assert_eq!(w.handle(0, &mut err, 2), Verdict::Tx(1));
    let ip = Ipv4Packet::new_checked(&err[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.dst(), RS_IP);
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert!(m.verify_checksum());
    let q = &m.data()[..28];
    assert_eq!(&q[12..16], &RS_IP.octets(), "quoted source is the server's");
    assert_eq!(&q[20..22], &8080u16.to_be_bytes());
    assert_eq!(checksum::sum(&q[..20]), 0xffff);
}

#[test]
fn unrelated_and_malformed_icmp_errors_are_dropped() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let stranger = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        Ipv4Addr::new(10, 9, 9, 9),
        Ipv4Addr::new(10, 9, 9, 8),
        ipv4::protocol::UDP,
        &udp_l4(1, 2, b"x"),
        64,
        false,
    );
    let mut err = icmp_error(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        &stranger[14..],
    );
    assert_eq!(
        w.handle(1, &mut err, 1),
        Verdict::Drop(DropReason::IcmpUnrelated)
    );
    // The quote cut inside the transport header.
    let mut short = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    short.extend_from_slice(&stranger[14..14 + 24]);
    let mut f = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::ICMP,
        &short,
        64,
        false,
    );
    assert_eq!(w.handle(1, &mut f, 1), Verdict::Drop(DropReason::BadIcmp));
    // A quoted header that is not IPv4.
    let mut bad = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    let mut q = stranger[14..42].to_vec();
    q[0] = 0x65;
    bad.extend_from_slice(&q);
    let mut f = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::ICMP,
        &bad,
        64,
        false,
    );
    assert_eq!(w.handle(1, &mut f, 1), Verdict::Drop(DropReason::BadIcmp));
    // A quoted header with IHL below 5.
    let mut q = stranger[14..42].to_vec();
    q[0] = 0x44;
    let mut bad = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(&q);
    let mut f = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::ICMP,
        &bad,
        64,
        false,
    );
    assert_eq!(w.handle(1, &mut f, 1), Verdict::Drop(DropReason::BadIcmp));
    // A corrupt ICMP checksum.
    let mut f = icmp_error(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        &stranger[14..],
    );
    f[36] ^= 0xff;
    assert_eq!(w.handle(1, &mut f, 1), Verdict::Drop(DropReason::BadIcmp));
}

#[test]
fn routes_reach_servers_behind_a_gateway() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    w.cfg.routes.push(Route {
        dst: Ipv4Addr::new(10, 20, 0, 0),
        prefix_len: 16,
        via: Ipv4Addr::new(172, 16, 0, 254),
    });
    assert_eq!(
        w.route(Ipv4Addr::new(10, 20, 3, 4)),
        Some((1, Ipv4Addr::new(172, 16, 0, 254)))
    );
    assert_eq!(w.route(RS_IP), Some((1, RS_IP)), "connected first");
    assert_eq!(w.route(Ipv4Addr::new(8, 8, 8, 8)), None);
    w.cfg.routes.push(Route {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
        via: Ipv4Addr::new(192, 168, 1, 1),
    });
    assert_eq!(
        w.route(Ipv4Addr::new(8, 8, 8, 8)),
        Some((0, Ipv4Addr::new(192, 168, 1, 1)))
    );
    assert_eq!(
        w.route(Ipv4Addr::new(10, 20, 3, 4)),
        Some((1, Ipv4Addr::new(172, 16, 0, 254))),
        "longest prefix wins"
    );
}

/// The transmitters' next-hop memo (`xmit::Hop`) keeps what a route gave
/// NAT for NAT: DR, which sends only on a port's own network, does not
/// take it for an address behind a gateway.
#[test]
fn a_hop_through_a_gateway_is_not_taken_for_direct_routing() {
    use super::super::conntrack::Target;
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let gateway = Ipv4Addr::new(172, 16, 0, 254);
    const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xfe]);
    w.cfg.routes.push(Route {
        dst: Ipv4Addr::new(10, 20, 0, 0),
        prefix_len: 16,
        via: gateway,
    });
    w.neigh.learn(gateway, GATEWAY_MAC, 0);
    w.refresh_neighbours();
    let far = Ipv4Addr::new(10, 20, 3, 4);
    let target = |fwd| Target {
        daddr: IpAddr::V4(far),
        dport: 8080,
        fwd,
    };
    // Twice: the second from the memo.
    for now_ms in [1, 2] {
        let mut f = client_syn(b"");
        let sent = w.xmit(0, &mut f, false, target(FwdMethod::Masq), now_ms);
        assert_eq!(sent, Ok(Verdict::Tx(1)));
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap().dst(),
            GATEWAY_MAC
        );
        assert_eq!(Ipv4Packet::new_checked(&f[14..]).unwrap().dst(), far);
    }
    let mut f = client_syn(b"");
    let sent = w.xmit(0, &mut f, false, target(FwdMethod::Route), 3);
    assert_eq!(sent, Err(DropReason::NoRoute));
}

/// Two workers: packets of one connection, whichever worker receives them,
/// are handed to the worker its client endpoint hashes to; a NAT reply
/// arriving at the other worker is translated by the owner.
#[test]
fn connections_are_owned_by_client_endpoint() {
    let mut ws = two_nat_workers();
    let owner = ws[0].cfg.sharding.owner_of(IpAddr::V4(CLIENT_IP), 40000, 2);
    let other = 1 - owner;
    let mut syn = client_syn(b"");
    assert_eq!(ws[other].handle(0, &mut syn, 1), Verdict::Redirect(owner));
    assert_eq!(ws[owner].handle(0, &mut syn, 1), Verdict::Tx(1));
    let mut reply = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::TCP,
        &tcp_l4(8080, 40000, SYN | ACK, b""),
        64,
        true,
    );
    assert_eq!(ws[other].handle(1, &mut reply, 2), Verdict::Redirect(owner));
    assert_eq!(ws[owner].handle(1, &mut reply, 2), Verdict::Tx(0));
    assert_eq!(Ipv4Packet::new_checked(&reply[14..]).unwrap().src(), VIP_IP);
    assert_eq!(ws[other].conns.len(), 0);
    assert_eq!(ws[owner].conns.len(), 1);
    assert_eq!(ws[other].shared.counters.redirected.get(), 2);
}

/// The owner of a client endpoint depends on the key: the same key gives
/// the same answer (every worker, pktgen's pre-sharding), another key
/// another spread, so a client cannot work out from rvsd's source which
/// endpoints share a worker. Either way the spread is even.
#[test]
fn the_worker_choice_is_keyed() {
    let endpoints: Vec<(IpAddr, u16)> = (0..4000u32)
        .map(|i| {
            (
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i / 4)),
                1024 + i as u16,
            )
        })
        .collect();
    let owners = |s: FlowSharding| -> Vec<usize> {
        endpoints
            .iter()
            .map(|(a, p)| s.owner_of(*a, *p, 4))
            .collect()
    };
    let a = owners(FlowSharding::with_seed(1));
    assert_eq!(a, owners(FlowSharding::with_seed(1)), "deterministic");
    for w in 0..4 {
        let n = a.iter().filter(|&&o| o == w).count();
        assert!((800..1200).contains(&n), "worker {w}: {n} of 4000");
    }
    for other in [FlowSharding::with_seed(2), FlowSharding::random().unwrap()] {
        let b = owners(other);
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        // Unrelated keys agree on about a quarter of the endpoints.
        assert!((2500..3500).contains(&moved), "{moved} of 4000 moved");
    }
    assert_ne!(
        FlowSharding::random().unwrap(),
        FlowSharding::random().unwrap()
    );
    assert_eq!(FlowSharding::with_seed(9).owner_of(endpoints[0].0, 1, 1), 0);
}

/// A packet handed over to its owner was received once, from a queue: it
/// counts in `rx_packets` there, and in `redirected_in` at the owner.
#[test]
fn handed_over_packets_are_received_once() {
    let mut ws = two_nat_workers();
    let owner = ws[0].cfg.sharding.owner_of(IpAddr::V4(CLIENT_IP), 40000, 2);
    let other = 1 - owner;
    let mut syn = client_syn(b"");
    assert_eq!(ws[other].handle(0, &mut syn, 1), Verdict::Redirect(owner));
    assert_eq!(
        ws[owner].handle_handed_over(0, &mut syn, 1, None),
        Verdict::Tx(1)
    );
    let rx: u64 = ws.iter().map(|w| w.shared.counters.rx_packets.get()).sum();
    assert_eq!(rx, 1, "one packet came off the wire");
    assert_eq!(ws[other].shared.counters.rx_packets.get(), 1);
    assert_eq!(ws[owner].shared.counters.redirected_in.get(), 1);
    assert_eq!(ws[other].shared.counters.redirected.get(), 1);
}

/// `icmp_errors_forwarded` counts errors that went on, not those dropped on
/// the way out: here the client is on no network and no route reaches it.
#[test]
fn icmp_errors_that_cannot_go_on_are_not_counted_forwarded() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let far = Ipv4Addr::new(203, 0, 113, 9);
    let mut f = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        far,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(50000, 53, b"query"),
        64,
        false,
    );
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    let mut err = icmp_error((SERVER_MAC, DIRECTOR2_MAC), RS_IP, far, &f[14..]);
    assert_eq!(w.handle(1, &mut err, 2), Verdict::Drop(DropReason::NoRoute));
    assert_eq!(w.shared.counters.icmp_errors_forwarded.get(), 0);
    assert_eq!(w.shared.counters.drops(DropReason::NoRoute), 1);
}

/// A NAT server's ICMP error on its last hop is not forwarded (the TTL
/// would wrap), as a reply on its last hop is not.
#[test]
fn nat_icmp_error_on_its_last_hop_is_dropped() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let mut f = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(50000, 53, b"query"),
        64,
        false,
    );
    w.handle(0, &mut f, 1);
    let mut m = vec![3u8, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&f[14..14 + 28]);
    let mut err = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::ICMP,
        &m,
        1,
        false,
    );
    assert_eq!(
        w.handle(1, &mut err, 2),
        Verdict::Drop(DropReason::TtlExceeded)
    );
    assert_eq!(w.shared.counters.icmp_errors_forwarded.get(), 0);
}
