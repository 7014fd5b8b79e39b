//! rvsadm: ipvsadm's command line, talking to rvsd instead of the kernel.
//!
//! The command line is parsed by hand rather than with clap because ipvsadm's
//! popt rules are part of its interface: the first option must be a command,
//! `-Ln` clusters, `-p` takes an optional value, options are validated left to
//! right and the first error wins, with ipvsadm's messages and exit codes.

#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rvs_control_proto::client::{self, ClientError};
use rvs_control_proto::format::{self, Names, Numeric};
use rvs_control_proto::health;
use rvs_control_proto::proto::{Request, Response};
use rvs_control_proto::DEFAULT_SOCKET;

use rvsadm::parse::{self, Action, ParseError};
use rvsadm::{names, rules};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let prog = args.remove(0);
    let socket = match parse::take_socket_option(&mut args) {
        Ok(s) => s
            .or_else(|| std::env::var("RVS_SOCKET").ok())
            .unwrap_or_else(|| DEFAULT_SOCKET.to_string()),
        Err(e) => return fail(e),
    };
    let status_file = match parse::take_path_option(&mut args, "--status-file") {
        Ok(s) => s.unwrap_or_else(|| health::DEFAULT_STATUS_FILE.to_string()),
        Err(e) => return fail(e),
    };
    let action = match parse::parse(&args, &prog) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    run(
        action,
        &PathBuf::from(socket),
        Path::new(&status_file),
        &prog,
    )
}

/// `--health`: rvs-keepalived's status file as a table.
fn show_health(path: &Path) -> ExitCode {
    match health::read(path) {
        Ok(s) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            print_out(&health::table(&s, now))
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn fail(e: ParseError) -> ExitCode {
    eprintln!("{}", e.msg);
    ExitCode::from(e.code)
}

fn send(socket: &Path, req: &Request) -> Result<Response, ExitCode> {
    client::request(socket, req).map_err(|e| {
        match &e {
            ClientError::NotRunning(_) => eprintln!("{e}: start rvsd first"),
            _ => eprintln!("{e}"),
        }
        ExitCode::from(2)
    })
}

/// The exit of a change: 0, or 255 with rvsd's (ipvsadm's) message.
fn apply_answer(answer: Result<Response, ExitCode>) -> ExitCode {
    match answer {
        Ok(Response::Ok) => ExitCode::SUCCESS,
        Ok(Response::Late(m)) => late(&m),
        Ok(Response::Error(e)) => {
            eprintln!("{e}");
            ExitCode::from(255)
        }
        Ok(other) => unexpected(other),
        Err(code) => code,
    }
}

fn run(action: Action, socket: &Path, status_file: &Path, prog: &str) -> ExitCode {
    match action {
        Action::Help => {
            print!("{}", parse::usage(prog));
            ExitCode::SUCCESS
        }
        Action::Version => {
            println!(
                "rvsadm v{} (ipvsadm 1.31 compatible, IPVS v{})",
                env!("CARGO_PKG_VERSION"),
                format::IPVS_VERSION
            );
            ExitCode::SUCCESS
        }
        Action::Apply(cmd) => apply_answer(send(socket, &Request::Apply(cmd))),
        Action::Restore => restore(socket, prog),
        Action::SetTimeouts { tcp, tcpfin, udp } => {
            match send(socket, &Request::SetTimeouts { tcp, tcpfin, udp }) {
                Ok(Response::Ok) => ExitCode::SUCCESS,
                Ok(Response::Late(m)) => late(&m),
                Ok(Response::Error(e)) => {
                    eprintln!("{e}");
                    ExitCode::from(255)
                }
                Ok(other) => unexpected(other),
                Err(code) => code,
            }
        }
        Action::Timeouts => match send(socket, &Request::GetTimeouts) {
            Ok(Response::Timeouts(t)) => print_out(&format::timeouts(&t)),
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::ListConns { numeric } => {
            match send(
                socket,
                &Request::ListConns {
                    limit: CONN_LIST_LIMIT,
                },
            ) {
                Ok(Response::Conns(rows, truncated)) => {
                    let names: Box<dyn Names> = if numeric {
                        Box::new(Numeric)
                    } else {
                        Box::new(names::Resolving)
                    };
                    let code = print_out(&format::conns(&rows, names.as_ref()));
                    if truncated {
                        eprintln!("(listing stopped after {CONN_LIST_LIMIT} entries)");
                    }
                    code
                }
                Ok(Response::Error(e)) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
                Ok(other) => unexpected(other),
                Err(code) => code,
            }
        }
        Action::List {
            numeric,
            only,
            mode,
            sort,
        } => match send(socket, &Request::List) {
            Ok(Response::Listing(l)) => {
                let names: Box<dyn Names> = if numeric {
                    Box::new(Numeric)
                } else {
                    Box::new(names::Resolving)
                };
                match format::list_ordered(&l, only, names.as_ref(), mode, sort) {
                    Ok(s) => print_out(&s),
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::from(1)
                    }
                }
            }
            Ok(Response::Error(e)) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Save { numeric } => match send(socket, &Request::List) {
            Ok(Response::Listing(l)) => {
                let s = if numeric {
                    format::save(&l, &Numeric)
                } else {
                    format::save(&l, &names::Resolving)
                };
                print_out(&s)
            }
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Zero(key) => match send(socket, &Request::Zero(key)) {
            Ok(Response::Ok) => ExitCode::SUCCESS,
            // A refused modifying command: ipvsadm's message, exit 255.
            Ok(Response::Error(e)) => {
                eprintln!("{e}");
                ExitCode::from(255)
            }
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Totals { per_worker } => match send(socket, &Request::Totals) {
            Ok(Response::Totals(t)) => print_out(&if per_worker {
                format::totals_per_worker(&t)
            } else {
                format::totals(&t)
            }),
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Counters => match send(socket, &Request::Counters) {
            Ok(Response::Counters(ws)) => {
                let mut out = String::new();
                for w in ws {
                    out.push_str(&format!("worker {} (lcore {})\n", w.worker, w.lcore));
                    for (k, v) in w.counters {
                        out.push_str(&format!("  {k:<28} {v}\n"));
                    }
                }
                print_out(&out)
            }
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::StartDaemon(d) => apply_answer(send(socket, &Request::StartDaemon(d))),
        Action::StopDaemon(role) => apply_answer(send(socket, &Request::StopDaemon(role))),
        Action::ListDaemons => match send(socket, &Request::Daemons) {
            Ok(Response::Daemons(ds)) => print_out(
                &ds.iter()
                    .map(rvs_control_proto::sync::line)
                    .collect::<String>(),
            ),
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Defense => match send(socket, &Request::Defense) {
            Ok(Response::Defense(v)) => print_out(&format::defense(&v)),
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Health => show_health(status_file),
        Action::Drain(on) => match send(socket, &Request::SetDrain(on)) {
            Ok(Response::Ok) => ExitCode::SUCCESS,
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Announcement => match send(socket, &Request::Announcement) {
            Ok(Response::Announcement(a)) => {
                let list = |v: &[std::net::IpAddr]| {
                    v.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let mut out = format!(
                    "state: {}\nready: {}\nannounced: {}\n",
                    if a.draining { "draining" } else { "serving" },
                    list(&a.ready),
                    list(a.announced())
                );
                out = out.replace(": \n", ":\n");
                print_out(&out)
            }
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
        Action::Reload => match send(socket, &Request::Reload) {
            Ok(Response::Reloaded(report)) => print_out(&report.render()),
            // The file and line at fault; rvsd kept its configuration.
            Ok(Response::Error(e)) => {
                eprintln!("{e}");
                ExitCode::from(255)
            }
            Ok(other) => unexpected(other),
            Err(code) => code,
        },
    }
}

/// Most connections `-Lc` prints; a table of millions is not for a terminal.
const CONN_LIST_LIMIT: usize = 100_000;

fn print_out(s: &str) -> ExitCode {
    // A closed pipe (rvsadm -Ln | head) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(s.as_bytes());
    ExitCode::SUCCESS
}

/// The change is made, but a worker had not applied it yet: said on
/// stderr, and a success (trying again would be refused as a duplicate).
fn late(msg: &str) -> ExitCode {
    eprintln!("rvsadm: {msg}");
    ExitCode::SUCCESS
}

fn unexpected(r: Response) -> ExitCode {
    eprintln!("rvsd sent an unexpected reply: {r:?}");
    ExitCode::from(2)
}

/// `-R`: every line of stdin is a command, as `-S` writes them. As with
/// ipvsadm, the lines before a line that does not parse are applied, a
/// command the director refuses is reported and the next ones still go in,
/// and the exit code is the parse error's, or 0.
fn restore(socket: &Path, prog: &str) -> ExitCode {
    let mut cmds = Vec::new();
    let mut parse_error = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some(words) = rules::words(&line) else {
            continue;
        };
        match parse::parse(&words, prog) {
            Ok(Action::Apply(c)) => cmds.push(c),
            Ok(_) => {
                parse_error = Some(ParseError::try_help(prog));
                break;
            }
            Err(e) => {
                parse_error = Some(e);
                break;
            }
        }
    }
    if !cmds.is_empty() {
        match send(socket, &Request::Restore(cmds)) {
            Ok(Response::Restored(errors)) => {
                for e in errors {
                    eprintln!("{e}");
                }
            }
            Ok(Response::Error(e)) => {
                eprintln!("{e}");
                return ExitCode::from(255);
            }
            Ok(other) => return unexpected(other),
            Err(code) => return code,
        }
    }
    match parse_error {
        Some(e) => fail(e),
        None => ExitCode::SUCCESS,
    }
}
