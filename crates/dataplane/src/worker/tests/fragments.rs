//! Fragmented datagrams (`worker/frag.rs`): every fragment follows its
//! first to the same real server, translated the same way; what comes out
//! reassembles to what went in (NAT: with the rewritten header and a
//! transport checksum right for the whole datagram); packets too big for
//! their way out go in fragments, or get ICMP back with DF.

use super::forwarding::{
    frame, tcp_l4, two_nat_workers, two_port_worker, udp_l4, CLIENT_IP, DIRECTOR2_MAC, RS_IP,
    SERVER_MAC, VIP_IP,
};
use super::*;
use crate::worker::frag::{HELD_BYTES_PER_WORKER, HELD_MS};
use rvs_ipvs::{TunCsum, TunKind, TunSpec};
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};

/// `datagram` (an Ethernet frame) cut into IPv4 fragments of at most `mtu`.
fn fragments_of(datagram: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    ipv4::fragment(&datagram[14..], mtu, |p| {
        let mut f = datagram[..14].to_vec();
        f.extend_from_slice(p);
        out.push(f);
    })
    .unwrap();
    out
}

/// The IPv4 header of the first fragment with the payloads put back
/// together in offset order; checks every header checksum on the way.
fn reassembled(frames: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let mut parts: Vec<(usize, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum(), "header checksum of every fragment");
            (ip.frag_offset() as usize, ip.payload().to_vec())
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut payload = Vec::new();
    for (off, p) in parts {
        assert_eq!(off, payload.len(), "no gap, no overlap");
        payload.extend_from_slice(&p);
    }
    let first = frames
        .iter()
        .find(|f| Ipv4Packet::new_checked(&f[14..]).unwrap().frag_offset() == 0)
        .unwrap();
    (first[14..34].to_vec(), payload)
}

fn big_udp(sport: u16, n: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
    frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::UDP,
        &udp_l4(sport, 53, &data),
        64,
        false,
    )
}

/// Sends `frags` through `w` on port 0; returns the verdicts, with every
/// frame sent (in place or generated) collected in `out`.
fn send_all(w: &mut Worker, frags: &[Vec<u8>], out: &mut Vec<(usize, Vec<u8>)>) -> Vec<Verdict> {
    frags
        .iter()
        .map(|f| {
            let mut f = f.clone();
            let v = w.handle(0, &mut f, 1);
            if let Verdict::Tx(p) = v {
                out.push((p, f));
            }
            out.append(&mut w.generated);
            out.append(&mut w.sent);
            v
        })
        .collect()
}

#[test]
fn dr_sends_every_fragment_to_the_first_ones_server() {
    let mut w = walkthrough(Protocol::Udp, 53);
    w.cfg.ports[0].mtu = 1500;
    let mut sent = Vec::new();
    // Two clients' 8 KiB datagrams: rr sends them to the two servers; each
    // datagram's six fragments all go to its own.
    for (i, sport) in [5000u16, 5001].into_iter().enumerate() {
        let d = big_udp(sport, 8192);
        let frags = fragments_of(&d, 1500);
        assert_eq!(frags.len(), 6);
        let mut out = Vec::new();
        let v = send_all(&mut w, &frags, &mut out);
        assert!(v.iter().all(|v| *v == Verdict::Tx(0)), "{v:?}");
        let macs: Vec<MacAddr> = out.iter().map(|(_, f)| dst_mac(f)).collect();
        assert!(macs.iter().all(|m| *m == macs[0]), "datagram {i}: {macs:?}");
        // DR leaves the IP packets as they were.
        for ((_, o), f) in out.iter().zip(&frags) {
            assert_eq!(o[14..], f[14..]);
        }
        sent.push(macs[0]);
    }
    assert_ne!(sent[0], sent[1], "rr: one datagram to each server");
    assert_eq!(w.conns.len(), 2, "one connection per datagram's flow");
    let c = &w.shared.counters;
    assert_eq!(c.fragments_tracked.get(), 2);
    assert_eq!(c.forwarded.get(), 12);
}

#[test]
fn fragments_before_their_first_wait_for_it() {
    let mut w = walkthrough(Protocol::Udp, 53);
    let frags = fragments_of(&big_udp(5000, 4000), 1500);
    assert_eq!(frags.len(), 3);
    let mut out = Vec::new();
    // The last two arrive first: held, nothing sent.
    let v = send_all(&mut w, &[frags[2].clone(), frags[1].clone()], &mut out);
    assert_eq!(v, [Verdict::Consumed, Verdict::Consumed]);
    assert!(out.is_empty());
    assert_eq!(w.shared.counters.fragments_held.get(), 2);
    // The first comes: it goes, and so do the two that waited, to the
    // same server.
    let v = send_all(&mut w, &frags[..1], &mut out);
    assert_eq!(v, [Verdict::Tx(0)]);
    assert_eq!(out.len(), 3);
    assert!(out
        .iter()
        .all(|(p, f)| *p == 0 && dst_mac(f) == dst_mac(&out[0].1)));
    let (_, payload) = reassembled(&out.iter().map(|o| o.1.clone()).collect::<Vec<_>>());
    assert_eq!(payload, big_udp(5000, 4000)[34..]);
    assert_eq!(w.shared.counters.forwarded.get(), 3);
}

#[test]
fn fragments_whose_first_never_comes_are_dropped_and_counted() {
    let mut w = walkthrough(Protocol::Udp, 53);
    let frags = fragments_of(&big_udp(5000, 4000), 1500);
    let mut out = Vec::new();
    send_all(&mut w, &frags[1..], &mut out);
    // Held at 1 ms; looked over every 50 ms.
    w.housekeeping(HELD_MS);
    assert_eq!(w.shared.counters.drops(DropReason::FragmentOrphan), 0);
    w.housekeeping(HELD_MS + 60);
    assert_eq!(w.shared.counters.drops(DropReason::FragmentOrphan), 2);
    assert!(w.frags.is_empty());
    // The first, too late now, starts the datagram on its own.
    assert_eq!(send_all(&mut w, &frags[..1], &mut out), [Verdict::Tx(0)]);
    assert_eq!(out.len(), 1);
}

#[test]
fn waiting_fragments_are_bounded_in_bytes() {
    let mut w = walkthrough(Protocol::Udp, 53);
    let mut dropped = 0;
    let mut held = 0;
    // A flood of later fragments of datagrams that never start.
    for id in 0..400u16 {
        let mut d = big_udp(5000, 3000);
        d[18..20].copy_from_slice(&id.to_be_bytes());
        Ipv4Packet::new_checked(&mut d[14..])
            .unwrap()
            .fill_checksum();
        let frags = fragments_of(&d, 1500);
        match w.handle(0, &mut frags[1].clone(), 1) {
            Verdict::Consumed => held += 1,
            Verdict::Drop(DropReason::FragmentOrphan) => dropped += 1,
            v => panic!("{v:?}"),
        }
    }
    assert!(w.frags_held_bytes() <= HELD_BYTES_PER_WORKER);
    assert_eq!(held, HELD_BYTES_PER_WORKER / 1514);
    assert_eq!(dropped, 400 - held);
    assert_eq!(
        w.shared.counters.drops(DropReason::FragmentOrphan),
        dropped as u64
    );
}

#[test]
fn nat_translates_fragments_and_the_datagram_checks_out() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let d = big_udp(50000, 5000);
    let frags = fragments_of(&d, 1500);
    let mut out = Vec::new();
    let v = send_all(&mut w, &frags, &mut out);
    assert!(v.iter().all(|v| *v == Verdict::Tx(1)), "{v:?}");
    for (_, f) in &out {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.src(), eth.dst()), (DIRECTOR2_MAC, SERVER_MAC));
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (CLIENT_IP, RS_IP));
    }
    let frames: Vec<Vec<u8>> = out.into_iter().map(|o| o.1).collect();
    let (_, payload) = reassembled(&frames);
    let u = UdpDatagram::new_checked(&payload[..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (50000, 5353));
    assert!(
        u.verify_checksum_v4(CLIENT_IP, RS_IP),
        "checksum of the whole datagram"
    );
    assert_eq!(u.payload(), &d[42..]);

    // The server's answer, fragmented too, comes back from the VIP.
    let data: Vec<u8> = (0..3000).map(|i| (i * 3) as u8).collect();
    let reply = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::UDP,
        &udp_l4(5353, 50000, &data),
        64,
        false,
    );
    let mut back = Vec::new();
    for f in fragments_of(&reply, 1500) {
        let mut f = f.clone();
        assert_eq!(w.handle(1, &mut f, 2), Verdict::Tx(0));
        back.push(f);
    }
    for f in &back {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((ip.src(), ip.dst(), ip.ttl()), (VIP_IP, CLIENT_IP, 63));
    }
    let (_, payload) = reassembled(&back);
    let u = UdpDatagram::new_checked(&payload[..]).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (53, 50000));
    assert!(u.verify_checksum_v4(VIP_IP, CLIENT_IP));
    assert_eq!(u.payload(), &data[..]);
}

#[test]
fn tcp_fragments_through_nat_keep_a_right_checksum() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    // A segment sent without DF over a path whose MTU is 576.
    let payload: Vec<u8> = (0..1400).map(|i| i as u8).collect();
    let seg = frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        CLIENT_IP,
        VIP_IP,
        ipv4::protocol::TCP,
        &tcp_l4(40000, 80, SYN, &payload),
        64,
        false,
    );
    let mut out = Vec::new();
    let v = send_all(&mut w, &fragments_of(&seg, 576), &mut out);
    assert!(v.iter().all(|v| *v == Verdict::Tx(1)));
    let (_, l4) = reassembled(&out.into_iter().map(|o| o.1).collect::<Vec<_>>());
    let t = TcpSegment::new_checked(&l4[..]).unwrap();
    assert_eq!(t.dst_port(), 8080);
    assert!(t.verify_checksum_v4(CLIENT_IP, RS_IP));
    // A first fragment too short for the TCP header is refused (RFC 1858).
    let mut tiny = Vec::new();
    ipv4::fragment(&seg[14..], 28, |p| {
        let mut f = seg[..14].to_vec();
        f.extend_from_slice(p);
        tiny.push(f);
    })
    .unwrap();
    let mut first = tiny[0].clone();
    first[18..20].copy_from_slice(&9u16.to_be_bytes());
    Ipv4Packet::new_checked(&mut first[14..])
        .unwrap()
        .fill_checksum();
    assert_eq!(
        w.handle(0, &mut first, 3),
        Verdict::Drop(DropReason::BadL4Header)
    );
}

#[test]
fn tunnelled_fragments_are_whole_inside_and_fragmented_outside() {
    let tun = FwdMethod::Tunnel(TunSpec {
        kind: TunKind::Ipip,
        port: 0,
        csum: TunCsum::None,
    });
    let mut w = two_port_worker(tun, 80);
    let frags = fragments_of(&big_udp(5000, 3000), 1500);
    let mut out = Vec::new();
    let v = send_all(&mut w, &frags, &mut out);
    // Full-size fragments no longer fit with the outer header: each goes
    // in two outer fragments; the short last one in one.
    assert_eq!(v, [Verdict::Consumed, Verdict::Consumed, Verdict::Tx(1)]);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|(p, f)| *p == 1 && f.len() <= 14 + 1500));
    // Put each outer packet back together: the inner fragments, as sent.
    let mut inner = Vec::new();
    let mut by_id: std::collections::BTreeMap<u16, Vec<Vec<u8>>> = Default::default();
    for (_, f) in &out {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert_eq!((ip.protocol(), ip.dst()), (ipv4::protocol::IPIP, RS_IP));
        by_id.entry(ip.ident()).or_default().push(f.clone());
    }
    for (_, outer) in by_id {
        inner.push(reassembled(&outer).1);
    }
    let sent: Vec<Vec<u8>> = frags.iter().map(|f| f[14..].to_vec()).collect();
    assert_eq!(inner, sent);
}

#[test]
fn too_big_for_the_way_out_is_fragmented_without_df_and_refused_with_it() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    w.cfg.ports[1].mtu = 1000;
    let mut d = big_udp(50000, 1400);
    let mut out = Vec::new();
    let v = send_all(&mut w, &[d.clone()], &mut out);
    assert_eq!(v, [Verdict::Consumed]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|(p, f)| *p == 1 && f.len() <= 14 + 1000));
    let (_, payload) = reassembled(&out.iter().map(|o| o.1.clone()).collect::<Vec<_>>());
    let u = UdpDatagram::new_checked(&payload[..]).unwrap();
    assert!(u.verify_checksum_v4(CLIENT_IP, RS_IP));
    assert_eq!(w.shared.counters.forwarded.get(), 2);
    assert_eq!(w.shared.counters.fragments_made.get(), 2);
    // With DF: ICMP fragmentation needed, quoting the packet as the client
    // sent it (before NAT), with the link's MTU.
    d[20] |= 0x40;
    Ipv4Packet::new_checked(&mut d[14..])
        .unwrap()
        .fill_checksum();
    let sent = d.clone();
    assert_eq!(w.handle(0, &mut d, 2), Verdict::Drop(DropReason::TooBig));
    assert!(w.sent.is_empty());
    let (port, g) = w.generated.pop().unwrap();
    assert_eq!(port, 0);
    let ip = Ipv4Packet::new_checked(&g[14..]).unwrap();
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (3, 4));
    assert_eq!(m.rest_of_header(), [0, 0, 0x03, 0xe8], "next-hop MTU 1000");
    assert_eq!(&m.data()[..28], &sent[14..42]);
}

#[test]
fn fragments_follow_their_first_to_the_owning_worker() {
    let mut ws = two_nat_workers();
    let owner = ws[0].cfg.sharding.owner_of(IpAddr::V4(CLIENT_IP), 50000, 2);
    let other = 1 - owner;
    let frags = fragments_of(&big_udp(50000, 4000), 1500);
    // The receiving worker holds the last until the first comes, then
    // hands both over; the middle one follows the decision.
    let mut last = frags[2].clone();
    assert_eq!(ws[other].handle(0, &mut last, 1), Verdict::Consumed);
    let mut first = frags[0].clone();
    assert_eq!(ws[other].handle(0, &mut first, 1), Verdict::Redirect(owner));
    assert_eq!(ws[other].handed_over.len(), 1);
    assert_eq!(ws[other].handed_over[0].0, owner);
    let mut middle = frags[1].clone();
    assert_eq!(
        ws[other].handle(0, &mut middle, 1),
        Verdict::Redirect(owner)
    );
    // At the owner, the first creates the connection; the others, handed
    // over after it, follow.
    let handed = ws[other].handed_over.pop().unwrap().2;
    let mut out = Vec::new();
    for mut f in [first, middle, handed] {
        assert_eq!(
            ws[owner].handle_handed_over(0, &mut f, 1, None),
            Verdict::Tx(1)
        );
        out.push(f);
    }
    let (_, payload) = reassembled(&out);
    assert!(UdpDatagram::new_checked(&payload[..])
        .unwrap()
        .verify_checksum_v4(CLIENT_IP, RS_IP));
    assert_eq!(ws[other].conns.len(), 0);
    assert_eq!(ws[other].shared.counters.redirected.get(), 3);
}

// IPv6: extension headers walked, fragments handled like IPv4's.

fn a6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

const C6: &str = "fd00:1::2";
const V6: &str = "fd00:99::10";
const R6: &str = "fd00:2::2";

/// A NAT6 or DR6 worker for UDP port 53 (to port 5353 on the server).
fn worker6(fwd: FwdMethod) -> Worker {
    let mut w = worker();
    w.cfg.ports[0].addr6 = Some((a6("fd00:1::1"), 64));
    w.cfg.ports.push(PortInfo {
        mac: DIRECTOR2_MAC,
        addr: Ipv4Addr::new(172, 16, 0, 1),
        prefix_len: 24,
        mtu: 1500,
        addr6: Some((a6("fd00:2::1"), 64)),
        kernel: false,
        vip_arp: VipArp::Always,
    });
    let key = ServiceKey {
        protocol: Protocol::Udp,
        addr: IpAddr::V6(a6(V6)),
        port: 53,
    };
    let mut control = Director::new();
    for c in [
        Command::AddService(ServiceSpec {
            key,
            netmask: rvs_ipvs::PersistMask::V6Prefix(128),
            ..rr_spec(Protocol::Udp, 53)
        }),
        Command::AddDest(
            key,
            DestSpec {
                addr: IpAddr::V6(a6(R6)),
                port: 5353,
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
    w.generated.clear();
    w.neigh.learn(a6(R6), SERVER_MAC, 0);
    w.neigh.learn(a6(C6), CLIENT_MAC, 0);
    w.neigh_reader.refresh();
    w
}

/// An IPv6 frame: `exts` (next header, body after the next-header byte)
/// in front of `upper` (protocol, bytes).
fn frame6(src: &str, dst: &str, exts: &[(u8, Vec<u8>)], upper: (u8, &[u8])) -> Vec<u8> {
    let mut payload = Vec::new();
    for (i, (_, body)) in exts.iter().enumerate() {
        payload.push(exts.get(i + 1).map_or(upper.0, |e| e.0));
        payload.extend_from_slice(body);
    }
    payload.extend_from_slice(upper.1);
    let mut f = vec![0u8; 14 + 40 + payload.len()];
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst(DIRECTOR_MAC);
        e.set_src(CLIENT_MAC);
        e.set_ethertype(EtherType::Ipv6);
    }
    let first = exts.first().map_or(upper.0, |e| e.0);
    let len = payload.len() as u16;
    Ipv6Packet::emit(&mut f[14..], a6(src), a6(dst), first, len, 64, 0).unwrap();
    f[54..].copy_from_slice(&payload);
    f
}

/// A UDP datagram with its checksum.
fn udp6(src: &str, dst: &str, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = udp_l4(sport, dport, data);
    UdpDatagram::new_checked(&mut u[..])
        .unwrap()
        .fill_checksum_v6(a6(src), a6(dst));
    u
}

/// `upper` sent as IPv6 fragments of at most `piece` bytes of data each.
fn fragments6(exts: &[(u8, Vec<u8>)], upper: &[u8], piece: usize, ident: u32) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = upper.chunks(piece).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let off = (i * piece) as u16;
            let more = i + 1 < chunks.len();
            let mut h = vec![0, (off >> 8) as u8, (off as u8) | more as u8];
            h.extend_from_slice(&ident.to_be_bytes());
            let mut e = exts.to_vec();
            e.push((next_header::FRAGMENT, h));
            frame6(C6, V6, &e, (next_header::UDP, c))
        })
        .collect()
}

fn options() -> Vec<u8> {
    vec![0, 1, 4, 0, 0, 0, 0]
}

#[test]
fn ipv6_nat_behind_extension_headers() {
    let mut w = worker6(FwdMethod::Masq);
    let u = udp6(C6, V6, 40000, 53, b"query");
    let exts = [
        (next_header::HOP_BY_HOP, options()),
        (next_header::DEST_OPTIONS, options()),
    ];
    let mut f = frame6(C6, V6, &exts, (next_header::UDP, &u));
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(1));
    let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(ip.dst(), a6(R6));
    let at = ipv6::upper_layer(&f[14..]).unwrap().offset;
    assert_eq!(at, 40 + 16, "the extension headers kept");
    let out = UdpDatagram::new_checked(&f[14 + at..]).unwrap();
    assert_eq!(out.dst_port(), 5353);
    assert!(out.verify_checksum_v6(a6(C6), a6(R6)));
    // A routing header with segments left: passing through, not for us.
    let routing = (next_header::ROUTING, vec![0, 4, 1, 0, 0, 0, 0]);
    let mut r = frame6(C6, V6, &[routing], (next_header::UDP, &u));
    assert_eq!(
        w.handle(0, &mut r, 1),
        Verdict::Drop(DropReason::Ipv6ExtHeaders)
    );
}

#[test]
fn ipv6_fragments_through_nat_and_dr() {
    let data: Vec<u8> = (0..3000).map(|i| (i * 5) as u8).collect();
    let u = udp6(C6, V6, 40000, 53, &data);
    let exts = [(next_header::DEST_OPTIONS, options())];
    let frags = fragments6(&exts, &u, 1232, 0xabcd);
    assert_eq!(frags.len(), 3);
    // DR: all three to the server's MAC, unchanged.
    let mut w = worker6(FwdMethod::Route);
    for f in &frags {
        let mut g = f.clone();
        assert_eq!(w.handle(0, &mut g, 1), Verdict::Tx(1));
        assert_eq!(dst_mac(&g), SERVER_MAC);
        assert_eq!(g[14..], f[14..]);
    }
    // NAT, the last first: put back together, the datagram is the
    // server's, with a right checksum.
    let mut w = worker6(FwdMethod::Masq);
    let mut last = frags[2].clone();
    assert_eq!(w.handle(0, &mut last, 1), Verdict::Consumed);
    let mut out = Vec::new();
    for f in &frags[..2] {
        let mut g = f.clone();
        assert_eq!(w.handle(0, &mut g, 1), Verdict::Tx(1));
        out.push(g);
        out.extend(w.sent.drain(..).map(|(_, g)| g));
    }
    assert_eq!(out.len(), 3);
    let mut parts: Vec<(u16, Vec<u8>)> = out
        .iter()
        .map(|g| {
            let ip = Ipv6Packet::new_checked(&g[14..]).unwrap();
            assert_eq!(ip.dst(), a6(R6));
            let l = ipv6::upper_layer(&g[14..]).unwrap();
            let end = 14 + ip.total_len();
            (l.fragment.unwrap().offset, g[14 + l.offset..end].to_vec())
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let whole: Vec<u8> = parts.into_iter().flat_map(|p| p.1).collect();
    let d = UdpDatagram::new_checked(&whole[..]).unwrap();
    assert_eq!(d.dst_port(), 5353);
    assert!(d.verify_checksum_v6(a6(C6), a6(R6)));
    assert_eq!(d.payload(), &data[..]);
}

impl Worker {
    fn frags_held_bytes(&self) -> usize {
        self.frags.held_bytes()
    }
}

/// Found by the fuzz harness's accounting: a fragment that waited for its
/// first, sent towards a next hop whose MAC is not known yet, went out
/// with no MAC and uncounted instead of waiting for the MAC in turn.
#[test]
fn a_released_fragment_waits_for_its_next_hop_too() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    w.cfg.ports[1].mtu = 1400;
    w.neigh = Arc::new(NeighbourTable::new(300_000));
    w.neigh_reader = w.neigh.reader();
    let frags = fragments_of(&big_udp(5000, 3000), 1500);
    assert_eq!(w.handle(0, &mut frags[2].clone(), 1), Verdict::Consumed);
    // The first: in two pieces for the smaller MTU, both held with the
    // one that waited, all three for the server's MAC.
    assert_eq!(w.handle(0, &mut frags[0].clone(), 1), Verdict::Consumed);
    let c = &w.shared.counters;
    assert_eq!((c.neighbour_queued.get(), c.forwarded.get()), (3, 0));
    assert!(w.sent.is_empty());
    w.neigh.learn(RS_IP, SERVER_MAC, 2);
    w.refresh_neighbours();
    w.housekeeping(2);
    assert_eq!(w.sent.len(), 3);
    assert!(w
        .sent
        .iter()
        .all(|(p, f)| *p == 1 && dst_mac(f) == SERVER_MAC));
    assert_eq!(w.shared.counters.forwarded.get(), 3);
}
