//! rvs-announce: a director announces its VIPs to its routers (by BGP,
//! through BIRD) only while its rvsd can serve them.
//!
//! Every tick it asks rvsd for its [`Announcement`] (the VIPs that have a
//! real server with weight, unless `rvsadm --drain`); a rvsd that does not
//! answer announces nothing. When the set changes, it rewrites the routes
//! file BIRD's static protocol includes and tells BIRD to reconfigure, which
//! announces or withdraws the difference. A rvsd that dies takes its kernel
//! interface, and so the BGP session and its BFD, with it: the routers
//! notice within BFD's detection time even before this program does.
//!
//! BIRD does the BGP (and BFD): a real, well-kept speaker. This program is
//! the small part BIRD lacks, a health condition taken from rvsd.

#![forbid(unsafe_code)]

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_control_proto::client::ClientError;
use rvs_control_proto::proto::Response;

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error("writing the routes file {0}: {1} (is its directory there and writable?)")]
    Write(PathBuf, std::io::Error),
    #[error("running {0}: {1} (is BIRD's client installed? --birdc names it)")]
    Birdc(PathBuf, std::io::Error),
    #[error("BIRD did not take the new routes (birdc configure said: {0}); is BIRD running on --bird-socket, and does its configuration include the routes file?")]
    Refused(String),
}

/// What rvsd's answer means for the routers: the VIPs to announce, and why.
pub fn decide(answer: Result<Response, ClientError>) -> (Vec<IpAddr>, String) {
    match answer {
        Ok(Response::Announcement(a)) => {
            let why = match (a.draining, a.ready.is_empty()) {
                (true, _) => "rvsd drains".to_string(),
                (false, true) => "no VIP has an available real server".to_string(),
                (false, false) => "rvsd serves".to_string(),
            };
            (a.announced().to_vec(), why)
        }
        Ok(other) => (
            Vec::new(),
            format!("rvsd answered something else ({other:?}): is it older than rvs-announce?"),
        ),
        Err(e) => (Vec::new(), e.to_string()),
    }
}

/// BIRD's static routes for the VIPs of one address family.
pub fn routes_text(vips: &[IpAddr], v6: bool) -> String {
    let mut s = String::from("# Written by rvs-announce: the VIPs this director announces.\n");
    for v in vips.iter().filter(|v| v.is_ipv6() == v6) {
        let len = if v6 { 128 } else { 32 };
        s.push_str(&format!("route {v}/{len} blackhole;\n"));
    }
    s
}

/// Where announcements go.
pub trait Router {
    fn announce(&mut self, vips: &[IpAddr]) -> Result<(), AnnounceError>;
}

/// BIRD, through the routes files its static protocols include and
/// `birdc configure`.
#[derive(Debug, Clone)]
pub struct Bird {
    pub birdc: PathBuf,
    pub socket: PathBuf,
    pub routes_v4: PathBuf,
    pub routes_v6: Option<PathBuf>,
}

/// Replaces `path` whole (write aside, rename), so that BIRD never reads
/// half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), AnnounceError> {
    let tmp = path.with_extension("rvs-announce.tmp");
    fs::write(&tmp, text)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| AnnounceError::Write(path.to_path_buf(), e))
}

impl Router for Bird {
    fn announce(&mut self, vips: &[IpAddr]) -> Result<(), AnnounceError> {
        write_atomically(&self.routes_v4, &routes_text(vips, false))?;
        if let Some(p) = &self.routes_v6 {
            write_atomically(p, &routes_text(vips, true))?;
        }
        let out = Command::new(&self.birdc)
            .arg("-s")
            .arg(&self.socket)
            .arg("configure")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| AnnounceError::Birdc(self.birdc.clone(), e))?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && said.contains("Reconfigur") && !said.contains("rror") {
            Ok(())
        } else {
            Err(AnnounceError::Refused(said.trim().replace('\n', " / ")))
        }
    }
}

/// The announcer's memory: what the router was last told.
pub struct Announcer<R: Router> {
    pub router: R,
    /// A rvsd that is there but slow to answer (a busy machine) keeps its
    /// announcement this long; one that is gone loses it at once.
    pub grace: Duration,
    /// Since when rvsd has been there but not answering.
    failing_since: Option<Instant>,
    /// None until the router has taken a first set (at start, or after a
    /// failure): the next tick tells it again.
    current: Option<Vec<IpAddr>>,
    /// IPv6 VIPs are left out when there is no IPv6 routes file; said once.
    warned_v6: bool,
    has_v6: bool,
}

impl<R: Router> Announcer<R> {
    pub fn new(router: R, has_v6: bool) -> Announcer<R> {
        Announcer {
            router,
            grace: Duration::from_secs(3),
            failing_since: None,
            current: None,
            warned_v6: false,
            has_v6,
        }
    }

    /// Acts on rvsd's answer at `now`: [`decide`], except that while a rvsd
    /// whose socket is there fails to answer (a timeout, a broken reply)
    /// for less than `grace`, nothing changes. Whether the router was told.
    pub fn observe(&mut self, answer: Result<Response, ClientError>, now: Instant) -> bool {
        match &answer {
            Err(ClientError::Io(..)) | Err(ClientError::BadReply(_)) => {
                let since = *self.failing_since.get_or_insert(now);
                if now.duration_since(since) < self.grace && self.current.is_some() {
                    return false;
                }
            }
            _ => self.failing_since = None,
        }
        let (vips, why) = decide(answer);
        self.step(vips, &why)
    }

    /// Tells the router `vips` if they differ from what it has; whether it
    /// was told. A failure is logged and retried on the next step.
    pub fn step(&mut self, mut vips: Vec<IpAddr>, why: &str) -> bool {
        if !self.has_v6 && vips.iter().any(IpAddr::is_ipv6) {
            if !self.warned_v6 {
                log::warn!(
                    "IPv6 VIPs are not announced: give --routes-file-v6 (and a BIRD ipv6 static protocol including it)"
                );
                self.warned_v6 = true;
            }
            vips.retain(IpAddr::is_ipv4);
        }
        if self.current.as_ref() == Some(&vips) {
            return false;
        }
        let shown: Vec<String> = vips.iter().map(IpAddr::to_string).collect();
        match self.router.announce(&vips) {
            Ok(()) => {
                if vips.is_empty() {
                    log::info!("announcing nothing: {why}");
                } else {
                    log::info!("announcing {}: {why}", shown.join(" "));
                }
                self.current = Some(vips);
                true
            }
            Err(e) => {
                log::error!("could not announce [{}]: {e}", shown.join(" "));
                self.current = None;
                false
            }
        }
    }

    /// What the router has, as far as the announcer knows.
    pub fn current(&self) -> Option<&[IpAddr]> {
        self.current.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_control_proto::announce::Announcement;

    #[derive(Default)]
    struct Recorder {
        told: Vec<Vec<IpAddr>>,
        fail: bool,
    }

    impl Router for Recorder {
        fn announce(&mut self, vips: &[IpAddr]) -> Result<(), AnnounceError> {
            if self.fail {
                return Err(AnnounceError::Refused("no".into()));
            }
            self.told.push(vips.to_vec());
            Ok(())
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn answer(draining: bool, ready: &[&str]) -> Result<Response, ClientError> {
        Ok(Response::Announcement(Announcement {
            draining,
            ready: ready.iter().map(|s| ip(s)).collect(),
        }))
    }

    #[test]
    fn rvsd_down_draining_or_without_servers_announces_nothing() {
        let (v, why) = decide(Err(ClientError::NotRunning("/x.sock".into())));
        assert!(v.is_empty());
        assert!(why.contains("not running"), "{why}");
        let (v, why) = decide(answer(true, &["10.0.0.1"]));
        assert!(v.is_empty());
        assert_eq!(why, "rvsd drains");
        let (v, why) = decide(answer(false, &[]));
        assert!(v.is_empty());
        assert!(why.contains("no VIP"), "{why}");
        let (v, _) = decide(Ok(Response::Ok));
        assert!(v.is_empty());
        let (v, why) = decide(answer(false, &["10.0.0.1", "fd00::1"]));
        assert_eq!(v, vec![ip("10.0.0.1"), ip("fd00::1")]);
        assert_eq!(why, "rvsd serves");
    }

    #[test]
    fn routes_files_hold_one_family_each() {
        let vips = [ip("10.0.0.1"), ip("fd00::1"), ip("10.0.0.2")];
        assert_eq!(
            routes_text(&vips, false),
            "# Written by rvs-announce: the VIPs this director announces.\n\
route 10.0.0.1/32 blackhole;\nroute 10.0.0.2/32 blackhole;\n"
        );
        assert!(routes_text(&vips, true).ends_with("\nroute fd00::1/128 blackhole;\n"));
        assert_eq!(routes_text(&[], false).lines().count(), 1);
    }

    #[test]
    fn the_router_is_told_only_changes_and_again_after_a_failure() {
        let mut a = Announcer::new(Recorder::default(), true);
        // The first step always tells, even nothing (a stale file).
        assert!(a.step(vec![], "start"));
        assert!(!a.step(vec![], "same"));
        assert!(a.step(vec![ip("10.0.0.1")], "up"));
        assert!(!a.step(vec![ip("10.0.0.1")], "same"));
        a.router.fail = true;
        assert!(!a.step(vec![], "down"));
        assert_eq!(a.current(), None);
        a.router.fail = false;
        assert!(a.step(vec![ip("10.0.0.1")], "retry"));
        assert_eq!(
            a.router.told,
            vec![vec![], vec![ip("10.0.0.1")], vec![ip("10.0.0.1")]]
        );
    }

    #[test]
    fn a_slow_rvsd_keeps_its_announcement_for_the_grace_a_gone_one_does_not() {
        let mut a = Announcer::new(Recorder::default(), false);
        let t0 = Instant::now();
        let slow = || {
            Err(ClientError::Io(
                "/x.sock".into(),
                std::io::Error::from(std::io::ErrorKind::WouldBlock),
            ))
        };
        assert!(a.observe(answer(false, &["10.0.0.1"]), t0));
        assert!(!a.observe(slow(), t0 + Duration::from_secs(1)));
        assert!(!a.observe(slow(), t0 + Duration::from_secs(3)));
        assert_eq!(a.current(), Some(&[ip("10.0.0.1")][..]));
        // Three seconds of silence: withdrawn.
        assert!(a.observe(slow(), t0 + Duration::from_millis(4100)));
        assert_eq!(a.current(), Some(&[][..]));
        // An answer again, then a rvsd that is gone: withdrawn at once.
        assert!(a.observe(answer(false, &["10.0.0.1"]), t0 + Duration::from_secs(5)));
        assert!(a.observe(
            Err(ClientError::NotRunning("/x.sock".into())),
            t0 + Duration::from_secs(5)
        ));
        assert_eq!(a.current(), Some(&[][..]));
    }

    #[test]
    fn ipv6_vips_are_left_out_without_an_ipv6_routes_file() {
        let mut a = Announcer::new(Recorder::default(), false);
        a.step(vec![ip("10.0.0.1"), ip("fd00::1")], "up");
        assert_eq!(a.router.told, vec![vec![ip("10.0.0.1")]]);
    }

    #[test]
    fn bird_that_is_not_there_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("rvs-announce-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut b = Bird {
            birdc: dir.join("no-such-birdc"),
            socket: dir.join("bird.ctl"),
            routes_v4: dir.join("vips.conf"),
            routes_v6: None,
        };
        let e = b.announce(&[ip("10.0.0.1")]).unwrap_err().to_string();
        assert!(e.contains("no-such-birdc"), "{e}");
        // The file was written whole before BIRD was asked.
        assert!(fs::read_to_string(dir.join("vips.conf"))
            .unwrap()
            .contains("route 10.0.0.1/32 blackhole;"));
        b.routes_v4 = dir.join("missing-dir/vips.conf");
        let e = b.announce(&[]).unwrap_err().to_string();
        assert!(e.contains("missing-dir"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
