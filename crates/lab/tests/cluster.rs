//! The cluster lab: directors behind a BIRD router that spreads the VIP's
//! flows over them by ECMP.

use std::collections::BTreeMap;
use std::time::Duration;

use rvs_lab::cluster::{Cluster, ClusterOptions, CLUSTER_VIP};

fn cluster(name: &str, opts: ClusterOptions) -> Cluster {
    let prefix = format!("{}{}", rvs_lab::test_prefix(), name);
    let dir = rvs_lab::test_dir(&prefix);
    Cluster::create(&prefix, &dir, opts).expect("building the cluster lab")
}

fn new_connections(c: &Cluster, i: usize) -> u64 {
    c.new_connections(i).unwrap()
}

/// Which real server answered each of `n` requests from the client, each
/// from a new source port.
fn served(c: &Cluster, n: usize) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for _ in 0..n {
        let out = c
            .lab
            .exec(
                "client",
                &[
                    "curl",
                    "-s",
                    "-f",
                    "-m",
                    "3",
                    &format!("http://{CLUSTER_VIP}/"),
                ],
            )
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
        *by.entry(if out.status.success() {
            body
        } else {
            "failed".into()
        })
        .or_insert(0) += 1;
    }
    by
}

/// Two directors announce the VIP by BGP over rvsd's exception path; the
/// router installs one route with both as next hops, and the client's
/// connections go through both and reach the shared real servers. A
/// director that withdraws leaves the route, and the other serves all.
#[test]
#[ignore = "needs root, network namespaces, DPDK and BIRD; run with cargo xtask test"]
fn the_router_spreads_flows_over_the_directors_that_announce() {
    let mut c = cluster("clu", ClusterOptions::new(2, 2));
    for r in 1..=2 {
        c.lab
            .serve_http(&Cluster::real_server_role(r), 80, &format!("RS{r}"))
            .unwrap();
    }
    for i in 1..=2 {
        c.start_rvsd(i).unwrap();
    }
    c.configure_service("mh", 80).unwrap();
    assert_eq!(
        c.router_next_hops(CLUSTER_VIP).unwrap(),
        Vec::<String>::new()
    );
    for i in 1..=2 {
        c.announce(i, &[CLUSTER_VIP]).unwrap();
    }
    let t = c
        .wait_next_hops(CLUSTER_VIP, &[1, 2], Duration::from_secs(30))
        .unwrap();
    eprintln!("both routes after {t:?}");

    let before = [new_connections(&c, 1), new_connections(&c, 2)];
    let by = served(&c, 30);
    assert_eq!(by.get("failed"), None, "{by:?}");
    assert_eq!(by.values().sum::<usize>(), 30);
    let through = [
        new_connections(&c, 1) - before[0],
        new_connections(&c, 2) - before[1],
    ];
    assert_eq!(through[0] + through[1], 30, "{through:?}");
    // 30 flows hashed over 2 next hops: both get some (all on one has
    // odds of 2^-29).
    assert!(through[0] > 0 && through[1] > 0, "{through:?}");

    // Director 2 withdraws: the route keeps director 1 only.
    c.announce(2, &[]).unwrap();
    c.wait_next_hops(CLUSTER_VIP, &[1], Duration::from_secs(10))
        .unwrap();
    let before = [new_connections(&c, 1), new_connections(&c, 2)];
    let by = served(&c, 10);
    assert_eq!(by.get("failed"), None, "{by:?}");
    assert_eq!(new_connections(&c, 1) - before[0], 10);
    assert_eq!(new_connections(&c, 2), before[1]);
}

/// rvs-announce announces a director's VIP only while its rvsd can serve
/// it: not before the service has a real server with weight, not while all
/// are quiesced, not while it drains, not once rvsd is killed (the router
/// drops it within about a second: BFD over rvsd's own interface) or
/// stopped; and again when a restarted rvsd has loaded its rules.
#[test]
#[ignore = "needs root, network namespaces, DPDK and BIRD; run with cargo xtask test"]
fn directors_announce_only_while_they_can_serve() {
    let mut c = cluster("ann", ClusterOptions::new(2, 2));
    for r in 1..=2 {
        c.lab
            .serve_http(&Cluster::real_server_role(r), 80, &format!("RS{r}"))
            .unwrap();
    }
    for i in 1..=2 {
        c.start_rvsd(i).unwrap();
        c.start_announcer(i).unwrap();
    }
    let limit = Duration::from_secs(30);
    // Both sessions up, both announcers have run: still no route, as no
    // director has a service.
    c.lab
        .wait_for("BGP sessions and announcers", || {
            Ok(c.bgp_established(1)?
                && c.bgp_established(2)?
                && (1..=2).all(|i| {
                    c.lab
                        .log_of(&Cluster::announcer_name(i))
                        .contains("announcing nothing")
                }))
        })
        .unwrap();
    assert_eq!(
        c.router_next_hops(CLUSTER_VIP).unwrap(),
        Vec::<String>::new()
    );
    let status = c.rvsadm_ok(1, "--announcement").unwrap();
    assert_eq!(status, "state: serving\nready:\nannounced:\n");

    c.configure_service("mh", 80).unwrap();
    c.wait_next_hops(CLUSTER_VIP, &[1, 2], limit).unwrap();
    assert_eq!(
        c.rvsadm_ok(1, "--announcement").unwrap(),
        format!("state: serving\nready: {CLUSTER_VIP}\nannounced: {CLUSTER_VIP}\n")
    );

    // Every real server of director 2 quiesced: it withdraws.
    for r in 1..=2 {
        c.rvsadm_ok(
            2,
            &format!(
                "-e -t {CLUSTER_VIP}:80 -r {}:80 -g -w 0",
                rvs_lab::cluster::real_server_addr(r)
            ),
        )
        .unwrap();
    }
    c.wait_next_hops(CLUSTER_VIP, &[1], limit).unwrap();
    // One back is enough to announce; both back, so that (mh without
    // mh-fallback) no flow lands on a quiesced one.
    c.rvsadm_ok(
        2,
        &format!(
            "-e -t {CLUSTER_VIP}:80 -r {}:80 -g -w 1",
            rvs_lab::cluster::real_server_addr(1)
        ),
    )
    .unwrap();
    c.wait_next_hops(CLUSTER_VIP, &[1, 2], limit).unwrap();
    c.rvsadm_ok(
        2,
        &format!(
            "-e -t {CLUSTER_VIP}:80 -r {}:80 -g -w 1",
            rvs_lab::cluster::real_server_addr(2)
        ),
    )
    .unwrap();

    // Drain director 1: withdrawn, and the VIP still answers (through 2).
    c.rvsadm_ok(1, "--drain").unwrap();
    assert!(c
        .rvsadm_ok(1, "--announcement")
        .unwrap()
        .starts_with("state: draining\n"));
    c.wait_next_hops(CLUSTER_VIP, &[2], limit).unwrap();
    let by = served(&c, 5);
    assert_eq!(by.get("failed"), None, "{by:?}");
    c.rvsadm_ok(1, "--undrain").unwrap();
    c.wait_next_hops(CLUSTER_VIP, &[1, 2], limit).unwrap();

    // kill -9: the router notices without any help from the director.
    c.kill_rvsd(1).unwrap();
    let noticed = c
        .wait_next_hops(CLUSTER_VIP, &[2], Duration::from_secs(10))
        .unwrap();
    eprintln!("the router dropped the killed director after {noticed:?}");
    assert!(
        noticed < Duration::from_millis(1500),
        "BFD should notice in about 300 ms, took {noticed:?}"
    );
    // Restarted, it loads its rules and is announced again.
    c.start_rvsd(1).unwrap();
    let back = c.wait_next_hops(CLUSTER_VIP, &[1, 2], limit).unwrap();
    eprintln!("the restarted director was back in the route after {back:?}");

    // A clean stop withdraws too.
    let st = c.stop_rvsd(2).unwrap();
    assert!(st.success(), "{st}");
    c.wait_next_hops(CLUSTER_VIP, &[1], Duration::from_secs(5))
        .unwrap();
    let by = served(&c, 5);
    assert_eq!(by.get("failed"), None, "{by:?}");
}
