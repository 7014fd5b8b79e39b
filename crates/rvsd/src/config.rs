//! rvsd's TOML configuration (see conf/rvsd.toml for a commented example).
//!
//! Why this file is long (about 1170 lines): every key of rvsd's
//! configuration with its check and an error that names it (about 880
//! lines), and their tests (about 290).
//!
//! Errors name the file and the line: toml's own (syntax, unknown fields,
//! wrong types) carry a position, and the checks after parsing name the key,
//! whose line [`lines::line_of`] finds in the text.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rvs_ipvs::tcp_state::Timeouts;
use serde::{Deserialize, Serialize};

mod lines;
pub mod live;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dpdk: DpdkSection,
    #[serde(rename = "port")]
    pub ports: Vec<PortSection>,
    /// Static routes (`[[route]]`), for real servers or clients behind
    /// routers.
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub workers: WorkersSection,
    #[serde(default)]
    pub connections: ConnectionsSection,
    #[serde(default)]
    pub neighbours: NeighboursSection,
    #[serde(default)]
    pub control: ControlSection,
    #[serde(default)]
    pub stats: StatsSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    /// The SYN-flood defences: the kernel's `amemthresh`, `am_droprate`,
    /// `drop_entry`, `drop_packet` and `secure_tcp` (counted in connection
    /// slots, see docs/syn-flood.md), and rvs's table pressure.
    #[serde(default)]
    pub defense: rvs_ipvs::defense::DefenseConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hugepages {
    /// Use hugepages when some are reserved and mounted, else run without.
    #[default]
    Auto,
    /// Refuse to start without hugepages.
    Required,
    /// Always run on ordinary pages (`--no-huge`).
    Off,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DpdkSection {
    /// The lcore of the control thread.
    #[serde(default)]
    pub main_lcore: u32,
    #[serde(default)]
    pub hugepages: Hugepages,
    /// Memory DPDK reserves, in MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Packet buffers in the pool.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Bytes of packet data per buffer, after the headroom that tunnel
    /// headers are written into (frames bigger than this are dropped by the
    /// PMD or arrive as chains, which are dropped and counted).
    #[serde(default = "default_mbuf_data_room")]
    pub mbuf_data_room: u16,
    /// Passed to the EAL as they are.
    #[serde(default)]
    pub extra_eal_args: Vec<String>,
}

fn default_memory() -> u32 {
    512
}

fn default_mbufs() -> u32 {
    16383
}

fn default_mbuf_data_room() -> u16 {
    2048
}

impl Default for DpdkSection {
    fn default() -> Self {
        DpdkSection {
            main_lcore: 0,
            hugepages: Hugepages::Auto,
            memory_mb: default_memory(),
            mbufs: default_mbufs(),
            mbuf_data_room: default_mbuf_data_room(),
            extra_eal_args: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    /// A label for logs.
    pub name: String,
    /// A DPDK virtual device (`net_af_packet0,iface=eth1`) or a PCI address
    /// (`0000:03:00.0`).
    pub device: String,
    /// The director's own address on this port, with prefix length.
    pub address: String,
    /// The director's IPv6 address on this port, with prefix length
    /// (optional). It answers neighbour solicitations for it and for the
    /// IPv6 VIPs.
    #[serde(default)]
    pub address6: Option<String>,
    /// Largest IP packet the link carries; tunnelled packets that outgrow it
    /// get ICMP fragmentation-needed.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// The port's interface in the director's kernel (the exception path):
    /// its name, `true` for `rvs-<name>` (the default), or `false` for none.
    #[serde(default)]
    pub kernel_interface: KernelInterface,
    /// Who answers ARP and neighbour solicitations for the VIPs on this
    /// port: rvsd ("always", the default) or the kernel ("kernel", which
    /// answers only while the kernel interface holds the VIP: VRRP).
    #[serde(default)]
    pub vip_arp: VipArpMode,
}

fn default_mtu() -> u16 {
    1500
}

/// `[[port]] kernel_interface`: `true`, `false` or an interface name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum KernelInterface {
    Enabled(bool),
    Named(String),
}

impl Default for KernelInterface {
    fn default() -> Self {
        KernelInterface::Enabled(true)
    }
}

/// By hand rather than `untagged`, whose error ("did not match any
/// variant") would not say what is expected.
impl<'de> Deserialize<'de> for KernelInterface {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = KernelInterface;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an interface name (at most 15 characters), true or false")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<KernelInterface, E> {
                Ok(KernelInterface::Enabled(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KernelInterface, E> {
                Ok(KernelInterface::Named(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[port]] vip_arp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VipArpMode {
    #[default]
    Always,
    Kernel,
}

impl From<VipArpMode> for rvs_dataplane::VipArp {
    fn from(m: VipArpMode) -> Self {
        match m {
            VipArpMode::Always => rvs_dataplane::VipArp::Always,
            VipArpMode::Kernel => rvs_dataplane::VipArp::Kernel,
        }
    }
}

/// Linux's rule for interface names (`dev_valid_name`), and no `,` `=` or
/// `%`, which DPDK's device arguments and iproute2 read specially.
fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && !n
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | ':' | ',' | '=' | '%') || !c.is_ascii())
}
/// The least MTU a port may have: IPv4's minimum datagram that every host
/// takes (RFC 791), and IPv6's minimum link MTU (RFC 8200) on ports with an
/// IPv6 address. Both leave room for any tunnel's overhead.
const MIN_MTU_V4: u16 = 576;
const MIN_MTU_V6: u16 = 1280;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Destination network, `a.b.c.d/len` (`0.0.0.0/0` for a default route).
    pub to: String,
    /// The gateway, on one of the ports' networks.
    pub via: String,
}

impl PortSection {
    /// A virtual device, unless `device` is a PCI address. Virtual devices
    /// go by their driver's name or an alias (`net_af_packet0`,
    /// `virtio_user0`, `eth_pcap0`), so the PCI address is what can be told
    /// apart.
    pub fn is_vdev(&self) -> bool {
        !is_pci_address(self.dpdk_name())
    }

    /// The name DPDK gives the probed port.
    pub fn dpdk_name(&self) -> &str {
        self.device.split(',').next().unwrap_or(&self.device)
    }

    /// The vdev argument, with one queue pair per worker where the driver
    /// takes the count as an argument (af_packet's `qpairs`, virtio_user's
    /// `queues`) and the config leaves it out.
    pub fn vdev_arg(&self, workers: usize) -> String {
        let name = self.dpdk_name();
        let queues_key = if name.starts_with("net_af_packet") {
            "qpairs"
        } else if name.starts_with("virtio_user") || name.starts_with("net_virtio_user") {
            "queues"
        } else {
            return self.device.clone();
        };
        let given = self
            .device
            .split(',')
            .skip(1)
            .any(|kv| kv.split('=').next() == Some(queues_key));
        if given {
            self.device.clone()
        } else {
            format!("{},{queues_key}={workers}", self.device)
        }
    }

    /// The kernel interface a device reads, when it is one (af_packet's and
    /// pcap's `iface=`).
    pub fn device_interface(&self) -> Option<&str> {
        self.device
            .split(',')
            .skip(1)
            .find_map(|kv| match kv.split_once('=') {
                Some(("iface" | "rx_iface" | "rx_iface_in", v)) => Some(v),
                _ => None,
            })
    }

    /// The kernel interface's name, if the port has one.
    pub fn kernel_interface_name(&self) -> Result<Option<String>, String> {
        let name = match &self.kernel_interface {
            KernelInterface::Enabled(false) => return Ok(None),
            KernelInterface::Enabled(true) => {
                let n = format!("rvs-{}", self.name);
                if !valid_ifname(&n) {
                    return Err(format!(
                        "port {:?}: its kernel interface would be named {n:?}, which Linux does not take \
                         (at most 15 characters, no spaces, '/' or ':'): name it with \
                         kernel_interface = \"NAME\", or turn it off with kernel_interface = false",
                        self.name
                    ));
                }
                n
            }
            KernelInterface::Named(n) => {
                if !valid_ifname(n) {
                    return Err(format!(
                        "port {:?}: kernel_interface {n:?} is not an interface name \
                         (1 to 15 characters, no spaces, '/', ':', ',', '=' or '%')",
                        self.name
                    ));
                }
                n.clone()
            }
        };
        Ok(Some(name))
    }

    pub fn parsed_address6(&self) -> Result<Option<(Ipv6Addr, u8)>, String> {
        let Some(a6) = &self.address6 else {
            return Ok(None);
        };
        let err = || {
            format!(
                "port {:?}: address6 {:?} is not an IPv6 address/prefix, e.g. fd00:1::1/64",
                self.name, a6
            )
        };
        let (a, p) = a6.split_once('/').ok_or_else(err)?;
        let a: Ipv6Addr = a.parse().map_err(|_| err())?;
        let p: u8 = p.parse().ok().filter(|p| *p <= 128).ok_or_else(err)?;
        Ok(Some((a, p)))
    }

    pub fn parsed_address(&self) -> Result<(Ipv4Addr, u8), String> {
        let (a, p) = self.address.split_once('/').ok_or_else(|| {
            format!(
                "port {:?}: address {:?} needs a prefix length, e.g. 192.168.1.213/24",
                self.name, self.address
            )
        })?;
        let a: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("port {:?}: {:?} is not an IPv4 address", self.name, a))?;
        let p: u8 =
            p.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
                format!("port {:?}: prefix length {:?} is not 0..32", self.name, p)
            })?;
        Ok((a, p))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersSection {
    /// One worker per lcore listed.
    #[serde(default = "default_lcores")]
    pub lcores: Vec<u32>,
    /// Empty polls in a row before the worker naps (yielding the CPU after
    /// each empty poll until then); 0 never naps nor yields.
    #[serde(default)]
    pub idle_empty_polls: u32,
    /// Length of the first nap, in microseconds: frames that come during
    /// it wait for its end (under steady traffic they are then handled
    /// together).
    #[serde(default = "default_idle_sleep")]
    pub idle_sleep_us: u64,
    /// Longest nap: naps in a row double up to it. A nap after the first
    /// ends at the first frame another worker hands over, and on af_packet
    /// ports at the first frame on the worker's queue (the kernel
    /// interface's frames, and other drivers' ports', wait for its end).
    #[serde(default = "default_idle_sleep_max")]
    pub idle_sleep_max_us: u64,
    /// Fixes the key of the hash that gives each client endpoint its
    /// worker (benchmarks whose captures are split by owner in advance,
    /// `pktgen --flow-seed`). Without it, a random key at each start, so
    /// that clients cannot aim their flows at one worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_seed: Option<u64>,
}

fn default_lcores() -> Vec<u32> {
    vec![1]
}

fn default_idle_sleep_max() -> u64 {
    1000
}

fn default_idle_sleep() -> u64 {
    100
}

impl Default for WorkersSection {
    fn default() -> Self {
        WorkersSection {
            lcores: default_lcores(),
            idle_empty_polls: 0,
            idle_sleep_us: default_idle_sleep(),
            idle_sleep_max_us: default_idle_sleep_max(),
            flow_seed: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsSection {
    /// Connections each worker can hold.
    #[serde(default = "default_capacity")]
    pub capacity_per_worker: usize,
    /// How long half-open connections (SYN_RECV) live, in seconds.
    #[serde(default = "default_syn_recv")]
    pub syn_recv_timeout_s: u32,
    /// `rvsadm --set tcp tcpfin udp`, kept here so that they survive a
    /// restart (a reload applies them): established TCP connections, TCP
    /// after a FIN, and UDP, in seconds (1 to 2678400, ipvsadm's range).
    #[serde(default = "default_tcp")]
    pub tcp_timeout_s: u32,
    #[serde(default = "default_tcp_fin")]
    pub tcp_fin_timeout_s: u32,
    #[serde(default = "default_udp")]
    pub udp_timeout_s: u32,
    /// IPVS's sloppy_tcp: schedule TCP flows on any first packet but RST.
    #[serde(default)]
    pub sloppy_tcp: bool,
}

fn default_capacity() -> usize {
    1 << 20
}

fn default_syn_recv() -> u32 {
    Timeouts::default().syn_recv
}

fn default_tcp() -> u32 {
    Timeouts::default().tcp
}

fn default_tcp_fin() -> u32 {
    Timeouts::default().tcp_fin
}

fn default_udp() -> u32 {
    Timeouts::default().udp
}

/// The most `[neighbours] max_entries` takes: a change to the table copies
/// it, and a copy of a million entries would stall a worker.
const MAX_NEIGHBOURS: usize = 65_536;

/// The longest timeout ipvsadm's --set takes (31 days).
const MAX_TIMEOUT_S: u32 = 2_678_400;

impl Default for ConnectionsSection {
    fn default() -> Self {
        ConnectionsSection {
            capacity_per_worker: default_capacity(),
            syn_recv_timeout_s: default_syn_recv(),
            tcp_timeout_s: default_tcp(),
            tcp_fin_timeout_s: default_tcp_fin(),
            udp_timeout_s: default_udp(),
            sloppy_tcp: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NeighboursSection {
    /// Permanent entries: `static = [{ address = "10.0.0.2", mac = "02:.." }]`.
    #[serde(default, rename = "static")]
    pub statics: Vec<StaticNeighbour>,
    /// An ARP entry unconfirmed for this long is forgotten; past half of it
    /// it is refreshed.
    #[serde(default = "default_expiry")]
    pub expiry_s: u64,
    /// Least time between two ARP requests for one address.
    #[serde(default = "default_retry")]
    pub arp_retry_ms: u64,
    /// Which neighbour messages may change the table.
    #[serde(default)]
    pub learn: LearnMode,
    /// Most learned entries (static ones come on top); the least recently
    /// confirmed make room.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

/// `[neighbours] learn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LearnMode {
    /// Linux's default rules (`arp_accept=0`, the locktime, ND's override
    /// flag).
    #[default]
    Linux,
    /// Only answers to rvsd's own outstanding requests.
    SolicitedOnly,
}

impl From<LearnMode> for rvs_dataplane::LearnPolicy {
    fn from(m: LearnMode) -> Self {
        match m {
            LearnMode::Linux => rvs_dataplane::LearnPolicy::Linux,
            LearnMode::SolicitedOnly => rvs_dataplane::LearnPolicy::SolicitedOnly,
        }
    }
}

fn default_max_entries() -> usize {
    rvs_dataplane::neighbour::DEFAULT_CAPACITY
}

fn default_expiry() -> u64 {
    300
}

fn default_retry() -> u64 {
    1000
}

impl Default for NeighboursSection {
    fn default() -> Self {
        NeighboursSection {
            statics: Vec::new(),
            expiry_s: default_expiry(),
            arp_retry_ms: default_retry(),
            learn: LearnMode::default(),
            max_entries: default_max_entries(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNeighbour {
    pub address: std::net::IpAddr,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

impl StaticNeighbour {
    pub fn parsed_mac(&self) -> Result<[u8; 6], String> {
        let parts: Vec<u8> = self
            .mac
            .split(':')
            .map(|p| u8::from_str_radix(p, 16))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("neighbour {}: bad MAC {:?}", self.address, self.mac))?;
        parts
            .try_into()
            .map_err(|_| format!("neighbour {}: bad MAC {:?}", self.address, self.mac))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControlSection {
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// The rules file, in `rvsadm -S` format: loaded at start, read again
    /// on reload. A relative path is relative to this file's directory.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// rvs-keepalived's status file: the services it names are its own,
    /// and a reload leaves them alone.
    #[serde(default = "default_keepalived_status")]
    pub keepalived_status: PathBuf,
    /// A group whose members may use the socket besides root and rvsd's own
    /// user: the socket is then 0660 and the group's (0600 without).
    #[serde(default)]
    pub group: Option<String>,
}

fn default_socket() -> PathBuf {
    PathBuf::from(rvs_control::DEFAULT_SOCKET)
}

fn default_keepalived_status() -> PathBuf {
    PathBuf::from(rvs_control_proto::health::DEFAULT_STATUS_FILE)
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: default_socket(),
            rules: None,
            keepalived_status: default_keepalived_status(),
            group: None,
        }
    }
}

/// A check that failed after parsing, and the key it is about
/// (`workers.lcores`, `port.0.address`; empty when it is about no one key).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub key: String,
    pub msg: String,
}

impl From<String> for Invalid {
    fn from(msg: String) -> Invalid {
        Invalid {
            key: String::new(),
            msg,
        }
    }
}

impl From<&str> for Invalid {
    fn from(msg: &str) -> Invalid {
        Invalid::from(msg.to_string())
    }
}

/// Tags a message with the key it is about.
fn at(key: impl Into<String>) -> impl FnOnce(String) -> Invalid {
    let key = key.into();
    move |msg| Invalid { key, msg }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatsSection {
    /// Count traffic per real server, service and in total (`rvsadm -L
    /// --stats/--rate`, the metrics). Off only to measure what counting
    /// costs: the listings then show zeros.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

impl Default for StatsSection {
    fn default() -> Self {
        StatsSection { enabled: true }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// `ADDR:PORT` to serve Prometheus metrics (/metrics), the status page
    /// (/) and its JSON (/status.json) on; no endpoint when absent.
    #[serde(default)]
    pub listen: Option<String>,
}

impl MetricsSection {
    pub fn parsed_listen(&self) -> Result<Option<std::net::SocketAddr>, String> {
        self.listen
            .as_deref()
            .map(|l| {
                l.parse().map_err(|_| {
                    format!("metrics.listen {l:?} is not ADDR:PORT, e.g. \"127.0.0.1:9105\"")
                })
            })
            .transpose()
    }
}

impl Config {
    /// Reads and checks a configuration file. Errors read `FILE:LINE:
    /// message` (or `FILE: message` when no one line is at fault).
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config {}: {e}", path.display()))?;
        Self::parse_located(&text).map_err(|(line, msg)| match line {
            Some(l) => anyhow::anyhow!("{}:{l}: {msg}", path.display()),
            None => anyhow::anyhow!("{}: {msg}", path.display()),
        })
    }

    /// Parses and checks; the error says the line when it knows it.
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Config, String> {
        Self::parse_located(text).map_err(|(line, msg)| match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        })
    }

    fn parse_located(text: &str) -> Result<Config, (Option<usize>, String)> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| lines::line_at(text, s.start));
            // One line, for logs: "invalid array: expected `]`".
            let msg: Vec<&str> = e.message().lines().map(str::trim).collect();
            (line, msg.join(": "))
        })?;
        c.validate().map_err(|Invalid { key, msg }| {
            let line = (!key.is_empty())
                .then(|| lines::line_of(text, &key))
                .flatten();
            (line, msg)
        })?;
        Ok(c)
    }

    /// The connection timeouts this configuration sets.
    pub fn timeouts(&self) -> Timeouts {
        let c = &self.connections;
        Timeouts {
            tcp: c.tcp_timeout_s,
            tcp_fin: c.tcp_fin_timeout_s,
            udp: c.udp_timeout_s,
            syn_recv: c.syn_recv_timeout_s,
        }
    }

    /// The rules file, a relative path taken from the directory of the
    /// configuration file `config_path`.
    pub fn rules_path(&self, config_path: &Path) -> Option<PathBuf> {
        let r = self.control.rules.as_ref()?;
        Some(match config_path.parent() {
            Some(dir) if r.is_relative() => dir.join(r),
            _ => r.clone(),
        })
    }

    /// The routes, parsed and checked: each gateway must be on a port's
    /// network.
    pub fn parsed_routes(&self) -> Result<Vec<rvs_dataplane::worker::Route>, String> {
        self.routes.iter().map(|r| self.parse_route(r)).collect()
    }

    fn parse_route(&self, r: &RouteSection) -> Result<rvs_dataplane::worker::Route, String> {
        let nets: Vec<(Ipv4Addr, u8)> = self
            .ports
            .iter()
            .map(|p| p.parsed_address())
            .collect::<Result<_, _>>()?;
        let (dst, len) =
            parse_prefix(&r.to).ok_or_else(|| format!("route to {:?}: not a.b.c.d/len", r.to))?;
        let via: Ipv4Addr = r.via.parse().map_err(|_| {
            format!(
                "route to {:?}: via {:?} is not an IPv4 address",
                r.to, r.via
            )
        })?;
        let on_link = nets.iter().any(|(a, l)| {
            let m = rvs_ipvs::types::prefix_mask_v4(*l);
            u32::from(*a) & m == u32::from(via) & m
        });
        if !on_link {
            return Err(format!(
                "route to {:?}: gateway {via} is on no port's network",
                r.to
            ));
        }
        Ok(rvs_dataplane::worker::Route {
            dst,
            prefix_len: len,
            via,
        })
    }

    fn validate(&self) -> Result<(), Invalid> {
        if self.ports.is_empty() {
            return Err("at least one [[port]] is needed".into());
        }
        for (i, p) in self.ports.iter().enumerate() {
            p.parsed_address()
                .map_err(at(format!("port.{i}.address")))?;
            let v6 = p
                .parsed_address6()
                .map_err(at(format!("port.{i}.address6")))?;
            let kernel = p
                .kernel_interface_name()
                .map_err(at(format!("port.{i}.kernel_interface")))?;
            if let Some(k) = &kernel {
                let twice = self.ports[..i]
                    .iter()
                    .any(|q| q.kernel_interface_name().ok().flatten().as_ref() == Some(k));
                if twice {
                    return Err(Invalid {
                        key: format!("port.{i}.kernel_interface"),
                        msg: format!(
                            "port {:?}: kernel interface {k:?} is another port's too: name one with kernel_interface = \"NAME\"",
                            p.name
                        ),
                    });
                }
            }
            if p.vip_arp == VipArpMode::Kernel && kernel.is_none() {
                return Err(Invalid {
                    key: format!("port.{i}.vip_arp"),
                    msg: format!(
                        "port {:?}: vip_arp = \"kernel\" needs the port's kernel interface (kernel_interface is false)",
                        p.name
                    ),
                });
            }
            // Every tunnel's overhead (at most 40 bytes) then leaves room
            // for a packet of the family's minimum size.
            let (min, why) = match v6 {
                Some(_) => (
                    MIN_MTU_V6,
                    "IPv6's minimum link MTU, as the port has address6",
                ),
                None => (MIN_MTU_V4, "IPv4's minimum datagram size"),
            };
            if p.mtu < min {
                return Err(Invalid {
                    key: format!("port.{i}.mtu"),
                    msg: format!("port.{i}.mtu = {}: at least {min} ({why})", p.mtu),
                });
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            self.parse_route(r).map_err(at(format!("route.{i}")))?;
        }
        for (i, n) in self.neighbours.statics.iter().enumerate() {
            let mac = n
                .parsed_mac()
                .map_err(at(format!("neighbours.static.{i}.mac")))?;
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return Err(Invalid {
                    key: format!("neighbours.static.{i}.mac"),
                    msg: format!(
                        "neighbour {}: {} is not a station's MAC (multicast or zero)",
                        n.address, n.mac
                    ),
                });
            }
        }
        if self.neighbours.max_entries == 0 || self.neighbours.max_entries > MAX_NEIGHBOURS {
            return Err(Invalid {
                key: "neighbours.max_entries".into(),
                msg: format!(
                    "neighbours.max_entries = {}: 1 to {MAX_NEIGHBOURS} (each change copies the table)",
                    self.neighbours.max_entries
                ),
            });
        }
        let lcores = at("workers.lcores");
        if self.workers.lcores.is_empty() {
            return Err(lcores(
                "workers.lcores: at least one worker lcore is needed".into(),
            ));
        }
        if self.workers.lcores.contains(&self.dpdk.main_lcore) {
            return Err(lcores(format!(
                "workers.lcores: lcore {} is dpdk.main_lcore (the control thread)",
                self.dpdk.main_lcore
            )));
        }
        let mut l = self.workers.lcores.clone();
        l.sort();
        l.dedup();
        if l.len() != self.workers.lcores.len() {
            return Err(lcores("workers.lcores: an lcore is listed twice".into()));
        }
        if self.connections.capacity_per_worker == 0 {
            return Err(Invalid {
                key: "connections.capacity_per_worker".into(),
                msg: "connections.capacity_per_worker must be at least 1".into(),
            });
        }
        let c = &self.connections;
        for (name, v) in [
            ("syn_recv_timeout_s", c.syn_recv_timeout_s),
            ("tcp_timeout_s", c.tcp_timeout_s),
            ("tcp_fin_timeout_s", c.tcp_fin_timeout_s),
            ("udp_timeout_s", c.udp_timeout_s),
        ] {
            if !(1..=MAX_TIMEOUT_S).contains(&v) {
                return Err(Invalid {
                    key: format!("connections.{name}"),
                    msg: format!(
                        "connections.{name} = {v}: a timeout is 1 to {MAX_TIMEOUT_S} seconds"
                    ),
                });
            }
        }
        self.defense.validate().map_err(|e| Invalid {
            key: format!("defense.{}", e.field()),
            msg: format!("defense.{}: {e}", e.field()),
        })?;
        self.metrics.parsed_listen().map_err(at("metrics.listen"))?;
        if let Some(g) = &self.control.group {
            rvs_control::server::Access::new(Some(g))
                .map_err(|e| e.to_string())
                .map_err(at("control.group"))?;
        }
        Ok(())
    }
}

/// `[domain:]bus:device.function` in hex, as DPDK's `-a` takes it
/// (`0000:03:00.0`, `03:00.0`).
fn is_pci_address(s: &str) -> bool {
    let Some((bdf, function)) = s.rsplit_once('.') else {
        return false;
    };
    let fields: Vec<&str> = bdf.split(':').collect();
    let widths: &[usize] = match fields.len() {
        2 => &[2, 2],
        3 => &[4, 2, 2],
        _ => return false,
    };
    let hex = |f: &str, w: usize| f.len() == w && f.chars().all(|c| c.is_ascii_hexdigit());
    fields.iter().zip(widths).all(|(f, w)| hex(f, *w))
        && function.len() == 1
        && matches!(function.as_bytes()[0], b'0'..=b'7')
}

fn parse_prefix(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let l: u8 = l.parse().ok().filter(|l| *l <= 32)?;
    Some((a.parse().ok()?, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../../../conf/rvsd.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.ports.len(), 1);
        assert_eq!(c.ports[0].dpdk_name(), "net_af_packet0");
        assert_eq!(
            c.ports[0].vdev_arg(2),
            "net_af_packet0,iface=veth-dir,qpairs=2"
        );
    }

    fn port(device: &str) -> PortSection {
        PortSection {
            name: "lan".into(),
            device: device.into(),
            address: "10.0.0.1/24".into(),
            address6: None,
            mtu: 1500,
            kernel_interface: KernelInterface::default(),
            vip_arp: VipArpMode::Always,
        }
    }

    #[test]
    fn pci_addresses_and_vdevs_are_told_apart() {
        for pci in [
            "0000:03:00.0",
            "03:00.1",
            "0000:af:1f.7",
            "0000:03:00.0,rxq=2",
        ] {
            assert!(!port(pci).is_vdev(), "{pci}");
        }
        for vdev in [
            "net_af_packet0,iface=eth0",
            "virtio_user0,path=/var/run/vhost/sock",
            "net_virtio_user1,path=/tmp/s",
            "eth_pcap0,rx_pcap=x.pcap",
            "03:00.8",
            "0000:3:00.0",
        ] {
            assert!(port(vdev).is_vdev(), "{vdev}");
        }
    }

    #[test]
    fn queue_counts_follow_the_workers_unless_given() {
        let v = port("virtio_user0,path=/var/run/vhost/sock,mac=02:00:00:00:00:01");
        assert_eq!(v.dpdk_name(), "virtio_user0");
        assert_eq!(
            v.vdev_arg(2),
            "virtio_user0,path=/var/run/vhost/sock,mac=02:00:00:00:00:01,queues=2"
        );
        let v = port("net_virtio_user0,path=/s,queues=1,queue_size=1024");
        assert_eq!(
            v.vdev_arg(2),
            "net_virtio_user0,path=/s,queues=1,queue_size=1024"
        );
        let v = port("virtio_user0,path=/s,queue_size=1024");
        assert_eq!(
            v.vdev_arg(1),
            "virtio_user0,path=/s,queue_size=1024,queues=1"
        );
        assert_eq!(
            port("net_af_packet0,iface=eth0,qpairs=1").vdev_arg(3),
            "net_af_packet0,iface=eth0,qpairs=1"
        );
        assert_eq!(port("net_null0").vdev_arg(2), "net_null0");
    }

    #[test]
    fn docker_configs_parse() {
        for text in [
            include_str!("../../../docker/rvsd.toml"),
            include_str!("../../../docker/rvsd-virtio.toml"),
        ] {
            let c = Config::parse(text).unwrap();
            assert!(c.ports[0].is_vdev());
        }
    }

    #[test]
    fn errors_name_the_field() {
        let base = "[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        assert!(Config::parse(base).is_ok());
        let e = Config::parse(&format!("{base}[workers]\nlcorez=[1]\n")).unwrap_err();
        assert!(e.contains("lcorez"), "{e}");
        let e = Config::parse(&base.replace("/24", "")).unwrap_err();
        assert!(e.contains("prefix length"), "{e}");
        let e = Config::parse(&format!("{base}[workers]\nlcores=[0]\n")).unwrap_err();
        assert!(e.contains("main_lcore"), "{e}");
        let e = Config::parse("").unwrap_err();
        assert!(e.contains("port"), "{e}");
        let routed = format!("{base}[[route]]\nto='0.0.0.0/0'\nvia='10.0.0.254'\n");
        let c = Config::parse(&routed).unwrap();
        assert_eq!(c.parsed_routes().unwrap()[0].prefix_len, 0);
        let e = Config::parse(&routed.replace("10.0.0.254", "10.9.0.254")).unwrap_err();
        assert!(e.contains("on no port's network"), "{e}");
        let e = Config::parse(&routed.replace("0.0.0.0/0", "0.0.0.0")).unwrap_err();
        assert!(e.contains("a.b.c.d/len"), "{e}");
    }

    #[test]
    fn neighbour_learning_capacity_statics_and_the_flow_seed() {
        let base = "[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        let c = Config::parse(base).unwrap();
        assert_eq!(c.neighbours.learn, LearnMode::Linux);
        assert_eq!(c.neighbours.max_entries, 4096);
        assert_eq!(c.workers.flow_seed, None, "a random key by default");
        let c = Config::parse(&format!(
            "{base}[neighbours]\nlearn = 'solicited-only'\nmax_entries = 100\n\
             static = [{{ address = '10.0.0.2', mac = '02:00:00:00:00:02' }}]\n\
             [workers]\nflow_seed = 42\n"
        ))
        .unwrap();
        assert_eq!(c.neighbours.learn, LearnMode::SolicitedOnly);
        assert_eq!(c.neighbours.max_entries, 100);
        assert_eq!(c.workers.flow_seed, Some(42));
        let e = Config::parse(&format!("{base}[neighbours]\nlearn = 'always'\n")).unwrap_err();
        assert!(e.contains("linux") && e.contains("solicited-only"), "{e}");
        for n in [0, 1 << 20] {
            let e = Config::parse(&format!("{base}[neighbours]\nmax_entries = {n}\n")).unwrap_err();
            assert!(e.contains("neighbours.max_entries"), "{e}");
        }
        for mac in [
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "ff:ff:ff:ff:ff:ff",
        ] {
            let e = Config::parse(&format!(
                "{base}[neighbours]\nstatic = [{{ address = '10.0.0.2', mac = '{mac}' }}]\n"
            ))
            .unwrap_err();
            assert!(
                e.contains("neighbours.static.0.mac") || e.contains("not a station"),
                "{e}"
            );
        }
    }

    #[test]
    fn kernel_interface_names_and_vip_arp() {
        let base = "[[port]]\nname='lan'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        let name = |text: &str| Config::parse(text).map(|c| c.ports[0].kernel_interface_name());
        assert_eq!(name(base), Ok(Ok(Some("rvs-lan".into()))), "on by default");
        let with = |v: &str| format!("{base}kernel_interface = {v}\n");
        assert_eq!(name(&with("true")), Ok(Ok(Some("rvs-lan".into()))));
        assert_eq!(name(&with("false")), Ok(Ok(None)));
        assert_eq!(name(&with("'dpdk0'")), Ok(Ok(Some("dpdk0".into()))));
        // Wrong types and names Linux refuses, with the line and the key.
        let e = Config::parse(&with("3")).unwrap_err();
        assert!(
            e.starts_with("line 5:") && e.contains("an interface name"),
            "{e}"
        );
        for bad in [
            "''",
            "'sixteen-chars-xx'",
            "'a b'",
            "'a/b'",
            "'eth:1'",
            "'x,y'",
        ] {
            let e = Config::parse(&with(bad)).unwrap_err();
            assert!(
                e.starts_with("line 5:") && e.contains("kernel_interface"),
                "{bad}: {e}"
            );
        }
        let long = base.replace("name='lan'", "name='averylongportname'");
        let e = Config::parse(&long).unwrap_err();
        assert!(
            e.contains("rvs-averylongportname") && e.contains("kernel_interface = \"NAME\""),
            "{e}"
        );
        let two = format!(
            "{base}kernel_interface = 'k0'\n[[port]]\nname='wan'\ndevice='net_null1'\naddress='10.1.0.1/24'\nkernel_interface = 'k0'\n"
        );
        let e = Config::parse(&two).unwrap_err();
        assert!(
            e.starts_with("line 10:") && e.contains("another port's"),
            "{e}"
        );
        // vip_arp: "always" by default; "kernel" needs the interface.
        let c = Config::parse(base).unwrap();
        assert_eq!(c.ports[0].vip_arp, VipArpMode::Always);
        let c = Config::parse(&format!("{base}vip_arp = 'kernel'\n")).unwrap();
        assert_eq!(c.ports[0].vip_arp, VipArpMode::Kernel);
        let e = Config::parse(&format!(
            "{base}vip_arp = 'kernel'\nkernel_interface = false\n"
        ))
        .unwrap_err();
        assert!(
            e.starts_with("line 5:") && e.contains("needs the port's kernel interface"),
            "{e}"
        );
        let e = Config::parse(&format!("{base}vip_arp = 'sometimes'\n")).unwrap_err();
        assert!(e.contains("always") && e.contains("kernel"), "{e}");
    }

    #[test]
    fn defense_settings_parse_and_errors_name_the_line() {
        let base = "[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        let c = Config::parse(base).unwrap();
        assert_eq!(c.defense, rvs_ipvs::defense::DefenseConfig::default());
        let c = Config::parse(&format!(
            "{base}[defense]\namemthresh = 4096\ndrop_packet = 1\nsecure_tcp = 3\nreclaim_half_open = false\n"
        ))
        .unwrap();
        assert_eq!(
            (
                c.defense.amemthresh,
                c.defense.drop_packet,
                c.defense.secure_tcp
            ),
            (4096, 1, 3)
        );
        assert!(!c.defense.reclaim_half_open);
        assert_eq!(c.defense.am_droprate, 10, "the rest keep their defaults");
        let e = Config::parse(&format!("{base}[defense]\ndrop_entry = 4\n")).unwrap_err();
        assert!(
            e.starts_with("line 6:")
                && e.contains("defense.drop_entry")
                && e.contains("0, 1, 2 or 3"),
            "{e}"
        );
        let e = Config::parse(&format!("{base}[defense]\nam_droprate = 0\n")).unwrap_err();
        assert!(e.starts_with("line 6:") && e.contains("am_droprate"), "{e}");
        let e = Config::parse(&format!("{base}[defense]\nsecure = 1\n")).unwrap_err();
        assert!(e.contains("secure"), "{e}");
    }

    #[test]
    fn control_group_must_exist() {
        let base = "[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        let c = Config::parse(&format!("{base}[control]\ngroup = 'root'\n")).unwrap();
        assert_eq!(c.control.group.as_deref(), Some("root"));
        let e =
            Config::parse(&format!("{base}[control]\ngroup = 'no-such-group-rvs'\n")).unwrap_err();
        assert!(
            e.contains("control.group = \"no-such-group-rvs\": no such group"),
            "{e}"
        );
    }

    /// A port MTU below what a tunnel adds plus a minimum packet is
    /// refused (the dataplane's arithmetic underflowed on one).
    #[test]
    fn port_mtu_leaves_room_for_tunnels() {
        let base = "[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        assert!(Config::parse(&format!("{base}mtu = 576\n")).is_ok());
        let e = Config::parse(&format!("{base}mtu = 20\n")).unwrap_err();
        assert!(e.contains("port.0.mtu = 20: at least 576"), "{e}");
        let v6 = format!("{base}address6 = 'fd00::1/64'\n");
        assert!(Config::parse(&format!("{v6}mtu = 1280\n")).is_ok());
        let e = Config::parse(&format!("{v6}mtu = 1279\n")).unwrap_err();
        assert!(e.contains("at least 1280 (IPv6"), "{e}");
    }

    #[test]
    fn metrics_and_stats_sections() {
        let base = "[[port]]\nname='a'\ndevice='net_null0'\naddress='10.0.0.1/24'\n";
        let c = Config::parse(base).unwrap();
        assert!(c.stats.enabled, "counting is on by default");
        assert_eq!(
            c.metrics.parsed_listen().unwrap(),
            None,
            "no endpoint by default"
        );
        let c = Config::parse(&format!(
            "{base}[metrics]\nlisten = \"127.0.0.1:9105\"\n[stats]\nenabled = false\n"
        ))
        .unwrap();
        assert!(!c.stats.enabled);
        assert_eq!(
            c.metrics.parsed_listen().unwrap(),
            Some("127.0.0.1:9105".parse().unwrap())
        );
        let e = Config::parse(&format!("{base}[metrics]\nlisten = \"localhost\"\n")).unwrap_err();
        assert!(e.contains("metrics.listen"), "{e}");
        let e = Config::parse(&format!("{base}[metrics]\nport = 9105\n")).unwrap_err();
        assert!(e.contains("port"), "{e}");
        let e = Config::parse(&format!("{base}[stats]\nenable = true\n")).unwrap_err();
        assert!(e.contains("enable"), "{e}");
    }
}
