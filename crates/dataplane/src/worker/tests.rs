//! Fixture-driven tests of the per-packet logic (katran style): a frame in,
//! a verdict and the exact bytes out.

use rvs_ipvs::conn::FlowKey;
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::TcpState;
use rvs_ipvs::{Command, ConnRow, DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use rvs_packet::arp::{ArpPacket, Operation};
use rvs_packet::fixtures;
use rvs_packet::icmp::{self, IcmpPacket};
use rvs_packet::ipv4::{self, Ipv4Packet};
use rvs_packet::{TcpSegment, UdpDatagram};

use super::burst::flow_key_hint;
use super::rows::conn_row;
use super::*;
use crate::neighbour::Neighbour;

const DIRECTOR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd1]);
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x50]);
const RS1_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const RS2_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const RS1: &str = "192.168.1.220";
const RS2: &str = "192.168.1.193";

fn worker() -> Worker {
    let cfg = WorkerConfig {
        id: 0,
        workers: 1,
        sharding: FlowSharding::with_seed(7),
        ports: vec![PortInfo {
            mac: DIRECTOR_MAC,
            addr: Ipv4Addr::new(192, 168, 1, 213),
            prefix_len: 24,
            mtu: 1500,
            addr6: None,
            kernel: false,
            vip_arp: VipArp::Always,
        }],
        routes: vec![],
        conn_capacity: 1000,
        timeouts: Timeouts::default(),
        arp_retry_ms: 1000,
        expire_budget: 64,
        sloppy_tcp: false,
        count_stats: true,
        defense: Default::default(),
    };
    Worker::new(
        cfg,
        Arc::new(NeighbourTable::new(300_000)),
        Arc::new(Templates::new()),
        Arc::new(WorkerShared::default()),
    )
}

fn vip_key(protocol: Protocol, port: u16) -> ServiceKey {
    ServiceKey {
        protocol,
        addr: "192.168.1.10".parse().unwrap(),
        port,
    }
}

/// The walkthrough's setup: rr over RS1 then RS2, both DR, MACs known.
fn walkthrough(protocol: Protocol, port: u16) -> Worker {
    walkthrough_with(protocol, port, "rr", 0)
}

/// The walkthrough's service with scheduler `sched` and its flags.
fn walkthrough_with(protocol: Protocol, port: u16, sched: &str, sched_flags: u32) -> Worker {
    let mut w = worker();
    let mut control = Director::new();
    let key = vip_key(protocol, port);
    let cmds = [
        Command::AddService(ServiceSpec {
            key,
            scheduler: sched.into(),
            sched_flags,
            persistent: None,
            netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            one_packet: false,
        }),
        Command::AddDest(key, dest(RS1)),
        Command::AddDest(key, dest(RS2)),
    ];
    for c in cmds {
        let ch = control.apply(&c).unwrap();
        w.apply(&WorkerMsg::Change(ch), 0);
    }
    // Worker 0 asked for both MACs as the dests were added.
    assert_eq!(w.generated.len(), 2);
    w.generated.clear();
    w.neigh.learn(RS1.parse::<Ipv4Addr>().unwrap(), RS1_MAC, 0);
    w.neigh.learn(RS2.parse::<Ipv4Addr>().unwrap(), RS2_MAC, 0);
    w.neigh_reader.refresh();
    w
}

fn dest(a: &str) -> DestSpec {
    DestSpec {
        addr: a.parse().unwrap(),
        port: 80,
        fwd: FwdMethod::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    }
}

/// The active and inactive connections of the walkthrough service's real
/// server at `addr`.
fn counts(w: &Worker, addr: &str) -> (u32, u32) {
    let svc = w.director.service(&vip_key(Protocol::Tcp, 80)).unwrap();
    let d = svc
        .dests
        .iter()
        .find(|d| d.spec.addr.to_string() == addr)
        .unwrap();
    (d.shared.active(), d.shared.inactive())
}

/// The flow of [`tcp`]'s segments from this client port.
fn client_flow(cport: u16) -> FlowKey {
    FlowKey {
        protocol: Protocol::Tcp,
        caddr: "192.168.1.50".parse().unwrap(),
        cport,
        vaddr: "192.168.1.10".parse().unwrap(),
        vport: 80,
    }
}

/// A TCP segment from the client with the given source port and flags.
fn tcp(cport: u16, flags: u8) -> Vec<u8> {
    let mut f = fixtures::TCP_SYN.to_vec();
    let (src, dst) = {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        (ip.src(), ip.dst())
    };
    let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
    let mut t = TcpSegment::new_checked(ip.payload_mut()).unwrap();
    t.set_src_port(cport);
    let b = ip.payload_mut();
    b[13] = flags;
    let mut t = TcpSegment::new_checked(b).unwrap();
    t.fill_checksum_v4(src, dst);
    f
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN_ACK: u8 = 0x11;

fn dst_mac(f: &[u8]) -> MacAddr {
    EthernetFrame::new_checked(f).unwrap().dst()
}

#[test]
fn answers_arp_for_vip_and_own_address() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let mut f = fixtures::ARP_REQUEST.to_vec();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.dst(), CLIENT_MAC);
    assert_eq!(eth.src(), DIRECTOR_MAC);
    let a = ArpPacket::new_checked(eth.payload()).unwrap();
    assert_eq!(a.operation(), Operation::Reply);
    assert_eq!(a.sender_ip(), Ipv4Addr::new(192, 168, 1, 10));
    assert_eq!(a.sender_mac(), DIRECTOR_MAC);
    assert_eq!(a.target_mac(), CLIENT_MAC);

    // For the director's own address too, and the asker is learned (as
    // Linux does: stale, so that the first packet to it asks again).
    let mut f = fixtures::ARP_REQUEST.to_vec();
    f[14 + 24..14 + 28].copy_from_slice(&[192, 168, 1, 213]);
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    assert_eq!(
        w.neigh.lookup(Ipv4Addr::new(192, 168, 1, 50), 1),
        Neighbour::Stale(CLIENT_MAC)
    );

    // Not for an address of ours: ignored.
    let mut f = fixtures::ARP_REQUEST.to_vec();
    f[14 + 24..14 + 28].copy_from_slice(&[192, 168, 1, 99]);
    assert_eq!(
        w.handle(0, &mut f, 1),
        Verdict::Drop(DropReason::ArpNotForUs)
    );
}

#[test]
fn dr_rewrites_only_macs_and_alternates_rr() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let orig = tcp(40000, SYN);
    let mut f = orig.clone();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    // Newest dest (RS2) first.
    let mut want = orig.clone();
    want[0..6].copy_from_slice(&RS2_MAC.0);
    want[6..12].copy_from_slice(&DIRECTOR_MAC.0);
    assert_eq!(f, want, "DR changes the two MACs and nothing else");

    let mut seen = vec![];
    for p in 40001..40005 {
        let mut f = tcp(p, SYN);
        assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
        seen.push(dst_mac(&f));
    }
    assert_eq!(seen, [RS1_MAC, RS2_MAC, RS1_MAC, RS2_MAC]);
    assert_eq!(w.shared.counters.new_connections.get(), 5);
}

#[test]
fn flow_keeps_its_server_after_the_list_changes() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let mut f = tcp(40000, SYN);
    w.handle(0, &mut f, 1);
    assert_eq!(dst_mac(&f), RS2_MAC);
    // Remove RS2: the flow still goes there, new flows do not.
    let mut control = Director::new();
    let key = vip_key(Protocol::Tcp, 80);
    for c in [
        Command::AddService(w.director.service(&key).unwrap().spec.clone()),
        Command::AddDest(key, dest(RS1)),
        Command::AddDest(key, dest(RS2)),
    ] {
        control.apply(&c).unwrap();
    }
    let del = control
        .apply(&Command::DelDest(key, dest(RS2).key()))
        .unwrap();
    w.apply(&WorkerMsg::Change(del), 2);
    let mut f = tcp(40000, ACK);
    assert_eq!(w.handle(0, &mut f, 3), Verdict::Tx(0));
    assert_eq!(dst_mac(&f), RS2_MAC);
    for p in 41000..41004 {
        let mut f = tcp(p, SYN);
        w.handle(0, &mut f, 3);
        assert_eq!(dst_mac(&f), RS1_MAC);
    }
}

#[test]
fn held_frames_are_dropped_when_no_answer_comes() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.neigh = Arc::new(NeighbourTable::new(300_000));
    w.neigh_reader = w.neigh.reader();
    assert_eq!(w.handle(0, &mut tcp(40000, SYN), 1000), Verdict::Consumed);
    w.generated.clear();
    // Three retry intervals (1 s each here) and no answer: dropped, counted.
    w.housekeeping(3999);
    assert_eq!(w.shared.counters.drops(DropReason::NeighbourMiss), 0);
    w.housekeeping(4000);
    assert!(w.generated.is_empty());
    assert_eq!(w.shared.counters.drops(DropReason::NeighbourMiss), 1);
    // A flood towards next hops that never answer holds 64 KiB at most for
    // each (rr sends new flows to RS1 and RS2 in turn: two of them). More
    // flows than the table holds: table pressure lets every one through.
    let mut held = 0;
    for p in 0..5000u16 {
        if w.handle(0, &mut tcp(41000 + p, SYN), 5000) == Verdict::Consumed {
            held += 1;
        }
    }
    assert!(held < 5000 && held * 54 <= 2 * 64 * 1024, "{held} held");
}

#[test]
fn counters_follow_tcp_states() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let mut f = tcp(40000, SYN);
    w.handle(0, &mut f, 1);
    let rs2 = w
        .director
        .service(&vip_key(Protocol::Tcp, 80))
        .unwrap()
        .dests[0]
        .shared
        .clone();
    // SYN_RECV counts as active, as in the kernel since 4.12 (checked in the
    // kernel VM: oracle/scenarios/states/dr.toml).
    assert_eq!((rs2.active(), rs2.inactive()), (1, 0));
    w.handle(0, &mut tcp(40000, ACK), 2);
    assert_eq!((rs2.active(), rs2.inactive()), (1, 0));
    w.handle(0, &mut tcp(40000, FIN_ACK), 3);
    assert_eq!((rs2.active(), rs2.inactive()), (0, 1));
    // FIN_WAIT: 120 s (kept in whole seconds, rounded up), then the sweep
    // removes it.
    w.housekeeping(3 + 120_000);
    assert_eq!(w.conns.len(), 1);
    w.housekeeping(3 + 121_000);
    assert_eq!(w.conns.len(), 0);
    assert_eq!((rs2.active(), rs2.inactive()), (0, 0));
}

#[test]
fn syn_reuses_a_closed_connection() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.handle(0, &mut tcp(40000, SYN), 1);
    w.handle(0, &mut tcp(40000, 0x04), 2); // RST: SR -> SR? no: INPUT_ONLY rst from SR is SR
    w.handle(0, &mut tcp(40000, 0x14), 2); // RST|ACK from SR: still SR
                                           // Drive it to CLOSE: ES then RST.
    w.handle(0, &mut tcp(40000, ACK), 3);
    w.handle(0, &mut tcp(40000, 0x04), 4);
    let key = client_flow(40000);
    let r = w.conns.lookup(&key);
    assert_eq!(w.conns.get(r.unwrap()).state, TcpState::Close);
    let mut f = tcp(40000, SYN);
    w.handle(0, &mut f, 5);
    assert_eq!(dst_mac(&f), RS1_MAC, "rescheduled: rr moved on");
    assert_eq!(w.shared.counters.new_connections.get(), 2);
    // The new connection took the old one's place: one connection, in
    // SYN_RECV, counted by its new server only.
    assert_eq!(w.conns.len(), 1);
    assert_eq!(w.conns.lookup(&key), r);
    assert_eq!(w.conns.get(r.unwrap()).state, TcpState::SynRecv);
    assert_eq!((counts(&w, RS1), counts(&w, RS2)), ((1, 0), (0, 0)));
    let vip = vip_key(Protocol::Tcp, 80);
    // Closed again, and a SYN that opens nothing (its server is gone:
    // weight 0): the closed connection is removed all the same.
    w.handle(0, &mut tcp(40000, ACK), 6);
    w.handle(0, &mut tcp(40000, 0x04), 7);
    assert_eq!(w.conns.get(r.unwrap()).state, TcpState::Close);
    let mut control = Director::new();
    for c in [
        Command::AddService(w.director.service(&vip).unwrap().spec.clone()),
        Command::AddDest(vip, dest(RS1)),
        Command::AddDest(vip, dest(RS2)),
    ] {
        control.apply(&c).unwrap();
    }
    for rs in [RS1, RS2] {
        let zero = DestSpec {
            weight: 0,
            ..dest(rs)
        };
        let ch = control.apply(&Command::EditDest(vip, zero)).unwrap();
        w.apply(&WorkerMsg::Change(ch), 8);
    }
    assert_eq!(
        w.handle(0, &mut tcp(40000, SYN), 9),
        Verdict::Drop(DropReason::NoDestination)
    );
    assert_eq!(w.conns.len(), 0);
    assert_eq!(w.conns.lookup(&key), None);
    assert_eq!((counts(&w, RS1), counts(&w, RS2)), ((0, 0), (0, 0)));
}

/// A SYN reopening a closed flow is scheduled while the old connection
/// still counts on its server, as in the kernel (whose timer ends the old
/// one after): lc sends it to the other server. Checked in the kernel VM
/// (oracle/scenarios/states/reuse.toml).
#[test]
fn a_reopened_flow_is_scheduled_before_its_old_connection_ends() {
    let mut w = walkthrough_with(Protocol::Tcp, 80, "lc", 0);
    let mut f = tcp(40000, SYN);
    w.handle(0, &mut f, 1);
    let first = dst_mac(&f);
    w.handle(0, &mut tcp(40000, ACK), 2);
    w.handle(0, &mut tcp(40000, 0x04), 3);
    let mut f = tcp(40000, SYN);
    assert_eq!(w.handle(0, &mut f, 4), Verdict::Tx(0));
    assert_ne!(dst_mac(&f), first, "the closed connection still counted");
    assert_eq!(w.conns.len(), 1);
    assert_eq!(w.shared.counters.new_connections.get(), 2);
    let (rs1, rs2) = (counts(&w, RS1), counts(&w, RS2));
    assert_eq!(rs1.0 + rs1.1 + rs2.0 + rs2.1, 1, "{rs1:?} {rs2:?}");
}

/// A persistent service's closed connection is controlled by its template,
/// so a SYN does not reopen it (the kernel's `is_new_conn_expected`): the
/// same connection goes on, to the same server, and no new one is counted.
#[test]
fn a_controlled_connection_is_not_reopened() {
    let mut w = with_service(ServiceSpec {
        persistent: Some(300),
        ..rr_spec(Protocol::Tcp, 80)
    });
    let mut f = syn_from([192, 168, 1, 50], 40000, 80);
    w.handle(0, &mut f, 1);
    let first = dst_mac(&f);
    let key = client_flow(40000);
    let r = w.conns.lookup(&key).unwrap();
    w.conns
        .on_tcp(r, false, Some(rvs_ipvs::tcp_state::Event::Ack), 2);
    w.conns
        .on_tcp(r, false, Some(rvs_ipvs::tcp_state::Event::Rst), 3);
    assert_eq!(w.conns.get(r).state, TcpState::Close);
    let mut f = syn_from([192, 168, 1, 50], 40000, 80);
    assert_eq!(w.handle(0, &mut f, 4), Verdict::Tx(0));
    assert_eq!(dst_mac(&f), first);
    assert_eq!(w.conns.lookup(&key), Some(r));
    assert_eq!(w.conns.get(r).state, TcpState::SynRecv);
    assert_eq!(w.shared.counters.new_connections.get(), 1);
}

#[test]
fn non_syn_of_unknown_flow_is_dropped() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    assert_eq!(
        w.handle(0, &mut tcp(40000, ACK), 1),
        Verdict::Drop(DropReason::NoConnection)
    );
    assert_eq!(w.shared.counters.drops(DropReason::NoConnection), 1);
}

#[test]
fn sloppy_tcp_schedules_mid_flow_packets() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.cfg.sloppy_tcp = true;
    assert_eq!(w.handle(0, &mut tcp(40000, ACK), 1), Verdict::Tx(0));
    assert_eq!(w.conns.len(), 1);
    assert_eq!(
        w.handle(0, &mut tcp(40001, 0x04), 1),
        Verdict::Drop(DropReason::NoConnection),
        "not on a RST"
    );
}

/// Two directors behind ECMP with the same `mh` (or `sh`) service, built
/// from the same adds: a flow whose SYN went to the first and whose later
/// packets reach the second (no state there) goes to the same real server
/// from both, with sloppy_tcp; the second's entry starts ESTABLISHED, as
/// the kernel's does from an ACK in sloppy mode.
#[test]
fn sloppy_mid_flow_packets_reach_the_real_server_the_first_director_chose() {
    // The port flag spreads one client's flows over both real servers.
    for sched in ["mh", "sh"] {
        let flags = rvs_ipvs::sched::sched_flags::SCHED2;
        let mut first = walkthrough_with(Protocol::Tcp, 80, sched, flags);
        let mut second = walkthrough_with(Protocol::Tcp, 80, sched, flags);
        second.cfg.sloppy_tcp = true;
        let mut used = std::collections::BTreeSet::new();
        for cport in 40000..40064 {
            let mut syn = tcp(cport, SYN);
            assert_eq!(first.handle(0, &mut syn, 1), Verdict::Tx(0));
            let mut ack = tcp(cport, ACK);
            assert_eq!(second.handle(0, &mut ack, 2), Verdict::Tx(0), "{sched}");
            assert_eq!(dst_mac(&ack), dst_mac(&syn), "{sched}, port {cport}");
            used.insert(dst_mac(&syn).0);
            let c = second.conns.lookup(&client_flow(cport)).unwrap();
            assert_eq!(second.conns.get(c).state, TcpState::Established);
        }
        assert_eq!(used.len(), 2, "{sched}: flows on both real servers");
        assert_eq!(second.shared.counters.new_connections.get(), 64);
    }
}

#[test]
fn udp_flows_are_sticky() {
    let mut w = walkthrough(Protocol::Udp, 53);
    let mut f = fixtures::UDP_DNS.to_vec();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    let first = dst_mac(&f);
    for t in 2..6 {
        let mut f = fixtures::UDP_DNS.to_vec();
        w.handle(0, &mut f, t);
        assert_eq!(dst_mac(&f), first);
    }
    assert_eq!(w.shared.counters.new_connections.get(), 1);
}

#[test]
fn unknown_neighbour_is_asked_for_and_counted() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.neigh = Arc::new(NeighbourTable::new(300_000));
    w.neigh_reader = w.neigh.reader();
    let mut f = tcp(40000, SYN);
    // The frame is held until the real server's MAC is known (the kernel
    // queues it on the unresolved neighbour too).
    assert_eq!(w.handle(0, &mut f, 5000), Verdict::Consumed);
    assert_eq!(w.shared.counters.neighbour_queued.get(), 1);
    assert_eq!(w.generated.len(), 1);
    let (port, req) = &w.generated[0];
    assert_eq!(*port, 0);
    let eth = EthernetFrame::new_checked(&req[..]).unwrap();
    assert_eq!(eth.dst(), MacAddr::BROADCAST);
    let a = ArpPacket::new_checked(eth.payload()).unwrap();
    assert_eq!(a.target_ip(), RS2.parse::<Ipv4Addr>().unwrap());
    assert_eq!(a.sender_ip(), Ipv4Addr::new(192, 168, 1, 213));
    // The retransmitted SYN within the retry interval asks no again.
    w.handle(0, &mut tcp(40000, SYN), 5100);
    assert_eq!(w.generated.len(), 1);
    w.generated.clear();
    w.housekeeping(5150);
    assert!(w.generated.is_empty(), "nothing leaves before the answer");
    // The reply teaches the MAC; the held SYNs go out, then new ones go
    // straight through.
    let mut reply = vec![0u8; 42];
    {
        let mut e = EthernetFrame::new_unchecked(&mut reply[..]);
        e.set_dst(DIRECTOR_MAC);
        e.set_src(RS2_MAC);
        e.set_ethertype(EtherType::Arp);
    }
    ArpPacket::emit(
        &mut reply[14..],
        Operation::Reply,
        RS2_MAC,
        RS2.parse().unwrap(),
        DIRECTOR_MAC,
        Ipv4Addr::new(192, 168, 1, 213),
    )
    .unwrap();
    assert_eq!(w.handle(0, &mut reply, 5200), Verdict::Consumed);
    w.housekeeping(5250);
    assert_eq!(w.sent.len(), 2);
    for (port, held) in &w.sent {
        assert_eq!(*port, 0);
        assert_eq!(dst_mac(held), RS2_MAC);
        assert_eq!(held[14 + 9], 6, "still the TCP SYN");
    }
    let mut f = tcp(40000, SYN);
    assert_eq!(w.handle(0, &mut f, 5300), Verdict::Tx(0));
    assert_eq!(dst_mac(&f), RS2_MAC);
}

/// Found by fuzzing (fuzz/: worker_handle): a frame held for its next
/// hop's MAC was counted as forwarded when held and again when sent, and
/// as forwarded and dropped when no answer came.
#[test]
fn a_held_frame_counts_as_forwarded_once_when_it_leaves() {
    let forwarded = |w: &Worker| w.shared.counters.forwarded.get();
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.neigh = Arc::new(NeighbourTable::new(300_000));
    w.neigh_reader = w.neigh.reader();
    assert_eq!(w.handle(0, &mut tcp(40000, SYN), 1000), Verdict::Consumed);
    assert_eq!(forwarded(&w), 0, "held, not sent yet");
    w.neigh
        .learn(RS2.parse::<Ipv4Addr>().unwrap(), RS2_MAC, 1100);
    w.refresh_neighbours();
    w.housekeeping(1100);
    assert_eq!(w.sent.last().map(|(_, f)| dst_mac(f)), Some(RS2_MAC));
    assert_eq!(forwarded(&w), 1, "counted once, when it left");
    // Towards a neighbour that never answers: dropped, and not forwarded.
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.neigh = Arc::new(NeighbourTable::new(300_000));
    w.neigh_reader = w.neigh.reader();
    assert_eq!(w.handle(0, &mut tcp(40000, SYN), 1000), Verdict::Consumed);
    w.housekeeping(5000);
    assert_eq!(w.shared.counters.drops(DropReason::NeighbourMiss), 1);
    assert_eq!(forwarded(&w), 0);
}

#[test]
fn echo_to_vip_is_answered() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let mut f = fixtures::ICMP_ECHO.to_vec();
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.dst(), CLIENT_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src(), Ipv4Addr::new(192, 168, 1, 10));
    assert_eq!(ip.dst(), Ipv4Addr::new(192, 168, 1, 50));
    let icmp = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), icmp::kind::ECHO_REPLY);
    assert!(icmp.verify_checksum());
}

/// Each malformed frame is dropped under its own reason, never panicking.
#[test]
fn bad_packets_dropped_by_reason() {
    let syn = tcp(40000, SYN);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = syn.clone();
        f(&mut v);
        v
    };
    // Recomputes the header checksum without validating the header, so
    // that only the broken field is wrong.
    let refill = |v: &mut Vec<u8>| {
        let hl = ((v[14] & 0x0f) as usize) * 4;
        v[24..26].copy_from_slice(&[0, 0]);
        let c = !rvs_packet::checksum::sum(&v[14..14 + hl]);
        v[24..26].copy_from_slice(&c.to_be_bytes());
    };
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        (
            "runt frame",
            syn[..10].to_vec(),
            DropReason::TruncatedEthernet,
        ),
        (
            "ethernet header only",
            syn[..14].to_vec(),
            DropReason::TruncatedIpv4,
        ),
        (
            "truncated IP header",
            syn[..30].to_vec(),
            DropReason::TruncatedIpv4,
        ),
        (
            "IP version 6 in an IPv4 frame",
            with(&|v| v[14] = 0x65),
            DropReason::BadIpVersion,
        ),
        ("IHL below 5", with(&|v| v[14] = 0x44), DropReason::BadIhl),
        (
            "IHL past the packet",
            with(&|v| {
                v[14] = 0x4f;
                v.truncate(50)
            }),
            DropReason::BadIhl,
        ),
        (
            "total length past the frame",
            with(&|v| {
                v[16..18].copy_from_slice(&1000u16.to_be_bytes());
                refill(v)
            }),
            DropReason::BadTotalLength,
        ),
        (
            "total length below the header",
            with(&|v| {
                v[16..18].copy_from_slice(&12u16.to_be_bytes());
                refill(v)
            }),
            DropReason::BadTotalLength,
        ),
        (
            "bad header checksum",
            with(&|v| v[24] ^= 0xff),
            DropReason::BadIpChecksum,
        ),
        (
            "IP options",
            with(&|v| {
                // Grow the header by one 4-byte option (NOPs + EOL).
                v.splice(34..34, [1u8, 1, 1, 0]);
                v[14] = 0x46;
                let tl = u16::from_be_bytes([v[16], v[17]]) + 4;
                v[16..18].copy_from_slice(&tl.to_be_bytes());
                refill(v)
            }),
            DropReason::IpOptions,
        ),
        (
            "truncated TCP header",
            with(&|v| {
                v.truncate(14 + 20 + 10);
                v[16..18].copy_from_slice(&30u16.to_be_bytes());
                refill(v)
            }),
            DropReason::BadL4Header,
        ),
        (
            "unknown ethertype",
            with(&|v| v[12..14].copy_from_slice(&[0x88, 0xcc])),
            DropReason::UnknownEthertype,
        ),
        (
            "IPv6 on a port without an IPv6 address",
            with(&|v| v[12..14].copy_from_slice(&[0x86, 0xdd])),
            DropReason::NoIpv6,
        ),
        (
            "someone else's MAC",
            with(&|v| v[0..6].copy_from_slice(&RS1_MAC.0)),
            DropReason::NotOurMac,
        ),
        (
            "our own frame looped",
            with(&|v| v[6..12].copy_from_slice(&DIRECTOR_MAC.0)),
            DropReason::Looped,
        ),
        (
            "not for a VIP",
            with(&|v| {
                v[30..34].copy_from_slice(&[192, 168, 1, 77]);
                refill(v)
            }),
            DropReason::NotForUs,
        ),
        (
            "VIP but no such port",
            with(&|v| {
                let mut ip = Ipv4Packet::new_checked(&mut v[14..]).unwrap();
                TcpSegment::new_checked(ip.payload_mut())
                    .unwrap()
                    .set_dst_port(81);
            }),
            DropReason::NoService,
        ),
        (
            "TCP to the director itself",
            with(&|v| {
                v[30..34].copy_from_slice(&[192, 168, 1, 213]);
                refill(v)
            }),
            DropReason::ToDirector,
        ),
        (
            "ARP cut short",
            fixtures::ARP_REQUEST[..30].to_vec(),
            DropReason::BadArp,
        ),
    ];
    for (what, mut frame, reason) in cases {
        let mut w = walkthrough(Protocol::Tcp, 80);
        assert_eq!(w.handle(0, &mut frame, 1), Verdict::Drop(reason), "{what}");
        assert_eq!(w.shared.counters.drops(reason), 1, "{what}");
        assert_eq!(w.conns.len(), 0, "{what}: no state created");
    }
}

#[test]
fn full_table_drops_new_flows_but_keeps_old_ones() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.conns = ConnTable::new(2, Timeouts::default());
    assert_eq!(w.handle(0, &mut tcp(1, SYN), 1), Verdict::Tx(0));
    assert_eq!(w.handle(0, &mut tcp(2, SYN), 1), Verdict::Tx(0));
    assert_eq!(
        w.handle(0, &mut tcp(3, SYN), 1),
        Verdict::Drop(DropReason::ConnTableFull)
    );
    // The refused SYN is not a connection: only what was recorded counts.
    assert_eq!(w.shared.counters.new_connections.get(), 2);
    assert_eq!(w.handle(0, &mut tcp(1, ACK), 2), Verdict::Tx(0));
}

/// A worker with one service built from `spec` and dests RS1 then RS2.
fn with_service(spec: ServiceSpec) -> Worker {
    let mut w = worker();
    let mut control = Director::new();
    let key = spec.key;
    let rs = |a| DestSpec {
        port: key.port,
        ..dest(a)
    };
    for c in [
        Command::AddService(spec),
        Command::AddDest(key, rs(RS1)),
        Command::AddDest(key, rs(RS2)),
    ] {
        let ch = control.apply(&c).unwrap();
        w.apply(&WorkerMsg::Change(ch), 0);
    }
    w.generated.clear();
    w.neigh.learn(RS1.parse::<Ipv4Addr>().unwrap(), RS1_MAC, 0);
    w.neigh.learn(RS2.parse::<Ipv4Addr>().unwrap(), RS2_MAC, 0);
    w.neigh_reader.refresh();
    w
}

fn rr_spec(protocol: Protocol, port: u16) -> ServiceSpec {
    ServiceSpec {
        key: vip_key(protocol, port),
        scheduler: "rr".into(),
        sched_flags: 0,
        persistent: None,
        netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
        one_packet: false,
    }
}

/// The SYN fixture from another client address and port.
fn syn_from(client: [u8; 4], cport: u16, dport: u16) -> Vec<u8> {
    let mut f = tcp(cport, SYN);
    f[26..30].copy_from_slice(&client);
    let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
    ip.fill_checksum();
    let (src, dst) = (ip.src(), ip.dst());
    let mut t = TcpSegment::new_checked(ip.payload_mut()).unwrap();
    t.set_dst_port(dport);
    t.fill_checksum_v4(src, dst);
    f
}

#[test]
fn persistence_pins_a_client_network() {
    let mut w = with_service(ServiceSpec {
        persistent: Some(360),
        netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::new(255, 255, 255, 0)),
        ..rr_spec(Protocol::Tcp, 80)
    });
    let mut first = None;
    for (i, client) in [[192, 168, 1, 50], [192, 168, 1, 51], [192, 168, 1, 52]]
        .iter()
        .enumerate()
    {
        for p in 0..3 {
            let mut f = syn_from(*client, 40000 + (i * 10 + p) as u16, 80);
            assert_eq!(w.handle(0, &mut f, 10), Verdict::Tx(0));
            let mac = dst_mac(&f);
            assert_eq!(*first.get_or_insert(mac), mac, "same /24, same server");
        }
    }
    assert_eq!(w.templates.len(), 1);
    let rs2 = w
        .director
        .service(&vip_key(Protocol::Tcp, 80))
        .unwrap()
        .dests[0]
        .shared
        .clone();
    assert_eq!(
        rs2.persistconns.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Another network gets its own template; rr moved on.
    let mut f = syn_from([10, 1, 1, 1], 40000, 80);
    w.handle(0, &mut f, 10);
    assert_ne!(Some(dst_mac(&f)), first);
    assert_eq!(w.templates.len(), 2);
}

#[test]
fn port_zero_service_takes_every_port() {
    let mut w = with_service(ServiceSpec {
        persistent: Some(60),
        ..rr_spec(Protocol::Tcp, 0)
    });
    for port in [22, 80, 443] {
        let mut f = syn_from([192, 168, 1, 50], 40000 + port, port);
        assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0), "port {port}");
    }
    assert_eq!(w.conns.len(), 3);
    assert!(
        w.conns.iter().all(|c| c.dport == c.key.vport),
        "DR keeps the port"
    );
    assert_eq!(w.templates.len(), 1, "one template for the client");
}

/// A scanner's one source port sweeping a port-zero service's ports: its
/// connections share one hash in the table, so past
/// `CONNS_PER_CLIENT_ENDPOINT` the rest are dropped and counted; another
/// source port is not affected.
#[test]
fn one_client_endpoint_sweeping_ports_is_bounded() {
    use rvs_ipvs::conn::CONNS_PER_CLIENT_ENDPOINT;
    let mut w = with_service(ServiceSpec {
        persistent: Some(60),
        ..rr_spec(Protocol::Tcp, 0)
    });
    let sweep = CONNS_PER_CLIENT_ENDPOINT as u16 + 4;
    for port in 1..=sweep {
        let mut f = syn_from([192, 168, 1, 50], 40000, port);
        let want = if port as usize <= CONNS_PER_CLIENT_ENDPOINT {
            Verdict::Tx(0)
        } else {
            Verdict::Drop(DropReason::ClientEndpointFull)
        };
        assert_eq!(w.handle(0, &mut f, 1), want, "port {port}");
    }
    assert_eq!(w.conns.len(), CONNS_PER_CLIENT_ENDPOINT);
    assert_eq!(w.shared.counters.drops(DropReason::ClientEndpointFull), 4);
    let mut f = syn_from([192, 168, 1, 50], 40001, 1);
    assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    assert_eq!(w.templates.len(), 1, "one template for the client");
}

#[test]
fn one_packet_scheduling_keeps_no_connection() {
    let mut w = with_service(ServiceSpec {
        one_packet: true,
        ..rr_spec(Protocol::Udp, 53)
    });
    let mut seen = vec![];
    for t in 0..4 {
        let mut f = fixtures::UDP_DNS.to_vec();
        assert_eq!(w.handle(0, &mut f, t), Verdict::Tx(0));
        seen.push(dst_mac(&f));
    }
    assert_eq!(
        seen,
        [RS2_MAC, RS1_MAC, RS2_MAC, RS1_MAC],
        "every datagram scheduled"
    );
    assert_eq!(w.conns.len(), 0);
}

/// Shares of new flows per real server (by MAC) after `flows` SYNs from
/// distinct client ports, spread over `workers` replicas the way RSS would
/// (by a hash of the flow).
fn shares(scheduler: &str, weights: &[u32], workers: usize, flows: u32) -> Vec<f64> {
    let key = vip_key(Protocol::Tcp, 80);
    let neigh = Arc::new(NeighbourTable::new(300_000));
    let templates = Arc::new(Templates::new());
    let mut ws: Vec<Worker> = (0..workers)
        .map(|id| {
            let mut w = worker();
            w.cfg.id = id;
            w.cfg.conn_capacity = flows as usize;
            w.conns = ConnTable::new(flows as usize, Timeouts::default());
            w.neigh = neigh.clone();
            w.neigh_reader = neigh.reader();
            w.templates = templates.clone();
            w
        })
        .collect();
    let mut control = Director::new();
    let mut cmds = vec![Command::AddService(ServiceSpec {
        scheduler: scheduler.into(),
        ..rr_spec(Protocol::Tcp, 80)
    })];
    for (i, w) in weights.iter().enumerate() {
        let addr = format!("192.168.1.{}", 100 + i);
        neigh.learn(
            addr.parse::<Ipv4Addr>().unwrap(),
            MacAddr([2, 0, 0, 0, 1, i as u8]),
            0,
        );
        cmds.push(Command::AddDest(
            key,
            DestSpec {
                weight: *w,
                ..dest(&addr)
            },
        ));
    }
    for c in cmds {
        let ch = control.apply(&c).unwrap();
        for w in &mut ws {
            w.apply(&WorkerMsg::Change(ch.clone()), 0);
        }
    }
    for w in &mut ws {
        w.refresh_neighbours();
    }
    let mut count = vec![0u32; weights.len()];
    for i in 0..flows {
        let cport = 1024 + (i % 60000) as u16;
        let client = [10, 0, (i / 60000) as u8, 1];
        let mut f = syn_from(client, cport, 80);
        // A multiplicative hash of the port stands in for the NIC's RSS.
        let wi = ((cport as u32).wrapping_mul(0x9e37_79b9) >> 16) as usize % workers;
        assert_eq!(ws[wi].handle(0, &mut f, 1), Verdict::Tx(0));
        count[dst_mac(&f).0[5] as usize] += 1;
    }
    count.iter().map(|&c| c as f64 / flows as f64).collect()
}

/// Two workers each run their own wrr cursor and read the shared connection
/// counters; the split of 10,000 new flows stays within 2 points of what one
/// worker gives.
#[test]
fn two_workers_keep_wrr_and_wlc_proportions() {
    for (sched, weights) in [
        ("wrr", vec![5, 3, 1]),
        ("wlc", vec![3, 1, 1]),
        ("wrr", vec![1, 1]),
    ] {
        let one = shares(sched, &weights, 1, 10_000);
        let two = shares(sched, &weights, 2, 10_000);
        let total: u32 = weights.iter().sum();
        for i in 0..weights.len() {
            let ideal = weights[i] as f64 / total as f64;
            assert!((one[i] - ideal).abs() < 0.01, "{sched} one worker {one:?}");
            assert!(
                (one[i] - two[i]).abs() <= 0.02,
                "{sched} {weights:?}: one worker {one:?}, two workers {two:?}"
            );
        }
    }
}

mod defense;
mod forwarding;
mod fragments;
mod kernel;
mod link;
mod listing;
mod stats;
mod sync;
mod v6;
