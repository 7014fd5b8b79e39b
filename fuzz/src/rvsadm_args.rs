//! `rvsadm_args`: rvsadm's command line, parsed as `rvsadm` parses its
//! own: `--socket` and `--status-file` taken out first, then ipvsadm's
//! syntax (`rvsadm::parse::parse`).
//!
//! Input: the arguments, separated by NUL or newline bytes (invalid UTF-8
//! replaced, as only valid UTF-8 reaches the parser).
//!
//! Checked, besides "no panic": an error has one of ipvsadm's exit codes
//! (2, or 255 for a command line it cannot read at all) and a message; a
//! table command that a table can hold (a director accepts what it adds),
//! written out the way `rvsadm -S` and reload reports write commands
//! (`format::command`), parses back to the same command: what rvsadm
//! saves, `rvsadm -R` and rvsd's rules file read the same (but for `-M`
//! without `-p`, which `-S` leaves out as ipvsadm's does).

use rvs_control_proto::format::{self, Numeric};
use rvs_ipvs::{Command, Director, ServiceKey, ServiceSpec};
use rvsadm::parse::{self, Action};

/// Whether a director accepts what `cmd` would put in a table.
fn holdable(cmd: &Command) -> bool {
    let service = |key: ServiceKey| ServiceSpec {
        key,
        scheduler: "rr".into(),
        sched_flags: 0,
        persistent: None,
        netmask: rvs_ipvs::PersistMask::full(key.addr),
        one_packet: false,
    };
    let mut d = Director::new();
    match cmd {
        Command::AddService(s) | Command::EditService(s) => {
            d.apply(&Command::AddService(s.clone())).is_ok()
        }
        Command::AddDest(k, dest) | Command::EditDest(k, dest) => {
            d.apply(&Command::AddService(service(*k))).is_ok()
                && d.apply(&Command::AddDest(*k, *dest)).is_ok()
        }
        Command::DelService(_) | Command::DelDest(..) | Command::Clear => true,
    }
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut args: Vec<String> = text.split(['\0', '\n']).map(String::from).collect();
    if data.is_empty() {
        args.clear();
    }
    if let Err(e) = parse::take_socket_option(&mut args) {
        return check_error(&e);
    }
    if let Err(e) = parse::take_path_option(&mut args, "--status-file") {
        return check_error(&e);
    }
    match parse::parse(&args, "rvsadm") {
        Err(e) => check_error(&e),
        Ok(Action::Apply(cmd)) if holdable(&cmd) => {
            let line = format::command(&cmd, &Numeric);
            let words = rvsadm::rules::words(&line).expect("a command has words");
            match parse::parse(&words, "rvsadm") {
                Ok(Action::Apply(again)) => assert_eq!(
                    comparable(again),
                    comparable(cmd.clone()),
                    "{args:?} gave {cmd:?}, written as {line:?}, which reads back differently"
                ),
                other => {
                    panic!("{args:?} gave {cmd:?}, written as {line:?}, which reads as {other:?}")
                }
            }
        }
        Ok(_) => {}
    }
}

/// `-S`, like ipvsadm's, writes `-M` only with `-p`: a persistence mask
/// means nothing without persistence.
fn comparable(cmd: Command) -> Command {
    let unmasked = |mut s: ServiceSpec| {
        if s.persistent.is_none() {
            s.netmask = rvs_ipvs::PersistMask::full(s.key.addr);
        }
        s
    };
    match cmd {
        Command::AddService(s) => Command::AddService(unmasked(s)),
        Command::EditService(s) => Command::EditService(unmasked(s)),
        c => c,
    }
}

fn check_error(e: &parse::ParseError) {
    assert!(matches!(e.code, 2 | 255), "exit code {} for {e:?}", e.code);
    assert!(!e.msg.trim().is_empty(), "an error says what is wrong");
}
