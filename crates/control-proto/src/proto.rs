//! Messages between rvsadm and rvsd: one JSON object per line.

use serde::{Deserialize, Serialize};

use rvs_ipvs::stats::{Rates, Stats};
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::ConnRow;
use rvs_ipvs::{Command, DestSpec, ServiceKey, ServiceSpec};

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
    /// `-Lc`: connections and persistence templates, at most `limit`. The
    /// answer comes as several lines: `ConnRows` chunks, then `Conns` with
    /// the last rows and whether the limit cut the list short (or an
    /// `Error`). [`crate::client::request`] puts them together.
    ListConns { limit: usize },
    /// `rvsadm --reload` (as SIGHUP): read the configuration and the rules
    /// file again and apply what changed.
    Reload,
    /// `-Z [service]`: the traffic counters of one service (and its real
    /// servers), or of everything and the totals, start again from zero, and
    /// so do their rate estimates (the kernel's `ip_vs_zero_stats`).
    Zero(Option<ServiceKey>),
    /// The totals of the kernel's /proc/net/ip_vs_stats, and per worker.
    Totals,
    /// Everything the metrics endpoint and the status page show.
    Status,
    /// `rvsadm --defense`: the SYN-flood defence's settings and what each
    /// worker's decided at its last update.
    Defense,
    /// `rvsadm --drain` (true) and `--undrain` (false), rvs's own: stop
    /// (or resume) announcing the VIPs to the routers; forwarding goes on,
    /// so existing connections finish.
    SetDrain(bool),
    /// What this director may announce (rvs-announce asks every few
    /// hundred milliseconds).
    Announcement,
    /// `--start-daemon`: start the connection sync daemon in this role.
    StartDaemon(crate::sync::DaemonRequest),
    /// `--stop-daemon`.
    StopDaemon(crate::sync::SyncRole),
    /// `-L --daemon`.
    Daemons,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Ok,
    /// A refused request; the message is ipvsadm's when ipvsadm has one.
    /// Nothing was changed.
    Error(String),
    /// The change is made: rvsd's own copy of the table has it, and every
    /// worker applies it in order. But a worker had not applied it yet
    /// when rvsd stopped waiting (the message says which); its packets
    /// follow the old table until it does.
    Late(String),
    /// Some rows of a `ListConns` answer; more lines follow.
    ConnRows(Vec<ConnRow>),
    Listing(Listing),
    Counters(Vec<WorkerCounters>),
    Timeouts(Timeouts),
    /// Rows, and whether the limit cut the list short.
    Conns(Vec<ConnRow>, bool),
    Totals(Totals),
    Status(Box<Status>),
    /// What `Restore` refused, one message per failed command, in order.
    Restored(Vec<String>),
    /// What a reload did; a reload that failed is an `Error` naming the
    /// file and line, and changed nothing.
    Reloaded(crate::reload::ReloadReport),
    Defense(DefenseView),
    Announcement(crate::announce::Announcement),
    /// The sync daemons running, master first.
    Daemons(Vec<crate::sync::DaemonView>),
}

/// What `rvsadm --defense` shows: the settings (the kernel's
/// /proc/sys/net/ipv4/vs/ names) and each worker's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DefenseView {
    pub config: rvs_ipvs::defense::DefenseConfig,
    pub workers: Vec<WorkerDefense>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerDefense {
    pub worker: usize,
    pub lcore: u32,
    /// Connections its table holds at most.
    pub conn_capacity: u64,
    /// The decision of its last once-a-second update.
    pub level: rvs_ipvs::defense::DefenseLevel,
    /// Half-open connections that gave their place to new ones.
    pub half_open_reclaimed: u64,
    /// Connections `drop_entry` removed.
    pub entries_dropped: u64,
    /// New connections' first packets `drop_packet` dropped.
    pub packets_dropped: u64,
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
    /// Traffic since the service was added or last zeroed (`--stats`).
    #[serde(default)]
    pub stats: Stats,
    /// The estimator's rates (`--rate`).
    #[serde(default)]
    pub rates: Rates,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DestView {
    pub spec: DestSpec,
    pub active: u32,
    pub inactive: u32,
    pub persistent: u32,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: Rates,
}

/// What /proc/net/ip_vs_stats and ip_vs_stats_percpu show.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Totals {
    /// Every service's traffic, deleted ones included, since rvsd started
    /// or `-Z` zeroed everything.
    pub stats: Stats,
    pub rates: Rates,
    /// The same per worker, never zeroed (as the kernel's per-CPU rows).
    pub workers: Vec<Stats>,
}

/// A histogram of fixed buckets: `counts[i]` events took at most
/// `bounds_ns[i]` (and more than the bound before); the last count is
/// above every bound.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub bounds_ns: Vec<u64>,
    pub counts: Vec<u64>,
    pub sum_ns: u64,
}

/// One worker as the metrics and the status page see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerStatus {
    pub worker: usize,
    pub lcore: u32,
    /// The dataplane counters, as `rvsadm --counters` prints them.
    pub counters: Vec<(String, u64)>,
    /// Connections its table holds at most.
    pub conn_capacity: u64,
    /// How long each pass of its poll loop that moved packets took.
    pub bursts: Histogram,
}

/// A DPDK port's own counters (`rte_eth_stats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PortStatus {
    pub name: String,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    /// Dropped by the device because no receive descriptor was free (for
    /// af_packet: the kernel ring was full).
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    /// Receive failures for want of an mbuf.
    pub rx_nombuf: u64,
}

/// The state of the whole director at one moment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub listing: Listing,
    pub totals: Totals,
    pub workers: Vec<WorkerStatus>,
    pub ports: Vec<PortStatus>,
    /// rvs-keepalived's health state (its status file), while it runs.
    #[serde(default)]
    pub health: Option<crate::health::HealthStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkerCounters {
    pub worker: usize,
    pub lcore: u32,
    pub counters: Vec<(String, u64)>,
}
