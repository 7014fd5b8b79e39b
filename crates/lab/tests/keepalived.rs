//! rvs-keepalived end to end: the shipped keepalived.conf files against the
//! lab's real servers (Python web servers in namespaces), real checks
//! over the lab's bridge, rvsd forwarding real curl traffic.
//!
//! rvs-keepalived runs where keepalived would: on the director, its checks
//! leaving from the director's own kernel through rvsd's kernel interface
//! (`rvs-lan`, the exception path) and the DPDK port; [`CHECKER_HOST`].

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::lab;
use rvs_lab::{Lab, RS1, RS2, VIP};

/// Where rvs-keepalived runs (a lab role): the director's namespace, whose
/// kernel reaches the real servers only over the exception path.
const CHECKER_HOST: &str = "director";

/// The shipped configuration files.
fn conf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conf/keepalived")
        .join(name)
}

/// The health page the configs' digests are for ("ok\n").
fn add_health_pages(lab: &Lab, port: u16) {
    for role in ["rs1", "rs2"] {
        std::fs::write(lab.www_root(role, port).join("healthz"), "ok\n").unwrap();
    }
}

struct Keepalived {
    name: String,
    status: PathBuf,
}

/// Starts rvs-keepalived in the foreground with console logs, on `config`,
/// against the lab's rvsd.
fn start_keepalived(lab: &mut Lab, name: &str, config: &Path, extra: &[&str]) -> Keepalived {
    let bin = rvs_lab::bin_dir().join("rvs-keepalived");
    assert!(
        bin.exists(),
        "{} not built (cargo build -p rvs-keepalived)",
        bin.display()
    );
    let socket = lab.dir.join("rvsd.sock");
    let status = lab.dir.join(format!("{name}.status"));
    // The lab directory outlives a run: no stale state from the last one.
    let _ = std::fs::remove_file(&status);
    let mut args = vec![
        bin.display().to_string(),
        "-n".into(),
        "-l".into(),
        "-G".into(),
        "-f".into(),
        config.display().to_string(),
        "--socket".into(),
        socket.display().to_string(),
        "--status-file".into(),
        status.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn_named(name, CHECKER_HOST, &args).unwrap();
    Keepalived {
        name: name.to_string(),
        status,
    }
}

/// The dests of VIP:port in `rvsadm -Ln`: (address:port, forward, weight).
fn dests(lab: &Lab, port: u16) -> Vec<(String, String, u32)> {
    let l = lab.rvsadm_ok("-Ln").unwrap();
    let mut in_vs = false;
    let mut out = Vec::new();
    for line in l.lines() {
        if line.starts_with("TCP") || line.starts_with("UDP") {
            in_vs = line.split_whitespace().nth(1) == Some(&format!("{VIP}:{port}"));
        } else if in_vs && line.starts_with("  -> ") && !line.contains("RemoteAddress") {
            let f: Vec<&str> = line.split_whitespace().collect();
            out.push((f[1].to_string(), f[2].to_string(), f[3].parse().unwrap()));
        }
    }
    out
}

fn weight_of(lab: &Lab, port: u16, server: &str) -> Option<u32> {
    dests(lab, port)
        .into_iter()
        .find(|(a, _, _)| a == server)
        .map(|(_, _, w)| w)
}

/// Polls `cond` every 50 ms for up to `limit`; returns when it held.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within {limit:?}");
}

/// Waits until every checker has run once (the first checks are spread
/// over the warmup), so that a failure after this is a known-up server's.
fn wait_first_checks(ka: &Keepalived) {
    wait_until("first checks", Duration::from_secs(10), || {
        rvs_control_proto::health::read(&ka.status)
            .map(|s| {
                s.virtual_servers
                    .iter()
                    .flat_map(|v| &v.real_servers)
                    .all(|r| r.last_check_ms.is_some())
            })
            .unwrap_or(false)
    });
}

fn curl_vip(lab: &Lab, port: u16) -> Result<String, String> {
    let out = lab
        .exec(
            "client",
            &[
                "curl",
                "-s",
                "-S",
                "-m",
                "3",
                &format!("http://{VIP}:{port}/"),
            ],
        )
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn both_up(lab: &Lab, port: u16) -> bool {
    let d = dests(lab, port);
    d.iter().any(|x| x.0 == format!("{RS1}:{port}"))
        && d.iter().any(|x| x.0 == format!("{RS2}:{port}"))
}

/// The "Done when" of the issue, with the HTTP DR configuration as shipped:
/// rs1's web server stops, it leaves within delay_loop × retry + 1 s and
/// the client sees only rs2 without failures; it restarts and is back
/// within one delay_loop.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn http_dr_failover_and_recovery() {
    let mut lab = lab("kadr");
    add_health_pages(&lab, 80);
    let ka = start_keepalived(&mut lab, "ka", &conf("http-dr.conf"), &[]);
    wait_until("both servers configured", Duration::from_secs(15), || {
        both_up(&lab, 80)
    });
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    let body: Vec<&str> = listing.lines().skip(3).collect();
    assert_eq!(
        body,
        [
            "TCP  192.168.1.10:80 rr",
            "  -> 192.168.1.193:80             Route   1      0          0         ",
            "  -> 192.168.1.220:80             Route   1      0          0         ",
        ],
        "{listing}"
    );
    let answers: Vec<String> = (0..4).map(|_| curl_vip(&lab, 80).unwrap()).collect();
    assert!(
        answers.contains(&"RS1".to_string()) && answers.contains(&"RS2".to_string()),
        "{answers:?}"
    );
    // The checkers have run at least once before rs1 goes.
    wait_first_checks(&ka);

    // delay_loop 2 s, retry 2 (delay_before_retry 1 s): the window is 5 s.
    let window = Duration::from_secs(2 * 2 + 1);
    let stopped = Instant::now();
    lab.stop_http("rs1", 80).unwrap();
    let gone = wait_until("rs1 removed", window + Duration::from_secs(2), || {
        weight_of(&lab, 80, &format!("{RS1}:80")).is_none()
    });
    let removal = stopped.elapsed();
    eprintln!("rs1 removed {removal:?} after its web server stopped ({gone:?} of polling)");
    assert!(
        removal <= window,
        "removal took {removal:?}, more than {window:?}"
    );
    for i in 0..20 {
        assert_eq!(
            curl_vip(&lab, 80),
            Ok("RS2".to_string()),
            "request {i} after the window"
        );
    }
    let log = lab.log_of(&ka.name);
    assert!(
        log.contains("HTTP_CHECK on service [192.168.1.220]:tcp:80 failed after 2 retries."),
        "{log}"
    );
    assert!(
        log.contains("Removing service [192.168.1.220]:tcp:80 from VS [192.168.1.10]:tcp:80"),
        "{log}"
    );
    // rvsadm --health shows it, with the error.
    let out = lab
        .rvsadm(&["--health", "--status-file", ka.status.to_str().unwrap()])
        .unwrap();
    let health = String::from_utf8_lossy(&out.stdout);
    let rs1_line = health
        .lines()
        .find(|l| l.contains("192.168.1.220:80"))
        .unwrap_or("");
    assert!(
        rs1_line.contains("DOWN") && rs1_line.contains("HTTP_GET: Error connecting"),
        "{health}"
    );
    let rs2_line = health
        .lines()
        .find(|l| l.contains("192.168.1.193:80"))
        .unwrap_or("");
    assert!(
        rs2_line.contains("UP") && rs2_line.contains("     1 "),
        "{health}"
    );

    // rs1 comes back: within one delay_loop of answering again.
    lab.serve_http("rs1", 80, "RS1").unwrap();
    let restarted = Instant::now();
    wait_until("rs1 back", Duration::from_secs(5), || {
        weight_of(&lab, 80, &format!("{RS1}:80")) == Some(1)
    });
    let back = restarted.elapsed();
    eprintln!("rs1 back {back:?} after its web server answered again");
    assert!(
        back <= Duration::from_millis(2500),
        "rs1 took {back:?} to come back (delay_loop 2 s)"
    );
    assert!(lab
        .log_of(&ka.name)
        .contains("Adding service [192.168.1.220]:tcp:80 to VS [192.168.1.10]:tcp:80"));
    let answers: Vec<String> = (0..4).map(|_| curl_vip(&lab, 80).unwrap()).collect();
    assert!(
        answers.contains(&"RS1".to_string()) && answers.contains(&"RS2".to_string()),
        "{answers:?}"
    );

    // SIGTERM: keepalived takes its services out on the way down.
    let st = lab.stop_named(&ka.name).unwrap();
    assert!(st.success(), "{st}");
    assert!(
        dests(&lab, 80).is_empty(),
        "{}",
        lab.rvsadm_ok("-Ln").unwrap()
    );
    assert!(lab.rvsadm_ok("-Ln").unwrap().lines().count() == 3);
    assert!(!ka.status.exists(), "the status file goes with the daemon");
}

/// With inhibit_on_failure the failed server stays with weight 0; its
/// notify_down and notify_up scripts run.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn inhibit_on_failure_shows_weight_zero() {
    let mut lab = lab("kainh");
    add_health_pages(&lab, 80);
    let events = lab.dir.join("rs1.events");
    let _ = std::fs::remove_file(&events);
    let notify = |what: &str| {
        format!(
            "        notify_{what} \"/bin/sh -c 'echo {what} >> {}'\"\n",
            events.display()
        )
    };
    let text = std::fs::read_to_string(conf("http-dr.conf"))
        .unwrap()
        .replace(
            "    protocol TCP\n",
            "    protocol TCP\n    inhibit_on_failure\n",
        )
        .replacen(
            "    real_server 192.168.1.220 80 {\n",
            &format!(
                "    real_server 192.168.1.220 80 {{\n{}{}",
                notify("up"),
                notify("down")
            ),
            1,
        );
    let path = lab.dir.join("inhibit.conf");
    std::fs::write(&path, text).unwrap();
    let ka = start_keepalived(&mut lab, "ka", &path, &[]);
    wait_until("both servers configured", Duration::from_secs(15), || {
        both_up(&lab, 80)
    });
    wait_first_checks(&ka);
    lab.stop_http("rs1", 80).unwrap();
    wait_until("rs1 at weight 0", Duration::from_secs(7), || {
        weight_of(&lab, 80, &format!("{RS1}:80")) == Some(0)
    });
    assert_eq!(
        dests(&lab, 80),
        [
            (format!("{RS2}:80"), "Route".to_string(), 1),
            (format!("{RS1}:80"), "Route".to_string(), 0)
        ]
    );
    for _ in 0..6 {
        assert_eq!(curl_vip(&lab, 80), Ok("RS2".to_string()));
    }
    assert!(lab
        .log_of(&ka.name)
        .contains("Disabling service [192.168.1.220]:tcp:80 of VS [192.168.1.10]:tcp:80"));
    let read_events = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_until("notify_down ran", Duration::from_secs(5), || {
        read_events() == "down\n"
    });
    lab.serve_http("rs1", 80, "RS1").unwrap();
    wait_until("rs1 weight back", Duration::from_secs(5), || {
        weight_of(&lab, 80, &format!("{RS1}:80")) == Some(1)
    });
    assert!(lab
        .log_of(&ka.name)
        .contains("Enabling service [192.168.1.220]:tcp:80 of VS [192.168.1.10]:tcp:80"));
    wait_until("notify_up ran", Duration::from_secs(5), || {
        read_events() == "down\nup\n"
    });
}

/// A MISC_CHECK script decides rs1's weight (misc_dynamic): it checks the
/// server and exits with 2 + the weight an operator file says.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn misc_check_decides_the_weight() {
    let mut lab = lab("kamisc");
    let dir = lab.dir.clone();
    let script = dir.join("check-weight.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n# usage: check-weight.sh ADDRESS WEIGHT_FILE\ncurl -s -f -m 1 -o /dev/null \"http://$1/\" || exit 1\nw=$(cat \"$2\") || exit 1\nexit $((w + 2))\n",
    )
    .unwrap();
    let weight_file = dir.join("rs1.weight");
    std::fs::write(&weight_file, "5\n").unwrap();
    let config = format!(
        "virtual_server {VIP} 80 {{
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server {RS1} 80 {{
        weight 1
        MISC_CHECK {{
            misc_path \"/bin/sh {script} {RS1} {weights}\"
            misc_timeout 3
            misc_dynamic
            warmup 0
        }}
    }}
    real_server {RS2} 80 {{
        weight 1
        TCP_CHECK {{
            connect_timeout 1
            warmup 0
        }}
    }}
}}
",
        script = script.display(),
        weights = weight_file.display()
    );
    let path = dir.join("misc.conf");
    std::fs::write(&path, config).unwrap();
    let ka = start_keepalived(&mut lab, "ka", &path, &[]);
    wait_until("rs1 at weight 5", Duration::from_secs(10), || {
        weight_of(&lab, 80, &format!("{RS1}:80")) == Some(5)
    });
    // wrr 5:1: any 12 requests in a row are two full rounds.
    let got: Vec<String> = (0..12).map(|_| curl_vip(&lab, 80).unwrap()).collect();
    assert_eq!(got.iter().filter(|s| *s == "RS1").count(), 10, "{got:?}");
    assert_eq!(got.iter().filter(|s| *s == "RS2").count(), 2, "{got:?}");
    assert!(lab.log_of(&ka.name).contains(
        "Changing weight from 1 to 5 for active service [192.168.1.220]:tcp:80 of VS [192.168.1.10]:tcp:80"
    ));
    std::fs::write(&weight_file, "0\n").unwrap();
    wait_until("rs1 at weight 0", Duration::from_secs(5), || {
        weight_of(&lab, 80, &format!("{RS1}:80")) == Some(0)
    });
    // The script fails once the server is gone: rs1 leaves.
    lab.stop_http("rs1", 80).unwrap();
    wait_until("rs1 removed", Duration::from_secs(5), || {
        weight_of(&lab, 80, &format!("{RS1}:80")).is_none()
    });
    assert!(lab
        .log_of(&ka.name)
        .contains("by [/bin/sh] failed with retry disabled (exited with status 1)."));
    lab.serve_http("rs1", 80, "RS1").unwrap();
    std::fs::write(&weight_file, "3\n").unwrap();
    wait_until("rs1 back at weight 3", Duration::from_secs(5), || {
        weight_of(&lab, 80, &format!("{RS1}:80")) == Some(3)
    });
}

/// SIGKILL leaves rvsd forwarding with the last configuration; a new
/// rvs-keepalived takes the table over without disturbing it; SIGHUP
/// applies an edit and keeps the state of what did not change.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn killed_checker_leaves_forwarding_and_reload_applies_edits() {
    let mut lab = lab("kakill");
    add_health_pages(&lab, 80);
    let ka = start_keepalived(&mut lab, "ka", &conf("http-dr.conf"), &[]);
    wait_until("both servers configured", Duration::from_secs(15), || {
        both_up(&lab, 80)
    });
    wait_first_checks(&ka);
    let before = lab.rvsadm_ok("-Ln").unwrap();
    lab.signal(&ka.name, "KILL").unwrap();
    lab.wait_exit(&ka.name, Duration::from_secs(5)).unwrap();
    assert_eq!(lab.rvsadm_ok("-Ln").unwrap(), before);
    let got: Vec<String> = (0..10).map(|_| curl_vip(&lab, 80).unwrap()).collect();
    assert_eq!(got.iter().filter(|s| *s == "RS1").count(), 5, "{got:?}");
    assert_eq!(got.iter().filter(|s| *s == "RS2").count(), 5, "{got:?}");

    // A new one adopts the table (no "already exists", nothing re-added),
    // from a copy of the file that SIGHUP will reload.
    let path = lab.dir.join("reload.conf");
    std::fs::copy(conf("http-dr.conf"), &path).unwrap();
    let ka = start_keepalived(&mut lab, "ka2", &path, &[]);
    wait_first_checks(&ka);
    assert_eq!(dests(&lab, 80).len(), 2);
    let log = lab.log_of(&ka.name);
    assert!(!log.contains("IPVS cmd"), "{log}");

    // rs1 down, then a reload that changes rs2's weight: rs1 stays out,
    // rs2 takes its new weight.
    lab.stop_http("rs1", 80).unwrap();
    wait_until("rs1 removed", Duration::from_secs(7), || {
        weight_of(&lab, 80, &format!("{RS1}:80")).is_none()
    });
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen(
        "    real_server 192.168.1.193 80 {\n        weight 1\n",
        "    real_server 192.168.1.193 80 {\n        weight 3\n",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    lab.signal(&ka.name, "HUP").unwrap();
    wait_until("rs2 at weight 3", Duration::from_secs(5), || {
        weight_of(&lab, 80, &format!("{RS2}:80")) == Some(3)
    });
    assert_eq!(
        dests(&lab, 80),
        [(format!("{RS2}:80"), "Route".to_string(), 3)]
    );
    let log = lab.log_of(&ka.name);
    assert!(log.contains("Reloading"), "{log}");
    assert!(
        log.contains("Changing weight from 1 to 3 for active service [192.168.1.193]:tcp:80 of VS [192.168.1.10]:tcp:80"),
        "{log}"
    );
    // -I: SIGTERM leaves the table alone.
    lab.stop_named(&ka.name).unwrap();
    assert!(dests(&lab, 80).is_empty());
    let ka = start_keepalived(&mut lab, "ka3", &path, &["-I"]);
    wait_until("rs2 configured", Duration::from_secs(10), || {
        weight_of(&lab, 80, &format!("{RS2}:80")) == Some(3)
    });
    lab.stop_named(&ka.name).unwrap();
    assert_eq!(weight_of(&lab, 80, &format!("{RS2}:80")), Some(3));
}

/// A second client address that NAT traffic comes from: the real servers
/// route replies to it through the director (rvsd at 192.168.1.213), while
/// replies to the checker (the director's own address, 192.168.1.213) go
/// to rvsd, which hands them to its kernel.
const NAT_CLIENT: &str = "192.168.1.52";

fn route_nat_replies_through_the_director(lab: &Lab) {
    lab.exec(
        "client",
        &[
            "ip",
            "addr",
            "add",
            &format!("{NAT_CLIENT}/24"),
            "dev",
            "veth-cli",
        ],
    )
    .unwrap();
    for (role, dev) in [("rs1", "veth-rs1"), ("rs2", "veth-rs2")] {
        for cmd in [
            vec![
                "ip",
                "route",
                "add",
                NAT_CLIENT,
                "via",
                rvs_lab::DIRECTOR,
                "dev",
                dev,
                "table",
                "100",
            ],
            vec!["ip", "rule", "add", "to", NAT_CLIENT, "lookup", "100"],
        ] {
            let out = lab.exec(role, &cmd).unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn curl_nat(lab: &Lab) -> Result<String, String> {
    let out = lab
        .exec(
            "client",
            &[
                "curl",
                "-s",
                "-S",
                "-m",
                "3",
                "--interface",
                NAT_CLIENT,
                &format!("http://{VIP}/"),
            ],
        )
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// NAT with TCP_CHECK and a sorry server, as shipped: below the quorum the
/// pool makes way for the sorry server, and comes back when servers do.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn nat_sorry_server_takes_over_below_quorum() {
    let mut lab = lab("kanat");
    route_nat_replies_through_the_director(&lab);
    lab.serve_http("rs1", 8080, "APP1").unwrap();
    lab.serve_http("rs2", 8080, "APP2").unwrap();
    lab.serve_http("rs2", 8090, "SORRY").unwrap();
    let ka = start_keepalived(&mut lab, "ka", &conf("nat-sorry.conf"), &[]);
    wait_until("both servers configured", Duration::from_secs(15), || {
        dests(&lab, 80).len() == 2
    });
    wait_first_checks(&ka);
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    let body: Vec<&str> = listing.lines().skip(3).collect();
    assert_eq!(
        body,
        [
            "TCP  192.168.1.10:80 wlc",
            "  -> 192.168.1.193:8080           Masq    1      0          0         ",
            "  -> 192.168.1.220:8080           Masq    2      0          0         ",
        ],
        "{listing}"
    );
    let got: Vec<String> = (0..6).map(|_| curl_nat(&lab).unwrap()).collect();
    assert!(
        got.contains(&"APP1".to_string()) && got.contains(&"APP2".to_string()),
        "{got:?}"
    );
    // rs1 (weight 2) goes: live weight 1 < quorum 2.
    lab.stop_http("rs1", 8080).unwrap();
    wait_until("sorry server in", Duration::from_secs(7), || {
        dests(&lab, 80) == [(format!("{RS2}:8090"), "Masq".to_string(), 1)]
    });
    let log = lab.log_of(&ka.name);
    assert!(
        log.contains("Lost quorum 2-0=2 > 1 for VS [192.168.1.10]:tcp:80"),
        "{log}"
    );
    assert!(
        log.contains("Adding sorry server [192.168.1.193]:tcp:8090 to VS [192.168.1.10]:tcp:80"),
        "{log}"
    );
    // With checker_log_all_failures, the failed attempts are logged too.
    assert!(
        log.contains("TCP connection to [192.168.1.220]:tcp:8080 failed"),
        "{log}"
    );
    for _ in 0..3 {
        assert_eq!(curl_nat(&lab), Ok("SORRY".to_string()));
    }
    lab.serve_http("rs1", 8080, "APP1").unwrap();
    wait_until("pool back", Duration::from_secs(5), || {
        dests(&lab, 80).len() == 2
    });
    assert_eq!(
        dests(&lab, 80),
        [
            (format!("{RS2}:8080"), "Masq".to_string(), 1),
            (format!("{RS1}:8080"), "Masq".to_string(), 2)
        ]
    );
    assert!(lab
        .log_of(&ka.name)
        .contains("Gained quorum 2+0=2 <= 3 for VS [192.168.1.10]:tcp:80"));
    let got: Vec<String> = (0..6).map(|_| curl_nat(&lab).unwrap()).collect();
    assert!(
        got.contains(&"APP1".to_string()) && got.contains(&"APP2".to_string()),
        "{got:?}"
    );
}

/// HTTPS with persistence, as shipped: SSL_GET against self-signed
/// servers, -Ln as ipvsadm shows a persistent service.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn https_persistent_with_ssl_get() {
    let mut lab = lab("kassl");
    lab.serve_https("rs1", 443, "TLS1").unwrap();
    lab.serve_https("rs2", 443, "TLS2").unwrap();
    add_health_pages(&lab, 443);
    let ka = start_keepalived(&mut lab, "ka", &conf("https-persistent.conf"), &[]);
    wait_until("both servers configured", Duration::from_secs(15), || {
        both_up(&lab, 443)
    });
    wait_first_checks(&ka);
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    let body: Vec<&str> = listing.lines().skip(3).collect();
    assert_eq!(
        body,
        [
            "TCP  192.168.1.10:443 wlc persistent 300 mask 255.255.255.0",
            "  -> 192.168.1.193:443            Route   1      0          0         ",
            "  -> 192.168.1.220:443            Route   1      0          0         ",
        ],
        "{listing}"
    );
    let https = |lab: &Lab| {
        let out = lab
            .exec(
                "client",
                &[
                    "curl",
                    "-k",
                    "-s",
                    "-S",
                    "-m",
                    "3",
                    &format!("https://{VIP}/"),
                ],
            )
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let first = https(&lab);
    assert!(first == "TLS1" || first == "TLS2", "{first}");
    for _ in 0..3 {
        assert_eq!(https(&lab), first, "persistence pins the client");
    }
    // Stop the server the client is pinned to: it leaves, the client moves.
    let (role, addr) = if first == "TLS1" {
        ("rs1", RS1)
    } else {
        ("rs2", RS2)
    };
    lab.stop_http(role, 443).unwrap();
    wait_until("pinned server removed", Duration::from_secs(8), || {
        weight_of(&lab, 443, &format!("{addr}:443")).is_none()
    });
    assert!(lab.log_of(&ka.name).contains(&format!(
        "HTTP_CHECK on service [{addr}]:tcp:443 failed after 1 retries."
    )));
    let other = if first == "TLS1" { "TLS2" } else { "TLS1" };
    assert_eq!(https(&lab), other);
}

/// The lab with rvsd told where rvs-keepalived's status file is (`[control]
/// keepalived_status`): `<dir>/<name>.status`, where [`start_keepalived`]
/// has it write.
fn lab_with_health(name: &str, checker: &str) -> Lab {
    let prefix = format!("{}{name}", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).unwrap();
    lab.serve_http("rs1", 80, "RS1").unwrap();
    lab.serve_http("rs2", 80, "RS2").unwrap();
    let socket = dir.join("rvsd.sock");
    let cfg = lab
        .write_rvsd_config(&rvs_lab::RvsdOptions {
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            socket: socket.clone(),
        })
        .unwrap();
    let status = dir.join(format!("{checker}.status"));
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[control]\n",
        &format!("[control]\nkeepalived_status = \"{}\"\n", status.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    lab.start_rvsd_with(&cfg, &socket, &[]).unwrap();
    lab
}

/// `rvs_backend_up` of one real server of VIP:80 in rvsd's metrics.
fn backend_up(lab: &Lab, rs: &str) -> Option<u8> {
    let out = lab
        .exec(
            "director",
            &[
                "curl",
                "-s",
                "-m",
                "3",
                &format!("http://{}/metrics", rvs_lab::METRICS_LISTEN),
            ],
        )
        .unwrap();
    let series = format!(
        "rvs_backend_up{{local_address=\"{VIP}\",local_port=\"80\",remote_address=\"{rs}\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"}} "
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|v| v.parse().ok()))
}

/// The status page as Chromium leaves it after a few refreshes.
fn page_dom(lab: &Lab) -> String {
    let chromium = common::which("chromium").expect(
        "chromium is not installed: dpdk-build/setup.sh installs it (apt-get install chromium)",
    );
    let profile = format!("--user-data-dir={}", lab.dir.join("chromium-ka").display());
    let url = format!("http://{}/", rvs_lab::METRICS_LISTEN);
    let out = lab
        .exec(
            "director",
            &[
                &chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                &profile,
                "--virtual-time-budget=5000",
                "--dump-dom",
                &url,
            ],
        )
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// rvsd shows what rvs-keepalived (checking from the director's kernel)
/// decides: a `rvs_backend_up` gauge per real server and the status page's
/// health column, following a failure; nothing once the checker is gone.
#[test]
#[ignore = "needs root, network namespaces, DPDK and chromium; run with cargo xtask test"]
fn health_shows_in_metrics_and_the_status_page() {
    let mut lab = lab_with_health("kahealth", "ka");
    add_health_pages(&lab, 80);
    // inhibit_on_failure keeps the failed server in the table (weight 0),
    // so that the page has a row to show it down in.
    let text = std::fs::read_to_string(conf("http-dr.conf"))
        .unwrap()
        .replace(
            "    protocol TCP\n",
            "    protocol TCP\n    inhibit_on_failure\n",
        );
    let path = lab.dir.join("inhibit.conf");
    std::fs::write(&path, text).unwrap();
    assert_eq!(backend_up(&lab, RS1), None, "no checker, no gauge");
    let ka = start_keepalived(&mut lab, "ka", &path, &[]);
    wait_until("both servers configured", Duration::from_secs(15), || {
        both_up(&lab, 80)
    });
    wait_first_checks(&ka);
    wait_until("both gauges up", Duration::from_secs(5), || {
        backend_up(&lab, RS1) == Some(1) && backend_up(&lab, RS2) == Some(1)
    });
    lab.stop_http("rs1", 80).unwrap();
    wait_until("rs1's gauge down", Duration::from_secs(7), || {
        backend_up(&lab, RS1) == Some(0)
    });
    assert_eq!(backend_up(&lab, RS2), Some(1));
    assert_eq!(weight_of(&lab, 80, &format!("{RS1}:80")), Some(0));
    let dom = page_dom(&lab);
    for (rs, verdict) in [(RS1, "down"), (RS2, "up")] {
        let row = common::element(&dom, &format!("data-dest=\"{rs}:80\""))
            .unwrap_or_else(|| panic!("no row for {rs} in\n{dom}"));
        assert_eq!(
            common::cell(row, &format!("health {verdict}")),
            verdict,
            "{row}"
        );
    }
    // Killed: its file stays, but names no running process; the gauges go.
    lab.signal(&ka.name, "KILL").unwrap();
    lab.wait_exit(&ka.name, Duration::from_secs(5)).unwrap();
    assert!(ka.status.exists());
    assert_eq!(backend_up(&lab, RS1), None);
}
