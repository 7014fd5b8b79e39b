//! A differential scenario, as data: one TOML file under `oracle/scenarios/`.
//!
//! A scenario names a topology and a list of steps. Each step does one thing
//! (configure with ipvsadm's syntax, open connections, send scripted
//! packets, move data, wait) and adds what it saw to the transcript, which is
//! what the kernel's run and rvs's run must agree on.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows, one line.
    pub description: String,
    #[serde(default)]
    pub topology: TopologyKind,
    /// Real servers rs1..rsN (1 to 4), named `$RS1`.. in the steps.
    #[serde(default = "two")]
    pub servers: usize,
    /// The real servers own no address, so their kernels never answer
    /// (scripted-packet scenarios: only the director's decisions show).
    #[serde(default)]
    pub silent_servers: bool,
    /// TCP ports the real servers listen on (UDP servers answer on the same
    /// numbers).
    #[serde(default = "default_ports")]
    pub ports: Vec<u16>,
    /// TCP ports where the real servers speak HTTP/1.0 instead (a health
    /// page `/healthz` answering "ok", anything else their name); `connect`
    /// steps to them send a GET.
    #[serde(default)]
    pub http_ports: Vec<u16>,
    /// Addresses the director must treat as its VIPs before any service
    /// exists (the kernel needs them on an interface to accept traffic).
    #[serde(default = "default_vips")]
    pub vips: Vec<String>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

fn two() -> usize {
    2
}

fn default_ports() -> Vec<u16> {
    vec![80]
}

fn default_vips() -> Vec<String> {
    vec!["$VIP".into()]
}

/// How the hosts are wired (see [`crate::topology`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopologyKind {
    /// The walkthrough's single LAN: clients, director and real servers on
    /// one bridge; DR and TUN (servers decapsulate ipip, GUE and GRE).
    #[default]
    Lan,
    /// Two-armed: clients on one side, real servers on their own network
    /// behind the director, which is their gateway (NAT).
    Nat,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// ipvsadm command lines (without the program name); each one's exit
    /// code, stdout and stderr go to the transcript.
    pub admin: Option<Vec<String>>,
    /// With `admin`: what each of its commands reads on stdin (`-R`).
    pub stdin: Option<String>,
    /// Open connections in order and record which real server answered.
    pub connect: Option<Connect>,
    /// Close the connections `connect` held open.
    pub release: Option<Release>,
    /// Scripted packets, each followed by whether and where the director
    /// forwarded it.
    pub packet: Option<Vec<PacketSpec>>,
    /// Move data through one connection and check it arrived intact.
    pub transfer: Option<Transfer>,
    /// Let time pass (for timeouts and rate estimates; never a readiness
    /// wait).
    pub wait_s: Option<f64>,
    /// Start the health checker on a keepalived.conf: Debian's keepalived
    /// (`--check`) on kernel IPVS, rvs-keepalived on rvsd; wait until the
    /// table holds `servers_up` real servers.
    pub keepalived: Option<Keepalived>,
    /// How this step's output is compared.
    #[serde(default)]
    pub compare: CompareMode,
    /// The `name` of a deliberate difference (oracle/deliberate.toml) that
    /// explains why this step's output differs, where no line rewrite can
    /// say it.
    pub explained_by: Option<String>,
}

/// How the two transcripts' lines of a step must agree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompareMode {
    /// Byte for byte (connection-entry expiry times within a second or two).
    #[default]
    Exact,
    /// The same lines with every number masked: formats, not values (rates
    /// measured over different estimator phases).
    Shape,
    /// Counters from real TCP exchanges: the same lines, each number within
    /// [`crate::compare::NEAR_ABS`] or [`crate::compare::NEAR_REL`] of the
    /// other run's (a retransmission or a delayed ACK more in one run).
    Near,
}

impl CompareMode {
    pub fn tag(self) -> &'static str {
        match self {
            CompareMode::Exact => "exact",
            CompareMode::Shape => "shape",
            CompareMode::Near => "near",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    /// How many connections, opened one after another.
    pub count: usize,
    #[serde(default)]
    pub proto: Proto,
    #[serde(default = "default_vip")]
    pub vip: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Connection i comes from client address `first_client + i` (modulo
    /// `clients`) and source port `sport + i`.
    #[serde(default)]
    pub first_client: usize,
    /// How many distinct client addresses to cycle through (all by default).
    pub clients: Option<usize>,
    /// First source port (default: 20000 + 400 × the step's index, so no
    /// two steps share a 4-tuple).
    pub sport: Option<u16>,
    /// Keep the connections open (ESTABLISHED) until a `release` step.
    #[serde(default)]
    pub hold: bool,
}

fn default_vip() -> String {
    "$VIP".into()
}

fn default_port() -> u16 {
    80
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// How many of the held connections to close, oldest first (all when
    /// absent).
    pub count: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketSpec {
    /// Which side injects it: the client's link, or the real servers' (a
    /// NAT server's reply).
    pub from: Side,
    #[serde(default)]
    pub proto: Proto,
    /// `addr:port`, variables allowed.
    pub src: String,
    pub dst: String,
    /// TCP flags as letters: S, A, F, R, P (e.g. "SA", "FA").
    #[serde(default)]
    pub flags: String,
    #[serde(default)]
    pub seq: u32,
    #[serde(default)]
    pub ack: u32,
    /// Payload bytes.
    #[serde(default)]
    pub payload: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keepalived {
    /// The configuration, relative to the checkout.
    pub conf: String,
    /// How many real servers the table holds once the checks have run.
    pub servers_up: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub bytes: usize,
    #[serde(default = "default_vip")]
    pub vip: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default)]
    pub client: usize,
    pub sport: Option<u16>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Scenario =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        s.validate()
            .with_context(|| format!("checking {}", path.display()))?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        if !(1..=4).contains(&self.servers) {
            bail!(
                "servers = {}: a scenario has 1 to 4 real servers",
                self.servers
            );
        }
        if self.steps.is_empty() {
            bail!("no [[step]]: a scenario needs at least one");
        }
        for (i, s) in self.steps.iter().enumerate() {
            let actions = [
                s.admin.is_some(),
                s.connect.is_some(),
                s.release.is_some(),
                s.packet.is_some(),
                s.transfer.is_some(),
                s.wait_s.is_some(),
                s.keepalived.is_some(),
            ];
            let n = actions.iter().filter(|a| **a).count();
            if n != 1 {
                bail!(
                    "step {}: exactly one of admin, connect, release, packet, transfer, wait_s, keepalived (found {n})",
                    i + 1
                );
            }
            if s.stdin.is_some() && s.admin.is_none() {
                bail!("step {}: stdin goes with admin", i + 1);
            }
            if let Some(p) = &s.packet {
                for p in p {
                    for c in p.flags.chars() {
                        if !"SAFRPU".contains(c) {
                            bail!("step {}: unknown TCP flag {c:?} in {:?}", i + 1, p.flags);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `$NAME` variables of a topology, expanded in command lines and packet
/// addresses. Longest names first, so `$RS1` never eats `$RS10`.
#[derive(Debug, Clone, Default)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_string(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.as_str())
    }

    pub fn expand(&self, s: &str) -> String {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = s.to_string();
        for n in names {
            out = out.replace(&format!("${n}"), &self.0[n]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_does_exactly_one_thing() {
        let ok: Scenario = toml::from_str(
            "description = \"x\"\n[[step]]\nadmin = [\"-Ln\"]\n[[step]]\nwait_s = 1\n",
        )
        .unwrap();
        ok.validate().unwrap();
        let two: Scenario =
            toml::from_str("description = \"x\"\n[[step]]\nadmin = [\"-Ln\"]\nwait_s = 1\n")
                .unwrap();
        assert!(two
            .validate()
            .unwrap_err()
            .to_string()
            .contains("exactly one"));
        let unknown = toml::from_str::<Scenario>("description = \"x\"\nfoo = 1\n");
        assert!(unknown.is_err());
    }

    #[test]
    fn variables_expand_longest_first() {
        let mut v = Vars::default();
        v.set("RS1", "10.0.0.1");
        v.set("RS10", "10.0.0.10");
        v.set("VIP", "192.168.1.10");
        assert_eq!(
            v.expand("-a -t $VIP:80 -r $RS10 -r $RS1:80"),
            "-a -t 192.168.1.10:80 -r 10.0.0.10 -r 10.0.0.1:80"
        );
    }
}
