//! Several directors behind ECMP: does every director send a client to the
//! same real server? With `mh` and `sh` that holds when each builds its
//! table from the same real servers *added in the same order*, as the
//! kernel's do: both walk the dest list (newest first) while filling their
//! tables, so the order of the `-a` commands is part of the input. rvs
//! keeps that, to stay the kernel's twin, and these tests record it; the
//! directors stay consistent by loading the same rules file (README,
//! "Several directors").

use std::net::{IpAddr, Ipv4Addr};

use super::testutil::build;
use super::{SchedInput, Scheduler};

/// Where each of 4096 clients (distinct addresses and ports) goes.
fn choices(mut s: Box<dyn Scheduler>, adds: &[(&str, u32)]) -> Vec<Option<IpAddr>> {
    let dests = build(&mut *s, adds);
    (0..4096u32)
        .map(|i| {
            let input = SchedInput {
                saddr: IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i * 7919)),
                sport: 1024 + (i * 13) as u16,
                daddr: "10.99.0.10".parse().unwrap(),
                dport: 80,
                now_ms: 0,
            };
            s.schedule(&dests, &input).map(|d| dests[d].spec.addr)
        })
        .collect()
}

const FOUR: [(&str, u32); 4] = [
    ("192.168.1.221", 1),
    ("192.168.1.222", 1),
    ("192.168.1.223", 1),
    ("192.168.1.224", 1),
];

fn reordered(order: [usize; 4]) -> Vec<(&'static str, u32)> {
    order.iter().map(|&i| FOUR[i]).collect()
}

fn differing(a: &[Option<IpAddr>], b: &[Option<IpAddr>]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

#[test]
fn the_same_adds_give_the_same_choices_on_every_director() {
    // Two directors (two scheduler instances) with the same rules, plain
    // and with the port flag: nothing random or per-instance leaks in.
    for flags in [0, crate::sched::sched_flags::SCHED2] {
        let (a, b) = (
            choices(super::mh::new(flags), &FOUR),
            choices(super::mh::new(flags), &FOUR),
        );
        assert_eq!(a, b, "mh, flags {flags}");
        assert!(a.iter().all(Option::is_some));
        let (a, b) = (
            choices(super::sh::new(flags), &FOUR),
            choices(super::sh::new(flags), &FOUR),
        );
        assert_eq!(a, b, "sh, flags {flags}");
    }
    // Weights too.
    let weighted = [("192.168.1.221", 3), ("192.168.1.222", 1)];
    assert_eq!(
        choices(super::mh::new(0), &weighted),
        choices(super::mh::new(0), &weighted)
    );
    assert_eq!(
        choices(super::sh::new(0), &weighted),
        choices(super::sh::new(0), &weighted)
    );
}

/// The kernel's behaviour, kept: another order, other choices. If this
/// starts failing, rvs no longer builds the kernel's tables.
#[test]
fn the_order_of_the_adds_changes_mh_and_sh_tables_as_in_the_kernel() {
    let base_mh = choices(super::mh::new(0), &FOUR);
    let base_sh = choices(super::sh::new(0), &FOUR);
    for order in [[3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 3, 2]] {
        let adds = reordered(order);
        let mh = differing(&base_mh, &choices(super::mh::new(0), &adds));
        let sh = differing(&base_sh, &choices(super::sh::new(0), &adds));
        // Maglev keeps most slots (each server's preference list is its
        // own); only contested slots move. sh deals buckets round the list,
        // so most move.
        assert!(mh > 0 && mh < 4096 / 2, "mh, order {order:?}: {mh} moved");
        assert!(sh > 4096 / 4, "sh, order {order:?}: {sh} moved");
    }
}

/// A server deleted and added again goes to the head of the list: its
/// director now differs from one that never removed it, although both list
/// the same servers. (Replaying the rules file on both puts them back in
/// step.)
#[test]
fn a_server_deleted_and_added_again_moves_in_the_list_order() {
    let again = [FOUR[0], FOUR[2], FOUR[3], FOUR[1]];
    assert!(
        differing(
            &choices(super::mh::new(0), &FOUR),
            &choices(super::mh::new(0), &again)
        ) > 0
    );
    assert!(
        differing(
            &choices(super::sh::new(0), &FOUR),
            &choices(super::sh::new(0), &again)
        ) > 0
    );
}
