//! The health state of every real server, kept the way keepalived keeps it
//! (`ipwrapper.c`, the checkers' epilogues): retries, alpha and omega,
//! inhibit_on_failure, quorum with hysteresis, the sorry server, notify and
//! quorum scripts, MISC_CHECK's dynamic weights, and reloads that keep the
//! state of what did not change.
//!
//! Why this file is long (about 1500 lines): keepalived's health-state rules
//! interact (retries, alpha and omega, quorum, the sorry server, scripts,
//! reloads) and are kept together so that each case is decided in one place;
//! the tests are in `state/tests.rs`.
//!
//! The [`Engine`] is pure: time comes in as arguments, check results come in
//! as [`Outcome`]s, and what it decides comes out as edits of the desired
//! [`Table`] and as [`Action`]s (log lines in keepalived's words, scripts to
//! run). The daemon does the I/O; the tests drive it with a made-up clock.

use std::time::{Duration, Instant, SystemTime};

use rvs_control_proto::health::{CheckerHealth, HealthStatus, RsHealth, SorryHealth, VsHealth};
use rvs_ipvs::director::MAX_WEIGHT;
use rvs_ipvs::{DestKey, DestSpec};

use crate::config::{CheckKind, Checker, Config, RealServer, Script, VirtualServer, VsIdentity};
use crate::mapping::{dest_spec, service_spec};
use crate::table::Table;

/// keepalived's BOOTSTRAP_DELAY: the first check waits this plus a random
/// part of `warmup`.
pub const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

/// Something the daemon must do for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A log line, in keepalived's words.
    Log(String),
    /// Run a notify or quorum script and do not wait for it.
    Run(Script),
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; HTTP_GET adds keepalived's "... success to ... url(...)".
    Up(Option<String>),
    /// Failure, with keepalived's words for why ("Connection refused",
    /// "HTTP status code error to", ...).
    Down(String),
    /// MISC_CHECK's script exited with this status.
    Exit(i32),
    /// MISC_CHECK's script died of this signal.
    Signal(i32),
    /// MISC_CHECK's script ran past its timeout and was killed.
    TimedOut,
}

/// Names a checker for the lifetime of one configuration (`gen` changes on
/// each reload, so a result that was in flight across one is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckerRef {
    pub gen: u64,
    pub vs: usize,
    pub rs: usize,
    pub ck: usize,
}

/// A check to run now.
#[derive(Debug, Clone)]
pub struct Job {
    pub r: CheckerRef,
    pub checker: Checker,
    /// keepalived's name of the real server, for messages.
    pub rs_name: String,
}

#[derive(Debug)]
struct CkState {
    cfg: Checker,
    is_up: bool,
    has_run: bool,
    retry_it: u32,
    /// MISC_CHECK dynamic weight's contribution to the effective weight.
    cur_weight: i64,
    last_exit_code: i32,
    next_due: Instant,
    /// Given a first time (new checkers wait for start or reload to).
    scheduled: bool,
    in_flight: bool,
    last_check: Option<SystemTime>,
    last_ok: Option<bool>,
    last_error: Option<String>,
}

#[derive(Debug)]
struct RsState {
    cfg: RealServer,
    /// keepalived's `alive`: the checkers hold it up.
    alive: bool,
    /// In the table (possibly at weight 0 when inhibited).
    set: bool,
    effective_weight: i64,
    /// The effective weight before a reload, when it was kept.
    prev_effective_weight: Option<i64>,
    num_failed_checkers: u32,
    checkers: Vec<CkState>,
    flaps: u64,
    since: Option<SystemTime>,
}

#[derive(Debug)]
struct SorryState {
    alive: bool,
    set: bool,
}

#[derive(Debug)]
struct VsState {
    cfg: VirtualServer,
    quorum_up: bool,
    sorry: Option<SorryState>,
    rs: Vec<RsState>,
}

/// Who an IPVS command is about.
#[derive(Debug, Clone, Copy)]
enum Target {
    Rs(usize),
    Sorry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Del,
    Edit,
}

/// The health state of a configuration.
pub struct Engine {
    gen: u64,
    vss: Vec<VsState>,
    table: Table,
    log_all_failures: bool,
    lvs_flush_onstop: bool,
    actions: Vec<Action>,
    rng: fastrand::Rng,
}

fn real_weight(w: i64) -> u32 {
    w.clamp(0, MAX_WEIGHT as i64) as u32
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Engine {
    /// The state of `config` before anything ran: call [`Engine::start`].
    /// `rng` spreads the first checks over their warmup.
    pub fn new(config: &Config, rng: fastrand::Rng, now: Instant) -> Engine {
        Engine {
            gen: 1,
            vss: build(config, now),
            table: Table::default(),
            log_all_failures: config.log_all_failures,
            lvs_flush_onstop: config.lvs_flush_onstop,
            actions: Vec::new(),
            rng,
        }
    }

    /// What keepalived does after reading its configuration: alpha
    /// checkers start failed, the services and live servers go into the
    /// table, quorum is weighed, and the checkers are scheduled.
    pub fn start(&mut self, now: Instant) {
        for v in 0..self.vss.len() {
            for r in 0..self.vss[v].rs.len() {
                for c in 0..self.vss[v].rs[r].checkers.len() {
                    if self.vss[v].rs[r].checkers[c].cfg.alpha {
                        self.set_checker_state(v, r, c, false);
                        self.vss[v].rs[r].alive = false;
                    }
                    let ck = &mut self.vss[v].rs[r].checkers[c];
                    // Non-alpha: one failure is enough at first.
                    ck.retry_it = ck.cfg.retry;
                }
            }
        }
        self.set_effective_weights();
        self.set_quorum_states();
        for v in 0..self.vss.len() {
            self.init_service_vs(v);
        }
        self.register_checkers(now);
    }

    pub fn generation(&self) -> u64 {
        self.gen
    }

    /// The table the health state wants rvsd to have.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Log lines and scripts decided since the last call.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Every service and dest the configuration speaks of: what the daemon
    /// may touch in rvsd's table (others it leaves alone).
    pub fn manages_service(&self, key: rvs_ipvs::ServiceKey) -> bool {
        self.vss.iter().any(|v| v.cfg.services.contains(&key))
    }

    pub fn manages_dest(&self, key: rvs_ipvs::ServiceKey, dest: DestKey) -> bool {
        self.vss.iter().any(|v| {
            v.cfg.services.contains(&key)
                && (v
                    .cfg
                    .real_servers
                    .iter()
                    .any(|r| r.addr == dest.addr && r.dest_port(key.port) == dest.port)
                    || v.cfg
                        .sorry_server
                        .as_ref()
                        .is_some_and(|s| s.addr == dest.addr && s.dest_port(key.port) == dest.port))
        })
    }

    /// The checks due at `now`, now marked as running.
    pub fn due(&mut self, now: Instant) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (v, vs) in self.vss.iter_mut().enumerate() {
            for (r, rs) in vs.rs.iter_mut().enumerate() {
                for (c, ck) in rs.checkers.iter_mut().enumerate() {
                    if ck.scheduled && !ck.in_flight && ck.next_due <= now {
                        ck.in_flight = true;
                        jobs.push(Job {
                            r: CheckerRef {
                                gen: self.gen,
                                vs: v,
                                rs: r,
                                ck: c,
                            },
                            checker: ck.cfg.clone(),
                            rs_name: rs.cfg.name.clone(),
                        });
                    }
                }
            }
        }
        jobs
    }

    /// When the next check is due, if any is waiting.
    pub fn next_due(&self) -> Option<Instant> {
        self.vss
            .iter()
            .flat_map(|v| v.rs.iter())
            .flat_map(|r| r.checkers.iter())
            .filter(|c| c.scheduled && !c.in_flight)
            .map(|c| c.next_due)
            .min()
    }

    /// A check finished.
    pub fn on_result(&mut self, r: CheckerRef, outcome: Outcome, now: Instant, wall: SystemTime) {
        if r.gen != self.gen
            || r.vs >= self.vss.len()
            || r.rs >= self.vss[r.vs].rs.len()
            || r.ck >= self.vss[r.vs].rs[r.rs].checkers.len()
        {
            return;
        }
        let ck = &mut self.vss[r.vs].rs[r.rs].checkers[r.ck];
        ck.in_flight = false;
        ck.last_check = Some(wall);
        if matches!(ck.cfg.kind, CheckKind::Misc(_)) {
            self.misc_result(r, outcome, now);
        } else {
            self.net_result(r, outcome, now);
        }
    }

    fn fmt_chk(&self, r: CheckerRef) -> String {
        self.vss[r.vs].rs[r.rs].cfg.name.clone()
    }

    fn log(&mut self, s: impl Into<String>) {
        self.actions.push(Action::Log(s.into()))
    }

    /// TCP_CHECK, HTTP_GET, SSL_GET, DNS_CHECK and UDP_CHECK: their
    /// epilogues differ only in words.
    fn net_result(&mut self, r: CheckerRef, outcome: Outcome, now: Instant) {
        let name = self.fmt_chk(r);
        let log_all = self.log_all_failures;
        let ck = &mut self.vss[r.vs].rs[r.rs].checkers[r.ck];
        let kind = ck.cfg.kind.clone();
        let is_http = matches!(kind, CheckKind::Http(_));
        let mut logs: Vec<String> = Vec::new();
        let mut transition: Option<bool> = None;
        let next;
        match outcome {
            Outcome::Up(detail) => {
                ck.last_ok = Some(true);
                ck.retry_it = 0;
                if !ck.is_up || !ck.has_run {
                    if !ck.is_up {
                        logs.extend(detail);
                    }
                    match &kind {
                        CheckKind::Tcp => logs.push(format!("TCP connection to {name} success.")),
                        CheckKind::Http(_) => {
                            logs.push(format!("Remote Web server {name} succeed on service."))
                        }
                        CheckKind::Udp(_) => {
                            logs.push(format!("UDP connection to {name} success."))
                        }
                        _ => {}
                    }
                    transition = Some(true);
                }
                next = ck.cfg.delay_loop;
            }
            other => {
                let reason = match other {
                    Outcome::Down(r) => r,
                    o => format!("{o:?}"),
                };
                ck.last_ok = Some(false);
                ck.last_error = Some(reason.clone());
                if ck.is_up || !ck.has_run {
                    if log_all || ck.cfg.log_all_failures {
                        logs.push(match &kind {
                            CheckKind::Tcp => {
                                format!("TCP connection to {name} failed ({reason}).")
                            }
                            CheckKind::Http(_) => format!("{reason} server {name}."),
                            CheckKind::Udp(_) => {
                                format!("UDP connection to {name} failed ({reason}).")
                            }
                            _ => format!("DNS_CHECK ({name}) {reason}"),
                        });
                    }
                    if ck.retry_it < ck.cfg.retry {
                        ck.retry_it += 1;
                        next = ck.cfg.delay_before_retry;
                    } else {
                        let after = ck.cfg.retry > 0 && ck.has_run;
                        let retries = ck.cfg.retry;
                        match &kind {
                            CheckKind::Dns(_) if !(log_all || ck.cfg.log_all_failures) => logs
                                .push(if after {
                                    format!("DNS_CHECK ({name}) {reason} after {retries} retries")
                                } else {
                                    format!("DNS_CHECK ({name}) {reason}")
                                }),
                            CheckKind::Dns(_) => {}
                            k => {
                                let label = match k {
                                    CheckKind::Tcp => "TCP_CHECK",
                                    CheckKind::Udp(_) => "UDP_CHECK",
                                    _ => "HTTP_CHECK",
                                };
                                logs.push(if after {
                                    format!(
                                        "{label} on service {name} failed after {retries} retries."
                                    )
                                } else {
                                    format!("{label} on service {name} failed.")
                                });
                            }
                        }
                        ck.retry_it = 0;
                        transition = Some(false);
                        next = ck.cfg.delay_loop;
                    }
                } else {
                    // Already known down: no retries, one check a loop
                    // (HTTP_GET waits the longer of the two delays).
                    ck.retry_it = 0;
                    next = if is_http {
                        ck.cfg.delay_loop.max(ck.cfg.delay_before_retry)
                    } else {
                        ck.cfg.delay_loop
                    };
                }
            }
        }
        ck.next_due = now + next;
        for l in logs {
            self.log(l);
        }
        if let Some(up) = transition {
            self.update_svr_checker_state(up, r);
        }
        self.vss[r.vs].rs[r.rs].checkers[r.ck].has_run = true;
    }

    /// MISC_CHECK's epilogue (`misc_check_child_thread`).
    fn misc_result(&mut self, r: CheckerRef, outcome: Outcome, now: Instant) {
        let name = self.fmt_chk(r);
        let vs_name = self.vss[r.vs].cfg.name.clone();
        let log_all = self.log_all_failures;
        let (dynamic, script0) = match &self.vss[r.vs].rs[r.rs].checkers[r.ck].cfg.kind {
            CheckKind::Misc(m) => (
                m.dynamic,
                m.script.args.first().cloned().unwrap_or_default(),
            ),
            _ => return,
        };
        let iweight = self.vss[r.vs].rs[r.rs].cfg.weight as i64;
        let mut exit_type: Option<&'static str> = None;
        let mut success = false;
        let mut reason: Option<(&'static str, i32)> = None;
        let mut message_only = false;
        let mut new_weight: Option<i64> = None;
        {
            let rs = &mut self.vss[r.vs].rs[r.rs];
            let ck = &mut rs.checkers[r.ck];
            match outcome {
                Outcome::Exit(status)
                    if status == 0 || (dynamic && (2..=255).contains(&status)) =>
                {
                    if status != ck.last_exit_code {
                        let mut eff = rs.effective_weight - ck.cur_weight;
                        ck.cur_weight = if status != 0 {
                            status as i64 - 2 - iweight
                        } else {
                            0
                        };
                        eff += ck.cur_weight;
                        new_weight = Some(eff);
                        ck.last_exit_code = status;
                    }
                    if !ck.is_up || !ck.has_run {
                        exit_type = Some("succeeded");
                        success = true;
                    }
                    ck.retry_it = 0;
                    ck.last_ok = Some(true);
                }
                other => {
                    ck.last_ok = Some(false);
                    let exit_status = match other {
                        Outcome::Exit(st) => Some(st),
                        _ => None,
                    };
                    let (what, why) = match other {
                        Outcome::Exit(s) => ("failed", Some(("exited with status", s))),
                        Outcome::Signal(s) => ("failed", Some(("due to signal", s))),
                        Outcome::TimedOut => ("timed out", None),
                        Outcome::Down(msg) => {
                            ck.last_error = Some(msg);
                            ("failed", None)
                        }
                        Outcome::Up(_) => ("failed", None),
                    };
                    if let Some((w, c)) = why {
                        ck.last_error = Some(format!("{script0} {w} {c}"));
                    } else if what == "timed out" {
                        ck.last_error = Some(format!("{script0} timed out"));
                    }
                    if ck.is_up || !ck.has_run {
                        exit_type = Some(what);
                        reason = why;
                        if ck.retry_it < ck.cfg.retry {
                            ck.retry_it += 1;
                            if log_all || ck.cfg.log_all_failures {
                                message_only = true;
                            } else {
                                exit_type = None;
                            }
                        } else {
                            ck.retry_it = 0;
                            rs.effective_weight -= ck.cur_weight;
                            ck.cur_weight = 0;
                            if let Some(st) = exit_status {
                                ck.last_exit_code = st;
                            }
                        }
                    }
                }
            }
        }
        if let Some(w) = new_weight {
            self.update_svr_wgt(w, r.vs, r.rs, true);
        }
        if let Some(et) = exit_type {
            let ck = &self.vss[r.vs].rs[r.rs].checkers[r.ck];
            let retry = ck.cfg.retry;
            let suffix = if success {
                String::new()
            } else if retry > 0 {
                match ck.retry_it {
                    1 => format!(
                        ", will do {retry} {}",
                        if retry == 1 { "retry" } else { "retries" }
                    ),
                    n if n > 1 => format!(" on retry {}/{retry}", n - 1),
                    _ => format!(
                        " after {retry} {}",
                        if retry == 1 { "retry" } else { "retries" }
                    ),
                }
            } else {
                " with retry disabled".to_string()
            };
            match reason {
                Some((w, c)) => self.log(format!(
                    "Misc check for [{name} VS {vs_name}] by [{script0}] {et}{suffix} ({w} {c})."
                )),
                None => self.log(format!(
                    "Misc check for [{name} VS {vs_name}] by [{script0}] {et}{suffix}."
                )),
            }
            if !message_only {
                self.update_svr_checker_state(success, r);
                if !success {
                    self.vss[r.vs].rs[r.rs].checkers[r.ck].cur_weight = 0;
                }
            }
        }
        let ck = &mut self.vss[r.vs].rs[r.rs].checkers[r.ck];
        ck.next_due = now
            + if ck.retry_it > 0 {
                ck.cfg.delay_before_retry
            } else {
                ck.cfg.delay_loop
            };
        ck.has_run = true;
    }

    // ---- keepalived's ipwrapper.c ----

    fn weigh_live_realservers(&self, v: usize) -> u64 {
        self.vss[v]
            .rs
            .iter()
            .filter(|r| r.alive)
            .map(|r| real_weight(r.effective_weight) as u64)
            .sum()
    }

    fn set_quorum_states(&mut self) {
        for v in 0..self.vss.len() {
            let w = self.weigh_live_realservers(v);
            let vs = &mut self.vss[v];
            vs.quorum_up = w >= vs.cfg.quorum as u64 + vs.cfg.hysteresis as u64;
        }
    }

    fn set_effective_weights(&mut self) {
        for vs in &mut self.vss {
            for rs in &mut vs.rs {
                rs.effective_weight =
                    rs.cfg.weight as i64 + rs.checkers.iter().map(|c| c.cur_weight).sum::<i64>();
            }
        }
    }

    fn set_checker_state(&mut self, v: usize, r: usize, c: usize, up: bool) {
        let rs = &mut self.vss[v].rs[r];
        if rs.checkers[c].is_up == up {
            return;
        }
        rs.checkers[c].is_up = up;
        if !up {
            rs.num_failed_checkers += 1;
        } else if rs.num_failed_checkers > 0 {
            rs.num_failed_checkers -= 1;
        }
    }

    fn update_svr_checker_state(&mut self, alive: bool, r: CheckerRef) {
        let ck = &self.vss[r.vs].rs[r.rs].checkers[r.ck];
        if ck.is_up == alive {
            if !ck.has_run {
                if ck.cfg.alpha || !alive {
                    self.do_rs_notifies(r.vs, r.rs);
                }
                self.vss[r.vs].rs[r.rs].checkers[r.ck].has_run = true;
            }
            return;
        }
        self.vss[r.vs].rs[r.rs].checkers[r.ck].has_run = true;
        let failed = self.vss[r.vs].rs[r.rs].num_failed_checkers;
        if alive {
            if failed <= 1 {
                self.perform_svr_state(true, r.vs, r.rs);
            }
        } else if failed == 0 {
            self.perform_svr_state(false, r.vs, r.rs);
        }
        self.set_checker_state(r.vs, r.rs, r.ck, alive);
    }

    fn perform_svr_state(&mut self, alive: bool, v: usize, r: usize) {
        if self.vss[v].rs[r].alive == alive {
            return;
        }
        let vs = &self.vss[v];
        let rs = &vs.rs[r];
        let inhibit = rs.cfg.inhibit_on_failure;
        self.actions.push(Action::Log(format!(
            "{}ing service {} {} VS {}",
            match (alive, inhibit) {
                (true, true) => "Enabl",
                (true, false) => "Add",
                (false, true) => "Disabl",
                (false, false) => "Remov",
            },
            rs.cfg.name,
            if inhibit {
                "of"
            } else if alive {
                "to"
            } else {
                "from"
            },
            vs.cfg.name
        )));
        let sorry_alive = vs.sorry.as_ref().is_some_and(|s| s.alive);
        if vs.quorum_up || vs.sorry.is_none() || !sorry_alive {
            self.ipvs_cmd(if alive { Cmd::Add } else { Cmd::Del }, v, Target::Rs(r));
        }
        let rs = &mut self.vss[v].rs[r];
        rs.alive = alive;
        rs.flaps += 1;
        rs.since = Some(SystemTime::now());
        self.do_rs_notifies(v, r);
        self.update_quorum_state(v, false);
    }

    fn do_rs_notifies(&mut self, v: usize, r: usize) {
        let rs = &self.vss[v].rs[r];
        let script = if rs.alive {
            &rs.cfg.notify_up
        } else {
            &rs.cfg.notify_down
        };
        if let Some(s) = script.clone() {
            self.actions.push(Action::Run(s));
        }
    }

    fn do_vs_notifies(&mut self, v: usize, stopping: bool) {
        let vs = &self.vss[v];
        if stopping && !vs.cfg.omega {
            return;
        }
        let script = if vs.quorum_up {
            &vs.cfg.quorum_up
        } else {
            &vs.cfg.quorum_down
        };
        if let Some(s) = script.clone() {
            self.actions.push(Action::Run(s));
        }
    }

    /// Adds or removes the live servers (when the sorry server leaves or
    /// comes in).
    fn perform_quorum_state(&mut self, v: usize, add: bool) {
        let name = self.vss[v].cfg.name.clone();
        self.log(format!(
            "{} the pool for VS {name}",
            if add {
                "Adding alive servers to"
            } else {
                "Removing alive servers from"
            }
        ));
        for r in 0..self.vss[v].rs.len() {
            if !self.vss[v].rs[r].alive {
                continue;
            }
            self.ipvs_cmd(if add { Cmd::Add } else { Cmd::Del }, v, Target::Rs(r));
        }
    }

    fn update_quorum_state(&mut self, v: usize, init: bool) {
        let weight_sum = self.weigh_live_realservers(v);
        let vs = &self.vss[v];
        let (q, h) = (vs.cfg.quorum as i64, vs.cfg.hysteresis as i64);
        let threshold = q + if vs.quorum_up { -h } else { h };
        let sorry_alive = vs.sorry.as_ref().map(|s| s.alive);
        if !vs.quorum_up && weight_sum as i64 >= threshold {
            self.vss[v].quorum_up = true;
            let name = self.vss[v].cfg.name.clone();
            self.log(format!(
                "Gained quorum {q}+{h}={threshold} <= {weight_sum} for VS {name}"
            ));
            if sorry_alive == Some(true) {
                let s = self.vss[v]
                    .cfg
                    .sorry_server
                    .as_ref()
                    .map(|s| (s.name.clone(), s.inhibit));
                if let Some((sname, inhibit)) = s {
                    self.log(format!(
                        "{} sorry server {sname} from VS {name}",
                        if inhibit { "Disabling" } else { "Removing" }
                    ));
                }
                self.ipvs_cmd(Cmd::Del, v, Target::Sorry);
                if let Some(s) = &mut self.vss[v].sorry {
                    s.alive = false;
                }
                self.perform_quorum_state(v, true);
            }
            self.do_vs_notifies(v, false);
        } else if (vs.quorum_up && (weight_sum == 0 || (weight_sum as i64) < threshold))
            || (init && !vs.quorum_up && sorry_alive == Some(false))
        {
            self.vss[v].quorum_up = false;
            let name = self.vss[v].cfg.name.clone();
            self.log(format!(
                "{} {q}-{h}={threshold} > {weight_sum} for VS {name}",
                if init {
                    "Starting with quorum down"
                } else {
                    "Lost quorum"
                }
            ));
            if sorry_alive == Some(false) {
                let s = self.vss[v]
                    .cfg
                    .sorry_server
                    .as_ref()
                    .map(|s| (s.name.clone(), s.inhibit));
                if let Some((sname, inhibit)) = s {
                    self.log(format!(
                        "{} sorry server {sname} to VS {name}",
                        if inhibit { "Enabling" } else { "Adding" }
                    ));
                }
                self.perform_quorum_state(v, false);
                self.ipvs_cmd(Cmd::Add, v, Target::Sorry);
                if let Some(s) = &mut self.vss[v].sorry {
                    s.alive = true;
                }
            }
            self.do_vs_notifies(v, false);
        }
    }

    fn update_svr_wgt(&mut self, weight: i64, v: usize, r: usize, update_quorum: bool) {
        let rs = &mut self.vss[v].rs[r];
        let (old, new) = (real_weight(rs.effective_weight), real_weight(weight));
        rs.effective_weight = weight;
        if old == new {
            return;
        }
        let (alive, set, rs_name) = (rs.alive, rs.set, rs.cfg.name.clone());
        let vs = &self.vss[v];
        self.actions.push(Action::Log(format!(
            "Changing weight from {old} to {new} for {}active service {rs_name} of VS {}",
            if alive { "" } else { "in" },
            vs.cfg.name
        )));
        let sorry_alive = vs.sorry.as_ref().is_some_and(|s| s.alive);
        if set && alive && (vs.quorum_up || vs.sorry.is_none() || !sorry_alive) {
            self.ipvs_cmd(Cmd::Edit, v, Target::Rs(r));
        }
        if update_quorum {
            self.update_quorum_state(v, false);
        }
    }

    /// keepalived's `ipvs_cmd`: inhibit_on_failure turns a removal into
    /// weight 0, and `set` tracks whether the dest is in the table.
    fn ipvs_cmd(&mut self, mut cmd: Cmd, v: usize, t: Target) {
        let vs = &mut self.vss[v];
        let (addr, port_of, fwd, mut weight, uth, lth, inhibit, set, failed): (
            _,
            Box<dyn Fn(u16) -> u16>,
            _,
            _,
            _,
            _,
            _,
            &mut bool,
            u32,
        ) = match t {
            Target::Rs(r) => {
                let rs = &mut vs.rs[r];
                let cfg = rs.cfg.clone();
                (
                    cfg.addr,
                    Box::new(move |p| cfg.dest_port(p)),
                    rs.cfg.fwd,
                    real_weight(rs.effective_weight),
                    rs.cfg.u_threshold,
                    rs.cfg.l_threshold,
                    rs.cfg.inhibit_on_failure,
                    &mut rs.set,
                    rs.num_failed_checkers,
                )
            }
            Target::Sorry => {
                let (Some(cfg), Some(st)) = (vs.cfg.sorry_server.clone(), vs.sorry.as_mut()) else {
                    return;
                };
                let c2 = cfg.clone();
                (
                    cfg.addr,
                    Box::new(move |p| c2.dest_port(p)),
                    cfg.fwd,
                    1,
                    0,
                    0,
                    cfg.inhibit,
                    &mut st.set,
                    0,
                )
            }
        };
        if cmd == Cmd::Del && inhibit {
            weight = 0;
            cmd = Cmd::Edit;
        } else if cmd == Cmd::Add && inhibit && *set {
            cmd = Cmd::Edit;
        } else if cmd == Cmd::Add && !*set {
            *set = true;
            if inhibit && failed > 0 {
                weight = 0;
            }
        } else if cmd == Cmd::Del && *set {
            *set = false;
        }
        let services = vs.cfg.services.clone();
        for key in services {
            let spec: DestSpec = dest_spec(addr, port_of(key.port), fwd, weight, uth, lth);
            match cmd {
                Cmd::Add | Cmd::Edit => {
                    self.table.set_dest(key, spec);
                }
                Cmd::Del => self.table.remove_dest(key, spec.key()),
            }
        }
    }

    /// Force a real removal, even with inhibit_on_failure (stop, reload).
    fn del_dest_forced(&mut self, v: usize, t: Target) {
        let vs = &mut self.vss[v];
        let (addr, port_of): (_, Box<dyn Fn(u16) -> u16>) = match t {
            Target::Rs(r) => {
                vs.rs[r].set = false;
                let cfg = vs.rs[r].cfg.clone();
                (cfg.addr, Box::new(move |p| cfg.dest_port(p)))
            }
            Target::Sorry => {
                let Some(cfg) = vs.cfg.sorry_server.clone() else {
                    return;
                };
                if let Some(s) = vs.sorry.as_mut() {
                    s.set = false;
                }
                (cfg.addr, Box::new(move |p| cfg.dest_port(p)))
            }
        };
        for key in vs.cfg.services.clone() {
            self.table.remove_dest(
                key,
                DestKey {
                    addr,
                    port: port_of(key.port),
                },
            );
        }
    }

    fn init_service_vs(&mut self, v: usize) {
        for key in self.vss[v].cfg.services.clone() {
            let spec = service_spec(&self.vss[v].cfg, key);
            self.table.upsert_service(spec);
        }
        // init_service_rs
        for r in 0..self.vss[v].rs.len() {
            let rs = &self.vss[v].rs[r];
            if let Some(prev) = rs.prev_effective_weight {
                let new = rs.effective_weight;
                if new != prev {
                    self.vss[v].rs[r].effective_weight = prev;
                    self.update_svr_wgt(new, v, r, false);
                }
                // Do not re-add failed servers instantly on reload.
                continue;
            }
            let rs = &self.vss[v].rs[r];
            if (rs.num_failed_checkers == 0 && !rs.alive) || (rs.cfg.inhibit_on_failure && !rs.set)
            {
                self.ipvs_cmd(Cmd::Add, v, Target::Rs(r));
                if self.vss[v].rs[r].num_failed_checkers == 0 {
                    self.vss[v].rs[r].alive = true;
                }
            }
        }
        self.update_quorum_state(v, true);
        // A sorry server with inhibit sits in the table at weight 0.
        let inhibit_unset = self.vss[v]
            .cfg
            .sorry_server
            .as_ref()
            .is_some_and(|s| s.inhibit)
            && self.vss[v].sorry.as_ref().is_some_and(|s| !s.set);
        if inhibit_unset {
            let vs = &self.vss[v];
            let cfg = vs.cfg.sorry_server.clone().expect("checked above");
            for key in vs.cfg.services.clone() {
                let spec = dest_spec(cfg.addr, cfg.dest_port(key.port), cfg.fwd, 0, 0, 0);
                self.table.set_dest(key, spec);
            }
            if let Some(s) = self.vss[v].sorry.as_mut() {
                s.set = true;
            }
        }
    }

    fn register_checkers(&mut self, now: Instant) {
        let mut logs = Vec::new();
        for vs in &mut self.vss {
            for rs in &mut vs.rs {
                for ck in &mut rs.checkers {
                    logs.push(format!(
                        "Activating healthchecker for service {} for VS {}",
                        rs.cfg.name, vs.cfg.name
                    ));
                    let w = ck.cfg.warmup.as_micros() as u64;
                    let jitter = if w == 0 { 0 } else { self.rng.u64(0..=w) };
                    ck.next_due = now + BOOTSTRAP_DELAY + Duration::from_micros(jitter);
                    ck.scheduled = true;
                    ck.in_flight = false;
                }
            }
        }
        for l in logs {
            self.log(l);
        }
    }

    // ---- stopping ----

    /// keepalived's `clear_services`: on shutdown the servers and services
    /// leave the table (unless the daemon was told to keep them), and with
    /// omega the down notifiers run.
    pub fn stop(&mut self) {
        if self.lvs_flush_onstop {
            for v in 0..self.vss.len() {
                self.update_vs_notifies(v, true);
            }
            self.table = Table::default();
            return;
        }
        for v in 0..self.vss.len() {
            self.clear_service_vs(v, true);
        }
    }

    /// Whether stopping should flush rvsd's whole table (`lvs_flush_onstop`).
    pub fn flush_on_stop(&self) -> bool {
        self.lvs_flush_onstop
    }

    fn update_vs_notifies(&mut self, v: usize, stopping: bool) {
        let q = self.vss[v].cfg.quorum as i64;
        let h = self.vss[v].cfg.hysteresis as i64;
        let w = self.weigh_live_realservers(v) as i64;
        let vs = &self.vss[v];
        if stopping || (vs.quorum_up && (w == 0 || w < q - h)) {
            self.vss[v].quorum_up = false;
            self.do_vs_notifies(v, stopping);
        }
    }

    fn clear_service_rs(&mut self, v: usize, r: usize, stopping: bool) {
        let vs = &self.vss[v];
        let rs = &vs.rs[r];
        if rs.set || stopping {
            let line = format!(
                "{} {}service {} from VS {}",
                if stopping {
                    "Shutting down"
                } else {
                    "Removing"
                },
                if rs.cfg.inhibit_on_failure && !rs.alive {
                    "(inhibited) "
                } else {
                    ""
                },
                rs.cfg.name,
                vs.cfg.name
            );
            self.log(line);
        }
        if !self.vss[v].rs[r].set {
            return;
        }
        self.del_dest_forced(v, Target::Rs(r));
        if !self.vss[v].rs[r].alive {
            return;
        }
        self.vss[v].rs[r].alive = false;
        if !self.vss[v].cfg.omega && stopping {
            return;
        }
        self.do_rs_notifies(v, r);
    }

    fn clear_service_vs(&mut self, v: usize, stopping: bool) {
        if self.vss[v].sorry.as_ref().is_some_and(|s| s.set) {
            self.del_dest_forced(v, Target::Sorry);
            if let Some(s) = self.vss[v].sorry.as_mut() {
                s.alive = false;
            }
        }
        for r in 0..self.vss[v].rs.len() {
            self.clear_service_rs(v, r, stopping);
        }
        self.update_vs_notifies(v, stopping);
        for key in self.vss[v].cfg.services.clone() {
            self.table.remove_service(key);
        }
    }

    // ---- reload ----

    /// keepalived's reload: virtual servers and real servers that stay keep
    /// their state (alive, weights, checker results); what went is removed;
    /// what is new starts as at start-up. Only the differences reach the
    /// table.
    pub fn reload(&mut self, config: &Config, now: Instant) {
        self.actions.push(Action::Log("Reloading".into()));
        let new_vss = build(config, now);
        self.gen += 1;
        self.log_all_failures = config.log_all_failures;
        self.lvs_flush_onstop = config.lvs_flush_onstop;
        // `self.vss` still holds the old state, so the removal helpers work
        // on it; `matched[old] = Some(new)` for virtual servers that stay.
        let matched: Vec<Option<usize>> = self
            .vss
            .iter()
            .map(|o| {
                new_vss
                    .iter()
                    .position(|n| n.cfg.identity == o.cfg.identity)
            })
            .collect();
        for (i, m) in matched.iter().enumerate() {
            if m.is_none() {
                let line = match &self.vss[i].cfg.identity {
                    VsIdentity::Group(g, _) => format!("Removing Virtual Server Group [{g}]"),
                    VsIdentity::Addr(..) => {
                        format!("Removing Virtual Server {}", self.vss[i].cfg.name)
                    }
                };
                self.log(line);
                self.clear_service_vs(i, false);
            }
        }
        // Within the virtual servers that stay: real servers that went,
        // group entries that went, and the sorry server if it changed.
        for (i, m) in matched.iter().enumerate() {
            let Some(n) = *m else { continue };
            let new_cfg = &new_vss[n].cfg;
            for key in self.vss[i].cfg.services.clone() {
                if !new_cfg.services.contains(&key) {
                    if let VsIdentity::Group(g, _) = &new_cfg.identity {
                        let line = format!(
                            "VS [{}]:{}:{} in group {g} no longer exists",
                            key.addr,
                            key.protocol.name().to_lowercase(),
                            key.port
                        );
                        self.log(line);
                    }
                    self.table.remove_service(key);
                }
            }
            for r in 0..self.vss[i].rs.len() {
                let o = &self.vss[i].rs[r].cfg;
                if !new_cfg
                    .real_servers
                    .iter()
                    .any(|nr| nr.addr == o.addr && nr.port == o.port)
                {
                    let line = format!("service {} no longer exist", o.name);
                    self.log(line);
                    self.clear_service_rs(i, r, false);
                }
            }
            let old_sorry = self.vss[i].cfg.sorry_server.clone();
            let same_sorry = match (&old_sorry, &new_cfg.sorry_server) {
                (Some(a), Some(b)) => a.addr == b.addr && a.port == b.port,
                _ => false,
            };
            if let (Some(s), false) = (&old_sorry, same_sorry) {
                let st = self.vss[i].sorry.as_ref();
                if st.is_some_and(|st| st.alive || (s.inhibit && st.set)) {
                    let line = format!(
                        "Removing sorry server {} from VS {}",
                        s.name, self.vss[i].cfg.name
                    );
                    self.log(line);
                    self.del_dest_forced(i, Target::Sorry);
                }
            }
        }
        // Carry the state of what stays into the new configuration.
        let old_vss = std::mem::replace(&mut self.vss, new_vss);
        for (i, m) in matched.iter().enumerate() {
            let Some(n) = *m else { continue };
            let o = &old_vss[i];
            self.vss[n].quorum_up = o.quorum_up;
            let same_sorry = match (
                self.vss[n].cfg.sorry_server.as_ref(),
                o.cfg.sorry_server.as_ref(),
            ) {
                (Some(nc), Some(oc)) => nc.addr == oc.addr && nc.port == oc.port,
                _ => false,
            };
            if let (true, Some(ns), Some(os)) =
                (same_sorry, self.vss[n].sorry.as_mut(), o.sorry.as_ref())
            {
                ns.alive = os.alive;
                ns.set = os.set;
            }
            for r in 0..self.vss[n].rs.len() {
                let (addr, port) = (self.vss[n].rs[r].cfg.addr, self.vss[n].rs[r].cfg.port);
                let Some(or) =
                    o.rs.iter()
                        .find(|x| x.cfg.addr == addr && x.cfg.port == port)
                else {
                    continue;
                };
                let nr = &mut self.vss[n].rs[r];
                nr.alive = or.alive;
                nr.set = or.set;
                nr.prev_effective_weight = Some(or.effective_weight);
                nr.flaps = or.flaps;
                nr.since = or.since;
                migrate_checkers(or, nr, now);
                let fwd_changed = or.cfg.fwd != nr.cfg.fwd
                    || or.cfg.u_threshold != nr.cfg.u_threshold
                    || or.cfg.l_threshold != nr.cfg.l_threshold;
                let (alive, failed, set, inhibit) = (
                    nr.alive,
                    nr.num_failed_checkers,
                    nr.set,
                    nr.cfg.inhibit_on_failure,
                );
                if failed == 0 && !alive {
                    self.perform_svr_state(true, n, r);
                } else if failed > 0 && set != inhibit {
                    self.ipvs_cmd(if inhibit { Cmd::Add } else { Cmd::Del }, n, Target::Rs(r));
                }
                // The dest changed how it forwards: re-send it as it is now.
                if fwd_changed && self.vss[n].rs[r].set {
                    let nr = &self.vss[n].rs[r];
                    let weight = if nr.alive || !nr.cfg.inhibit_on_failure {
                        real_weight(or.effective_weight)
                    } else {
                        0
                    };
                    let cfg = nr.cfg.clone();
                    for key in self.vss[n].cfg.services.clone() {
                        let spec = dest_spec(
                            cfg.addr,
                            cfg.dest_port(key.port),
                            cfg.fwd,
                            weight,
                            cfg.u_threshold,
                            cfg.l_threshold,
                        );
                        self.table.set_dest(key, spec);
                    }
                }
            }
            // New group entries get the servers that are in the others.
            let new_keys: Vec<_> = self.vss[n]
                .cfg
                .services
                .iter()
                .filter(|k| !o.cfg.services.contains(k))
                .copied()
                .collect();
            if !new_keys.is_empty() {
                if let VsIdentity::Group(g, _) = &self.vss[n].cfg.identity {
                    for k in &new_keys {
                        let line = format!(
                            "VS [{}]:{}:{} added into group {g}",
                            k.addr,
                            k.protocol.name().to_lowercase(),
                            k.port
                        );
                        self.actions.push(Action::Log(line));
                    }
                }
                if let Some(existing) = self.vss[n]
                    .cfg
                    .services
                    .iter()
                    .find(|k| !new_keys.contains(k))
                    .copied()
                {
                    let spec_src: Vec<DestSpec> = self
                        .table
                        .services
                        .get(&existing.into())
                        .map(|s| s.dests.values().map(|d| d.spec).collect())
                        .unwrap_or_default();
                    for k in new_keys {
                        self.table.upsert_service(service_spec(&self.vss[n].cfg, k));
                        for d in &spec_src {
                            let mut d = *d;
                            if d.fwd != rvs_ipvs::FwdMethod::Masq {
                                d.port = k.port;
                            }
                            self.table.set_dest(k, d);
                        }
                    }
                }
            }
        }
        // New real servers with alpha checkers start down (check_new_rs_state).
        for v in 0..self.vss.len() {
            for r in 0..self.vss[v].rs.len() {
                if self.vss[v].rs[r].prev_effective_weight.is_some() {
                    continue;
                }
                for c in 0..self.vss[v].rs[r].checkers.len() {
                    let ck = &mut self.vss[v].rs[r].checkers[c];
                    ck.retry_it = ck.cfg.retry;
                    if ck.cfg.alpha {
                        self.set_checker_state(v, r, c, false);
                        self.vss[v].rs[r].alive = false;
                    }
                }
            }
        }
        // New virtual servers weigh their quorum as at start.
        for (n, vs) in self.vss.iter_mut().enumerate() {
            if !matched.contains(&Some(n)) {
                vs.quorum_up = false;
            }
        }
        self.set_effective_weights();
        for v in 0..self.vss.len() {
            if !matched.contains(&Some(v)) {
                let w = self.weigh_live_realservers(v);
                let vs = &mut self.vss[v];
                vs.quorum_up = w >= vs.cfg.quorum as u64 + vs.cfg.hysteresis as u64;
            }
            self.init_service_vs(v);
        }
        // Schedule the checkers that are new; migrated ones keep their times.
        let mut logs = Vec::new();
        for vs in &mut self.vss {
            for rs in &mut vs.rs {
                for ck in &mut rs.checkers {
                    if ck.scheduled {
                        continue;
                    }
                    logs.push(format!(
                        "Activating healthchecker for service {} for VS {}",
                        rs.cfg.name, vs.cfg.name
                    ));
                    let w = ck.cfg.warmup.as_micros() as u64;
                    let jitter = if w == 0 { 0 } else { self.rng.u64(0..=w) };
                    ck.next_due = now + BOOTSTRAP_DELAY + Duration::from_micros(jitter);
                    ck.scheduled = true;
                }
            }
        }
        for l in logs {
            self.log(l);
        }
    }

    // ---- visibility ----

    /// What the status file shows.
    pub fn status(&self, pid: u32, config: &str, wall: SystemTime) -> HealthStatus {
        HealthStatus {
            pid,
            config: config.to_string(),
            updated_ms: ms(wall),
            virtual_servers: self
                .vss
                .iter()
                .enumerate()
                .map(|(v, vs)| {
                    let first = vs.cfg.services[0];
                    VsHealth {
                        name: vs.cfg.name.clone(),
                        services: vs.cfg.services.clone(),
                        quorum_up: vs.quorum_up,
                        quorum: vs.cfg.quorum,
                        hysteresis: vs.cfg.hysteresis,
                        live_weight: self.weigh_live_realservers(v),
                        sorry_server: vs.cfg.sorry_server.as_ref().map(|s| SorryHealth {
                            addr: s.addr,
                            port: s.port,
                            active: vs.sorry.as_ref().is_some_and(|x| x.alive),
                            weight: self
                                .table
                                .dest(
                                    first,
                                    DestKey {
                                        addr: s.addr,
                                        port: s.dest_port(first.port),
                                    },
                                )
                                .map(|d| d.weight),
                        }),
                        real_servers: vs
                            .rs
                            .iter()
                            .map(|rs| {
                                let last = rs
                                    .checkers
                                    .iter()
                                    .filter_map(|c| c.last_check.map(|t| (t, c)))
                                    .max_by_key(|(t, _)| *t);
                                let last_error = rs
                                    .checkers
                                    .iter()
                                    .filter(|c| c.last_error.is_some())
                                    .max_by_key(|c| c.last_check)
                                    .map(|c| {
                                        format!(
                                            "{}: {}",
                                            c.cfg.kind.keyword(),
                                            c.last_error.as_deref().unwrap_or("")
                                        )
                                    });
                                RsHealth {
                                    name: rs.cfg.name.clone(),
                                    addr: rs.cfg.addr,
                                    port: rs.cfg.port,
                                    up: rs.alive,
                                    weight: self
                                        .table
                                        .dest(
                                            first,
                                            DestKey {
                                                addr: rs.cfg.addr,
                                                port: rs.cfg.dest_port(first.port),
                                            },
                                        )
                                        .map(|d| d.weight),
                                    configured_weight: rs.cfg.weight,
                                    flaps: rs.flaps,
                                    since_ms: rs.since.map(ms),
                                    last_check_ms: last.map(|(t, _)| ms(t)),
                                    last_error,
                                    checkers: rs
                                        .checkers
                                        .iter()
                                        .map(|c| CheckerHealth {
                                            kind: c.cfg.kind.keyword().to_string(),
                                            target: match (&c.cfg.kind, &c.cfg.conn) {
                                                (CheckKind::Misc(m), _) => m.script.to_string(),
                                                (_, Some(conn)) => conn.dst.to_string(),
                                                _ => String::new(),
                                            },
                                            up: c.is_up,
                                            last_check_ms: c.last_check.map(ms),
                                            last_ok: c.last_ok,
                                            last_error: c.last_error.clone(),
                                        })
                                        .collect(),
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

fn build(config: &Config, now: Instant) -> Vec<VsState> {
    config
        .virtual_servers
        .iter()
        .map(|vs| VsState {
            cfg: vs.clone(),
            quorum_up: true,
            sorry: vs.sorry_server.as_ref().map(|_| SorryState {
                alive: false,
                set: false,
            }),
            rs: vs
                .real_servers
                .iter()
                .map(|rs| RsState {
                    cfg: rs.clone(),
                    alive: false,
                    set: false,
                    effective_weight: rs.weight as i64,
                    prev_effective_weight: None,
                    num_failed_checkers: 0,
                    checkers: rs
                        .checkers
                        .iter()
                        .map(|c| CkState {
                            cfg: c.clone(),
                            is_up: true,
                            has_run: false,
                            retry_it: 0,
                            cur_weight: 0,
                            last_exit_code: 0,
                            next_due: now,
                            scheduled: false,
                            in_flight: false,
                            last_check: None,
                            last_ok: None,
                            last_error: None,
                        })
                        .collect(),
                    flaps: 0,
                    since: None,
                })
                .collect(),
        })
        .collect()
}

/// keepalived's `migrate_checkers`: a new checker that matches an old one
/// (same kind and settings) takes over its state.
fn migrate_checkers(old: &RsState, new: &mut RsState, now: Instant) {
    let mut used = vec![false; old.checkers.len()];
    for nc in &mut new.checkers {
        let Some(i) = old
            .checkers
            .iter()
            .enumerate()
            .position(|(i, oc)| !used[i] && same_checker(&oc.cfg, &nc.cfg))
        else {
            continue;
        };
        used[i] = true;
        let oc = &old.checkers[i];
        if oc.has_run {
            nc.is_up = oc.is_up;
        }
        nc.has_run = oc.has_run;
        if oc.retry_it > 0 && nc.cfg.retry > 0 {
            nc.retry_it = oc.retry_it.min(nc.cfg.retry - 1);
        }
        nc.last_exit_code = oc.last_exit_code;
        if let CheckKind::Misc(m) = &nc.cfg.kind {
            if m.dynamic && oc.last_exit_code != 1 {
                nc.cur_weight = oc.last_exit_code as i64
                    - if oc.last_exit_code != 0 { 2 } else { 0 }
                    - new.cfg.weight as i64;
                if oc.last_exit_code == 0 {
                    nc.cur_weight = 0;
                }
            }
        }
        nc.last_check = oc.last_check;
        nc.last_ok = oc.last_ok;
        nc.last_error = oc.last_error.clone();
        // Keep its rhythm; one that was running is checked again soon.
        nc.next_due = if oc.in_flight {
            now + BOOTSTRAP_DELAY
        } else {
            oc.next_due.max(now)
        };
        nc.scheduled = true;
    }
    new.num_failed_checkers = new
        .checkers
        .iter()
        .filter(|c| c.has_run && !c.is_up)
        .count() as u32;
    let any_run = new.checkers.iter().any(|c| c.has_run);
    if new.num_failed_checkers > 0 || (!new.alive && !any_run) {
        let mut extra_failed = 0;
        for c in &mut new.checkers {
            if !c.has_run {
                if c.cfg.alpha && c.is_up {
                    c.is_up = false;
                    extra_failed += 1;
                }
                c.retry_it = c.cfg.retry;
            }
        }
        new.num_failed_checkers += extra_failed;
    }
}

fn same_checker(a: &Checker, b: &Checker) -> bool {
    a.kind == b.kind && a.conn == b.conn
}

#[cfg(test)]
mod tests;
