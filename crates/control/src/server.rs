//! rvsd's side of the socket: validate, replay on every worker, wait.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rvs_dataplane::counters::BURST_BOUNDS_NS;
use rvs_dataplane::{ConnRow, WorkerMsg, WorkerShared};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::stats::Estimator;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Command, Director};

use crate::proto::{
    DestView, Histogram, Listing, PortStatus, Request, Response, ServiceView, Status,
    WorkerCounters, WorkerStatus,
};
use crate::stats::{Retirement, StatsBook};

/// Requests from other threads of rvsd (the metrics server), each with
/// where to send the answer; served between socket requests.
pub type Inbox = Receiver<(Request, Sender<Response>)>;

/// Reads the ports' own counters (`rte_eth_stats`), for the metrics.
pub type PortReader = Box<dyn Fn() -> Vec<PortStatus>>;

mod reload;
pub use reload::{DesiredTable, KeepalivedClaim, ReloadPlan, Reloader};

/// The control thread's handle on one worker.
pub struct WorkerLink {
    pub tx: Sender<WorkerMsg>,
    pub shared: Arc<WorkerShared>,
    pub lcore: u32,
    sent: u64,
}

impl WorkerLink {
    pub fn new(tx: Sender<WorkerMsg>, shared: Arc<WorkerShared>, lcore: u32) -> WorkerLink {
        WorkerLink {
            tx,
            shared,
            lcore,
            sent: 0,
        }
    }
}

/// The authoritative replica of the configuration and the links to the
/// workers that hold the others.
pub struct ControlServer {
    director: Director,
    workers: Vec<WorkerLink>,
    conn_table_size: u64,
    ack_timeout: Duration,
    templates: Arc<Templates>,
    timeouts: Timeouts,
    reload: reload::ReloadState,
    stats: StatsBook,
    /// Deleted dests and services whose counts are folded in once every
    /// worker has applied the deletion.
    retiring: Vec<Retirement>,
    ports: Option<PortReader>,
    inbox: Option<Inbox>,
    /// rvs-keepalived's status file, for the real servers' health in the
    /// metrics and the status page.
    health_file: Option<std::path::PathBuf>,
}

/// Longest request line accepted; anything longer is refused.
const MAX_REQUEST: u64 = 4 << 20;

impl ControlServer {
    pub fn new(
        workers: Vec<WorkerLink>,
        conn_table_size: u64,
        templates: Arc<Templates>,
    ) -> ControlServer {
        let n = workers.len();
        ControlServer {
            director: Director::with_stats_lanes(n),
            workers,
            conn_table_size,
            ack_timeout: Duration::from_secs(5),
            templates,
            timeouts: Timeouts::default(),
            reload: reload::ReloadState::default(),
            stats: StatsBook::new(n),
            retiring: Vec::new(),
            ports: None,
            inbox: None,
            health_file: None,
        }
    }

    /// Where the ports' counters come from (rvsd reads them from DPDK).
    pub fn with_ports(mut self, ports: PortReader) -> Self {
        self.ports = Some(ports);
        self
    }

    /// Requests from rvsd's other threads, answered on this one.
    pub fn with_inbox(mut self, inbox: Inbox) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Where rvs-keepalived writes its status (`[control]
    /// keepalived_status`): the real servers' health joins the status.
    pub fn with_health_file(mut self, path: std::path::PathBuf) -> Self {
        self.health_file = Some(path);
        self
    }

    /// rvs-keepalived's health state, while its status file names a running
    /// process (a SIGKILLed one leaves its file behind, and what the file
    /// says then no longer holds).
    fn health(&self) -> Option<rvs_control_proto::health::HealthStatus> {
        let s = rvs_control_proto::health::read(self.health_file.as_ref()?).ok()?;
        std::path::Path::new(&format!("/proc/{}", s.pid))
            .exists()
            .then_some(s)
    }

    /// The director's own IPv4 networks, whose broadcast addresses cannot be
    /// real servers.
    pub fn with_local_networks(mut self, nets: &[(std::net::Ipv4Addr, u8)]) -> Self {
        self.director.set_local_networks(nets);
        self
    }

    /// Starts with these timeouts (rvsd's configured SYN_RECV, say).
    pub fn with_timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Sends a message to every worker, counting it for `wait_applied`.
    fn broadcast(&mut self, msg: impl Fn() -> WorkerMsg) {
        for w in &mut self.workers {
            if w.tx.send(msg()).is_ok() {
                w.sent += 1;
            }
        }
    }

    pub fn director(&self) -> &Director {
        &self.director
    }

    /// Answers one request.
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Apply(cmd) => match self.apply(&cmd) {
                Ok(()) => self.wait_applied(),
                Err(e) => Response::Error(e),
            },
            Request::ApplyAll(cmds) => {
                for cmd in &cmds {
                    if let Err(e) = self.apply(cmd) {
                        // What was applied before stays, as with ipvsadm -R.
                        let _ = self.wait_applied();
                        return Response::Error(e);
                    }
                }
                self.wait_applied()
            }
            Request::Zero(None) => {
                self.stats.zero_all(&self.director);
                Response::Ok
            }
            Request::Zero(Some(k)) => {
                if self.stats.zero_service(&self.director, &k) {
                    Response::Ok
                } else {
                    Response::Error(rvs_ipvs::IpvsError::NoSuchService.to_string())
                }
            }
            Request::Totals => Response::Totals(self.stats.totals(&self.director)),
            Request::Status => Response::Status(Box::new(self.status())),
            Request::Restore(cmds) => {
                let errors: Vec<String> = cmds.iter().filter_map(|c| self.apply(c).err()).collect();
                match self.wait_applied() {
                    Response::Ok => Response::Restored(errors),
                    other => other,
                }
            }
            Request::List => Response::Listing(self.listing()),
            Request::SetTimeouts { tcp, tcpfin, udp } => {
                let t = &mut self.timeouts;
                for (v, slot) in [
                    (tcp, &mut t.tcp),
                    (tcpfin, &mut t.tcp_fin),
                    (udp, &mut t.udp),
                ] {
                    if v != 0 {
                        *slot = v;
                    }
                }
                let t = self.timeouts;
                self.broadcast(|| WorkerMsg::SetTimeouts(t));
                self.wait_applied()
            }
            Request::GetTimeouts => Response::Timeouts(self.timeouts),
            Request::Reload => self.reload(),
            Request::ListConns { limit } => self.list_conns(limit),
            Request::Counters => Response::Counters(
                self.workers
                    .iter()
                    .enumerate()
                    .map(|(i, w)| WorkerCounters {
                        worker: i,
                        lcore: w.lcore,
                        counters: w.shared.counters.snapshot(),
                    })
                    .collect(),
            ),
        }
    }

    fn apply(&mut self, cmd: &Command) -> Result<(), String> {
        let retiring = StatsBook::retirement(&self.director, cmd);
        let change = self.director.apply(cmd).map_err(|e| e.to_string())?;
        self.retiring.extend(retiring);
        self.retiring.extend(StatsBook::added(&change));
        log::info!("applied {cmd:?}");
        // A worker that has exited drops its receiver; nothing to do then.
        self.broadcast(|| WorkerMsg::Change(change.clone()));
        Ok(())
    }

    /// Every worker's connections, then the persistence templates.
    fn list_conns(&mut self, limit: usize) -> Response {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.broadcast(|| WorkerMsg::ListConns(tx.clone(), limit));
        drop(tx);
        let mut rows = Vec::new();
        let deadline = Instant::now() + self.ack_timeout;
        for _ in 0..self.workers.len() {
            match rx.recv_deadline(deadline) {
                Ok(r) => rows.extend(r),
                Err(_) => return Response::Error("a worker did not answer in time".into()),
            }
        }
        let now = rvs_ipvs::clock::now_ms();
        for (k, t) in self.templates.snapshot() {
            rows.push(ConnRow {
                protocol: k.protocol,
                caddr: k.cnet,
                cport: 0,
                vaddr: k.vaddr,
                vport: k.vport,
                daddr: t.daddr,
                dport: t.dport,
                state: t.state_name().into(),
                expires_s: t.expires_ms().saturating_sub(now) / 1000,
            });
        }
        let truncated = rows.len() > limit;
        rows.truncate(limit);
        Response::Conns(rows, truncated)
    }

    /// Waits until every worker applied everything sent to it; then the
    /// counts of what they deleted are folded in.
    fn wait_applied(&mut self) -> Response {
        let r = self.wait_workers();
        for x in self.retiring.drain(..) {
            self.stats.retire(x);
        }
        r
    }

    fn wait_workers(&self) -> Response {
        let deadline = Instant::now() + self.ack_timeout;
        for w in &self.workers {
            while w.shared.applied.load(Ordering::Acquire) < w.sent {
                if Instant::now() > deadline {
                    return Response::Error(format!(
                        "worker on lcore {} did not apply the change within {:?}",
                        w.lcore, self.ack_timeout
                    ));
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        Response::Ok
    }

    pub fn listing(&self) -> Listing {
        Listing {
            conn_table_size: self.conn_table_size,
            services: self
                .director
                .services()
                .map(|s| {
                    let (stats, rates) = self.stats.service(s);
                    ServiceView {
                        spec: s.spec.clone(),
                        dests: s
                            .dests
                            .iter()
                            .map(|d| {
                                let (stats, rates) =
                                    self.stats.dest(&s.spec.key, d.key(), &d.shared);
                                DestView {
                                    spec: d.spec,
                                    active: d.shared.active(),
                                    inactive: d.shared.inactive(),
                                    persistent: d
                                        .shared
                                        .persistconns
                                        .load(std::sync::atomic::Ordering::Relaxed),
                                    stats,
                                    rates,
                                }
                            })
                            .collect(),
                        stats,
                        rates,
                    }
                })
                .collect(),
        }
    }

    /// Everything the metrics and the status page show, the real servers'
    /// health from rvs-keepalived's status file included.
    pub fn status(&self) -> Status {
        let n = self.workers.len().max(1) as u64;
        Status {
            listing: self.listing(),
            totals: self.stats.totals(&self.director),
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let (counts, sum_ns) = w.shared.bursts.snapshot();
                    WorkerStatus {
                        worker: i,
                        lcore: w.lcore,
                        counters: w.shared.counters.snapshot(),
                        conn_capacity: self.conn_table_size / n,
                        bursts: Histogram {
                            bounds_ns: BURST_BOUNDS_NS.to_vec(),
                            counts,
                            sum_ns,
                        },
                    }
                })
                .collect(),
            ports: self.ports.as_ref().map(|f| f()).unwrap_or_default(),
            health: self.health(),
        }
    }

    /// Serves requests until `stop` is set. Requests are short, so they are
    /// answered one at a time on this thread.
    pub fn serve(&mut self, listener: &UnixListener, stop: &AtomicBool) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let mut last_sweep = Instant::now();
        let mut next_tick = Instant::now() + Estimator::TICK;
        while !stop.load(Ordering::Relaxed) {
            // Persistence templates expire here, off the fast path.
            if last_sweep.elapsed() >= Duration::from_secs(1) {
                self.templates.sweep(rvs_ipvs::clock::now_ms());
                last_sweep = Instant::now();
            }
            // The rate estimator's tick, every 2 s as the kernel's timer.
            if Instant::now() >= next_tick {
                self.stats.tick(&self.director);
                next_tick += Estimator::TICK;
                // After a stall (a suspended process), no burst of ticks.
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + Estimator::TICK;
                }
            }
            let asked: Vec<_> = self
                .inbox
                .as_ref()
                .map(|rx| rx.try_iter().collect())
                .unwrap_or_default();
            for (req, reply) in asked {
                // The asker may have given up waiting; fine.
                let _ = reply.send(self.handle(req));
            }
            self.reload_if_signalled();
            match listener.accept() {
                Ok((s, _)) => {
                    if let Err(e) = self.serve_one(s) {
                        log::warn!("control connection: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn serve_one(&mut self, s: UnixStream) -> std::io::Result<()> {
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        BufReader::new((&s).take(MAX_REQUEST)).read_line(&mut line)?;
        let resp = match serde_json::from_str::<Request>(&line) {
            Ok(req) => self.handle(req),
            Err(e) => Response::Error(format!("malformed request: {e}")),
        };
        let mut out = serde_json::to_string(&resp).expect("responses serialise");
        out.push('\n');
        (&s).write_all(out.as_bytes())
    }
}

/// Binds the control socket, creating its directory and replacing a stale
/// socket file left by a daemon that died. Refuses if another rvsd answers.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another rvsd is listening on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ipvs::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};

    fn spec() -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                protocol: Protocol::Tcp,
                addr: "192.168.1.10".parse().unwrap(),
                port: 80,
            },
            scheduler: "rr".into(),
            sched_flags: 0,
            persistent: None,
            netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            one_packet: false,
        }
    }

    #[test]
    fn changes_reach_workers_and_errors_do_not() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(WorkerShared::default());
        let mut srv = ControlServer::new(
            vec![WorkerLink::new(tx, shared.clone(), 1)],
            4096,
            Arc::default(),
        );
        srv.ack_timeout = Duration::from_millis(200);
        // A stand-in worker that acknowledges what it receives.
        let acker = std::thread::spawn(move || {
            let mut n = 0;
            while let Ok(_m) = rx.recv() {
                n += 1;
                shared.applied.fetch_add(1, Ordering::Release);
            }
            n
        });
        assert!(matches!(
            srv.handle(Request::Apply(Command::AddService(spec()))),
            Response::Ok
        ));
        match srv.handle(Request::Apply(Command::AddService(spec()))) {
            Response::Error(e) => assert_eq!(e, "Service already exists"),
            r => panic!("{r:?}"),
        }
        let d = DestSpec {
            addr: "192.168.1.220".parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        assert!(matches!(
            srv.handle(Request::Apply(Command::AddDest(spec().key, d))),
            Response::Ok
        ));
        let l = srv.listing();
        assert_eq!(l.services.len(), 1);
        assert_eq!(l.services[0].dests.len(), 1);
        drop(srv);
        assert_eq!(acker.join().unwrap(), 2, "only valid changes were sent");
    }

    #[test]
    fn zero_totals_and_status_requests() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(WorkerShared::default());
        let mut srv = ControlServer::new(
            vec![WorkerLink::new(tx, shared.clone(), 1)],
            4096,
            Arc::default(),
        )
        .with_ports(Box::new(|| {
            vec![PortStatus {
                name: "lan".into(),
                imissed: 3,
                ..PortStatus::default()
            }]
        }));
        let acker = std::thread::spawn({
            let shared = shared.clone();
            move || {
                while rx.recv().is_ok() {
                    shared.applied.fetch_add(1, Ordering::Release);
                }
            }
        });
        srv.handle(Request::Apply(Command::AddService(spec())));
        let d = rvs_ipvs::DestSpec {
            addr: "192.168.1.220".parse().unwrap(),
            port: 80,
            fwd: rvs_ipvs::FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        srv.handle(Request::Apply(Command::AddDest(spec().key, d)));
        // The worker's lane of the dest, as the dataplane counts into it.
        let lane = |srv: &ControlServer| {
            let svc = srv.director().service(&spec().key).unwrap();
            svc.dests[0].shared.stats.clone()
        };
        lane(&srv).lane(0).unwrap().count_conn();
        lane(&srv).lane(0).unwrap().count_in(60);
        match srv.handle(Request::Totals) {
            Response::Totals(t) => {
                assert_eq!((t.stats.conns, t.stats.inpkts, t.stats.inbytes), (1, 1, 60));
                assert_eq!(t.workers.len(), 1);
            }
            r => panic!("{r:?}"),
        }
        let missing = ServiceKey {
            port: 81,
            ..spec().key
        };
        match srv.handle(Request::Zero(Some(missing))) {
            Response::Error(e) => assert_eq!(e, "No such service"),
            r => panic!("{r:?}"),
        }
        assert!(matches!(srv.handle(Request::Zero(None)), Response::Ok));
        match srv.handle(Request::Status) {
            Response::Status(s) => {
                assert_eq!(s.totals.stats, rvs_ipvs::stats::Stats::default());
                assert_eq!(s.totals.workers[0].inpkts, 1, "per worker: raw");
                assert_eq!(s.listing.services[0].dests[0].stats.conns, 0);
                assert_eq!(s.workers.len(), 1);
                assert_eq!(s.workers[0].conn_capacity, 4096);
                assert_eq!(
                    s.workers[0].bursts.counts.len(),
                    s.workers[0].bursts.bounds_ns.len() + 1
                );
                assert_eq!(s.ports[0].imissed, 3);
            }
            r => panic!("{r:?}"),
        }
        drop(srv);
        acker.join().unwrap();
    }

    #[test]
    fn silent_worker_times_out_with_a_message() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let mut srv = ControlServer::new(
            vec![WorkerLink::new(tx, Arc::new(WorkerShared::default()), 3)],
            4096,
            Arc::default(),
        );
        srv.ack_timeout = Duration::from_millis(50);
        match srv.handle(Request::Apply(Command::AddService(spec()))) {
            Response::Error(e) => assert!(e.contains("lcore 3"), "{e}"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn malformed_request_gets_an_error_line() {
        let dir = std::env::temp_dir().join(format!("rvs-ctl-test-{}", std::process::id()));
        let path = dir.join("s.sock");
        let listener = bind(&path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let t = std::thread::spawn(move || {
            let mut srv = ControlServer::new(vec![], 4096, Arc::default());
            srv.serve(&listener, &stop2).unwrap();
        });
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(b"{not json\n").unwrap();
        let mut reply = String::new();
        BufReader::new(&s).read_line(&mut reply).unwrap();
        let r: Response = serde_json::from_str(&reply).unwrap();
        assert!(matches!(r, Response::Error(ref e) if e.starts_with("malformed request")));
        // The server is still there and answers a good request.
        let r = crate::client::request(&path, &Request::List).unwrap();
        assert!(matches!(r, Response::Listing(_)));
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
