//! IPVS connection sync between two rvsd directors on the walkthrough's
//! LAN: director 1 serves the VIP (it answers ARP for it) and runs the
//! master sync daemon; director 2 (`vip_arp = "kernel"`, silent for the
//! VIP) runs the backup. Connections scheduled by `wlc` on director 1
//! appear on director 2 bound to the same real servers; when the client's
//! traffic moves to director 2, every connection goes on.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rvs_lab::{Lab, RvsdOptions, DIRECTOR, DIRECTOR2, RS1, RS2, VIP};

struct Director {
    role: &'static str,
    socket: PathBuf,
}

fn rvsadm(d: &Director, line: &str) -> std::process::Output {
    std::process::Command::new(rvs_lab::bin_dir().join("rvsadm"))
        .arg("--socket")
        .arg(&d.socket)
        .args(line.split_whitespace())
        .output()
        .unwrap()
}

fn rvsadm_ok(d: &Director, line: &str) -> String {
    let out = rvsadm(d, line);
    assert!(
        out.status.success(),
        "rvsadm {line} on {}: {}",
        d.role,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn counter(d: &Director, name: &str) -> u64 {
    rvsadm_ok(d, "--counters")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Connections of `-Lnc` as (client port, real server, state).
fn conns(d: &Director) -> Vec<(u16, String, String)> {
    let mut v: Vec<(u16, String, String)> = rvsadm_ok(d, "-Lnc")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // pro expire state source virtual destination
            if f.len() < 6 || f[0] != "TCP" {
                return None;
            }
            let cport = f[3].rsplit(':').next()?.parse().ok()?;
            let rs = f[5].rsplit_once(':')?.0.to_string();
            Some((cport, rs, f[2].to_string()))
        })
        .collect();
    v.sort();
    v
}

fn start(lab: &mut Lab, role: &'static str, iface: &str, addr: &str, silent: bool) -> Director {
    let socket = lab.dir.join(format!("rvsd-{role}.sock"));
    let base = lab
        .write_rvsd_config(&RvsdOptions {
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            socket: socket.clone(),
        })
        .unwrap();
    let arp = if silent { "vip_arp = \"kernel\"\n" } else { "" };
    let text = std::fs::read_to_string(&base)
        .unwrap()
        .replace("iface=veth-dir\"", &format!("iface={iface}\""))
        .replace(
            &format!("address = \"{DIRECTOR}/24\"\n"),
            &format!("address = \"{addr}/24\"\n{arp}"),
        );
    let config = lab.dir.join(format!("rvsd-{role}.toml"));
    std::fs::write(&config, text).unwrap();
    let bin = rvs_lab::bin_dir().join("rvsd");
    let (b, c) = (bin.display().to_string(), config.display().to_string());
    lab.spawn_named(&format!("rvsd-{role}"), role, &[&b, "--config", &c])
        .unwrap();
    let d = Director { role, socket };
    lab.wait_for(&format!("rvsd in {role}"), || {
        Ok(rvsadm(&d, "-Ln").status.success())
    })
    .unwrap();
    rvsadm_ok(&d, &format!("-A -t {VIP}:80 -s wlc"));
    rvsadm_ok(&d, &format!("-a -t {VIP}:80 -r {RS1}:80 -g"));
    rvsadm_ok(&d, &format!("-a -t {VIP}:80 -r {RS2}:80 -g"));
    d
}

/// The client's side: `n` connections to the VIP held open by one Python
/// process; each line on its stdin asks for one round trip on every
/// connection, and it answers with how many echoed in time.
const CLIENT: &str = "import socket,sys\n\
n = int(sys.argv[2])\n\
cs = []\n\
for i in range(n):\n    s = socket.create_connection((sys.argv[1], 80), timeout=5)\n    s.settimeout(5)\n    cs.append((s, s.makefile('r')))\n\
print(' '.join(f.readline().strip() + ':' + str(s.getsockname()[1]) for s, f in cs), flush=True)\n\
for line in sys.stdin:\n    ok = 0\n    for i, (s, f) in enumerate(cs):\n        try:\n            s.sendall(b'round %d\\n' % i)\n            ok += f.readline().strip() == 'round %d' % i\n        except OSError:\n            pass\n    print(ok, flush=True)\n";

struct Client {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Client {
    fn round(&mut self) -> usize {
        writeln!(self.child.stdin.as_mut().unwrap(), "go").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        line.trim().parse().unwrap_or(0)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mac_of(lab: &Lab, role: &str, iface: &str) -> String {
    let p = Path::new("/sys/class/net").join(iface).join("address");
    let out = lab.exec(role, &["cat", &p.display().to_string()]).unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn a_backup_takes_over_synced_connections() {
    let prefix = format!("{}sync", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).unwrap();
    lab.add_director("director2", "veth-dir2").unwrap();
    lab.serve_echo("rs1", 80, "RS1").unwrap();
    lab.serve_echo("rs2", 80, "RS2").unwrap();
    let one = start(&mut lab, "director", "veth-dir", DIRECTOR, false);
    let two = start(&mut lab, "director2", "veth-dir2", DIRECTOR2, true);

    // ipvsadm's words and answers.
    rvsadm_ok(&two, "--start-daemon backup --mcast-interface lan");
    rvsadm_ok(
        &one,
        "--start-daemon master --mcast-interface rvs-lan --syncid 0",
    );
    assert_eq!(
        rvsadm_ok(&one, "-L --daemon"),
        "master sync daemon (mcast=rvs-lan, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    assert_eq!(
        rvsadm_ok(&two, "-L --daemon"),
        "backup sync daemon (mcast=lan, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    let again = rvsadm(&one, "--start-daemon master --mcast-interface lan");
    assert_eq!(again.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "Daemon has already run\n"
    );
    let nodev = rvsadm(&one, "--start-daemon backup --mcast-interface eth7");
    assert_eq!(String::from_utf8_lossy(&nodev.stderr), "No such device\n");

    // Ten connections through director 1; two round trips each make them
    // ESTABLISHED past the kernel's sync threshold (the third packet).
    let n = 10;
    let mut child = lab
        .spawn_piped("client", &["python3", "-c", CLIENT, VIP, &n.to_string()])
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut greetings = String::new();
    out.read_line(&mut greetings).unwrap();
    let mut client = Client { child, out };
    assert_eq!(greetings.split_whitespace().count(), n, "{greetings}");
    assert_eq!(client.round(), n);
    assert_eq!(client.round(), n);
    let on_one = conns(&one);
    assert_eq!(on_one.len(), n, "{on_one:?}");
    let servers: std::collections::BTreeSet<&String> = on_one.iter().map(|c| &c.1).collect();
    assert_eq!(servers.len(), 2, "wlc used both servers: {on_one:?}");

    // The backup has them all, on the same servers (the master sends a
    // message when it is full or 2 s old).
    let started = Instant::now();
    let mut on_two = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        on_two = conns(&two);
        if on_two.len() == n {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(on_two, on_one, "director 2's connections are director 1's");
    assert_eq!(counter(&two, "synced_created"), n as u64);
    assert_eq!(counter(&one, "sync_offered"), n as u64);
    // Framed and sent by director 1's worker itself, on its port.
    assert!(counter(&one, "sync_messages") >= 1);
    assert_eq!(counter(&one, "sync_not_sent"), 0);

    // The client's traffic moves to director 2: every connection goes on,
    // to its server, with nothing scheduled anew.
    let mac2 = mac_of(&lab, "director2", "veth-dir2");
    lab.exec(
        "client",
        &[
            "ip",
            "neigh",
            "replace",
            VIP,
            "lladdr",
            &mac2,
            "dev",
            "veth-cli",
            "nud",
            "permanent",
        ],
    )
    .unwrap();
    let forwarded = counter(&two, "forwarded");
    assert_eq!(
        client.round(),
        n,
        "every connection answered through director 2"
    );
    assert!(counter(&two, "forwarded") >= forwarded + n as u64);
    assert_eq!(counter(&two, "new_connections"), 0);
    drop(client);

    rvsadm_ok(&one, "--stop-daemon master");
    assert_eq!(rvsadm_ok(&one, "-L --daemon"), "");
    let none = rvsadm(&one, "--stop-daemon master");
    assert_eq!(
        String::from_utf8_lossy(&none.stderr),
        "No daemon is running\n"
    );
}
