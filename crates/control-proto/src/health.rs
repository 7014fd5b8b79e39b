//! rvs-keepalived's health state, as it writes it to its status file (JSON,
//! replaced atomically): what `rvsadm --health` prints, and what a metrics
//! exporter can read for per-real-server gauges.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use rvs_ipvs::ServiceKey;

/// Where rvs-keepalived writes its status unless told otherwise.
pub const DEFAULT_STATUS_FILE: &str = "/run/rvs/keepalived.status";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// rvs-keepalived's process id.
    pub pid: u32,
    /// The configuration file it runs.
    pub config: String,
    /// When this was written (milliseconds since the Unix epoch).
    pub updated_ms: u64,
    pub virtual_servers: Vec<VsHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VsHealth {
    /// keepalived's name: `[192.168.1.10]:tcp:80`, or `[GROUP]:N`.
    pub name: String,
    /// The rvs services it stands for.
    pub services: Vec<ServiceKey>,
    pub quorum_up: bool,
    pub quorum: u32,
    pub hysteresis: u32,
    /// Sum of the weights of the servers that are up.
    pub live_weight: u64,
    pub sorry_server: Option<SorryHealth>,
    pub real_servers: Vec<RsHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SorryHealth {
    pub addr: IpAddr,
    pub port: u16,
    /// In use (quorum lost).
    pub active: bool,
    /// Its weight in rvsd's table; `None` when it is not in the table.
    pub weight: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RsHealth {
    /// keepalived's name: `[192.168.1.220]:tcp:80`.
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
    /// Whether the checkers hold it up (keepalived's "alive").
    pub up: bool,
    /// The weight in force in rvsd's table (for the first service of the
    /// virtual server): `None` when the server is not in the table, 0 when
    /// it is inhibited.
    pub weight: Option<u32>,
    /// The weight the configuration gives it.
    pub configured_weight: u32,
    /// Times it went from up to down or back.
    pub flaps: u64,
    /// When it last changed state (ms since the epoch).
    pub since_ms: Option<u64>,
    /// The latest check of any of its checkers (ms since the epoch).
    pub last_check_ms: Option<u64>,
    /// The latest failure of any of its checkers, with the checker's name.
    pub last_error: Option<String>,
    pub checkers: Vec<CheckerHealth>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckerHealth {
    /// TCP_CHECK, HTTP_GET, ...
    pub kind: String,
    /// What it connects to (or the script it runs).
    pub target: String,
    pub up: bool,
    pub last_check_ms: Option<u64>,
    /// Whether the latest check succeeded (`None` before the first).
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot read rvs-keepalived's status file {0}: {1} (is rvs-keepalived running? its --status-file must match)")]
    Read(String, std::io::Error),
    #[error("rvs-keepalived's status file {0} is not valid: {1}")]
    Parse(String, serde_json::Error),
}

pub fn read(path: &Path) -> Result<HealthStatus, HealthError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| HealthError::Read(name.clone(), e))?;
    serde_json::from_str(&text).map_err(|e| HealthError::Parse(name, e))
}

/// The status as a table for people; `now_ms` makes times relative.
pub fn table(s: &HealthStatus, now_ms: u64) -> String {
    let ago = |t: Option<u64>| match t {
        None => "never".to_string(),
        Some(t) => format!("{:.1}s ago", now_ms.saturating_sub(t) as f64 / 1000.0),
    };
    let mut out = format!(
        "rvs-keepalived pid {} ({}), written {}\n",
        s.pid,
        s.config,
        ago(Some(s.updated_ms))
    );
    for vs in &s.virtual_servers {
        out.push_str(&format!(
            "VS {} quorum {} (live weight {}, quorum {}, hysteresis {})\n",
            vs.name,
            if vs.quorum_up { "up" } else { "down" },
            vs.live_weight,
            vs.quorum,
            vs.hysteresis
        ));
        out.push_str(&format!(
            "  {:<28} {:<5} {:>6} {:>5} {:<12} {}\n",
            "RealServer", "State", "Weight", "Flaps", "LastCheck", "LastError"
        ));
        for rs in &vs.real_servers {
            out.push_str(&format!(
                "  {:<28} {:<5} {:>6} {:>5} {:<12} {}\n",
                rvs_ipvs::types::fmt_addr_port(rs.addr, rs.port),
                if rs.up { "UP" } else { "DOWN" },
                rs.weight
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "-".into()),
                rs.flaps,
                ago(rs.last_check_ms),
                rs.last_error.as_deref().unwrap_or("")
            ));
        }
        if let Some(sorry) = &vs.sorry_server {
            out.push_str(&format!(
                "  {:<28} {:<5} {:>6}\n",
                format!(
                    "{} (sorry)",
                    rvs_ipvs::types::fmt_addr_port(sorry.addr, sorry.port)
                ),
                if sorry.active { "USED" } else { "IDLE" },
                sorry
                    .weight
                    .map(|w| w.to_string())
                    .unwrap_or_else(|| "-".into()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_prints() {
        let s = HealthStatus {
            pid: 7,
            config: "/etc/keepalived/keepalived.conf".into(),
            updated_ms: 10_000,
            virtual_servers: vec![VsHealth {
                name: "[192.168.1.10]:tcp:80".into(),
                services: vec![],
                quorum_up: true,
                quorum: 1,
                hysteresis: 0,
                live_weight: 1,
                sorry_server: None,
                real_servers: vec![
                    RsHealth {
                        name: "[192.168.1.220]:tcp:80".into(),
                        addr: "192.168.1.220".parse().unwrap(),
                        port: 80,
                        up: false,
                        weight: None,
                        configured_weight: 1,
                        flaps: 1,
                        since_ms: Some(9_000),
                        last_check_ms: Some(9_500),
                        last_error: Some("TCP_CHECK: Connection refused".into()),
                        checkers: vec![],
                    },
                    RsHealth {
                        name: "[192.168.1.193]:tcp:80".into(),
                        addr: "192.168.1.193".parse().unwrap(),
                        port: 80,
                        up: true,
                        weight: Some(1),
                        configured_weight: 1,
                        flaps: 0,
                        since_ms: None,
                        last_check_ms: Some(9_800),
                        last_error: None,
                        checkers: vec![],
                    },
                ],
            }],
        };
        let back: HealthStatus = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let t = table(&s, 10_000);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "VS [192.168.1.10]:tcp:80 quorum up (live weight 1, quorum 1, hysteresis 0)"
        );
        assert!(
            lines[3].starts_with("  192.168.1.220:80             DOWN       -     1 0.5s ago"),
            "{t}"
        );
        assert!(lines[3].ends_with("TCP_CHECK: Connection refused"), "{t}");
        assert!(lines[4].contains("UP         1     0 0.2s ago"), "{t}");
    }
}
