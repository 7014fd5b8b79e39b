//! Several workers, configuration changes under traffic, and a soak: the
//! selftest topology with rvsd running two workers (af_packet qpairs=2;
//! on a 2-core machine both share the second CPU).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rvs_lab::selftest::{Mode, PORT, SERVER, VIP};
use rvs_lab::{Lab, RvsdOptions};

const ECHO: u16 = 9000;

fn lab(name: &str, mode: Mode, fwd: &str, workers: &[u32]) -> Lab {
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create_selftest(&prefix, &dir, mode).expect("building the lab");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: workers.to_vec(),
        idle_empty_polls: 256,
        socket: PathBuf::from(&dir).join("rvsd.sock"),
    })
    .unwrap();
    // PORT serves "hello" over HTTP; ECHO greets and then echoes.
    lab.serve_http("server", PORT, "hello").unwrap();
    lab.spawn_daemon(
        "server",
        &[
            "socat",
            &format!("TCP4-LISTEN:{ECHO},reuseaddr,fork"),
            "SYSTEM:echo hello; exec cat",
        ],
    )
    .unwrap();
    lab.wait_listening("server", "tcp", ECHO).unwrap();
    for port in [PORT, ECHO] {
        lab.rvsadm_ok(&format!("-A -t {VIP}:{port} -s rr")).unwrap();
        lab.rvsadm_ok(&format!("-a -t {VIP}:{port} -r {SERVER}:{port} {fwd}"))
            .unwrap();
    }
    lab
}

/// What [`many_connections`] saw.
struct Answers {
    /// Requests answered (HTTP 200 from the server).
    answered: usize,
    /// Distinct client ports among them. The client's kernel picks each
    /// connection's port; it may pick one again whose last connection the
    /// director still holds in FIN_WAIT (a DR director sees only the
    /// client's FIN): that SYN joins the old entry, as the kernel's
    /// conn_reuse_mode 1 does, and opens no new connection.
    ports: usize,
}

/// `n` HTTP requests, each on a new connection, `parallel` at a time.
fn many_connections(lab: &Lab, n: usize, parallel: usize) -> Answers {
    // One line per request, in one write: "<status> <client port>".
    let script = format!(
        "seq {n} | xargs -P {parallel} -I{{}} curl -s -m 10 -o /dev/null \
         -w '%{{http_code}} %{{local_port}}\\n' http://{VIP}:{PORT}/"
    );
    let out = lab.exec("client", &["sh", "-c", &script]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let ports: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("200 "))
        .collect();
    Answers {
        answered: ports.len(),
        ports: ports
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
    }
}

/// One worker's counters, as `rvsadm --counters` prints them.
#[derive(Debug)]
struct WorkerCounts {
    new_connections: u64,
    forwarded: u64,
    /// Handed over to the owning worker.
    redirected: u64,
    /// Received from another worker.
    redirected_in: u64,
    rx_packets: u64,
    drop_redirect_full: u64,
}

fn per_worker(lab: &Lab) -> Vec<WorkerCounts> {
    let c = lab.rvsadm_ok("--counters").unwrap();
    let mut v = Vec::new();
    for block in c.split("worker ").skip(1) {
        let get = |k: &str| -> u64 {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(k).map(|r| r.trim().to_string()))
                .and_then(|r| r.parse().ok())
                .unwrap_or(0)
        };
        v.push(WorkerCounts {
            new_connections: get("new_connections "),
            forwarded: get("forwarded "),
            redirected: get("redirected "),
            redirected_in: get("redirected_in "),
            rx_packets: get("rx_packets "),
            drop_redirect_full: get("drop_redirect_full "),
        });
    }
    v
}

fn two_workers(name: &str, mode: Mode, fwd: &str) {
    let lab = lab(name, mode, fwd, &[1, 2]);
    // Ten seconds per request: a SYN the kernel's af_packet or the loaded
    // 2-CPU machine loses is retransmitted up to three times meanwhile.
    let Answers { answered, ports } = many_connections(&lab, 400, 32);
    assert_eq!(
        answered,
        400,
        "counters:\n{}\nlog:\n{}",
        lab.rvsadm_ok("--counters").unwrap(),
        lab.rvsd_log()
    );
    // The last packets (FINs, ACKs) may still be on their way, in a ring
    // or a queue, when the last curl returns: read the counters once every
    // hand-over has arrived (or after 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let w = loop {
        let w = per_worker(&lab);
        let handed: u64 = w.iter().map(|c| c.redirected).sum();
        let arrived: u64 = w
            .iter()
            .map(|c| c.redirected_in + c.drop_redirect_full)
            .sum();
        if handed == arrived || std::time::Instant::now() > deadline {
            break w;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(w.len(), 2);
    assert!(
        w.iter().all(|c| c.new_connections > 0 && c.forwarded > 0),
        "both workers carried traffic: {w:?}"
    );
    // One new connection per request, less the SYNs that reused a client
    // port whose last connection is still held (see [`Answers::ports`]).
    let new: u64 = w.iter().map(|c| c.new_connections).sum();
    eprintln!("{name}: {answered} answered from {ports} client ports; {new} new connections");
    assert!(
        ports as u64 <= new && new <= 400,
        "{new} new connections for {answered} answers from {ports} client ports: {w:?}\n\
counters:\n{}\nlog:\n{}",
        lab.rvsadm_ok("--counters").unwrap(),
        lab.rvsd_log()
    );
    // The ports spread packets by the kernel's flow hash, the workers own
    // connections by their own hash of the client's endpoint: about half
    // of the packets reach the worker that does not own their connection,
    // which hands them over. Every one handed over arrived (none dropped
    // for a full ring), and none was counted as received twice.
    let handed: u64 = w.iter().map(|c| c.redirected).sum();
    let arrived: u64 = w.iter().map(|c| c.redirected_in).sum();
    let ring_full: u64 = w.iter().map(|c| c.drop_redirect_full).sum();
    let rx: u64 = w.iter().map(|c| c.rx_packets).sum();
    eprintln!("{name}: {w:?}; handed over {handed}");
    assert!(handed > 0, "no packet was handed over: {w:?}");
    assert_eq!(handed, arrived + ring_full, "{w:?}");
    assert_eq!(ring_full, 0, "{w:?}");
    for (i, c) in w.iter().enumerate() {
        assert!(
            c.redirected_in > 0 && c.redirected > 0,
            "worker {i} took part in the hand-overs both ways: {w:?}"
        );
    }
    // Each packet counts as received once, where it came off the wire: the
    // workers' rx_packets add up to what the ports received (one scrape,
    // so both are read at the same moment; a stray ARP may fall between).
    let m = scrape(&lab);
    let sum = |prefix: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    };
    let (workers_rx, ports_rx) = (
        sum("rvs_worker_rx_packets_total{"),
        sum("rvs_port_rx_packets_total{"),
    );
    eprintln!(
        "{name}: received {ports_rx} by the ports, {workers_rx} by the workers (--counters: {rx})"
    );
    assert!(ports_rx >= 800.0, "{m:?}");
    assert!(
        (workers_rx - ports_rx).abs() <= 4.0,
        "workers {workers_rx} vs ports {ports_rx}, {handed} handed over"
    );
}

/// The metrics endpoint's values by series, scraped from the director.
fn scrape(lab: &Lab) -> std::collections::HashMap<String, f64> {
    lab.scrape_metrics("director").unwrap()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn two_workers_dr() {
    two_workers("w2dr", Mode::Dr, "-g");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn two_workers_nat_replies_reach_the_owner() {
    two_workers("w2nat", Mode::Nat, "-m");
}

/// 1000 configuration changes while a connection exchanges a line per
/// change: every line comes back, in order, and nothing is dropped.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn thousand_config_changes_under_traffic() {
    let lab = lab("cfg", Mode::Nat, "-m", &[1, 2]);
    let mut child = lab
        .spawn_piped("client", &["socat", "-", &format!("TCP4:{VIP}:{ECHO}")])
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "hello");
    // Traffic on a second thread while the main thread reconfigures.
    let pinger = std::thread::spawn(move || {
        let mut ok = 0;
        for i in 0..1000 {
            writeln!(stdin, "ping {i}").unwrap();
            stdin.flush().unwrap();
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            if l.trim() == format!("ping {i}") {
                ok += 1;
            }
        }
        ok
    });
    let extra = "10.0.0.99";
    for i in 0..1000 {
        let cmd = match i % 4 {
            0 => format!("-a -t {VIP}:{ECHO} -r {extra}:{ECHO} -m -w 0"),
            1 => format!("-e -t {VIP}:{ECHO} -r {SERVER}:{ECHO} -m -w {}", 1 + i % 7),
            2 => format!(
                "-E -t {VIP}:{ECHO} -s {}",
                if i % 8 == 2 { "wrr" } else { "rr" }
            ),
            _ => format!("-d -t {VIP}:{ECHO} -r {extra}:{ECHO}"),
        };
        lab.rvsadm_ok(&cmd).unwrap();
    }
    assert_eq!(pinger.join().unwrap(), 1000, "every exchange answered");
    let counters = lab.rvsadm_ok("--counters").unwrap();
    for reason in [
        "drop_no_connection",
        "drop_no_destination",
        "drop_neighbour_miss",
        "drop_tx_full",
        "drop_redirect_full",
        "drop_conn_table_full",
    ] {
        for l in counters.lines().filter(|l| l.trim().starts_with(reason)) {
            assert!(l.trim().ends_with(" 0"), "{l}\n{counters}");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn rvsd_rss_kb(lab: &Lab) -> u64 {
    let pids = rvs_lab::run("ip", &["netns", "pids", &lab.ns("director")]).unwrap();
    String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter(|s| s.contains("Name:\trvsd"))
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .next()
        .unwrap_or(0)
}

fn live_connections(lab: &Lab) -> u64 {
    let c = lab.rvsadm_ok("--counters").unwrap();
    c.lines()
        .filter_map(|l| l.trim().strip_prefix("connections "))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum()
}

/// About a minute of short connections; then the table drains to zero once
/// the (shortened) timeouts pass, and rvsd's memory stays where it was.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn soak_short_connections_drain() {
    let lab = lab("soak", Mode::Dr, "-g", &[1, 2]);
    // Closed DR connections wait in FIN_WAIT: make that 2 s.
    lab.rvsadm_ok("--set 0 2 0").unwrap();
    assert!(lab.rvsadm_ok("-L --timeout").unwrap().contains("900 2 300"));
    assert_eq!(many_connections(&lab, 500, 16).answered, 500);
    // Memory is compared between the middle and the end of the soak: by
    // then the af_packet rings and the slab's pages in use were touched.
    let start = Instant::now();
    let mut total = 0;
    let mut rss_warm = None;
    while start.elapsed() < Duration::from_secs(45) {
        total += many_connections(&lab, 500, 16).answered;
        if rss_warm.is_none() && start.elapsed() > Duration::from_secs(20) {
            rss_warm = Some(rvsd_rss_kb(&lab));
        }
    }
    let rss_warm = rss_warm.unwrap();
    // A quiet machine does several thousand; a loaded 2-CPU one ~1500.
    assert!(total >= 1000, "only {total} connections in 45 s");
    let rss_after = rvsd_rss_kb(&lab);
    let deadline = Instant::now() + Duration::from_secs(20);
    while live_connections(&lab) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(live_connections(&lab), 0, "the table drained");
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(
        l.contains("  -> 172.16.0.2:8080              Route   1      0          0"),
        "the counters drained too: {l}"
    );
    assert!(
        rss_after <= rss_warm + rss_warm / 10 + 1024,
        "memory steady: {rss_warm} kB warm, {rss_after} kB after {total} connections"
    );
}
