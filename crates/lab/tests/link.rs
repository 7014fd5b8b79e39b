//! The link end to end: an attacker on the LAN (the client's namespace)
//! sends spoofed ARP, unsolicited replies and gratuitous ARP claiming a
//! real server's address, while the client keeps fetching pages through
//! the VIP; and the same with neighbour advertisements on the IPv6
//! selftest topology's server link (tools/spoof-neighbour.py, a packet
//! socket).
//!
//! Under Linux's default rules (rvsd's default too) a claim for an
//! address rvsd does not know creates nothing, but a claim for a known
//! address is taken once its entry is over a second old: the spoofer
//! moves RS1's entry, which is what `learn = "solicited-only"` and static
//! neighbours are for. With either, every request succeeds during the
//! storm, and the counters show the spoofed frames refused.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout};
use std::time::{Duration, Instant};

use common::counter;
use rvs_lab::{Lab, RvsdOptions, DIRECTOR, RS1, RS2, VIP};

const BOGUS_MAC: &str = "02:ba:d0:00:00:66";

/// An interface's MAC, read in its namespace.
fn mac_of(lab: &Lab, role: &str, iface: &str) -> String {
    let out = lab
        .exec(role, &["cat", &format!("/sys/class/net/{iface}/address")])
        .unwrap();
    assert!(out.status.success(), "no {iface} in {role}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Where a spoofer sends from, and to whom.
struct Attack<'a> {
    /// "arp" or "nd".
    kind: &'a str,
    role: &'a str,
    iface: &'a str,
    director_mac: &'a str,
    director: &'a str,
}

/// tools/spoof-neighbour.py, claiming `claim` is at [`BOGUS_MAC`]: `count`
/// frames, one every `interval_ms`.
struct Spoofer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Spoofer {
    fn start(lab: &Lab, a: &Attack, claim: &str, count: u32, interval_ms: u32) -> Spoofer {
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/spoof-neighbour.py");
        let (count, interval) = (count.to_string(), interval_ms.to_string());
        let mut child = lab
            .spawn_piped(
                a.role,
                &[
                    "python3",
                    &tool.display().to_string(),
                    a.kind,
                    a.iface,
                    a.director_mac,
                    a.director,
                    claim,
                    BOGUS_MAC,
                    &count,
                    &interval,
                ],
            )
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), "ready", "spoof-neighbour.py did not start");
        Spoofer { child, out }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for it to finish (its frames are bounded in count and time);
    /// how many it sent.
    fn finish(mut self) -> u64 {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "spoof-neighbour.py: {st}");
        l.trim()
            .strip_prefix("sent ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("spoof-neighbour.py said {l:?}"))
    }
}

impl Drop for Spoofer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (Re)starts rvsd with `neighbours` as its `[neighbours]` section, then
/// runs `setup` (rvsadm commands; a restart starts from an empty table).
fn restart(lab: &mut Lab, opts: &RvsdOptions, neighbours: &str, setup: &[String]) {
    if lab.rvsd_pid().is_some() {
        assert!(lab.stop_rvsd().unwrap().success());
    }
    let cfg = lab.write_rvsd_config(opts).unwrap();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!("\n[neighbours]\n{neighbours}"));
    std::fs::write(&cfg, text).unwrap();
    lab.start_rvsd_with(&cfg, &opts.socket, &[]).unwrap();
    for line in setup {
        lab.rvsadm_ok(line).unwrap();
    }
}

/// The walkthrough's DR service over both real servers; returns once both
/// answered (rvsd resolved their MACs).
fn restart_walkthrough(lab: &mut Lab, opts: &RvsdOptions, neighbours: &str) {
    let mut setup = vec![format!("-A -t {VIP}:80 -s rr")];
    for rs in [RS1, RS2] {
        setup.push(format!("-a -t {VIP}:80 -r {rs}:80 -g"));
    }
    restart(lab, opts, neighbours, &setup);
    let mut seen = std::collections::BTreeSet::new();
    lab.wait_for("both real servers to answer", || {
        seen.insert(lab.curl(&format!("http://{VIP}/"))?);
        Ok(seen.len() == 2)
    })
    .unwrap();
}

fn options(dir: &Path) -> RvsdOptions {
    RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: dir.join("rvsd.sock"),
    }
}

/// Fetches pages through the VIP while `spoofer` runs (at least `min`):
/// (successes, failures, which servers answered).
fn fetch_during(lab: &Lab, spoofer: &mut Spoofer, min: usize) -> (usize, Vec<String>, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut ok, mut failed, mut names) = (0, Vec::new(), Vec::new());
    while (spoofer.running() || ok + failed.len() < min) && Instant::now() < deadline {
        match lab.curl(&format!("http://{VIP}/")) {
            Ok(body) => {
                ok += 1;
                names.push(body);
            }
            Err(e) => failed.push(e.to_string()),
        }
    }
    names.sort();
    names.dedup();
    (ok, failed, names)
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn spoofed_arp_does_not_black_hole_a_real_server() {
    let prefix = format!("{}link", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).expect("building the lab");
    lab.serve_http("rs1", 80, "RS1").unwrap();
    lab.serve_http("rs2", 80, "RS2").unwrap();
    let opts = options(&dir);
    let director_mac = mac_of(&lab, "director", "veth-dir");
    let rs1_mac = mac_of(&lab, "rs1", "veth-rs1");
    let attack = Attack {
        kind: "arp",
        role: "client",
        iface: "veth-cli",
        director_mac: &director_mac,
        director: DIRECTOR,
    };

    // Linux's rules. A claim for an address rvsd never asked for creates
    // nothing: counted, every frame.
    restart_walkthrough(&mut lab, &opts, "");
    let stranger = "192.168.1.77";
    let n = Spoofer::start(&lab, &attack, stranger, 30, 5).finish();
    assert_eq!(n, 30);
    lab.wait_for("the spoofed frames to be counted", || {
        Ok(counter(&lab, "neighbour_unsolicited") >= n)
    })
    .unwrap();
    assert_eq!(counter(&lab, "neighbour_moved"), 0);
    // A claim for a real server's address: once the entry is over the
    // locktime, Linux's rules take it (a gratuitous ARP at once). The
    // spoofer is real and effective; this is the black hole the options
    // below close.
    Spoofer::start(&lab, &attack, RS1, 30, 5).finish();
    assert!(
        counter(&lab, "neighbour_moved") >= 1,
        "{}",
        lab.rvsadm_ok("--counters").unwrap()
    );

    // solicited-only, then a static entry for RS1 (with Linux's rules):
    // a storm of claims for RS1 all the while the client fetches pages.
    for (neighbours, refused) in [
        (
            "learn = \"solicited-only\"\n".to_string(),
            "neighbour_not_an_answer",
        ),
        (
            format!("static = [{{ address = \"{RS1}\", mac = \"{rs1_mac}\" }}]\n"),
            "neighbour_static_kept",
        ),
    ] {
        restart_walkthrough(&mut lab, &opts, &neighbours);
        let mut spoofer = Spoofer::start(&lab, &attack, RS1, 1500, 2);
        let (ok, failed, names) = fetch_during(&lab, &mut spoofer, 20);
        let sent = spoofer.finish();
        eprintln!(
            "{}: {ok} requests, {} failed, during {sent} spoofed frames",
            neighbours.trim(),
            failed.len()
        );
        assert!(
            failed.is_empty(),
            "{neighbours}: {} of {} requests failed during the storm: {failed:?}\n{}",
            failed.len(),
            ok + failed.len(),
            lab.rvsd_log()
        );
        assert!(ok >= 20, "{neighbours}: only {ok} requests");
        assert_eq!(names, ["RS1", "RS2"], "{neighbours}: both servers served");
        let c = |name| counter(&lab, name);
        // At least: the hosts' own ARP (a server asking for the client)
        // is no answer to rvsd either.
        lab.wait_for(
            "the spoofed frames to be counted",
            || Ok(c(refused) >= sent),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{neighbours}: {e}: {refused} = {} of {sent}\n{}",
                c(refused),
                lab.rvsadm_ok("--counters").unwrap()
            )
        });
        assert_eq!(c("neighbour_moved"), 0, "{neighbours}");
    }
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn spoofed_neighbour_advertisements_do_not_black_hole_a_real_server() {
    use rvs_lab::selftest::{Mode, DIRECTOR6_SERVER_SIDE, PORT, SERVER6, VIP6};
    let prefix = format!("{}nd", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create_selftest_v6(&prefix, &dir, Mode::Dr).expect("building the IPv6 lab");
    let opts = options(&dir);
    let director_mac = mac_of(&lab, "director", "veth12");
    // The attacker is on the servers' link (the server's namespace, its
    // interface, another MAC).
    let attack = Attack {
        kind: "nd",
        role: "server",
        iface: "veth21",
        director_mac: &director_mac,
        director: DIRECTOR6_SERVER_SIDE,
    };
    let setup = [
        format!("-A -t [{VIP6}]:{PORT} -s rr"),
        format!("-a -t [{VIP6}]:{PORT} -r [{SERVER6}]:{PORT} -g"),
    ];
    let data: Vec<u8> = (0..32 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();

    // Linux's rules: an advertisement for an address rvsd never asked for
    // creates nothing; one with the override flag moves a known address
    // at once (ND has no locktime): the spoofer is effective.
    restart(&mut lab, &opts, "", &setup);
    assert_eq!(lab.transfer_to(VIP6, &data, 10).unwrap(), data);
    let n = Spoofer::start(&lab, &attack, "fd00:2::77", 20, 5).finish();
    lab.wait_for("the spoofed advertisements to be counted", || {
        Ok(counter(&lab, "neighbour_unsolicited") >= n)
    })
    .unwrap();
    assert_eq!(counter(&lab, "neighbour_moved"), 0);
    Spoofer::start(&lab, &attack, SERVER6, 20, 5).finish();
    assert!(
        counter(&lab, "neighbour_moved") >= 1,
        "{}",
        lab.rvsadm_ok("--counters").unwrap()
    );

    // solicited-only: a storm of advertisements for the server while the
    // client sends through the VIP; every transfer arrives whole.
    restart(&mut lab, &opts, "learn = \"solicited-only\"\n", &setup);
    assert_eq!(lab.transfer_to(VIP6, &data, 10).unwrap(), data);
    let mut spoofer = Spoofer::start(&lab, &attack, SERVER6, 1000, 2);
    let mut transfers = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while (spoofer.running() || transfers < 5) && Instant::now() < deadline {
        let got = lab.transfer_to(VIP6, &data, 10).unwrap_or_else(|e| {
            panic!(
                "transfer {transfers} during the storm: {e}\n{}",
                lab.rvsd_log()
            )
        });
        assert_eq!(got, data, "transfer {transfers}");
        transfers += 1;
    }
    let sent = spoofer.finish();
    eprintln!("solicited-only (ND): {transfers} transfers during {sent} spoofed advertisements");
    assert!(transfers >= 5, "only {transfers} transfers");
    lab.wait_for("the spoofed advertisements to be counted", || {
        Ok(counter(&lab, "neighbour_not_an_answer") >= sent)
    })
    .unwrap();
    assert_eq!(counter(&lab, "neighbour_moved"), 0);
}
