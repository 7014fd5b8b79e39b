//! Fragmented traffic end to end, through rvsd in the kernel selftest's
//! topology (client ── director ── server), in DR, NAT and TUN:
//!
//! - 8 KiB UDP datagrams, which the client's kernel sends in six
//!   fragments, echoed back whole by the server (in NAT its fragmented
//!   answer comes back through rvsd too);
//! - a TCP transfer through a server-side link of MTU 1280 from a client
//!   that does not set DF (`ip_no_pmtu_disc`): rvsd sends its segments on
//!   in fragments, which the server's kernel reassembles; with DF, rvsd
//!   answers fragmentation-needed quoting what the client sent, and the
//!   client's path-MTU discovery takes over.
//!
//! What arrives is compared byte for byte (sha256 for the bulk transfer),
//! and rvsd's counters must show the fragment paths were taken.
//!
//! rvsd's ports here are DPDK's pcap PMD, which hands rvsd the frames as
//! they were on the wire, as a NIC does. The af_packet PMD (the lab's
//! usual ports) joins its socket to a fanout group with
//! PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles IPv4 fragments before
//! rvsd sees them, so rvsd gets whole datagrams (up to its frame size) and
//! fragments them again on the way out; the last test covers that.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use rvs_lab::selftest::{Mode, PORT, SERVER, SERVER6, VIP, VIP6};
use rvs_lab::{Lab, RvsdOptions};

/// How rvsd reads its ports.
#[derive(Clone, Copy, PartialEq)]
enum Pmd {
    /// libpcap: frames as they were on the wire.
    Pcap,
    /// af_packet with frames (and mbufs) of 10 KiB: room for a datagram
    /// the kernel reassembled.
    AfPacketLarge,
}

/// The selftest lab for `mode` with rvsd running, its server-side port's
/// MTU set to `server_mtu` when given.
fn lab(name: &str, mode: Mode, v6: bool, server_mtu: Option<u16>) -> Lab {
    lab_on(name, mode, v6, server_mtu, Pmd::Pcap)
}

fn lab_on(name: &str, mode: Mode, v6: bool, server_mtu: Option<u16>, pmd: Pmd) -> Lab {
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = if v6 {
        Lab::create_selftest_v6(&prefix, &dir, mode)
    } else {
        Lab::create_selftest(&prefix, &dir, mode)
    }
    .expect("building the selftest lab");
    let opts = RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(&dir).join("rvsd.sock"),
    };
    let cfg = lab.write_rvsd_config(&opts).unwrap();
    let mut text = fs::read_to_string(&cfg).unwrap();
    let edit = |text: &mut String, from: &str, to: &str| {
        assert!(text.contains(from), "{from:?} in\n{text}");
        *text = text.replace(from, to);
    };
    for (i, iface) in ["veth10", "veth12"].into_iter().enumerate() {
        let af = format!("net_af_packet{i},iface={iface}");
        match pmd {
            Pmd::Pcap => edit(
                &mut text,
                &af,
                &format!("net_pcap{i},rx_iface_in={iface},tx_iface={iface}"),
            ),
            Pmd::AfPacketLarge => edit(
                &mut text,
                &af,
                &format!("{af},framesz=10240,blocksz=20480,framecnt=512"),
            ),
        }
    }
    if pmd == Pmd::AfPacketLarge {
        edit(&mut text, "[dpdk]\n", "[dpdk]\nmbuf_data_room = 10240\n");
    }
    if let Some(mtu) = server_mtu {
        let server_port = "name = \"server\"\n";
        edit(
            &mut text,
            server_port,
            &format!("{server_port}mtu = {mtu}\n"),
        );
    }
    fs::write(&cfg, text).unwrap();
    lab.start_rvsd_with(&cfg, &opts.socket, &[]).unwrap();
    lab
}

fn counter(lab: &Lab, name: &str) -> u64 {
    let c = lab.rvsadm_ok("--counters").unwrap();
    c.lines()
        .find_map(|l| {
            let (k, v) = l.trim().split_once(char::is_whitespace)?;
            (k == name).then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no counter {name} in:\n{c}"))
}

const ECHO: &str = "import socket,sys\n\
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
s = socket.socket(fam, socket.SOCK_DGRAM)\n\
s.bind((sys.argv[1], int(sys.argv[2])))\n\
while True:\n    d, peer = s.recvfrom(65535)\n    s.sendto(d, peer)\n";

/// Sends `count` datagrams of `size` random bytes to `vip`:5353, one at a
/// time, each waiting up to 5 s for its echo; prints how many came back
/// exactly as sent.
const ASK: &str = "import os,socket,sys\n\
vip, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n\
fam = socket.AF_INET6 if ':' in vip else socket.AF_INET\n\
s = socket.socket(fam, socket.SOCK_DGRAM)\n\
s.settimeout(5)\n\
s.connect((vip, 5353))\n\
ok = 0\n\
for _ in range(count):\n    d = os.urandom(size)\n    s.send(d)\n    try:\n        ok += s.recv(65535) == d\n    except socket.timeout:\n        pass\n\
print(ok)\n";

/// A UDP echo service on VIP:5353 to the server; `count` 8 KiB datagrams
/// through it; how many came back intact.
fn echo_8k(lab: &mut Lab, fwd: &str, vip: &str, server: &str, count: u32) -> u32 {
    // DR and TUN servers answer from the VIP they hold; a NAT server from
    // its own address.
    let bind = match (fwd, vip.contains(':')) {
        ("-m", false) => "0.0.0.0",
        ("-m", true) => "::",
        _ => vip,
    };
    lab.spawn_daemon("server", &["python3", "-c", ECHO, bind, "5353"])
        .unwrap();
    lab.wait_listening("server", "udp", 5353).unwrap();
    let (v, s) = if vip.contains(':') {
        (format!("[{vip}]"), format!("[{server}]"))
    } else {
        (vip.to_string(), server.to_string())
    };
    lab.rvsadm_ok(&format!("-A -u {v}:5353 -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -u {v}:5353 -r {s}:5353 {fwd}"))
        .unwrap();
    let out = lab
        .exec(
            "client",
            &["python3", "-c", ASK, vip, "8192", &count.to_string()],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn udp_8k(name: &str, mode: Mode, fwd: &str) -> Lab {
    let mut lab = lab(name, mode, false, None);
    let ok = echo_8k(&mut lab, fwd, VIP, SERVER, 20);
    assert_eq!(
        ok,
        20,
        "8 KiB echoes intact:\n{}",
        lab.rvsadm_ok("--counters").unwrap()
    );
    // Six fragments a datagram; each datagram's first was tracked.
    assert!(counter(&lab, "fragments_tracked") >= 20);
    assert_eq!(counter(&lab, "drop_fragment_orphan"), 0);
    if mode == Mode::Nat {
        assert!(
            counter(&lab, "fragments_tracked") >= 40,
            "the server's fragmented answers were tracked too"
        );
    }
    lab
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_8k_datagrams_dr() {
    udp_8k("fudr", Mode::Dr, "-g");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_8k_datagrams_nat() {
    udp_8k("funat", Mode::Nat, "-m");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_8k_datagrams_tun() {
    // Full-size fragments do not fit with the outer header: rvsd sent the
    // outer packets in fragments, which the server put back together
    // before decapsulating.
    let lab = udp_8k("futun", Mode::Tun("ipip"), "-i");
    assert!(counter(&lab, "packets_fragmented") >= 20 * 5);
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_8k_datagrams_ipv6_dr_and_nat() {
    for (name, mode, fwd) in [("fu6dr", Mode::Dr, "-g"), ("fu6nat", Mode::Nat, "-m")] {
        let mut lab = lab(name, mode, true, None);
        let ok = echo_8k(&mut lab, fwd, VIP6, SERVER6, 10);
        assert_eq!(ok, 10, "{name}: 8 KiB echoes intact:\n{}", lab.rvsd_log());
        assert!(counter(&lab, "fragments_tracked") >= 10);
    }
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut v)
        .unwrap();
    v
}

/// A TCP transfer from a client that does not set DF, through a
/// server-side link of MTU 1280: rvsd sends full-size segments on in
/// fragments.
fn tcp_small_mtu(name: &str, mode: Mode, fwd: &str) {
    let mut lab = lab(name, mode, false, Some(1280));
    lab.exec("client", &["sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1"])
        .unwrap();
    lab.rvsadm_ok(&format!("-A -t {VIP}:{PORT} -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:{PORT} -r {SERVER}:{PORT} {fwd}"))
        .unwrap();
    let data = random(1 << 20);
    let got = lab.transfer(&data, 60).unwrap();
    assert_eq!(got.len(), data.len(), "{}", lab.rvsd_log());
    assert!(got == data, "the bytes arrived as sent");
    let made = counter(&lab, "fragments_made");
    let packets = counter(&lab, "packets_fragmented");
    // 1 MiB in segments of at most 1460 bytes, each in two pieces.
    assert!(packets >= 600, "{packets} packets fragmented");
    assert!(made >= 2 * packets, "{made} fragments of {packets} packets");
    assert_eq!(counter(&lab, "icmp_errors_sent"), 0, "no DF, no ICMP");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tcp_through_a_small_mtu_link_dr() {
    tcp_small_mtu("ftdr", Mode::Dr, "-g");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tcp_through_a_small_mtu_link_nat() {
    tcp_small_mtu("ftnat", Mode::Nat, "-m");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tcp_through_a_small_mtu_link_tun() {
    tcp_small_mtu("fttun", Mode::Tun("ipip"), "-i");
}

/// With DF (Linux's default) through the same link in NAT: rvsd answers
/// fragmentation-needed quoting the segment as the client sent it (to the
/// VIP, before NAT), so the client's kernel takes the MTU for the VIP and
/// the transfer completes in smaller segments, none fragmented.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn tcp_with_df_through_a_small_mtu_link_learns_the_path_mtu() {
    let mut lab = lab("ftdf", Mode::Nat, false, Some(1280));
    lab.rvsadm_ok(&format!("-A -t {VIP}:{PORT} -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:{PORT} -r {SERVER}:{PORT} -m"))
        .unwrap();
    let data = random(1 << 20);
    let got = lab.transfer(&data, 60).unwrap();
    assert!(got == data, "the bytes arrived as sent");
    assert!(counter(&lab, "icmp_errors_sent") > 0);
    assert_eq!(counter(&lab, "packets_fragmented"), 0);
    let route = lab.exec("client", &["ip", "route", "get", VIP]).unwrap();
    let route = String::from_utf8_lossy(&route.stdout);
    assert!(
        route.contains("mtu 1280"),
        "the client learned the path MTU: {route}"
    );
}

/// af_packet ports: the kernel hands rvsd each client datagram whole (its
/// fanout reassembles), which rvsd, finding it bigger than the link, sends
/// on in fragments; in NAT the server's fragmented answer comes back whole
/// the same way and leaves in fragments too.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_8k_datagrams_reassembled_by_af_packet_leave_in_fragments() {
    for (name, mode, fwd) in [("fadr", Mode::Dr, "-g"), ("fanat", Mode::Nat, "-m")] {
        let mut lab = lab_on(name, mode, false, None, Pmd::AfPacketLarge);
        let ok = echo_8k(&mut lab, fwd, VIP, SERVER, 10);
        let counters = lab.rvsadm_ok("--counters").unwrap();
        assert_eq!(ok, 10, "{name}: 8 KiB echoes intact:\n{counters}");
        assert_eq!(counter(&lab, "fragments_tracked"), 0, "{counters}");
        let packets = counter(&lab, "packets_fragmented");
        let want = if mode == Mode::Nat { 20 } else { 10 };
        assert!(
            packets >= want,
            "{name}: {packets} datagrams fragmented:\n{counters}"
        );
        assert!(counter(&lab, "fragments_made") >= 6 * packets);
    }
}
