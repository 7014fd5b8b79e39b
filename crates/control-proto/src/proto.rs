//! Messages between rvsadm and rvsd: one JSON object per line.

use serde::{Deserialize, Serialize};

use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::ConnRow;
use rvs_ipvs::{Command, DestSpec, ServiceSpec};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Change the configuration.
    Apply(Command),
    /// Several changes, applied in order; stops at the first error.
    ApplyAll(Vec<Command>),
    /// `-R`: every change in order, as ipvsadm replays a rules file: one
    /// that fails is reported and the next ones still go in.
    Restore(Vec<Command>),
    /// The service table with counters.
    List,
    /// Dataplane counters per worker.
    Counters,
    /// `--set tcp tcpfin udp` (0 leaves a value unchanged).
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// `-L --timeout`.
    GetTimeouts,
    /// `-Lc`: connections and persistence templates, at most `limit`.
    ListConns { limit: usize },
    /// `rvsadm --reload` (as SIGHUP): read the configuration and the rules
    /// file again and apply what changed.
    Reload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Ok,
    /// A refused request; the message is ipvsadm's when ipvsadm has one.
    Error(String),
    Listing(Listing),
    Counters(Vec<WorkerCounters>),
    Timeouts(Timeouts),
    /// Rows, and whether the limit cut the list short.
    Conns(Vec<ConnRow>, bool),
    /// What `Restore` refused, one message per failed command, in order.
    Restored(Vec<String>),
    /// What a reload did; a reload that failed is an `Error` naming the
    /// file and line, and changed nothing.
    Reloaded(crate::reload::ReloadReport),
}

/// What `-L` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Listing {
    /// The "size=" of the header: the connection table size.
    pub conn_table_size: u64,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    pub spec: ServiceSpec,
    /// In the kernel's list order (newest first); listings sort them.
    pub dests: Vec<DestView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DestView {
    pub spec: DestSpec,
    pub active: u32,
    pub inactive: u32,
    pub persistent: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerCounters {
    pub worker: usize,
    pub lcore: u32,
    pub counters: Vec<(String, u64)>,
}
