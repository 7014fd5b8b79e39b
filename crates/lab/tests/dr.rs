//! The direct-routing walkthrough end to end: real curl and socat in
//! namespaces, the real Linux TCP stack on the client and real servers, rvsd
//! on an af_packet port in between.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;

use common::{counter, counter_per_worker, lab, name_of, replica, vip};
use rvs_ipvs::sched::SchedInput;
use rvs_lab::{Lab, RS1, RS2, VIP};

/// What rvs's scheduler module picks for `n` new connections after the same
/// rvsadm commands: the expected order.
fn expected_picks(scheduler: &str, adds: &[(&str, u32)], n: usize) -> Vec<&'static str> {
    let (mut d, key) = replica(scheduler, adds);
    let svc = d.service_mut(&key).unwrap();
    let input = SchedInput {
        saddr: rvs_lab::CLIENT.parse::<IpAddr>().unwrap(),
        sport: 0,
        daddr: VIP.parse().unwrap(),
        dport: 80,
        now_ms: 0,
    };
    (0..n)
        .map(|_| {
            let i = svc.sched.schedule(&svc.dests, &input).unwrap();
            name_of(&svc.dests[i].spec.addr.to_string())
        })
        .collect()
}

fn curls(lab: &Lab, port: u16, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| lab.curl(&format!("http://{}/", vip(port))).unwrap())
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn rr_alternates_and_lists_like_ipvsadm() {
    let lab = lab("rr");
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s rr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220:80 -g -w 1")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.193:80 -g -w 1")
        .unwrap();
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    let body: Vec<&str> = listing.lines().skip(1).collect();
    assert!(
        listing.starts_with("IP Virtual Server version 1.2.1 (size="),
        "{listing}"
    );
    assert_eq!(
        body,
        [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  192.168.1.10:80 rr",
            "  -> 192.168.1.193:80             Route   1      0          0         ",
            "  -> 192.168.1.220:80             Route   1      0          0         ",
        ]
    );
    let got = curls(&lab, 80, 6);
    let want = expected_picks("rr", &[(RS1, 1), (RS2, 1)], 6);
    // The kernel's rr starts at the newest dest: RS2, RS1, RS2, ...
    assert_eq!(want, ["RS2", "RS1", "RS2", "RS1", "RS2", "RS1"]);
    assert_eq!(got, want, "rvsd log:\n{}", lab.rvsd_log());
    // The connections are counted (closed ones are inactive, as in IPVS),
    // once rvsd has seen each client's FIN (curl returns before that).
    let inactive = || -> u32 {
        lab.rvsadm_ok("-Ln")
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("  -> 192"))
            .map(|l| l.split_whitespace().nth(5).unwrap().parse::<u32>().unwrap())
            .sum()
    };
    let _ = lab.wait_for("six inactive connections", || Ok(inactive() == 6));
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    assert_eq!(inactive(), 6, "{listing}");
    let counters = lab.rvsadm_ok("--counters").unwrap();
    assert!(
        counters.contains("new_connections              6"),
        "{counters}"
    ); // SIGTERM stops it cleanly (DPDK objects released before the EAL).
    let mut lab = lab;
    let st = lab.stop_rvsd().unwrap();
    assert!(st.success(), "rvsd exited with {st}:\n{}", lab.rvsd_log());
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn wrr_keeps_3_to_1_in_kernel_order() {
    let lab = lab("wrr");
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s wrr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220 -w 3")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.193 -w 1")
        .unwrap();
    let got = curls(&lab, 80, 40);
    let want = expected_picks("wrr", &[(RS1, 3), (RS2, 1)], 40);
    assert_eq!(got, want);
    assert_eq!(got.iter().filter(|s| *s == "RS1").count(), 30);
    assert_eq!(got.iter().filter(|s| *s == "RS2").count(), 10);
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn second_service_on_another_port() {
    let mut lab = lab("two");
    lab.serve_http("rs1", 8080, "RS1:8080").unwrap();
    lab.serve_http("rs2", 8080, "RS2:8080").unwrap();
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s rr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.193")
        .unwrap();
    lab.rvsadm_ok("-A -t 192.168.1.10:8080 -s wlc").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:8080 -r 192.168.1.193")
        .unwrap();
    assert_eq!(curls(&lab, 8080, 4), ["RS2:8080"; 4]);
    assert_eq!(curls(&lab, 80, 4), ["RS2", "RS1", "RS2", "RS1"]);
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    let services: Vec<&str> = listing.lines().filter(|l| l.starts_with("TCP")).collect();
    assert_eq!(
        services,
        ["TCP  192.168.1.10:80 rr", "TCP  192.168.1.10:8080 wlc"]
    );
}

/// A long-lived connection through the VIP: socat to an echo service that
/// greets with the real server's name.
struct Session {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    server: String,
}

impl Session {
    fn open(lab: &Lab, port: u16) -> Session {
        let mut child = lab
            .spawn_piped("client", &["socat", "-", &format!("TCP:{}", vip(port))])
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut server = String::new();
        out.read_line(&mut server).unwrap();
        Session {
            child,
            out,
            server: server.trim().to_string(),
        }
    }

    fn echo(&mut self, msg: &str) -> String {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(format!("{msg}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One new connection's greeting (the connection is closed again).
fn greeting(lab: &Lab, port: u16) -> String {
    Session::open(lab, port).server.clone()
}

fn echo_lab(name: &str) -> Lab {
    let mut lab = lab(name);
    lab.serve_echo("rs1", 9000, "RS1").unwrap();
    lab.serve_echo("rs2", 9000, "RS2").unwrap();
    lab.rvsadm_ok("-A -t 192.168.1.10:9000 -s rr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:9000 -r 192.168.1.220")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:9000 -r 192.168.1.193")
        .unwrap();
    lab
}

fn addr_of(server: &str) -> &'static str {
    if server == "RS1" {
        RS1
    } else {
        RS2
    }
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn deleted_server_gets_no_new_flows_but_keeps_its_connection() {
    let lab = echo_lab("del");
    let mut s = Session::open(&lab, 9000);
    assert_eq!(s.server, "RS2", "rr starts at the newest server");
    assert_eq!(s.echo("before"), "before");
    lab.rvsadm_ok(&format!(
        "-d -t 192.168.1.10:9000 -r {}",
        addr_of(&s.server)
    ))
    .unwrap();
    for _ in 0..4 {
        assert_eq!(greeting(&lab, 9000), "RS1");
    }
    assert_eq!(s.echo("after"), "after", "the old connection still flows");
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    assert!(!listing.contains(RS2), "{listing}");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn weight_zero_quiesces() {
    let lab = echo_lab("quiesce");
    let mut s = Session::open(&lab, 9000);
    assert_eq!(s.server, "RS2");
    lab.rvsadm_ok("-e -t 192.168.1.10:9000 -r 192.168.1.193 -w 0")
        .unwrap();
    for _ in 0..4 {
        assert_eq!(greeting(&lab, 9000), "RS1");
    }
    assert_eq!(s.echo("still here"), "still here");
    // The quiesced server keeps its established connection on the books.
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    assert!(
        listing.contains("  -> 192.168.1.193:9000           Route   0      1          0         "),
        "{listing}"
    );
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn bad_rvsadm_input_is_refused_and_changes_nothing() {
    let lab = lab("bad");
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s rr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220")
        .unwrap();
    let before = lab.rvsadm_ok("-Ln").unwrap();
    let cases: &[(&str, &str, i32)] = &[
        (
            "-A -t 192.168.1.10:81 -s nosuch",
            "Scheduler or persistence engine not found",
            255,
        ),
        ("-A -t 192.168.1.10:80 -s rr", "Service already exists", 255),
        (
            "-a -t 192.168.1.10:80 -r 192.168.1.220",
            "Destination already exists",
            255,
        ),
        (
            "-a -t 192.168.1.10:99 -r 192.168.1.220",
            "Service not defined",
            255,
        ),
        (
            "-d -t 192.168.1.10:80 -r 192.168.1.99",
            "No such destination",
            255,
        ),
        ("-E -t 192.168.1.10:99 -s rr", "No such service", 255),
        ("-D -t 192.168.1.10:99", "No such service", 255),
        (
            "-a -t 192.168.1.10:80 -r 192.168.1.193 -w 2147483648",
            "illegal weight specified",
            2,
        ),
        (
            "-a -t 192.168.1.10:80 -r 192.168.1.193 -y 5",
            "Numerical result out of range",
            255,
        ),
        (
            "-A -t 192.168.1.10",
            "Zero port specified for non-persistent service",
            2,
        ),
        (
            "-A -t nonsense:80:",
            "illegal virtual server address[:port] specified",
            2,
        ),
        ("-L -A", "invalid option `-A'", 2),
        ("-x", "Try `", 255),
    ];
    for (line, msg, code) in cases {
        let out = lab
            .rvsadm(&line.split_whitespace().collect::<Vec<_>>())
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{line}: {err}");
        assert!(err.starts_with(msg), "{line}: {err}");
        assert_eq!(
            lab.rvsadm_ok("-Ln").unwrap(),
            before,
            "{line} changed the table"
        );
    }
    // The service still works.
    assert_eq!(curls(&lab, 80, 2), ["RS1", "RS1"]);
    // No daemon on the socket: one clear line.
    let out = std::process::Command::new(rvs_lab::bin_dir().join("rvsadm"))
        .args(["--socket", "/nonexistent/rvsd.sock", "-Ln"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("rvsd is not running"), "{err}");
    assert_ne!(out.status.code(), Some(0));
}

/// One UDP request from the client; the first line of the answer.
fn udp_ask(lab: &Lab, port: u16, source_port: Option<u16>) -> String {
    let to: std::net::SocketAddr = vip(port).parse().unwrap();
    lab.udp_ask("client", to, source_port, std::time::Duration::from_secs(5))
        .unwrap()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn udp_flows_stick_and_new_flows_alternate() {
    let mut lab = lab("udp");
    for (rs, name) in [("rs1", "RS1"), ("rs2", "RS2")] {
        // Bound to the VIP so that replies leave from it, as DR needs.
        lab.spawn_udp_responder(rs, VIP, 5353, name).unwrap();
    }
    lab.rvsadm_ok("-A -u 192.168.1.10:5353 -s rr").unwrap();
    lab.rvsadm_ok("-a -u 192.168.1.10:5353 -r 192.168.1.220")
        .unwrap();
    lab.rvsadm_ok("-a -u 192.168.1.10:5353 -r 192.168.1.193")
        .unwrap();
    let new_flows: Vec<String> = (0..4).map(|_| udp_ask(&lab, 5353, None)).collect();
    assert_eq!(new_flows, ["RS2", "RS1", "RS2", "RS1"]);
    // The same source port is the same flow: it stays on its server.
    let first = udp_ask(&lab, 5353, Some(40123));
    assert!(first == "RS1" || first == "RS2", "{first:?}");
    for _ in 0..3 {
        assert_eq!(udp_ask(&lab, 5353, Some(40123)), first);
    }
    // UDP connections count as inactive.
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    assert!(listing.contains("UDP  192.168.1.10:5353 rr"), "{listing}");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn persistent_service_pins_the_client() {
    let lab = lab("persist");
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s rr -p 60").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.193")
        .unwrap();
    let got = curls(&lab, 80, 5);
    assert_eq!(got, ["RS2"; 5], "rr would alternate; the template pins");
    let listing = lab.rvsadm_ok("-Ln --persistent-conn").unwrap();
    assert!(
        listing.contains("TCP  192.168.1.10:80 rr persistent 60\n"),
        "{listing}"
    );
    assert!(
        listing.contains("  -> 192.168.1.193:80             1         1           "),
        "one template on RS2: {listing}"
    );
}

/// A lab whose rvsd naps as shipped for shared CPUs, except that its naps
/// grow to half a second, on `lcores`, with a DR service on RS1.
fn napping_lab(name: &str, lcores: &[u32]) -> Lab {
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).expect("building the lab");
    lab.serve_http("rs1", 80, "RS1").unwrap();
    let opts = rvs_lab::RvsdOptions {
        worker_lcores: lcores.to_vec(),
        idle_empty_polls: 8,
        socket: dir.join("rvsd.sock"),
    };
    let cfg = lab.write_rvsd_config(&opts).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let naps = "idle_sleep_us = 100\n";
    assert!(text.contains(naps), "{text}");
    let text = text.replace(naps, &format!("{naps}idle_sleep_max_us = 500000\n"));
    std::fs::write(&cfg, text).unwrap();
    lab.start_rvsd_with(&cfg, &opts.socket, &[]).unwrap();
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1} -g"))
        .unwrap();
    lab
}

/// Waits until every worker is in a long nap: 13 naps in a row double
/// from 100 µs to 410 ms, and the counter moves as a nap starts.
fn wait_for_long_naps(lab: &Lab) {
    let naps = counter_per_worker(lab, "idle_sleeps");
    lab.wait_for("a long nap on every worker", || {
        let now = counter_per_worker(lab, "idle_sleeps");
        Ok(now.len() == naps.len() && now.iter().zip(&naps).all(|(n, was)| *n >= was + 13))
    })
    .unwrap();
}

/// An idle worker's nap ends at the first frame on its af_packet socket
/// (`dpdk::RxWait`), not when the nap runs out: with naps that grow to half
/// a second, a request that comes while the worker naps is still answered
/// at once (with plain naps each took 470 ms here).
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn a_frame_ends_an_idle_workers_nap() {
    let lab = napping_lab("nap", &[1]);
    let mut took = Vec::new();
    for _ in 0..5 {
        wait_for_long_naps(&lab);
        let woken = counter(&lab, "idle_woken");
        let t = std::time::Instant::now();
        assert_eq!(lab.curl(&format!("http://{}/", vip(80))).unwrap(), "RS1");
        took.push(t.elapsed());
        assert!(counter(&lab, "idle_woken") > woken, "a frame ended the nap");
    }
    // Each took the start of curl in the client's namespace and the
    // exchange; a plain nap adds at least 300 ms of the long one (the
    // request comes at most ~100 ms into it).
    took.sort();
    assert!(
        took[2] < std::time::Duration::from_millis(200),
        "median request {:?} (all {took:?})",
        took[2]
    );
}

/// With two workers, a frame that reaches the worker that does not own its
/// connection is handed over through the owner's ring, which has no socket
/// to wake on: the hand-over rings the owner's doorbell (an eventfd its nap
/// polls too), so the owner's nap ends then, not when it runs out. The
/// kernel spreads flows over the two queues by its own hash, the workers
/// own them by theirs: about half the requests are handed over.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn a_handed_over_frame_ends_its_owners_nap() {
    let lab = napping_lab("hnap", &[1, 2]);
    let (mut handed, mut direct) = (Vec::new(), Vec::new());
    // Each try waits about a second for the naps; half are handed over.
    for _ in 0..40 {
        if handed.len() == 3 {
            break;
        }
        wait_for_long_naps(&lab);
        let redirected = counter(&lab, "redirected");
        let t = std::time::Instant::now();
        assert_eq!(lab.curl(&format!("http://{}/", vip(80))).unwrap(), "RS1");
        let took = t.elapsed();
        if counter(&lab, "redirected") > redirected {
            handed.push(took);
        } else {
            direct.push(took);
        }
    }
    eprintln!("handed over: {handed:?}; not: {direct:?}");
    assert_eq!(
        handed.len(),
        3,
        "requests handed over: {handed:?}, not: {direct:?}"
    );
    // Without the doorbell the owner sleeps out its nap: the handed-over
    // SYN waits at least 300 ms of it.
    handed.sort();
    assert!(
        handed[1] < std::time::Duration::from_millis(200),
        "median handed-over request {:?} (all {handed:?})",
        handed[1]
    );
}
