//! Keywords into values, block by block, with keepalived's messages. What a
//! block leaves unset stays `None` here; [`super::validate`] fills in the
//! defaults and the inheritance.
//!
//! Why this file is long (about 1530 lines): every keyword keepalived takes,
//! block by block, with keepalived's messages.

use rvs_ipvs::PersistMask;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use rvs_ipvs::sched::sched_flags;
use rvs_ipvs::{Protocol, TunCsum, TunKind, TunSpec};

use super::diag::{Diags, Pos};
use super::lexer::script_words;
use super::tree::Node;
use super::{HttpProtocol, Script, StatusCodes};

/// Schedulers keepalived accepts for `lb_algo`.
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos",
];

/// The kernel's limit for `persistence_timeout` (LVS_MAX_TIMEOUT: 31 days).
const MAX_PERSISTENCE: u32 = 2_678_400;
/// keepalived's default persistence timeout (IPVS_SVC_PERSISTENT_TIMEOUT).
pub const DEFAULT_PERSISTENCE: u32 = 360;
/// IP_VS_SVC_F_SCHED_SH_FALLBACK / _MH_FALLBACK and the _PORT flags.
const SCHED_FALLBACK: u32 = sched_flags::SCHED1;
const SCHED_PORT: u32 = sched_flags::SCHED2;

#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub groups: BTreeMap<String, RawGroup>,
    pub virtual_servers: Vec<RawVs>,
    pub log_all_failures: bool,
    pub lvs_flush: bool,
    pub lvs_flush_onstop: bool,
}

#[derive(Debug, Clone)]
pub struct RawGroup {
    pub pos: Pos,
    /// Addresses (ranges expanded) and their port (0 when none).
    pub entries: Vec<(IpAddr, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Nat,
    Dr,
    Tun(TunSpec),
}

#[derive(Debug, Clone)]
pub enum RawVsAddr {
    Ip(IpAddr, u16),
    Group(String),
}

#[derive(Debug, Clone)]
pub struct RawVs {
    pub pos: Pos,
    pub addr: RawVsAddr,
    pub protocol: Option<Protocol>,
    pub scheduler: Option<String>,
    pub sched_flags: u32,
    pub one_packet: bool,
    pub method: Option<Method>,
    pub persistence: Option<u32>,
    /// Granularity as a prefix length.
    pub granularity: Option<PersistMask>,
    pub delay_loop: Duration,
    pub connect_timeout: Duration,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub inhibit: bool,
    pub alpha: bool,
    pub omega: bool,
    pub quorum: u32,
    pub hysteresis: u32,
    pub quorum_up: Option<Script>,
    pub quorum_down: Option<Script>,
    pub weight: u32,
    pub virtualhost: Option<String>,
    pub sorry: Option<RawSorry>,
    pub real_servers: Vec<RawRs>,
}

#[derive(Debug, Clone)]
pub struct RawSorry {
    pub addr: IpAddr,
    pub port: u16,
    pub method: Option<Method>,
    pub inhibit: bool,
}

#[derive(Debug, Clone)]
pub struct RawRs {
    pub pos: Pos,
    pub addr: IpAddr,
    pub port: u16,
    pub weight: Option<u32>,
    pub method: Option<Method>,
    pub u_threshold: u32,
    pub l_threshold: u32,
    pub inhibit: Option<bool>,
    pub alpha: Option<bool>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub warmup: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub delay_loop: Option<Duration>,
    pub notify_up: Option<Script>,
    pub notify_down: Option<Script>,
    pub virtualhost: Option<String>,
    pub checkers: Vec<RawChecker>,
}

#[derive(Debug, Clone)]
pub struct RawChecker {
    pub pos: Pos,
    pub kind: RawKind,
    pub alpha: Option<bool>,
    pub delay_loop: Option<Duration>,
    pub warmup: Option<Duration>,
    pub retry: Option<u32>,
    pub delay_before_retry: Option<Duration>,
    pub log_all_failures: bool,
    pub connect_ip: Option<IpAddr>,
    pub connect_port: Option<u16>,
    pub bindto: Option<IpAddr>,
    pub bind_port: Option<u16>,
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum RawKind {
    Tcp,
    Http {
        ssl: bool,
        protocol: HttpProtocol,
        virtualhost: Option<String>,
        urls: Vec<RawUrl>,
        enable_sni: bool,
        fast_recovery: bool,
    },
    Misc {
        script: Option<Vec<String>>,
        user: Option<(String, Option<String>)>,
        timeout: Option<Duration>,
        dynamic: bool,
    },
    Dns {
        qtype: u16,
        name: Option<String>,
    },
    Udp {
        payload: Option<Vec<u8>>,
        require_reply: bool,
        reply: Option<(Vec<u8>, Vec<u8>)>,
        min_len: u16,
        max_len: u16,
    },
}

#[derive(Debug, Clone)]
pub struct RawUrl {
    pub path: Option<String>,
    pub digest: Option<[u8; 16]>,
    pub status: StatusCodes,
    pub virtualhost: Option<String>,
}

/// Root keywords that belong to keepalived's other processes (VRRP, BFD)
/// or to features rvs-keepalived leaves to keepalived itself.
const VRRP_ROOTS: &[&str] = &[
    "vrrp_instance",
    "vrrp_script",
    "vrrp_sync_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "vrrp_track_process",
    "garp_group",
    "linkbeat_interfaces",
];

const OTHER_ROOTS: &[&str] = &[
    "bfd_instance",
    "track_file",
    "track_process",
    "net_namespace",
    "instance",
    "use_pid_dir",
];

/// global_defs keywords rvs-keepalived acts on.
const GLOBAL_HONOURED: &[&str] = &["checker_log_all_failures", "lvs_flush", "lvs_flush_onstop"];

pub fn parse(nodes: &[Node], diags: &mut Diags) -> RawConfig {
    let mut cfg = RawConfig::default();
    for n in nodes {
        match n.keyword() {
            "global_defs" => global_defs(n, &mut cfg, diags),
            "virtual_server_group" => {
                if let Some((name, g)) = group(n, diags) {
                    match cfg.groups.entry(name) {
                        std::collections::btree_map::Entry::Occupied(e) => diags.error(
                            &n.pos,
                            format!("virtual_server_group {} already defined - ignoring", e.key()),
                        ),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(g);
                        }
                    }
                }
            }
            "virtual_server" => {
                if let Some(vs) = virtual_server(n, diags) {
                    cfg.virtual_servers.push(vs);
                }
            }
            "SSL" => ssl(n, diags),
            k if VRRP_ROOTS.contains(&k) => diags.notice(
                &n.pos,
                format!(
                    "{} is VRRP, which rvs-keepalived does not do - ignoring; run keepalived for VRRP alone (keepalived --vrrp) on rvsd's kernel interface (rvs-<port>), with vip_arp = \"kernel\" on that port",
                    n.raw
                ),
            ),
            k if OTHER_ROOTS.contains(&k) => diags.notice(
                &n.pos,
                format!("{k} is not used by rvs-keepalived - ignoring"),
            ),
            k => diags.error(&n.pos, format!("Unknown keyword '{k}'")),
        }
    }
    cfg
}

fn global_defs(n: &Node, cfg: &mut RawConfig, diags: &mut Diags) {
    let mut ignored = BTreeSet::new();
    for c in n.children() {
        match c.keyword() {
            "checker_log_all_failures" => {
                if let Some(b) = bool_arg(c, diags, "checker_log_all_failures") {
                    cfg.log_all_failures = b;
                }
            }
            "lvs_flush" => cfg.lvs_flush = true,
            "lvs_flush_onstop" => match c.arg(0) {
                None | Some("VS") | Some("vs") => cfg.lvs_flush_onstop = true,
                Some("NO") | Some("no") => cfg.lvs_flush_onstop = false,
                Some(a) => diags.error(&c.pos, format!("Unknown lvs_flush_onstop type {a}")),
            },
            k => {
                ignored.insert(k.to_string());
            }
        }
    }
    if !ignored.is_empty() {
        let list: Vec<String> = ignored.into_iter().collect();
        diags.notice(
            &n.pos,
            format!(
                "global_defs: rvs-keepalived ignores {} (it acts only on {})",
                list.join(", "),
                GLOBAL_HONOURED.join(", ")
            ),
        );
    }
}

fn ssl(n: &Node, diags: &mut Diags) {
    for c in n.children() {
        match c.keyword() {
            // keepalived loads these but never asks the server's certificate
            // to verify (no SSL_VERIFY_PEER), so they change nothing.
            "ca" | "password" => diags.notice(
                &c.pos,
                format!("SSL {}: rvs-keepalived does not verify server certificates, as keepalived does not - ignoring", c.keyword()),
            ),
            "certificate" | "key" => diags.error(
                &c.pos,
                format!("SSL {}: rvs-keepalived's SSL_GET sends no client certificate - ignoring", c.keyword()),
            ),
            k => diags.error(&c.pos, format!("Unknown keyword '{k}'")),
        }
    }
}

fn group(n: &Node, diags: &mut Diags) -> Option<(String, RawGroup)> {
    let Some(name) = n.arg(0) else {
        diags.error(&n.pos, "virtual_server_group needs a name - skipping");
        return None;
    };
    let mut entries = Vec::new();
    for c in n.children() {
        if c.keyword() == "fwmark" {
            diags.error(
                &c.pos,
                format!("({name}): fwmark {} - rvs has no firewall-mark services (ipvsadm -f) - ignoring", c.arg(0).unwrap_or("")),
            );
            continue;
        }
        let port = match c.arg(0) {
            None => 0,
            Some(p) => match p.parse::<u16>() {
                Ok(p) => p,
                Err(_) => {
                    diags.error(
                        &c.pos,
                        format!(
                            "Invalid virtual server group IP address {} /port/{p} - skipping",
                            c.keyword()
                        ),
                    );
                    continue;
                }
            },
        };
        match expand_range(c.keyword()) {
            Ok(addrs) => entries.extend(addrs.into_iter().map(|a| (a, port))),
            Err(msg) => diags.error(&c.pos, format!("{msg} - skipping")),
        }
    }
    if entries.is_empty() {
        diags.error(
            &n.pos,
            format!("virtual server group {name} has no entries - removing"),
        );
        return None;
    }
    Some((
        name.to_string(),
        RawGroup {
            pos: n.pos.clone(),
            entries,
        },
    ))
}

/// Most addresses one group entry may expand to; a bigger range is almost
/// certainly a typo, and each address is a service.
const MAX_RANGE: u32 = 256;

/// `a.b.c.d`, `a.b.c.d-e`, `a.b.c.d-e.f.g.h` or `a.b.c.d/nn` (and IPv6
/// forms of the first and last).
fn expand_range(s: &str) -> Result<Vec<IpAddr>, String> {
    if let Some((base, mask)) = s.split_once('/') {
        let a: IpAddr = base
            .parse()
            .map_err(|_| format!("Invalid virtual server group IP address {s}"))?;
        let m: u32 = mask.parse().map_err(|_| format!("Invalid netmask - {s}"))?;
        let IpAddr::V4(v4) = a else {
            return Err(format!("rvs-keepalived expands IPv4 prefixes only - {s}"));
        };
        if m == 0 || m > 32 {
            return Err(format!("Invalid netmask - {s}"));
        }
        let host_bits = 32 - m;
        let start = u32::from(v4);
        if host_bits < 32 && start & ((1u32 << host_bits) - 1) != 0 {
            return Err(format!("Address mask bits not empty - {s}"));
        }
        let count = 1u64 << host_bits;
        if count > MAX_RANGE as u64 {
            return Err(format!(
                "{s} spans {count} addresses; rvs-keepalived expands at most {MAX_RANGE}"
            ));
        }
        return Ok((0..count as u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(start + i)))
            .collect());
    }
    if let Some((base, end)) = s.split_once('-') {
        let a: IpAddr = base
            .parse()
            .map_err(|_| format!("Invalid virtual server group IP address {s}"))?;
        return match a {
            IpAddr::V4(v4) => {
                let start = u32::from(v4);
                let last = if end.contains('.') {
                    let e: Ipv4Addr = end.parse().map_err(|_| format!("Invalid range end {s}"))?;
                    u32::from(e)
                } else {
                    let e: u8 = end.parse().map_err(|_| format!("Invalid range end {s}"))?;
                    (start & !0xff) | e as u32
                };
                if last < start {
                    return Err(format!("Invalid range end {s}"));
                }
                if last - start >= MAX_RANGE {
                    return Err(format!("{s} spans more than {MAX_RANGE} addresses"));
                }
                Ok((start..=last)
                    .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
                    .collect())
            }
            IpAddr::V6(v6) => {
                let start = u128::from(v6);
                let last = if end.contains(':') {
                    let e: std::net::Ipv6Addr =
                        end.parse().map_err(|_| format!("Invalid range end {s}"))?;
                    u128::from(e)
                } else {
                    let e = u16::from_str_radix(end, 16)
                        .map_err(|_| format!("Invalid range end {s}"))?;
                    (start & !0xffff) | e as u128
                };
                if last < start || last - start >= MAX_RANGE as u128 {
                    return Err(format!("Invalid range end {s}"));
                }
                Ok((start..=last).map(|x| IpAddr::V6(x.into())).collect())
            }
        };
    }
    s.parse::<IpAddr>()
        .map(|a| vec![a])
        .map_err(|_| format!("Invalid virtual server group IP address {s}"))
}

fn virtual_server(n: &Node, diags: &mut Diags) -> Option<RawVs> {
    let addr = match (n.arg(0), n.arg(1)) {
        (Some("fwmark"), mark) => {
            diags.error(
                &n.pos,
                format!(
                    "virtual_server fwmark {}: rvs has no firewall-mark services (ipvsadm -f), only address and port - skipping",
                    mark.unwrap_or("")
                ),
            );
            return None;
        }
        (Some("group"), Some(g)) => RawVsAddr::Group(g.to_string()),
        (Some(ip), port) => {
            let port = match port {
                None => Some(0),
                Some(p) => p.parse::<u16>().ok(),
            };
            match (strip_scope(ip).parse::<IpAddr>(), port) {
                (Ok(a), Some(p)) => RawVsAddr::Ip(a, p),
                _ => {
                    diags.error(
                        &n.pos,
                        format!(
                            "Invalid virtual server IP address/port {ip}/{} - skipping",
                            n.arg(1).unwrap_or("")
                        ),
                    );
                    return None;
                }
            }
        }
        (None, _) => {
            diags.error(&n.pos, "virtual_server needs an address - skipping");
            return None;
        }
    };
    let mut vs = RawVs {
        pos: n.pos.clone(),
        addr,
        protocol: None,
        scheduler: None,
        sched_flags: 0,
        one_packet: false,
        method: None,
        persistence: None,
        granularity: None,
        delay_loop: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        retry: None,
        delay_before_retry: None,
        warmup: None,
        inhibit: false,
        alpha: false,
        omega: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        weight: 1,
        virtualhost: None,
        sorry: None,
        real_servers: Vec::new(),
    };
    for c in n.children() {
        vs_keyword(c, &mut vs, diags);
    }
    Some(vs)
}

fn vs_keyword(c: &Node, vs: &mut RawVs, diags: &mut Diags) {
    let k = c.keyword();
    match k {
        "ip_family" => match c.arg(0) {
            Some("inet") | Some("inet6") => {}
            a => diags.error(&c.pos, format!("unknown address family {}", a.unwrap_or(""))),
        },
        "retry" => {
            if let Some(r) = number(c, 0, 1, u32::MAX, diags) {
                vs.retry = Some(r);
            } else {
                diags.error(&c.pos, format!("retry value invalid - {}", c.arg(0).unwrap_or("")));
            }
        }
        "delay_before_retry" => match timer(c, 0, Duration::ZERO, diags) {
            Some(t) => vs.delay_before_retry = Some(t),
            None => diags.error(&c.pos, format!("virtual server delay before retry '{}' invalid - ignoring", c.arg(0).unwrap_or(""))),
        },
        "warmup" => match timer(c, 0, Duration::ZERO, diags) {
            Some(t) => vs.warmup = Some(t),
            None => diags.error(&c.pos, format!("virtual server warmup '{}' invalid - ignoring", c.arg(0).unwrap_or(""))),
        },
        "connect_timeout" => match timer(c, 0, Duration::from_micros(1), diags) {
            Some(t) => vs.connect_timeout = t,
            None => diags.error(&c.pos, format!("virtual server connect_timeout {} invalid - ignoring", c.arg(0).unwrap_or(""))),
        },
        "delay_loop" => match timer(c, 0, Duration::from_micros(1), diags) {
            Some(t) => vs.delay_loop = t,
            None => diags.error(&c.pos, format!("virtual server delay loop '{}' invalid - ignoring", c.arg(0).unwrap_or(""))),
        },
        "inhibit_on_failure" => vs.inhibit = true,
        "lb_algo" | "lvs_sched" => match c.arg(0) {
            Some(s) if SCHEDULERS.contains(&s) => vs.scheduler = Some(s.to_string()),
            a => diags.error(&c.pos, format!("Invalid lvs_scheduler '{}' - ignoring", a.unwrap_or(""))),
        },
        "ops" => vs.one_packet = true,
        "flag-1" => vs.sched_flags |= sched_flags::SCHED1,
        "flag-2" => vs.sched_flags |= sched_flags::SCHED2,
        "flag-3" => vs.sched_flags |= sched_flags::SCHED3,
        // keepalived reads these in the order given, against the scheduler
        // set so far: with sh only sh-port/sh-fallback count, with mh only
        // mh-port/mh-fallback, and with any other scheduler each is an
        // error. `hashed` sets nothing (the kernel hashes every service).
        "hashed" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
            match (vs.scheduler.as_deref(), k) {
                (Some("sh"), "sh-port") | (Some("mh"), "mh-port") => vs.sched_flags |= SCHED_PORT,
                (Some("sh"), "sh-fallback") | (Some("mh"), "mh-fallback") => vs.sched_flags |= SCHED_FALLBACK,
                (Some("sh" | "mh"), _) => {}
                _ => diags.error(&c.pos, format!("{k} only applies to sh scheduler - ignoring")),
            }
        }
        "lb_kind" | "lvs_method" => {
            if let Some(m) = method(c, vs.method, "virtual", diags) {
                vs.method = Some(m);
            }
        }
        "persistence_engine" => diags.error(
            &c.pos,
            format!("persistence_engine {}: rvs has no persistence engines (ipvsadm --pe) - ignoring", c.arg(0).unwrap_or("")),
        ),
        "persistence_timeout" => match c.arg(0) {
            None => vs.persistence = Some(DEFAULT_PERSISTENCE),
            Some(_) => match number(c, 0, 1, MAX_PERSISTENCE, diags) {
                Some(t) => vs.persistence = Some(t),
                None => diags.error(&c.pos, "persistence_timeout invalid"),
            },
        },
        "persistence_granularity" => {
            if let Some(g) = granularity(c, &vs.addr, diags) {
                vs.granularity = Some(g);
                if vs.persistence.is_none() {
                    vs.persistence = Some(DEFAULT_PERSISTENCE);
                }
            }
        }
        "protocol" => match c.arg(0).map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("TCP") => vs.protocol = Some(Protocol::Tcp),
            Some("UDP") => vs.protocol = Some(Protocol::Udp),
            Some("SCTP") => vs.protocol = Some(Protocol::Sctp),
            _ => diags.error(&c.pos, format!("Unknown protocol {} - ignoring", c.arg(0).unwrap_or(""))),
        },
        "ha_suspend" => diags.error(
            &c.pos,
            "ha_suspend: rvs-keepalived does not watch the director's addresses - checkers always run - ignoring",
        ),
        "smtp_alert" | "snmp_name" => diags.notice(&c.pos, format!("{k}: rvs-keepalived sends no mail or SNMP - ignoring")),
        "virtualhost" => match c.arg(0) {
            Some(v) => vs.virtualhost = Some(v.to_string()),
            None => diags.error(&c.pos, "virtual server virtualhost missing"),
        },
        "alpha" => vs.alpha = true,
        "omega" => vs.omega = true,
        "quorum_up" => script_keyword(c, &mut vs.quorum_up, diags),
        "quorum_down" => script_keyword(c, &mut vs.quorum_down, diags),
        "quorum" => match number(c, 0, 1, u32::MAX, diags) {
            Some(q) => vs.quorum = q,
            None => {
                diags.error(&c.pos, format!("Quorum {} must be in [1, {}]. Setting to 1.", c.arg(0).unwrap_or(""), u32::MAX));
                vs.quorum = 1;
            }
        },
        "hysteresis" => match number(c, 0, 0, u32::MAX, diags) {
            Some(h) => vs.hysteresis = h,
            None => diags.error(&c.pos, format!("Hysteresis {} must be in [0, {}] - ignoring", c.arg(0).unwrap_or(""), u32::MAX)),
        },
        "weight" => match number(c, 0, 1, rvs_ipvs::director::MAX_WEIGHT, diags) {
            Some(w) => vs.weight = w,
            None => diags.error(
                &c.pos,
                format!("Virtual server weight {} is outside range 1-{}", c.arg(0).unwrap_or(""), rvs_ipvs::director::MAX_WEIGHT),
            ),
        },
        "sorry_server" => match server_addr(c) {
            Some((addr, port)) => {
                vs.sorry = Some(RawSorry {
                    addr,
                    port,
                    method: None,
                    inhibit: false,
                })
            }
            None => diags.error(&c.pos, format!("Invalid sorry server IP address {} - skipping", c.arg(0).unwrap_or(""))),
        },
        "sorry_server_inhibit" => match &mut vs.sorry {
            Some(s) => s.inhibit = true,
            None => diags.error(&c.pos, "Ignoring sorry_server inhibit used before or without sorry_server"),
        },
        "sorry_server_lvs_method" => {
            let prev = vs.sorry.as_ref().and_then(|s| s.method).or(vs.method);
            match (&mut vs.sorry, method(c, prev, "sorry", diags)) {
                (Some(s), Some(m)) => s.method = Some(m),
                (None, _) => diags.error(&c.pos, "sorry_server forwarding used without sorry_server"),
                _ => {}
            }
        }
        "real_server" => {
            if let Some(rs) = real_server(c, vs, diags) {
                vs.real_servers.push(rs);
            }
        }
        _ => diags.error(&c.pos, format!("Unknown keyword '{k}'")),
    }
}

fn real_server(n: &Node, vs: &RawVs, diags: &mut Diags) -> Option<RawRs> {
    let Some((addr, port)) = server_addr(n) else {
        diags.error(
            &n.pos,
            format!(
                "Invalid real server ip address/port {}/{} - skipping",
                n.arg(0).unwrap_or(""),
                n.arg(1).unwrap_or("")
            ),
        );
        return None;
    };
    let mut rs = RawRs {
        pos: n.pos.clone(),
        addr,
        port,
        weight: None,
        method: None,
        u_threshold: 0,
        l_threshold: 0,
        inhibit: None,
        alpha: None,
        retry: None,
        delay_before_retry: None,
        warmup: None,
        connect_timeout: None,
        delay_loop: None,
        notify_up: None,
        notify_down: None,
        virtualhost: None,
        checkers: Vec::new(),
    };
    for c in n.children() {
        let k = c.keyword();
        match k {
            "weight" => match number(c, 0, 0, rvs_ipvs::director::MAX_WEIGHT, diags) {
                Some(w) => rs.weight = Some(w),
                None => diags.error(
                    &c.pos,
                    format!("Real server weight {} is outside range 0-{}", c.arg(0).unwrap_or(""), rvs_ipvs::director::MAX_WEIGHT),
                ),
            },
            "lvs_method" | "lb_kind" => {
                if let Some(m) = method(c, rs.method.or(vs.method), "real", diags) {
                    rs.method = Some(m);
                }
            }
            "uthreshold" => match number(c, 0, 0, u32::MAX, diags) {
                Some(t) => rs.u_threshold = t,
                None => diags.error(&c.pos, format!("Invalid real_server uthreshold '{}' - ignoring", c.arg(0).unwrap_or(""))),
            },
            "lthreshold" => match number(c, 0, 0, u32::MAX, diags) {
                Some(t) => rs.l_threshold = t,
                None => diags.error(&c.pos, format!("Invalid real_server lthreshold '{}' - ignoring", c.arg(0).unwrap_or(""))),
            },
            "inhibit_on_failure" => {
                if let Some(b) = bool_arg(c, diags, "inhibit_on_failure") {
                    rs.inhibit = Some(b);
                }
            }
            "notify_up" => script_keyword(c, &mut rs.notify_up, diags),
            "notify_down" => script_keyword(c, &mut rs.notify_down, diags),
            "alpha" => {
                if let Some(b) = bool_arg(c, diags, "alpha") {
                    rs.alpha = Some(b);
                }
            }
            "retry" => match number(c, 0, 1, u32::MAX, diags) {
                Some(r) => rs.retry = Some(r),
                None => diags.error(&c.pos, format!("retry value invalid - {}", c.arg(0).unwrap_or(""))),
            },
            "delay_before_retry" => match timer(c, 0, Duration::ZERO, diags) {
                Some(t) => rs.delay_before_retry = Some(t),
                None => diags.error(&c.pos, format!("real server delay_before_retry '{}' invalid - ignoring", c.arg(0).unwrap_or(""))),
            },
            "warmup" => match timer(c, 0, Duration::ZERO, diags) {
                Some(t) => rs.warmup = Some(t),
                None => diags.error(&c.pos, format!("real server warmup '{}' invalid - ignoring", c.arg(0).unwrap_or(""))),
            },
            "connect_timeout" => match timer(c, 0, Duration::from_micros(1), diags) {
                Some(t) => rs.connect_timeout = Some(t),
                None => diags.error(&c.pos, format!("real server connect_timeout {} invalid - ignoring", c.arg(0).unwrap_or(""))),
            },
            "delay_loop" => match timer(c, 0, Duration::from_micros(1), diags) {
                Some(t) => rs.delay_loop = Some(t),
                None => diags.error(&c.pos, format!("real server delay_loop '{}' invalid - ignoring", c.arg(0).unwrap_or(""))),
            },
            "smtp_alert" | "snmp_name" => diags.notice(&c.pos, format!("{k}: rvs-keepalived sends no mail or SNMP - ignoring")),
            "virtualhost" => match c.arg(0) {
                Some(v) => rs.virtualhost = Some(v.to_string()),
                None => diags.error(&c.pos, "real server virtualhost missing"),
            },
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "DNS_CHECK" | "UDP_CHECK" => {
                if let Some(ch) = checker(c, diags) {
                    rs.checkers.push(ch);
                }
            }
            "SMTP_CHECK" | "PING_CHECK" | "FILE_CHECK" | "BFD_CHECK" | "track_file" => diags.error(
                &c.pos,
                format!("{k} is not supported by rvs-keepalived (it has TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK and UDP_CHECK) - ignoring"),
            ),
            _ => diags.error(&c.pos, format!("Unknown keyword '{k}'")),
        }
    }
    Some(rs)
}

fn checker(n: &Node, diags: &mut Diags) -> Option<RawChecker> {
    let k = n.keyword();
    let kind = match k {
        "TCP_CHECK" => RawKind::Tcp,
        "HTTP_GET" | "SSL_GET" => RawKind::Http {
            ssl: k == "SSL_GET",
            protocol: HttpProtocol::V1_0,
            virtualhost: None,
            urls: Vec::new(),
            enable_sni: false,
            fast_recovery: false,
        },
        "MISC_CHECK" => RawKind::Misc {
            script: None,
            user: None,
            timeout: None,
            dynamic: false,
        },
        "DNS_CHECK" => RawKind::Dns {
            qtype: DNS_SOA,
            name: None,
        },
        _ => RawKind::Udp {
            payload: None,
            require_reply: false,
            reply: None,
            min_len: 0,
            max_len: 255,
        },
    };
    let mut ch = RawChecker {
        pos: n.pos.clone(),
        kind,
        alpha: None,
        delay_loop: None,
        warmup: None,
        retry: None,
        delay_before_retry: None,
        log_all_failures: false,
        connect_ip: None,
        connect_port: None,
        bindto: None,
        bind_port: None,
        connect_timeout: None,
    };
    let has_conn = k != "MISC_CHECK";
    for c in n.children() {
        let key = c.keyword();
        if common_checker_keyword(c, &mut ch, has_conn, diags) {
            continue;
        }
        match &mut ch.kind {
            RawKind::Http {
                protocol,
                virtualhost,
                urls,
                enable_sni,
                fast_recovery,
                ssl,
            } => match key {
                "nb_get_retry" => {
                    diags.error(&c.pos, "nb_get_retry is deprecated - please use 'retry'");
                    match number(c, 0, 0, u32::MAX, diags) {
                        Some(r) => ch.retry = Some(r),
                        None => diags.error(
                            &c.pos,
                            format!("Invalid nb_get_retry value '{}'", c.arg(0).unwrap_or("")),
                        ),
                    }
                }
                "virtualhost" => match c.arg(0) {
                    Some(v) => *virtualhost = Some(v.to_string()),
                    None => diags.error(&c.pos, "HTTP_GET virtualhost name missing"),
                },
                "http_protocol" => match c.arg(0) {
                    Some("1.0") => *protocol = HttpProtocol::V1_0,
                    Some("1.1") => *protocol = HttpProtocol::V1_1,
                    Some("1.0C") | Some("1.0c") => *protocol = HttpProtocol::V1_0C,
                    Some(v) => diags.error(&c.pos, format!("Invalid http_protocol version {v}")),
                    None => diags.error(&c.pos, "Missing http_protocol version"),
                },
                "enable_sni" if *ssl => {
                    if let Some(b) = bool_arg(c, diags, "enable_sni") {
                        *enable_sni = b;
                    }
                }
                "fast_recovery" => {
                    if let Some(b) = bool_arg(c, diags, "fast_recovery") {
                        *fast_recovery = b;
                    }
                }
                "url" => {
                    if let Some(u) = url(c, diags) {
                        urls.push(u);
                    }
                }
                _ => diags.error(&c.pos, format!("Unknown keyword '{key}'")),
            },
            RawKind::Misc {
                script,
                user,
                timeout,
                dynamic,
            } => match key {
                "misc_path" => match script_words(&c.raw) {
                    Ok(w) if w.len() >= 2 => match script_words(&w[1]) {
                        Ok(args) if !args.is_empty() => *script = Some(args),
                        Ok(_) => diags.error(&c.pos, "misc_path is empty"),
                        Err(e) => diags.error(&c.pos, e),
                    },
                    Ok(_) => diags.error(&c.pos, "misc_path needs a script"),
                    Err(e) => diags.error(&c.pos, e),
                },
                "misc_timeout" => match number(c, 0, 0, u32::MAX / 1_000_000, diags) {
                    Some(t) => *timeout = Some(Duration::from_secs(t as u64)),
                    None => diags.error(
                        &c.pos,
                        format!("Invalid misc_timeout value '{}'", c.arg(0).unwrap_or("")),
                    ),
                },
                "misc_dynamic" => *dynamic = true,
                "user" => match c.arg(0) {
                    Some(u) => *user = Some((u.to_string(), c.arg(1).map(String::from))),
                    None => diags.error(&c.pos, "No user specified for misc checker script"),
                },
                _ => diags.error(&c.pos, format!("Unknown keyword '{key}'")),
            },
            RawKind::Dns { qtype, name } => match key {
                "type" => match c.arg(0).and_then(dns_type) {
                    Some(t) => *qtype = t,
                    None => diags.error(
                        &c.pos,
                        format!(
                            "Unknown DNS check type {} - ignoring",
                            c.arg(0).unwrap_or("")
                        ),
                    ),
                },
                "name" => match c.arg(0) {
                    _ if name.is_some() => {
                        diags.error(&c.pos, "DNS_CHECK name already specified - ignoring")
                    }
                    Some(nm) if (nm.starts_with('.') && nm != ".") || nm.contains("..") => diags
                        .error(
                            &c.pos,
                            format!("DNS_CHECK name '{nm}' has empty label - ignoring"),
                        ),
                    Some(nm) => *name = Some(nm.to_string()),
                    None => diags.error(&c.pos, "DNS_CHECK name missing"),
                },
                _ => diags.error(&c.pos, format!("Unknown keyword '{key}'")),
            },
            RawKind::Udp {
                payload,
                require_reply,
                reply,
                min_len,
                max_len,
            } => match key {
                "payload" => {
                    if c.args().is_empty() {
                        diags.error(&c.pos, "UDP_CHECK payload requires a payload");
                    } else {
                        match hex_str(&c.args().join(" "), false) {
                            Some((data, _)) => *payload = Some(data),
                            None => diags.error(&c.pos, "Invalid hex string for UDP_CHECK payload"),
                        }
                    }
                }
                "require_reply" => {
                    *require_reply = true;
                    if !c.args().is_empty() {
                        match hex_str(&c.args().join(" "), true) {
                            Some(r) => *reply = Some(r),
                            None => diags.error(&c.pos, "Invalid hex string for UDP_CHECK reply"),
                        }
                    }
                }
                "min_reply_length" => match number(c, 0, 0, u16::MAX as u32, diags) {
                    Some(v) => *min_len = v as u16,
                    None => diags.error(
                        &c.pos,
                        format!(
                            "UDP_CHECK min length {} not valid - must be between 0 & {}",
                            c.arg(0).unwrap_or(""),
                            u16::MAX
                        ),
                    ),
                },
                "max_reply_length" => match number(c, 0, 0, u16::MAX as u32, diags) {
                    Some(v) => *max_len = v as u16,
                    None => diags.error(
                        &c.pos,
                        format!(
                            "UDP_CHECK max length {} not valid - must be between 0 & {}",
                            c.arg(0).unwrap_or(""),
                            u16::MAX
                        ),
                    ),
                },
                _ => diags.error(&c.pos, format!("Unknown keyword '{key}'")),
            },
            RawKind::Tcp => diags.error(&c.pos, format!("Unknown keyword '{key}'")),
        }
    }
    // keepalived's end-of-block checks.
    match &ch.kind {
        RawKind::Misc { script: None, .. } => {
            diags.error(&n.pos, "No script path has been specified for MISC_CHECKER - skipping");
            return None;
        }
        RawKind::Udp { min_len, max_len, .. } if min_len > max_len => diags.error(
            &n.pos,
            format!("UDP_CHECK min_reply length {min_len} > max_reply_length {max_len} - will always fail"),
        ),
        _ => {}
    }
    Some(ch)
}

/// The options every checker has. Returns whether `c` was one of them.
fn common_checker_keyword(
    c: &Node,
    ch: &mut RawChecker,
    has_conn: bool,
    diags: &mut Diags,
) -> bool {
    let k = c.keyword();
    match k {
        "connect_ip" | "connect_port" | "bindto" | "bind_port" | "bind_if" | "connect_timeout"
        | "fwmark"
            if has_conn =>
        {
            match k {
                "connect_ip" => match c.arg(0).map(strip_scope).and_then(|a| a.parse().ok()) {
                    Some(a) => ch.connect_ip = Some(a),
                    None => diags.error(
                        &c.pos,
                        format!(
                            "Invalid connect_ip address {} - ignoring",
                            c.arg(0).unwrap_or("")
                        ),
                    ),
                },
                "connect_port" => match number(c, 0, 1, 65535, diags) {
                    Some(p) => ch.connect_port = Some(p as u16),
                    None => diags.error(
                        &c.pos,
                        format!("Invalid checker connect_port '{}'", c.arg(0).unwrap_or("")),
                    ),
                },
                "bindto" => match c.arg(0).map(strip_scope).and_then(|a| a.parse().ok()) {
                    Some(a) => ch.bindto = Some(a),
                    None => diags.error(
                        &c.pos,
                        format!(
                            "Invalid bindto address {} - ignoring",
                            c.arg(0).unwrap_or("")
                        ),
                    ),
                },
                "bind_port" => match number(c, 0, 1, 65535, diags) {
                    Some(p) => ch.bind_port = Some(p as u16),
                    None => diags.error(
                        &c.pos,
                        format!("Invalid checker bind_port '{}'", c.arg(0).unwrap_or("")),
                    ),
                },
                "connect_timeout" => match timer(c, 0, Duration::from_micros(1), diags) {
                    Some(t) => ch.connect_timeout = Some(t),
                    None => diags.error(
                        &c.pos,
                        format!(
                            "connect_timeout {} invalid - ignoring",
                            c.arg(0).unwrap_or("")
                        ),
                    ),
                },
                _ => diags.error(
                    &c.pos,
                    format!("{k}: rvs-keepalived cannot set this on checker sockets - ignoring"),
                ),
            }
            true
        }
        "retry" => {
            match number(c, 0, 0, u32::MAX, diags) {
                Some(r) => ch.retry = Some(r),
                None => diags.error(
                    &c.pos,
                    format!(
                        "Invalid retry connection value '{}'",
                        c.arg(0).unwrap_or("")
                    ),
                ),
            }
            true
        }
        "delay_before_retry" => {
            match timer(c, 0, Duration::ZERO, diags) {
                Some(t) => ch.delay_before_retry = Some(t),
                None => diags.error(
                    &c.pos,
                    format!(
                        "Invalid delay_before_retry connection value '{}'",
                        c.arg(0).unwrap_or("")
                    ),
                ),
            }
            true
        }
        "warmup" => {
            match timer(c, 0, Duration::ZERO, diags) {
                Some(t) => ch.warmup = Some(t),
                None => diags.error(
                    &c.pos,
                    format!(
                        "Invalid warmup connection value '{}'",
                        c.arg(0).unwrap_or("")
                    ),
                ),
            }
            true
        }
        "delay_loop" => {
            match timer(c, 0, Duration::from_micros(1), diags) {
                Some(t) => ch.delay_loop = Some(t),
                None => diags.error(
                    &c.pos,
                    format!(
                        "delay_loop '{}' is invalid - ignoring",
                        c.arg(0).unwrap_or("")
                    ),
                ),
            }
            true
        }
        "alpha" => {
            if let Some(b) = bool_arg(c, diags, "alpha") {
                ch.alpha = Some(b);
            }
            true
        }
        "log_all_failures" => {
            if let Some(b) = bool_arg(c, diags, "log_all_failures") {
                ch.log_all_failures = b;
            }
            true
        }
        _ => false,
    }
}

fn url(n: &Node, diags: &mut Diags) -> Option<RawUrl> {
    let mut u = RawUrl {
        path: None,
        digest: None,
        status: StatusCodes::empty(),
        virtualhost: None,
    };
    for c in n.children() {
        match c.keyword() {
            "path" => match c.arg(0) {
                Some(p) => u.path = Some(p.to_string()),
                None => diags.error(&c.pos, "Path missing for url"),
            },
            "digest" => {
                let d = c.arg(0).unwrap_or("");
                if u.digest.is_some() {
                    diags.error(&c.pos, format!("Digest '{d}' is a duplicate"));
                } else if d.len() != 32 {
                    diags.error(&c.pos, format!("digest '{d}' character length should be 32 rather than {}", d.len()));
                } else if !d.is_ascii() {
                    diags.error(&c.pos, format!("Unable to interpret hex digit in '{d}'"));
                } else {
                    let mut out = [0u8; 16];
                    let mut ok = true;
                    for (i, b) in out.iter_mut().enumerate() {
                        match u8::from_str_radix(&d[2 * i..2 * i + 2], 16) {
                            Ok(v) => *b = v,
                            Err(_) => {
                                diags.error(&c.pos, format!("Unable to interpret hex digit in '{d}' at offset {}/{}", 2 * i, 2 * i + 1));
                                ok = false;
                                break;
                            }
                        }
                    }
                    if ok {
                        u.digest = Some(out);
                    }
                }
            }
            "status_code" => {
                for s in c.args() {
                    let (lo, hi) = match s.split_once('-') {
                        Some((a, b)) => (a.parse::<u16>().ok(), b.parse::<u16>().ok()),
                        None => (s.parse::<u16>().ok(), s.parse::<u16>().ok()),
                    };
                    match (lo, hi) {
                        (Some(lo), Some(hi))
                            if (StatusCodes::MIN..=StatusCodes::MAX).contains(&lo)
                                && (StatusCodes::MIN..=StatusCodes::MAX).contains(&hi)
                                && lo <= hi =>
                        {
                            u.status.insert_range(lo, hi)
                        }
                        _ => diags.error(&c.pos, format!("Invalid HTTP_GET status code '{s}'")),
                    }
                }
            }
            "virtualhost" => match c.arg(0) {
                Some(v) => u.virtualhost = Some(v.to_string()),
                None => diags.error(&c.pos, "Missing HTTP_GET virtualhost name"),
            },
            "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => diags.error(
                &c.pos,
                format!("{}: rvs-keepalived's HTTP_GET has no regex matching (path, status_code and digest only) - ignoring", c.keyword()),
            ),
            k => diags.error(&c.pos, format!("Unknown keyword '{k}'")),
        }
    }
    if u.path.is_none() {
        diags.error(&n.pos, "HTTP/SSL_GET checker url has no path - ignoring");
        return None;
    }
    if u.status.is_empty() {
        u.status = StatusCodes::range(200, 299);
    }
    Some(u)
}

pub const DNS_SOA: u16 = 6;

fn dns_type(s: &str) -> Option<u16> {
    Some(match s.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "RRSIG" => 46,
        "DNSKEY" => 48,
        _ => return None,
    })
}

/// keepalived's free-form hex: blanks separate bytes, a lone digit is a
/// byte, and with `wildcards` an `x` digit matches anything (its mask
/// nibble is set).
fn hex_str(s: &str, wildcards: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut mask = Vec::new();
    let digit = |c: char| -> Option<(u8, u8)> {
        if wildcards && (c == 'x' || c == 'X') {
            Some((0, 0xf))
        } else {
            c.to_digit(16).map(|d| (d as u8, 0))
        }
    };
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let Some(c) = chars.next() else { break };
        let (mut v, mut m) = digit(c)?;
        if let Some(&c2) = chars.peek() {
            if c2 != ' ' && c2 != '\t' {
                chars.next();
                let (v2, m2) = digit(c2)?;
                v = v << 4 | v2;
                m = m << 4 | m2;
            }
        }
        data.push(v);
        mask.push(m);
    }
    (!data.is_empty()).then_some((data, mask))
}

/// `lb_kind` / `lvs_method`: NAT, DR or `TUN [type ipip|gue port N|gre]
/// [nocsum|csum|remcsum]`.
fn method(c: &Node, prev: Option<Method>, who: &str, diags: &mut Diags) -> Option<Method> {
    let m = match c.arg(0) {
        Some("NAT") => Method::Nat,
        Some("DR") => Method::Dr,
        Some("TUN") => {
            let mut tun = match prev {
                Some(Method::Tun(t)) => t,
                _ => TunSpec::default(),
            };
            let args = &c.args()[1..];
            let mut i = 0;
            while i < args.len() {
                match args[i].as_str() {
                    "type" => {
                        match args.get(i + 1).map(String::as_str) {
                            Some("ipip") => tun.kind = TunKind::Ipip,
                            Some("gue") => tun.kind = TunKind::Gue,
                            Some("gre") => tun.kind = TunKind::Gre,
                            Some(t) => {
                                diags.error(
                                    &c.pos,
                                    format!("Unknown tunnel type {t} for {who} server."),
                                );
                                return None;
                            }
                            None => {
                                diags.error(
                                    &c.pos,
                                    format!("Missing tunnel type for {who} server."),
                                );
                                return None;
                            }
                        }
                        i += 1;
                    }
                    "port" => {
                        match args
                            .get(i + 1)
                            .and_then(|p| p.parse::<u16>().ok())
                            .filter(|p| *p > 0)
                        {
                            Some(p) => tun.port = p,
                            None => {
                                diags.error(
                                    &c.pos,
                                    format!(
                                        "Invalid gue tunnel port {} for {who} server.",
                                        args.get(i + 1).map(String::as_str).unwrap_or("")
                                    ),
                                );
                                return None;
                            }
                        }
                        i += 1;
                    }
                    "nocsum" => tun.csum = TunCsum::None,
                    "csum" => tun.csum = TunCsum::Csum,
                    "remcsum" => tun.csum = TunCsum::RemCsum,
                    o => {
                        diags.error(
                            &c.pos,
                            format!("Invalid tunnel option {o} for {who} server."),
                        );
                        return None;
                    }
                }
                i += 1;
            }
            if (tun.kind == TunKind::Gue) != (tun.port != 0) {
                diags.error(
                    &c.pos,
                    "gue tunnels require port, otherwise cannot have port.",
                );
                return None;
            }
            if tun.kind == TunKind::Ipip && tun.csum != TunCsum::None {
                diags.error(&c.pos, "ipip tunnels do not support checksum option.");
                return None;
            }
            if tun.kind == TunKind::Gre && tun.csum == TunCsum::RemCsum {
                diags.error(&c.pos, "gre tunnels do not support remote checksum option.");
                return None;
            }
            Method::Tun(tun)
        }
        other => {
            diags.error(
                &c.pos,
                format!(
                    "PARSER : unknown [{}] routing method for {who} server.",
                    other.unwrap_or("")
                ),
            );
            return None;
        }
    };
    Some(m)
}

fn granularity(c: &Node, addr: &RawVsAddr, diags: &mut Diags) -> Option<PersistMask> {
    let arg = c.arg(0).unwrap_or("");
    let v6 = match addr {
        RawVsAddr::Ip(a, _) => a.is_ipv6(),
        RawVsAddr::Group(_) => !arg.contains('.'),
    };
    if v6 {
        match arg.parse::<u8>() {
            Ok(p) if (1..=128).contains(&p) => Some(PersistMask::V6Prefix(p)),
            _ => {
                diags.error(
                    &c.pos,
                    format!("Invalid IPv6 persistence_granularity specified - {arg}"),
                );
                None
            }
        }
    } else {
        // Any mask, contiguous or not: the kernel applies it bit by bit.
        match arg.parse::<Ipv4Addr>() {
            Ok(m) => Some(PersistMask::V4(m)),
            Err(_) => {
                diags.error(
                    &c.pos,
                    format!("Invalid IPv4 persistence_granularity specified - {arg}"),
                );
                None
            }
        }
    }
}

/// `ADDRESS [PORT]` of a real or sorry server; a missing port is 0.
fn server_addr(n: &Node) -> Option<(IpAddr, u16)> {
    let addr = strip_scope(n.arg(0)?).parse().ok()?;
    let port = match n.arg(1) {
        None => 0,
        Some(p) => p.parse().ok()?,
    };
    Some((addr, port))
}

/// `fe80::1%eth0`: rvs has no scope ids on addresses.
fn strip_scope(a: &str) -> &str {
    a.split('%').next().unwrap_or(a)
}

fn script_keyword(c: &Node, slot: &mut Option<Script>, diags: &mut Diags) {
    if slot.is_some() {
        diags.error(
            &c.pos,
            format!(
                "{} script already specified - ignoring {}",
                c.keyword(),
                c.arg(0).unwrap_or("")
            ),
        );
        return;
    }
    match script_words(&c.raw) {
        Ok(w) if w.len() >= 2 => match script_words(&w[1]) {
            Ok(args) if !args.is_empty() => {
                let user = w.get(2).map(|u| (u.clone(), w.get(3).cloned()));
                *slot = Some(Script { args, user });
            }
            _ => diags.error(
                &c.pos,
                format!("Unable to parse script '{}' - ignoring", w[1]),
            ),
        },
        Ok(_) => diags.error(&c.pos, format!("{} needs a script", c.keyword())),
        Err(e) => diags.error(&c.pos, e),
    }
}

/// A decimal number in `[min, max]`, with keepalived's messages.
pub(crate) fn number(c: &Node, i: usize, min: u32, max: u32, diags: &mut Diags) -> Option<u32> {
    let Some(s) = c.arg(i) else {
        diags.error(&c.pos, format!("{} needs a value", c.keyword()));
        return None;
    };
    let t = s.trim_start();
    if t.starts_with('-') {
        diags.error(&c.pos, format!("negative number '{s}'"));
        return None;
    }
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        diags.error(&c.pos, format!("invalid number '{s}'"));
        return None;
    }
    match t.parse::<u64>() {
        Ok(v) if v > u32::MAX as u64 => {
            diags.error(
                &c.pos,
                format!("number '{s}' outside unsigned integer range"),
            );
            None
        }
        Ok(v) if (v as u32) < min || (v as u32) > max => {
            diags.error(&c.pos, format!("number '{s}' outside range [{min}, {max}]"));
            None
        }
        Ok(v) => Some(v as u32),
        Err(_) => {
            diags.error(
                &c.pos,
                format!("number '{s}' outside unsigned integer range"),
            );
            None
        }
    }
}

/// A time in seconds with up to six decimals (keepalived's TIMER_HZ).
pub(crate) fn timer(c: &Node, i: usize, min: Duration, diags: &mut Diags) -> Option<Duration> {
    let Some(s) = c.arg(i) else {
        diags.error(&c.pos, format!("{} needs a value", c.keyword()));
        return None;
    };
    if s.starts_with('-') {
        diags.error(&c.pos, format!("negative number '{s}'"));
        return None;
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        diags.error(&c.pos, format!("invalid number '{s}'"));
        return None;
    }
    if frac.len() > 6 {
        diags.error(&c.pos, format!("number '{s}' has too many decimal places"));
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut micros: u64 = 0;
    for (k, b) in frac.bytes().take(6).enumerate() {
        micros += (b - b'0') as u64 * 10u64.pow(5 - k as u32);
    }
    // Beyond u32 seconds is surely a typo, and keeps Instant arithmetic safe.
    if secs > u32::MAX as u64 {
        diags.error(
            &c.pos,
            format!("number '{s}' outside unsigned decimal range"),
        );
        return None;
    }
    let d = Duration::from_secs(secs) + Duration::from_micros(micros);
    if d < min {
        diags.error(
            &c.pos,
            format!("number '{s}' outside range [{:.6}, ...]", min.as_secs_f64()),
        );
        return None;
    }
    Some(d)
}

/// A flag that may be followed by true/on/yes or false/off/no.
fn bool_arg(c: &Node, diags: &mut Diags, what: &str) -> Option<bool> {
    match c.arg(0) {
        None => Some(true),
        Some("true" | "on" | "yes") => Some(true),
        Some("false" | "off" | "no") => Some(false),
        Some(v) => {
            diags.error(&c.pos, format!("Invalid {what} parameter {v}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_like_keepalived() {
        let a = expand_range("192.168.200.3-5").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[2].to_string(), "192.168.200.5");
        assert_eq!(expand_range("10.0.0.8/30").unwrap().len(), 4);
        assert!(expand_range("10.0.0.9/30")
            .unwrap_err()
            .contains("mask bits"));
        assert_eq!(expand_range("10.0.0.250-10.0.1.1").unwrap().len(), 8);
        assert!(expand_range("10.0.0.0/8").is_err());
        assert_eq!(expand_range("2001:db8::1-3").unwrap().len(), 3);
    }

    #[test]
    fn hex_strings() {
        assert_eq!(
            hex_str("Ab12f 3 456 546443123", false).unwrap().0,
            [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        let (d, m) = hex_str("1x ff", true).unwrap();
        assert_eq!((d, m), (vec![0x10, 0xff], vec![0x0f, 0]));
        assert!(hex_str("zz", false).is_none());
    }
}
