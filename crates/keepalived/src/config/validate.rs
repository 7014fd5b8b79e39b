//! keepalived's `validate_check_config`: defaults, inheritance from virtual
//! server to real server to checker, and the corrections keepalived makes
//! (with its messages), so that [`Config`] is final.
//!
//! Why this file is long (about 540 lines): keepalived's
//! `validate_check_config`, case by case, each correction with keepalived's
//! own message, in the order keepalived makes them.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rvs_ipvs::{FwdMethod, Protocol, ServiceKey};

use super::diag::Diags;
use super::parser::{
    Method, RawChecker, RawConfig, RawKind, RawRs, RawVs, RawVsAddr, DEFAULT_PERSISTENCE,
};
use super::{
    trio, CheckKind, Checker, Config, ConnOpts, DnsCheck, HttpCheck, MiscCheck, RealServer, Script,
    SorryServer, UdpCheck, Url, VirtualServer, VsIdentity,
};

pub fn validate(raw: RawConfig, diags: &mut Diags) -> Config {
    let mut out = Config {
        virtual_servers: Vec::new(),
        log_all_failures: raw.log_all_failures,
        lvs_flush: raw.lvs_flush,
        lvs_flush_onstop: raw.lvs_flush_onstop,
    };
    let mut group_members: BTreeMap<String, u16> = BTreeMap::new();
    let mut seen_services: HashSet<ServiceKey> = HashSet::new();
    let groups = raw.groups;
    for vs in raw.virtual_servers {
        let Some(v) = virtual_server(vs, &groups, &mut group_members, diags) else {
            continue;
        };
        if let Some(dup) = v.services.iter().find(|k| seen_services.contains(k)) {
            diags.error_at(
                Some(&v.pos),
                format!("Virtual server {} repeats service {dup} of an earlier virtual server - ignoring", v.name),
            );
            continue;
        }
        seen_services.extend(v.services.iter().copied());
        out.virtual_servers.push(v);
    }
    out
}

fn fwd(m: Method) -> FwdMethod {
    match m {
        Method::Nat => FwdMethod::Masq,
        Method::Dr => FwdMethod::Route,
        Method::Tun(t) => FwdMethod::Tunnel(t),
    }
}

fn virtual_server(
    vs: RawVs,
    groups: &BTreeMap<String, super::parser::RawGroup>,
    group_members: &mut BTreeMap<String, u16>,
    diags: &mut Diags,
) -> Option<VirtualServer> {
    let pos = vs.pos.clone();
    // Where the virtual server lives: its address(es) and port(s).
    let (entries, group) = match &vs.addr {
        RawVsAddr::Ip(a, p) => (vec![(*a, *p)], None),
        RawVsAddr::Group(g) => match groups.get(g) {
            Some(grp) => (grp.entries.clone(), Some(g.clone())),
            None => {
                diags.error_at(
                    Some(&pos),
                    format!("Virtual server group {g} specified but not configured - ignoring virtual server [{g}]"),
                );
                return None;
            }
        },
    };
    let protocol = match vs.protocol {
        Some(p) => p,
        None => {
            let name = preliminary_name(&vs, &group, Protocol::Udp);
            diags.error_at(
                Some(&pos),
                format!("Virtual server {name}: no protocol set - defaulting to UDP"),
            );
            Protocol::Udp
        }
    };
    let (name, identity) = match &group {
        None => {
            let (a, p) = entries[0];
            (trio(a, protocol, p), VsIdentity::Addr(protocol, a, p))
        }
        Some(g) => {
            let n = group_members.entry(g.clone()).or_insert(0);
            let id = *n;
            *n += 1;
            (format!("[{g}]:{id}"), VsIdentity::Group(g.clone(), id))
        }
    };
    if vs.real_servers.is_empty() {
        diags.error_at(
            Some(&pos),
            format!("Virtual server {name} has no real servers - ignoring"),
        );
        return None;
    }
    let v6 = entries[0].0.is_ipv6();
    if entries.iter().any(|(a, _)| a.is_ipv6() != v6) {
        diags.error_at(
            Some(&pos),
            format!("{name}: virtual server group mixes IPv4 and IPv6 - ignoring"),
        );
        return None;
    }
    let mut one_packet = vs.one_packet;
    if one_packet && protocol != Protocol::Udp {
        diags.error_at(
            Some(&pos),
            format!("Virtual server {name}: one packet scheduling requires UDP - resetting"),
        );
        one_packet = false;
    }
    let mut persistence = vs.persistence;
    if persistence.is_none() && entries.iter().any(|(_, p)| *p == 0) {
        diags.error_at(
            Some(&pos),
            format!(
                "Virtual server {name}: zero port only valid for persistent services - setting"
            ),
        );
        persistence = Some(DEFAULT_PERSISTENCE);
    }
    let scheduler = match &vs.scheduler {
        Some(s) => s.clone(),
        None => {
            diags.error_at(
                Some(&pos),
                format!("Virtual server {name}: no scheduler set, setting default 'wlc'"),
            );
            "wlc".to_string()
        }
    };
    let mut vs_method = vs.method;
    let mut method_of = |m: Option<Method>, diags: &mut Diags| -> FwdMethod {
        match m.or(vs_method) {
            Some(m) => fwd(m),
            None => {
                diags.error_at(
                    Some(&pos),
                    format!("Virtual server {name}: no forwarding method set, setting default NAT"),
                );
                vs_method = Some(Method::Nat);
                FwdMethod::Masq
            }
        }
    };

    let mut real_servers: Vec<RealServer> = Vec::new();
    for rs in &vs.real_servers {
        let rs_fwd = method_of(rs.method, diags);
        if !matches!(rs_fwd, FwdMethod::Tunnel(_)) && rs.addr.is_ipv6() != v6 {
            diags.error(
                &rs.pos,
                format!("Address family of virtual server and real server {} don't match - skipping real server.", rs.addr),
            );
            continue;
        }
        let port = server_port(
            rs.addr,
            rs.port,
            rs_fwd,
            &entries,
            &group,
            &name,
            protocol,
            "real server",
            diags,
            &rs.pos,
        );
        let rs_name = trio(rs.addr, protocol, port);
        if real_servers
            .iter()
            .any(|r| r.addr == rs.addr && r.port == port)
        {
            diags.error(
                &rs.pos,
                format!("VS {name}: real server {rs_name} is duplicated - removing second rs"),
            );
            continue;
        }
        if rs.l_threshold > rs.u_threshold && rs.u_threshold != 0 {
            diags.error(
                &rs.pos,
                format!("real server {rs_name}: lthreshold {} above uthreshold {} - ignoring the thresholds", rs.l_threshold, rs.u_threshold),
            );
        }
        let thresholds_ok = rs.u_threshold == 0 || rs.l_threshold <= rs.u_threshold;
        let checkers = rs
            .checkers
            .iter()
            .filter_map(|c| checker(c, &vs, rs, port, diags))
            .collect();
        real_servers.push(RealServer {
            pos: rs.pos.clone(),
            addr: rs.addr,
            port,
            name: rs_name,
            weight: rs.weight.unwrap_or(vs.weight),
            fwd: rs_fwd,
            u_threshold: if thresholds_ok { rs.u_threshold } else { 0 },
            l_threshold: if thresholds_ok { rs.l_threshold } else { 0 },
            inhibit_on_failure: rs.inhibit.unwrap_or(vs.inhibit),
            notify_up: rs.notify_up.clone(),
            notify_down: rs.notify_down.clone(),
            checkers,
        });
    }
    if real_servers.is_empty() {
        diags.error_at(
            Some(&pos),
            format!("Virtual server {name} has no real servers - ignoring"),
        );
        return None;
    }

    let sorry_server = match &vs.sorry {
        None => None,
        Some(s) => {
            let s_fwd = method_of(s.method, diags);
            let port = server_port(
                s.addr,
                s.port,
                s_fwd,
                &entries,
                &group,
                &name,
                protocol,
                "sorry server",
                diags,
                &pos,
            );
            if !matches!(s_fwd, FwdMethod::Tunnel(_)) && s.addr.is_ipv6() != v6 {
                diags.error_at(
                    Some(&pos),
                    format!("Address family of virtual server and sorry server {} don't match - skipping sorry server.", s.addr),
                );
                None
            } else if real_servers
                .iter()
                .any(|r| r.addr == s.addr && r.port == port)
            {
                diags.error_at(
                    Some(&pos),
                    format!(
                        "Virtual server {name}: sorry server {} is also a real server; rvs-keepalived keeps them apart - skipping sorry server",
                        trio(s.addr, protocol, port)
                    ),
                );
                None
            } else {
                Some(SorryServer {
                    addr: s.addr,
                    port,
                    name: trio(s.addr, protocol, port),
                    fwd: s_fwd,
                    inhibit: s.inhibit,
                })
            }
        }
    };

    let weight_sum: u64 = real_servers.iter().map(|r| r.weight as u64).sum();
    let mut quorum = vs.quorum;
    if quorum as u64 > weight_sum {
        let w = weight_sum.min(u32::MAX as u64) as u32;
        diags.error_at(
            Some(&pos),
            format!("Warning - quorum {quorum} for {name} exceeds total weight of real servers {w}, reducing quorum to {w}"),
        );
        quorum = w;
    }
    let mut hysteresis = vs.hysteresis;
    if hysteresis >= quorum && (hysteresis > 0 || quorum > 0) {
        let h = quorum.saturating_sub(1);
        diags.error_at(
            Some(&pos),
            format!("Virtual server {name}: hysteresis {hysteresis} >= quorum {quorum}; setting hysteresis to {h}"),
        );
        hysteresis = h;
    }

    let services = entries
        .iter()
        .map(|(a, p)| ServiceKey {
            protocol,
            addr: *a,
            port: *p,
        })
        .collect();
    Some(VirtualServer {
        pos,
        identity,
        name,
        services,
        protocol,
        scheduler,
        sched_flags: vs.sched_flags,
        one_packet,
        persistence,
        netmask: vs.granularity.unwrap_or(if v6 {
            rvs_ipvs::PersistMask::V6Prefix(128)
        } else {
            rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST)
        }),
        quorum,
        hysteresis,
        quorum_up: vs.quorum_up.clone(),
        quorum_down: vs.quorum_down.clone(),
        omega: vs.omega,
        sorry_server,
        real_servers,
    })
}

fn preliminary_name(vs: &RawVs, group: &Option<String>, protocol: Protocol) -> String {
    match (&vs.addr, group) {
        (RawVsAddr::Ip(a, p), _) => trio(*a, protocol, *p),
        (_, Some(g)) => format!("[{g}]"),
        _ => String::new(),
    }
}

/// The port keepalived settles on for a real or sorry server: without NAT
/// it must be the service's port (keepalived resets it, saying so); with
/// NAT an omitted port is the service's.
#[allow(clippy::too_many_arguments)]
fn server_port(
    addr: IpAddr,
    port: u16,
    fwd: FwdMethod,
    entries: &[(IpAddr, u16)],
    group: &Option<String>,
    vs_name: &str,
    protocol: Protocol,
    what: &str,
    diags: &mut Diags,
    pos: &super::Pos,
) -> u16 {
    if group.is_some() {
        if fwd != FwdMethod::Masq && port != 0 {
            for (a, p) in entries {
                if *p != port {
                    diags.error(
                        pos,
                        format!(
                            "virtual server {vs_name}:[{a},{p}] and {what} {} ports don't match",
                            trio(addr, protocol, port)
                        ),
                    );
                    break;
                }
            }
        }
        return port;
    }
    let vs_port = entries[0].1;
    if port == 0 {
        return vs_port;
    }
    if fwd != FwdMethod::Masq && port != vs_port {
        diags.error(
            pos,
            format!(
                "WARNING - virtual server {vs_name} and {what} {} ports don't match - resetting",
                trio(addr, protocol, port)
            ),
        );
        return vs_port;
    }
    port
}

fn checker(
    c: &RawChecker,
    vs: &RawVs,
    rs: &RawRs,
    rs_port: u16,
    diags: &mut Diags,
) -> Option<Checker> {
    // Per-kind defaults (keepalived's default_retry / default_delay_before_retry).
    let (default_retry, default_dbr) = match &c.kind {
        RawKind::Misc { .. } => (0, Some(Duration::from_secs(1))),
        RawKind::Dns { .. } => (3, None),
        RawKind::Http { .. } => (1, Some(Duration::from_secs(3))),
        _ => (1, Some(Duration::from_secs(1))),
    };
    let delay_loop = c.delay_loop.or(rs.delay_loop).unwrap_or(vs.delay_loop);
    let retry = c.retry.or(rs.retry).or(vs.retry).unwrap_or(default_retry);
    let warmup = c.warmup.or(rs.warmup).or(vs.warmup).unwrap_or(delay_loop);
    let delay_before_retry = c
        .delay_before_retry
        .or(rs.delay_before_retry)
        .or(vs.delay_before_retry)
        .or(default_dbr)
        .unwrap_or(delay_loop);
    let alpha = c.alpha.or(rs.alpha).unwrap_or(vs.alpha);
    let timeout = c
        .connect_timeout
        .or(rs.connect_timeout)
        .unwrap_or(vs.connect_timeout);

    let conn = if matches!(c.kind, RawKind::Misc { .. }) {
        None
    } else {
        let ip = c.connect_ip.unwrap_or(rs.addr);
        let dst = SocketAddr::new(ip, c.connect_port.unwrap_or(rs_port));
        let bindto = match (c.bindto, c.bind_port) {
            (Some(a), p) => Some(SocketAddr::new(a, p.unwrap_or(0))),
            (None, Some(p)) => Some(SocketAddr::new(
                if ip.is_ipv6() {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                },
                p,
            )),
            (None, None) => None,
        };
        if let Some(b) = bindto {
            if b.is_ipv6() != dst.is_ipv6() {
                diags.error(
                    &c.pos,
                    format!(
                        "bindto address {} does not match address family of connect_ip - skipping",
                        b.ip()
                    ),
                );
                return None;
            }
        }
        if dst.port() == 0 {
            diags.error(
                &c.pos,
                format!(
                    "{} for {}: no port to connect to (set connect_port) - skipping",
                    kind_name(&c.kind),
                    rs.addr
                ),
            );
            return None;
        }
        Some(ConnOpts {
            dst,
            bindto,
            timeout,
        })
    };

    let vhost = |url: &Option<String>, chk: &Option<String>| -> Option<String> {
        url.clone()
            .or_else(|| chk.clone())
            .or_else(|| rs.virtualhost.clone())
            .or_else(|| vs.virtualhost.clone())
    };
    let kind = match &c.kind {
        RawKind::Tcp => CheckKind::Tcp,
        RawKind::Http {
            ssl,
            protocol,
            virtualhost,
            urls,
            enable_sni,
            fast_recovery,
        } => CheckKind::Http(HttpCheck {
            ssl: *ssl,
            protocol: *protocol,
            urls: urls
                .iter()
                .map(|u| Url {
                    path: u.path.clone().unwrap_or_default(),
                    digest: u.digest,
                    status: u.status.clone(),
                    virtualhost: vhost(&u.virtualhost, virtualhost),
                })
                .collect(),
            enable_sni: *enable_sni,
            fast_recovery: *fast_recovery,
        }),
        RawKind::Misc {
            script,
            user,
            timeout,
            dynamic,
        } => CheckKind::Misc(MiscCheck {
            script: Script {
                args: script.clone().unwrap_or_default(),
                user: user.clone(),
            },
            timeout: timeout.filter(|t| !t.is_zero()).unwrap_or(vs.delay_loop),
            dynamic: *dynamic,
        }),
        RawKind::Dns { qtype, name } => CheckKind::Dns(DnsCheck {
            qtype: *qtype,
            name: name.clone().unwrap_or_default(),
        }),
        RawKind::Udp {
            payload,
            require_reply,
            reply,
            min_len,
            max_len,
        } => CheckKind::Udp(UdpCheck {
            payload: payload.clone(),
            require_reply: *require_reply,
            reply: reply.clone(),
            min_reply_len: *min_len,
            max_reply_len: *max_len,
        }),
    };
    Some(Checker {
        pos: c.pos.clone(),
        kind,
        alpha,
        delay_loop,
        warmup,
        retry,
        delay_before_retry,
        log_all_failures: c.log_all_failures,
        conn,
    })
}

fn kind_name(k: &RawKind) -> &'static str {
    match k {
        RawKind::Tcp => "TCP_CHECK",
        RawKind::Http { ssl: true, .. } => "SSL_GET",
        RawKind::Http { .. } => "HTTP_GET",
        RawKind::Misc { .. } => "MISC_CHECK",
        RawKind::Dns { .. } => "DNS_CHECK",
        RawKind::Udp { .. } => "UDP_CHECK",
    }
}
