//! Source-hashing schedulers end to end: about 100 client addresses, each
//! of which must land on the same real server every time, and on the one
//! the scheduler module computes for the same inputs.

mod common;

use std::net::IpAddr;

use common::{lab, name_of, replica};
use rvs_ipvs::sched::SchedInput;
use rvs_lab::{RS1, RS2, VIP};

/// Client addresses 192.168.1.60 ..= 192.168.1.159 (none of the lab's own).
fn clients() -> Vec<String> {
    (60..160).map(|i| format!("192.168.1.{i}")).collect()
}

/// What the scheduler module picks for each client after the same rvsadm
/// commands.
fn expected(scheduler: &str, clients: &[String]) -> Vec<&'static str> {
    let (mut d, key) = replica(scheduler, &[(RS1, 1), (RS2, 1)]);
    let svc = d.service_mut(&key).unwrap();
    clients
        .iter()
        .map(|c| {
            let input = SchedInput {
                saddr: c.parse::<IpAddr>().unwrap(),
                sport: 40000,
                daddr: VIP.parse().unwrap(),
                dport: 80,
                now_ms: 0,
            };
            let i = svc.sched.schedule(&svc.dests, &input).unwrap();
            name_of(&svc.dests[i].spec.addr.to_string())
        })
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn sh_and_mh_pin_each_source_address() {
    let lab = lab("hash");
    let clients = clients();
    for c in &clients {
        lab.exec(
            "client",
            &["ip", "addr", "add", &format!("{c}/24"), "dev", "veth-cli"],
        )
        .unwrap();
    }
    for sched in ["sh", "mh"] {
        lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s {sched}"))
            .unwrap();
        lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1}")).unwrap();
        lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS2}")).unwrap();
        let want = expected(sched, &clients);
        let mut got = Vec::new();
        for c in &clients {
            let url = format!("http://{VIP}/");
            let answers: Vec<String> = (0..2)
                .map(|_| {
                    let out = lab
                        .exec("client", &["curl", "-s", "-m", "5", "--interface", c, &url])
                        .unwrap();
                    String::from_utf8_lossy(&out.stdout).trim().to_string()
                })
                .collect();
            assert_eq!(answers[0], answers[1], "{sched}: {c} moved between servers");
            got.push(answers[0].clone());
        }
        assert_eq!(
            got, want,
            "{sched}: mapping differs from the scheduler module"
        );
        // Both servers get a share.
        assert!(got.iter().any(|s| s == "RS1") && got.iter().any(|s| s == "RS2"));
        lab.rvsadm_ok(&format!("-D -t {VIP}:80")).unwrap();
    }
}
