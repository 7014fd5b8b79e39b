//! The connection sync daemon: the kernel's master and backup threads
//! (`ip_vs_sync.c`), as `rvsadm --start-daemon` starts them.
//!
//! The messages travel as the kernel's do, UDP multicast (224.0.0.81:8848
//! by default) in sync version 1 (`rvs-sync`), so that rvs and kernel
//! directors can be master and backup for each other.
//!
//! - master: on one of rvsd's ports, the workers are the master. Each
//!   packs the connections it syncs into messages of at most `maxlen`
//!   bytes and sends them on the port itself, as UDP multicast from the
//!   port's address (`worker/sync.rs` in rvs-dataplane): no thread, and no
//!   trip through the kernel interface and back through the worker's
//!   exception path, which cost the new-flow rate a fifth when a thread
//!   sent them from a kernel socket. On an interface of the director's
//!   kernel that is not a port (a separate sync network), the workers
//!   still fill the messages, and a thread sends them from a kernel
//!   socket bound to it;
//! - backup: a thread joins the group on the interface (the port's kernel
//!   interface, or the interface af_packet reads), decodes each message
//!   (only its `syncid`'s, unless 0) and hands each connection to the
//!   worker that owns its client endpoint.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rvs_control_proto::sync::{DaemonRequest, DaemonView, SyncRole};
use rvs_dataplane::{FlowSharding, SyncMaster, SyncSink, WorkerMsg};

/// Messages the workers may queue for a master thread (a non-port
/// interface's).
const QUEUE: usize = 1024;
/// IPv4 and UDP headers of a sync message.
const IPV4_UDP_HEADERS: usize = 28;
/// How often the threads look at their stop flag.
const TICK: Duration = Duration::from_millis(100);

/// An interface a daemon may name: a port's, by any of its names.
#[derive(Debug, Clone)]
pub struct SyncInterface {
    /// What `--mcast-interface` may say: the port's name, its kernel
    /// interface's, the af_packet interface it reads.
    pub names: Vec<String>,
    /// The port's index among the workers' ports: a master sends there.
    pub port: usize,
    /// The kernel interface a backup's socket uses (None: the port has
    /// none, so its director cannot receive sync there).
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
    /// None for a master on a port: its workers are the daemon.
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
        let port = self
            .interfaces
            .iter()
            .find(|i| !req.mcast_ifn.is_empty() && i.names.contains(&req.mcast_ifn));
        let mtu = match port {
            Some(i) => i.mtu,
            None => kernel_interface(&req.mcast_ifn).ok_or(NO_DEVICE)?.1,
        };
        let view = req.resolve(mtu);
        let IpAddr::V4(group) = view.group else {
            return Err("IPv6 sync groups are not implemented in rvs yet".into());
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SyncStats::default());
        let mut thread = None;
        match req.role {
            SyncRole::Master => {
                let sink = match port {
                    Some(i) => SyncSink::Port {
                        port: i.port,
                        group,
                        udp_port: view.port,
                        ttl: view.ttl,
                    },
                    None => {
                        let ifname = &req.mcast_ifn;
                        let sock = master_socket(ifname, view.ttl)
                            .map_err(|e| format!("{ifname}: {e}"))?;
                        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
                        let to = SocketAddr::from((group, view.port));
                        let (s, st) = (stop.clone(), stats.clone());
                        thread = Some(
                            std::thread::Builder::new()
                                .name("rvs-sync-master".into())
                                .spawn(move || master(sock, to, rx, s, st))
                                .map_err(|e| format!("starting the sync thread: {e}"))?,
                        );
                        SyncSink::Kernel(tx)
                    }
                };
                // A worker sends whole frames, never fragments: on a port
                // whose MTU is below the kernel's maxlen, smaller messages
                // (the kernel's socket would fragment them instead).
                let fits = (mtu as usize).saturating_sub(IPV4_UDP_HEADERS);
                let maxlen = match port {
                    Some(_) => (view.maxlen as usize).min(fits),
                    None => view.maxlen as usize,
                };
                let m = SyncMaster {
                    syncid: view.syncid,
                    maxlen,
                    sink,
                };
                for w in workers {
                    let _ = w.send(WorkerMsg::SyncMaster(Some(m.clone())));
                }
            }
            SyncRole::Backup => {
                let ifname = match port {
                    Some(i) => i.kernel_ifname.clone().ok_or_else(|| {
                        format!(
                            "{}: the port has no kernel interface for the sync daemon's socket (kernel_interface = true in rvsd.toml)",
                            req.mcast_ifn
                        )
                    })?,
                    None => req.mcast_ifn.clone(),
                };
                let sock = backup_socket(&ifname, group, view.port)
                    .map_err(|e| format!("{ifname}: {e}"))?;
                let (v, s, st) = (view.clone(), stop.clone(), stats.clone());
                let workers = workers.to_vec();
                let sharding = self.sharding.clone();
                thread = Some(
                    std::thread::Builder::new()
                        .name("rvs-sync-backup".into())
                        .spawn(move || backup(sock, workers, sharding, v, s, st))
                        .map_err(|e| format!("starting the sync thread: {e}"))?,
                );
            }
        }
        log::info!("{}", rvs_control_proto::sync::line(&view).trim_end());
        let running = Running {
            view,
            stop,
            thread,
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
        if r.thread.is_some() {
            log::info!(
                "{} sync daemon stopped: {} messages, {} connections, {} errors",
                role.name(),
                r.stats.messages.load(Ordering::Relaxed),
                r.stats.conns.load(Ordering::Relaxed),
                r.stats.errors.load(Ordering::Relaxed)
            );
        } else {
            // Its workers counted what they sent (sync_messages).
            log::info!("{} sync daemon stopped", role.name());
        }
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

/// A master on a non-port interface: sends the messages the workers
/// filled.
fn master(
    sock: UdpSocket,
    to: SocketAddr,
    rx: Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    stats: Arc<SyncStats>,
) {
    while !stop.load(Ordering::Relaxed) {
        match rx.recv_timeout(TICK) {
            Ok(msg) => {
                let counter = if sock.send_to(&msg, to).is_ok() {
                    &stats.messages
                } else {
                    &stats.errors
                };
                counter.fetch_add(1, Ordering::Relaxed);
                stats
                    .conns
                    .fetch_add(msg.get(4).copied().unwrap_or(0) as u64, Ordering::Relaxed);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
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
