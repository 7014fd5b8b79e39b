//! Two directors and VRRP: each runs rvsd (`vip_arp = "kernel"`) and
//! Debian's keepalived for VRRP alone (`keepalived --vrrp`) on its kernel
//! interface, `rvs-lan`. The master's kernel holds the VIP and so answers
//! ARP for it; when the master fails the backup takes the VIP, its
//! gratuitous ARP moves the client, and the client's requests flow through
//! the other director.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rvs_lab::{Lab, RvsdOptions, DIRECTOR, DIRECTOR2, RS1, RS2, VIP};

/// A director of the demo: its namespace, rvsd's config and socket.
struct Director {
    role: &'static str,
    addr: &'static str,
    config: PathBuf,
    socket: PathBuf,
}

fn rvsadm(d: &Director, line: &str) -> String {
    let out = std::process::Command::new(rvs_lab::bin_dir().join("rvsadm"))
        .arg("--socket")
        .arg(&d.socket)
        .args(line.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rvsadm {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// New connections rvsd `d` scheduled, over its workers.
fn new_connections(d: &Director) -> u64 {
    rvsadm(d, "--counters")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("new_connections")).then(|| f.next()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Starts `d`'s rvsd (named `rvsd-<role>`) and gives it the walkthrough's
/// service; returns when it answers.
fn start_rvsd(lab: &mut Lab, d: &Director) {
    let bin = rvs_lab::bin_dir().join("rvsd");
    let (b, c) = (bin.display().to_string(), d.config.display().to_string());
    lab.spawn_named(&format!("rvsd-{}", d.role), d.role, &[&b, "--config", &c])
        .unwrap();
    lab.wait_for(&format!("rvsd in {}", d.role), || {
        Ok(
            std::process::Command::new(rvs_lab::bin_dir().join("rvsadm"))
                .arg("--socket")
                .arg(&d.socket)
                .arg("-Ln")
                .output()?
                .status
                .success(),
        )
    })
    .unwrap();
    rvsadm(d, &format!("-A -t {VIP}:80 -s rr"));
    rvsadm(d, &format!("-a -t {VIP}:80 -r {RS1}:80 -g"));
    rvsadm(d, &format!("-a -t {VIP}:80 -r {RS2}:80 -g"));
}

/// keepalived for VRRP alone on `d`'s kernel interface, with its own pid
/// files; `priority` decides the master.
fn start_vrrp(lab: &mut Lab, d: &Director, priority: u32) {
    let conf = lab.dir.join(format!("vrrp-{}.conf", d.role));
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n  router_id {role}\n}}\n\
vrrp_instance VI_1 {{\n  state BACKUP\n  interface rvs-lan\n  virtual_router_id 51\n  \
priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/32 dev rvs-lan\n  }}\n}}\n",
            role = d.role
        ),
    )
    .unwrap();
    let pid = |what: &str| {
        lab.dir
            .join(format!("keepalived-{}-{what}.pid", d.role))
            .display()
            .to_string()
    };
    let args = [
        "keepalived".to_string(),
        "--vrrp".into(),
        "--dont-fork".into(),
        "--log-console".into(),
        "--log-detail".into(),
        "--use-file".into(),
        conf.display().to_string(),
        "--pid".into(),
        pid("main"),
        "--vrrp_pid".into(),
        pid("vrrp"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn_named(&format!("vrrp-{}", d.role), d.role, &args)
        .unwrap();
}

/// Stops `d`'s keepalived and waits until its VRRP process is gone too:
/// the parent can exit first, and a new keepalived refuses to start
/// ("daemon is already running") while the pid file's process lives.
fn stop_vrrp(lab: &mut Lab, d: &Director) {
    let pid_file = lab.dir.join(format!("keepalived-{}-vrrp.pid", d.role));
    let child = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    lab.stop_named(&format!("vrrp-{}", d.role)).unwrap();
    if let Some(pid) = child {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let t = Instant::now();
        while proc_dir.exists() && t.elapsed() < Duration::from_secs(10) {
            if t.elapsed() > Duration::from_secs(5) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !proc_dir.exists(),
            "keepalived's VRRP process {pid} lives on"
        );
    }
}

fn holds_vip(lab: &Lab, d: &Director) -> bool {
    lab.exec(
        d.role,
        &["ip", "-o", "-4", "addr", "show", "dev", "rvs-lan"],
    )
    .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("{VIP}/32")))
    .unwrap_or(false)
}

fn curl_vip(lab: &Lab) -> bool {
    lab.exec(
        "client",
        &["curl", "-s", "-f", "-m", "2", &format!("http://{VIP}/")],
    )
    .map(|o| o.status.success())
    .unwrap_or(false)
}

/// Polls `cond` every 100 ms for up to `limit`; how long it took.
fn within(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {limit:?}");
}

/// Five curls that all reach the VIP through director `d` (and not the
/// other).
fn served_by(lab: &Lab, d: &Director, other: &Director) {
    let (a, b) = (new_connections(d), new_connections(other));
    for i in 0..5 {
        assert!(curl_vip(lab), "request {i} through {}", d.role);
    }
    assert_eq!(new_connections(d), a + 5, "through {}", d.role);
    assert_eq!(new_connections(other), b, "nothing through {}", other.role);
}

fn config_for(lab: &Lab, role: &str, iface: &str, addr: &str, socket: &Path) -> PathBuf {
    let base = lab
        .write_rvsd_config(&RvsdOptions {
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            socket: socket.to_path_buf(),
        })
        .unwrap();
    let text = std::fs::read_to_string(&base)
        .unwrap()
        .replace("iface=veth-dir\"", &format!("iface={iface}\""))
        .replace(
            &format!("address = \"{DIRECTOR}/24\"\n"),
            &format!("address = \"{addr}/24\"\nvip_arp = \"kernel\"\n"),
        );
    assert!(text.contains("vip_arp"), "{text}");
    let path = lab.dir.join(format!("rvsd-{role}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The demo: director 1 (priority 150) is master and serves the VIP; its
/// rvsd dies, director 2 takes the VIP within a few advertisement
/// intervals and serves it; director 1 comes back and takes it back.
#[test]
#[ignore = "needs root, network namespaces, DPDK and keepalived; run with cargo xtask test"]
fn vip_moves_to_the_other_director_when_the_master_fails() {
    let prefix = format!("{}vrrp", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).unwrap();
    lab.add_director("director2", "veth-dir2").unwrap();
    lab.serve_http("rs1", 80, "RS1").unwrap();
    lab.serve_http("rs2", 80, "RS2").unwrap();
    let one = Director {
        role: "director",
        addr: DIRECTOR,
        socket: dir.join("rvsd1.sock"),
        config: PathBuf::new(),
    };
    let one = Director {
        config: config_for(&lab, "director", "veth-dir", one.addr, &one.socket),
        ..one
    };
    let two = Director {
        role: "director2",
        addr: DIRECTOR2,
        socket: dir.join("rvsd2.sock"),
        config: PathBuf::new(),
    };
    let two = Director {
        config: config_for(&lab, "director2", "veth-dir2", two.addr, &two.socket),
        ..two
    };
    start_rvsd(&mut lab, &one);
    start_rvsd(&mut lab, &two);
    start_vrrp(&mut lab, &one, 150);
    start_vrrp(&mut lab, &two, 100);

    // Director 1 is master: its kernel holds the VIP, director 2's not.
    within("director 1 master", Duration::from_secs(15), || {
        holds_vip(&lab, &one)
    });
    // The backup sees the master's advertisements (over both rvsds and
    // the LAN) and stays backup.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !holds_vip(&lab, &two),
        "two masters:\n{}",
        lab.log_of("vrrp-director2")
    );
    assert!(holds_vip(&lab, &one));
    // The client asks anew: director 1's kernel answers, rvsd does not
    // (on either director).
    let arp_by_rvsd = |d: &Director| {
        rvsadm(d, "--counters")
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("arp_replies_sent")).then(|| f.next()?.parse::<u64>().ok())?
            })
            .sum::<u64>()
    };
    let replies = (arp_by_rvsd(&one), arp_by_rvsd(&two));
    lab.exec("client", &["ip", "neigh", "flush", "dev", "veth-cli"])
        .unwrap();
    served_by(&lab, &one, &two);
    assert_eq!((arp_by_rvsd(&one), arp_by_rvsd(&two)), replies);
    let neigh = lab.exec("client", &["ip", "neigh", "show", VIP]).unwrap();
    let mac_of = |role: &str, iface: &str| {
        let o = lab.exec(role, &["cat", &format!("/sys/class/net/{iface}/address")]);
        String::from_utf8_lossy(&o.unwrap().stdout)
            .trim()
            .to_string()
    };
    let (mac1, mac2) = (
        mac_of("director", "veth-dir"),
        mac_of("director2", "veth-dir2"),
    );
    assert!(
        String::from_utf8_lossy(&neigh.stdout).contains(&mac1),
        "the client reaches the VIP at director 1's MAC {mac1}: {}",
        String::from_utf8_lossy(&neigh.stdout)
    );

    // Director 1 fails: its rvsd dies, and its kernel interface with it.
    let failed = Instant::now();
    lab.signal("rvsd-director", "KILL").unwrap();
    lab.wait_exit("rvsd-director", Duration::from_secs(5))
        .unwrap();
    let took = within("director 2 master", Duration::from_secs(10), || {
        holds_vip(&lab, &two)
    });
    within("the VIP served again", Duration::from_secs(10), || {
        curl_vip(&lab)
    });
    eprintln!(
        "director 2 held the VIP {took:?} after director 1 failed; requests succeeded again after {:?}",
        failed.elapsed()
    );
    assert!(
        failed.elapsed() < Duration::from_secs(12),
        "failover took {:?}",
        failed.elapsed()
    );
    let b = new_connections(&two);
    for i in 0..5 {
        assert!(curl_vip(&lab), "request {i} through director 2");
    }
    assert_eq!(new_connections(&two), b + 5);
    let neigh = lab.exec("client", &["ip", "neigh", "show", VIP]).unwrap();
    assert!(
        String::from_utf8_lossy(&neigh.stdout).contains(&mac2),
        "gratuitous ARP moved the client to director 2's MAC {mac2}: {}",
        String::from_utf8_lossy(&neigh.stdout)
    );

    // Director 1 comes back (rvsd, then keepalived on its new interface)
    // and, with the higher priority, takes the VIP back.
    stop_vrrp(&mut lab, &one);
    start_rvsd(&mut lab, &one);
    start_vrrp(&mut lab, &one, 150);
    within("director 1 master again", Duration::from_secs(15), || {
        holds_vip(&lab, &one) && !holds_vip(&lab, &two)
    });
    within("the client follows", Duration::from_secs(10), || {
        let (a, b) = (new_connections(&one), new_connections(&two));
        curl_vip(&lab) && new_connections(&one) == a + 1 && new_connections(&two) == b
    });
    served_by(&lab, &one, &two);
}
