//! The daemon: one loop that starts checks when they are due (each on its
//! own thread), feeds their results to the [`Engine`], runs the scripts it
//! asks for, brings rvsd's table to what the engine wants, writes the
//! status file, and answers SIGHUP (reload) and SIGTERM/SIGINT (stop).
//!
//! Why this file is long (about 610 lines): the loop is about 360 lines; the
//! rest is its tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use crossbeam_channel::{select, Receiver, Sender};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use rvs_control_proto::client::{self, ClientError};
use rvs_control_proto::proto::{Request, Response};
use rvs_ipvs::Command;

use crate::config::{self, Config, Diags, Severity};
use crate::state::{Action, CheckerRef, Engine, Outcome};
use crate::table::{diff, Table};
use crate::{check, scripts};

#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub config_id: Option<String>,
    pub socket: PathBuf,
    pub status_file: PathBuf,
    /// `-I`: leave rvsd's table as it is on stop.
    pub dont_release_ipvs: bool,
}

/// After a failed command or an unreachable rvsd, wait this long before
/// trying again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How often to look whether rvsd still has our services (it may have
/// restarted with an empty table).
const PRESENCE_CHECK: Duration = Duration::from_secs(5);

/// Logs what a load said, as keepalived logs configuration errors.
pub fn log_diags(d: &Diags) {
    for m in d.all() {
        match m.severity {
            Severity::Error => log::warn!("{m}"),
            Severity::Notice => log::info!("{m}"),
        }
    }
}

/// Keeps rvsd's table in step with the engine's.
struct Applier {
    socket: PathBuf,
    /// What rvsd has, of the services and dests we manage, as far as we know.
    applied: Table,
    /// `applied` must be read back from rvsd before the next diff.
    resync: bool,
    retry_at: Option<Instant>,
    next_presence_check: Instant,
    /// The last error logged, so a persisting one is said once.
    last_error: Option<String>,
}

impl Applier {
    fn request(&self, req: &Request) -> Result<Response, ClientError> {
        client::request(&self.socket, req)
    }

    fn fail(&mut self, msg: String, now: Instant) {
        if self.last_error.as_deref() != Some(&msg) {
            log::warn!("{msg}");
            self.last_error = Some(msg);
        }
        self.resync = true;
        self.retry_at = Some(now + RETRY_DELAY);
    }

    /// Reads back the managed part of rvsd's table.
    fn read_back(&mut self, engine: &Engine, now: Instant) -> bool {
        match self.request(&Request::List) {
            Ok(Response::Listing(l)) => {
                let old = &self.applied;
                self.applied = Table::from_listing(
                    &l,
                    &|k| engine.manages_service(k) || old.services.contains_key(&k.into()),
                    &|k, d| engine.manages_dest(k, d) || old.dest(k, d).is_some(),
                );
                self.resync = false;
                true
            }
            Ok(other) => {
                self.fail(
                    format!("rvsd answered a listing request with {other:?}"),
                    now,
                );
                false
            }
            Err(e) => {
                self.fail(format!("{e}; will retry"), now);
                false
            }
        }
    }

    fn sync(&mut self, engine: &Engine, now: Instant) {
        if self.retry_at.is_some_and(|t| now < t) {
            return;
        }
        self.retry_at = None;
        if now >= self.next_presence_check {
            self.next_presence_check = now + PRESENCE_CHECK;
            self.check_presence(now);
        }
        if self.resync && !self.read_back(engine, now) {
            return;
        }
        for cmd in diff(&self.applied, engine.table()) {
            match self.request(&Request::Apply(cmd.clone())) {
                Ok(r @ (Response::Ok | Response::Late(_))) => {
                    log::debug!("rvsd: {}", describe(&cmd));
                    // Made, though a worker may not have it yet.
                    if let Response::Late(m) = r {
                        log::warn!("rvsd: {}: {m}", describe(&cmd));
                    }
                    self.applied.apply(&cmd);
                    self.last_error = None;
                }
                Ok(Response::Error(e)) => {
                    self.fail(format!("IPVS cmd {} error: {e}", describe(&cmd)), now);
                }
                Ok(other) => {
                    self.fail(
                        format!("rvsd answered {} with {other:?}", describe(&cmd)),
                        now,
                    );
                    return;
                }
                Err(e) => {
                    self.fail(format!("{e}; will retry"), now);
                    return;
                }
            }
        }
    }

    /// A service we applied that rvsd no longer lists means rvsd lost its
    /// table (restarted): read it back and apply everything again.
    fn check_presence(&mut self, now: Instant) {
        if self.applied.services.is_empty() {
            return;
        }
        match self.request(&Request::List) {
            Ok(Response::Listing(l)) => {
                let missing = self
                    .applied
                    .services
                    .keys()
                    .any(|k| !l.services.iter().any(|s| s.spec.key == k.key()));
                if missing {
                    log::warn!("rvsd lost services rvs-keepalived configured (restarted?): configuring them again");
                    self.resync = true;
                }
            }
            Ok(_) => {}
            Err(e) => self.fail(format!("{e}; will retry"), now),
        }
    }
}

/// A command as keepalived's IPVS error messages show it.
fn describe(cmd: &Command) -> String {
    use rvs_ipvs::types::fmt_addr_port;
    match cmd {
        Command::AddService(s) => format!("ADD_SERVICE ({})", s.key),
        Command::EditService(s) => format!("EDIT_SERVICE ({})", s.key),
        Command::DelService(k) => format!("DEL_SERVICE ({k})"),
        Command::Clear => "FLUSH".into(),
        Command::AddDest(k, d) => format!(
            "ADD_DEST ({k} -> {} weight {})",
            fmt_addr_port(d.addr, d.port),
            d.weight
        ),
        Command::EditDest(k, d) => format!(
            "EDIT_DEST ({k} -> {} weight {})",
            fmt_addr_port(d.addr, d.port),
            d.weight
        ),
        Command::DelDest(k, d) => format!("DEL_DEST ({k} -> {d})"),
    }
}

/// Writes the status file: a temporary file in the same directory, then a
/// rename, so readers never see half of it.
pub fn write_status(path: &Path, engine: &Engine, config: &Path) -> Result<()> {
    let s = engine.status(
        std::process::id(),
        &config.display().to_string(),
        SystemTime::now(),
    );
    let json = serde_json::to_vec_pretty(&s).expect("status serialises");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn run_actions(engine: &mut Engine) {
    for a in engine.take_actions() {
        match a {
            Action::Log(l) => log::info!("{l}"),
            Action::Run(s) => {
                if let Err(e) = scripts::run_detached(&s) {
                    log::warn!("Error exec-ing command '{s}': {e}");
                }
            }
        }
    }
}

fn spawn_check(job: crate::state::Job, tx: Sender<(CheckerRef, Outcome)>) {
    let name = format!("check {}", job.rs_name);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let outcome = check::run(&job);
        let _ = tx.send((job.r, outcome));
    });
    if let Err(e) = spawned {
        log::warn!("cannot start a checker thread: {e}");
    }
}

fn signals() -> Result<Receiver<i32>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut sigs = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for s in sigs.forever() {
                if tx.send(s).is_err() {
                    break;
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(rx)
}

/// Runs until SIGTERM or SIGINT. `loaded` is the configuration already read
/// (and reported) by the caller.
pub fn run(opts: &Options, loaded: Config) -> Result<()> {
    let sig_rx = signals()?;
    let (res_tx, res_rx) = crossbeam_channel::unbounded::<(CheckerRef, Outcome)>();
    let now = Instant::now();
    let mut engine = Engine::new(&loaded, fastrand::Rng::new(), now);
    let mut applier = Applier {
        socket: opts.socket.clone(),
        applied: Table::default(),
        resync: true,
        retry_at: None,
        next_presence_check: now + PRESENCE_CHECK,
        last_error: None,
    };
    if loaded.lvs_flush {
        match applier.request(&Request::Apply(Command::Clear)) {
            Ok(Response::Ok | Response::Late(_)) => {
                log::info!("Flushed rvsd's table (lvs_flush)")
            }
            Ok(r) => log::warn!("lvs_flush: rvsd answered {r:?}"),
            Err(e) => log::warn!("lvs_flush: {e}"),
        }
    }
    log::info!("Initializing ipvs (rvsd at {})", opts.socket.display());
    engine.start(now);
    run_actions(&mut engine);
    applier.sync(&engine, now);
    if let Err(e) = write_status(&opts.status_file, &engine, &opts.config) {
        log::warn!("status file: {e:#}");
    }

    loop {
        let now = Instant::now();
        for job in engine.due(now) {
            spawn_check(job, res_tx.clone());
        }
        let mut wake = engine.next_due().unwrap_or(now + Duration::from_secs(3600));
        if let Some(t) = applier.retry_at {
            wake = wake.min(t);
        }
        wake = wake.min(applier.next_presence_check);
        let timeout = wake.saturating_duration_since(Instant::now());
        let mut status_dirty = false;
        select! {
            recv(res_rx) -> r => {
                if let Ok((r, outcome)) = r {
                    engine.on_result(r, outcome, Instant::now(), SystemTime::now());
                    // Take whatever else finished meanwhile in the same pass.
                    while let Ok((r, outcome)) = res_rx.try_recv() {
                        engine.on_result(r, outcome, Instant::now(), SystemTime::now());
                    }
                    status_dirty = true;
                }
            }
            recv(sig_rx) -> s => {
                match s {
                    Ok(SIGHUP) => {
                        reload(opts, &mut engine);
                        status_dirty = true;
                    }
                    Ok(_) | Err(_) => {
                        stop(opts, &mut engine, &mut applier);
                        return Ok(());
                    }
                }
            }
            default(timeout) => {}
        }
        run_actions(&mut engine);
        applier.sync(&engine, Instant::now());
        if status_dirty {
            if let Err(e) = write_status(&opts.status_file, &engine, &opts.config) {
                log::warn!("status file: {e:#}");
            }
        }
    }
}

fn reload(opts: &Options, engine: &mut Engine) {
    match config::load(&opts.config, opts.config_id.as_deref()) {
        Ok(l) => {
            log_diags(&l.diags);
            engine.reload(&l.config, Instant::now());
        }
        Err(e) => log::warn!("{e}; keeping the running configuration"),
    }
}

fn stop(opts: &Options, engine: &mut Engine, applier: &mut Applier) {
    if opts.dont_release_ipvs {
        log::info!("Leaving rvsd's table as it is (--dont-release-ipvs)");
    } else {
        engine.stop();
        run_actions(engine);
        if engine.flush_on_stop() {
            let _ = applier.request(&Request::Apply(Command::Clear));
        } else {
            // Once, without waiting: rvsd may be gone already.
            applier.retry_at = None;
            applier.sync(engine, Instant::now());
        }
    }
    let _ = std::fs::remove_file(&opts.status_file);
}

#[cfg(test)]
mod tests {
    //! The applier against a stand-in rvsd: a Unix socket served by the
    //! same `Director` model rvsd validates commands with.

    use super::*;
    use std::io::{BufRead, BufReader, Write as _};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    use rvs_control_proto::proto::{DestView, Listing, ServiceView};
    use rvs_ipvs::{DestKey, DestSpec, Director, FwdMethod, Protocol, ServiceKey, ServiceSpec};

    struct FakeRvsd {
        director: Arc<Mutex<Director>>,
        path: PathBuf,
    }

    impl FakeRvsd {
        fn start() -> FakeRvsd {
            let path = std::env::temp_dir().join(format!("rvs-ka-fake-{}.sock", fastrand::u64(..)));
            let l = UnixListener::bind(&path).unwrap();
            let director = Arc::new(Mutex::new(Director::new()));
            let d = director.clone();
            std::thread::spawn(move || {
                for s in l.incoming() {
                    let Ok(mut s) = s else { break };
                    let mut line = String::new();
                    if BufReader::new(&s).read_line(&mut line).is_err() {
                        continue;
                    }
                    let req: Request = serde_json::from_str(&line).unwrap();
                    let mut d = d.lock().unwrap();
                    let resp = match req {
                        Request::Apply(c) => match d.apply(&c) {
                            Ok(_) => Response::Ok,
                            Err(e) => Response::Error(e.to_string()),
                        },
                        Request::List => Response::Listing(Listing {
                            conn_table_size: 4096,
                            services: d
                                .services()
                                .map(|s| ServiceView {
                                    spec: s.spec.clone(),
                                    dests: s
                                        .dests
                                        .iter()
                                        .map(|x| DestView {
                                            spec: x.spec,
                                            active: 0,
                                            inactive: 0,
                                            persistent: 0,
                                            stats: Default::default(),
                                            rates: Default::default(),
                                        })
                                        .collect(),
                                    stats: Default::default(),
                                    rates: Default::default(),
                                })
                                .collect(),
                        }),
                        _ => Response::Error("not in the stand-in".into()),
                    };
                    let mut out = serde_json::to_string(&resp).unwrap();
                    out.push('\n');
                    let _ = s.write_all(out.as_bytes());
                }
            });
            FakeRvsd { director, path }
        }

        /// (dest, weight) of a service, in rvsd's list order (newest first).
        fn dests(&self, key: &ServiceKey) -> Vec<(String, u32)> {
            let d = self.director.lock().unwrap();
            d.service(key)
                .map(|s| {
                    s.dests
                        .iter()
                        .map(|x| (x.spec.addr.to_string(), x.spec.weight))
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    fn key() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        }
    }

    const CONFIG: &str = "virtual_server 10.0.0.1 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.0.11 80 {
    weight 2
    TCP_CHECK {
    }
  }
  real_server 10.0.0.12 80 {
    TCP_CHECK {
    }
  }
}
";

    fn applier(socket: &Path) -> Applier {
        Applier {
            socket: socket.to_path_buf(),
            applied: Table::default(),
            resync: true,
            retry_at: None,
            next_presence_check: Instant::now() + PRESENCE_CHECK,
            last_error: None,
        }
    }

    #[test]
    fn adopts_an_existing_table_and_restores_after_rvsd_restarts() {
        let rvsd = FakeRvsd::start();
        // Left from before: the service with another scheduler, one of our
        // servers at a stale weight, and a server someone else added.
        {
            let mut d = rvsd.director.lock().unwrap();
            d.apply(&Command::AddService(ServiceSpec {
                key: key(),
                scheduler: "wlc".into(),
                sched_flags: 0,
                persistent: None,
                netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
                one_packet: false,
            }))
            .unwrap();
            for (a, w) in [("10.0.0.11", 7), ("10.0.0.50", 1)] {
                d.apply(&Command::AddDest(
                    key(),
                    DestSpec {
                        addr: a.parse().unwrap(),
                        port: 80,
                        fwd: FwdMethod::Route,
                        weight: w,
                        u_threshold: 0,
                        l_threshold: 0,
                    },
                ))
                .unwrap();
            }
        }
        let cfg = crate::config::load_str_for_tests(CONFIG);
        let now = Instant::now();
        let mut engine = Engine::new(&cfg, fastrand::Rng::with_seed(1), now);
        engine.start(now);
        let mut a = applier(&rvsd.path);
        a.sync(&engine, now);
        assert!(a.last_error.is_none(), "{:?}", a.last_error);
        assert_eq!(
            rvsd.director
                .lock()
                .unwrap()
                .service(&key())
                .unwrap()
                .spec
                .scheduler,
            "rr"
        );
        assert_eq!(
            rvsd.dests(&key()),
            [
                ("10.0.0.12".to_string(), 1),
                ("10.0.0.50".into(), 1),
                ("10.0.0.11".into(), 2)
            ]
        );
        // Nothing left to do: a second sync sends nothing.
        assert!(diff(&a.applied, engine.table()).is_empty());

        // rvsd restarts with an empty table: the presence check notices.
        *rvsd.director.lock().unwrap() = Director::new();
        a.next_presence_check = Instant::now();
        a.sync(&engine, Instant::now());
        // rvs-keepalived adds them in keepalived's order: the first newest-last.
        assert_eq!(
            rvsd.dests(&key()),
            [("10.0.0.12".to_string(), 1), ("10.0.0.11".into(), 2)]
        );

        // rvsd gone: the error is kept, retried later, nothing breaks.
        std::fs::remove_file(&rvsd.path).unwrap();
        let mut a2 = applier(&rvsd.path);
        a2.sync(&engine, Instant::now());
        assert!(
            a2.last_error
                .as_deref()
                .unwrap_or("")
                .contains("rvsd is not running"),
            "{:?}",
            a2.last_error
        );
        assert!(a2.retry_at.is_some());
    }

    #[test]
    fn a_refused_command_is_logged_and_healed_by_a_read_back() {
        let rvsd = FakeRvsd::start();
        let cfg = crate::config::load_str_for_tests(CONFIG);
        let t0 = Instant::now();
        let mut engine = Engine::new(&cfg, fastrand::Rng::with_seed(1), t0);
        engine.start(t0);
        let mut a = applier(&rvsd.path);
        a.sync(&engine, t0);
        let rs2 = DestKey {
            addr: "10.0.0.12".parse().unwrap(),
            port: 80,
        };
        // Someone deletes one of our dests behind our back; then its check
        // fails, and our delete is refused.
        rvsd.director
            .lock()
            .unwrap()
            .apply(&Command::DelDest(key(), rs2))
            .unwrap();
        let t1 = t0 + crate::state::BOOTSTRAP_DELAY + Duration::from_secs(60);
        for job in engine.due(t1) {
            let o = if job.rs_name.contains("10.0.0.12") {
                Outcome::Down("Connection refused".into())
            } else {
                Outcome::Up(None)
            };
            engine.on_result(job.r, o, t1, SystemTime::now());
        }
        assert!(engine.table().dest(key(), rs2).is_none());
        a.sync(&engine, t1);
        let err = a.last_error.clone().unwrap_or_default();
        assert!(
            err.starts_with(
                "IPVS cmd DEL_DEST (TCP 10.0.0.1:80 -> 10.0.0.12:80) error: No such destination"
            ),
            "{err}"
        );
        let retry = a.retry_at.expect("a retry is planned");
        // Before the retry time nothing is sent; after it, rvsd is read
        // back and agrees: nothing left to do.
        a.sync(&engine, t1);
        assert!(a.resync);
        a.sync(&engine, retry);
        assert!(!a.resync);
        assert!(diff(&a.applied, engine.table()).is_empty());
        assert_eq!(rvsd.dests(&key()), [("10.0.0.11".to_string(), 2)]);
        let _ = std::fs::remove_file(&rvsd.path);
    }
}
