//! The connection table's unit and property tests.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::expiry::RECLAIM_SCAN;
use super::*;
use crate::dest::DestSpec;
use crate::tcp_state::Event;

fn dest() -> Dest {
    let spec = DestSpec {
        addr: "10.0.0.1".parse().unwrap(),
        port: 80,
        fwd: FwdMethod::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    };
    Dest {
        spec,
        last_weight: 1,
        shared: DestShared::new(&spec),
    }
}

fn key(cport: u16) -> FlowKey {
    FlowKey {
        protocol: Protocol::Tcp,
        caddr: "192.168.1.50".parse().unwrap(),
        cport,
        vaddr: "192.168.1.10".parse().unwrap(),
        vport: 80,
    }
}

#[test]
fn counters_follow_dr_handshake_and_expiry() {
    let d = dest();
    let mut t = ConnTable::new(10, Timeouts::default());
    let r = t.insert(key(1), &d, 0).unwrap();
    assert_eq!((d.shared.active(), d.shared.inactive()), (0, 1));
    t.on_tcp(r, false, Some(Event::Syn), 0);
    assert_eq!(t.get(r).state, TcpState::SynRecv);
    t.on_tcp(r, false, Some(Event::Ack), 0);
    assert_eq!(t.get(r).state, TcpState::Established);
    assert_eq!((d.shared.active(), d.shared.inactive()), (1, 0));
    t.on_tcp(r, false, Some(Event::Fin), 1000);
    assert_eq!(t.get(r).state, TcpState::FinWait);
    assert_eq!((d.shared.active(), d.shared.inactive()), (0, 1));
    // FIN_WAIT lasts 120 s.
    assert_eq!(t.expire_some(120_999, 100), 0);
    assert_eq!(t.expire_some(121_000, 100), 1);
    assert!(t.is_empty());
    assert_eq!((d.shared.active(), d.shared.inactive()), (0, 0));
}

/// 32 bytes of slot and 7.9 of index: at most 40 bytes a connection,
/// with table pressure on (as rvsd runs) and half the connections NAT.
#[test]
fn ipv4_slot_is_32_bytes_and_fill_stays_within_40_per_conn() {
    assert_eq!(V4_SLOT_BYTES, 32);
    let (dr, nat) = (dest(), nat_dest());
    let n = 100_000;
    let mut t = ConnTable::new(n, Timeouts::default());
    t.set_reclaim_half_open(true);
    for i in 0..n as u32 {
        let k = FlowKey {
            protocol: Protocol::Tcp,
            caddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            cport: (i % 60000) as u16,
            vaddr: "192.168.1.10".parse().unwrap(),
            vport: 80,
        };
        t.insert(k, if i % 2 == 0 { &dr } else { &nat }, 0).unwrap();
    }
    let per = t.bytes() as f64 / n as f64;
    assert!(per <= 40.0, "{per} bytes per connection");
}

#[test]
fn ipv6_and_nat_replies() {
    let spec = DestSpec {
        addr: "fd00:2::2".parse().unwrap(),
        port: 8080,
        fwd: FwdMethod::Masq,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    };
    let d = Dest {
        spec,
        last_weight: 1,
        shared: DestShared::new(&spec),
    };
    let mut t = ConnTable::new(10, Timeouts::default());
    let mut refs = vec![];
    // Enough entries to make the IPv6 index grow (it starts empty).
    for p in 1..=8u16 {
        let k = FlowKey {
            protocol: Protocol::Tcp,
            caddr: "fd00:1::2".parse().unwrap(),
            cport: p,
            vaddr: "fd00:99::10".parse().unwrap(),
            vport: 80,
        };
        refs.push((k, t.insert(k, &d, 0).unwrap()));
    }
    for (k, r) in &refs {
        assert_eq!(t.lookup(k), Some(*r));
        let c = t.get(*r);
        assert_eq!(
            (c.daddr, c.dport, c.fwd),
            (spec.addr, 8080, FwdMethod::Masq)
        );
        assert_eq!(t.lookup_out(&c.out_key()), Some(*r));
    }
    let (k, r) = refs[3];
    let out = t.get(r).out_key();
    t.remove(r);
    assert_eq!(t.lookup(&k), None);
    assert_eq!(t.lookup_out(&out), None);
    assert_eq!(t.len(), 7);
    assert_eq!(d.shared.inactive(), 7);
    assert_eq!(t.iter().count(), 7);
}

/// A connection rebound (a SYN reopening a closed flow) ends as `remove`
/// ends it and starts as `insert` starts one, in the same slot: the old
/// dest and the new one count it as removal and insertion would, its NAT
/// replies are found by the new binding only, and the table's size and
/// slots are unchanged.
#[test]
fn a_rebound_slot_takes_the_flows_next_connection() {
    let (dr, nat) = (dest(), nat_dest());
    let mut t = ConnTable::new(10, Timeouts::default());
    let r = t.insert(key(7), &nat, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    t.on_tcp(r, true, Some(Event::Syn), 0);
    t.on_tcp(r, false, Some(Event::Ack), 0);
    assert_eq!((nat.shared.active(), nat.shared.inactive()), (1, 0));
    let out = t.get(r).out_key();
    assert_eq!(t.lookup_out(&out), Some(r));
    t.rebind(r, Protocol::Tcp, Binding::to_dest(&dr), 5_000);
    assert_eq!((nat.shared.active(), nat.shared.inactive()), (0, 0));
    assert_eq!(t.lookup(&key(7)), Some(r));
    assert_eq!(t.lookup_out(&out), None, "a DR connection has no replies");
    let c = t.get(r);
    assert_eq!(
        (c.daddr, c.fwd, c.state),
        (dr.spec.addr, FwdMethod::Route, TcpState::None)
    );
    assert_eq!((dr.shared.active(), dr.shared.inactive()), (0, 1));
    assert_eq!((t.len(), t.v4.slots.len()), (1, 1));
    // State NONE lasts 2 s from the rebinding.
    assert_eq!(t.expire_some(6_999, 10), 0);
    // Back to NAT: its replies are found again. Then to the same dest.
    t.rebind(r, Protocol::Tcp, Binding::to_dest(&nat), 6_000);
    assert_eq!(t.lookup_out(&out), Some(r));
    t.rebind(r, Protocol::Tcp, Binding::to_dest(&nat), 6_000);
    assert_eq!(t.lookup_out(&out), Some(r));
    assert_eq!((dr.shared.inactive(), nat.shared.inactive()), (0, 1));
    t.remove(r);
    assert_eq!(
        (t.len(), t.lookup(&key(7)), t.lookup_out(&out)),
        (0, None, None)
    );
    assert_eq!((dr.shared.inactive(), nat.shared.inactive()), (0, 0));
    // The slot is free again.
    assert_eq!(t.insert(key(8), &dr, 0).unwrap(), r);
}

/// `-e` of a tunnel server's `--tun-type`/`--tun-port` keeps its dest
/// (the same `DestShared`): connections made after the edit go by the
/// new tunnel while those made before keep theirs.
#[test]
fn edited_tunnel_reaches_new_connections_while_old_ones_live() {
    let ipip = FwdMethod::Tunnel(crate::types::TunSpec::default());
    let gue = FwdMethod::Tunnel(crate::types::TunSpec {
        kind: crate::types::TunKind::Gue,
        port: 6080,
        csum: crate::types::TunCsum::None,
    });
    let d = dest();
    let bind = |fwd| Binding {
        fwd,
        ..Binding::to_dest(&d)
    };
    let mut t = ConnTable::new(10, Timeouts::default());
    let old = t.insert_bound(key(1), bind(ipip), 0).unwrap();
    let new = t.insert_bound(key(2), bind(gue), 0).unwrap();
    assert_eq!(t.get(old).fwd, ipip);
    assert_eq!(t.get(new).fwd, gue, "the edit reaches the new connection");
    // Once the old connection is gone, its tunnel's entry goes too and
    // a third connection also takes the new one.
    t.remove(old);
    let third = t.insert_bound(key(3), bind(gue), 0).unwrap();
    assert_eq!(t.get(third).fwd, gue);
    assert_eq!(t.get(new).fwd, gue);
    t.remove(new);
    t.remove(third);
    assert!(t.dests.by_id.is_empty(), "every dest entry released");
}

/// The index is sized with the table, as the slab is: filling the table
/// with NAT connections (which replies find through it too) never grows
/// (and rehashes) it on the worker.
#[test]
fn index_never_grows() {
    let d = nat_dest();
    let n = 10_000;
    let mut t = ConnTable::new(n, Timeouts::default());
    let before = t.v4.index.bytes();
    for i in 0..n as u32 {
        let k = FlowKey {
            caddr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            ..key(1)
        };
        let r = t.insert(k, &d, 0).unwrap();
        assert_eq!(t.lookup_out(&t.get(r).out_key()), Some(r));
    }
    assert!(before > 0, "allocated up front");
    assert_eq!(t.v4.index.bytes(), before, "never grew");
}

/// One client endpoint with connections to several services, NAT and DR
/// alike: a reply finds the NAT one it belongs to by the real server's
/// address and port, never a DR one or another server's.
#[test]
fn a_reply_finds_its_nat_connection_among_the_clients_others() {
    let nat = nat_dest();
    let dr_spec = DestSpec {
        addr: "10.0.0.9".parse().unwrap(),
        ..dest().spec
    };
    let dr = Dest {
        spec: dr_spec,
        last_weight: 1,
        shared: DestShared::new(&dr_spec),
    };
    let other_spec = DestSpec {
        addr: "10.0.0.3".parse().unwrap(),
        ..nat.spec
    };
    let other = Dest {
        spec: other_spec,
        last_weight: 1,
        shared: DestShared::new(&other_spec),
    };
    let mut t = ConnTable::new(100, Timeouts::default());
    let to = |vport| FlowKey { vport, ..key(4000) };
    let r_dr = t.insert(to(80), &dr, 0).unwrap();
    let r_nat = t.insert(to(81), &nat, 0).unwrap();
    let r_other = t.insert(to(82), &other, 0).unwrap();
    for (vport, r) in [(80, r_dr), (81, r_nat), (82, r_other)] {
        assert_eq!(t.lookup(&to(vport)), Some(r));
    }
    assert_eq!(t.lookup_out(&t.get(r_nat).out_key()), Some(r_nat));
    assert_eq!(t.lookup_out(&t.get(r_other).out_key()), Some(r_other));
    // A DR connection has no replies through the director.
    assert_eq!(t.lookup_out(&t.get(r_dr).out_key()), None);
    // The right server, from another port: no connection.
    let wrong_port = OutKey {
        dport: 9999,
        ..t.get(r_nat).out_key()
    };
    assert_eq!(t.lookup_out(&wrong_port), None);
    t.remove(r_nat);
    assert_eq!(t.lookup_out(&t.get(r_other).out_key()), Some(r_other));
    assert_eq!(t.v4.nat_live, 1);
}

/// One client endpoint may hold [`CONNS_PER_CLIENT_ENDPOINT`] connections
/// (to as many services, or ports of a port-zero one); the next is refused
/// until one goes, and other endpoints are not affected.
#[test]
fn a_client_endpoint_holds_a_bounded_number_of_connections() {
    let d = dest();
    let mut t = ConnTable::new(1000, Timeouts::default());
    let to = |vport| FlowKey { vport, ..key(4000) };
    let refs: Vec<ConnRef> = (0..CONNS_PER_CLIENT_ENDPOINT as u16)
        .map(|p| t.insert(to(1000 + p), &d, 0).unwrap())
        .collect();
    assert_eq!(t.insert(to(2000), &d, 0), Err(Refused::ClientEndpointFull));
    // Another port of the same address, and UDP from the same port, are
    // other endpoints.
    assert!(t
        .insert(
            FlowKey {
                cport: 4001,
                ..to(2000)
            },
            &d,
            0
        )
        .is_ok());
    let udp = FlowKey {
        protocol: Protocol::Udp,
        ..to(2000)
    };
    assert!(t.insert(udp, &d, 0).is_ok());
    t.remove(refs[0]);
    assert!(t.insert(to(2000), &d, 0).is_ok());
    assert_eq!(t.len(), CONNS_PER_CLIENT_ENDPOINT + 2);
}

/// A listing in slices sees every connection once, IPv4 and IPv6, and
/// no slice looks at more slots than its budget.
#[test]
fn listing_in_slices_sees_each_connection_once() {
    let d = dest();
    let mut t = ConnTable::new(100, Timeouts::default());
    for p in 0..50 {
        t.insert(key(p), &d, 0).unwrap();
    }
    let v6 = |p| FlowKey {
        caddr: "fd00::50".parse().unwrap(),
        vaddr: "fd00::10".parse().unwrap(),
        ..key(p)
    };
    for p in 0..7 {
        t.insert(v6(p), &d, 0).unwrap();
    }
    // Holes in the slab: removed connections are not listed.
    for p in [3, 17, 40] {
        let r = t.lookup(&key(p)).unwrap();
        t.remove(r);
    }
    let mut cursor = ListCursor::default();
    let mut seen = Vec::new();
    let mut slices = 0;
    loop {
        slices += 1;
        let mut n = 0;
        let done = t.list_slice(&mut cursor, 8, |c| {
            n += 1;
            seen.push(c.key)
        });
        assert!(n <= 8);
        if done {
            break;
        }
        assert!(slices < 100, "the listing ends");
    }
    assert_eq!(slices, 8, "57 slots, 8 a slice");
    assert_eq!(seen.len(), 54);
    let mut want: Vec<FlowKey> = t.iter().map(|c| c.key).collect();
    want.sort_by_key(|k| format!("{k:?}"));
    seen.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(seen, want);
    // Walked to the end, a cursor stays there.
    assert!(t.list_slice(&mut cursor, 8, |_| panic!("listed twice")));
}

#[test]
fn full_table_refuses() {
    let d = dest();
    let mut t = ConnTable::new(2, Timeouts::default());
    t.insert(key(1), &d, 0).unwrap();
    t.insert(key(2), &d, 0).unwrap();
    assert_eq!(t.insert(key(3), &d, 0), Err(Refused::TableFull));
    assert_eq!(d.shared.inactive(), 2, "a refused flow is not counted");
}

fn nat_dest() -> Dest {
    let mut d = dest();
    d.spec.fwd = FwdMethod::Masq;
    d.shared = DestShared::new(&d.spec);
    d
}

/// A flood of SYNs into a full table: each new one takes the place of
/// the oldest half-open connection (the walk meets them in the order they
/// were made); established connections and those
/// whose server answered (NAT) keep theirs.
#[test]
fn full_table_reclaims_the_oldest_half_open_first() {
    let (dr, nat) = (dest(), nat_dest());
    let mut t = ConnTable::new(4, Timeouts::default());
    t.set_reclaim_half_open(true);
    let est = t.insert(key(1), &dr, 0).unwrap();
    t.on_tcp(est, false, Some(Event::Syn), 0);
    t.on_tcp(est, false, Some(Event::Ack), 0);
    let answered = t.insert(key(2), &nat, 0).unwrap();
    t.on_tcp(answered, false, Some(Event::Syn), 0);
    t.on_tcp(answered, true, Some(Event::Syn), 0);
    assert_eq!(t.get(answered).state, TcpState::SynRecv);
    let old = t.insert(key(3), &dr, 0).unwrap();
    t.on_tcp(old, false, Some(Event::Syn), 0);
    let young = t.insert(key(4), &dr, 0).unwrap();
    t.on_tcp(young, false, Some(Event::Syn), 0);
    assert_eq!(t.len(), 4);

    // Full: the oldest half-open one (key 3) goes.
    let r = t.insert(key(5), &dr, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    assert_eq!(t.reclaimed(), 1);
    assert!(t.lookup(&key(3)).is_none());
    for k in [1, 2, 4, 5] {
        assert!(t.lookup(&key(k)).is_some(), "key {k}");
    }
    // Then key 4, then key 5: a flood cycles through the half-open.
    for (n, gone) in [(6, 4), (7, 5), (8, 6)] {
        let r = t.insert(key(n), &dr, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert!(t.lookup(&key(gone)).is_none(), "key {gone}");
    }
    assert_eq!(t.reclaimed(), 4);
    assert!(t.lookup(&key(1)).is_some() && t.lookup(&key(2)).is_some());
    // The dests' counters follow: four connections left (IPVS counts
    // SYN_RECV as active, so all four are).
    assert_eq!(
        dr.shared.active() + dr.shared.inactive() + nat.shared.active() + nat.shared.inactive(),
        4
    );

    // Nothing half-open left once they are established: full again.
    for k in [7, 8] {
        let r = t.lookup(&key(k)).unwrap();
        t.on_tcp(r, false, Some(Event::Ack), 0);
    }
    let answered = t.lookup(&key(2)).unwrap();
    t.on_tcp(answered, true, Some(Event::Ack), 0);
    assert_eq!(t.insert(key(9), &dr, 0), Err(Refused::TableFull));
}

/// Table pressure's walk goes round the slab: a connection that reused
/// a freed slot is met in that slot's place, not by its age.
#[test]
fn reclaim_walks_the_slab_in_a_circle() {
    let d = dest();
    let mut t = ConnTable::new(2, Timeouts::default());
    t.set_reclaim_half_open(true);
    let a = t.insert(key(1), &d, 0).unwrap();
    t.on_tcp(a, false, Some(Event::Syn), 0);
    let b = t.insert(key(2), &d, 0).unwrap();
    t.on_tcp(b, false, Some(Event::Syn), 0);
    // Key 1 goes away, and key 3 takes its slot, before key 2's.
    t.remove(a);
    let c = t.insert(key(3), &d, 0).unwrap();
    assert_eq!(c, a, "the freed slot is reused");
    t.on_tcp(c, false, Some(Event::Syn), 0);
    // Full: the walk meets key 3 first; then key 2; then key 4, which
    // took key 3's slot.
    for (n, gone) in [(4, 3), (5, 2), (6, 4)] {
        let r = t.insert(key(n), &d, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert!(t.lookup(&key(gone)).is_none(), "key {gone}");
        assert_eq!(t.len(), 2);
    }
    assert_eq!(t.reclaimed(), 3);
}

/// A full table whose half-open connection lies further than one
/// insertion's walk refuses the new one; seeking between bursts moves the
/// walk there, and the next new connection takes its place. With room in
/// the table, seeking does nothing.
#[test]
fn seeking_moves_the_walk_past_established_connections() {
    let d = dest();
    let n = 3 * RECLAIM_SCAN as u16;
    let mut t = ConnTable::new(n as usize + 2, Timeouts::default());
    t.set_reclaim_half_open(true);
    for k in 0..n {
        let r = t.insert(key(k), &d, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        t.on_tcp(r, false, Some(Event::Ack), 0);
    }
    t.seek_half_open(RECLAIM_SCAN);
    assert_eq!(t.reclaim_at, 0, "room in the table: no seeking");
    let r = t.insert(key(n), &d, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    let r = t.insert(key(n + 1), &d, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    t.on_tcp(r, false, Some(Event::Ack), 0);
    assert_eq!(t.insert(key(n + 2), &d, 0), Err(Refused::TableFull));
    for _ in 0..4 {
        t.seek_half_open(RECLAIM_SCAN);
    }
    assert_eq!(
        t.reclaim_at, n as usize,
        "the walk waits at the half-open one"
    );
    t.insert(key(n + 2), &d, 0).unwrap();
    assert_eq!(t.reclaimed(), 1);
    assert!(t.lookup(&key(n)).is_none());
}

#[test]
fn without_reclaim_a_full_table_refuses_syns() {
    let d = dest();
    let mut t = ConnTable::new(1, Timeouts::default());
    let r = t.insert(key(1), &d, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    assert_eq!(t.insert(key(2), &d, 0), Err(Refused::TableFull));
    assert_eq!(t.reclaimed(), 0);
}

/// `ip_vs_random_dropentry`: half-open connections go; established
/// ones only after a minute idle, one in k for k packets; busy ones stay.
#[test]
fn random_dropentry_follows_the_kernels_rules() {
    let d = dest();
    let mut t = ConnTable::new(64, Timeouts::default());
    let mut keys = Vec::new();
    // 10 half-open, 10 established with 1 packet... (SYN + ACK = 2
    // packets), 10 established with 20 packets.
    for k in 0..30u16 {
        let r = t.insert(key(k), &d, 0).unwrap();
        t.on_tcp(r, false, Some(Event::Syn), 0);
        if k >= 10 {
            t.on_tcp(r, false, Some(Event::Ack), 0);
        }
        if k >= 20 {
            for _ in 0..18 {
                t.on_tcp(r, false, Some(Event::Ack), 0);
            }
        }
        keys.push(k);
    }
    // Enough random looks to see every slot many times.
    t.random_dropentry(1_000, 3000);
    for k in 0..10 {
        assert!(t.lookup(&key(k)).is_none(), "half-open {k} dropped");
    }
    for k in 10..30 {
        assert!(t.lookup(&key(k)).is_some(), "established {k} idle < 60 s");
    }
    // A minute idle later: those with 2 packets go (one in two looks),
    // the busy ones (more than 8 packets) stay.
    t.random_dropentry(61_000, 3000);
    for k in 10..20 {
        assert!(t.lookup(&key(k)).is_none(), "idle, 2 packets: {k}");
    }
    for k in 20..30 {
        assert!(t.lookup(&key(k)).is_some(), "busy {k}");
    }
    assert_eq!(t.dropped_entries(), 20);
}

#[test]
fn secure_tcp_shortens_half_open_and_needs_the_servers_answer() {
    let (dr, nat) = (dest(), nat_dest());
    let mut t = ConnTable::new(8, Timeouts::default());
    t.set_secure_tcp(true, 10);
    let r = t.insert(key(1), &dr, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    assert_eq!(t.get(r).state, TcpState::SynAck);
    assert_eq!(t.get(r).expires_ms, 10_000);
    let n = t.insert(key(2), &nat, 0).unwrap();
    t.on_tcp(n, false, Some(Event::Syn), 0);
    t.on_tcp(n, false, Some(Event::Ack), 0);
    assert_eq!(t.get(n).state, TcpState::SynRecv, "no answer yet");
    assert_eq!(t.get(n).expires_ms, 10_000);
    t.set_secure_tcp(false, 10);
    t.on_tcp(n, false, Some(Event::Ack), 0);
    assert_eq!(t.get(n).state, TcpState::Established);
    let r = t.insert(key(3), &dr, 0).unwrap();
    t.on_tcp(r, false, Some(Event::Syn), 0);
    assert_eq!(t.get(r).state, TcpState::SynRecv);
    assert_eq!(t.get(r).expires_ms, 60_000);
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u64),
    Lookup(u16),
    Expire(u64),
    /// A SYN reopening the flow: the next connection made in its slot.
    Reopen(u16, u64),
    /// Removed.
    End(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u16..64, 0u64..5000).prop_map(|(p, t)| Op::Insert(p, t)),
        (0u16..64).prop_map(Op::Lookup),
        (0u64..5000).prop_map(Op::Expire),
        (0u16..64, 0u64..5000).prop_map(|(p, t)| Op::Reopen(p, t)),
        (0u16..64).prop_map(Op::End),
    ]
}

proptest! {
    /// Insert, lookup and full expiry sweeps agree with a HashMap model
    /// (expiry has one-second resolution).
    #[test]
    fn matches_hashmap_model(ops in proptest::collection::vec(op(), 1..200)) {
        let d = dest();
        let mut t = ConnTable::new(1000, Timeouts::default());
        let mut model: HashMap<u16, u64> = HashMap::new();
        let mut now = 0u64;
        for o in ops {
            match o {
                Op::Insert(p, dt) => {
                    now += dt;
                    if t.lookup(&key(p)).is_none() {
                        t.insert(key(p), &d, now).unwrap();
                        // State NONE: 2 s, kept in whole seconds.
                        model.insert(p, (now + 2000).div_ceil(1000));
                    }
                }
                Op::Lookup(p) => {
                    prop_assert_eq!(t.lookup(&key(p)).is_some(), model.contains_key(&p));
                }
                Op::Expire(dt) => {
                    now += dt;
                    let cap = t.v4.slots.len();
                    t.expire_some(now, cap);
                    model.retain(|_, exp| *exp > now / 1000);
                }
                Op::Reopen(p, dt) => {
                    now += dt;
                    if let Some(r) = t.lookup(&key(p)) {
                        t.rebind(r, Protocol::Tcp, Binding::to_dest(&d), now);
                        prop_assert_eq!(t.lookup(&key(p)), Some(r));
                        model.insert(p, (now + 2000).div_ceil(1000));
                    }
                }
                Op::End(p) => {
                    if let Some(r) = t.lookup(&key(p)) {
                        t.remove(r);
                        model.remove(&p);
                    }
                }
            }
            prop_assert_eq!(t.len(), model.len());
            prop_assert_eq!(d.shared.inactive() as usize, model.len());
        }
    }
}
