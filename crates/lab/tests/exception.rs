//! The exception path end to end: the director's kernel has rvsd's
//! interface (`rvs-lan`, 192.168.1.213/24, the port's MAC) and reaches the
//! LAN through the DPDK port, while VIP traffic keeps flowing past it.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{counter, lab};
use rvs_lab::{Lab, RvsdOptions, CLIENT, DIRECTOR, RS1, VIP};

fn ok(lab: &Lab, role: &str, args: &[&str]) -> String {
    let out = lab.exec(role, args).unwrap();
    assert!(
        out.status.success(),
        "{args:?} in {role}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn walkthrough_service(lab: &Lab) {
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1}:80 -g"))
        .unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {}:80 -g", rvs_lab::RS2))
        .unwrap();
}

/// BIRD 2 with one BGP session, in `role`'s namespace, announcing
/// `announce` (a static route); its control socket is `<dir>/<name>.ctl`.
fn start_bird(
    lab: &mut Lab,
    name: &str,
    role: &str,
    (me, my_as): (&str, u32),
    (peer, peer_as): (&str, u32),
    announce: &str,
) -> PathBuf {
    let conf = lab.dir.join(format!("{name}.conf"));
    let ctl = lab.dir.join(format!("{name}.ctl"));
    std::fs::write(
        &conf,
        format!(
            "router id {me};\n\
protocol device {{ }}\n\
protocol static {{ ipv4; route {announce} blackhole; }}\n\
protocol bgp peer {{\n  local {me} as {my_as};\n  neighbor {peer} as {peer_as};\n  \
hold time 9;\n  connect retry time 1;\n  ipv4 {{ import all; export all; }};\n}}\n"
        ),
    )
    .unwrap();
    let (c, s) = (conf.display().to_string(), ctl.display().to_string());
    lab.spawn_named(name, role, &["bird", "-f", "-c", &c, "-s", &s])
        .unwrap();
    ctl
}

fn birdc(lab: &Lab, role: &str, ctl: &std::path::Path, cmd: &str) -> String {
    let mut args = vec!["birdc", "-s", ctl.to_str().unwrap()];
    args.extend(cmd.split_whitespace());
    String::from_utf8_lossy(&lab.exec(role, &args).unwrap().stdout).into_owned()
}

/// curl the VIP `n` times from the client; how many answered.
fn vip_curls(lab: &Lab, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            lab.exec(
                "client",
                &["curl", "-s", "-f", "-m", "3", &format!("http://{VIP}/")],
            )
            .map(|o| o.status.success())
            .unwrap_or(false)
        })
        .count()
}

/// From the director's own kernel, over the DPDK port: ping, curl to a
/// real server, an SSH-like TCP session into the director's address from
/// the client, and a BGP session (BIRD 2 on both ends) reaching
/// Established and exchanging routes, while VIP traffic keeps flowing
/// and none of it reaches the kernel.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn director_kernel_talks_over_the_exception_path() {
    let mut lab = lab("exc");
    walkthrough_service(&lab);

    // The interface: the director's address, the port's MAC, up.
    let link = ok(&lab, "director", &["ip", "-o", "link", "show", "rvs-lan"]);
    let port_link = ok(&lab, "director", &["ip", "-o", "link", "show", "veth-dir"]);
    let mac = |l: &str| {
        l.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(mac(&link), mac(&port_link), "{link}\n{port_link}");
    assert!(link.contains(",UP"), "{link}");
    let addrs = ok(
        &lab,
        "director",
        &["ip", "-o", "-4", "addr", "show", "rvs-lan"],
    );
    assert!(addrs.contains(&format!("{DIRECTOR}/24")), "{addrs}");

    // The kernel's own traffic, out and back.
    let to_kernel = counter(&lab, "to_kernel");
    let ping = ok(
        &lab,
        "director",
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", RS1],
    );
    assert!(ping.contains("3 received"), "{ping}");
    assert_eq!(
        ok(
            &lab,
            "director",
            &["curl", "-s", "-m", "5", &format!("http://{RS1}/")]
        )
        .trim(),
        "RS1"
    );
    // The client pings the director: the kernel answers now.
    let ping = ok(
        &lab,
        "client",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", DIRECTOR],
    );
    assert!(ping.contains("2 received"), "{ping}");
    assert!(counter(&lab, "to_kernel") >= to_kernel + 5 + 2);
    assert!(counter(&lab, "from_kernel") > 0);

    // SSH-like: a TCP service of the director's kernel, a session into it.
    lab.serve_echo("director", 2222, "SSH-2.0-lab").unwrap();
    let session = ok(
        &lab,
        "client",
        &[
            "sh",
            "-c",
            &format!("printf 'ls\\nexit\\n' | socat -t 2 - TCP:{DIRECTOR}:2222,connect-timeout=5"),
        ],
    );
    assert_eq!(session, "SSH-2.0-lab\nls\nexit\n");
    // A port nobody listens on: the kernel's RST, not a silent drop.
    let refused = lab
        .exec(
            "client",
            &["curl", "-s", "-m", "5", &format!("http://{DIRECTOR}:2223/")],
        )
        .unwrap();
    assert_eq!(refused.status.code(), Some(7), "connection refused");

    // BGP between the director's kernel and a peer on the client, while
    // the client keeps using the VIP.
    let dir_ctl = start_bird(
        &mut lab,
        "bird-director",
        "director",
        (DIRECTOR, 65001),
        (CLIENT, 65002),
        &format!("{VIP}/32"),
    );
    let cli_ctl = start_bird(
        &mut lab,
        "bird-client",
        "client",
        (CLIENT, 65002),
        (DIRECTOR, 65001),
        "10.77.0.0/24",
    );
    let started = Instant::now();
    let mut served = 0;
    let mut asked = 0;
    loop {
        served += vip_curls(&lab, 5);
        asked += 5;
        let d = birdc(&lab, "director", &dir_ctl, "show protocols peer");
        let c = birdc(&lab, "client", &cli_ctl, "show protocols peer");
        if d.contains("Established") && c.contains("Established") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no BGP session after 30 s:\n{d}\n{c}\n{}\n{}",
            lab.log_of("bird-director"),
            lab.log_of("bird-client")
        );
    }
    eprintln!("BGP established after {:?}", started.elapsed());
    // Routes both ways: the VIP announced by the director, and back.
    lab.wait_for("routes exchanged", || {
        Ok(
            birdc(&lab, "client", &cli_ctl, &format!("show route {VIP}/32")).contains("65001")
                && birdc(&lab, "director", &dir_ctl, "show route 10.77.0.0/24").contains("65002"),
        )
    })
    .unwrap();
    served += vip_curls(&lab, 20);
    asked += 20;
    assert_eq!(served, asked, "VIP requests lost while BGP came up");

    // VIP traffic never takes the path: 20 requests (about 150 frames)
    // hand the kernel next to nothing (a BGP keepalive, an ARP).
    let before = counter(&lab, "to_kernel");
    assert_eq!(vip_curls(&lab, 20), 20);
    let after = counter(&lab, "to_kernel");
    assert!(
        after - before < 10,
        "{} frames went to the kernel during 20 VIP requests",
        after - before
    );
    assert_eq!(counter(&lab, "drop_kernel_full"), 0);
}

/// `kernel_interface = false`: no interface, and the director's address
/// is rvsd's alone again (it answers ping itself, drops the rest).
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn kernel_interface_off_leaves_the_kernel_out() {
    let prefix = format!("{}exoff", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).unwrap();
    lab.serve_http("rs1", 80, "RS1").unwrap();
    let socket = dir.join("rvsd.sock");
    let cfg = lab
        .write_rvsd_config(&RvsdOptions {
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            socket: socket.clone(),
        })
        .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "address = \"192.168.1.213/24\"\n",
        "address = \"192.168.1.213/24\"\nkernel_interface = false\n",
    );
    std::fs::write(&cfg, text).unwrap();
    lab.start_rvsd_with(&cfg, &socket, &[]).unwrap();
    let links = ok(&lab, "director", &["ip", "-o", "link"]);
    assert!(!links.contains("rvs-lan"), "{links}");
    let ping = ok(
        &lab,
        "client",
        &["ping", "-c", "2", "-i", "0.2", "-W", "2", DIRECTOR],
    );
    assert!(ping.contains("2 received"), "{ping}");
    assert_eq!(counter(&lab, "icmp_echo_replies"), 2);
    let out = lab
        .exec(
            "client",
            &["curl", "-s", "-m", "2", &format!("http://{DIRECTOR}:22/")],
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(28), "a drop: curl times out");
    assert!(counter(&lab, "drop_to_director") >= 1);
    assert_eq!(counter(&lab, "to_kernel"), 0);
}

/// rvsd gives its interface back on exit: the kernel side goes with it.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn the_interface_goes_with_rvsd() {
    let mut lab = lab("exgone");
    let links = ok(&lab, "director", &["ip", "-o", "link"]);
    assert!(links.contains("rvs-lan"), "{links}");
    let st = lab.stop_rvsd().unwrap();
    assert!(st.success(), "{st}");
    let links = ok(&lab, "director", &["ip", "-o", "link"]);
    assert!(!links.contains("rvs-lan"), "{links}");
    // And a new rvsd makes it again.
    let socket = lab.dir.join("rvsd.sock");
    let cfg = lab.dir.join("rvsd.toml");
    lab.start_rvsd_with(&cfg, &socket, &[]).unwrap();
    let links = ok(&lab, "director", &["ip", "-o", "link"]);
    assert!(links.contains("rvs-lan"), "{links}");
}
