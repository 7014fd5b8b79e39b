//! The SYN-flood defence through `Worker::handle`: table pressure, the
//! kernel's `drop_packet`, `drop_entry` and `secure_tcp`, each with literal
//! frames.

use super::*;

/// The walkthrough's worker with a table of `capacity` and `defense`.
fn defended(capacity: usize, defense: DefenseConfig) -> Worker {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.conns = ConnTable::new(capacity, Timeouts::default());
    w.conns.set_reclaim_half_open(defense.reclaim_half_open);
    w.defense = Defense::new(defense);
    w.cfg.defense = defense;
    w
}

/// A spoofed SYN: client 10.x.y.z, one port each.
fn spoofed_syn(n: u32) -> Vec<u8> {
    let a = (10u32 << 24 | n).to_be_bytes();
    syn_from(a, 1024 + (n % 60000) as u16, 80)
}

#[test]
fn a_flood_larger_than_the_table_never_locks_out_new_clients() {
    let mut w = defended(64, DefenseConfig::default());
    // Two real clients established before the flood.
    for p in [1, 2] {
        assert_eq!(w.handle(0, &mut tcp(p, SYN), 1), Verdict::Tx(0));
        assert_eq!(w.handle(0, &mut tcp(p, ACK), 1), Verdict::Tx(0));
    }
    // Ten times the table in spoofed SYNs: each takes the place of the
    // oldest half-open one.
    for n in 0..640 {
        assert_eq!(w.handle(0, &mut spoofed_syn(n), 2), Verdict::Tx(0), "{n}");
    }
    w.housekeeping(2);
    let c = &w.shared.counters;
    assert_eq!(c.half_open_reclaimed.get(), 640 - 62);
    assert_eq!(c.drops(DropReason::ConnTableFull), 0);
    // A legitimate client in the middle of the flood completes its
    // handshake, and the established ones keep going.
    assert_eq!(w.handle(0, &mut tcp(3, SYN), 3), Verdict::Tx(0));
    for n in 640..700 {
        w.handle(0, &mut spoofed_syn(n), 3);
    }
    assert_eq!(w.handle(0, &mut tcp(3, ACK), 3), Verdict::Tx(0));
    for p in [1, 2, 3] {
        assert_eq!(w.handle(0, &mut tcp(p, ACK), 4), Verdict::Tx(0), "{p}");
    }
    assert_eq!(w.shared.counters.drops(DropReason::NoConnection), 0);
}

#[test]
fn without_table_pressure_a_full_table_drops_new_clients() {
    let mut w = defended(
        8,
        DefenseConfig {
            reclaim_half_open: false,
            ..DefenseConfig::default()
        },
    );
    for n in 0..8 {
        assert_eq!(w.handle(0, &mut spoofed_syn(n), 1), Verdict::Tx(0));
    }
    assert_eq!(
        w.handle(0, &mut tcp(1, SYN), 1),
        Verdict::Drop(DropReason::ConnTableFull)
    );
}

#[test]
fn drop_packet_drops_one_new_connection_in_the_rate_when_short_of_slots() {
    // amemthresh 100 on a table of 200: with 150 used (50 free) the rate is
    // 100 / (100 - 50) = 2.
    let mut w = defended(
        200,
        DefenseConfig {
            amemthresh: 100,
            drop_packet: 1,
            ..DefenseConfig::default()
        },
    );
    for n in 0..150 {
        assert_eq!(w.handle(0, &mut spoofed_syn(n), 1), Verdict::Tx(0));
    }
    assert_eq!(w.defense.level().drop_packet, 1, "automatic, off");
    w.housekeeping(1000);
    let l = w.defense.level();
    assert_eq!((l.drop_packet, l.drop_rate, l.free_slots), (2, 2, 50));
    assert_eq!(*w.shared.defense.lock().unwrap(), l, "published");
    let verdicts: Vec<Verdict> = (150..160)
        .map(|n| w.handle(0, &mut spoofed_syn(n), 1000))
        .collect();
    let dropped = verdicts
        .iter()
        .filter(|v| **v == Verdict::Drop(DropReason::Defense))
        .count();
    assert_eq!(dropped, 5, "{verdicts:?}");
    assert_eq!(w.shared.counters.drops(DropReason::Defense), 5);
    // Packets of existing connections are never dropped by it.
    assert_eq!(w.handle(0, &mut spoofed_syn(0), 1000), Verdict::Tx(0));
}

#[test]
fn drop_entry_removes_half_open_connections_when_short_of_slots() {
    let mut w = defended(
        64,
        DefenseConfig {
            amemthresh: 32,
            drop_entry: 1,
            reclaim_half_open: false,
            ..DefenseConfig::default()
        },
    );
    assert_eq!(w.handle(0, &mut tcp(1, SYN), 1), Verdict::Tx(0));
    assert_eq!(w.handle(0, &mut tcp(1, ACK), 1), Verdict::Tx(0));
    for n in 0..40 {
        w.handle(0, &mut spoofed_syn(n), 1);
    }
    // 23 free < 32: drop_entry 1 becomes 2, and looks at 64/32 = 2 random
    // slots a second, until the table has amemthresh free slots again;
    // then mode 2 goes back to 1.
    w.housekeeping(1000);
    assert_eq!(w.defense.level().drop_entry, 2);
    let mut now = 2000;
    while w.defense.level().drop_entry == 2 && now < 2_000_000 {
        w.housekeeping(now);
        now += 1000;
    }
    assert_eq!(w.defense.level().drop_entry, 1);
    let left = w.conns.len();
    assert!(left <= 32, "{left} left: at least 32 slots free");
    assert_eq!(w.shared.counters.entries_dropped.get(), 41 - left as u64);
    // The established client is never among them (it is not idle).
    assert!(w.conns.lookup(&flow_of(&tcp(1, ACK))).is_some());
}

#[test]
fn secure_tcp_switches_tables_and_half_open_timeouts() {
    let mut w = defended(
        1000,
        DefenseConfig {
            secure_tcp: 3,
            ..DefenseConfig::default()
        },
    );
    w.housekeeping(1);
    assert!(w.conns.secure_tcp());
    assert_eq!(w.handle(0, &mut tcp(1, SYN), 1), Verdict::Tx(0));
    let r = w.conns.lookup(&flow_of(&tcp(1, SYN))).unwrap();
    // DR with secure_tcp: the first SYN leads to SYNACK, 10 s.
    assert_eq!(w.conns.state(r), TcpState::SynAck);
    assert_eq!(w.conns.get(r).expires_ms, 11_000);
}

/// The flow key of a client frame.
fn flow_of(f: &[u8]) -> FlowKey {
    flow_key_hint(f).unwrap()
}

/// A reload's new `[defense]` is in force from the next loop on: modes as
/// written, table pressure off or on.
#[test]
fn set_defense_takes_effect_at_once() {
    let mut w = defended(
        8,
        DefenseConfig {
            secure_tcp: 3,
            ..DefenseConfig::default()
        },
    );
    w.housekeeping(1);
    assert!(w.conns.secure_tcp());
    let off = DefenseConfig {
        reclaim_half_open: false,
        ..DefenseConfig::default()
    };
    w.apply(&WorkerMsg::SetDefense(off), 2);
    assert!(!w.conns.secure_tcp());
    w.housekeeping(2);
    assert!(!w.conns.secure_tcp());
    for n in 0..8 {
        assert_eq!(w.handle(0, &mut spoofed_syn(n), 2), Verdict::Tx(0));
    }
    assert_eq!(
        w.handle(0, &mut tcp(1, SYN), 2),
        Verdict::Drop(DropReason::ConnTableFull),
        "table pressure off"
    );
    w.apply(&WorkerMsg::SetDefense(DefenseConfig::default()), 3);
    // The half-open connections made while it was off are in no queue:
    // random looks find them.
    assert_eq!(w.handle(0, &mut tcp(1, SYN), 3), Verdict::Tx(0));
    assert_eq!(w.conns.reclaimed(), 1);
}
