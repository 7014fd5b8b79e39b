//! Operating rvsd: a rules file that survives restarts, `-S | -C | -R`
//! round trips, reloads under a thousand open connections, bad files at
//! reload, systemd's notify protocol, and rvs-keepalived beside a rules
//! file. Real rvsd, real rvsadm, real TCP stacks in the lab's namespaces.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_lab::{Lab, RvsdOptions, RS1, RS2, VIP};

/// Every scheduler, scheduler flag, forwarding method (with each tunnel
/// type and checksum option) and service/server option, as rvsadm lines.
/// The tests configure them by hand, write them as a rules file, save and
/// restore them, and compare the listings.
const CASES: &[&str] = &[
    // Each scheduler, with a DR, a NAT (port mapped) and a tunnel server.
    "-A -t 10.10.0.1:80 -s rr",
    "-A -t 10.10.0.2:80 -s wrr",
    "-A -t 10.10.0.3:80 -s lc",
    "-A -t 10.10.0.4:80 -s wlc",
    "-A -t 10.10.0.5:80 -s lblc",
    "-A -t 10.10.0.6:80 -s lblcr",
    "-A -t 10.10.0.7:80 -s dh",
    "-A -t 10.10.0.8:80 -s sh",
    "-A -t 10.10.0.9:80 -s sed",
    "-A -t 10.10.0.10:80 -s nq",
    "-A -t 10.10.0.11:80 -s fo",
    "-A -t 10.10.0.12:80 -s ovf",
    "-A -t 10.10.0.13:80 -s mh",
    "-A -t 10.10.0.14:80 -s twos",
    // Scheduler flags.
    "-A -t 10.11.0.1:80 -s sh -b sh-fallback,sh-port",
    "-A -t 10.11.0.2:80 -s mh -b mh-fallback",
    "-A -t 10.11.0.3:80 -s mh -b mh-port",
    "-A -t 10.11.0.4:80 -s rr -b flag-1,flag-2,flag-3",
    // Persistence: default timeout, a timeout and a netmask, port zero.
    "-A -t 10.12.0.1:443 -s wlc -p",
    "-A -t 10.12.0.2:443 -s rr -p 1800 -M 255.255.255.0",
    "-A -t 10.12.0.3:0 -s lc -p 60",
    "-A -t 10.12.0.4:443 -s rr -p 300 -M 255.255.0.255",
    // UDP: one-packet scheduling, persistence.
    "-A -u 10.13.0.1:53 -s rr -o",
    "-A -u 10.13.0.2:500 -s sh -p 30 -M 255.255.0.0",
    // IPv6 services.
    "-A -t [fd00:10::1]:80 -s wrr -p 100 -M 64",
    "-A -u [fd00:10::2]:53 -s mh -b mh-port",
    // Servers: every method, weights 0 to the largest, thresholds.
    "-a -t 10.10.0.1:80 -r 10.20.0.1:80 -g -w 1",
    "-a -t 10.10.0.1:80 -r 10.20.0.2:8080 -m -w 3",
    "-a -t 10.10.0.1:80 -r 10.20.0.3 -i -w 0",
    "-a -t 10.10.0.2:80 -r 10.20.0.1 -w 2147483647",
    "-a -t 10.10.0.2:80 -r 10.20.0.2 -w 5 -x 100 -y 10",
    "-a -t 10.10.0.3:80 -r 10.20.0.4:81 -m -x 7",
    "-a -t 10.10.0.4:80 -r 10.20.0.5 -i --tun-type ipip",
    "-a -t 10.10.0.5:80 -r 10.20.0.6 -i --tun-type gue --tun-port 6080",
    "-a -t 10.10.0.6:80 -r 10.20.0.6 -i --tun-type gue --tun-port 6081 --tun-csum",
    "-a -t 10.10.0.7:80 -r 10.20.0.6 -i --tun-type gue --tun-port 6082 --tun-remcsum",
    "-a -t 10.10.0.8:80 -r 10.20.0.6 -i --tun-type gue --tun-port 6083 --tun-nocsum",
    "-a -t 10.10.0.9:80 -r 10.20.0.7 -i --tun-type gre",
    "-a -t 10.10.0.10:80 -r 10.20.0.7 -i --tun-type gre --tun-csum",
    "-a -t 10.10.0.11:80 -r 10.20.0.7 -i --tun-type gre --tun-nocsum",
    "-a -t 10.10.0.12:80 -r 10.20.0.8 -w 4",
    "-a -t 10.10.0.12:80 -r 10.20.0.9 -w 9",
    "-a -t 10.10.0.13:80 -r 10.20.0.8",
    "-a -t 10.10.0.13:80 -r 10.20.0.9",
    "-a -t 10.10.0.14:80 -r 10.20.0.8 -m",
    "-a -t 10.11.0.1:80 -r 10.20.0.8",
    "-a -t 10.11.0.2:80 -r 10.20.0.8",
    "-a -t 10.11.0.3:80 -r 10.20.0.9",
    "-a -t 10.11.0.4:80 -r 10.20.0.9:8443 -m",
    "-a -t 10.12.0.1:443 -r 10.20.0.1",
    "-a -t 10.12.0.2:443 -r 10.20.0.2 -m -w 2",
    "-a -t 10.12.0.3:0 -r 10.20.0.3",
    "-a -t 10.12.0.4:443 -r 10.20.0.4",
    "-a -u 10.13.0.1:53 -r 10.20.0.4:5353 -m",
    "-a -u 10.13.0.2:500 -r 10.20.0.5",
    "-a -t [fd00:10::1]:80 -r [fd00:20::1]:8080 -m -w 2",
    "-a -t [fd00:10::1]:80 -r fd00:20::2 -g",
    "-a -t [fd00:10::1]:80 -r fd00:20::3 -i",
    "-a -u [fd00:10::2]:53 -r fd00:20::4 -w 3",
];

/// The listing modes compared.
const MODES: &[&str] = &[
    "-Ln",
    "-Ln --thresholds",
    "-Ln --tun-info",
    "-Ln --persistent-conn",
    "-L --timeout",
];

/// A lab of this test's own (the walkthrough topology) with HTTP on RS1
/// and RS2, rvsd not started.
fn new_lab(name: &str) -> Lab {
    let prefix = format!("{}{}", rvs_lab::test_prefix(), name);
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).expect("building the lab");
    lab.serve_http("rs1", 80, "RS1").unwrap();
    lab.serve_http("rs2", 80, "RS2").unwrap();
    lab
}

fn socket(lab: &Lab) -> PathBuf {
    lab.dir.join("rvsd.sock")
}

fn rules_path(lab: &Lab) -> PathBuf {
    lab.dir.join("rules")
}

/// Writes rvsd's configuration: the lab's, with `rules` (when given) as
/// its rules file, rvs-keepalived's status file in the lab directory, and
/// `extra` TOML at the end.
fn write_config(lab: &Lab, rules: Option<&str>, extra: &str) -> PathBuf {
    let cfg = lab
        .write_rvsd_config(&RvsdOptions {
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            socket: socket(lab),
        })
        .unwrap();
    let mut control = format!(
        "[control]\nkeepalived_status = \"{}\"\n",
        lab.dir.join("ka.status").display()
    );
    if let Some(r) = rules {
        std::fs::write(rules_path(lab), r).unwrap();
        control.push_str(&format!("rules = \"{}\"\n", rules_path(lab).display()));
    }
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[control]\n"), "{text}");
    let text = text.replace("[control]\n", &control) + extra;
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn start(lab: &mut Lab, cfg: &Path) {
    let s = socket(lab);
    lab.start_rvsd_with(cfg, &s, &[]).unwrap();
}

fn restart(lab: &mut Lab, cfg: &Path) {
    let st = lab.stop_rvsd().unwrap();
    assert!(st.success(), "rvsd exited with {st}:\n{}", lab.rvsd_log());
    start(lab, cfg);
}

/// Every listing mode, as rvsadm prints it.
fn listings(lab: &Lab) -> Vec<(String, String)> {
    MODES
        .iter()
        .map(|m| (m.to_string(), lab.rvsadm_ok(m).unwrap()))
        .collect()
}

fn listing_of<'a>(all: &'a [(String, String)], mode: &str) -> &'a str {
    &all.iter().find(|(m, _)| m == mode).unwrap().1
}

/// rvsadm with `input` on its stdin: (exit code, stdout, stderr).
fn rvsadm_with_input(lab: &Lab, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(rvs_lab::bin_dir().join("rvsadm"))
        .arg("--socket")
        .arg(socket(lab))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// rvsadm's exit code, stdout and stderr.
fn rvsadm_status(lab: &Lab, line: &str) -> (i32, String, String) {
    let args: Vec<&str> = line.split_whitespace().collect();
    let out = lab.rvsadm(&args).unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The service lines of `-Ln` (protocol, address, scheduler and flags).
fn service_lines(listing: &str) -> Vec<&str> {
    listing
        .lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .collect()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn rules_survive_restarts_and_round_trips_on_every_case() {
    let mut lab = new_lab("rules");
    // By hand, line by line, as an operator would.
    let plain = write_config(&lab, None, "[connections]\ntcp_timeout_s = 1000\n");
    start(&mut lab, &plain);
    for line in CASES {
        lab.rvsadm_ok(line).unwrap();
    }
    let want = listings(&lab);
    let services = CASES.iter().filter(|l| l.starts_with("-A")).count();
    assert_eq!(
        service_lines(listing_of(&want, "-Ln")).len(),
        services,
        "{}",
        listing_of(&want, "-Ln")
    );
    assert_eq!(
        listing_of(&want, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 1000 120 300\n"
    );

    // rvsadm -S -n > f; rvsadm -C; rvsadm -R < f: the same -Ln. (-S leaves
    // thresholds out, as ipvsadm's does; the rules file keeps them.)
    let saved = lab.rvsadm_ok("-S -n").unwrap();
    lab.rvsadm_ok("-C").unwrap();
    assert!(service_lines(&lab.rvsadm_ok("-Ln").unwrap()).is_empty());
    let (code, _, err) = rvsadm_with_input(&lab, &["-R"], &saved);
    assert_eq!((code, err.as_str()), (0, ""));
    let restored = listings(&lab);
    for mode in ["-Ln", "-Ln --tun-info", "-Ln --persistent-conn"] {
        assert_eq!(
            listing_of(&restored, mode),
            listing_of(&want, mode),
            "{mode} after -S -n | -C | -R"
        );
    }
    assert_eq!(lab.rvsadm_ok("-S -n").unwrap(), saved);

    // A restart with the case lines as the rules file: every listing the
    // same, thresholds and the TOML's timeout included.
    let with_rules = write_config(
        &lab,
        Some(&(CASES.join("\n") + "\n")),
        "[connections]\ntcp_timeout_s = 1000\n",
    );
    restart(&mut lab, &with_rules);
    assert_eq!(listings(&lab), want, "rvsd log:\n{}", lab.rvsd_log());

    // A restart with -S -n's output as the rules file: the same -Ln.
    let with_saved = write_config(&lab, Some(&saved), "[connections]\ntcp_timeout_s = 1000\n");
    restart(&mut lab, &with_saved);
    let again = listings(&lab);
    for mode in [
        "-Ln",
        "-Ln --tun-info",
        "-Ln --persistent-conn",
        "-L --timeout",
    ] {
        assert_eq!(listing_of(&again, mode), listing_of(&want, mode), "{mode}");
    }

    // Reading the same files again changes nothing.
    let out = lab.rvsadm_ok("--reload").unwrap();
    assert!(out.contains("\nno changes\n"), "{out}");
    assert!(
        out.contains(&format!(
            "read rules {}: {services} services",
            rules_path(&lab).display()
        )),
        "{out}"
    );
    let st = lab.stop_rvsd().unwrap();
    assert!(st.success());
}

/// The client half of the reload test: `tools/hold-conns.py` in the
/// client's namespace, holding connections open.
struct Holder {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Holder {
    fn start(lab: &Lab, port: u16, n: usize) -> (Holder, String) {
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/hold-conns.py");
        let (p, n) = (port.to_string(), n.to_string());
        let mut child = lab
            .spawn_piped(
                "client",
                &["python3", &tool.display().to_string(), VIP, &p, &n],
            )
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut h = Holder { child, out };
        let first = h.line();
        (h, first)
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }

    /// One byte there and back on every connection: "round OK FAILED" and
    /// the lost ones.
    fn round(&mut self) -> (String, Vec<String>) {
        writeln!(self.child.stdin.as_mut().unwrap(), "round").unwrap();
        let head = self.line();
        let failed: usize = head
            .split_whitespace()
            .nth(2)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        let lost = (0..failed).map(|_| self.line()).collect();
        (head, lost)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "close");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ActiveConn summed over the servers of VIP:port.
fn active_conns(lab: &Lab, port: u16) -> u32 {
    let l = lab.rvsadm_ok("-Ln").unwrap();
    let mut inside = false;
    let mut sum = 0;
    for line in l.lines() {
        if line.starts_with("TCP") || line.starts_with("UDP") {
            inside = line.split_whitespace().nth(1) == Some(&format!("{VIP}:{port}"));
        } else if inside && line.starts_with("  -> ") && !line.contains("RemoteAddress") {
            sum += line
                .split_whitespace()
                .nth(4)
                .unwrap()
                .parse::<u32>()
                .unwrap();
        }
    }
    sum
}

const ECHO_PORT: u16 = 9000;

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn reload_under_a_thousand_connections_loses_none() {
    let mut lab = new_lab("reload");
    let echo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/echo-server.py");
    for rs in ["rs1", "rs2"] {
        let (e, p) = (echo.display().to_string(), ECHO_PORT.to_string());
        lab.spawn_named(&format!("echo-{rs}"), rs, &["python3", &e, &p])
            .unwrap();
        lab.wait_listening(rs, "tcp", ECHO_PORT).unwrap();
    }
    let v1 = format!(
        "# the echo service\n\
-A -t {VIP}:{ECHO_PORT} -s rr\n\
-a -t {VIP}:{ECHO_PORT} -r {RS1}:{ECHO_PORT} -g -w 1\n\
-a -t {VIP}:{ECHO_PORT} -r {RS2}:{ECHO_PORT} -g -w 1\n\
-A -t {VIP}:80 -s rr\n\
-a -t {VIP}:80 -r {RS1}:80 -g -w 1\n"
    );
    let cfg = write_config(&lab, Some(&v1), "");
    start(&mut lab, &cfg);
    assert_eq!(lab.curl(&format!("http://{VIP}/")).unwrap(), "RS1");

    let (mut holder, opened) = Holder::start(&lab, ECHO_PORT, 1000);
    assert_eq!(opened, "open 1000 0", "rvsd log:\n{}", lab.rvsd_log());
    assert_eq!(active_conns(&lab, ECHO_PORT), 1000);

    // The rules change around the connections: a new scheduler, RS2's
    // weight, a new server, one service gone and another new; the TOML
    // changes a timeout (live) and the idle policy (needs a restart).
    let v2 = format!(
        "-A -t {VIP}:{ECHO_PORT} -s wlc\n\
-a -t {VIP}:{ECHO_PORT} -r {RS1}:{ECHO_PORT} -g -w 1\n\
-a -t {VIP}:{ECHO_PORT} -r {RS2}:{ECHO_PORT} -g -w 2\n\
-a -t {VIP}:{ECHO_PORT} -r 192.168.1.99:{ECHO_PORT} -g -w 0\n\
-A -t {VIP}:8080 -s rr\n\
-a -t {VIP}:8080 -r {RS2}:8080 -g -w 1\n"
    );
    lab.serve_http("rs2", 8080, "RS2:8080").unwrap();
    let cfg = write_config(&lab, Some(&v2), "[connections]\ntcp_timeout_s = 1200\n");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("idle_sleep_us = 100\n"), "{text}");
    std::fs::write(
        &cfg,
        text.replace("idle_sleep_us = 100\n", "idle_sleep_us = 200\n"),
    )
    .unwrap();
    let report = lab.rvsadm_ok("--reload").unwrap();
    let applied: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("applied: "))
        .collect();
    assert_eq!(
        applied,
        // Service by service in key order, deletions last; RS1 is not
        // touched.
        [
            format!("-A -t {VIP}:8080 -s rr"),
            format!("-a -t {VIP}:8080 -r {RS2}:8080 -g -w 1"),
            format!("-E -t {VIP}:{ECHO_PORT} -s wlc"),
            format!("-e -t {VIP}:{ECHO_PORT} -r {RS2}:{ECHO_PORT} -g -w 2"),
            format!("-a -t {VIP}:{ECHO_PORT} -r 192.168.1.99:{ECHO_PORT} -g -w 0"),
            format!("-D -t {VIP}:80"),
        ],
        "{report}"
    );
    assert!(report.contains("timeout: tcp 900 -> 1200\n"), "{report}");
    assert!(
        report
            .contains("left alone: workers.idle_sleep_us = 200 (running: 100): needs a restart\n"),
        "{report}"
    );
    let (summary, lost) = holder.round();
    assert_eq!(
        summary,
        "round 1000 0",
        "lost: {lost:?}\n{}",
        lab.rvsd_log()
    );
    assert_eq!(active_conns(&lab, ECHO_PORT), 1000);
    assert_eq!(
        lab.rvsadm_ok("-L --timeout").unwrap(),
        "Timeout (tcp tcpfin udp): 1200 120 300\n"
    );
    assert_eq!(
        lab.curl(&format!("http://{VIP}:8080/")).unwrap(),
        "RS2:8080"
    );

    // A bad rules file: refused with its file and line, nothing changes,
    // the connections keep flowing.
    let before = lab.rvsadm_ok("-Ln").unwrap();
    std::fs::write(
        rules_path(&lab),
        format!("-A -t {VIP}:{ECHO_PORT} -s rr\n\n-a -t {VIP}:{ECHO_PORT} -r {RS1} -w many\n"),
    )
    .unwrap();
    let (code, out, err) = rvsadm_status(&lab, "--reload");
    assert_eq!(code, 255, "{out}");
    assert_eq!(
        err,
        format!(
            "{}:3: illegal weight specified: -a -t {VIP}:{ECHO_PORT} -r {RS1} -w many\n",
            rules_path(&lab).display()
        )
    );
    assert_eq!(lab.rvsadm_ok("-Ln").unwrap(), before);
    // A bad configuration file, by SIGHUP: logged with its file and line.
    let good = std::fs::read_to_string(&cfg).unwrap();
    // The table again: TOML refuses a second [workers].
    std::fs::write(&cfg, format!("{good}[workers]\nlcores = [1]\n")).unwrap();
    let dup_line = good.lines().count() + 1;
    lab.signal_rvsd("HUP").unwrap();
    let want = format!("{}:{dup_line}: ", cfg.display());
    lab.wait_for("the refused reload in rvsd's log", || {
        Ok(lab.rvsd_log().contains(&want))
    })
    .unwrap();
    assert!(
        lab.rvsd_log()
            .contains("reload refused, the running configuration stays"),
        "{}",
        lab.rvsd_log()
    );
    assert_eq!(lab.rvsadm_ok("-Ln").unwrap(), before);
    let (summary, lost) = holder.round();
    assert_eq!(summary, "round 1000 0", "lost: {lost:?}");

    // Back to the first rules by SIGHUP: RS2's connections and RS1's carry
    // on, the new server goes, port 80 comes back.
    std::fs::write(&cfg, &good).unwrap();
    let cfg = write_config(&lab, Some(&v1), "");
    lab.signal_rvsd("HUP").unwrap();
    lab.wait_for("the rules of v1 back", || {
        Ok(lab.rvsadm_ok("-Ln")?.contains(&format!("TCP  {VIP}:80 rr")))
    })
    .unwrap();
    let (summary, lost) = holder.round();
    assert_eq!(summary, "round 1000 0", "lost: {lost:?}");
    assert_eq!(active_conns(&lab, ECHO_PORT), 1000);
    assert_eq!(lab.curl(&format!("http://{VIP}/")).unwrap(), "RS1");
    drop(holder);
    // The configuration file is the one rvsd runs with.
    assert!(cfg.exists());
    let st = lab.stop_rvsd().unwrap();
    assert!(st.success());
}

/// One datagram from the notify socket.
fn notice(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn systemd_hears_ready_reloading_and_stopping() {
    let mut lab = new_lab("notify");
    let rules = format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {RS2}:80 -g -w 1\n");
    let cfg = write_config(&lab, Some(&rules), "");
    let path = lab.dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let s = socket(&lab);
    let p = path.display().to_string();
    lab.spawn_rvsd(&cfg, &s, &[("NOTIFY_SOCKET", &p)]).unwrap();
    let ready = notice(&sock);
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving 1 service on "),
        "{ready}"
    );
    // At READY=1 the socket answers, the rules are in and the port
    // forwards: one try each, no waiting.
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    assert!(listing.contains(&format!("TCP  {VIP}:80 rr")), "{listing}");
    assert_eq!(lab.curl(&format!("http://{VIP}/")).unwrap(), "RS2");

    lab.signal_rvsd("HUP").unwrap();
    let reloading = notice(&sock);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(notice(&sock), "READY=1\nSTATUS=reloaded: 0 changes");

    std::fs::write(
        rules_path(&lab),
        format!("{rules}-a -t {VIP}:80 -r {RS1}:80\n"),
    )
    .unwrap();
    lab.rvsadm_ok("--reload").unwrap();
    assert!(notice(&sock).starts_with("RELOADING=1\n"));
    assert_eq!(notice(&sock), "READY=1\nSTATUS=reloaded: 1 change");

    std::fs::write(rules_path(&lab), "-A -t nowhere\n").unwrap();
    assert_eq!(rvsadm_status(&lab, "--reload").0, 255);
    assert!(notice(&sock).starts_with("RELOADING=1\n"));
    let refused = notice(&sock);
    assert!(
        refused.starts_with(&format!(
            "READY=1\nSTATUS=reload refused, running configuration kept: {}:1: ",
            rules_path(&lab).display()
        )),
        "{refused}"
    );

    let st = lab.stop_rvsd().unwrap();
    assert!(st.success(), "{}", lab.rvsd_log());
    assert_eq!(notice(&sock), "STOPPING=1");
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn reload_leaves_rvs_keepalived_its_services() {
    let mut lab = new_lab("karl");
    // rvs-keepalived manages VIP:80 with both servers...
    let ka_conf = lab.dir.join("keepalived.conf");
    std::fs::write(
        &ka_conf,
        format!(
            "virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
  real_server {RS1} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 2\n    }}\n  }}\n\
  real_server {RS2} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 2\n    }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    // ... and the rules file, a saved table, names it too, differently.
    let rules = format!(
        "-A -t {VIP}:80 -s wlc\n-a -t {VIP}:80 -r {RS1}:80 -g -w 7\n\
-A -t {VIP}:8080 -s rr\n-a -t {VIP}:8080 -r {RS1}:80 -m -w 1\n"
    );
    let cfg = write_config(&lab, Some(""), "");
    start(&mut lab, &cfg);
    let status = lab.dir.join("ka.status");
    let _ = std::fs::remove_file(&status);
    let bin = rvs_lab::bin_dir().join("rvs-keepalived");
    let (b, c, s, st) = (
        bin.display().to_string(),
        ka_conf.display().to_string(),
        socket(&lab).display().to_string(),
        status.display().to_string(),
    );
    lab.spawn_named(
        "keepalived",
        "client",
        &[
            &b,
            "-n",
            "-l",
            "-f",
            &c,
            "--socket",
            &s,
            "--status-file",
            &st,
        ],
    )
    .unwrap();
    let theirs = [
        format!("TCP  {VIP}:80 rr"),
        format!("  -> {RS2}:80"),
        format!("  -> {RS1}:80"),
    ];
    lab.wait_for("rvs-keepalived's service with both servers", || {
        let l = lab.rvsadm_ok("-Ln")?;
        Ok(status.exists() && theirs.iter().all(|t| l.contains(t.as_str())))
    })
    .unwrap();

    std::fs::write(rules_path(&lab), &rules).unwrap();
    let report = lab.rvsadm_ok("--reload").unwrap();
    let pid = lab.pid_of("keepalived").unwrap();
    assert!(
        report.contains(&format!(
            "left alone: {}:1: TCP {VIP}:80 is managed by rvs-keepalived (pid {pid}, {c})",
            rules_path(&lab).display()
        )),
        "{report}"
    );
    let applied: Vec<&str> = report
        .lines()
        .filter_map(|l| l.strip_prefix("applied: "))
        .collect();
    assert_eq!(
        applied,
        [
            format!("-A -t {VIP}:8080 -s rr"),
            format!("-a -t {VIP}:8080 -r {RS1}:80 -m -w 1"),
        ]
    );
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(theirs.iter().all(|t| l.contains(t.as_str())), "{l}");
    assert!(!l.contains(" 7 "), "{l}");

    // Without rvs-keepalived (it removes its services as it stops), the
    // rules file's version goes in at the next reload.
    lab.stop_named("keepalived").unwrap();
    lab.wait_for("rvs-keepalived's service gone", || {
        Ok(!lab.rvsadm_ok("-Ln")?.contains(&format!("TCP  {VIP}:80 rr")))
    })
    .unwrap();
    let report = lab.rvsadm_ok("--reload").unwrap();
    assert!(
        report.contains(&format!("applied: -A -t {VIP}:80 -s wlc\n")),
        "{report}"
    );
    let l = lab.rvsadm_ok("-Ln").unwrap();
    assert!(l.contains(&format!("TCP  {VIP}:80 wlc")), "{l}");
    assert_eq!(lab.curl(&format!("http://{VIP}/")).unwrap(), "RS1");
}
