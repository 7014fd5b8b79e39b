//! Traffic counters, rates, the metrics endpoint and the status page, end to
//! end: real curl, socat and Linux TCP stacks in namespaces, rvsd between
//! them, and what each side counted compared.
//!
//! What the client really sent (and, for NAT, what the server answered) is
//! counted on the wire, on the sender's own interface, by a packet socket
//! (tools/count-packets.py): every frame to the VIP's port as the device
//! transmits it, with its IP length, the quantity IPVS adds to InBytes. Not
//! iptables' OUTPUT counters: TCP hands the hook segments of up to 64 KiB
//! that are only cut to wire size below it (GSO), and rvsd sees the pieces.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout};
use std::time::{Duration, Instant};

use common::{attr, cell, element, lab, replica, which};
use rvs_ipvs::sched::SchedInput;
use rvs_lab::selftest::{Mode, CLIENT as SCLIENT, PORT, SERVER, VIP as SVIP};
use rvs_lab::{Lab, RvsdOptions, CLIENT, METRICS_LISTEN, RS1, RS2, VIP};

/// What a host sends out of an interface to one address and port, counted
/// on the wire by tools/count-packets.py (a packet socket that sees each
/// frame as the device transmits it, after the stack's segmentation).
struct Capture {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Capture {
    /// Counts `proto` packets to `dst` whose `which` ("dport"/"sport") is
    /// `port`, leaving `iface` of `role`.
    fn start(
        lab: &Lab,
        role: &str,
        iface: &str,
        dst: &str,
        proto: &str,
        which: &str,
        port: u16,
    ) -> Capture {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/count-packets.py");
        let (script, port) = (script.display().to_string(), port.to_string());
        let mut child = lab
            .spawn_piped(role, &["python3", &script, iface, dst, proto, which, &port])
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "count-packets.py did not start");
        Capture { child, out }
    }

    /// Stops counting: packets and IP bytes.
    fn stop(mut self) -> (u64, u64) {
        let pid = self.child.id().to_string();
        rvs_lab::run("kill", &["-TERM", &pid]).unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            f.len() == 4 && f[0] == "packets",
            "count-packets.py said {line:?}"
        );
        (f[1].parse().unwrap(), f[3].parse().unwrap())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `role` has no TCP connection to `dst` that could still send
/// (anything but TIME-WAIT): what it sends to `dst` has left.
fn quiesce(lab: &Lab, role: &str, dst: &str) {
    lab.wait_for(&format!("{role}'s connections to {dst} to finish"), || {
        let out = lab.exec(
            role,
            &[
                "ss",
                "-Htn",
                "state",
                "syn-sent",
                "state",
                "established",
                "state",
                "fin-wait-1",
                "state",
                "fin-wait-2",
                "state",
                "close-wait",
                "state",
                "last-ack",
                "state",
                "closing",
                "dst",
                dst,
            ],
        )?;
        Ok(out.status.success() && out.stdout.is_empty())
    })
    .unwrap();
}

/// The rows of `rvsadm -Ln --stats --exact` (or `--rate --exact`): service
/// rows by "TCP  addr:port", real servers by "-> addr:port", five numbers
/// each.
fn rows(text: &str) -> HashMap<String, [u64; 5]> {
    let mut m = HashMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() != 7 {
            continue;
        }
        let nums: Vec<u64> = match f[2..].iter().map(|n| n.parse()).collect() {
            Ok(v) => v,
            Err(_) => continue,
        };
        m.insert(format!("{} {}", f[0], f[1]), nums.try_into().unwrap());
    }
    m
}

/// The metrics endpoint's values by series, scraped from the director.
fn scrape(lab: &Lab) -> std::collections::HashMap<String, f64> {
    lab.scrape_metrics("director").unwrap()
}

fn backend(series: &str, rs: &str) -> String {
    format!(
        "{series}{{local_address=\"{VIP}\",local_port=\"80\",remote_address=\"{rs}\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"}}"
    )
}

/// Waits until `pair` gives two equal values (the last packets of a
/// connection are still on their way when curl returns), up to 10 s.
fn settle<T: PartialEq + std::fmt::Debug>(what: &str, mut pair: impl FnMut() -> (T, T)) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (a, b) = pair();
        if a == b {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not settle in 10 s: {a:?} against {b:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn dr_counts_what_the_client_sent_split_as_scheduled() {
    let lab = lab("stdr");
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s wrr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220 -w 3")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.193 -w 1")
        .unwrap();
    let capture = Capture::start(&lab, "client", "veth-cli", VIP, "tcp", "dport", 80);
    const N: usize = 24;
    for _ in 0..N {
        lab.curl(&format!("http://{VIP}/")).unwrap();
    }
    quiesce(&lab, "client", VIP);
    let (pkts, bytes) = capture.stop();
    // The split the scheduler module makes for the same commands.
    let (mut d, key) = replica("wrr", &[(RS1, 3), (RS2, 1)]);
    let svc = d.service_mut(&key).unwrap();
    let input = SchedInput {
        saddr: CLIENT.parse().unwrap(),
        sport: 0,
        daddr: VIP.parse().unwrap(),
        dport: 80,
        now_ms: 0,
    };
    let mut want_conns: HashMap<String, u64> = HashMap::new();
    for _ in 0..N {
        let i = svc.sched.schedule(&svc.dests, &input).unwrap();
        *want_conns
            .entry(svc.dests[i].spec.addr.to_string())
            .or_default() += 1;
    }
    assert_eq!(want_conns[RS1], 18);
    let svc_row = format!("TCP {VIP}:80");
    let stats = || rows(&lab.rvsadm_ok("-Ln --stats --exact").unwrap());
    settle("InPkts against the client's count", || {
        (stats()[&svc_row][1], pkts)
    });
    let listing = lab.rvsadm_ok("-Ln --stats --exact").unwrap();
    let r = rows(&listing);
    // Conns, InPkts, OutPkts, InBytes, OutBytes. DR replies bypass rvsd.
    assert_eq!(r[&svc_row], [N as u64, pkts, 0, bytes, 0], "{listing}");
    for rs in [RS1, RS2] {
        let d = r[&format!("-> {rs}:80")];
        assert_eq!(d[0], want_conns[rs], "{rs}: {listing}");
        assert_eq!((d[2], d[4]), (0, 0), "{rs}: {listing}");
        // Each connection was a short curl: several packets, none counted
        // twice or lost.
        assert!(d[1] >= 5 * d[0], "{rs}: {listing}");
    }
    let dests = |i: usize| r[&format!("-> {RS1}:80")][i] + r[&format!("-> {RS2}:80")][i];
    assert_eq!((dests(1), dests(3)), (pkts, bytes), "{listing}");

    // The same numbers under node_exporter's names, and the totals of
    // /proc/net/ip_vs_stats (one service: its figures).
    let m = scrape(&lab);
    assert_eq!(m["node_ipvs_connections_total"], N as f64);
    assert_eq!(m["node_ipvs_incoming_packets_total"], pkts as f64);
    assert_eq!(m["node_ipvs_incoming_bytes_total"], bytes as f64);
    assert_eq!(m["node_ipvs_outgoing_packets_total"], 0.0);
    assert_eq!(m["node_ipvs_outgoing_bytes_total"], 0.0);
    let plain = lab.rvsadm_ok("-Ln").unwrap();
    for (rs, w) in [(RS1, 3.0), (RS2, 1.0)] {
        assert_eq!(m[&backend("node_ipvs_backend_weight", rs)], w);
        let inact: f64 = plain
            .lines()
            .find(|l| l.contains(&format!("{rs}:80")))
            .and_then(|l| l.split_whitespace().nth(5))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            m[&backend("node_ipvs_backend_connections_inactive", rs)],
            inact
        );
        assert_eq!(
            m[&backend("rvs_ipvs_backend_connections_total", rs)],
            want_conns[rs] as f64
        );
    }
    // rvs's own: the worker and the port saw at least the client's packets
    // (ARP besides), the table holds the connections, the loop's passes
    // were timed.
    let w0 = |name: &str| m[&format!("{name}{{worker=\"0\"}}")];
    assert!(w0("rvs_worker_rx_packets_total") >= pkts as f64);
    assert!(m["rvs_port_rx_packets_total{port=\"lan\"}"] >= pkts as f64);
    assert_eq!(w0("rvs_conn_table_entries"), N as f64);
    assert_eq!(w0("rvs_conn_table_capacity"), (1u64 << 20) as f64);
    assert!(w0("rvs_burst_duration_seconds_count") > 0.0);
    assert_eq!(
        w0("rvs_burst_duration_seconds_count"),
        m["rvs_burst_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"}"]
    );
    let totals = lab.rvsadm_ok("--totals").unwrap();
    let hex: Vec<u64> = totals
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .map(|h| u64::from_str_radix(h, 16).unwrap())
        .collect();
    assert_eq!(hex, [N as u64, pkts, 0, bytes, 0], "{totals}");
    let per_worker = lab.rvsadm_ok("--totals-per-worker").unwrap();
    assert!(
        per_worker.contains(&format!("  0 {:8X} {:8X}", N, pkts)),
        "{per_worker}"
    );

    // The metrics server's threads run where the control thread does (the
    // main lcore, CPU 0), never on the worker's core.
    let pid = lab.rvsd_pid().unwrap();
    let mut metrics_threads = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        if comm.trim() == "rvs-metrics" {
            metrics_threads += 1;
            let status = std::fs::read_to_string(t.join("status")).unwrap();
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim();
            assert_eq!(cpus, "0", "the metrics thread may run on {cpus}");
        }
    }
    assert_eq!(metrics_threads, 1, "one metrics thread in rvsd {pid}");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn nat_counts_the_replies_as_outgoing() {
    let prefix = format!("{}stnat", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create_selftest(&prefix, &dir, Mode::Nat).expect("building the lab");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(&dir).join("rvsd.sock"),
    })
    .unwrap();
    lab.rvsadm_ok(&format!("-A -t {SVIP}:{PORT} -s rr"))
        .unwrap();
    lab.rvsadm_ok(&format!("-a -t {SVIP}:{PORT} -r {SERVER}:{PORT} -m"))
        .unwrap();
    // The client reaches the director through veth01; the NAT server
    // answers through veth21, its default route via the director.
    let client = Capture::start(&lab, "client", "veth01", SVIP, "tcp", "dport", PORT);
    let server = Capture::start(&lab, "server", "veth21", SCLIENT, "tcp", "sport", PORT);
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        assert_eq!(lab.transfer(&data, 20).unwrap(), data);
    }
    quiesce(&lab, "client", SVIP);
    quiesce(&lab, "server", SCLIENT);
    let ((ip, ib), (op, ob)) = (client.stop(), server.stop());
    assert!(ip > 3 * 14, "20 kB each: at least 14 full segments: {ip}");
    assert!(op > 0, "the server answered");
    let svc_row = format!("TCP {SVIP}:{PORT}");
    let dest_row = format!("-> {SERVER}:{PORT}");
    let stats = || rows(&lab.rvsadm_ok("-Ln --stats --exact").unwrap());
    settle(
        "InPkts and OutPkts against the client's and server's",
        || {
            let r = stats()[&svc_row];
            ((r[1], r[2]), (ip, op))
        },
    );
    let listing = lab.rvsadm_ok("-Ln --stats --exact").unwrap();
    let r = rows(&listing);
    assert_eq!(r[&svc_row], [3, ip, op, ib, ob], "{listing}");
    assert_eq!(r[&dest_row], r[&svc_row], "{listing}");
}

/// Sends `n` UDP datagrams of `payload` bytes to VIP:port at `rate` per
/// second, on an absolute schedule (a late datagram does not push the
/// others back). Each comes from its own source port, counting up from
/// `first_port` (below the ephemeral range, so never a port used before):
/// each is a new connection.
fn paced_udp(lab: &Lab, port: u16, rate: u32, n: u32, payload: usize, first_port: u16) {
    let script = format!(
        "import socket, time\n\
t0 = time.monotonic()\n\
for i in range({n}):\n\
\x20   d = t0 + i / {rate} - time.monotonic()\n\
\x20   if d > 0: time.sleep(d)\n\
\x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
\x20   s.bind(('', {first_port} + i))\n\
\x20   s.sendto(b'x' * {payload}, ('{VIP}', {port}))\n\
\x20   s.close()\n"
    );
    let out = lab.exec("client", &["python3", "-c", &script]).unwrap();
    assert!(
        out.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn rate_settles_at_a_paced_rate_and_zero_restarts_everything() {
    let lab = lab("strate");
    lab.rvsadm_ok("-A -u 192.168.1.10:5353 -s rr").unwrap();
    lab.rvsadm_ok("-a -u 192.168.1.10:5353 -r 192.168.1.220")
        .unwrap();
    lab.rvsadm_ok("-a -u 192.168.1.10:5353 -r 192.168.1.193")
        .unwrap();
    // 200 datagrams a second for 16 s, 100 bytes of payload (128 bytes of
    // IP). The estimator averages 2-second rates with weight 1/4 (a time
    // constant of 2 / ln(4/3) = 7 s): after m whole ticks of a steady rate R
    // it shows R * (1 - (3/4)^m). Read just after the last datagram, at
    // least 7 whole ticks fell inside the 16 s, so it shows at least 0.87 R
    // and at most R. The bounds leave room for a sender that falls behind
    // and catches up on a shared machine: [0.80, 1.10] R.
    const RATE: u32 = 200;
    const SECS: u32 = 16;
    paced_udp(&lab, 5353, RATE, RATE * SECS, 100, 20000);
    let listing = lab.rvsadm_ok("-Ln --rate --exact").unwrap();
    eprintln!("after {SECS} s at {RATE}/s:\n{listing}");
    let r = rows(&listing)[&format!("UDP {VIP}:5353")];
    let within = |v: u64, want: f64| (0.80 * want..=1.10 * want).contains(&(v as f64));
    let rate = RATE as f64;
    assert!(within(r[0], rate), "CPS: {listing}");
    assert!(within(r[1], rate), "InPPS: {listing}");
    assert_eq!(r[2], 0, "OutPPS: {listing}");
    assert!(within(r[3], rate * 128.0), "InBPS: {listing}");
    assert_eq!(r[4], 0, "OutBPS: {listing}");
    // rr splits them evenly, and the real servers' rates add up.
    let d1 = rows(&listing)[&format!("-> {RS1}:5353")];
    let d2 = rows(&listing)[&format!("-> {RS2}:5353")];
    assert!((d1[1] as i64 - d2[1] as i64).abs() <= 2, "{listing}");
    assert!((d1[1] + d2[1]).abs_diff(r[1]) <= 2, "{listing}");

    // -Z: counters and rates start again from zero at once (the kernel's
    // ip_vs_zero_stats and ip_vs_zero_estimator), the totals too.
    let out = lab.rvsadm(&["-Z", "-u", "192.168.1.10:5354"]).unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "No such service\n");
    assert_eq!(lab.rvsadm_ok("-Z").unwrap(), "");
    for mode in ["--stats", "--rate"] {
        let listing = lab.rvsadm_ok(&format!("-Ln {mode} --exact")).unwrap();
        for (k, v) in rows(&listing) {
            assert_eq!(v, [0; 5], "{k} after -Z: {listing}");
        }
    }
    let m = scrape(&lab);
    assert_eq!(m["node_ipvs_incoming_packets_total"], 0.0);
    // New traffic counts from the zero point.
    paced_udp(&lab, 5353, 1000, 10, 100, 24000);
    let row = format!("UDP {VIP}:5353");
    settle("ten datagrams", || {
        (
            rows(&lab.rvsadm_ok("-Ln --stats --exact").unwrap())[&row][1],
            10,
        )
    });
    let r = rows(&lab.rvsadm_ok("-Ln --stats --exact").unwrap())[&row];
    assert_eq!(r, [10, 10, 0, 1280, 0]);
    // -Z of one service leaves the totals alone.
    lab.rvsadm_ok("-Z -u 192.168.1.10:5353").unwrap();
    let r = rows(&lab.rvsadm_ok("-Ln --stats --exact").unwrap())[&row];
    assert_eq!(r, [0; 5]);
    let m = scrape(&lab);
    assert_eq!(m["node_ipvs_incoming_packets_total"], 10.0);
}

#[test]
#[ignore = "needs root, network namespaces, DPDK and chromium; run with cargo xtask test"]
fn status_page_renders_in_chromium() {
    let lab = lab("stpage");
    lab.rvsadm_ok("-A -t 192.168.1.10:80 -s rr").unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.220 -w 2")
        .unwrap();
    lab.rvsadm_ok("-a -t 192.168.1.10:80 -r 192.168.1.193 -w 5")
        .unwrap();
    for _ in 0..4 {
        lab.curl(&format!("http://{VIP}/")).unwrap();
    }
    // A packet for no service: a drop by reason for the page to show.
    let _ = lab.exec(
        "client",
        &["curl", "-s", "-m", "1", &format!("http://{VIP}:81/")],
    );
    let chromium = which("chromium").expect(
        "chromium is not installed: dpdk-build/setup.sh installs it (apt-get install chromium)",
    );
    let profile = lab.dir.join("chromium-profile");
    let url = format!("http://{METRICS_LISTEN}/");
    let run = |extra: &[&str]| {
        let mut args = vec![
            chromium.as_str(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--window-size=1280,1000",
        ];
        let p = format!("--user-data-dir={}", profile.display());
        args.push(&p);
        // Virtual time runs the page's timers (a few polls of
        // /status.json), waiting for each fetch, then Chromium dumps or
        // shoots the page as the script left it.
        args.push("--virtual-time-budget=5000");
        args.extend(extra);
        args.push(&url);
        let out = lab.exec("director", &args).unwrap();
        assert!(
            out.status.success(),
            "chromium: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run(&["--dump-dom"]);
    let refreshes: u32 = attr(&dom, "body", "data-refreshes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(refreshes >= 1, "the script never filled the page:\n{dom}");
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    for (rs, weight) in [(RS1, "2"), (RS2, "5")] {
        let row = element(&dom, &format!("data-dest=\"{rs}:80\""))
            .unwrap_or_else(|| panic!("no row for {rs} in\n{dom}"));
        assert_eq!(cell(row, "weight"), weight, "{row}");
        let (active, inactive) = listing
            .lines()
            .find(|l| l.contains(&format!("{rs}:80")))
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[4].to_string(), f[5].to_string())
            })
            .unwrap();
        assert_eq!(cell(row, "active"), active, "{row}");
        assert_eq!(cell(row, "inactive"), inactive, "{row}");
        assert_eq!(cell(row, "conns"), "2", "rr gave each two: {row}");
        assert_eq!(cell(row, "health na"), "n/a", "{row}");
    }
    let drop = element(&dom, "data-reason=\"no_service\"")
        .unwrap_or_else(|| panic!("no drop row for no_service in\n{dom}"));
    assert!(cell(drop, "count").parse::<u64>().unwrap() >= 1, "{drop}");
    assert!(element(&dom, "data-worker=\"0\"").is_some(), "{dom}");
    assert!(element(&dom, "data-port=\"lan\"").is_some(), "{dom}");

    let shot = lab.dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    run(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
    eprintln!("status page screenshot: {}", shot.display());
}
