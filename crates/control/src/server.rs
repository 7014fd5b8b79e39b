//! rvsd's side of the socket: validate, replay on every worker, wait.
//!
//! Why this file is long (about 900 lines): the request handling is about
//! 600 lines; the rest is its tests (the socket and reloads have their own
//! files).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rvs_dataplane::counters::BURST_BOUNDS_NS;
use rvs_dataplane::{ConnListing, WorkerMsg, WorkerShared};
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
pub type PortReader = Box<dyn Fn() -> Vec<PortStatus> + Send>;

mod reload;
mod socket;
pub use reload::{DesiredTable, KeepalivedClaim, ReloadPlan, Reloader};
pub use socket::{bind, Access, ControlSocket, Peer, SocketLimits};
use socket::{Acceptor, Job, Reply};

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
    limits: SocketLimits,
    /// The SYN-flood defence's settings (`[defense]`), for `--defense`.
    defense: rvs_ipvs::defense::DefenseConfig,
    /// `rvsadm --drain`: what [`Request::Announcement`] reports.
    draining: bool,
    /// The connection sync daemons (`--start-daemon`); none without
    /// [`ControlServer::with_sync`].
    sync: Option<crate::sync::SyncDaemons>,
}

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
            limits: SocketLimits::default(),
            defense: Default::default(),
            draining: false,
            sync: None,
        }
    }

    /// The SYN-flood defence's settings the workers were given.
    pub fn with_defense(mut self, defense: rvs_ipvs::defense::DefenseConfig) -> Self {
        self.defense = defense;
        self
    }

    /// `--defense`: the settings, and each worker's last decision.
    fn defense(&self) -> rvs_control_proto::proto::DefenseView {
        use rvs_dataplane::counters::DropReason;
        let n = self.workers.len().max(1) as u64;
        rvs_control_proto::proto::DefenseView {
            config: self.defense,
            workers: self
                .workers
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let c = &w.shared.counters;
                    rvs_control_proto::proto::WorkerDefense {
                        worker: i,
                        lcore: w.lcore,
                        conn_capacity: self.conn_table_size / n,
                        // A worker holds the lock only to copy a value in.
                        level: w.shared.defense.lock().map(|l| *l).unwrap_or_default(),
                        half_open_reclaimed: c.half_open_reclaimed.get(),
                        entries_dropped: c.entries_dropped.get(),
                        packets_dropped: c.drops(DropReason::Defense),
                    }
                })
                .collect(),
        }
    }

    /// The ports the sync daemon may use (rvsd's), and how workers own
    /// client endpoints (a backup hands each connection to its owner).
    pub fn with_sync(mut self, daemons: crate::sync::SyncDaemons) -> Self {
        self.sync = Some(daemons);
        self
    }

    fn worker_queues(&self) -> Vec<Sender<rvs_dataplane::WorkerMsg>> {
        self.workers.iter().map(|w| w.tx.clone()).collect()
    }

    /// The control socket's deadlines and bounds (tests shorten them).
    pub fn with_socket_limits(mut self, limits: SocketLimits) -> Self {
        self.limits = limits;
        self
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

    /// Answers one request. A `ListConns` is put together here, waiting
    /// for the workers (the socket streams it instead, see `socket.rs`).
    pub fn handle(&mut self, req: Request) -> Response {
        match self.answer(req) {
            Reply::Response(r) => r,
            Reply::Conns {
                rows,
                limit,
                templates: _,
            } => {
                let mut all: Vec<_> = Vec::new();
                while let Ok(chunk) = rows.recv_timeout(self.ack_timeout) {
                    all.extend(chunk);
                }
                let truncated = all.len() > limit;
                all.truncate(limit);
                Response::Conns(all, truncated)
            }
        }
    }

    /// Answers one request as the socket needs it.
    fn answer(&mut self, req: Request) -> Reply {
        Reply::Response(match req {
            Request::ListConns { limit } => return self.list_conns(limit),
            Request::Apply(cmd) => match self.apply(&cmd) {
                Ok(()) => self.wait_applied(),
                Err(e) => Response::Error(e),
            },
            Request::ApplyAll(cmds) => match cmds.iter().try_for_each(|c| self.apply(c)) {
                Ok(()) => self.wait_applied(),
                Err(e) => {
                    // What was applied before stays, as with ipvsadm -R.
                    let _ = self.wait_applied();
                    Response::Error(e)
                }
            },
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
            Request::Defense => Response::Defense(self.defense()),
            Request::SetDrain(on) => {
                if on != self.draining {
                    log::info!(
                        "{}",
                        if on {
                            "draining: the VIPs are no longer announced"
                        } else {
                            "drain ended: the VIPs are announced again"
                        }
                    );
                }
                self.draining = on;
                Response::Ok
            }
            Request::StartDaemon(d) => {
                let queues = self.worker_queues();
                match self.sync.as_mut() {
                    None => Response::Error("No such device".into()),
                    Some(s) => match s.start(&d, &queues) {
                        Ok(()) => Response::Ok,
                        Err(e) => Response::Error(e),
                    },
                }
            }
            Request::StopDaemon(role) => {
                let queues = self.worker_queues();
                match self.sync.as_mut().map(|s| s.stop(role, &queues)) {
                    Some(Ok(())) => Response::Ok,
                    Some(Err(e)) => Response::Error(e),
                    None => Response::Error("No daemon is running".into()),
                }
            }
            Request::Daemons => {
                Response::Daemons(self.sync.as_ref().map(|s| s.views()).unwrap_or_default())
            }
            Request::Announcement => Response::Announcement(
                rvs_control_proto::announce::Announcement::of(&self.listing(), self.draining),
            ),
            Request::Restore(cmds) => {
                let mut errors: Vec<String> =
                    cmds.iter().filter_map(|c| self.apply(c).err()).collect();
                match self.wait_applied() {
                    Response::Error(e) => Response::Error(e),
                    Response::Late(m) => {
                        errors.push(m);
                        Response::Restored(errors)
                    }
                    _ => Response::Restored(errors),
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
        })
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

    /// `-Lc`: every worker walks its table a slice per poll loop and sends
    /// its rows (one more than `limit`, which says whether the limit cut
    /// the list) to whoever reads `rows`; the persistence templates follow.
    /// Nothing here waits for them.
    fn list_conns(&mut self, limit: usize) -> Reply {
        // A few chunks per worker in flight; a worker whose chunk finds no
        // room keeps it for its next loop.
        let (tx, rx) = crossbeam_channel::bounded(2 * self.workers.len().max(1));
        let listing = ConnListing {
            rows: tx,
            limit: limit.saturating_add(1),
        };
        self.broadcast(|| WorkerMsg::ListConns(listing.clone()));
        drop(listing);
        Reply::Conns {
            rows: rx,
            limit,
            templates: self.templates.clone(),
        }
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

    /// The change is made on the control replica and sent to every worker
    /// when this is called: a slow worker does not undo it, so that is
    /// `Late`, not an error (a client that took it for a failure and tried
    /// again would be told "already exists"). A worker that stopped is an
    /// error: rvsd stops too (`serve` sees it).
    fn wait_workers(&self) -> Response {
        let deadline = Instant::now() + self.ack_timeout;
        for w in &self.workers {
            while w.shared.applied.load(Ordering::Acquire) < w.sent {
                if w.shared.exited.load(Ordering::Acquire) {
                    // Still an error (rvsd stops, and the change with
                    // it), but not one that says the change was refused.
                    return Response::Error(format!(
                        "the change is made on rvsd's table, but the worker on lcore {} \
                         has stopped; rvsd is stopping",
                        w.lcore
                    ));
                }
                if Instant::now() > deadline {
                    let msg = format!(
                        "the change is made, but the worker on lcore {} had not applied it \
                         within {:?}; it will, in order",
                        w.lcore, self.ack_timeout
                    );
                    log::warn!("{msg}");
                    return Response::Late(msg);
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        Response::Ok
    }

    /// A worker that ended before rvsd told it to: rvsd cannot go on
    /// without it.
    fn stopped_worker(&self) -> Option<String> {
        self.workers
            .iter()
            .find(|w| w.shared.exited.load(Ordering::Acquire))
            .map(|w| format!("the worker on lcore {} stopped", w.lcore))
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

    /// Serves the control socket until `stop` is set, or until a worker
    /// stops on its own (an error: rvsd must stop then).
    ///
    /// Each client is read and answered on a thread of its own, under
    /// deadlines (`socket.rs`); this thread only answers complete requests,
    /// one at a time, so every configuration change reaches the replicas in
    /// one order, and a slow client delays no one. The persistence
    /// templates expire on a timer thread of their own.
    pub fn serve(&mut self, socket: &ControlSocket, stop: &AtomicBool) -> std::io::Result<()> {
        let (jobs_tx, jobs) = crossbeam_channel::unbounded::<Job>();
        let acceptor = Acceptor::start(socket, jobs_tx, self.limits.clone())?;
        let sweeper = TemplateSweeper::start(self.templates.clone())?;
        let inbox = self.inbox.clone().unwrap_or_else(crossbeam_channel::never);
        let mut next_tick = Instant::now() + Estimator::TICK;
        let outcome = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if let Some(msg) = self.stopped_worker() {
                break Err(std::io::Error::other(msg));
            }
            // Wake for the estimator's tick, and often enough to see the
            // stop flag and SIGHUP's.
            let wait = next_tick
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            crossbeam_channel::select! {
                recv(jobs) -> job => {
                    if let Ok(Job { req, reply }) = job {
                        // The client's thread may have gone; fine.
                        let _ = reply.send(self.answer(req));
                    }
                }
                recv(inbox) -> asked => {
                    if let Ok((req, reply)) = asked {
                        let _ = reply.send(self.handle(req));
                    }
                }
                default(wait) => {}
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
            self.reload_if_signalled();
        };
        drop(acceptor);
        drop(sweeper);
        outcome
    }
}

/// Expires persistence templates once a second on a thread of its own, so
/// that nothing the control thread waits for delays it.
struct TemplateSweeper {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TemplateSweeper {
    fn start(templates: Arc<Templates>) -> std::io::Result<TemplateSweeper> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let ticks = crossbeam_channel::tick(Duration::from_secs(1));
        let thread = std::thread::Builder::new()
            .name("rvs-templates".into())
            .spawn(move || loop {
                crossbeam_channel::select! {
                    recv(ticks) -> _ => {
                        templates.sweep(rvs_ipvs::clock::now_ms());
                    }
                    recv(stopped) -> _ => break,
                }
            })?;
        Ok(TemplateSweeper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for TemplateSweeper {
    fn drop(&mut self) {
        // Its channel closing is the signal.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server with one worker link: the worker's message receiver and
    /// shared state are the test's to play the worker with.
    fn one_worker_server() -> (
        ControlServer,
        crossbeam_channel::Receiver<WorkerMsg>,
        Arc<WorkerShared>,
    ) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(WorkerShared::default());
        let srv = ControlServer::new(
            vec![WorkerLink::new(tx, shared.clone(), 1)],
            4096,
            Arc::default(),
        );
        (srv, rx, shared)
    }
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
        let (mut srv, rx, shared) = one_worker_server();
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

    /// A VIP is announced once it has a real server with weight, and not
    /// while the director drains; draining changes nothing in the table.
    #[test]
    fn announcement_follows_the_real_servers_and_the_drain() {
        let (mut srv, rx, shared) = one_worker_server();
        let acker = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                shared.applied.fetch_add(1, Ordering::Release);
            }
        });
        let announced = |srv: &mut ControlServer| match srv.handle(Request::Announcement) {
            Response::Announcement(a) => a.announced().to_vec(),
            r => panic!("{r:?}"),
        };
        assert!(matches!(
            srv.handle(Request::Apply(Command::AddService(spec()))),
            Response::Ok
        ));
        assert!(announced(&mut srv).is_empty(), "no real server yet");
        let mut d = DestSpec {
            addr: "192.168.1.220".parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 0,
            u_threshold: 0,
            l_threshold: 0,
        };
        srv.handle(Request::Apply(Command::AddDest(spec().key, d)));
        assert!(announced(&mut srv).is_empty(), "a quiesced real server");
        d.weight = 1;
        srv.handle(Request::Apply(Command::EditDest(spec().key, d)));
        assert_eq!(announced(&mut srv), vec![spec().key.addr]);
        assert!(matches!(srv.handle(Request::SetDrain(true)), Response::Ok));
        assert!(announced(&mut srv).is_empty(), "draining");
        assert_eq!(srv.listing().services[0].dests.len(), 1, "table kept");
        assert!(matches!(srv.handle(Request::SetDrain(false)), Response::Ok));
        assert_eq!(announced(&mut srv), vec![spec().key.addr]);
        drop(srv);
        acker.join().unwrap();
    }

    #[test]
    fn zero_totals_and_status_requests() {
        let (srv, rx, shared) = one_worker_server();
        let mut srv = srv.with_ports(Box::new(|| {
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

    /// `--defense`: the configured settings and what each worker published.
    #[test]
    fn defense_shows_the_settings_and_each_workers_level() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(WorkerShared::default());
        let cfg = rvs_ipvs::defense::DefenseConfig {
            drop_packet: 1,
            ..Default::default()
        };
        let mut srv = ControlServer::new(
            vec![WorkerLink::new(tx, shared.clone(), 3)],
            4096,
            Arc::default(),
        )
        .with_defense(cfg);
        *shared.defense.lock().unwrap() = rvs_ipvs::defense::DefenseLevel {
            drop_packet: 2,
            drop_rate: 3,
            free_slots: 100,
            ..Default::default()
        };
        shared.counters.half_open_reclaimed.set(7);
        shared
            .counters
            .drop(rvs_dataplane::counters::DropReason::Defense);
        match srv.handle(Request::Defense) {
            Response::Defense(v) => {
                assert_eq!(v.config, cfg);
                let w = &v.workers[0];
                assert_eq!((w.lcore, w.conn_capacity), (3, 4096));
                assert_eq!((w.level.drop_packet, w.level.drop_rate), (2, 3));
                assert_eq!((w.half_open_reclaimed, w.packets_dropped), (7, 1));
            }
            r => panic!("{r:?}"),
        }
    }

    /// A worker that does not apply a change in time does not make the
    /// change a failure: rvsd's table has it (a second try is "already
    /// exists", as it should be), and the answer says which worker is late.
    #[test]
    fn a_late_worker_is_reported_but_the_change_stands() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let mut srv = ControlServer::new(
            vec![WorkerLink::new(tx, Arc::new(WorkerShared::default()), 3)],
            4096,
            Arc::default(),
        );
        srv.ack_timeout = Duration::from_millis(50);
        match srv.handle(Request::Apply(Command::AddService(spec()))) {
            Response::Late(e) => assert!(
                e.contains("worker on lcore 3") && e.starts_with("the change is made"),
                "{e}"
            ),
            r => panic!("{r:?}"),
        }
        assert_eq!(srv.listing().services.len(), 1);
        match srv.handle(Request::Apply(Command::AddService(spec()))) {
            Response::Error(e) => assert_eq!(e, "Service already exists"),
            r => panic!("{r:?}"),
        }
        // -R: the late worker is one more line on stderr.
        let other = ServiceSpec {
            key: ServiceKey {
                port: 81,
                ..spec().key
            },
            ..spec()
        };
        match srv.handle(Request::Restore(vec![Command::AddService(other)])) {
            Response::Restored(msgs) => assert!(msgs[0].contains("lcore 3"), "{msgs:?}"),
            r => panic!("{r:?}"),
        }
    }

    /// A worker that stopped (panicked) is an error at once, and `serve`
    /// returns one so that rvsd stops.
    #[test]
    fn a_stopped_worker_stops_the_server() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(WorkerShared::default());
        let mut srv = ControlServer::new(
            vec![WorkerLink::new(tx, shared.clone(), 2)],
            4096,
            Arc::default(),
        );
        shared.exited.store(true, Ordering::Release);
        let t = Instant::now();
        match srv.handle(Request::Apply(Command::AddService(spec()))) {
            Response::Error(e) => assert!(
                e.contains("lcore 2 has stopped") && e.starts_with("the change is made"),
                "{e}"
            ),
            r => panic!("{r:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "no waiting for it");
        let dir = test_dir("stopped");
        let socket = bind(&dir.join("s.sock"), None).unwrap();
        let stop = AtomicBool::new(false);
        let e = srv.serve(&socket, &stop).unwrap_err();
        assert_eq!(e.to_string(), "the worker on lcore 2 stopped");
        drop(socket);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A fresh directory for a test's socket.
    pub(super) fn test_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rvs-ctl-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

#[cfg(test)]
mod socket_tests;
