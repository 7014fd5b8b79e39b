//! The control socket under slow, stuck and hostile clients, with a real
//! `ControlServer` serving on a thread and stand-in workers: what reaches
//! the control thread, what the clients get back, and how long they wait.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rvs_dataplane::{NeighbourTable, PortInfo, Worker, WorkerConfig, WorkerMsg, WorkerShared};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Command, DestSpec, FwdMethod, PersistMask, Protocol, ServiceKey, ServiceSpec};
use rvs_packet::ethernet::MacAddr;

use super::tests::test_dir;
use super::{bind, ControlServer, SocketLimits, WorkerLink};
use crate::client;
use crate::proto::{Request, Response};

fn service(port: u16) -> ServiceSpec {
    ServiceSpec {
        key: ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.168.1.10".parse().unwrap(),
            port,
        },
        scheduler: "rr".into(),
        sched_flags: 0,
        persistent: None,
        netmask: PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
        one_packet: false,
    }
}

/// A worker for the walkthrough's frames (`rvs_packet::fixtures`), run by a
/// thread as the poll loop would: control messages, a listing slice, and
/// frames the test sends it.
struct StandIn {
    frames: crossbeam_channel::Sender<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(id: usize, workers: usize, templates: Arc<Templates>) -> (StandIn, WorkerLink) {
        let shared = Arc::new(WorkerShared::default());
        let neigh = Arc::new(NeighbourTable::new(300_000));
        neigh.learn(
            "192.168.1.220".parse::<std::net::Ipv4Addr>().unwrap(),
            MacAddr([2, 0, 0, 0, 0, 1]),
            0,
        );
        let mut w = Worker::new(
            WorkerConfig {
                id,
                workers,
                sharding: rvs_dataplane::FlowSharding::with_seed(0),
                ports: vec![PortInfo {
                    mac: MacAddr([0x02, 0, 0, 0, 0, 0xd1]),
                    addr: "192.168.1.213".parse().unwrap(),
                    prefix_len: 24,
                    mtu: 1500,
                    addr6: None,
                    kernel: false,
                    vip_arp: rvs_dataplane::VipArp::Always,
                }],
                routes: vec![],
                conn_capacity: 100_000,
                timeouts: Timeouts::default(),
                arp_retry_ms: 1000,
                expire_budget: 64,
                sloppy_tcp: false,
                count_stats: true,
                defense: Default::default(),
            },
            neigh,
            templates,
            shared.clone(),
        );
        let (tx, rx) = crossbeam_channel::unbounded::<WorkerMsg>();
        let (frames, frames_rx) = crossbeam_channel::unbounded::<Vec<u8>>();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (stop, shared) = (stop.clone(), shared.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let now = rvs_ipvs::clock::now_ms();
                    while let Ok(m) = rx.try_recv() {
                        w.apply(&m, now);
                        shared.applied.fetch_add(1, Ordering::Release);
                    }
                    w.refresh_neighbours();
                    while let Ok(mut f) = frames_rx.try_recv() {
                        w.handle(0, &mut f, now);
                    }
                    w.list_some(now);
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        });
        (
            StandIn {
                frames,
                stop,
                thread: Some(thread),
            },
            WorkerLink::new(tx, shared, 1 + id as u32),
        )
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A SYN from 10.a.b.c:port to the VIP's port 80.
fn syn(i: u32) -> Vec<u8> {
    use rvs_packet::ipv4::Ipv4Packet;
    use rvs_packet::TcpSegment;
    let mut f = rvs_packet::fixtures::TCP_SYN.to_vec();
    f[26..30].copy_from_slice(&(0x0a00_0000 + i).to_be_bytes());
    let mut ip = Ipv4Packet::new_checked(&mut f[14..]).unwrap();
    ip.fill_checksum();
    let (src, dst) = (ip.src(), ip.dst());
    let mut t = TcpSegment::new_checked(ip.payload_mut()).unwrap();
    t.set_src_port(1024 + (i % 50_000) as u16);
    t.fill_checksum_v4(src, dst);
    f
}

/// A control server on its own thread, on a socket in a fresh directory.
struct Served {
    dir: PathBuf,
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<ControlServer>>,
    _workers: Vec<StandIn>,
}

impl Served {
    fn start(name: &str, workers: usize, limits: SocketLimits) -> Served {
        let templates = Arc::new(Templates::new());
        let (stand_ins, links): (Vec<_>, Vec<_>) = (0..workers)
            .map(|i| StandIn::start(i, workers, templates.clone()))
            .unzip();
        let dir = test_dir(name);
        let path = dir.join("rvsd.sock");
        let socket = bind(&path, None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut srv = ControlServer::new(links, 4096, templates).with_socket_limits(limits);
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                srv.serve(&socket, &stop).unwrap();
                drop(socket);
                srv
            }
        });
        let s = Served {
            dir,
            path,
            stop,
            thread: Some(thread),
            _workers: stand_ins,
        };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let t = Instant::now();
        while UnixStream::connect(&self.path).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "socket never listened"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ask(&self, req: &Request) -> Response {
        client::request(&self.path, req).unwrap()
    }

    /// Sends raw bytes (then shuts down writing if `close`), returns the
    /// answer's first line.
    fn raw(&self, bytes: &[u8], close: bool) -> String {
        let mut s = UnixStream::connect(&self.path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may answer before it has read it all: keep writing in
        // the background and ignore a broken pipe.
        let mut w = s.try_clone().unwrap();
        let bytes = bytes.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = w.write_all(&bytes);
            if close {
                let _ = w.shutdown(std::net::Shutdown::Write);
            }
        });
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).unwrap();
        writer.join().unwrap();
        line
    }

    fn stop(mut self) -> ControlServer {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn error_of(line: &str) -> String {
    match serde_json::from_str::<Response>(line) {
        Ok(Response::Error(e)) => e,
        other => panic!("not an error line: {line:?} ({other:?})"),
    }
}

fn short_limits() -> SocketLimits {
    SocketLimits {
        request_deadline: Duration::from_millis(600),
        write_timeout: Duration::from_millis(300),
        answer_deadline: Duration::from_secs(5),
        max_request: 64 << 10,
        max_clients: 16,
        rows_wait: Duration::from_secs(5),
    }
}

/// A client that sends a byte at a time, slowly, holds up no one: 50
/// clients at once meanwhile all get their listing quickly, and the slow
/// one gets an error at its deadline.
#[test]
fn a_slow_client_delays_no_one() {
    let limits = SocketLimits {
        request_deadline: Duration::from_secs(2),
        max_clients: 64,
        ..short_limits()
    };
    let served = Served::start("slow", 1, limits);
    assert!(matches!(
        served.ask(&Request::Apply(Command::AddService(service(80)))),
        Response::Ok
    ));
    let path = served.path.clone();
    let slow = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&path).unwrap();
        let t = Instant::now();
        for b in b"\"List\"" {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        (line, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let path = served.path.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = client::request(&path, &Request::List).unwrap();
                assert!(matches!(r, Response::Listing(ref l) if l.services.len() == 1));
                t.elapsed()
            })
        })
        .collect();
    let mut times: Vec<Duration> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    times.sort();
    let (median, worst) = (times[25], times[49]);
    eprintln!("50 listings beside a slow client: median {median:?}, worst {worst:?}");
    assert!(worst < Duration::from_secs(1), "worst {worst:?}");
    let (line, took) = slow.join().unwrap();
    let e = error_of(&line);
    assert!(
        e.starts_with("incomplete request: no whole line within 2 s"),
        "{e}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    served.stop();
}

/// A client that asks for a big answer and never reads it: others go on
/// being served, and the server lets go of it after its write timeout.
#[test]
fn a_client_that_never_reads_is_let_go() {
    let served = Served::start(
        "noread",
        1,
        SocketLimits {
            max_request: 4 << 20,
            // Long enough that requests served while the stuck client
            // blocks its writer finish well inside it, even on a loaded
            // machine; a server that queued them behind it would not.
            write_timeout: Duration::from_secs(2),
            ..short_limits()
        },
    );
    let cmds: Vec<Command> = (1..=3000)
        .map(|p| Command::AddService(service(p)))
        .collect();
    assert!(matches!(
        served.ask(&Request::ApplyAll(cmds.clone())),
        Response::Ok
    ));
    let mut stuck = UnixStream::connect(&served.path).unwrap();
    stuck.write_all(b"\"List\"\n").unwrap();
    // Let the server fill the socket's buffer and block on it.
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    for _ in 0..5 {
        assert!(matches!(
            served.ask(&Request::GetTimeouts),
            Response::Timeouts(_)
        ));
    }
    assert!(matches!(
        served.ask(&Request::Apply(Command::DelService(service(1).key))),
        Response::Ok
    ));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Past its write timeout the server gives up on the stuck client and
    // closes: what it reads then ends, cut short. (The answer to 3000
    // services takes a loaded machine a while to build before its first
    // write blocks: hence the margin.)
    std::thread::sleep(Duration::from_millis(4500).saturating_sub(t.elapsed()));
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    stuck.read_to_end(&mut got).unwrap();
    assert!(
        !got.is_empty() && !got.ends_with(b"\n"),
        "cut short: {} bytes",
        got.len()
    );
    assert!(serde_json::from_slice::<Response>(&got).is_err());
    served.stop();
}

/// Garbage, oversized and half-sent requests each get an error, and change
/// nothing: the workers get no message, the table stays as it was.
#[test]
fn bad_requests_get_errors_and_change_nothing() {
    let served = Served::start("bad", 1, short_limits());
    assert!(matches!(
        served.ask(&Request::Apply(Command::AddService(service(80)))),
        Response::Ok
    ));
    let before = served.ask(&Request::List);
    let e = error_of(&served.raw(b"{not json\n", false));
    assert!(e.starts_with("malformed request: "), "{e}");
    assert!(e.ends_with("; nothing was changed"), "{e}");
    // A valid request of the wrong shape.
    let e = error_of(&served.raw(b"{\"Apply\":{\"AddService\":42}}\n", false));
    assert!(e.starts_with("malformed request: "), "{e}");
    // Not UTF-8.
    let e = error_of(&served.raw(b"\"Li\xffst\"\n", false));
    assert!(e.starts_with("malformed request: "), "{e}");
    // Longer than the limit, with or without a newline at its end.
    let mut big = vec![b'x'; 100 << 10];
    let e = error_of(&served.raw(&big, false));
    assert_eq!(e, "request longer than 65536 bytes; nothing was changed");
    big.push(b'\n');
    let e = error_of(&served.raw(&big, true));
    assert_eq!(e, "request longer than 65536 bytes; nothing was changed");
    // What a client sees when it sends too much: the answer, not EPIPE.
    let cmds: Vec<Command> = (1..=3000)
        .map(|p| Command::AddService(service(p)))
        .collect();
    match served.ask(&Request::ApplyAll(cmds)) {
        Response::Error(e) => assert_eq!(e, "request longer than 65536 bytes; nothing was changed"),
        r => panic!("{r:?}"),
    }
    // Half a request, then nothing (the deadline), or then the end.
    let t = Instant::now();
    let e = error_of(&served.raw(b"{\"Apply\":{\"DelService\"", false));
    assert!(
        e.starts_with("incomplete request: no whole line within 0.6 s"),
        "{e}"
    );
    assert!(t.elapsed() >= Duration::from_millis(600));
    let e = error_of(&served.raw(b"\"List\"", true));
    assert!(
        e.starts_with("incomplete request: the connection ended"),
        "{e}"
    );
    assert_eq!(
        format!("{:?}", served.ask(&Request::List)),
        format!("{before:?}")
    );
    let srv = served.stop();
    assert_eq!(srv.workers[0].sent, 1, "only the one good change was sent");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random bytes, with or without a newline: an error each time, and the
    /// table unchanged.
    #[test]
    fn random_bytes_get_errors(blobs in proptest::collection::vec(
        (proptest::collection::vec(any::<u8>(), 0..600), any::<bool>()), 1..8))
    {
        let served = Served::start("random", 1, SocketLimits {
            request_deadline: Duration::from_millis(200),
            ..short_limits()
        });
        for (mut b, newline) in blobs {
            b.retain(|&c| c != b'\n');
            if newline {
                b.push(b'\n');
            }
            let e = error_of(&served.raw(&b, true));
            prop_assert!(
                e.starts_with("malformed request")
                    || e.starts_with("incomplete request")
                    || e.starts_with("request longer"),
                "{}", e
            );
        }
        let srv = served.stop();
        prop_assert_eq!(srv.workers[0].sent, 0);
        prop_assert!(srv.director().is_empty());
    }
}

/// More clients than the bound at once: the extra one is told so at once,
/// and served once the others are gone.
#[test]
fn clients_beyond_the_bound_are_refused_politely() {
    let served = Served::start(
        "bound",
        1,
        SocketLimits {
            max_clients: 3,
            request_deadline: Duration::from_secs(10),
            ..short_limits()
        },
    );
    let mut idle: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&served.path).unwrap())
        .collect();
    // Once the server holds the three idle clients, a fourth is refused.
    // One of them may have been refused itself, while wait_ready's probe
    // still counted: such a one has an answer (or EOF) waiting, and is
    // replaced.
    let t = Instant::now();
    let e = loop {
        for c in idle.iter_mut() {
            c.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let refused =
                !matches!(c.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
            if refused {
                *c = UnixStream::connect(&served.path).unwrap();
            }
        }
        let line = served.raw(b"\"List\"\n", false);
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Listing(_)) if t.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => break error_of(&line),
        }
    };
    assert_eq!(e, "rvsd is serving 3 clients already; try again shortly");
    drop(idle);
    let t = Instant::now();
    loop {
        match client::request(&served.path, &Request::List).unwrap() {
            Response::Listing(_) => break,
            Response::Error(e) if e.contains("already") => {
                assert!(t.elapsed() < Duration::from_secs(2));
                std::thread::sleep(Duration::from_millis(20));
            }
            r => panic!("{r:?}"),
        }
    }
    served.stop();
}

/// `-Lc` over the socket: the workers' rows streamed in chunks, at most
/// the limit of them, and whether the limit cut the list.
#[test]
fn connections_are_streamed_with_a_bound() {
    let served = Served::start("conns", 2, short_limits());
    let dest = DestSpec {
        addr: "192.168.1.220".parse().unwrap(),
        port: 80,
        fwd: FwdMethod::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    };
    assert!(matches!(
        served.ask(&Request::ApplyAll(vec![
            Command::AddService(service(80)),
            Command::AddDest(service(80).key, dest),
        ])),
        Response::Ok
    ));
    let n = 5000u32;
    for i in 0..n {
        // Each worker takes the flows it owns; the other one hands them
        // over, which the stand-ins do not do: send each to both.
        for w in &served._workers {
            w.frames.send(syn(i)).unwrap();
        }
    }
    let t = Instant::now();
    let count = || match served.ask(&Request::ListConns { limit: 100_000 }) {
        Response::Conns(rows, truncated) => (rows.len(), truncated),
        r => panic!("{r:?}"),
    };
    while count().0 < n as usize {
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", count());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(), (n as usize, false));
    match served.ask(&Request::ListConns { limit: 1234 }) {
        Response::Conns(rows, truncated) => {
            assert_eq!(rows.len(), 1234);
            assert!(truncated);
            assert!(rows.iter().all(|r| r.state == "SYN_RECV"));
        }
        r => panic!("{r:?}"),
    }
    // Exactly as many as there are: not cut.
    match served.ask(&Request::ListConns { limit: n as usize }) {
        Response::Conns(rows, truncated) => assert_eq!((rows.len(), truncated), (5000, false)),
        r => panic!("{r:?}"),
    }
    served.stop();
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// The socket's file: made 0600 (0660 and the group's with a group),
/// replacing only a stale socket; removed at the end unless it is no
/// longer ours.
#[test]
fn the_socket_file_is_made_safely() {
    let dir = test_dir("bind");
    let path = dir.join("sub").join("rvsd.sock");
    let s = bind(&path, None).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    // Another rvsd answering there: refused.
    let e = bind(&path, None).err().unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    drop(s);
    assert!(!path.exists(), "removed at the end");

    // A stale socket (its daemon died) is replaced.
    let stale = UnixListener::bind(&path).unwrap();
    drop(stale);
    assert!(path.exists());
    let group = nix::unistd::Group::from_gid(nix::unistd::getegid())
        .unwrap()
        .unwrap();
    let s = bind(&path, Some(&group.name)).unwrap();
    assert_eq!(mode_of(&path), 0o660);
    assert_eq!(std::fs::metadata(&path).unwrap().gid(), group.gid.as_raw());
    // Replaced behind rvsd's back: the successor's file stays.
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    drop(s);
    assert!(path.exists(), "not ours any more: left alone");
    drop(other);
    std::fs::remove_file(&path).unwrap();

    // Anything else at the path is left alone and refused.
    std::fs::write(&path, b"precious").unwrap();
    let e = bind(&path, None).err().unwrap();
    assert!(e.to_string().contains("is not a socket"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
    let target = dir.join("target");
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = bind(&path, None).err().unwrap();
    assert!(e.to_string().contains("a symbolic link"), "{e}");
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let e = bind(&path, None).err().unwrap();
    assert!(e.to_string().contains("a directory"), "{e}");
    // No private directory is left behind.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Template expiry runs on its own timer: a template that expired goes
/// within about a second even while the control thread is busy waiting for
/// a worker that does not answer.
#[test]
fn templates_expire_on_their_own_timer() {
    let templates = Arc::new(Templates::new());
    // One worker that never applies anything: a change keeps the control
    // thread waiting for it (3 s here).
    let (tx, _never_read) = crossbeam_channel::unbounded();
    let link = WorkerLink::new(tx, Arc::new(WorkerShared::default()), 7);
    let dir = test_dir("tpl");
    let path = dir.join("rvsd.sock");
    let socket = bind(&path, None).unwrap();
    let mut srv = ControlServer::new(vec![link], 4096, templates.clone());
    srv.ack_timeout = Duration::from_secs(3);
    let stop = Arc::new(AtomicBool::new(false));
    let t = std::thread::spawn({
        let stop = stop.clone();
        move || srv.serve(&socket, &stop).unwrap()
    });
    let busy = std::thread::spawn({
        let path = path.clone();
        move || {
            let t = Instant::now();
            while UnixStream::connect(&path).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let r = client::request(&path, &Request::Apply(Command::AddService(service(80))));
            (r.unwrap(), t.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    // An expired template, controlling no connection.
    let spec = DestSpec {
        addr: "192.168.1.220".parse().unwrap(),
        port: 80,
        fwd: FwdMethod::Route,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
    };
    let d = rvs_ipvs::Dest {
        spec,
        last_weight: 1,
        shared: rvs_ipvs::DestShared::new(&spec),
    };
    let key = rvs_ipvs::persist::TemplateKey::new(
        Protocol::Tcp,
        "10.1.1.1".parse().unwrap(),
        PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
        "192.168.1.10".parse().unwrap(),
        80,
    );
    templates.create(key, &d);
    let since = Instant::now();
    while !templates.is_empty() {
        assert!(
            since.elapsed() < Duration::from_millis(1500),
            "the sweep waited for the control thread"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, took) = busy.join().unwrap();
    assert!(matches!(r, Response::Late(_)), "{r:?}");
    assert!(
        took >= Duration::from_secs(3),
        "the control thread was busy: {took:?}"
    );
    stop.store(true, Ordering::Relaxed);
    t.join().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
