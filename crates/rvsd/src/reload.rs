//! rvsd's side of loading and reloading: reading the configuration, the
//! rules file and rvs-keepalived's status file into a plan, which
//! `rvs-control` applies as the difference from the running table. The
//! same reading serves the start, SIGHUP, `rvsadm --reload` and
//! `--check-config`, so all four give the same messages.

use std::path::{Path, PathBuf};

use rvs_control::server::{DesiredTable, KeepalivedClaim, ReloadPlan, Reloader};
use rvs_control_proto::health;
use rvs_control_proto::reload::ReloadReport;

use crate::config::{live, Config};
use crate::notify;

/// Reads everything the configuration at `config_path` names. With the
/// configuration rvsd runs (`running`), settings that changed but need a
/// restart are listed in the plan. Errors name the file and the line.
pub fn plan(config_path: &Path, running: Option<&Config>) -> Result<(Config, ReloadPlan), String> {
    let cfg = Config::load(config_path).map_err(|e| format!("{e:#}"))?;
    let mut plan = ReloadPlan {
        sources: vec![format!("config {}", config_path.display())],
        timeouts: cfg.timeouts(),
        defense: Some(cfg.defense),
        left_alone: running
            .map(|r| live::restart_needed(r, &cfg))
            .unwrap_or_default(),
        ..ReloadPlan::default()
    };
    if let Some(path) = cfg.rules_path(config_path) {
        let desired = read_rules(&path)?;
        plan.sources
            .push(format!("rules {}: {}", path.display(), desired.summary()));
        plan.rules = Some(desired);
    }
    plan.keepalived = keepalived_claim(&cfg.control.keepalived_status, &mut plan.sources);
    Ok((cfg, plan))
}

/// A rules file, parsed with rvsadm's parser and played on an empty table.
pub fn read_rules(path: &Path) -> Result<DesiredTable, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("reading the rules file {name}: {e} (create it, empty if need be, or remove [control] rules)")
    })?;
    let rules = rvsadm::rules::parse_file(&text)
        .map_err(|e| format!("{name}:{}: {}: {}", e.line, e.msg, e.text.trim()))?;
    let numbered: Vec<_> = rules
        .into_iter()
        .map(|r| (r.line, r.text, r.command))
        .collect();
    DesiredTable::from_rules(&name, &numbered)
}

/// The services rvs-keepalived manages, when its status file says it runs.
fn keepalived_claim(status: &Path, sources: &mut Vec<String>) -> Option<KeepalivedClaim> {
    let s = health::read(status).ok()?;
    // A status file that outlived its process (killed with SIGKILL) claims
    // nothing.
    if !Path::new(&format!("/proc/{}", s.pid)).exists() {
        log::info!(
            "rvs-keepalived's status file {} names pid {}, which is not running: ignored",
            status.display(),
            s.pid
        );
        return None;
    }
    let services: Vec<_> = s
        .virtual_servers
        .iter()
        .flat_map(|vs| vs.services.iter().copied())
        .collect();
    sources.push(format!(
        "rvs-keepalived status {} (pid {}): it manages {} service{}",
        status.display(),
        s.pid,
        services.len(),
        if services.len() == 1 { "" } else { "s" }
    ));
    Some(KeepalivedClaim {
        pid: s.pid,
        config: s.config,
        services,
    })
}

/// Reloads for the control thread: on SIGHUP and `rvsadm --reload`.
pub struct FileReloader {
    pub config_path: PathBuf,
    /// The configuration rvsd started with; what cannot change live is
    /// compared with it, so a reload keeps saying what awaits a restart.
    pub running: Config,
}

impl Reloader for FileReloader {
    fn prepare(&mut self) -> Result<ReloadPlan, String> {
        notify::reloading();
        plan(&self.config_path, Some(&self.running)).map(|(_, p)| p)
    }

    fn finished(&mut self, outcome: &Result<ReloadReport, String>) {
        notify::ready(&match outcome {
            Ok(r) => {
                let n = r.applied.len() + r.timeouts.len() + r.settings.len();
                format!("reloaded: {n} change{}", if n == 1 { "" } else { "s" })
            }
            Err(e) => format!("reload refused, running configuration kept: {e}"),
        });
    }
}
