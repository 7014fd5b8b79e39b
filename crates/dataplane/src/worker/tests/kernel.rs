//! The exception path: which frames go to the port's kernel interface, one
//! rule each, with the port's kernel interface on and off. The walkthrough's
//! director: 192.168.1.213/24 (and fd00:1::1/64), VIP 192.168.1.10 with a
//! TCP service on port 80.

use super::forwarding::{frame, tcp_l4, CLIENT_IP, VIP_IP};
use super::*;
use rvs_packet::icmpv6::{self, Icmpv6Packet};
use rvs_packet::ipv6::{next_header, Ipv6Packet};

const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 213);

/// The walkthrough with the kernel interface on (or off) and an IPv6
/// address on the port.
fn with_kernel(on: bool) -> Worker {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.cfg.ports[0].kernel = on;
    w.cfg.ports[0].addr6 = Some(("fd00:1::1".parse().unwrap(), 64));
    w
}

fn verdicts(f: &[u8]) -> (Verdict, Verdict) {
    let on = with_kernel(true).handle(0, &mut f.to_vec(), 1);
    let off = with_kernel(false).handle(0, &mut f.to_vec(), 1);
    (on, off)
}

fn to_director(proto: u8, l4: &[u8]) -> Vec<u8> {
    frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        DIRECTOR_IP,
        proto,
        l4,
        64,
        true,
    )
}

fn udp_l4(sport: u16, dport: u16) -> Vec<u8> {
    let mut u = vec![0u8; 12];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    u
}

fn icmp_l4(kind: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0, 0, 7, 0, 1];
    m.extend_from_slice(rest);
    m
}

#[test]
fn tcp_and_udp_to_the_director_go_to_the_kernel() {
    // SSH to the director: the kernel's, or a counted drop without it.
    let ssh = to_director(ipv4::protocol::TCP, &tcp_l4(40000, 22, SYN, b""));
    assert_eq!(
        verdicts(&ssh),
        (Verdict::ToKernel, Verdict::Drop(DropReason::ToDirector))
    );
    // A reply to the kernel's own health check (from a real server).
    let reply = frame(
        (RS1_MAC, DIRECTOR_MAC),
        RS1.parse().unwrap(),
        DIRECTOR_IP,
        ipv4::protocol::TCP,
        &tcp_l4(80, 51000, SYN | ACK, b""),
        64,
        true,
    );
    assert_eq!(verdicts(&reply).0, Verdict::ToKernel);
    let bgp_udp = to_director(ipv4::protocol::UDP, &udp_l4(3784, 3784));
    assert_eq!(verdicts(&bgp_udp).0, Verdict::ToKernel);
    // Other protocols (GRE, OSPF, ...) and fragments are the kernel's too.
    let gre = to_director(47, &[0, 0, 0x08, 0x00]);
    assert_eq!(
        verdicts(&gre),
        (Verdict::ToKernel, Verdict::Drop(DropReason::ToDirector))
    );
    let mut frag = ssh.clone();
    frag[14 + 6] = 0x20; // more fragments, DF off
    Ipv4Packet::new_checked(&mut frag[14..])
        .unwrap()
        .fill_checksum();
    assert_eq!(
        verdicts(&frag),
        (Verdict::ToKernel, Verdict::Drop(DropReason::ToDirector))
    );
    // But never a bad header.
    let mut bad = ssh.clone();
    bad[14 + 10] ^= 0xff;
    assert_eq!(
        verdicts(&bad),
        (
            Verdict::Drop(DropReason::BadIpChecksum),
            Verdict::Drop(DropReason::BadIpChecksum)
        )
    );
}

#[test]
fn vip_traffic_never_goes_to_the_kernel() {
    // The service's port: forwarded, as ever.
    let syn = fixtures::TCP_SYN.to_vec();
    assert_eq!(verdicts(&syn), (Verdict::Tx(0), Verdict::Tx(0)));
    // A VIP port with no service, another protocol, echo: rvsd's alone.
    let no_service = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::TCP,
        &tcp_l4(40000, 22, SYN, b""),
        64,
        true,
    );
    let d = Verdict::Drop(DropReason::NoService);
    assert_eq!(verdicts(&no_service), (d, d));
    let gre = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        47,
        &[0, 0, 8, 0],
        64,
        true,
    );
    assert_eq!(verdicts(&gre), (d, d));
    let echo = fixtures::ICMP_ECHO.to_vec();
    assert_eq!(verdicts(&echo), (Verdict::Tx(0), Verdict::Tx(0)));
    // A VIP packet under a broadcast MAC is not a host's broadcast.
    let mut bcast = syn.clone();
    bcast[..6].copy_from_slice(&[0xff; 6]);
    let d = Verdict::Drop(DropReason::NotOurMac);
    assert_eq!(verdicts(&bcast), (d, d));
    // Nor is traffic for another host.
    let other = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        Ipv4Addr::new(192, 168, 1, 99),
        ipv4::protocol::TCP,
        &tcp_l4(40000, 22, SYN, b""),
        64,
        true,
    );
    let d = Verdict::Drop(DropReason::NotForUs);
    assert_eq!(verdicts(&other), (d, d));
}

#[test]
fn a_service_on_the_director_address_keeps_its_port() {
    let mut w = with_kernel(true);
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(DIRECTOR_IP),
        port: 443,
    };
    let mut control = Director::new();
    for c in [
        Command::AddService(ServiceSpec {
            key,
            ..rr_spec(Protocol::Tcp, 443)
        }),
        Command::AddDest(
            key,
            DestSpec {
                port: 443,
                ..dest(RS1)
            },
        ),
    ] {
        w.apply(&WorkerMsg::Change(control.apply(&c).unwrap()), 0);
    }
    let mut https = to_director(ipv4::protocol::TCP, &tcp_l4(40000, 443, SYN, b""));
    assert_eq!(w.handle(0, &mut https, 1), Verdict::Tx(0));
    assert_eq!(dst_mac(&https), RS1_MAC);
    // Its other ports are the host's.
    let mut ssh = to_director(ipv4::protocol::TCP, &tcp_l4(40000, 22, SYN, b""));
    assert_eq!(w.handle(0, &mut ssh, 1), Verdict::ToKernel);
    // Echo: rvsd answers for a VIP.
    let mut echo = to_director(ipv4::protocol::ICMP, &icmp_l4(8, 0, b"abcd"));
    assert_eq!(w.handle(0, &mut echo, 1), Verdict::Tx(0));
}

#[test]
fn icmp_to_the_director_is_the_kernels() {
    // Echo: the kernel answers (rvsd does without a kernel interface).
    let echo = to_director(ipv4::protocol::ICMP, &icmp_l4(8, 0, b"abcd"));
    assert_eq!(verdicts(&echo), (Verdict::ToKernel, Verdict::Tx(0)));
    // The answers to the kernel's own pings.
    let reply = to_director(ipv4::protocol::ICMP, &icmp_l4(0, 0, b"abcd"));
    assert_eq!(
        verdicts(&reply),
        (Verdict::ToKernel, Verdict::Drop(DropReason::ToDirector))
    );
    // Port unreachable about the kernel's UDP check (no connection of rvsd's).
    let quoted = {
        let q = frame(
            (DIRECTOR_MAC, RS1_MAC),
            DIRECTOR_IP,
            RS1.parse().unwrap(),
            ipv4::protocol::UDP,
            &udp_l4(50000, 53),
            64,
            false,
        );
        q[14..14 + 28].to_vec()
    };
    let unreach = frame(
        (RS1_MAC, DIRECTOR_MAC),
        RS1.parse().unwrap(),
        DIRECTOR_IP,
        ipv4::protocol::ICMP,
        &icmp_l4(3, 3, &quoted)
            .iter()
            .enumerate()
            .map(|(i, b)| if (4..8).contains(&i) { 0 } else { *b })
            .collect::<Vec<u8>>(),
        64,
        false,
    );
    assert_eq!(
        verdicts(&unreach),
        (Verdict::ToKernel, Verdict::Drop(DropReason::IcmpUnrelated))
    );
}

fn arp(op: Operation, sender: (MacAddr, Ipv4Addr), target: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst(if op == Operation::Request {
            MacAddr::BROADCAST
        } else {
            target.0
        });
        e.set_src(sender.0);
        e.set_ethertype(EtherType::Arp);
    }
    ArpPacket::emit(&mut f[14..], op, sender.0, sender.1, target.0, target.1).unwrap();
    f
}

#[test]
fn arp_rvsd_answers_for_itself_the_kernel_hears_replies_and_announcements() {
    let rs1: Ipv4Addr = RS1.parse().unwrap();
    // A question for the director's address: rvsd answers, once, with the
    // MAC the kernel interface carries too; the kernel never sees it.
    let who_has = arp(
        Operation::Request,
        (CLIENT_MAC, CLIENT_IP),
        (MacAddr([0; 6]), DIRECTOR_IP),
    );
    assert_eq!(verdicts(&who_has), (Verdict::Tx(0), Verdict::Tx(0)));
    // The answer to a question (rvsd's or the kernel's, both ask from the
    // director's address): the kernel gets it, and rvsd takes it when a
    // question is outstanding: here the kernel's, seen on its way out.
    let mut w = with_kernel(true);
    w.neigh = Arc::new(NeighbourTable::new(300_000));
    w.neigh_reader = w.neigh.reader();
    let mut is_at = arp(
        Operation::Reply,
        (RS1_MAC, rs1),
        (DIRECTOR_MAC, DIRECTOR_IP),
    );
    assert_eq!(w.handle(0, &mut is_at.clone(), 1), Verdict::ToKernel);
    assert_eq!(
        w.neigh.lookup(rs1, 1),
        Neighbour::Missing,
        "nobody asked: unsolicited"
    );
    assert_eq!(w.shared.counters.neighbour_unsolicited.get(), 1);
    let kernel_asks = arp(
        Operation::Request,
        (DIRECTOR_MAC, DIRECTOR_IP),
        (MacAddr([0; 6]), rs1),
    );
    w.sent_by_kernel(&kernel_asks, 1);
    assert_eq!(w.handle(0, &mut is_at, 1), Verdict::ToKernel);
    assert_eq!(w.neigh.lookup(rs1, 1), Neighbour::Reachable(RS1_MAC));
    assert_eq!(
        verdicts(&is_at).1,
        Verdict::Consumed,
        "without a kernel interface rvsd only learns"
    );
    // Gratuitous ARP (sender = target), request or reply: the kernel
    // updates what it has.
    let garp = arp(
        Operation::Request,
        (
            MacAddr([0x02, 0, 0, 0, 0, 0x77]),
            Ipv4Addr::new(192, 168, 1, 77),
        ),
        (MacAddr([0; 6]), Ipv4Addr::new(192, 168, 1, 77)),
    );
    assert_eq!(
        verdicts(&garp),
        (Verdict::ToKernel, Verdict::Drop(DropReason::ArpNotForUs))
    );
    // Questions about other hosts: nobody's business.
    let other = arp(
        Operation::Request,
        (CLIENT_MAC, CLIENT_IP),
        (MacAddr([0; 6]), Ipv4Addr::new(192, 168, 1, 99)),
    );
    let d = Verdict::Drop(DropReason::ArpNotForUs);
    assert_eq!(verdicts(&other), (d, d));
}

#[test]
fn vip_arp_kernel_hands_vip_questions_to_the_kernel() {
    let mut w = with_kernel(true);
    w.cfg.ports[0].vip_arp = VipArp::Kernel;
    // The kernel answers for the VIP when its interface holds it (VRRP's
    // master), and stays silent otherwise.
    let mut who_has_vip = fixtures::ARP_REQUEST.to_vec();
    assert_eq!(w.handle(0, &mut who_has_vip, 1), Verdict::ToKernel);
    assert_eq!(who_has_vip, fixtures::ARP_REQUEST, "unchanged");
    assert_eq!(w.shared.counters.arp_replies_sent.get(), 0);
    // The director's own address is still rvsd's to answer.
    let mut who_has = arp(
        Operation::Request,
        (CLIENT_MAC, CLIENT_IP),
        (MacAddr([0; 6]), DIRECTOR_IP),
    );
    assert_eq!(w.handle(0, &mut who_has, 1), Verdict::Tx(0));
    // A reply to the VIP (the kernel asked from it): the kernel's.
    let mut is_at = arp(
        Operation::Reply,
        (CLIENT_MAC, CLIENT_IP),
        (DIRECTOR_MAC, VIP_IP),
    );
    assert_eq!(w.handle(0, &mut is_at, 1), Verdict::ToKernel);
    // With "always" (the default) rvsd answers for it.
    let mut w = with_kernel(true);
    assert_eq!(
        w.handle(0, &mut fixtures::ARP_REQUEST.to_vec(), 1),
        Verdict::Tx(0)
    );
    // VIP traffic is rvsd's in both modes.
    let mut w = with_kernel(true);
    w.cfg.ports[0].vip_arp = VipArp::Kernel;
    assert_eq!(
        w.handle(0, &mut fixtures::TCP_SYN.to_vec(), 1),
        Verdict::Tx(0)
    );
}

/// A VRRP advertisement from the other director (192.168.1.214, VRID 51,
/// priority 100, VIP 192.168.1.10), to 224.0.0.18 from VRRP's virtual MAC.
const VRRP_ADVERT: [u8; 54] = [
    0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, 0x00, 0x00, 0x5e, 0x00, 0x01, 0x33, 0x08, 0x00, 0x45, 0xc0,
    0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0xff, 0x70, 0x18, 0x15, 0xc0, 0xa8, 0x01, 0xd6, 0xe0, 0x00,
    0x00, 0x12, 0x21, 0x33, 0x64, 0x01, 0x00, 0x01, 0xb9, 0x17, 0xc0, 0xa8, 0x01, 0x0a, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// LLDP from a switch port (to the nearest-bridge group).
const LLDP: [u8; 60] = [
    0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x00, 0x00, 0xee, 0x88, 0xcc, 0x02, 0x07,
    0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0xee, 0x04, 0x03, 0x05, 0x70, 0x31, 0x06, 0x02, 0x00, 0x78,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn multicast_broadcast_and_other_ethertypes_a_host_would_see() {
    assert_eq!(
        verdicts(&VRRP_ADVERT),
        (Verdict::ToKernel, Verdict::Drop(DropReason::NotOurMac))
    );
    // A DHCP-style broadcast, and one to the port's network.
    for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(192, 168, 1, 255)] {
        let f = frame(
            (CLIENT_MAC, MacAddr::BROADCAST),
            CLIENT_IP,
            dst,
            ipv4::protocol::UDP,
            &udp_l4(68, 67),
            64,
            false,
        );
        assert_eq!(
            verdicts(&f),
            (Verdict::ToKernel, Verdict::Drop(DropReason::NotOurMac)),
            "{dst}"
        );
    }
    assert_eq!(
        verdicts(&LLDP),
        (
            Verdict::ToKernel,
            Verdict::Drop(DropReason::UnknownEthertype)
        )
    );
    // Unicast to another station's MAC stays out, whatever it carries.
    let mut lldp_elsewhere = LLDP;
    lldp_elsewhere[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    assert_eq!(
        verdicts(&lldp_elsewhere).0,
        Verdict::Drop(DropReason::UnknownEthertype)
    );
}

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn frame6(dst_mac: MacAddr, src: Ipv6Addr, dst: Ipv6Addr, nh: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + l4.len()];
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst(dst_mac);
        e.set_src(CLIENT_MAC);
        e.set_ethertype(EtherType::Ipv6);
    }
    f[54..].copy_from_slice(l4);
    let mut ip = Ipv6Packet::emit(&mut f[14..], src, dst, nh, l4.len() as u16, 255, 0).unwrap();
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

fn solicit(target: Ipv6Addr) -> Vec<u8> {
    let group = icmpv6::solicited_node(target);
    let mut ns = vec![0u8; icmpv6::ND_LEN];
    icmpv6::emit_nd(&mut ns, true, target, CLIENT_MAC, a6("fd00:1::2"), group).unwrap();
    frame6(
        icmpv6::multicast_mac(group),
        a6("fd00:1::2"),
        group,
        next_header::ICMPV6,
        &ns,
    )
}

#[test]
fn ipv6_the_kernel_gets_its_addresses_link_local_and_multicast() {
    // NS for the director's address: rvsd answers, as for ARP.
    let (on, off) = verdicts(&solicit(a6("fd00:1::1")));
    assert_eq!((on, off), (Verdict::Consumed, Verdict::Consumed));
    // NS for the kernel's link-local address: the kernel answers.
    assert_eq!(
        verdicts(&solicit(a6("fe80::1"))),
        (Verdict::ToKernel, Verdict::Drop(DropReason::ArpNotForUs))
    );
    // NA (answers to anyone's questions, rvsd's or the kernel's): rvsd
    // learns and the kernel hears.
    let mut na = vec![0u8; icmpv6::ND_LEN];
    icmpv6::emit_nd(
        &mut na,
        false,
        a6("fd00:1::2"),
        CLIENT_MAC,
        a6("fd00:1::2"),
        a6("fd00:1::1"),
    )
    .unwrap();
    let na = frame6(
        DIRECTOR_MAC,
        a6("fd00:1::2"),
        a6("fd00:1::1"),
        next_header::ICMPV6,
        &na,
    );
    assert_eq!(verdicts(&na), (Verdict::ToKernel, Verdict::Consumed));
    // Echo and TCP to the director's address or its link-local one.
    let echo = [128u8, 0, 0, 0, 0, 7, 0, 1];
    for dst in ["fd00:1::1", "fe80::1"] {
        let f = frame6(
            DIRECTOR_MAC,
            a6("fd00:1::2"),
            a6(dst),
            next_header::ICMPV6,
            &echo,
        );
        assert_eq!(verdicts(&f).0, Verdict::ToKernel, "{dst}");
        let f = frame6(
            DIRECTOR_MAC,
            a6("fd00:1::2"),
            a6(dst),
            next_header::TCP,
            &tcp_l4(40000, 22, SYN, b""),
        );
        assert_eq!(verdicts(&f).0, Verdict::ToKernel, "{dst}");
    }
    // A router advertisement to all nodes, and MLD (hop-by-hop options).
    let ra = [134u8, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    let f = frame6(
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        a6("fe80::99"),
        a6("ff02::1"),
        next_header::ICMPV6,
        &ra,
    );
    assert_eq!(
        verdicts(&f),
        (Verdict::ToKernel, Verdict::Drop(DropReason::NotForUs))
    );
    let f = frame6(
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        a6("fe80::99"),
        a6("ff02::1"),
        0,
        &[58, 0, 5, 2, 0, 0, 1, 0],
    );
    assert_eq!(
        verdicts(&f),
        (Verdict::ToKernel, Verdict::Drop(DropReason::Ipv6ExtHeaders))
    );
}

#[test]
fn ipv6_without_an_address_is_the_kernels_but_a_vips() {
    let f = frame6(
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        a6("fe80::99"),
        a6("ff02::1"),
        next_header::ICMPV6,
        &[134u8, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.cfg.ports[0].kernel = true;
    assert_eq!(w.handle(0, &mut f.clone(), 1), Verdict::ToKernel);
    w.cfg.ports[0].kernel = false;
    assert_eq!(
        w.handle(0, &mut f.clone(), 1),
        Verdict::Drop(DropReason::NoIpv6)
    );
}
