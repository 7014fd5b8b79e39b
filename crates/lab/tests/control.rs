//! The control socket of a real rvsd under slow, stuck, unauthorised and
//! hostile clients, with the real rvsadm; and a worker that panics. Each
//! test builds its own lab (the walkthrough topology).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvs_control_proto::proto::Response;
use rvs_lab::{Lab, RvsdOptions, RS1, RS2, VIP};

fn new_lab(name: &str) -> Lab {
    let prefix = format!("{}{}", rvs_lab::test_prefix(), name);
    let dir = rvs_lab::test_dir(&prefix);
    Lab::create(&prefix, &dir).expect("building the lab")
}

fn socket(lab: &Lab) -> PathBuf {
    lab.dir.join("rvsd.sock")
}

/// The lab's rvsd configuration with `control` added to its [control]
/// section.
fn config(lab: &Lab, control: &str) -> PathBuf {
    let cfg = lab
        .write_rvsd_config(&RvsdOptions {
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            socket: socket(lab),
        })
        .unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[control]\n"), "{text}");
    std::fs::write(
        &cfg,
        text.replace("[control]\n", &format!("[control]\n{control}")),
    )
    .unwrap();
    cfg
}

/// rvsadm on the lab's socket, with `prefix` (setpriv ...) in front.
fn rvsadm_as(lab: &Lab, prefix: &[&str], args: &str) -> Output {
    let rvsadm = rvs_lab::bin_dir().join("rvsadm");
    let sock = socket(lab);
    let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    argv.push(rvsadm.display().to_string());
    argv.push("--socket".into());
    argv.push(sock.display().to_string());
    argv.extend(args.split_whitespace().map(String::from));
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A client that sends its request a byte every two seconds held the
/// control thread (a `-Ln` beside it took 12 s). Now 50 rvsadm listings and
/// 10 changes beside it are answered at once, and it gets an error at its
/// deadline (5 s).
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn a_slow_client_beside_fifty_rvsadm_calls() {
    let mut lab = new_lab("slow");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: socket(&lab),
    })
    .unwrap();
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1}:80 -g"))
        .unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS2}:80 -g"))
        .unwrap();
    let path = socket(&lab);
    let slow = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        let t = Instant::now();
        for b in b"\"List\"\n" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
            if t.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let mut line = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = BufReader::new(&s).read_line(&mut line);
        (line, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let calls: Vec<_> = (0..60)
        .map(|i| {
            let args = if i < 50 {
                "-Ln".to_string()
            } else {
                format!("-e -t {VIP}:80 -r {RS1}:80 -g -w {}", 1 + i % 5)
            };
            let path = socket(&lab);
            std::thread::spawn(move || {
                let t = Instant::now();
                let out = Command::new(rvs_lab::bin_dir().join("rvsadm"))
                    .arg("--socket")
                    .arg(&path)
                    .args(args.split_whitespace())
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                (args, out, t.elapsed())
            })
        })
        .collect();
    let mut lists = Vec::new();
    let mut changes = Vec::new();
    for c in calls {
        let (args, out, took) = c.join().unwrap();
        assert!(
            out.status.success(),
            "rvsadm {args}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        if args == "-Ln" {
            assert!(text(&out.stdout).contains(&format!("TCP  {VIP}:80 rr")));
            lists.push(took);
        } else {
            changes.push(took);
        }
    }
    let all = t0.elapsed();
    lists.sort();
    changes.sort();
    eprintln!(
        "beside a client sending a byte every 2 s: 50 rvsadm -Ln: median {:?}, worst {:?}; \
         10 rvsadm -e: worst {:?}; all 60 done in {all:?}",
        lists[25], lists[49], changes[9]
    );
    assert!(lists[49] < Duration::from_secs(3), "{lists:?}");
    assert!(changes[9] < Duration::from_secs(3), "{changes:?}");
    let (line, took) = slow.join().unwrap();
    match serde_json::from_str::<Response>(&line) {
        Ok(Response::Error(e)) => assert!(e.starts_with("incomplete request"), "{e}"),
        other => panic!("{line:?}: {other:?}"),
    }
    assert!(took < Duration::from_secs(9), "{took:?}");
}

/// A client that asks for a big listing and never reads it: rvsd goes on
/// answering others (and taking changes), and lets the client go after its
/// write timeout.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn a_client_that_never_reads_holds_up_no_one() {
    let mut lab = new_lab("noread");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: socket(&lab),
    })
    .unwrap();
    // 3000 services: a listing of about a megabyte.
    let rules: String = (1..=3000)
        .map(|p| format!("-A -t 10.50.{}.{}:80 -s wlc\n", p / 250, p % 250 + 1))
        .collect();
    let mut restore = Command::new(rvs_lab::bin_dir().join("rvsadm"))
        .arg("--socket")
        .arg(socket(&lab))
        .arg("-R")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    restore
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(restore.wait().unwrap().success());
    let mut stuck = UnixStream::connect(socket(&lab)).unwrap();
    stuck.write_all(b"\"List\"\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    for i in 0..5 {
        lab.rvsadm_ok("-L --timeout").unwrap();
        lab.rvsadm_ok(&format!("-A -t {VIP}:{} -s rr", 1000 + i))
            .unwrap();
    }
    let took = t.elapsed();
    eprintln!("10 rvsadm calls beside a client that does not read: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Past the write timeout (5 s) rvsd lets go: the rest of the answer
    // never comes, the connection ends.
    lab.wait_for("rvsd to give up on the client", || {
        Ok(lab.rvsd_log().contains("did not take its answer"))
    })
    .unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    stuck.read_to_end(&mut got).unwrap();
    assert!(!got.ends_with(b"\n"), "cut short after {} bytes", got.len());
    let listing = lab.rvsadm_ok("-Ln").unwrap();
    assert_eq!(listing.matches("TCP  ").count(), 3005);
}

/// Who may use the socket: root; not another user, neither through the
/// file's mode (0600) nor, were the mode widened, past rvsd's check of its
/// credentials; with `[control] group`, the group's members.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn only_root_and_the_configured_group_may_use_the_socket() {
    let mut lab = new_lab("perm");
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let cfg = config(&lab, "");
    lab.start_rvsd_with(&cfg, &socket(&lab), &[]).unwrap();
    let m = std::fs::symlink_metadata(socket(&lab)).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert_eq!(m.uid(), 0);
    assert!(rvsadm_as(&lab, &[], "-Ln").status.success(), "root");
    let out = rvsadm_as(&lab, &nobody, "-Ln");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with("Permission denied (you must be root"),
        "{}",
        text(&out.stderr)
    );
    // An administrator widens the mode by mistake: rvsd still refuses.
    std::fs::set_permissions(socket(&lab), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = rvsadm_as(&lab, &nobody, &format!("-A -t {VIP}:80"));
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(
        text(&out.stderr).trim(),
        "Permission denied (you must be root or rvsd's own user): rvsd does not take \
         requests from uid 65534"
    );
    assert!(
        lab.rvsadm_ok("-Ln").unwrap().lines().count() == 3,
        "nothing added"
    );
    lab.stop_rvsd().unwrap();

    // With a group: its members are let in, by their primary group or a
    // supplementary one; others are not.
    let cfg = config(&lab, "group = \"nogroup\"\n");
    lab.start_rvsd_with(&cfg, &socket(&lab), &[]).unwrap();
    let m = std::fs::symlink_metadata(socket(&lab)).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(m.gid(), 65534);
    let member = ["setpriv", "--reuid=65534", "--regid=100", "--groups=65534"];
    let out = rvsadm_as(&lab, &member, &format!("-A -t {VIP}:80 -s rr"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(rvsadm_as(&lab, &nobody, "-Ln").status.success(), "primary");
    let stranger = ["setpriv", "--reuid=65534", "--regid=100", "--clear-groups"];
    let out = rvsadm_as(&lab, &stranger, "-Ln");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("Permission denied"));
    assert!(lab
        .rvsadm_ok("-Ln")
        .unwrap()
        .contains(&format!("TCP  {VIP}:80 rr")));
}

/// Random bytes, oversized and half-sent requests: an error each, rvsd
/// keeps serving, and the table is what it was.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn random_bytes_change_nothing() {
    let mut lab = new_lab("junk");
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: socket(&lab),
    })
    .unwrap();
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr")).unwrap();
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1}:80 -g"))
        .unwrap();
    let before = lab.rvsadm_ok("-S -n").unwrap();
    // A small xorshift generator, seeded: the run can be repeated.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let path = socket(&lab);
    let send = |bytes: &[u8], close: bool| -> String {
        let s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut w = s.try_clone().unwrap();
        let bytes = bytes.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&bytes);
            if close {
                let _ = w.shutdown(std::net::Shutdown::Write);
            }
        });
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        writer.join().unwrap();
        line
    };
    for i in 0..200 {
        let len = (next() % 2000) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            b.retain(|&c| c != b'\n');
            b.push(b'\n');
        }
        let line = send(&b, true);
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Error(_)) => {}
            other => panic!("{:?} got {line:?} ({other:?})", &b[..b.len().min(40)]),
        }
    }
    // Five megabytes in one line, and half a request left hanging.
    let line = send(&vec![b'['; 5 << 20], false);
    assert!(line.contains("request longer than"), "{line}");
    let t = Instant::now();
    let line = send(b"{\"Apply\":{\"Clear\"", false);
    assert!(line.contains("incomplete request"), "{line}");
    assert!(t.elapsed() >= Duration::from_secs(5));
    assert_eq!(lab.rvsadm_ok("-S -n").unwrap(), before);
    assert!(!lab.rvsd_log().contains("panicked"));
}

/// A worker that panics stops rvsd cleanly: the panic is logged with the
/// worker's lcore, rvsd exits with an error and removes its socket (a
/// service manager then restarts it). The panic is injected by a debug
/// build's test hook.
#[test]
#[ignore = "needs root, network namespaces and DPDK; run with cargo xtask test"]
fn a_worker_panic_stops_rvsd_cleanly() {
    let mut lab = new_lab("panic");
    let cfg = config(&lab, "");
    let rvsd = rvs_lab::bin_dir().join("rvsd").display().to_string();
    let c = cfg.display().to_string();
    lab.spawn_named(
        "rvsd",
        "director",
        &[
            "env",
            "RVSD_TEST_WORKER_PANIC_MS=3000",
            &rvsd,
            "--config",
            &c,
        ],
    )
    .unwrap();
    lab.wait_for("rvsd's socket", || {
        Ok(rvsadm_as(&lab, &[], "-Ln").status.success())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.log_of("rvsd")));
    let st = lab
        .wait_exit("rvsd", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.log_of("rvsd")));
    let log = lab.log_of("rvsd");
    assert_eq!(st.code(), Some(1), "{log}");
    assert!(
        log.contains("the worker on lcore 1 panicked: injected worker panic"),
        "{log}"
    );
    assert!(
        log.contains("rvsd: the worker on lcore 1 panicked"),
        "{log}"
    );
    assert!(!socket(&lab).exists(), "the socket file is removed");
    assert!(!Path::new(&socket(&lab)).exists());
}
