//! ipvsadm's command line, with popt's rules (see docs/ipvsadm-behaviour.md).
//!
//! Why this file is long (about 1330 lines): ipvsadm's whole command line,
//! every option with popt's rules and ipvsadm's checks and messages, from
//! one table (`command_line!`: a row per command and per option); the
//! tests are in `parse/tests.rs`.

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

// ipvsadm's commands and options, each written once, in the tables at the
// end of this section; `command_line!` makes from them `Cmd`, `Opt`,
// `OPT_TABLE` (with `rule`) and `DEFS`.

/// Builds the parser's tables from one row per command and per option:
///
/// - a command: its `Cmd` variant, its name in messages (ipvsadm's
///   `cmdnames`) and its spellings. ipvsadm's commands come first and each
///   has a column in every option's row; rvs's own come after and take
///   none of the options.
/// - an option: its `Opt` variant, `= n` with n its place in ipvsadm's
///   `optnames` (the order the table is checked in, so which option an
///   error names), its name in messages, its column (one char per
///   ipvsadm command, in the commands' order: `+` required, `1` at most
///   one of the group, ` ` allowed, `x` illegal) and its spellings. A
///   row without a place is outside the table (`--sort`, `-6`): a `Kind`
///   of its own.
///
/// A spelling is `"long" 'short' ARG`, with `-` for no short form and ARG
/// one of N (no value), R (required) or O (optional). The rows' order is
/// the order of popt's table, which `option_table` keeps.
macro_rules! command_line {
    (
        commands {
            $( $cmd:ident $cmd_name:literal
                [ $( $clong:literal $cshort:tt $carg:ident ),+ ] )*
        }
        rvs_commands {
            $( $rcmd:ident $rcmd_name:literal
                [ $( $rlong:literal $rshort:tt $rarg:ident ),+ ] )*
        }
        options {
            $( $opt:ident $( = $check:literal $opt_name:literal $column:literal )?
                [ $( $long:literal $short:tt $arg:ident ),+ ] )*
        }
    ) => {
        /// A command; ipvsadm's come first, in the order of their columns.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Cmd {
            $( $cmd, )*
            $( $rcmd, )*
        }

        impl Cmd {
            /// The command's name in messages.
            fn name(self) -> &'static str {
                match self {
                    $( Cmd::$cmd => $cmd_name, )*
                    $( Cmd::$rcmd => $rcmd_name, )*
                }
            }
        }

        /// ipvsadm's commands: the width of an option's column.
        const TABLE_CMDS: usize = [ $( Cmd::$cmd ),* ].len();

        /// An option of ipvsadm's table, valued by its place in `optnames`
        /// (also the bit it sets in `State::seen`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        enum Opt {
            $( $( $opt = $check, )? )*
        }

        const OPT_COUNT: usize = [ $( $( $check, )? )* ].len();

        /// ipvsadm's table in check order.
        const OPT_TABLE: [OptRow; OPT_COUNT] = in_check_order([
            $( $( OptRow { opt: Opt::$opt, name: $opt_name, column: $column }, )? )*
        ]);

        const SPELLINGS: usize =
            [ $( $( $clong, )+ )* $( $( $rlong, )+ )* $( $( $long, )+ )* ].len();

        /// Every spelling, in the rows' order: what the parser looks names
        /// up in.
        const DEFS: [Def; SPELLINGS] = flatten(&[
            $( (Kind::Cmd(Cmd::$cmd), &[ $( ($clong, short!($cshort), $carg) ),+ ]), )*
            $( (Kind::Cmd(Cmd::$rcmd), &[ $( ($rlong, short!($rshort), $rarg) ),+ ]), )*
            $( (option_kind!($opt $( $check )?), &[ $( ($long, short!($short), $arg) ),+ ]), )*
        ]);
    };
}

/// A spelling's short form: `'c'` for `-c`, `-` for none.
macro_rules! short {
    (-) => {
        None
    };
    ($c:literal) => {
        Some($c)
    };
}

/// An option row with a place in ipvsadm's table is an `Opt`; one without
/// is a `Kind` of its own.
macro_rules! option_kind {
    ($opt:ident) => {
        Kind::$opt
    };
    ($opt:ident $check:literal) => {
        Kind::Opt(Opt::$opt)
    };
}

/// An option of ipvsadm's table: its name in messages (`optnames`) and its
/// column (see `command_line!`).
#[derive(Debug, Clone, Copy)]
struct OptRow {
    opt: Opt,
    name: &'static str,
    column: &'static str,
}

/// Puts each row at its option's place in check order. Every value of
/// `Opt` is distinct (the compiler refuses two equal discriminants) and
/// below `OPT_COUNT` (asserted at compile time), so every place is filled
/// once.
const fn in_check_order(rows: [OptRow; OPT_COUNT]) -> [OptRow; OPT_COUNT] {
    let mut sorted = rows;
    let mut i = 0;
    while i < OPT_COUNT {
        let place = rows[i].opt as usize;
        assert!(
            place < OPT_COUNT,
            "an option's place in optnames is below the number of options"
        );
        sorted[place] = rows[i];
        i += 1;
    }
    sorted
}

// Each column has one char per ipvsadm command, each a rule.
const _: () = {
    let mut i = 0;
    while i < OPT_COUNT {
        let column = OPT_TABLE[i].column.as_bytes();
        assert!(
            column.len() == TABLE_CMDS,
            "an option's column needs one char per ipvsadm command"
        );
        let mut c = 0;
        while c < column.len() {
            assert!(
                matches!(column[c], b'+' | b'1' | b' ' | b'x'),
                "a column's chars are `+`, `1`, ` ` or `x`"
            );
            c += 1;
        }
        i += 1;
    }
};

impl Opt {
    /// The option's name in messages.
    fn name(self) -> &'static str {
        OPT_TABLE[self as usize].name
    }
}

/// ipvsadm's command/option table: `+` required, `1` at most one of the
/// group, ` ` allowed, `x` illegal; rvs's own commands take no option.
fn rule(cmd: Cmd, o: Opt) -> char {
    let column = OPT_TABLE[o as usize].column.as_bytes();
    column.get(cmd as usize).map_or('x', |&c| c as char)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Cmd(Cmd),
    Opt(Opt),
    /// `-6` and `--sort`: outside the table, allowed with any command.
    Ipv6,
    Sort,
}

/// One spelling of a command or option.
#[derive(Clone, Copy)]
struct Def {
    long: &'static str,
    short: Option<char>,
    arg: ValueKind,
    kind: Kind,
}

/// A row's spellings as `Def`s, row after row.
type Row = (Kind, &'static [(&'static str, Option<char>, ValueKind)]);

const fn flatten(rows: &[Row]) -> [Def; SPELLINGS] {
    let unset = Def {
        long: "",
        short: None,
        arg: ValueKind::None,
        kind: Kind::Sort,
    };
    let mut defs = [unset; SPELLINGS];
    let mut n = 0;
    let mut r = 0;
    while r < rows.len() {
        let (kind, spellings) = rows[r];
        let mut s = 0;
        while s < spellings.len() {
            let (long, short, arg) = spellings[s];
            defs[n] = Def {
                long,
                short,
                arg,
                kind,
            };
            n += 1;
            s += 1;
        }
        r += 1;
    }
    assert!(n == SPELLINGS);
    defs
}

use ValueKind::{None as N, Optional as O, Required as R};

command_line! {
    commands {
        // variant     name in messages  spellings
        AddService     "add-service"     ["add-service" 'A' N]
        EditService    "edit-service"    ["edit-service" 'E' N]
        DelService     "delete-service"  ["delete-service" 'D' N]
        Flush          "flush"           ["clear" 'C' N]
        List           "list"            ["list" 'L' N, "list" 'l' N]
        Zero           "zero"            ["zero" 'Z' N]
        AddServer      "add-server"      ["add-server" 'a' N]
        EditServer     "edit-server"     ["edit-server" 'e' N]
        DelServer      "delete-server"   ["delete-server" 'd' N]
        Set            "set"             ["set" - N]
        Help           "help"            ["help" 'h' N]
        Version        "version"         ["version" 'v' N]
        Restore        "restore"         ["restore" 'R' N]
        Save           "save"            ["save" 'S' N]
        StartDaemon    "start-daemon"    ["start-daemon" - R]
        StopDaemon     "stop-daemon"     ["stop-daemon" - R]
    }
    rvs_commands {
        Counters        "counters"          ["counters" - N]
        Defense         "defense"           ["defense" - N]
        Totals          "totals"            ["totals" - N]
        TotalsPerWorker "totals-per-worker" ["totals-per-worker" - N]
        Health          "health"            ["health" - N]
        Reload          "reload"            ["reload" - N]
        Drain           "drain"             ["drain" - N]
        Undrain         "undrain"           ["undrain" - N]
        Announcement    "announcement"      ["announcement" - N]
    }
    options {
        // `= n`: the option's place in ipvsadm's `optnames`. Columns by the
        // commands' short forms; the three blanks are --set, --start-daemon
        // and --stop-daemon:
        //                                       AEDCLZaed hvRS
        Service        = 2  "service-address"   "+++x1 +++xxxxxxx"
            ["tcp-service" 't' R, "udp-service" 'u' R, "sctp-service" - R, "fwmark-service" 'f' R]
        Scheduler      = 3  "scheduler"         "  xxxxxxxxxxxxxx" ["scheduler" 's' R]
        Persistent     = 4  "persistent"        "  xxxxxxxxxxxxxx" ["persistent" 'p' O]
        Netmask        = 5  "netmask"           "  xxxxxxxxxxxxxx" ["netmask" 'M' R]
        RealServer     = 6  "real-server"       "xxxxxx+++xxxxxxx" ["real-server" 'r' R]
        Forward        = 7  "forwarding-method" "xxxxxx  xxxxxxxx"
            ["masquerading" 'm' N, "ipip" 'i' N, "gatewaying" 'g' N]
        Weight         = 8  "weight"            "xxxxxx  xxxxxxxx" ["weight" 'w' R]
        UThreshold     = 9  "u-threshold"       "xxxxxx  xxxxxxxx" ["u-threshold" 'x' R]
        LThreshold     = 10 "l-threshold"       "xxxxxx  xxxxxxxx" ["l-threshold" 'y' R]
        Numeric        = 0  "numeric"           "xxxx xxxxxxxx xx" ["numeric" 'n' N]
        Connection     = 1  "connection"        "xxxx1xxxxxxxxxxx" ["connection" 'c' N]
        McastInterface = 11 "mcast-interface"   "xxxxxxxxxxxxxx x" ["mcast-interface" - R]
        SyncId         = 19 "syncid"            "xxxx xxxxxxxxx  " ["syncid" - R]
        Timeout        = 12 "timeout"           "xxxx1xxxxxxxxxxx" ["timeout" - N]
        Daemon         = 13 "daemon"            "xxxx1xxxxxxxxxxx" ["daemon" - N]
        Stats          = 14 "stats"             "xxxx xxxxxxxxxxx" ["stats" - N]
        Rate           = 15 "rate"              "xxxx xxxxxxxxxxx" ["rate" - N]
        Thresholds     = 16 "thresholds"        "xxxx xxxxxxxxxxx" ["thresholds" - N]
        PersistentConn = 17 "persistent-conn"   "xxxx xxxxxxxxxxx" ["persistent-conn" - N]
        NoSort         = 18 "nosort"            "xxxx xxxxxxxxxxx" ["nosort" - N]
        Sort                                                       ["sort" - N]
        Exact          = 20 "exact"             "xxxx xxxxxxxxxxx" ["exact" 'X' N]
        Ipv6                                                       ["ipv6" '6' N]
        Ops            = 21 "ops"               "  xxxxxxxxxxxxxx" ["ops" 'o' N]
        Pe             = 22 "pe"                "  xxxxxxxxxxxxxx" ["pe" - R]
        SchedFlags     = 23 "sched-flags"       "  xxxxxxxxxxxxxx" ["sched-flags" 'b' R]
        McastGroup     = 24 "mcast-group"       "xxxxxxxxxxxxxx x" ["mcast-group" - R]
        McastPort      = 25 "mcast-port"        "xxxxxxxxxxxxxx x" ["mcast-port" - R]
        McastTtl       = 26 "mcast-ttl"         "xxxxxxxxxxxxxx x" ["mcast-ttl" - R]
        SyncMaxlen     = 27 "sync-maxlen"       "xxxxxxxxxxxxxx x" ["sync-maxlen" - R]
        TunInfo        = 28 "tun-info"          "xxxx xxxxxxxxxxx" ["tun-info" - N]
        TunType        = 29 "tun-type"          "xxxxxx  xxxxxxxx" ["tun-type" - R]
        TunPort        = 30 "tun-port"          "xxxxxx  xxxxxxxx" ["tun-port" - R]
        TunNoCsum      = 31 "tun-nocsum"        "xxxxxx  xxxxxxxx" ["tun-nocsum" - N]
        TunCsum        = 32 "tun-csum"          "xxxxxx  xxxxxxxx" ["tun-csum" - N]
        TunRemCsum     = 33 "tun-remcsum"       "xxxxxx  xxxxxxxx" ["tun-remcsum" - N]
    }
}

/// How an option of the table takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    None,
    Required,
    /// `-p [timeout]`: takes the next word unless it starts with `-`.
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
            value: d.arg,
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
                ValueKind::None => {
                    if inline.is_some() {
                        return Err(first_or(
                            &st,
                            prog,
                            ParseError::popt(elem, "option does not take an argument"),
                        ));
                    }
                    None
                }
                ValueKind::Required => match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args.get(i).cloned().ok_or_else(|| {
                            first_or(&st, prog, ParseError::popt(elem, "missing argument"))
                        })?;
                        i += 1;
                        Some(v)
                    }
                },
                ValueKind::Optional => inline.or_else(|| take_optional(args, &mut i)),
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
                    ValueKind::None => None,
                    ValueKind::Required | ValueKind::Optional => {
                        let rest: String = chars[k..].iter().collect();
                        k = chars.len();
                        if !rest.is_empty() {
                            Some(rest.strip_prefix('=').unwrap_or(&rest).to_string())
                        } else if def.arg == ValueKind::Required {
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
            opt.name()
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
    for o in OPT_TABLE.map(|row| row.opt) {
        let present = seen & (1u64 << (o as u8)) != 0;
        let r = rule(cmd, o);
        if !present {
            if r == '+' {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    o.name(),
                    cmd.name()
                )));
            }
            continue;
        }
        if r == 'x' {
            return Err(ParseError::fail(format!(
                "Illegal '{}' option with the '{}' command",
                o.name(),
                cmd.name()
            )));
        }
        if r == '1' {
            match last {
                None => last = Some(o),
                Some(l) => {
                    return Err(ParseError::fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        o.name(),
                        l.name(),
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
        let name = o.name();
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
                        l.name()
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
