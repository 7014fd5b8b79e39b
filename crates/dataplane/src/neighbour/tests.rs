//! The learning rules, one case each: what Linux does by default, what
//! `solicited-only` adds, static entries, the capacity.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
const REPLY: Heard = Heard::ArpReply { unicast: true };

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

fn table(policy: LearnPolicy, capacity: usize) -> NeighbourTable {
    NeighbourTable::with_config(NeighbourConfig {
        policy,
        capacity,
        ..NeighbourConfig::new(10_000)
    })
}

#[test]
fn ages_through_stale_to_missing() {
    let t = NeighbourTable::new(10_000);
    let ip = Ipv4Addr::new(10, 0, 0, 1);
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    assert_eq!(t.lookup(ip, 0), Neighbour::Missing);
    assert!(t.learn(ip, mac, 1000));
    assert!(
        !t.learn(ip, mac, 1500),
        "recent confirmation is not rewritten"
    );
    assert_eq!(t.lookup(ip, 2000), Neighbour::Reachable(mac));
    assert_eq!(t.lookup(ip, 7000), Neighbour::Stale(mac));
    assert_eq!(t.lookup(ip, 11_000), Neighbour::Missing);
    assert!(t.learn(ip, mac, 11_000));
    assert_eq!(t.lookup(ip, 11_001), Neighbour::Reachable(mac));
}

#[test]
fn a_reader_sees_every_change() {
    let t = Arc::new(NeighbourTable::new(10_000));
    let mut r = t.reader();
    let ip = Ipv4Addr::new(10, 0, 0, 2);
    assert_eq!(r.lookup(ip, 0), Neighbour::Missing);
    t.learn(ip, A, 0);
    assert_eq!(r.lookup(ip, 1), Neighbour::Missing, "until refreshed");
    r.refresh();
    assert_eq!(r.lookup(ip, 1), Neighbour::Reachable(A));
    t.learn(ip, B, 2000);
    r.refresh();
    assert_eq!(r.lookup(ip, 2001), Neighbour::Reachable(B));
    assert_eq!(r.lookup(ip, 7000), Neighbour::Stale(B));
}

#[test]
fn an_unsolicited_reply_creates_nothing() {
    let t = table(LearnPolicy::Linux, 16);
    for unicast in [true, false] {
        assert_eq!(
            t.heard(ip(1), A, Heard::ArpReply { unicast }, 5),
            Learned::Refused(Refusal::Unsolicited)
        );
    }
    assert_eq!(t.lookup(ip(1), 5), Neighbour::Missing);
    assert!(t.is_empty());
}

#[test]
fn a_gratuitous_arp_creates_nothing_but_moves_a_known_entry_at_once() {
    let t = table(LearnPolicy::Linux, 16);
    assert_eq!(
        t.heard(ip(1), A, Heard::ArpGratuitous, 5),
        Learned::Refused(Refusal::Unsolicited)
    );
    assert_eq!(
        t.heard(ip(1), A, Heard::ArpOther, 5),
        Learned::Refused(Refusal::Unsolicited)
    );
    assert!(t.is_empty());
    // Known: a gratuitous ARP is how a failover announces the new MAC, and
    // Linux takes it within the locktime too (arp_process: `|| is_garp`).
    assert!(t.learn(ip(1), A, 10));
    assert_eq!(t.heard(ip(1), B, Heard::ArpGratuitous, 20), Learned::Moved);
    assert_eq!(
        t.lookup(ip(1), 21),
        Neighbour::Stale(B),
        "not confirmed: asked again"
    );
}

#[test]
fn the_first_answer_wins_and_others_move_it_only_after_the_locktime() {
    let t = table(LearnPolicy::Linux, 16);
    assert!(t.asked(ip(1), 0));
    assert_eq!(
        t.heard(ip(1), A, REPLY, 10),
        Learned::Created { evicted: 0 }
    );
    assert_eq!(t.lookup(ip(1), 11), Neighbour::Reachable(A));
    // A second answer, or a spoofed one, inside the locktime.
    assert_eq!(
        t.heard(ip(1), B, REPLY, 10 + LOCKTIME_MS),
        Learned::Refused(Refusal::Locked)
    );
    assert_eq!(
        t.heard(ip(1), B, Heard::ArpOther, 500),
        Learned::Refused(Refusal::Locked)
    );
    assert_eq!(t.lookup(ip(1), 600), Neighbour::Reachable(A));
    // After it, Linux takes the new MAC (the entry was last updated at 10).
    assert_eq!(t.heard(ip(1), B, REPLY, 11 + LOCKTIME_MS), Learned::Moved);
    assert_eq!(t.lookup(ip(1), 1100), Neighbour::Reachable(B));
    // And that move starts a new locktime.
    assert_eq!(
        t.heard(ip(1), A, REPLY, 1500),
        Learned::Refused(Refusal::Locked)
    );
}

#[test]
fn an_answer_after_the_window_is_unsolicited() {
    let t = table(LearnPolicy::Linux, 16);
    assert!(t.asked(ip(1), 0));
    assert_eq!(
        t.heard(ip(1), A, REPLY, 3000),
        Learned::Refused(Refusal::Unsolicited)
    );
    // The answer closes the request.
    assert!(t.asked(ip(3), 0));
    assert!(matches!(
        t.heard(ip(3), A, REPLY, 1),
        Learned::Created { .. }
    ));
    assert!(!t.is_asked(&ip(3), 2));
}

#[test]
fn a_request_for_us_creates_a_stale_entry_and_moves_one_at_once() {
    let t = table(LearnPolicy::Linux, 16);
    assert_eq!(
        t.heard(ip(1), A, Heard::AskedForUs, 5),
        Learned::Created { evicted: 0 }
    );
    assert_eq!(t.lookup(ip(1), 6), Neighbour::Stale(A), "to be confirmed");
    assert_eq!(t.heard(ip(1), B, Heard::AskedForUs, 7), Learned::Moved);
    // Our own request and its answer confirm it.
    assert!(t.asked(ip(1), 8));
    assert_eq!(t.heard(ip(1), B, REPLY, 9), Learned::Confirmed);
    assert_eq!(t.lookup(ip(1), 10), Neighbour::Reachable(B));
}

#[test]
fn what_is_heard_in_passing_does_not_confirm() {
    let t = table(LearnPolicy::Linux, 16);
    assert!(t.learn(ip(1), A, 0));
    let before = t.entry(ip(1)).unwrap();
    // A broadcast reply, a request for someone else: same MAC, nothing to
    // write.
    assert_eq!(
        t.heard(ip(1), A, Heard::ArpReply { unicast: false }, 4000),
        Learned::Unchanged
    );
    assert_eq!(t.heard(ip(1), A, Heard::ArpOther, 4000), Learned::Unchanged);
    assert_eq!(t.entry(ip(1)), Some(before));
}

#[test]
fn confirmations_are_written_a_few_times_per_expiry() {
    let t = table(LearnPolicy::Linux, 16);
    assert!(t.learn(ip(1), A, 0));
    let map = t.map.load_full();
    for now in (1..2500).step_by(100) {
        assert!(!t.learn(ip(1), A, now));
    }
    assert!(Arc::ptr_eq(&map, &t.map.load_full()), "no copy of the map");
    assert!(t.learn(ip(1), A, 2500), "a quarter of the expiry");
}

#[test]
fn solicited_only_takes_nothing_but_answers_to_its_own_requests() {
    let t = table(LearnPolicy::SolicitedOnly, 16);
    for heard in [
        REPLY,
        Heard::AskedForUs,
        Heard::ArpGratuitous,
        Heard::ArpOther,
        Heard::Advert {
            solicited: true,
            override_flag: true,
        },
    ] {
        assert_eq!(
            t.heard(ip(1), A, heard, 5),
            Learned::Refused(Refusal::NotAnAnswer),
            "{heard:?}"
        );
    }
    assert!(t.is_empty());
    assert!(t.asked(ip(1), 10));
    // Asked for, but a request or an announcement is not an answer.
    assert_eq!(
        t.heard(ip(1), B, Heard::ArpGratuitous, 11),
        Learned::Refused(Refusal::NotAnAnswer)
    );
    assert_eq!(
        t.heard(ip(1), A, REPLY, 12),
        Learned::Created { evicted: 0 }
    );
    // The first answer closed the request: a second one is refused, long
    // after the locktime too, and so is a gratuitous ARP.
    for (heard, now) in [(REPLY, 13), (REPLY, 5000), (Heard::ArpGratuitous, 5000)] {
        assert_eq!(
            t.heard(ip(1), B, heard, now),
            Learned::Refused(Refusal::NotAnAnswer)
        );
    }
    assert_eq!(t.lookup(ip(1), 5000), Neighbour::Reachable(A));
    // A new request's answer may move it.
    assert!(t.asked(ip(1), 6000));
    assert_eq!(t.heard(ip(1), B, REPLY, 6001), Learned::Moved);
    assert_eq!(t.lookup(ip(1), 6002), Neighbour::Reachable(B));
}

#[test]
fn static_entries_never_age_move_or_go() {
    for policy in [LearnPolicy::Linux, LearnPolicy::SolicitedOnly] {
        let t = table(policy, 2);
        t.add_static(ip(9), A);
        assert_eq!(t.lookup(ip(9), u64::MAX / 2), Neighbour::Reachable(A));
        assert!(t.asked(ip(9), 0));
        for heard in [
            REPLY,
            Heard::AskedForUs,
            Heard::ArpGratuitous,
            Heard::ArpOther,
            Heard::Advert {
                solicited: true,
                override_flag: true,
            },
        ] {
            assert_eq!(
                t.heard(ip(9), B, heard, 5000),
                Learned::Refused(Refusal::Static),
                "{policy:?} {heard:?}"
            );
        }
        assert!(!t.learn(ip(9), B, 5000));
        // A full table evicts learned entries, never the static one.
        for n in 1..=4 {
            assert!(t.learn(ip(n), B, 6000 + n as u64));
        }
        assert_eq!(t.lookup(ip(9), 7000), Neighbour::Reachable(A));
        assert_eq!(t.len(), 3, "two learned and the static one");
    }
}

#[test]
fn a_full_table_evicts_the_expired_then_the_unasked_then_the_oldest() {
    let t = table(LearnPolicy::Linux, 3);
    assert!(t.learn(ip(1), A, 0));
    assert!(t.learn(ip(2), A, 9000));
    assert!(t.learn(ip(3), A, 9500));
    // ip(1) has expired (10 s): it makes room first.
    assert_eq!(
        t.heard(ip(4), A, Heard::AskedForUs, 10_000),
        Learned::Created { evicted: 1 }
    );
    assert_eq!(t.entry(ip(1)), None);
    // Full again: ip(4), never asked for, goes before older wanted ones.
    assert!(t.asked(ip(5), 10_001));
    assert_eq!(
        t.heard(ip(5), A, REPLY, 10_002),
        Learned::Created { evicted: 1 }
    );
    assert_eq!(t.entry(ip(4)), None);
    // Then the least recently confirmed.
    assert!(t.learn(ip(6), A, 10_003));
    assert_eq!(t.entry(ip(2)), None);
    let left: Vec<IpAddr> = t.entries().into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, vec![ip(3), ip(5), ip(6)]);
}

#[test]
fn outstanding_requests_are_bounded() {
    let t = table(LearnPolicy::Linux, 2);
    assert!(t.asked(ip(1), 0));
    assert!(t.asked(ip(2), 0));
    assert!(!t.asked(ip(3), 100), "full of live requests");
    assert!(t.asked(ip(1), 100), "asking again is no new entry");
    assert!(t.asked(ip(3), 3000), "ip(2)'s request has lapsed");
}

#[test]
fn entries_from_requests_are_created_at_a_bounded_rate() {
    let t = table(LearnPolicy::Linux, 100_000);
    let mut created = 0;
    let mut limited = 0;
    for n in 0..(UNASKED_CREATIONS_PER_S + 50) {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + n));
        match t.heard(a, A, Heard::AskedForUs, 5000) {
            Learned::Created { .. } => created += 1,
            Learned::Refused(Refusal::RateLimited) => limited += 1,
            o => panic!("{o:?}"),
        }
    }
    assert_eq!((created, limited), (UNASKED_CREATIONS_PER_S, 50));
    assert!(matches!(
        t.heard(ip(1), A, Heard::AskedForUs, 6000),
        Learned::Created { .. }
    ));
    // Answers to rvsd's own requests are never limited.
    for n in 0..(2 * UNASKED_CREATIONS_PER_S) {
        let a = IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + n));
        assert!(t.learn(a, A, 6001));
    }
}

#[test]
fn neighbour_discovery_follows_the_override_flag() {
    let t = table(LearnPolicy::Linux, 16);
    let v6 = IpAddr::V6("fd00::2".parse::<Ipv6Addr>().unwrap());
    let na = |solicited, override_flag| Heard::Advert {
        solicited,
        override_flag,
    };
    // Unsolicited advertisements create nothing (accept_untracked_na=0).
    for (s, o) in [(false, true), (true, true), (false, false)] {
        assert_eq!(
            t.heard(v6, A, na(s, o), 5),
            Learned::Refused(Refusal::Unsolicited)
        );
    }
    // A neighbour solicitation for our address creates it, stale.
    assert_eq!(
        t.heard(v6, A, Heard::AskedForUs, 6),
        Learned::Created { evicted: 0 }
    );
    assert_eq!(t.lookup(v6, 7), Neighbour::Stale(A));
    // The answer to our solicitation confirms it.
    assert!(t.asked(v6, 8));
    assert_eq!(t.heard(v6, A, na(true, true), 9), Learned::Confirmed);
    assert_eq!(t.lookup(v6, 10), Neighbour::Reachable(A));
    // Another MAC without the override flag: refused, and the entry is
    // stale (to be asked again); no locktime in ND.
    assert_eq!(
        t.heard(v6, B, na(true, false), 5000),
        Learned::Refused(Refusal::Locked)
    );
    assert_eq!(t.lookup(v6, 5001), Neighbour::Stale(A));
    // With the override flag it moves at once; unsolicited, it is stale.
    assert_eq!(t.heard(v6, B, na(false, true), 5002), Learned::Moved);
    assert_eq!(t.lookup(v6, 5003), Neighbour::Stale(B));
}
