//! The link: what ARP from the wire may teach the neighbour table (the
//! rules themselves are tested in `neighbour/tests.rs`; here, frames in,
//! counters and where traffic goes out).

use super::*;
use crate::neighbour::{LearnPolicy, NeighbourConfig};

const SPOOF_MAC: MacAddr = MacAddr([0x02, 0xba, 0xd0, 0, 0, 0x66]);
const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 213);

fn rs1() -> Ipv4Addr {
    RS1.parse().unwrap()
}

/// An ARP frame from `sender`; replies go to `to`'s MAC, requests are
/// broadcast.
fn arp(op: Operation, sender: (MacAddr, Ipv4Addr), to: (MacAddr, Ipv4Addr)) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    {
        let mut e = EthernetFrame::new_unchecked(&mut f[..]);
        e.set_dst(if op == Operation::Request {
            MacAddr::BROADCAST
        } else {
            to.0
        });
        e.set_src(sender.0);
        e.set_ethertype(EtherType::Arp);
    }
    ArpPacket::emit(&mut f[14..], op, sender.0, sender.1, to.0, to.1).unwrap();
    f
}

/// A spoofed reply: "RS1 is at SPOOF_MAC", unicast to the director.
fn spoofed_reply() -> Vec<u8> {
    arp(
        Operation::Reply,
        (SPOOF_MAC, rs1()),
        (DIRECTOR_MAC, DIRECTOR_IP),
    )
}

/// Where 20 new flows go: the MACs they are sent to.
fn macs_of_new_flows(w: &mut Worker, now_ms: u64) -> Vec<MacAddr> {
    w.refresh_neighbours();
    (0..20)
        .map(|i| {
            let mut f = tcp(41000 + i, SYN);
            assert_eq!(w.handle(0, &mut f, now_ms), Verdict::Tx(0));
            dst_mac(&f)
        })
        .collect()
}

fn with_policy(policy: LearnPolicy) -> Worker {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.neigh = Arc::new(NeighbourTable::with_config(NeighbourConfig {
        policy,
        ..NeighbourConfig::new(300_000)
    }));
    w.neigh_reader = w.neigh.reader();
    w.neigh.learn(rs1(), RS1_MAC, 0);
    w.neigh.learn(RS2.parse::<Ipv4Addr>().unwrap(), RS2_MAC, 0);
    w
}

#[test]
fn unsolicited_replies_and_gratuitous_arp_create_nothing() {
    let mut w = with_policy(LearnPolicy::Linux);
    let stranger = Ipv4Addr::new(192, 168, 1, 77);
    let reply = arp(
        Operation::Reply,
        (SPOOF_MAC, stranger),
        (DIRECTOR_MAC, DIRECTOR_IP),
    );
    assert_eq!(w.handle(0, &mut reply.clone(), 10), Verdict::Consumed);
    for op in [Operation::Request, Operation::Reply] {
        let garp = arp(op, (SPOOF_MAC, stranger), (MacAddr::BROADCAST, stranger));
        w.handle(0, &mut garp.clone(), 10);
    }
    assert_eq!(w.neigh.lookup(stranger, 11), Neighbour::Missing);
    assert_eq!(w.neigh.entry(stranger), None);
    assert_eq!(w.shared.counters.neighbour_unsolicited.get(), 3);
    assert_eq!(w.shared.counters.arp_learned.get(), 0);
    // Nor do claims to the director's own address or a VIP.
    for ip in [DIRECTOR_IP, Ipv4Addr::new(192, 168, 1, 10)] {
        let f = arp(
            Operation::Reply,
            (SPOOF_MAC, ip),
            (DIRECTOR_MAC, DIRECTOR_IP),
        );
        w.handle(0, &mut f.clone(), 10);
        assert_eq!(w.neigh.entry(ip), None);
    }
}

#[test]
fn a_spoofed_reply_within_the_locktime_is_ignored_after_it_linux_takes_it() {
    let mut w = with_policy(LearnPolicy::Linux);
    // RS1 was confirmed at 0: a different answer within the second is
    // refused (the first answer wins).
    assert_eq!(w.handle(0, &mut spoofed_reply(), 900), Verdict::Consumed);
    assert_eq!(w.shared.counters.neighbour_locked.get(), 1);
    let macs = macs_of_new_flows(&mut w, 950);
    assert!(macs.contains(&RS1_MAC) && !macs.contains(&SPOOF_MAC));
    // Later, Linux's default takes it (that is what `solicited-only` and
    // static neighbours are for): counted as a move.
    w.handle(0, &mut spoofed_reply(), 5000);
    assert_eq!(w.shared.counters.neighbour_moved.get(), 1);
    assert!(macs_of_new_flows(&mut w, 5001).contains(&SPOOF_MAC));
}

#[test]
fn solicited_only_takes_only_the_first_answer_to_its_own_request() {
    let mut w = with_policy(LearnPolicy::SolicitedOnly);
    // Any time, however often: a spoofed reply changes nothing.
    for now in [900, 5000, 60_000] {
        assert_eq!(w.handle(0, &mut spoofed_reply(), now), Verdict::Consumed);
    }
    let claim = arp(
        Operation::Request,
        (SPOOF_MAC, rs1()),
        (MacAddr::BROADCAST, rs1()),
    );
    w.handle(0, &mut claim.clone(), 60_000);
    assert_eq!(w.shared.counters.neighbour_not_an_answer.get(), 4);
    let macs = macs_of_new_flows(&mut w, 60_001);
    assert!(macs.contains(&RS1_MAC) && !macs.contains(&SPOOF_MAC));
    // Past half its expiry the entry is asked for again: that answer is
    // taken, and a second one for the same request is not.
    let stale_at = 160_000;
    macs_of_new_flows(&mut w, stale_at);
    let asked: Vec<Ipv4Addr> = w
        .generated
        .drain(..)
        .map(|(_, f)| ArpPacket::new_checked(&f[14..]).unwrap().target_ip())
        .collect();
    assert!(asked.contains(&rs1()), "{asked:?}");
    let answer = arp(
        Operation::Reply,
        (RS1_MAC, rs1()),
        (DIRECTOR_MAC, DIRECTOR_IP),
    );
    w.handle(0, &mut answer.clone(), stale_at + 1);
    assert_eq!(
        w.neigh.lookup(rs1(), stale_at + 2),
        Neighbour::Reachable(RS1_MAC)
    );
    w.handle(0, &mut spoofed_reply(), stale_at + 3);
    assert_eq!(w.shared.counters.neighbour_not_an_answer.get(), 5);
    assert_eq!(
        w.neigh.lookup(rs1(), stale_at + 4),
        Neighbour::Reachable(RS1_MAC)
    );
}

#[test]
fn static_neighbours_are_never_overwritten() {
    for policy in [LearnPolicy::Linux, LearnPolicy::SolicitedOnly] {
        let mut w = with_policy(policy);
        w.neigh.add_static(rs1(), RS1_MAC);
        let frames = [
            spoofed_reply(),
            arp(
                Operation::Request,
                (SPOOF_MAC, rs1()),
                (MacAddr::BROADCAST, rs1()),
            ),
            arp(
                Operation::Request,
                (SPOOF_MAC, rs1()),
                (MacAddr::BROADCAST, DIRECTOR_IP),
            ),
        ];
        for f in &frames {
            w.handle(0, &mut f.clone(), 10_000);
        }
        assert_eq!(
            w.shared.counters.neighbour_static_kept.get(),
            3,
            "{policy:?}"
        );
        let macs = macs_of_new_flows(&mut w, 10_001);
        assert!(macs.contains(&RS1_MAC) && !macs.contains(&SPOOF_MAC));
        assert_eq!(
            w.neigh.lookup(rs1(), u64::MAX / 2),
            Neighbour::Reachable(RS1_MAC)
        );
    }
}

#[test]
fn a_full_table_evicts_and_counts() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.neigh = Arc::new(NeighbourTable::with_config(NeighbourConfig {
        capacity: 4,
        ..NeighbourConfig::new(300_000)
    }));
    w.neigh_reader = w.neigh.reader();
    w.neigh.learn(rs1(), RS1_MAC, 0);
    w.neigh.learn(RS2.parse::<Ipv4Addr>().unwrap(), RS2_MAC, 0);
    // Clients asking for the director's address, one after another.
    for n in 0..10u8 {
        let client = Ipv4Addr::new(192, 168, 1, 100 + n);
        let mac = MacAddr([2, 0, 0, 0, 1, n]);
        let f = arp(
            Operation::Request,
            (mac, client),
            (MacAddr::BROADCAST, DIRECTOR_IP),
        );
        assert_eq!(w.handle(0, &mut f.clone(), 100 + n as u64), Verdict::Tx(0));
    }
    assert_eq!(w.neigh.len(), 4);
    assert_eq!(w.shared.counters.neighbour_evicted.get(), 8);
    // The real servers, which rvsd asked for, stayed.
    let macs = macs_of_new_flows(&mut w, 200);
    assert!(macs.contains(&RS1_MAC) && macs.contains(&RS2_MAC));
}

#[test]
fn the_worker_asks_for_a_bounded_number_of_addresses() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    for n in 0..(crate::worker::xmit::ASKED_PER_WORKER as u32 + 10) {
        w.ask_arp(0, Ipv4Addr::from(0x0a00_0000 + n), 1000, false);
    }
    assert_eq!(w.shared.counters.neighbour_asks_limited.get(), 10);
    // Once the retry interval is over, the old ones make room.
    w.generated.clear();
    w.ask_arp(0, Ipv4Addr::new(10, 9, 9, 9), 2000, false);
    assert_eq!(w.generated.len(), 1);
}

/// Found by fuzzing (fuzz/: worker_handle): an ARP request with a long
/// trailer on a port of a smaller MTU was answered in place, trailer and
/// all, and the reply then dropped as too big for the link, though
/// counted as sent. A reply is the ARP packet in a minimum frame.
#[test]
fn an_arp_reply_leaves_the_requests_trailer_behind() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.cfg.ports[0].mtu = 1400;
    let mut f = fixtures::ARP_REQUEST.to_vec();
    f.resize(1600, 0xee);
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    assert_eq!(f.len(), 60);
    assert!(f[42..].iter().all(|b| *b == 0), "zero padding");
    let a = rvs_packet::ArpPacket::new_checked(&f[14..]).unwrap();
    assert_eq!(a.operation(), rvs_packet::arp::Operation::Reply);
    assert_eq!(w.shared.counters.arp_replies_sent.get(), 1);
    assert_eq!(w.shared.counters.drops(DropReason::TooBig), 0);
}

/// An established DR flow's packets take their next hop from the worker's
/// memo (`xmit::Hop`); what the neighbour table says still wins: a moved
/// MAC is followed from the next poll loop, an entry past half its expiry
/// is used and asked for again, and a frame too big for the port is
/// refused (DF), each time as without the memo.
#[test]
fn an_established_flow_follows_its_real_servers_neighbour_entry() {
    let mut w = with_policy(LearnPolicy::Linux);
    // Room for the fixture's 40-byte packets, not for 100 bytes more.
    w.cfg.ports[0].mtu = 100;
    w.refresh_neighbours();
    let mut syn = tcp(41000, SYN);
    assert_eq!(w.handle(0, &mut syn, 10), Verdict::Tx(0));
    let (rs, mac) = match dst_mac(&syn) {
        RS1_MAC => (rs1(), RS1_MAC),
        _ => (RS2.parse::<Ipv4Addr>().unwrap(), RS2_MAC),
    };
    let ack = |w: &mut Worker, now_ms: u64| {
        let mut f = tcp(41000, ACK);
        assert_eq!(w.handle(0, &mut f, now_ms), Verdict::Tx(0));
        assert_eq!(
            EthernetFrame::new_checked(&f[..]).unwrap().src(),
            DIRECTOR_MAC
        );
        dst_mac(&f)
    };
    for now in [20, 30, 40] {
        assert_eq!(ack(&mut w, now), mac);
    }
    // The real server moves (a gratuitous ARP moves an entry at once).
    let garp = arp(
        Operation::Request,
        (SPOOF_MAC, rs),
        (MacAddr::BROADCAST, rs),
    );
    w.handle(0, &mut garp.clone(), 2000);
    assert_eq!(w.shared.counters.neighbour_moved.get(), 1);
    w.refresh_neighbours();
    // Heard, not confirmed: stale, so the packet asks again; an answer
    // confirms it, and from then on packets do not ask.
    w.generated.clear();
    assert_eq!(ack(&mut w, 2001), SPOOF_MAC);
    assert_eq!(w.generated.len(), 1, "a stale entry is asked for");
    w.neigh.learn(rs, SPOOF_MAC, 2003);
    w.refresh_neighbours();
    w.generated.clear();
    for now in [2004, 3000, 100_000] {
        assert_eq!(ack(&mut w, now), SPOOF_MAC);
    }
    assert!(w.generated.is_empty(), "a reachable entry is not asked for");
    // A frame over the port's MTU (with DF) is refused as too big, as
    // without the memo: the memo's hop is for frames that fit.
    let (src, dst) = {
        let f = tcp(41000, ACK);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        (ip.src(), ip.dst())
    };
    let l4 = super::forwarding::tcp_l4(41000, 80, ACK, &[0; 100]);
    let mut big = super::forwarding::frame(
        (CLIENT_MAC, DIRECTOR_MAC),
        src,
        dst,
        ipv4::protocol::TCP,
        &l4,
        64,
        true,
    );
    let forwarded = w.shared.counters.forwarded.get();
    assert_eq!(
        w.handle(0, &mut big, 100_001),
        Verdict::Drop(DropReason::TooBig)
    );
    assert_eq!(w.shared.counters.forwarded.get(), forwarded);
    assert_eq!(ack(&mut w, 100_002), SPOOF_MAC);
    w.generated.clear();
    // Past half the expiry (300 s) since the confirmation: asked again.
    assert_eq!(ack(&mut w, 2003 + 150_000), SPOOF_MAC);
    assert_eq!(w.generated.len(), 1, "an ageing entry is asked for");
}
