//! ipvsadm's command line, with popt's rules (see docs/ipvsadm-behaviour.md).
//!
//! Why this file is long (about 1280 lines): ipvsadm's whole command line,
//! every option with popt's rules and ipvsadm's checks and messages, from
//! one option table; the tests are in `parse/tests.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};

use rvs_ipvs::sched::sched_flags;
use rvs_ipvs::{
    sched, Command, DestKey, DestSpec, FwdMethod, PersistMask, Protocol, ServiceKey, ServiceSpec,
    TunCsum, TunKind, TunSpec,
};

use rvs_control_proto::format::ListMode;

use crate::names;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Help,
    Version,
    Apply(Command),
    List {
        numeric: bool,
        only: Option<ServiceKey>,
        mode: ListMode,
        /// Off with `--nosort`.
        sort: bool,
    },
    Save {
        numeric: bool,
    },
    Restore,
    /// rvs extension: dataplane counters.
    Counters,
    /// rvs extension: the SYN-flood defence's settings and state (what the
    /// kernel shows in /proc/sys/net/ipv4/vs/).
    Defense,
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// rvs extension: the totals of /proc/net/ip_vs_stats (`--totals`), or
    /// of ip_vs_stats_percpu with a row per worker (`--totals-per-worker`).
    Totals {
        per_worker: bool,
    },
    /// rvs extension: rvs-keepalived's checker state (its status file).
    Health,
    /// rvs extension: rvsd reads its configuration and rules file again.
    Reload,
    /// rvs extension: `--drain` (true) stops announcing the VIPs to the
    /// routers and lets existing connections finish; `--undrain` (false)
    /// announces them again.
    Drain(bool),
    /// rvs extension: what this director announces, and whether it drains.
    Announcement,
    /// `--set tcp tcpfin udp`.
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// `-L --timeout`.
    Timeouts,
    /// `-Lc`.
    ListConns {
        numeric: bool,
    },
    /// `--start-daemon`.
    StartDaemon(rvs_control_proto::sync::DaemonRequest),
    /// `--stop-daemon`.
    StopDaemon(rvs_control_proto::sync::SyncRole),
    /// `-L --daemon`.
    ListDaemons,
}

/// A message for stderr and the exit code, as ipvsadm would give them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub msg: String,
    pub code: u8,
}

impl ParseError {
    fn fail(msg: impl Into<String>) -> ParseError {
        ParseError {
            msg: msg.into(),
            code: 2,
        }
    }

    pub fn try_help(prog: &str) -> ParseError {
        ParseError {
            msg: format!("Try `{prog} -h' or '{prog} --help' for more information."),
            code: 255,
        }
    }

    fn popt(elem: &str, what: &str) -> ParseError {
        ParseError {
            msg: format!("{elem}: {what}"),
            code: 255,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    Flush,
    List,
    AddServer,
    DelServer,
    EditServer,
    Set,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
    Help,
    Version,
    Counters,
    Defense,
    Totals,
    TotalsPerWorker,
    Health,
    Reload,
    Drain,
    Undrain,
    Announcement,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DelService => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DelServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Set => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::Help => "help",
            Cmd::Version => "version",
            Cmd::Counters => "counters",
            Cmd::Defense => "defense",
            Cmd::Totals => "totals",
            Cmd::TotalsPerWorker => "totals-per-worker",
            Cmd::Health => "health",
            Cmd::Reload => "reload",
            Cmd::Drain => "drain",
            Cmd::Undrain => "undrain",
            Cmd::Announcement => "announcement",
        }
    }
}

/// Options in ipvsadm's `optnames` order, which is also the order in which
/// the command/option table is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    McastInterface,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNoCsum,
    TunCsum,
    TunRemCsum,
}

const OPT_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

const ALL_OPTS: [Opt; 34] = [
    Opt::Numeric,
    Opt::Connection,
    Opt::Service,
    Opt::Scheduler,
    Opt::Persistent,
    Opt::Netmask,
    Opt::RealServer,
    Opt::Forward,
    Opt::Weight,
    Opt::UThreshold,
    Opt::LThreshold,
    Opt::McastInterface,
    Opt::Timeout,
    Opt::Daemon,
    Opt::Stats,
    Opt::Rate,
    Opt::Thresholds,
    Opt::PersistentConn,
    Opt::NoSort,
    Opt::SyncId,
    Opt::Exact,
    Opt::Ops,
    Opt::Pe,
    Opt::SchedFlags,
    Opt::McastGroup,
    Opt::McastPort,
    Opt::McastTtl,
    Opt::SyncMaxlen,
    Opt::TunInfo,
    Opt::TunType,
    Opt::TunPort,
    Opt::TunNoCsum,
    Opt::TunCsum,
    Opt::TunRemCsum,
];

/// ipvsadm's command/option table: `+` required, `1` at most one of the
/// group, ` ` allowed, and anything not listed is illegal.
fn rule(cmd: Cmd, o: Opt) -> char {
    use Opt::*;
    match cmd {
        Cmd::AddService | Cmd::EditService => match o {
            Service => '+',
            Scheduler | Persistent | Netmask | Ops | Pe | SchedFlags => ' ',
            _ => 'x',
        },
        Cmd::DelService => match o {
            Service => '+',
            _ => 'x',
        },
        Cmd::List => match o {
            Connection | Service | Timeout | Daemon => '1',
            Numeric | Stats | Rate | Thresholds | PersistentConn | NoSort | SyncId | Exact
            | TunInfo => ' ',
            _ => 'x',
        },
        Cmd::AddServer | Cmd::EditServer => match o {
            Service | RealServer => '+',
            Forward | Weight | UThreshold | LThreshold | TunType | TunPort | TunNoCsum
            | TunCsum | TunRemCsum => ' ',
            _ => 'x',
        },
        Cmd::DelServer => match o {
            Service | RealServer => '+',
            _ => 'x',
        },
        Cmd::StartDaemon => match o {
            McastInterface | SyncId | McastGroup | McastPort | McastTtl | SyncMaxlen => ' ',
            _ => 'x',
        },
        Cmd::StopDaemon => match o {
            SyncId => ' ',
            _ => 'x',
        },
        Cmd::Save => match o {
            Numeric => ' ',
            _ => 'x',
        },
        Cmd::Zero => match o {
            Service => ' ',
            _ => 'x',
        },
        Cmd::Flush
        | Cmd::Set
        | Cmd::Restore
        | Cmd::Help
        | Cmd::Version
        | Cmd::Counters
        | Cmd::Defense
        | Cmd::Totals
        | Cmd::TotalsPerWorker
        | Cmd::Health
        | Cmd::Reload
        | Cmd::Drain
        | Cmd::Undrain
        | Cmd::Announcement => 'x',
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    None,
    Required,
    /// `-p [timeout]`: takes the next word unless it starts with `-`.
    Optional,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Cmd(Cmd),
    Opt(Opt),
    /// `-6` and `--sort`: outside the table, allowed with any command.
    Ipv6,
    Sort,
}

struct Def {
    long: &'static str,
    short: Option<char>,
    arg: Arg,
    kind: Kind,
}

const fn d(long: &'static str, short: Option<char>, arg: Arg, kind: Kind) -> Def {
    Def {
        long,
        short,
        arg,
        kind,
    }
}

use Arg::{None as N, Optional as O, Required as R};

const DEFS: &[Def] = &[
    d("add-service", Some('A'), N, Kind::Cmd(Cmd::AddService)),
    d("edit-service", Some('E'), N, Kind::Cmd(Cmd::EditService)),
    d("delete-service", Some('D'), N, Kind::Cmd(Cmd::DelService)),
    d("clear", Some('C'), N, Kind::Cmd(Cmd::Flush)),
    d("list", Some('L'), N, Kind::Cmd(Cmd::List)),
    d("list", Some('l'), N, Kind::Cmd(Cmd::List)),
    d("zero", Some('Z'), N, Kind::Cmd(Cmd::Zero)),
    d("add-server", Some('a'), N, Kind::Cmd(Cmd::AddServer)),
    d("edit-server", Some('e'), N, Kind::Cmd(Cmd::EditServer)),
    d("delete-server", Some('d'), N, Kind::Cmd(Cmd::DelServer)),
    d("set", None, N, Kind::Cmd(Cmd::Set)),
    d("help", Some('h'), N, Kind::Cmd(Cmd::Help)),
    d("version", Some('v'), N, Kind::Cmd(Cmd::Version)),
    d("restore", Some('R'), N, Kind::Cmd(Cmd::Restore)),
    d("save", Some('S'), N, Kind::Cmd(Cmd::Save)),
    d("start-daemon", None, R, Kind::Cmd(Cmd::StartDaemon)),
    d("stop-daemon", None, R, Kind::Cmd(Cmd::StopDaemon)),
    d("counters", None, N, Kind::Cmd(Cmd::Counters)),
    d("defense", None, N, Kind::Cmd(Cmd::Defense)),
    d("totals", None, N, Kind::Cmd(Cmd::Totals)),
    d(
        "totals-per-worker",
        None,
        N,
        Kind::Cmd(Cmd::TotalsPerWorker),
    ),
    d("health", None, N, Kind::Cmd(Cmd::Health)),
    d("reload", None, N, Kind::Cmd(Cmd::Reload)),
    d("drain", None, N, Kind::Cmd(Cmd::Drain)),
    d("undrain", None, N, Kind::Cmd(Cmd::Undrain)),
    d("announcement", None, N, Kind::Cmd(Cmd::Announcement)),
    d("tcp-service", Some('t'), R, Kind::Opt(Opt::Service)),
    d("udp-service", Some('u'), R, Kind::Opt(Opt::Service)),
    d("sctp-service", None, R, Kind::Opt(Opt::Service)),
    d("fwmark-service", Some('f'), R, Kind::Opt(Opt::Service)),
    d("scheduler", Some('s'), R, Kind::Opt(Opt::Scheduler)),
    d("persistent", Some('p'), O, Kind::Opt(Opt::Persistent)),
    d("netmask", Some('M'), R, Kind::Opt(Opt::Netmask)),
    d("real-server", Some('r'), R, Kind::Opt(Opt::RealServer)),
    d("masquerading", Some('m'), N, Kind::Opt(Opt::Forward)),
    d("ipip", Some('i'), N, Kind::Opt(Opt::Forward)),
    d("gatewaying", Some('g'), N, Kind::Opt(Opt::Forward)),
    d("weight", Some('w'), R, Kind::Opt(Opt::Weight)),
    d("u-threshold", Some('x'), R, Kind::Opt(Opt::UThreshold)),
    d("l-threshold", Some('y'), R, Kind::Opt(Opt::LThreshold)),
    d("numeric", Some('n'), N, Kind::Opt(Opt::Numeric)),
    d("connection", Some('c'), N, Kind::Opt(Opt::Connection)),
    d("mcast-interface", None, R, Kind::Opt(Opt::McastInterface)),
    d("syncid", None, R, Kind::Opt(Opt::SyncId)),
    d("timeout", None, N, Kind::Opt(Opt::Timeout)),
    d("daemon", None, N, Kind::Opt(Opt::Daemon)),
    d("stats", None, N, Kind::Opt(Opt::Stats)),
    d("rate", None, N, Kind::Opt(Opt::Rate)),
    d("thresholds", None, N, Kind::Opt(Opt::Thresholds)),
    d("persistent-conn", None, N, Kind::Opt(Opt::PersistentConn)),
    d("nosort", None, N, Kind::Opt(Opt::NoSort)),
    d("sort", None, N, Kind::Sort),
    d("exact", Some('X'), N, Kind::Opt(Opt::Exact)),
    d("ipv6", Some('6'), N, Kind::Ipv6),
    d("ops", Some('o'), N, Kind::Opt(Opt::Ops)),
    d("pe", None, R, Kind::Opt(Opt::Pe)),
    d("sched-flags", Some('b'), R, Kind::Opt(Opt::SchedFlags)),
    d("mcast-group", None, R, Kind::Opt(Opt::McastGroup)),
    d("mcast-port", None, R, Kind::Opt(Opt::McastPort)),
    d("mcast-ttl", None, R, Kind::Opt(Opt::McastTtl)),
    d("sync-maxlen", None, R, Kind::Opt(Opt::SyncMaxlen)),
    d("tun-info", None, N, Kind::Opt(Opt::TunInfo)),
    d("tun-type", None, R, Kind::Opt(Opt::TunType)),
    d("tun-port", None, R, Kind::Opt(Opt::TunPort)),
    d("tun-nocsum", None, N, Kind::Opt(Opt::TunNoCsum)),
    d("tun-csum", None, N, Kind::Opt(Opt::TunCsum)),
    d("tun-remcsum", None, N, Kind::Opt(Opt::TunRemCsum)),
];

/// How an option of the table takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    None,
    Required,
    /// `-p [timeout]`.
    Optional,
}

/// One entry of the option table the parser works from: what the man page
/// and the shell completions (`cargo xtask dist`) are made from, so that
/// they offer exactly what rvsadm takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionInfo {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: ValueKind,
    /// A command (`-A`, `--list`, ...) rather than an option.
    pub is_command: bool,
}

/// Every option and command the parser knows, in its table's order; a long
/// name with two short forms (`-L`, `-l`) comes twice.
pub fn option_table() -> Vec<OptionInfo> {
    DEFS.iter()
        .map(|d| OptionInfo {
            long: d.long,
            short: d.short,
            value: match d.arg {
                Arg::None => ValueKind::None,
                Arg::Required => ValueKind::Required,
                Arg::Optional => ValueKind::Optional,
            },
            is_command: matches!(d.kind, Kind::Cmd(_)),
        })
        .collect()
}

/// Removes rvs's own `--socket PATH` / `--socket=PATH` from anywhere on the
/// line, so that the rest parses exactly as ipvsadm's does.
pub fn take_socket_option(args: &mut Vec<String>) -> Result<Option<String>, ParseError> {
    take_path_option(args, "--socket")
}

/// Removes `NAME PATH` / `NAME=PATH` (rvs's own options) from anywhere on
/// the line; the last one wins.
pub fn take_path_option(args: &mut Vec<String>, name: &str) -> Result<Option<String>, ParseError> {
    let mut found = None;
    let mut i = 0;
    let prefix = format!("{name}=");
    while i < args.len() {
        if args[i] == "--" {
            break;
        }
        if args[i] == name {
            if i + 1 >= args.len() {
                return Err(ParseError::popt(name, "missing argument"));
            }
            found = Some(args.remove(i + 1));
            args.remove(i);
        } else if let Some(v) = args[i].strip_prefix(&prefix) {
            found = Some(v.to_string());
            args.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(found)
}

/// Everything options set, before it becomes an [`Action`].
#[derive(Default)]
struct State {
    cmd: Option<Cmd>,
    seen: u64,
    protocol: Option<Protocol>,
    vaddr: Option<(IpAddr, u16)>,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Option<PersistMask>,
    raddr: Option<(IpAddr, u16)>,
    fwd: Option<FwdMethod>,
    weight: Option<u32>,
    u_threshold: u32,
    l_threshold: u32,
    numeric: bool,
    ops: bool,
    sched_flags: Option<String>,
    tun_kind: Option<TunKind>,
    tun_port: Option<u16>,
    tun_csum: Option<TunCsum>,
    leftovers: Vec<String>,
    daemon: Daemon,
}

/// `--start-daemon`/`--stop-daemon`'s role and options.
#[derive(Default)]
struct Daemon {
    role: Option<rvs_control_proto::sync::SyncRole>,
    mcast_ifn: String,
    syncid: u8,
    maxlen: Option<u16>,
    group: Option<IpAddr>,
    port: Option<u16>,
    ttl: Option<u8>,
}

pub fn parse(args: &[String], prog: &str) -> Result<Action, ParseError> {
    if args.is_empty() {
        // ipvsadm with no arguments lists, resolving names.
        return Ok(Action::List {
            numeric: false,
            only: None,
            mode: ListMode::Normal,
            sort: true,
        });
    }
    let mut st = State::default();
    let mut i = 0;
    while i < args.len() {
        let elem = &args[i];
        i += 1;
        if elem == "--" {
            st.leftovers.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = elem.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let def = DEFS
                .iter()
                .find(|d| d.long == name)
                .ok_or_else(|| first_or(&st, prog, ParseError::popt(elem, "unknown option")))?;
            let value = match def.arg {
                Arg::None => {
                    if inline.is_some() {
                        return Err(first_or(
                            &st,
                            prog,
                            ParseError::popt(elem, "option does not take an argument"),
                        ));
                    }
                    None
                }
                Arg::Required => match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            first_or(&st, prog, ParseError::popt(elem, "missing argument"))
                        })?;
                        i += 1;
                        Some(v)
                    }
                },
                Arg::Optional => inline.or_else(|| take_optional(args, &mut i)),
            };
            option(&mut st, def, value, elem, prog)?;
        } else if elem.len() > 1 && elem.starts_with('-') {
            let chars: Vec<char> = elem[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                let def = DEFS
                    .iter()
                    .find(|d| d.short == Some(c))
                    .ok_or_else(|| first_or(&st, prog, ParseError::popt(elem, "unknown option")))?;
                let value = match def.arg {
                    Arg::None => None,
                    Arg::Required | Arg::Optional => {
                        let rest: String = chars[k..].iter().collect();
                        k = chars.len();
                        if !rest.is_empty() {
                            Some(rest.strip_prefix('=').unwrap_or(&rest).to_string())
                        } else if def.arg == Arg::Required {
                            let v = args.get(i).cloned().ok_or_else(|| {
                                first_or(&st, prog, ParseError::popt(elem, "missing argument"))
                            })?;
                            i += 1;
                            Some(v)
                        } else {
                            take_optional(args, &mut i)
                        }
                    }
                };
                option(&mut st, def, value, elem, prog)?;
            }
        } else {
            if st.cmd.is_none() {
                return Err(ParseError::try_help(prog));
            }
            st.leftovers.push(elem.clone());
        }
    }
    finish(st, prog)
}

/// Before any command, every error is "try help" (the first option must be
/// a command); after it, the specific error stands.
fn first_or(st: &State, prog: &str, e: ParseError) -> ParseError {
    if st.cmd.is_none() {
        ParseError::try_help(prog)
    } else {
        e
    }
}

fn take_optional(args: &[String], i: &mut usize) -> Option<String> {
    match args.get(*i) {
        Some(v) if !v.starts_with('-') => {
            *i += 1;
            Some(v.clone())
        }
        _ => None,
    }
}

fn option(
    st: &mut State,
    def: &Def,
    value: Option<String>,
    elem: &str,
    prog: &str,
) -> Result<(), ParseError> {
    let opt = match def.kind {
        Kind::Cmd(c) => {
            if st.cmd.is_some() {
                return Err(ParseError::fail(format!("invalid option `{elem}'")));
            }
            st.cmd = Some(c);
            if matches!(c, Cmd::StartDaemon | Cmd::StopDaemon) {
                use rvs_control_proto::sync::SyncRole;
                st.daemon.role = Some(match value.as_deref() {
                    Some("master") => SyncRole::Master,
                    Some("backup") => SyncRole::Backup,
                    _ if c == Cmd::StartDaemon => {
                        return Err(ParseError::fail("illegal start-daemon parameter specified"))
                    }
                    // ipvsadm says "start_daemon" here too.
                    _ => return Err(ParseError::fail("illegal start_daemon specified")),
                });
            }
            return Ok(());
        }
        _ if st.cmd.is_none() => return Err(ParseError::try_help(prog)),
        Kind::Ipv6 => {
            return Err(ParseError::fail("-6 used before -f\n"));
        }
        Kind::Sort => return Ok(()),
        Kind::Opt(o) => o,
    };
    let bit = 1u64 << (opt as u8);
    if st.seen & bit != 0 {
        return Err(ParseError::fail(format!(
            "multiple '{}' options specified",
            OPT_NAMES[opt as usize]
        )));
    }
    st.seen |= bit;
    let v = value.unwrap_or_default();
    match opt {
        Opt::Service => {
            let protocol = match def.long {
                "tcp-service" => Protocol::Tcp,
                "udp-service" => Protocol::Udp,
                "sctp-service" => Protocol::Sctp,
                _ => {
                    return Err(ParseError::fail(
                        "firewall-mark services (-f) are not supported by rvs yet",
                    ))
                }
            };
            let a = parse_host_port(&v, protocol).ok_or_else(|| {
                ParseError::fail("illegal virtual server address[:port] specified")
            })?;
            st.protocol = Some(protocol);
            st.vaddr = Some(a);
        }
        Opt::RealServer => {
            let protocol = st.protocol.unwrap_or(Protocol::Tcp);
            let (addr, port) = parse_host_port(&v, protocol)
                .ok_or_else(|| ParseError::fail("illegal real server address[:port] specified"))?;
            // Without a port, the service's port as it stands now.
            let port = if port == 0 && !has_port(&v) {
                st.vaddr.map(|(_, p)| p).unwrap_or(0)
            } else {
                port
            };
            st.raddr = Some((addr, port));
        }
        Opt::Scheduler => st.scheduler = Some(v.chars().take(15).collect()),
        Opt::Persistent => {
            st.persistent = Some(if v.is_empty() {
                360
            } else {
                parse_num(&v, 1, 2_678_400).ok_or_else(|| {
                    ParseError::fail(format!("invalid timeout value `{v}' specified"))
                })? as u32
            });
        }
        Opt::Netmask => {
            // IPv4: any 32-bit mask, as an address or host name (`24` is
            // 0.0.0.24); IPv6 (if the service came first): atoi, 1..128.
            let mask =
                match st.vaddr {
                    Some((IpAddr::V6(_), _)) => {
                        let n = atoi(&v);
                        if !(1..=128).contains(&n) {
                            return Err(ParseError::fail("illegal ipv6 netmask specified"));
                        }
                        PersistMask::V6Prefix(n as u8)
                    }
                    _ => PersistMask::V4(inet_aton(&v).or_else(|| resolve_v4(&v)).ok_or_else(
                        || ParseError::fail("illegal virtual server persistent mask specified"),
                    )?),
                };
            st.netmask = Some(mask);
        }
        Opt::Forward => {
            st.fwd = Some(match def.long {
                "masquerading" => FwdMethod::Masq,
                "ipip" => FwdMethod::Tunnel(TunSpec::default()),
                _ => FwdMethod::Route,
            })
        }
        Opt::Weight => {
            st.weight = Some(
                parse_num(&v, 0, i32::MAX as i64)
                    .ok_or_else(|| ParseError::fail("illegal weight specified"))?
                    as u32,
            )
        }
        Opt::UThreshold => {
            st.u_threshold = parse_num(&v, 0, i32::MAX as i64)
                .ok_or_else(|| ParseError::fail("illegal u_threshold specified"))?
                as u32
        }
        Opt::LThreshold => {
            st.l_threshold = parse_num(&v, 0, i32::MAX as i64)
                .ok_or_else(|| ParseError::fail("illegal l_threshold specified"))?
                as u32
        }
        Opt::Numeric => st.numeric = true,
        Opt::Ops => st.ops = true,
        Opt::SchedFlags => st.sched_flags = Some(v),
        Opt::TunType => {
            st.tun_kind = Some(match v.as_str() {
                "ipip" => TunKind::Ipip,
                "gue" => TunKind::Gue,
                "gre" => TunKind::Gre,
                _ => return Err(ParseError::fail("illegal tunnel type specified")),
            })
        }
        Opt::TunPort => {
            st.tun_port = Some(
                parse_num(&v, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal tunnel port specified"))?
                    as u16,
            )
        }
        Opt::TunNoCsum => st.tun_csum = Some(TunCsum::None),
        Opt::TunCsum => st.tun_csum = Some(TunCsum::Csum),
        Opt::TunRemCsum => st.tun_csum = Some(TunCsum::RemCsum),
        // The kernel keeps IP_VS_IFNAME_MAXLEN - 1 characters.
        Opt::McastInterface => st.daemon.mcast_ifn = v.chars().take(15).collect(),
        Opt::SyncId => {
            st.daemon.syncid = parse_num(&v, 0, 255)
                .ok_or_else(|| ParseError::fail("illegal syncid specified"))?
                as u8
        }
        Opt::McastGroup => {
            let bad =
                |family: &str| ParseError::fail(format!("invalid {family} mcast-group `{v}'"));
            st.daemon.group = Some(if v.contains(':') {
                match v.parse::<Ipv6Addr>() {
                    Ok(a) if a.is_multicast() => IpAddr::V6(a),
                    _ => return Err(bad("IPv6")),
                }
            } else {
                match inet_aton(&v) {
                    Some(a) if a.is_multicast() => IpAddr::V4(a),
                    _ => return Err(bad("IPv4")),
                }
            })
        }
        Opt::McastPort => {
            st.daemon.port = Some(
                parse_num(&v, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal mcast-port specified"))?
                    as u16,
            )
        }
        Opt::McastTtl => {
            st.daemon.ttl = Some(
                parse_num(&v, 1, 255)
                    .ok_or_else(|| ParseError::fail("illegal mcast-ttl specified"))?
                    as u8,
            )
        }
        // 65535 less the IP and UDP headers.
        Opt::SyncMaxlen => {
            st.daemon.maxlen = Some(
                parse_num(&v, 1, 65535 - 20 - 8)
                    .ok_or_else(|| ParseError::fail("illegal sync-maxlen specified"))?
                    as u16,
            )
        }
        // Accepted by the table, acted on below or refused as not yet built.
        _ => {}
    }
    Ok(())
}

fn has_port(s: &str) -> bool {
    if s.starts_with('[') {
        return true;
    }
    s.parse::<Ipv6Addr>().is_err() && s.contains(':')
}

/// strtol-style: the whole string, base 10, within range.
fn parse_num(s: &str, min: i64, max: i64) -> Option<i64> {
    let n: i64 = s.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// inet_aton: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x).
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::new();
    for p in &parts {
        let v = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u32::from_str_radix(h, 16).ok()?
        } else if p.len() > 1 && p.starts_with('0') {
            u32::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u32>().ok()?
        };
        nums.push(v);
    }
    let last = *nums.last()?;
    let n = nums.len();
    let mut addr: u32 = 0;
    for (i, v) in nums[..n - 1].iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let room = 32 - 8 * (n as u32 - 1);
    if room < 32 && last >> room != 0 {
        return None;
    }
    Some(Ipv4Addr::from(addr | last))
}

/// C's atoi: optional blanks and sign, then digits up to the first
/// non-digit; 0 when there are none.
fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits: String = t
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .take(18)
        .collect();
    let n = digits.parse::<i64>().unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}

/// A host name's first IPv4 address (gethostbyname). Under the fuzzer
/// (fuzz/), only "localhost": a fuzz run must neither ask DNS servers nor
/// depend on their answers.
fn resolve_v4(host: &str) -> Option<Ipv4Addr> {
    if cfg!(fuzzing) {
        return (host == "localhost").then_some(Ipv4Addr::LOCALHOST);
    }
    (host, 0)
        .to_socket_addrs()
        .ok()?
        .find_map(|sa| match sa.ip() {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
}

/// `host[:port]`, `[v6]:port` or a bare IPv6 address, as ipvsadm parses them.
fn parse_host_port(s: &str, protocol: Protocol) -> Option<(IpAddr, u16)> {
    if s.is_empty() || s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (a, port) = rest.split_once("]:")?;
        let a: Ipv6Addr = a.parse().ok()?;
        return Some((IpAddr::V6(a), parse_port(port, protocol)?));
    }
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some((IpAddr::V6(a), 0));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr = inet_aton(host).or_else(|| resolve_v4(host))?;
    let port = match port {
        Some(p) => parse_port(p, protocol)?,
        None => 0,
    };
    Some((IpAddr::V4(addr), port))
}

fn parse_port(p: &str, protocol: Protocol) -> Option<u16> {
    if p.is_empty() {
        return None;
    }
    if p.chars().all(|c| c.is_ascii_digit()) {
        return p.parse::<u16>().ok();
    }
    names::service_port(p, protocol)
}

fn check_table(cmd: Cmd, seen: u64) -> Result<(), ParseError> {
    let mut last: Option<Opt> = None;
    for o in ALL_OPTS {
        let present = seen & (1u64 << (o as u8)) != 0;
        let r = rule(cmd, o);
        if !present {
            if r == '+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[o as usize],
                    cmd.name()
                )));
            }
            continue;
        }
        if r == 'x' {
            return Err(ParseError::fail(format!(
                "Illegal '{}' option with the '{}' command",
                OPT_NAMES[o as usize],
                cmd.name()
            )));
        }
        if r == '1' {
            match last {
                None => last = Some(o),
                Some(l) => {
                    return Err(ParseError::fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[o as usize],
                        OPT_NAMES[l as usize],
                        cmd.name()
                    )))
                }
            }
        }
    }
    Ok(())
}

fn parse_sched_flags(s: &str, scheduler: &str) -> Result<u32, ParseError> {
    let mut bits = 0;
    for f in s.split(',') {
        let (bit, needs) = match f {
            "flag-1" => (sched_flags::SCHED1, None),
            "flag-2" => (sched_flags::SCHED2, None),
            "flag-3" => (sched_flags::SCHED3, None),
            "sh-fallback" => (sched_flags::SCHED1, Some("sh")),
            "sh-port" => (sched_flags::SCHED2, Some("sh")),
            "mh-fallback" => (sched_flags::SCHED1, Some("mh")),
            "mh-port" => (sched_flags::SCHED2, Some("mh")),
            _ => return Err(ParseError::fail(format!("invalid scheduler flag `{f}'"))),
        };
        if needs.is_some_and(|n| n != scheduler) {
            return Err(ParseError::fail(format!(
                "incompatible scheduler flag `{f}'"
            )));
        }
        bits |= bit;
    }
    Ok(bits)
}

const NOT_YET: &[(Opt, &str)] = &[(Opt::Pe, "--pe")];

fn has(seen: u64, opts: &[Opt]) -> bool {
    opts.iter().any(|o| seen & (1u64 << (*o as u8)) != 0)
}

const TUN_OPTS: u64 = (1 << Opt::TunType as u8)
    | (1 << Opt::TunPort as u8)
    | (1 << Opt::TunNoCsum as u8)
    | (1 << Opt::TunCsum as u8)
    | (1 << Opt::TunRemCsum as u8);

/// The tunnel of an `-i` server, checked as ipvsadm checks it: each tunnel
/// type allows, requires or excludes some of the tunnel options.
fn tunnel(st: &State) -> Result<TunSpec, ParseError> {
    let kind = st.tun_kind.unwrap_or_default();
    let type_name = match kind {
        TunKind::Ipip => "ipip",
        TunKind::Gue => "gue",
        TunKind::Gre => "gre",
    };
    let mut last: Option<Opt> = None;
    for o in [Opt::TunPort, Opt::TunNoCsum, Opt::TunCsum, Opt::TunRemCsum] {
        let present = st.seen & (1u64 << (o as u8)) != 0;
        // '+' required, 'x' illegal, '1' at most one of the group, ' ' free.
        let rule = match (kind, o) {
            (TunKind::Ipip, _) => 'x',
            (TunKind::Gue, Opt::TunPort) => '+',
            (TunKind::Gue, _) => '1',
            (TunKind::Gre, Opt::TunPort | Opt::TunRemCsum) => 'x',
            (TunKind::Gre, _) => '1',
        };
        let name = OPT_NAMES[o as usize];
        match (present, rule) {
            (false, '+') => {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{name}' option for the '{type_name}' tunnel type"
                )))
            }
            (true, 'x') => {
                return Err(ParseError::fail(format!(
                    "Illegal '{name}' option with the '{type_name}' tunnel type"
                )))
            }
            (true, '1') => match last {
                None => last = Some(o),
                Some(l) => {
                    return Err(ParseError::fail(format!(
                        "The option '{name}' conflicts with the '{}' option in the '{type_name}' tunnel type",
                        OPT_NAMES[l as usize]
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(TunSpec {
        kind,
        port: st.tun_port.unwrap_or(0),
        csum: st.tun_csum.unwrap_or_default(),
    })
}

fn finish(st: State, prog: &str) -> Result<Action, ParseError> {
    let Some(cmd) = st.cmd else {
        return Err(ParseError::try_help(prog));
    };
    if cmd != Cmd::Set {
        if let Some(extra) = st.leftovers.first() {
            return Err(ParseError::fail(format!("unexpected argument {extra}")));
        }
    }
    check_table(cmd, st.seen)?;
    // ipvsadm's last check of a listing: modes that cannot go together.
    if cmd == Cmd::List {
        use Opt::*;
        let seen = st.seen;
        if (has(seen, &[Connection, Timeout, Daemon]) && has(seen, &[Stats, Rate, Thresholds]))
            || (has(seen, &[Timeout, Daemon]) && has(seen, &[PersistentConn]))
        {
            return Err(ParseError::fail("options conflicts in the list command"));
        }
    }
    for (o, what) in NOT_YET {
        if st.seen & (1u64 << (*o as u8)) != 0 {
            return Err(ParseError::fail(format!(
                "{what} is not implemented in rvs yet"
            )));
        }
    }
    let key = st
        .vaddr
        .zip(st.protocol)
        .map(|((addr, port), protocol)| ServiceKey {
            protocol,
            addr,
            port,
        });
    Ok(match cmd {
        Cmd::Help => Action::Help,
        Cmd::Version => Action::Version,
        Cmd::Counters => Action::Counters,
        Cmd::Defense => Action::Defense,
        Cmd::Totals => Action::Totals { per_worker: false },
        Cmd::TotalsPerWorker => Action::Totals { per_worker: true },
        Cmd::Zero => Action::Zero(key),
        Cmd::Health => Action::Health,
        Cmd::Reload => Action::Reload,
        Cmd::Drain => Action::Drain(true),
        Cmd::Undrain => Action::Drain(false),
        Cmd::Announcement => Action::Announcement,
        Cmd::Restore => Action::Restore,
        Cmd::Save => Action::Save {
            numeric: st.numeric,
        },
        Cmd::List if st.seen & (1 << Opt::Connection as u8) != 0 => Action::ListConns {
            numeric: st.numeric,
        },
        Cmd::List if st.seen & (1 << Opt::Timeout as u8) != 0 => Action::Timeouts,
        Cmd::List if has(st.seen, &[Opt::Daemon]) => Action::ListDaemons,
        Cmd::Set => {
            // ipvsadm takes three values, then complains about the next.
            if st.leftovers.len() < 3 {
                return Err(ParseError::fail("--set option requires 3 timeout values"));
            }
            if let Some(extra) = st.leftovers.get(3) {
                return Err(ParseError::fail(format!("unexpected argument {extra}")));
            }
            let mut v = [0u32; 3];
            for (slot, a) in v.iter_mut().zip(&st.leftovers) {
                *slot = parse_num(a, 0, 2_678_400).ok_or_else(|| {
                    ParseError::fail(format!("invalid timeout value `{a}' specified"))
                })? as u32;
            }
            Action::SetTimeouts {
                tcp: v[0],
                tcpfin: v[1],
                udp: v[2],
            }
        }
        Cmd::List => Action::List {
            numeric: st.numeric,
            only: key,
            // ipvsadm's precedence when several are given.
            mode: if has(st.seen, &[Opt::Stats]) {
                ListMode::Stats {
                    exact: has(st.seen, &[Opt::Exact]),
                }
            } else if has(st.seen, &[Opt::Rate]) {
                ListMode::Rate {
                    exact: has(st.seen, &[Opt::Exact]),
                }
            } else if st.seen & (1 << Opt::Thresholds as u8) != 0 {
                ListMode::Thresholds
            } else if st.seen & (1 << Opt::PersistentConn as u8) != 0 {
                ListMode::PersistentConn
            } else if st.seen & (1 << Opt::TunInfo as u8) != 0 {
                ListMode::TunInfo
            } else {
                ListMode::Normal
            },
            sort: !has(st.seen, &[Opt::NoSort]),
        },
        Cmd::Flush => Action::Apply(Command::Clear),
        Cmd::AddService | Cmd::EditService => {
            let key = key.expect("required by the table");
            if key.port == 0 && st.persistent.is_none() {
                return Err(ParseError::fail(
                    "Zero port specified for non-persistent service",
                ));
            }
            if st.ops && key.protocol != Protocol::Udp {
                return Err(ParseError::fail(
                    "One-Packet Scheduling is only for UDP virtual services",
                ));
            }
            let scheduler = st.scheduler.unwrap_or_else(|| sched::DEFAULT.to_string());
            let flags = match &st.sched_flags {
                Some(f) => parse_sched_flags(f, &scheduler)?,
                None => 0,
            };
            let spec = ServiceSpec {
                key,
                scheduler,
                sched_flags: flags,
                persistent: st.persistent,
                netmask: st.netmask.unwrap_or(PersistMask::full(key.addr)),
                one_packet: st.ops,
            };
            Action::Apply(if cmd == Cmd::AddService {
                Command::AddService(spec)
            } else {
                Command::EditService(spec)
            })
        }
        Cmd::DelService => Action::Apply(Command::DelService(key.expect("required"))),
        Cmd::AddServer | Cmd::EditServer | Cmd::DelServer => {
            let key = key.expect("required by the table");
            let (addr, mut port) = st.raddr.expect("required by the table");
            let fwd = st.fwd.unwrap_or(FwdMethod::Route);
            if cmd == Cmd::DelServer {
                return Ok(Action::Apply(Command::DelDest(key, DestKey { addr, port })));
            }
            let fwd = match fwd {
                FwdMethod::Tunnel(_) => FwdMethod::Tunnel(tunnel(&st)?),
                _ if st.seen & TUN_OPTS != 0 => {
                    return Err(ParseError::fail(
                        "Tunnel options conflict with forward method",
                    ))
                }
                f => f,
            };
            if addr.is_ipv4() != key.addr.is_ipv4() && !matches!(fwd, FwdMethod::Tunnel(_)) {
                return Err(ParseError::fail(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            // DR and TUN cannot change the port: it is the service's.
            if matches!(fwd, FwdMethod::Route | FwdMethod::Tunnel(_)) {
                port = key.port;
            }
            let spec = DestSpec {
                addr,
                port,
                fwd,
                weight: st.weight.unwrap_or(1),
                u_threshold: st.u_threshold,
                l_threshold: st.l_threshold,
            };
            Action::Apply(if cmd == Cmd::AddServer {
                Command::AddDest(key, spec)
            } else {
                Command::EditDest(key, spec)
            })
        }
        Cmd::StartDaemon | Cmd::StopDaemon => {
            let d = st.daemon;
            let role = d.role.ok_or_else(|| ParseError::try_help(prog))?;
            if cmd == Cmd::StopDaemon {
                return Ok(Action::StopDaemon(role));
            }
            Action::StartDaemon(rvs_control_proto::sync::DaemonRequest {
                role,
                mcast_ifn: d.mcast_ifn,
                syncid: d.syncid,
                maxlen: d.maxlen,
                group: d.group,
                port: d.port,
                ttl: d.ttl,
            })
        }
    })
}

pub fn usage(prog: &str) -> String {
    format!(
        "rvsadm {v} (ipvsadm 1.31 compatible)\n\
Usage:\n\
  {prog} -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]\n\
  {prog} -D virtual-service\n\
  {prog} -C\n\
  {prog} -R\n\
  {prog} -S [-n]\n\
  {prog} -a|e virtual-service -r server-address [options]\n\
  {prog} -d virtual-service -r server-address\n\
  {prog} -L|l [virtual-service] [options]\n\
  {prog} -Z [virtual-service]\n\
  {prog} --counters | --defense | --totals | --totals-per-worker\n\
  {prog} --health [--status-file PATH]\n\
  {prog} --reload\n\
  {prog} --drain | --undrain | --announcement\n\
  {prog} -h\n\n\
Commands:\n\
  --add-service     -A        add virtual service with options\n\
  --edit-service    -E        edit virtual service with options\n\
  --delete-service  -D        delete virtual service\n\
  --clear           -C        clear the whole table\n\
  --restore         -R        restore rules from stdin\n\
  --save            -S        save rules to stdout\n\
  --add-server      -a        add real server with options\n\
  --edit-server     -e        edit real server with options\n\
  --delete-server   -d        delete real server\n\
  --list            -L|-l     list the table\n\
  --zero            -Z        zero counters in a service or all services\n\
  --counters                  dataplane counters of each worker (rvs)\n\
  --defense                   SYN-flood defence: settings and each worker's state (rvs)\n\
  --totals                    traffic totals, as /proc/net/ip_vs_stats (rvs)\n\
  --totals-per-worker         the same per worker, as ip_vs_stats_percpu (rvs)\n\
  --health                    rvs-keepalived's checker state, from its status file (rvs)\n\
  --reload                    rvsd reads its configuration and rules file again, applies what changed (rvs)\n\
  --drain                     stop announcing the VIPs to the routers, let connections finish (rvs)\n\
  --undrain                   announce the VIPs again (rvs)\n\
  --announcement              the VIPs this director announces, and whether it drains (rvs)\n\
  --help            -h        display this help message\n\n\
virtual-service:\n\
  --tcp-service|-t  service-address   service-address is host[:port]\n\
  --udp-service|-u  service-address   service-address is host[:port]\n\n\
Options:\n\
  --scheduler    -s scheduler         one of {scheds}, the default scheduler is {def}.\n\
  --real-server  -r server-address    server-address is host (and port)\n\
  --gatewaying   -g                   gatewaying (direct routing) (default)\n\
  --ipip         -i                   ipip encapsulation (tunneling)\n\
  --masquerading -m                   masquerading (NAT)\n\
  --weight       -w weight            capacity of real server\n\
  --u-threshold  -x uthreshold        upper threshold of connections\n\
  --l-threshold  -y lthreshold        lower threshold of connections\n\
  --numeric      -n                   numeric output of addresses and ports\n\
  --stats                             output of statistics information\n\
  --rate                              output of rate information\n\
  --exact                             expand numbers (display exact values)\n\
  --socket PATH                       rvsd's control socket (default {sock}, or $RVS_SOCKET)\n\
  --status-file PATH                  rvs-keepalived's status file for --health (default {status})\n",
        v = env!("CARGO_PKG_VERSION"),
        scheds = sched::NAMES.join(","),
        def = sched::DEFAULT,
        sock = rvs_control_proto::DEFAULT_SOCKET,
        status = rvs_control_proto::health::DEFAULT_STATUS_FILE,
    )
}

#[cfg(test)]
mod tests;
