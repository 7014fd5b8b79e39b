//! Failover and rejoin, small: 2 directors, 50 long-lived connections
//! spread by ECMP, one rvsd killed and started again; no connection may
//! break (`cargo xtask failover` runs the big one).

use rvs_lab::failover::{run, FailoverOptions, FailoverReport};

/// Runs `opts` under the test prefix plus `name` and checks what every
/// scenario must show: the victim carried connections, none broke in the
/// failover or the rejoin, every new connection during it succeeded, and
/// every connection moved data through the whole run.
fn run_checked(name: &str, opts: &FailoverOptions) -> FailoverReport {
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let r = run(&prefix, &dir, opts, |s| eprintln!("{s}")).unwrap();
    eprintln!("{r}\n{r:?}");
    assert!(r.on_victim > 0, "{r:?}");
    assert_eq!(r.broken_failover, 0, "{r:?}");
    assert_eq!(r.broken_rejoin, 0, "{r:?}");
    assert_eq!(r.probes_ok, r.probes, "{r:?}");
    assert!(r.bytes >= opts.connections as u64 * 512 * 10, "{r:?}");
    r
}

#[test]
#[ignore = "needs root, network namespaces, DPDK and BIRD; run with cargo xtask test"]
fn no_connection_breaks_when_a_director_dies_and_rejoins() {
    let r = run_checked("fo", &FailoverOptions::new(2, 50));
    // The survivor took the victim's flows from mid-flow packets.
    assert!(r.adopted >= r.on_victim, "{r:?}");
    // BFD (3 x 100 ms) and the route change, with room for a busy machine.
    assert!(r.converged_ms < 3000, "{r:?}");
}

/// The same with `wlc`, whose choices differ between directors, and
/// connection sync: the survivor finds every moved flow in its table
/// (nothing taken over mid-flow by scheduling anew), and the restarted
/// director learns them all before it announces the VIP again.
#[test]
#[ignore = "needs root, network namespaces, DPDK and BIRD; run with cargo xtask test"]
fn with_wlc_and_sync_no_connection_breaks_either() {
    let r = run_checked("fs", &FailoverOptions::wlc_with_sync(2, 50));
    assert_eq!(r.adopted, 0, "synced, not scheduled anew: {r:?}");
}

/// The same with the real servers behind the router, reached by IPIP
/// tunnels (`mh`, no sync): the moved flows' packets go on in tunnels
/// from the surviving director to the same real servers.
#[test]
#[ignore = "needs root, network namespaces, DPDK and BIRD; run with cargo xtask test"]
fn with_tunnelled_servers_no_connection_breaks_either() {
    let r = run_checked("ft", &FailoverOptions::tunnel(2, 50));
    assert!(r.adopted >= r.on_victim, "{r:?}");
}
