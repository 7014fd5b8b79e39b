//! The LVS part of keepalived.conf, read the way keepalived 2.2 reads it.
//!
//! [`load`] runs three steps: [`lexer`] (files, includes, comments, braces;
//! every word keeps its file and line), [`tree`] (blocks) and [`parser`]
//! (keywords into values, with keepalived's messages), then [`validate`]
//! applies keepalived's defaults and inheritance (virtual server → real
//! server → checker) and its corrections (ports, quorum, hysteresis). What
//! comes out is fully resolved: nothing downstream looks at a default.
//!
//! Like keepalived, a load never fails on a bad line: the line is reported
//! and skipped or replaced by its default. `-t` turns any error into a
//! failure.

pub mod diag;
pub mod files;
pub mod lexer;
pub mod parser;
pub mod tree;
pub mod validate;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use rvs_ipvs::{FwdMethod, Protocol, ServiceKey};

pub use diag::{Diag, Diags, Pos, Severity};
pub use lexer::ReadError;

/// Everything rvs-keepalived acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub virtual_servers: Vec<VirtualServer>,
    /// `global_defs { checker_log_all_failures }`.
    pub log_all_failures: bool,
    /// `global_defs { lvs_flush }`: clear rvsd's table at start.
    pub lvs_flush: bool,
    /// `global_defs { lvs_flush_onstop }`: clear rvsd's table at stop.
    pub lvs_flush_onstop: bool,
}

/// How a virtual server is known across reloads, as keepalived matches them:
/// by protocol and address, or by group name and position in the group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VsIdentity {
    Addr(Protocol, IpAddr, u16),
    Group(String, u16),
}

/// A resolved `virtual_server` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub pos: Pos,
    pub identity: VsIdentity,
    /// keepalived's name for it in logs: `[192.168.1.10]:tcp:80`.
    pub name: String,
    /// The rvs services it stands for: one, or one per address and port of
    /// a `virtual_server_group`.
    pub services: Vec<ServiceKey>,
    pub protocol: Protocol,
    pub scheduler: String,
    /// `-b` bits: flag-1..3, sh-/mh-port, sh-/mh-fallback.
    pub sched_flags: u32,
    pub one_packet: bool,
    /// `persistence_timeout` in seconds.
    pub persistence: Option<u32>,
    /// Persistence granularity (the full mask when unset).
    pub netmask: rvs_ipvs::PersistMask,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub omega: bool,
    pub sorry_server: Option<SorryServer>,
    pub real_servers: Vec<RealServer>,
}

/// A resolved `real_server` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServer {
    pub pos: Pos,
    pub addr: IpAddr,
    /// The server's port as checkers see it (and as NAT forwards to).
    pub port: u16,
    /// keepalived's name for it in logs: `[192.168.1.220]:tcp:80`.
    pub name: String,
    pub weight: u32,
    pub fwd: FwdMethod,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub inhibit_on_failure: bool,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    pub checkers: Vec<Checker>,
}

impl RealServer {
    /// The dest port IPVS gets for this server in a service on `vs_port`:
    /// the server's own port with NAT, the service's port otherwise (what
    /// keepalived sends the kernel).
    pub fn dest_port(&self, vs_port: u16) -> u16 {
        match self.fwd {
            FwdMethod::Masq => self.port,
            _ => vs_port,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorryServer {
    pub addr: IpAddr,
    pub port: u16,
    pub name: String,
    pub fwd: FwdMethod,
    /// `sorry_server_inhibit`: kept in the table with weight 0 when unused.
    pub inhibit: bool,
}

impl SorryServer {
    pub fn dest_port(&self, vs_port: u16) -> u16 {
        match self.fwd {
            FwdMethod::Masq => self.port,
            _ => vs_port,
        }
    }
}

/// A program keepalived runs: notify and quorum scripts, MISC_CHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The program and its arguments.
    pub args: Vec<String>,
    /// `user NAME [GROUP]`: run as this user instead of rvs-keepalived's.
    pub user: Option<(String, Option<String>)>,
}

impl std::fmt::Display for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.args.join(" "))
    }
}

/// One health checker of a real server, with every timing resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checker {
    pub pos: Pos,
    pub kind: CheckKind,
    /// Start as failed: the server is only added after a first success.
    pub alpha: bool,
    pub delay_loop: Duration,
    /// The first check waits a random time up to this.
    pub warmup: Duration,
    /// Further attempts after a failure before the checker is failed.
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub log_all_failures: bool,
    /// Where and how to connect; MISC_CHECK has none.
    pub conn: Option<ConnOpts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOpts {
    pub dst: SocketAddr,
    /// `bindto` and `bind_port`.
    pub bindto: Option<SocketAddr>,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    /// HTTP_GET, or SSL_GET when `ssl`.
    Http(HttpCheck),
    Misc(MiscCheck),
    Dns(DnsCheck),
    Udp(UdpCheck),
}

impl CheckKind {
    /// The keyword that configures it.
    pub fn keyword(&self) -> &'static str {
        match self {
            CheckKind::Tcp => "TCP_CHECK",
            CheckKind::Http(h) if h.ssl => "SSL_GET",
            CheckKind::Http(_) => "HTTP_GET",
            CheckKind::Misc(_) => "MISC_CHECK",
            CheckKind::Dns(_) => "DNS_CHECK",
            CheckKind::Udp(_) => "UDP_CHECK",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpProtocol {
    /// `GET ... HTTP/1.0`
    #[default]
    V1_0,
    /// HTTP/1.0 with `Connection: close`.
    V1_0C,
    /// HTTP/1.1 with `Connection: close`.
    V1_1,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub ssl: bool,
    pub protocol: HttpProtocol,
    pub urls: Vec<Url>,
    pub enable_sni: bool,
    pub fast_recovery: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    /// MD5 of the body, as genhash prints it.
    pub digest: Option<[u8; 16]>,
    /// Accepted status codes (default 200-299).
    pub status: StatusCodes,
    /// The Host header: the url's, checker's, real or virtual server's
    /// `virtualhost`, or none (then `address:port`).
    pub virtualhost: Option<String>,
}

/// A set of HTTP status codes, 100-599.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusCodes([u64; 8]);

impl StatusCodes {
    pub const MIN: u16 = 100;
    pub const MAX: u16 = 599;

    pub fn empty() -> StatusCodes {
        StatusCodes([0; 8])
    }

    pub fn range(lo: u16, hi: u16) -> StatusCodes {
        let mut s = StatusCodes::empty();
        s.insert_range(lo, hi);
        s
    }

    pub fn insert_range(&mut self, lo: u16, hi: u16) {
        for c in lo.max(Self::MIN)..=hi.min(Self::MAX) {
            let i = (c - Self::MIN) as usize;
            self.0[i / 64] |= 1 << (i % 64);
        }
    }

    pub fn contains(&self, code: u16) -> bool {
        if !(Self::MIN..=Self::MAX).contains(&code) {
            return false;
        }
        let i = (code - Self::MIN) as usize;
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

impl std::fmt::Debug for StatusCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let codes: Vec<u16> = (Self::MIN..=Self::MAX)
            .filter(|c| self.contains(*c))
            .collect();
        write!(f, "StatusCodes({codes:?})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiscCheck {
    pub script: Script,
    /// `misc_timeout`; the virtual server's `delay_loop` when unset.
    pub timeout: Duration,
    /// `misc_dynamic`: exit codes 2-255 set the weight to code - 2.
    pub dynamic: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsCheck {
    /// The query type (SOA unless `type` says otherwise).
    pub qtype: u16,
    /// The name asked for; empty is the root.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpCheck {
    /// What to send; a fixed filler when unset.
    pub payload: Option<Vec<u8>>,
    pub require_reply: bool,
    /// Reply bytes to match, with a mask of bits to ignore (`x` digits).
    pub reply: Option<(Vec<u8>, Vec<u8>)>,
    pub min_reply_len: u16,
    pub max_reply_len: u16,
}

/// A configuration as loaded: the values and every message about them.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub diags: Diags,
}

/// Reads, parses and validates `path`. Fails only if `path` itself cannot
/// be read; everything else is in [`Loaded::diags`].
pub fn load(path: &Path, config_id: Option<&str>) -> Result<Loaded, ReadError> {
    load_from(&files::Disk, path, config_id)
}

/// [`load`], its files read from `files`.
pub fn load_from(
    files: &dyn files::Files,
    path: &Path,
    config_id: Option<&str>,
) -> Result<Loaded, ReadError> {
    let mut diags = Diags::default();
    let lines = lexer::read(files, path, config_id, &mut diags)?;
    let nodes = tree::build(lines, &mut diags);
    let raw = parser::parse(&nodes, &mut diags);
    let config = validate::validate(raw, &mut diags);
    Ok(Loaded { config, diags })
}

/// keepalived's `[address]:proto:port` for logs.
pub fn trio(addr: IpAddr, protocol: Protocol, port: u16) -> String {
    let p = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    };
    format!("[{addr}]:{p}:{port}")
}

/// Loads configuration text (as /etc/keepalived/keepalived.conf, in
/// memory), for tests.
#[cfg(test)]
pub fn load_text(text: &str) -> Loaded {
    let mut files = files::InMemory::new();
    files.insert("/etc/keepalived/keepalived.conf", text);
    load_from(&files, Path::new("/etc/keepalived/keepalived.conf"), None).expect("loads")
}

#[cfg(test)]
pub fn load_str_for_tests(text: &str) -> Config {
    load_text(text).config
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    /// Words real configurations are made of, and some that break them.
    const WORDS: &[&str] = &[
        "virtual_server",
        "real_server",
        "virtual_server_group",
        "group",
        "fwmark",
        "{",
        "}",
        "\"",
        "'",
        "#",
        "!",
        "include",
        "*.conf",
        "192.168.1.10",
        "10.0.0.1-20",
        "::1",
        "80",
        "0",
        "65536",
        "-1",
        "1.5",
        "abc",
        "é",
        "lb_algo",
        "rr",
        "sh",
        "sh-port",
        "lb_kind",
        "NAT",
        "DR",
        "TUN",
        "type",
        "gue",
        "port",
        "csum",
        "protocol",
        "TCP",
        "UDP",
        "persistence_timeout",
        "persistence_granularity",
        "255.255.0.255",
        "quorum",
        "hysteresis",
        "sorry_server",
        "sorry_server_inhibit",
        "weight",
        "inhibit_on_failure",
        "alpha",
        "omega",
        "TCP_CHECK",
        "HTTP_GET",
        "SSL_GET",
        "MISC_CHECK",
        "DNS_CHECK",
        "UDP_CHECK",
        "url",
        "path",
        "/",
        "digest",
        "éééééééééééééééé",
        "status_code",
        "200-299",
        "misc_path",
        "misc_dynamic",
        "payload",
        "require_reply",
        "x1",
        "connect_port",
        "bindto",
        "retry",
        "delay_loop",
        "@main",
        "$X=1",
        "$X",
        "~SEQ",
        "notify_up",
        "quorum_up",
        "\n",
        "\n",
        "\n",
    ];

    proptest! {
        /// Whatever the text, loading reports and never panics.
        #[test]
        fn any_text_loads_without_panic(words in proptest::collection::vec(0..WORDS.len(), 0..120)) {
            let text: Vec<&str> = words.iter().map(|i| WORDS[*i]).collect();
            let l = super::load_text(&text.join(" "));
            for d in l.diags.all() {
                prop_assert!(!d.to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_digest_of_32_bytes_of_non_hex_is_refused() {
        let l = super::load_text("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n HTTP_GET {\n url {\n path /\n digest éééééééééééééééé\n }\n }\n }\n}\n");
        let msgs: Vec<&str> = l.diags.errors().map(|d| d.msg.as_str()).collect();
        assert!(
            msgs.contains(&"Unable to interpret hex digit in 'éééééééééééééééé'"),
            "{msgs:?}"
        );
    }
}
