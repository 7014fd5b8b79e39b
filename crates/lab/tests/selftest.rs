//! The kernel's own IPVS scenarios (tools/testing/selftests/net/netfilter/
//! ipvs.sh) with rvsd as the director: DR, NAT and TUN, each sending random
//! bytes with socat through the VIP and comparing them byte for byte; then
//! bulk transfers, UDP, and path-MTU discovery through a tunnel.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use rvs_lab::selftest::{Mode, PORT, SERVER, VIP};
use rvs_lab::{Lab, RvsdOptions};

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut v)
        .unwrap();
    v
}

fn selftest_lab(name: &str, mode: Mode, fwd: &str) -> Lab {
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create_selftest(&prefix, &dir, mode).expect("building the selftest lab");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(&dir).join("rvsd.sock"),
    })
    .unwrap();
    lab.rvsadm_ok(&format!("-A -t {VIP}:{PORT} -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:{PORT} -r {SERVER}:{PORT} {fwd}"))
        .unwrap();
    lab
}

fn sha256(b: &[u8]) -> String {
    // The real sha256sum, so the comparison is the one the issue names.
    let f = std::env::temp_dir().join(format!("rvs-sha-{}", std::process::id()));
    fs::write(&f, b).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&f)
        .output()
        .unwrap();
    let _ = fs::remove_file(&f);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The selftest's check (32 random bytes), then a 10 MiB transfer compared
/// by sha256: full-size packets and every checksum update on the way.
fn scenario(name: &str, mode: Mode, fwd: &str) -> Lab {
    let mut lab = selftest_lab(name, mode, fwd);
    let data = random(32);
    assert_eq!(lab.transfer(&data, 10).unwrap(), data, "{}", lab.rvsd_log());
    let bulk = random(10 << 20);
    let got = lab.transfer(&bulk, 60).unwrap();
    assert_eq!(got.len(), bulk.len());
    assert_eq!(sha256(&got), sha256(&bulk));
    lab
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn dr() {
    let lab = scenario("sdr", Mode::Dr, "-g");
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(
        l.contains("  -> 172.16.0.2:8080              Route   1"),
        "{l}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn nat() {
    let lab = scenario("snat", Mode::Nat, "-m");
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(
        l.contains("  -> 172.16.0.2:8080              Masq    1"),
        "{l}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tun_ipip() {
    let lab = scenario("sipip", Mode::Tun("ipip"), "-i");
    let l = lab.rvsadm_ok("-Ln --tun-info").unwrap();
    assert!(
        l.contains("  -> 172.16.0.2:8080              Tunnel  ipip          1"),
        "{l}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tun_gue_and_gre() {
    scenario(
        "sgue",
        Mode::Tun("gue:6080"),
        "-i --tun-type gue --tun-port 6080 --tun-csum",
    );
    scenario("sgre", Mode::Tun("gre"), "-i --tun-type gre --tun-csum");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tunnel_too_big_falls_back_through_pmtu_discovery() {
    let mut lab = selftest_lab("spmtu", Mode::Tun("ipip"), "-i");
    // Full-size segments plus 20 bytes of IPIP exceed the 1500-byte link:
    // rvsd answers fragmentation-needed, the client's kernel lowers its path
    // MTU to the VIP and the transfer completes.
    let data = random(1 << 20);
    let got = lab.transfer(&data, 60).unwrap();
    assert_eq!(sha256(&got), sha256(&data));
    let counters = lab.rvsadm_ok("--counters").unwrap();
    let sent: u64 = counters
        .lines()
        .find_map(|l| l.trim().strip_prefix("icmp_errors_sent"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no icmp_errors_sent counter in:\n{counters}"));
    assert!(sent > 0, "{counters}");
    let route = lab.exec("client", &["ip", "route", "get", VIP]).unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.contains("mtu 1480"),
        "the client learned the path MTU: {route}"
    );
}

/// One UDP request from the client through the VIP; the answer.
fn udp_ask(lab: &Lab) -> String {
    let to = std::net::SocketAddr::new(VIP.parse().unwrap(), 5353);
    lab.udp_ask("client", to, None, std::time::Duration::from_secs(5))
        .unwrap()
}

fn udp_service(lab: &mut Lab, fwd: &str, bind: &str) {
    lab.spawn_udp_responder("server", bind, 5353, "answer-from-server")
        .unwrap();
    lab.rvsadm_ok(&format!("-A -u {VIP}:5353 -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -u {VIP}:5353 -r {SERVER}:5353 {fwd}"))
        .unwrap();
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_request_response_dr_and_nat() {
    // DR: the server answers from the VIP it holds.
    let mut lab = selftest_lab("sudpdr", Mode::Dr, "-g");
    udp_service(&mut lab, "-g", VIP);
    for _ in 0..3 {
        assert_eq!(udp_ask(&lab), "answer-from-server");
    }
    drop(lab);
    // NAT: the server answers from its own address; the director puts the
    // VIP back.
    let mut lab = selftest_lab("sudpnat", Mode::Nat, "-m");
    udp_service(&mut lab, "-m", "0.0.0.0");
    for _ in 0..3 {
        assert_eq!(udp_ask(&lab), "answer-from-server");
    }
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(l.contains("UDP  207.175.44.110:5353 rr"), "{l}");
}

fn lab6(name: &str, mode: Mode, fwd: &str) -> Lab {
    use rvs_lab::selftest::{SERVER6, VIP6};
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create_selftest_v6(&prefix, &dir, mode).expect("building the IPv6 lab");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(&dir).join("rvsd.sock"),
    })
    .unwrap();
    lab.rvsadm_ok(&format!("-A -t [{VIP6}]:{PORT} -s rr"))
        .unwrap();
    lab.rvsadm_ok(&format!(
        "-a -t [{VIP6}]:{PORT} -r [{SERVER6}]:{PORT} {fwd}"
    ))
    .unwrap();
    lab
}

/// The three scenarios over IPv6: 32 random bytes, then 10 MiB by sha256.
fn scenario6(name: &str, mode: Mode, fwd: &str) -> Lab {
    use rvs_lab::selftest::VIP6;
    let mut lab = lab6(name, mode, fwd);
    let data = random(32);
    assert_eq!(
        lab.transfer_to(VIP6, &data, 10).unwrap(),
        data,
        "{}",
        lab.rvsd_log()
    );
    let bulk = random(10 << 20);
    let got = lab.transfer_to(VIP6, &bulk, 60).unwrap();
    assert_eq!(sha256(&got), sha256(&bulk));
    lab
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn dr_ipv6() {
    let lab = scenario6("s6dr", Mode::Dr, "-g");
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(l.contains("TCP  [fd00:99::10]:8080 rr"), "{l}");
    assert!(l.contains("  -> [fd00:2::2]:8080"), "{l}");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn nat_ipv6() {
    scenario6("s6nat", Mode::Nat, "-m");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tun_ipv6_in_ipv6_with_packet_too_big() {
    let lab = scenario6("s6tun", Mode::Tun("ip6ip6"), "-i");
    // Full-size segments plus 40 bytes of IPv6 exceed the link: the client
    // got packet-too-big and lowered its path MTU.
    let counters = lab.rvsadm_ok("--counters").unwrap();
    assert!(
        !counters.contains("icmp_errors_sent             0\n"),
        "{counters}"
    );
    let route = lab
        .exec(
            "client",
            &["ip", "-6", "route", "get", rvs_lab::selftest::VIP6],
        )
        .unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(route.contains("mtu 1460"), "{route}");
}
