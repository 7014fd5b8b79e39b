//! The connection sync daemon: the kernel's master and backup threads
//! (`ip_vs_sync.c`), as `rvsadm --start-daemon` starts them.
//!
//! The messages travel as the kernel's do, UDP multicast (224.0.0.81:8848
//! by default) in sync version 1 (`rvs-sync`), so that rvs and kernel
//! directors can be master and backup for each other. They use the
//! director kernel's own UDP sockets on the port's kernel interface (the
//! exception path): the sockets, multicast membership and fragmentation
//! are the kernel's, and rvsd's workers see the messages only as frames
//! for their kernel. Sending from the dataplane itself would save that
//! hop, but sync traffic is a few messages per thousand connections
//! (about 40 entries per message); the workers' cost is one non-blocking
//! queue push per connection synced.
//!
//! - master: the workers offer connections (`worker/sync.rs` in
//!   rvs-dataplane says when), a poll loop's worth at a time, on a
//!   bounded queue; this thread packs them
//!   into messages of at most `maxlen` bytes and sends one when it is full
//!   or its oldest entry has waited [`FLUSH`] (the kernel's
//!   `IPVS_SYNC_FLUSH_TIME`);
//! - backup: this thread joins the group on the interface, decodes each
//!   message (only its `syncid`'s, unless 0) and hands each connection to
//!   the worker that owns its client endpoint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rvs_control_proto::sync::{DaemonRequest, DaemonView, SyncRole};
use rvs_dataplane::{FlowSharding, WorkerMsg};
use rvs_sync::SyncConn;

/// How long a master keeps a message that is not full (the kernel's
/// `IPVS_SYNC_FLUSH_TIME`).
pub const FLUSH: Duration = Duration::from_secs(2);
/// Batches (a poll loop's offers each) the workers may queue for the
/// master thread.
const QUEUE: usize = 1024;
/// How often the threads look at their stop flag.
const TICK: Duration = Duration::from_millis(100);

/// An interface a daemon may name: a port's, by any of its names.
#[derive(Debug, Clone)]
pub struct SyncInterface {
    /// What `--mcast-interface` may say: the port's name, its kernel
    /// interface's, the af_packet interface it reads.
    pub names: Vec<String>,
    /// The kernel interface the sockets use (None: the port has none, so
    /// its director has no kernel path for sync there).
    pub kernel_ifname: Option<String>,
    /// The link's MTU (a backup reads up to it).
    pub mtu: u32,
}

/// What a daemon did, for the status and the logs.
#[derive(Debug, Default)]
pub struct SyncStats {
    pub messages: AtomicU64,
    pub conns: AtomicU64,
    pub errors: AtomicU64,
}

struct Running {
    view: DaemonView,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<SyncStats>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The daemons of one rvsd.
pub struct SyncDaemons {
    interfaces: Vec<SyncInterface>,
    sharding: FlowSharding,
    master: Option<Running>,
    backup: Option<Running>,
}

/// ipvsadm's messages for the kernel's errors.
const NO_DEVICE: &str = "No such device";
const ALREADY: &str = "Daemon has already run";
const NOT_RUNNING: &str = "No daemon is running";

impl SyncDaemons {
    pub fn new(interfaces: Vec<SyncInterface>, sharding: FlowSharding) -> SyncDaemons {
        SyncDaemons {
            interfaces,
            sharding,
            master: None,
            backup: None,
        }
    }

    /// `-L --daemon`: master first, as the kernel lists them.
    pub fn views(&self) -> Vec<DaemonView> {
        [&self.master, &self.backup]
            .into_iter()
            .flatten()
            .map(|r| r.view.clone())
            .collect()
    }

    /// Starts a daemon. `workers` are the workers' message queues (a
    /// master tells them where to offer connections; a backup hands them
    /// what it receives). Errors are ipvsadm's messages.
    pub fn start(
        &mut self,
        req: &DaemonRequest,
        workers: &[Sender<WorkerMsg>],
    ) -> Result<(), String> {
        let slot = match req.role {
            SyncRole::Master => &self.master,
            SyncRole::Backup => &self.backup,
        };
        if slot.is_some() {
            return Err(ALREADY.into());
        }
        // A port by one of its names, or, as the kernel takes, any
        // interface of the director's kernel.
        let (ifname, mtu) = match self
            .interfaces
            .iter()
            .find(|i| !req.mcast_ifn.is_empty() && i.names.contains(&req.mcast_ifn))
        {
            Some(i) => (
                i.kernel_ifname.clone().ok_or_else(|| {
                    format!(
                        "{}: the port has no kernel interface for the sync daemon's sockets (kernel_interface = true in rvsd.toml)",
                        req.mcast_ifn
                    )
                })?,
                i.mtu,
            ),
            None => kernel_interface(&req.mcast_ifn).ok_or(NO_DEVICE)?,
        };
        let view = req.resolve(mtu);
        let IpAddr::V4(group) = view.group else {
            return Err("IPv6 sync groups are not implemented in rvs yet".into());
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SyncStats::default());
        let thread = match req.role {
            SyncRole::Master => {
                let sock =
                    master_socket(&ifname, view.ttl).map_err(|e| format!("{ifname}: {e}"))?;
                let (tx, rx) = crossbeam_channel::bounded(QUEUE);
                let (back, returns) = crossbeam_channel::bounded(QUEUE);
                let queues = rvs_dataplane::SyncQueues {
                    offers: tx,
                    returns,
                };
                for w in workers {
                    let _ = w.send(WorkerMsg::SyncMaster(Some(queues.clone())));
                }
                let to = SocketAddr::from((group, view.port));
                let (v, s, st) = (view.clone(), stop.clone(), stats.clone());
                std::thread::Builder::new()
                    .name("rvs-sync-master".into())
                    .spawn(move || master(sock, to, rx, back, v, s, st))
            }
            SyncRole::Backup => {
                let sock = backup_socket(&ifname, group, view.port)
                    .map_err(|e| format!("{ifname}: {e}"))?;
                let (v, s, st) = (view.clone(), stop.clone(), stats.clone());
                let workers = workers.to_vec();
                let sharding = self.sharding;
                std::thread::Builder::new()
                    .name("rvs-sync-backup".into())
                    .spawn(move || backup(sock, workers, sharding, v, s, st))
            }
        }
        .map_err(|e| format!("starting the sync thread: {e}"))?;
        log::info!("{}", rvs_control_proto::sync::line(&view).trim_end());
        let running = Running {
            view,
            stop,
            thread: Some(thread),
            stats,
        };
        match req.role {
            SyncRole::Master => self.master = Some(running),
            SyncRole::Backup => self.backup = Some(running),
        }
        Ok(())
    }

    /// `--stop-daemon`.
    pub fn stop(&mut self, role: SyncRole, workers: &[Sender<WorkerMsg>]) -> Result<(), String> {
        let slot = match role {
            SyncRole::Master => &mut self.master,
            SyncRole::Backup => &mut self.backup,
        };
        let Some(r) = slot.take() else {
            return Err(NOT_RUNNING.into());
        };
        if role == SyncRole::Master {
            for w in workers {
                let _ = w.send(WorkerMsg::SyncMaster(None));
            }
        }
        log::info!(
            "{} sync daemon stopped: {} messages, {} connections, {} errors",
            role.name(),
            r.stats.messages.load(Ordering::Relaxed),
            r.stats.conns.load(Ordering::Relaxed),
            r.stats.errors.load(Ordering::Relaxed)
        );
        drop(r);
        Ok(())
    }
}

/// An interface of the director's kernel and its MTU, if it has one by
/// that name.
fn kernel_interface(name: &str) -> Option<(String, u32)> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return None;
    }
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).ok()?;
    Some((name.to_string(), mtu.trim().parse().ok()?))
}

fn ifindex(ifname: &str) -> std::io::Result<u32> {
    let s = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))?;
    s.trim()
        .parse()
        .map_err(|_| std::io::Error::other(format!("bad ifindex for {ifname}")))
}

/// A UDP socket whose multicast leaves by `ifname` with this TTL, not
/// looped back (the kernel master's `make_send_sock`).
fn master_socket(ifname: &str, ttl: u8) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.bind_device(Some(ifname.as_bytes()))?;
    sock.set_multicast_ttl_v4(ttl as u32)?;
    sock.set_multicast_loop_v4(false)?;
    sock.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    Ok(sock.into())
}

/// A UDP socket on the sync port that has joined `group` on `ifname` (the
/// kernel backup's `make_receive_sock`).
fn backup_socket(ifname: &str, group: Ipv4Addr, port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.bind_device(Some(ifname.as_bytes()))?;
    sock.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    sock.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex(ifname)?))?;
    sock.set_read_timeout(Some(TICK))?;
    Ok(sock.into())
}

fn master(
    sock: UdpSocket,
    to: SocketAddr,
    rx: Receiver<Vec<SyncConn>>,
    back: Sender<Vec<SyncConn>>,
    view: DaemonView,
    stop: Arc<AtomicBool>,
    stats: Arc<SyncStats>,
) {
    let mut enc = rvs_sync::Encoder::new(view.syncid, view.maxlen as usize);
    let mut oldest: Option<Instant> = None;
    let send = |msg: Vec<u8>| {
        if sock.send_to(&msg, to).is_ok() {
            stats.messages.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(TICK) {
            Ok(mut batch) => {
                for c in &batch {
                    match enc.push(c) {
                        Ok(done) => {
                            stats.conns.fetch_add(1, Ordering::Relaxed);
                            if let Some(m) = done {
                                send(m);
                                oldest = None;
                            }
                            oldest.get_or_insert_with(Instant::now);
                        }
                        Err(e) => {
                            stats.errors.fetch_add(1, Ordering::Relaxed);
                            log::warn!("sync: a connection not sent: {e}");
                        }
                    }
                }
                // Emptied, back to a worker (dropped when they have enough).
                batch.clear();
                let _ = back.try_send(batch);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if oldest.is_some_and(|t| t.elapsed() >= FLUSH) {
            if let Some(m) = enc.finish() {
                send(m);
            }
            oldest = None;
        }
    }
    if let Some(m) = enc.finish() {
        send(m);
    }
}

fn backup(
    sock: UdpSocket,
    workers: Vec<Sender<WorkerMsg>>,
    sharding: FlowSharding,
    view: DaemonView,
    stop: Arc<AtomicBool>,
    stats: Arc<SyncStats>,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(TICK);
                continue;
            }
        };
        // A message longer than the backup's maxlen is cut, as the
        // kernel's receive buffer cuts it.
        let msg = &buf[..n.min(view.maxlen as usize)];
        let decoded = match rvs_sync::decode(msg, view.syncid) {
            Ok(d) => d,
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                log::debug!("sync: message dropped: {e}");
                continue;
            }
        };
        stats.messages.fetch_add(1, Ordering::Relaxed);
        if decoded.dropped.is_some() || !decoded.skipped.is_empty() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        for c in decoded.conns {
            let owner = sharding.owner_of(c.caddr, c.cport, workers.len());
            if workers[owner].send(WorkerMsg::Synced(c)).is_ok() {
                stats.conns.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
