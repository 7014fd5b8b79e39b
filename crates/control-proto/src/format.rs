//! ipvsadm's output formats, byte for byte (see docs/ipvsadm-behaviour.md).
//!
//! Why this file is long (about 1060 lines): every ipvsadm output format
//! byte for byte (about 650 lines), and their tests (about 410).

use std::cmp::Ordering;
use std::fmt::Write;
use std::net::IpAddr;

use rvs_ipvs::sched::sched_flags;
use rvs_ipvs::types::ipvsadm_addr_cmp;
use rvs_ipvs::{Command, DestSpec};
use rvs_ipvs::{
    FwdMethod, IpvsError, PersistMask, Protocol, ServiceKey, ServiceSpec, TunCsum, TunKind,
};

use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::ConnRow;

use crate::proto::{DefenseView, DestView, Listing, ServiceView, Totals};

/// The IPVS version ipvsadm reports for current kernels.
pub const IPVS_VERSION: &str = "1.2.1";

/// Turns addresses and ports into names (`-L`) or numbers (`-Ln`).
pub trait Names {
    fn host(&self, addr: IpAddr) -> String;
    fn port(&self, port: u16, protocol: Protocol) -> String;
}

/// `-n`: numbers only.
pub struct Numeric;

impl Names for Numeric {
    fn host(&self, addr: IpAddr) -> String {
        addr.to_string()
    }

    fn port(&self, port: u16, _protocol: Protocol) -> String {
        port.to_string()
    }
}

fn addr_port(names: &dyn Names, addr: IpAddr, port: u16, protocol: Protocol) -> String {
    let h = names.host(addr);
    let p = names.port(port, protocol);
    match addr {
        IpAddr::V4(_) => format!("{h}:{p}"),
        IpAddr::V6(_) => format!("[{h}]:{p}"),
    }
}

fn truncate(s: String, n: usize) -> String {
    if s.len() > n {
        s.chars().take(n).collect()
    } else {
        s
    }
}

/// Sorts as ipvsadm does: glibc's `qsort`, which is a top-down merge sort
/// (left half `n / 2`, ties taken from the left), with ipvsadm's comparison.
/// That comparison is not a total order for addresses more than 2^31 apart,
/// so the algorithm decides the result, and this one gives ipvsadm's
/// (checked in the kernel VM: oracle/scenarios/listing/order.toml).
fn sort_quirky<T: Clone>(v: &mut [T], cmp: impl Fn(&T, &T) -> Ordering) {
    fn msort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering) {
        if v.len() <= 1 {
            return;
        }
        let n1 = v.len() / 2;
        msort(&mut v[..n1], cmp);
        msort(&mut v[n1..], cmp);
        let (left, right) = (v[..n1].to_vec(), v[n1..].to_vec());
        let (mut i, mut j) = (0, 0);
        for slot in v.iter_mut() {
            let take_left = j >= right.len()
                || (i < left.len() && cmp(&left[i], &right[j]) != Ordering::Greater);
            if take_left {
                *slot = left[i].clone();
                i += 1;
            } else {
                *slot = right[j].clone();
                j += 1;
            }
        }
    }
    msort(v, &cmp);
}

fn family(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 10,
    }
}

fn cmp_services(a: &ServiceView, b: &ServiceView) -> Ordering {
    let (x, y) = (a.spec.key, b.spec.key);
    family(x.addr)
        .cmp(&family(y.addr))
        .then(x.protocol.number().cmp(&y.protocol.number()))
        .then(ipvsadm_addr_cmp(x.addr, y.addr))
        .then(x.port.cmp(&y.port))
}

fn cmp_dests(a: &DestView, b: &DestView) -> Ordering {
    ipvsadm_addr_cmp(a.spec.addr, b.spec.addr).then(a.spec.port.cmp(&b.spec.port))
}

/// Services and their dests in ipvsadm's display order.
pub fn sorted(l: &Listing) -> Vec<ServiceView> {
    let mut v = l.services.clone();
    sort_quirky(&mut v, cmp_services);
    for s in &mut v {
        sort_quirky(&mut s.dests, cmp_dests);
    }
    v
}

/// The names `-b` and the listing use for the scheduler flags set.
pub fn sched_flag_names(spec: &ServiceSpec) -> Vec<&'static str> {
    let names: [&str; 3] = match spec.scheduler.as_str() {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    [
        sched_flags::SCHED1,
        sched_flags::SCHED2,
        sched_flags::SCHED3,
    ]
    .iter()
    .zip(names)
    .filter(|(bit, _)| spec.sched_flags & **bit != 0)
    .map(|(_, n)| n)
    .collect()
}

/// The persistence mask as `-L` and `-S` show it, unless it is the full
/// one (which they leave out).
fn mask_arg(m: PersistMask) -> Option<String> {
    (!m.is_full()).then(|| match m {
        PersistMask::V4(a) => a.to_string(),
        PersistMask::V6Prefix(p) => p.to_string(),
    })
}

/// `TCP  192.168.1.10:80`: protocol and address, cut to 33 characters for
/// IPv4 as ipvsadm's buffer does.
fn service_name(s: &ServiceSpec, names: &dyn Names) -> String {
    let k = s.key;
    let name = format!(
        "{:<4} {}",
        k.protocol.name(),
        addr_port(names, k.addr, k.port, k.protocol)
    );
    if k.addr.is_ipv4() {
        truncate(name, 33)
    } else {
        name
    }
}

fn service_line(s: &ServiceSpec, names: &dyn Names) -> String {
    let name = service_name(s, names);
    let mut line = format!("{} {}", name, s.scheduler);
    let flags = sched_flag_names(s);
    if !flags.is_empty() {
        let _ = write!(line, " ({})", flags.join(","));
    }
    if let Some(t) = s.persistent {
        let _ = write!(line, " persistent {t}");
        if let Some(m) = mask_arg(s.netmask) {
            let _ = write!(line, " mask {m}");
        }
    }
    if s.one_packet {
        line.push_str(" ops");
    }
    line
}

fn dest_name(d: &DestView, protocol: Protocol, names: &dyn Names) -> String {
    let n = addr_port(names, d.spec.addr, d.spec.port, protocol);
    if d.spec.addr.is_ipv4() {
        truncate(n, 28)
    } else {
        n
    }
}

/// Which columns `-L` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListMode {
    #[default]
    Normal,
    /// `--thresholds`: Uthreshold Lthreshold ActiveConn InActConn.
    Thresholds,
    /// `--persistent-conn`: Weight PersistConn ActiveConn InActConn.
    PersistentConn,
    /// `--tun-info`: the normal columns with TunnelInfo after Forward.
    TunInfo,
    /// `--stats`: Conns InPkts OutPkts InBytes OutBytes; `exact` (`-X`)
    /// prints whole numbers instead of K/M/G/T.
    Stats { exact: bool },
    /// `--rate`: CPS InPPS OutPPS InBPS OutBPS.
    Rate { exact: bool },
}

/// ipvsadm's `print_largenum`: a column of 9 (a space and 8 digits) for
/// numbers below 10^8, else 8 digits of thousands, millions, billions or
/// trillions and the letter; with `exact`, the whole number in at least 9
/// columns and always after a space.
fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let w = n.to_string().len();
        write!(out, "{:>1$}", n, if w <= 8 { 9 } else { w + 1 })
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

fn stats_columns(out: &mut String, s: &rvs_ipvs::stats::Stats, exact: bool) {
    for n in [s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes] {
        largenum(out, n, exact);
    }
}

/// `ipvsadm -L[n]`, or with `only` set, `ipvsadm -L -t addr:port` (which has
/// no version header).
pub fn list(l: &Listing, only: Option<ServiceKey>, names: &dyn Names) -> Result<String, IpvsError> {
    list_mode(l, only, names, ListMode::Normal)
}

/// As [`list`], with the columns of `mode`.
pub fn list_mode(
    l: &Listing,
    only: Option<ServiceKey>,
    names: &dyn Names,
    mode: ListMode,
) -> Result<String, IpvsError> {
    list_ordered(l, only, names, mode, true)
}

/// As [`list_mode`]; without `sort` (`--nosort`) services and real servers
/// come in the table's own order: real servers newest first, as the
/// kernel's list has them.
pub fn list_ordered(
    l: &Listing,
    only: Option<ServiceKey>,
    names: &dyn Names,
    mode: ListMode,
    sort: bool,
) -> Result<String, IpvsError> {
    let mut out = String::new();
    let services = if sort { sorted(l) } else { l.services.clone() };
    let shown: Vec<&ServiceView> = match only {
        Some(k) => {
            let s = services
                .iter()
                .find(|s| s.spec.key == k)
                .ok_or(IpvsError::NoSuchService)?;
            vec![s]
        }
        None => {
            let _ = writeln!(
                out,
                "IP Virtual Server version {} (size={})",
                IPVS_VERSION, l.conn_table_size
            );
            services.iter().collect()
        }
    };
    match mode {
        ListMode::Normal => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
        }
        ListMode::Thresholds => {
            let _ = writeln!(
                out,
                "{:<33} {:<10} {:<10} {:<10} {:<10}",
                "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
            );
            out.push_str("  -> RemoteAddress:Port\n");
        }
        ListMode::PersistentConn => {
            let _ = writeln!(
                out,
                "{:<33} {:<9} {:<11} {:<10} {:<10}",
                "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
            );
            out.push_str("  -> RemoteAddress:Port\n");
        }
        ListMode::TunInfo => {
            out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
            out.push_str(
                "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
            );
        }
        ListMode::Stats { .. } => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            );
            out.push_str("  -> RemoteAddress:Port\n");
        }
        ListMode::Rate { .. } => {
            let _ = writeln!(
                out,
                "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
            );
            out.push_str("  -> RemoteAddress:Port\n");
        }
    }
    for s in shown {
        match mode {
            ListMode::Stats { exact } => {
                let _ = write!(out, "{:<33}", service_name(&s.spec, names));
                stats_columns(&mut out, &s.stats, exact);
            }
            ListMode::Rate { exact } => {
                let _ = write!(out, "{:<33}", service_name(&s.spec, names));
                let r = s.rates;
                for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
                    largenum(&mut out, n, exact);
                }
            }
            _ => out.push_str(&service_line(&s.spec, names)),
        }
        out.push('\n');
        for d in &s.dests {
            let name = dest_name(d, s.spec.key.protocol, names);
            let _ = match mode {
                ListMode::Stats { exact } => {
                    let _ = write!(out, "  -> {name:<28}");
                    stats_columns(&mut out, &d.stats, exact);
                    writeln!(out)
                }
                // ipvsadm prints the first three rates of a real server
                // plainly, with no K/M/G and no --exact.
                ListMode::Rate { exact } => {
                    let r = d.rates;
                    let _ = write!(
                        out,
                        "  -> {name:<28} {:>8} {:>8} {:>8}",
                        r.cps, r.inpps, r.outpps
                    );
                    largenum(&mut out, r.inbps, exact);
                    largenum(&mut out, r.outbps, exact);
                    writeln!(out)
                }
                ListMode::Normal => writeln!(
                    out,
                    "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                    name,
                    d.spec.fwd.name(),
                    d.spec.weight,
                    d.active,
                    d.inactive
                ),
                ListMode::Thresholds => writeln!(
                    out,
                    "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
                    name, d.spec.u_threshold, d.spec.l_threshold, d.active, d.inactive
                ),
                ListMode::PersistentConn => writeln!(
                    out,
                    "  -> {:<28} {:<9} {:<11} {:<10} {:<10}",
                    name, d.spec.weight, d.persistent, d.active, d.inactive
                ),
                ListMode::TunInfo => writeln!(
                    out,
                    "  -> {:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
                    name,
                    d.spec.fwd.name(),
                    match d.spec.fwd {
                        FwdMethod::Tunnel(t) => t.info(),
                        _ => "n/a".to_string(),
                    },
                    d.spec.weight,
                    d.active,
                    d.inactive
                ),
            };
        }
    }
    Ok(out)
}

fn svc_arg(k: &ServiceKey, names: &dyn Names) -> String {
    let opt = match k.protocol {
        Protocol::Tcp => "-t",
        Protocol::Udp => "-u",
        Protocol::Sctp => "--sctp-service",
    };
    format!("{opt} {}", addr_port(names, k.addr, k.port, k.protocol))
}

fn csum_opt(c: TunCsum) -> &'static str {
    match c {
        TunCsum::None => " --tun-nocsum",
        TunCsum::Csum => " --tun-csum",
        TunCsum::RemCsum => " --tun-remcsum",
    }
}

/// The rows of /proc/net/ip_vs_stats: totals in hexadecimal, as the kernel
/// prints them (tools that parse that file parse this).
pub fn totals(t: &Totals) -> String {
    let (s, r) = (t.stats, t.rates);
    let mut out = String::new();
    out.push_str("   Total Incoming Outgoing         Incoming         Outgoing\n");
    out.push_str("   Conns  Packets  Packets            Bytes            Bytes\n");
    let _ = writeln!(
        out,
        "{:8X} {:8X} {:8X} {:16X} {:16X}\n",
        s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes
    );
    out.push_str(" Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n");
    let _ = writeln!(
        out,
        "{:8X} {:8X} {:8X} {:16X} {:16X}",
        r.cps, r.inpps, r.outpps, r.inbps, r.outbps
    );
    out
}

/// `rvsadm --defense`: the settings as the kernel's sysctls name them
/// (`name value`, as `sysctl net.ipv4.vs` lists them, less the prefix),
/// then each worker's state. An automatic mode shows 1 or 2 per worker, as
/// the kernel's sysctl does: 2 while that worker's table is short of free
/// slots.
pub fn defense(v: &DefenseView) -> String {
    let c = &v.config;
    let mut out = String::new();
    for (k, val) in [
        ("amemthresh", c.amemthresh.to_string()),
        ("am_droprate", c.am_droprate.to_string()),
        ("drop_entry", c.drop_entry.to_string()),
        ("drop_packet", c.drop_packet.to_string()),
        ("secure_tcp", c.secure_tcp.to_string()),
        (
            "secure_tcp_syn_timeout",
            c.secure_tcp_syn_timeout_s.to_string(),
        ),
        (
            "reclaim_half_open",
            u8::from(c.reclaim_half_open).to_string(),
        ),
    ] {
        let _ = writeln!(out, "{k} = {val}");
    }
    for w in &v.workers {
        let l = &w.level;
        let _ = writeln!(
            out,
            "\nworker {} (lcore {}): {} of {} connection slots free",
            w.worker, w.lcore, l.free_slots, w.conn_capacity
        );
        let on = |b: bool| if b { "on" } else { "off" };
        let _ = writeln!(
            out,
            "  drop_entry  = {} ({})",
            l.drop_entry,
            on(l.dropping_entries)
        );
        let rate = if l.drop_rate > 0 {
            format!("on: 1 new connection in {}", l.drop_rate)
        } else {
            "off".into()
        };
        let _ = writeln!(out, "  drop_packet = {} ({rate})", l.drop_packet);
        let _ = writeln!(
            out,
            "  secure_tcp  = {} ({})",
            l.secure_tcp,
            if l.secure {
                "on: tcp_states_dos"
            } else {
                "off"
            }
        );
        let _ = writeln!(out, "  half_open_reclaimed {}", w.half_open_reclaimed);
        let _ = writeln!(out, "  entries_dropped     {}", w.entries_dropped);
        let _ = writeln!(out, "  drop_defense        {}", w.packets_dropped);
    }
    out
}

/// /proc/net/ip_vs_stats_percpu with a row per worker where the kernel has
/// one per CPU (raw, never zeroed), then the totals row (`~`).
pub fn totals_per_worker(t: &Totals) -> String {
    let mut out = String::new();
    out.push_str("       Total Incoming Outgoing         Incoming         Outgoing\n");
    out.push_str("CPU    Conns  Packets  Packets            Bytes            Bytes\n");
    for (i, w) in t.workers.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:3X} {:8X} {:8X} {:8X} {:16X} {:16X}",
            i, w.conns, w.inpkts, w.outpkts, w.inbytes, w.outbytes
        );
    }
    let s = t.stats;
    let _ = writeln!(
        out,
        "  ~ {:8X} {:8X} {:8X} {:16X} {:16X}\n",
        s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes
    );
    out.push_str("     Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n");
    let r = t.rates;
    let _ = writeln!(
        out,
        "    {:8X} {:8X} {:8X} {:16X} {:16X}",
        r.cps, r.inpps, r.outpps, r.inbps, r.outbps
    );
    out
}

/// `ipvsadm -Lc[n]`.
pub fn conns(rows: &[ConnRow], names: &dyn Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let _ = writeln!(
        out,
        "pro expire {:<11} {:<18} {:<18} destination",
        "state", "source", "virtual"
    );
    for r in rows {
        let e = r.expires_s;
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            r.protocol.name(),
            format!("{:02}:{:02}", e / 60, e % 60),
            r.state,
            addr_port(names, r.caddr, r.cport, r.protocol),
            addr_port(names, r.vaddr, r.vport, r.protocol),
            addr_port(names, r.daddr, r.dport, r.protocol)
        );
    }
    out
}

/// `ipvsadm -L --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `ipvsadm -S[n]`: commands that rebuild the table with `-R`.
pub fn save(l: &Listing, names: &dyn Names) -> String {
    let mut out = String::new();
    for s in sorted(l) {
        out.push_str(&save_service("-A", &s.spec, names));
        out.push('\n');
        for d in &s.dests {
            out.push_str(&save_dest("-a", &s.spec.key, &d.spec, names));
            out.push('\n');
        }
    }
    out
}

/// A service as `-S` writes it, after `cmd` (`-A`, or `-E`).
fn save_service(cmd: &str, spec: &ServiceSpec, names: &dyn Names) -> String {
    let mut out = String::new();
    let k = spec.key;
    let _ = write!(out, "{cmd} {} -s {}", svc_arg(&k, names), spec.scheduler);
    if let Some(t) = spec.persistent {
        let _ = write!(out, " -p {t}");
        if let Some(m) = mask_arg(spec.netmask) {
            let _ = write!(out, " -M {m}");
        }
    }
    if spec.one_packet {
        out.push_str(" -o");
    }
    let flags = sched_flag_names(spec);
    if !flags.is_empty() {
        let _ = write!(out, " -b {}", flags.join(","));
    }
    out
}

/// A real server as `-S` writes it, after `cmd` (`-a`, or `-e`).
fn save_dest(cmd: &str, k: &ServiceKey, d: &DestSpec, names: &dyn Names) -> String {
    let fwd = match d.fwd {
        FwdMethod::Masq => "-m",
        FwdMethod::Tunnel(_) => "-i",
        FwdMethod::Route | FwdMethod::Local => "-g",
    };
    let mut out = format!(
        "{cmd} {} -r {} {fwd} -w {}",
        svc_arg(k, names),
        addr_port(names, d.addr, d.port, k.protocol),
        d.weight
    );
    if let FwdMethod::Tunnel(t) = d.fwd {
        out.push_str(&match t.kind {
            TunKind::Ipip => " --tun-type ipip".to_string(),
            TunKind::Gue => {
                format!(" --tun-type gue --tun-port {}{}", t.port, csum_opt(t.csum))
            }
            TunKind::Gre => format!(" --tun-type gre{}", csum_opt(t.csum)),
        });
    }
    out
}

/// One table command as an rvsadm command line (`-S`'s format, with the
/// thresholds that `-S` leaves out), for logs and reload reports.
pub fn command(cmd: &Command, names: &dyn Names) -> String {
    let thresholds = |d: &DestSpec| {
        let mut t = String::new();
        if d.u_threshold != 0 {
            let _ = write!(t, " -x {}", d.u_threshold);
        }
        if d.l_threshold != 0 {
            let _ = write!(t, " -y {}", d.l_threshold);
        }
        t
    };
    match cmd {
        Command::AddService(s) => save_service("-A", s, names),
        Command::EditService(s) => save_service("-E", s, names),
        Command::DelService(k) => format!("-D {}", svc_arg(k, names)),
        Command::Clear => "-C".to_string(),
        Command::AddDest(k, d) => save_dest("-a", k, d, names) + &thresholds(d),
        Command::EditDest(k, d) => save_dest("-e", k, d, names) + &thresholds(d),
        Command::DelDest(k, d) => format!(
            "-d {} -r {}",
            svc_arg(k, names),
            addr_port(names, d.addr, d.port, k.protocol)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ipvs::stats::{Rates, Stats};
    use rvs_ipvs::DestSpec;

    fn listing() -> Listing {
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.168.1.10".parse().unwrap(),
            port: 80,
        };
        let dest = |a: &str, active, inactive| DestView {
            spec: DestSpec {
                addr: a.parse().unwrap(),
                port: 80,
                fwd: FwdMethod::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            },
            active,
            inactive,
            persistent: 0,
            stats: Default::default(),
            rates: Default::default(),
        };
        Listing {
            conn_table_size: 4096,
            services: vec![ServiceView {
                spec: ServiceSpec {
                    key,
                    scheduler: "rr".into(),
                    sched_flags: 0,
                    persistent: None,
                    netmask: PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
                    one_packet: false,
                },
                // Kernel order: newest first.
                dests: vec![dest("192.168.1.193", 0, 0), dest("192.168.1.220", 2, 13)],
                stats: Default::default(),
                rates: Default::default(),
            }],
        }
    }

    #[test]
    fn matches_the_spec_example_byte_for_byte() {
        let mut l = listing();
        l.services[0].dests[1].active = 0;
        l.services[0].dests[1].inactive = 0;
        let want = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n\
\x20 -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
TCP  192.168.1.10:80 rr\n\
\x20 -> 192.168.1.193:80             Route   1      0          0         \n\
\x20 -> 192.168.1.220:80             Route   1      0          0         \n";
        assert_eq!(list(&l, None, &Numeric).unwrap(), want);
    }

    #[test]
    fn single_service_has_no_header_and_missing_is_an_error() {
        let l = listing();
        let k = l.services[0].spec.key;
        let s = list(&l, Some(k), &Numeric).unwrap();
        assert!(s.starts_with("Prot LocalAddress:Port"));
        assert!(
            s.contains("  -> 192.168.1.220:80             Route   1      2          13        \n")
        );
        let other = ServiceKey { port: 81, ..k };
        assert_eq!(
            list(&l, Some(other), &Numeric).unwrap_err(),
            IpvsError::NoSuchService
        );
    }

    #[test]
    fn service_flags_persistence_and_ops() {
        let mut l = listing();
        let s = &mut l.services[0].spec;
        s.persistent = Some(360);
        s.netmask = PersistMask::V4("255.255.255.0".parse().unwrap());
        s.sched_flags = sched_flags::SCHED1 | sched_flags::SCHED3;
        let out = list(&l, None, &Numeric).unwrap();
        assert!(out.contains(
            "TCP  192.168.1.10:80 rr (flag-1,flag-3) persistent 360 mask 255.255.255.0\n"
        ));
        let mut l = listing();
        l.services[0].spec.key.protocol = Protocol::Udp;
        l.services[0].spec.one_packet = true;
        l.services[0].spec.scheduler = "sh".into();
        l.services[0].spec.sched_flags = sched_flags::SCHED2;
        let out = list(&l, None, &Numeric).unwrap();
        assert!(
            out.contains("UDP  192.168.1.10:80 sh (sh-port) ops\n"),
            "{out}"
        );
    }

    #[test]
    fn sorts_services_and_dests_like_ipvsadm() {
        let mut l = listing();
        let mut second = l.services[0].clone();
        second.spec.key.port = 22;
        let mut udp = l.services[0].clone();
        udp.spec.key.protocol = Protocol::Udp;
        udp.spec.key.addr = "10.0.0.1".parse().unwrap();
        l.services.push(second);
        l.services.insert(0, udp);
        let out = list(&l, None, &Numeric).unwrap();
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with("IP") && !l.starts_with("Prot"))
            .collect();
        assert_eq!(
            lines,
            [
                "TCP  192.168.1.10:22 rr",
                "TCP  192.168.1.10:80 rr",
                "UDP  10.0.0.1:80 rr"
            ]
        );
        // The quirk: 192.168.0.1 - 10.0.0.1 overflows i32, so it sorts first.
        assert_eq!(
            ipvsadm_addr_cmp("192.168.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()),
            Ordering::Less
        );
    }

    #[test]
    fn dest_order_is_glibc_merge_sort_with_the_quirk() {
        // Added 200.0.0.1, 10.9.9.9, 192.168.9.9, 10.9.9.9:81, 10.9.9.8:82:
        // the kernel lists them newest first, and ipvsadm printed this (the
        // kernel VM, listing/order).
        let mut l = listing();
        let tpl = l.services[0].dests[0].clone();
        l.services[0].dests = [
            ("10.9.9.8", 82),
            ("10.9.9.9", 81),
            ("192.168.9.9", 80),
            ("10.9.9.9", 80),
            ("200.0.0.1", 80),
        ]
        .iter()
        .map(|(a, p)| {
            let mut d = tpl.clone();
            d.spec.addr = a.parse().unwrap();
            d.spec.port = *p;
            d
        })
        .collect();
        let got: Vec<String> = sorted(&l)[0]
            .dests
            .iter()
            .map(|d| format!("{}:{}", d.spec.addr, d.spec.port))
            .collect();
        assert_eq!(
            got,
            [
                "192.168.9.9:80",
                "200.0.0.1:80",
                "10.9.9.8:82",
                "10.9.9.9:80",
                "10.9.9.9:81"
            ]
        );
    }

    #[test]
    fn thresholds_and_persistent_conn_columns() {
        let mut l = listing();
        l.services[0].dests[1].spec.u_threshold = 10000;
        l.services[0].dests[1].spec.l_threshold = 100;
        l.services[0].dests[1].persistent = 4;
        let out = list_mode(&l, None, &Numeric, ListMode::Thresholds).unwrap();
        let want = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n\
\x20 -> RemoteAddress:Port\n\
TCP  192.168.1.10:80 rr\n\
\x20 -> 192.168.1.193:80             0          0          0          0         \n\
\x20 -> 192.168.1.220:80             10000      100        2          13        \n";
        assert_eq!(out, want);
        let out = list_mode(&l, None, &Numeric, ListMode::PersistentConn).unwrap();
        assert!(
            out.contains(
                "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "  -> 192.168.1.220:80             1         4           2          13        \n"
            ),
            "{out}"
        );
    }

    #[test]
    fn connection_entries_and_timeouts() {
        let row = ConnRow {
            protocol: Protocol::Tcp,
            caddr: "192.168.1.50".parse().unwrap(),
            cport: 40000,
            vaddr: "192.168.1.10".parse().unwrap(),
            vport: 80,
            daddr: "192.168.1.220".parse().unwrap(),
            dport: 80,
            state: "ESTABLISHED".into(),
            expires_s: 899,
        };
        assert_eq!(
            conns(&[row], &Numeric),
            "IPVS connection entries\n\
pro expire state       source             virtual            destination\n\
TCP 14:59  ESTABLISHED 192.168.1.50:40000 192.168.1.10:80    192.168.1.220:80\n"
        );
        assert_eq!(
            timeouts(&Timeouts::default()),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }

    fn st(conns: u64, inpkts: u64, inbytes: u64) -> Stats {
        Stats {
            conns,
            inpkts,
            outpkts: 0,
            inbytes,
            outbytes: 0,
        }
    }

    #[test]
    fn stats_columns_byte_for_byte() {
        let mut l = listing();
        l.services[0].stats = st(12, 345, 123_456_789);
        l.services[0].dests[0].stats = st(5, 100, 99_999_999);
        l.services[0].dests[1].stats = st(7, 245, 23_456_790);
        // Expected text from ipvsadm's printf formats (print_title,
        // print_service_entry, print_largenum), evaluated separately.
        let want = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n\
\x20 -> RemoteAddress:Port\n\
TCP  192.168.1.10:80                    12      345        0  123456K        0\n\
\x20 -> 192.168.1.193:80                    5      100        0 99999999        0\n\
\x20 -> 192.168.1.220:80                    7      245        0 23456790        0\n";
        let mode = ListMode::Stats { exact: false };
        assert_eq!(list_mode(&l, None, &Numeric, mode).unwrap(), want);
        // One service: no version line; --exact prints the whole number.
        let k = l.services[0].spec.key;
        let exact = list_mode(&l, Some(k), &Numeric, ListMode::Stats { exact: true }).unwrap();
        assert!(exact.starts_with("Prot LocalAddress:Port"), "{exact}");
        assert!(
            exact.contains(
                "TCP  192.168.1.10:80                    12      345        0 123456789        0\n"
            ),
            "{exact}"
        );
    }

    #[test]
    fn rate_columns_byte_for_byte() {
        let mut l = listing();
        l.services[0].dests.truncate(1);
        l.services[0].rates = Rates {
            cps: 3,
            inpps: 120,
            outpps: 0,
            inbps: 1_234_567_890,
            outbps: 0,
        };
        l.services[0].dests[0].rates = Rates {
            cps: 1,
            inpps: 50,
            outpps: 0,
            inbps: 500_000_000,
            outbps: 0,
        };
        let k = l.services[0].spec.key;
        let want =
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n\
\x20 -> RemoteAddress:Port\n\
TCP  192.168.1.10:80                     3      120        0 1234567890        0\n\
\x20 -> 192.168.1.193:80                    1       50        0 500000000        0\n";
        let mode = ListMode::Rate { exact: true };
        assert_eq!(list_mode(&l, Some(k), &Numeric, mode).unwrap(), want);
        let scaled = list_mode(&l, Some(k), &Numeric, ListMode::Rate { exact: false }).unwrap();
        assert!(scaled.contains("    1234M        0\n"), "{scaled}");
        assert!(scaled.contains("  500000K        0\n"), "{scaled}");
    }

    #[test]
    fn largenum_units_at_every_boundary() {
        let cases: &[(u64, &str, &str)] = &[
            (0, "        0", "        0"),
            (99_999_999, " 99999999", " 99999999"),
            (100_000_000, "  100000K", " 100000000"),
            (999_999_999, "  999999K", " 999999999"),
            (1_000_000_000, "    1000M", " 1000000000"),
            (99_999_999_999, "   99999M", " 99999999999"),
            (100_000_000_000, "     100G", " 100000000000"),
            (99_999_999_999_999, "   99999G", " 99999999999999"),
            (100_000_000_000_000, "     100T", " 100000000000000"),
            (u64::MAX, "18446744T", " 18446744073709551615"),
        ];
        for (n, scaled, exact) in cases {
            let (mut a, mut b) = (String::new(), String::new());
            largenum(&mut a, *n, false);
            largenum(&mut b, *n, true);
            assert_eq!((a.as_str(), b.as_str()), (*scaled, *exact), "{n}");
        }
    }

    #[test]
    fn totals_as_proc_net_ip_vs_stats() {
        let t = Totals {
            stats: Stats {
                conns: 6,
                inpkts: 0x2a,
                outpkts: 0,
                inbytes: 0x1234,
                outbytes: 0,
            },
            rates: Rates::default(),
            workers: vec![st(4, 30, 0x1000), st(2, 12, 0x234)],
        };
        assert_eq!(
            totals(&t),
            "   Total Incoming Outgoing         Incoming         Outgoing\n\
\x20  Conns  Packets  Packets            Bytes            Bytes\n\
\x20      6       2A        0             1234                0\n\
\n\
\x20Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n\
\x20      0        0        0                0                0\n"
        );
        let per = totals_per_worker(&t);
        assert_eq!(
            per.lines().take(5).collect::<Vec<_>>(),
            [
                "       Total Incoming Outgoing         Incoming         Outgoing",
                "CPU    Conns  Packets  Packets            Bytes            Bytes",
                "  0        4       1E        0             1000                0",
                "  1        2        C        0              234                0",
                "  ~        6       2A        0             1234                0",
            ]
        );
        assert!(per.ends_with(
            "     Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n\
\x20          0        0        0                0                0\n"
        ));
    }

    #[test]
    fn save_format() {
        let l = listing();
        assert_eq!(
            save(&l, &Numeric),
            "-A -t 192.168.1.10:80 -s rr\n\
-a -t 192.168.1.10:80 -r 192.168.1.193:80 -g -w 1\n\
-a -t 192.168.1.10:80 -r 192.168.1.220:80 -g -w 1\n"
        );
    }
}

#[cfg(test)]
mod defense_tests {
    use super::*;
    use crate::proto::WorkerDefense;
    use rvs_ipvs::defense::{DefenseConfig, DefenseLevel};

    #[test]
    fn defense_shows_settings_then_each_worker() {
        let v = DefenseView {
            config: DefenseConfig {
                drop_packet: 1,
                ..DefenseConfig::default()
            },
            workers: vec![WorkerDefense {
                worker: 0,
                lcore: 1,
                conn_capacity: 4096,
                level: DefenseLevel {
                    drop_packet: 2,
                    drop_rate: 4,
                    free_slots: 768,
                    ..DefenseLevel::default()
                },
                half_open_reclaimed: 12,
                entries_dropped: 0,
                packets_dropped: 3,
            }],
        };
        assert_eq!(
            defense(&v),
            "amemthresh = 1024\n\
am_droprate = 10\n\
drop_entry = 0\n\
drop_packet = 1\n\
secure_tcp = 0\n\
secure_tcp_syn_timeout = 10\n\
reclaim_half_open = 1\n\
\n\
worker 0 (lcore 1): 768 of 4096 connection slots free\n\
\x20 drop_entry  = 0 (off)\n\
\x20 drop_packet = 2 (on: 1 new connection in 4)\n\
\x20 secure_tcp  = 0 (off)\n\
\x20 half_open_reclaimed 12\n\
\x20 entries_dropped     0\n\
\x20 drop_defense        3\n"
        );
    }
}
