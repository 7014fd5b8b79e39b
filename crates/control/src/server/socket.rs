//! The control socket itself: created safely with a restrictive mode,
//! clients checked by their credentials, and each connection served on a
//! thread of its own under deadlines, so that a slow or stuck client holds
//! nobody up.
//!
//! Why this file is long (about 680 lines): the control socket's whole
//! security boundary (creation, credentials, deadlines, streaming of
//! listings) in one file, to be reviewed as one.
//!
//! ```text
//!  accept thread ── SO_PEERCRED check ── one thread per connection (≤ 64)
//!                                          read one line, 5 s deadline,
//!                                          4 MiB at most; parse it
//!                                            │ Job (request + reply channel)
//!                                            ▼
//!                                   control thread (ControlServer::serve):
//!                                   every command in one order
//!                                            │ Reply
//!                                            ▼
//!                                   written back with a write timeout;
//!                                   -Lc rows streamed from the workers
//! ```
//!
//! Garbage, oversized and half-sent requests are answered with an error by
//! the connection's thread and never reach the control thread.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rvs_dataplane::ConnRow;
use rvs_ipvs::persist::Templates;

use crate::proto::{Request, Response};

/// Deadlines and bounds of the control socket.
#[derive(Debug, Clone)]
pub struct SocketLimits {
    /// The whole request line must arrive within this.
    pub request_deadline: Duration,
    /// Longest a single write of the answer may block (a client that does
    /// not read is dropped after it).
    pub write_timeout: Duration,
    /// The whole answer must be written within this.
    pub answer_deadline: Duration,
    /// Longest request line taken.
    pub max_request: usize,
    /// Connections served at once; more are refused with an error.
    pub max_clients: usize,
    /// How long a `-Lc` answer waits for the workers' next rows.
    pub rows_wait: Duration,
}

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            request_deadline: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            answer_deadline: Duration::from_secs(60),
            max_request: 4 << 20,
            max_clients: 64,
            rows_wait: Duration::from_secs(5),
        }
    }
}

/// Who may use the socket: root, rvsd's own user, and the members of the
/// configured group (`[control] group`). The socket's mode says the same to
/// the file system (0600, or 0660 with the group); the credentials check
/// holds even if someone widens the mode.
#[derive(Debug, Clone)]
pub struct Access {
    own_uid: u32,
    group: Option<(u32, String)>,
}

/// A client's credentials, as SO_PEERCRED gives them, with the
/// supplementary groups of its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Access {
    /// Resolves the group name; an unknown group is an error naming it.
    pub fn new(group: Option<&str>) -> std::io::Result<Access> {
        let group = match group {
            None => None,
            Some(name) => {
                let g = nix::unistd::Group::from_name(name)
                    .map_err(|e| std::io::Error::other(format!("looking up group {name:?}: {e}")))?
                    .ok_or_else(|| {
                        std::io::Error::new(
                            ErrorKind::NotFound,
                            format!("control.group = {name:?}: no such group"),
                        )
                    })?;
                Some((g.gid.as_raw(), name.to_string()))
            }
        };
        Ok(Access {
            own_uid: nix::unistd::geteuid().as_raw(),
            group,
        })
    }

    /// Whether `peer` may send requests; the refusal says who may.
    pub fn permits(&self, peer: &Peer) -> Result<(), String> {
        if peer.uid == 0 || peer.uid == self.own_uid {
            return Ok(());
        }
        if let Some((gid, _)) = &self.group {
            if peer.gid == *gid || peer.groups.contains(gid) {
                return Ok(());
            }
        }
        let who = match &self.group {
            Some((_, name)) => format!("root, rvsd's own user or a member of group {name}"),
            None => "root or rvsd's own user".to_string(),
        };
        Err(format!(
            "Permission denied (you must be {who}): rvsd does not take requests from uid {}",
            peer.uid
        ))
    }

    fn mode(&self) -> u32 {
        if self.group.is_some() {
            0o660
        } else {
            0o600
        }
    }
}

/// The credentials of the process at the other end of `s`.
fn peer_of(s: &UnixStream) -> std::io::Result<Peer> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let c = getsockopt(s, PeerCredentials).map_err(std::io::Error::from)?;
    // SO_PEERCRED has the primary group only; the others are in /proc (a
    // process that is gone by now has none there, and gets none).
    let groups = std::fs::read_to_string(format!("/proc/{}/status", c.pid()))
        .ok()
        .and_then(|st| {
            st.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default();
    Ok(Peer {
        uid: c.uid(),
        gid: c.gid(),
        groups,
    })
}

/// The listening control socket. Its file is removed when it is dropped,
/// if it is still the one rvsd made.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file, to tell it from a successor's.
    file: (u64, u64),
    access: Access,
}

impl ControlSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn access(&self) -> &Access {
        &self.access
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.file)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn already(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        ErrorKind::AlreadyExists,
        format!(
            "{} exists and is {what}; rvsd replaces only a stale socket of its own: \
             remove it, or set another [control] socket",
            path.display()
        ),
    )
}

/// Binds the control socket at `path`, mode 0600 (0660 and the group's with
/// `group`), creating its directory if needed. A socket file no one answers
/// on (left by a daemon that died) is replaced; anything else at the path
/// is left alone and refused, as is a socket another rvsd answers on.
///
/// The socket is made in a private (0700) directory beside the path, given
/// its mode and group there, then linked into place, so it is never
/// reachable with a wider mode, and the link refuses to replace whatever
/// appeared at the path meanwhile.
pub fn bind(path: &Path, group: Option<&str>) -> std::io::Result<ControlSocket> {
    let access = Access::new(group)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("another rvsd is listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(m) if m.file_type().is_symlink() => return Err(already(path, "a symbolic link")),
        Ok(m) if m.is_dir() => return Err(already(path, "a directory")),
        Ok(_) => return Err(already(path, "not a socket")),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "rvsd.sock".into());
    let private = dir.join(format!(".{name}.{}.new", std::process::id()));
    // Left by an earlier rvsd of the same pid that died right here.
    if private.exists() {
        let _ = std::fs::remove_file(private.join("s"));
        std::fs::remove_dir(&private)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let made = (|| {
        let tmp = private.join("s");
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(access.mode()))?;
        if let Some((gid, gname)) = &access.group {
            std::os::unix::fs::chown(&tmp, None, Some(*gid)).map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "giving the control socket to group {gname}: {e} (rvsd must run as \
                         root or as a member of {gname})"
                    ),
                )
            })?;
        }
        std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => already(path, "something that appeared meanwhile"),
            _ => e,
        })?;
        let _ = std::fs::remove_file(&tmp);
        Ok::<_, std::io::Error>(listener)
    })();
    let _ = std::fs::remove_file(private.join("s"));
    let _ = std::fs::remove_dir(&private);
    let listener = made?;
    let m = std::fs::symlink_metadata(path)?;
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
        file: (m.dev(), m.ino()),
        access,
    })
}

/// A request from a client, for the control thread, and where its answer
/// goes.
pub(super) struct Job {
    pub req: Request,
    pub reply: Sender<Reply>,
}

/// The control thread's answer to a [`Job`].
pub(super) enum Reply {
    Response(Response),
    /// `-Lc`: the workers send their rows here (each drops its sender when
    /// done); the persistence templates follow them.
    Conns {
        rows: Receiver<Vec<ConnRow>>,
        limit: usize,
        templates: Arc<Templates>,
    },
}

/// The accept thread, with its stop switch.
pub(super) struct Acceptor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Acceptor {
    /// Accepts connections on `socket` until stopped, each served on its
    /// own thread, which hands the request to the control thread through
    /// `jobs`.
    pub(super) fn start(
        socket: &ControlSocket,
        jobs: Sender<Job>,
        limits: SocketLimits,
    ) -> std::io::Result<Acceptor> {
        let listener = socket.listener.try_clone()?;
        listener.set_nonblocking(true)?;
        let access = socket.access.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("rvs-ctl-accept".into())
            .spawn({
                let stop = stop.clone();
                move || accept_loop(&listener, &access, &jobs, &limits, &stop)
            })?;
        Ok(Acceptor {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts a connection's thread while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(
    listener: &UnixListener,
    access: &Access,
    jobs: &Sender<Job>,
    limits: &SocketLimits,
    stop: &AtomicBool,
) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let active = Arc::new(AtomicUsize::new(0));
    // A refusal is one short line into an empty socket buffer.
    let refuse = |s: UnixStream, msg: String| {
        let _ = write_response(&s, &Response::Error(msg), Duration::from_millis(200), None);
    };
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::warn!("control socket: poll: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let s = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                continue
            }
            Err(e) => {
                // Out of file descriptors, say: try again shortly.
                log::warn!("control socket: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if s.set_nonblocking(false).is_err() {
            continue;
        }
        match peer_of(&s).map_err(|e| format!("reading the client's credentials: {e}")) {
            Ok(peer) => {
                if let Err(msg) = access.permits(&peer) {
                    log::warn!("control socket: {msg}");
                    refuse(s, msg);
                    continue;
                }
            }
            Err(msg) => {
                refuse(s, msg);
                continue;
            }
        }
        if active.fetch_add(1, Ordering::AcqRel) >= limits.max_clients {
            active.fetch_sub(1, Ordering::AcqRel);
            refuse(
                s,
                format!(
                    "rvsd is serving {} clients already; try again shortly",
                    limits.max_clients
                ),
            );
            continue;
        }
        let slot = Slot(active.clone());
        let (jobs, limits) = (jobs.clone(), limits.clone());
        let spawned = std::thread::Builder::new()
            .name("rvs-ctl-client".into())
            .stack_size(256 << 10)
            .spawn(move || {
                let _slot = slot;
                serve_client(s, &jobs, &limits)
            });
        if let Err(e) = spawned {
            log::warn!("control socket: no thread for a client: {e}");
        }
    }
}

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadError {
    Deadline,
    Closed,
    TooLong(usize),
    Io(String),
}

impl ReadError {
    fn message(&self, deadline: Duration) -> String {
        match self {
            ReadError::Deadline => format!(
                "incomplete request: no whole line within {} s; nothing was changed",
                deadline.as_secs_f64()
            ),
            ReadError::Closed => "incomplete request: the connection ended before the end \
                of the line; nothing was changed"
                .into(),
            ReadError::TooLong(max) => {
                format!("request longer than {max} bytes; nothing was changed")
            }
            ReadError::Io(e) => format!("reading the request: {e}; nothing was changed"),
        }
    }
}

/// Reads one request line (without its newline): all of it by `deadline`,
/// `max` bytes at most.
pub(super) fn read_request(
    s: &UnixStream,
    deadline: Instant,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Deadline);
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| ReadError::Io(e.to_string()))?;
        let n = match (&*s).read(&mut chunk) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(ReadError::Deadline)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e.to_string())),
        };
        let start = buf.len();
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            buf.truncate(start + i);
            return if buf.len() > max {
                Err(ReadError::TooLong(max))
            } else {
                Ok(buf)
            };
        }
        if buf.len() > max {
            return Err(ReadError::TooLong(max));
        }
    }
}

/// Writes one response line, each write bounded by `timeout` and all of
/// them by `deadline`.
pub(super) fn write_response(
    s: &UnixStream,
    r: &Response,
    timeout: Duration,
    deadline: Option<Instant>,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(r).expect("responses serialise");
    out.push(b'\n');
    let mut at = 0;
    while at < out.len() {
        let mut t = timeout;
        if let Some(d) = deadline {
            t = t.min(d.saturating_duration_since(Instant::now()));
            if t.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
        }
        s.set_write_timeout(Some(t))?;
        match (&*s).write(&out[at..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One connection: read, parse, ask the control thread, answer.
fn serve_client(s: UnixStream, jobs: &Sender<Job>, limits: &SocketLimits) {
    let reply = match read_request(
        &s,
        Instant::now() + limits.request_deadline,
        limits.max_request,
    ) {
        Err(e) => Reply::Response(Response::Error(e.message(limits.request_deadline))),
        Ok(line) => match serde_json::from_slice::<Request>(&line) {
            Err(e) => Reply::Response(Response::Error(format!(
                "malformed request: {e}; nothing was changed"
            ))),
            Ok(req) => ask(jobs, req),
        },
    };
    let deadline = Instant::now() + limits.answer_deadline;
    let written = match reply {
        Reply::Response(r) => write_response(&s, &r, limits.write_timeout, Some(deadline)),
        Reply::Conns {
            rows,
            limit,
            templates,
        } => stream_conns(&s, rows, limit, &templates, limits, deadline),
    };
    if let Err(e) = written {
        log::info!("control socket: a client did not take its answer: {e}");
    }
}

/// Hands the request to the control thread and waits for its answer.
fn ask(jobs: &Sender<Job>, req: Request) -> Reply {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let stopping = || Reply::Response(Response::Error("rvsd is stopping".into()));
    if jobs.send(Job { req, reply: tx }).is_err() {
        return stopping();
    }
    rx.recv().unwrap_or_else(|_| stopping())
}

/// Rows per line of a `-Lc` answer.
const ROWS_PER_LINE: usize = 1024;

/// Writes the workers' rows as they come, then the templates': at most
/// `limit` rows in all.
fn stream_conns(
    s: &UnixStream,
    rows: Receiver<Vec<ConnRow>>,
    limit: usize,
    templates: &Templates,
    limits: &SocketLimits,
    deadline: Instant,
) -> std::io::Result<()> {
    let send = |r: &Response| write_response(s, r, limits.write_timeout, Some(deadline));
    // One more than the limit says whether the limit cut the list.
    let want = limit.saturating_add(1);
    let mut total = 0usize;
    while total < want {
        match rows.recv_timeout(limits.rows_wait) {
            Ok(mut chunk) => {
                chunk.truncate(want - total);
                total += chunk.len();
                let over = total > limit;
                if over {
                    chunk.pop();
                }
                if !chunk.is_empty() {
                    send(&Response::ConnRows(chunk))?;
                }
                if over {
                    // Dropping `rows` tells the workers to stop.
                    return send(&Response::Conns(Vec::new(), true));
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                return send(&Response::Error(
                    "a worker did not send its connections in time".into(),
                ))
            }
        }
    }
    drop(rows);
    let now = rvs_ipvs::clock::now_ms();
    let mut tpl: Vec<ConnRow> = Vec::new();
    for (k, t) in templates.snapshot() {
        if total == want {
            break;
        }
        total += 1;
        tpl.push(ConnRow {
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
    let truncated = total > limit;
    if truncated {
        tpl.pop();
    }
    while tpl.len() > ROWS_PER_LINE {
        let rest = tpl.split_off(ROWS_PER_LINE);
        send(&Response::ConnRows(std::mem::replace(&mut tpl, rest)))?;
    }
    send(&Response::Conns(tpl, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_use_the_socket() {
        let mut a = Access::new(None).unwrap();
        a.own_uid = 1000;
        let peer = |uid, gid, groups: &[u32]| Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert!(a.permits(&peer(0, 0, &[])).is_ok(), "root");
        assert!(a.permits(&peer(1000, 1000, &[])).is_ok(), "rvsd's own user");
        let e = a.permits(&peer(65534, 65534, &[])).unwrap_err();
        assert_eq!(
            e,
            "Permission denied (you must be root or rvsd's own user): rvsd does not take \
             requests from uid 65534"
        );
        assert_eq!(a.mode(), 0o600);
        a.group = Some((1500, "rvs".into()));
        assert_eq!(a.mode(), 0o660);
        assert!(a.permits(&peer(2000, 1500, &[])).is_ok(), "primary group");
        assert!(a.permits(&peer(2000, 2000, &[27, 1500])).is_ok(), "member");
        let e = a.permits(&peer(2000, 2000, &[27])).unwrap_err();
        assert!(e.contains("member of group rvs"), "{e}");
    }

    #[test]
    fn unknown_group_is_named() {
        let e = Access::new(Some("no-such-group-rvs")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "control.group = \"no-such-group-rvs\": no such group"
        );
    }
}
