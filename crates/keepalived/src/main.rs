//! rvs-keepalived: keepalived's health checkers, driving rvsd.
//!
//! The command line is keepalived's where it makes sense: `-f FILE`,
//! `-t`/`--config-test`, `-n`/`--dont-fork`, `-l`/`--log-console`,
//! `-D`, `-G`, `-I`, `-p`, `-i`; SIGHUP reloads. `--socket` and
//! `--status-file` are rvs's own.

#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;

use rvs_control_proto::health::DEFAULT_STATUS_FILE;
use rvs_control_proto::DEFAULT_SOCKET;
use rvs_keepalived::config;
use rvs_keepalived::daemon::{self, Options};

/// keepalived's exit codes for `--config-test` (KEEPALIVED_CHK_EXIT_*).
const EXIT_CONFIG: u8 = 4;
const EXIT_CONFIG_TEST: u8 = 5;

#[derive(Parser, Debug)]
#[command(
    name = "rvs-keepalived",
    version,
    about = "keepalived's health checkers for rvs: reads the LVS part of keepalived.conf and drives rvsd",
    long_about = "Reads the virtual_server part of a keepalived.conf, runs its health checkers \
                  (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK, UDP_CHECK) and keeps \
                  rvsd's service table the way keepalived keeps kernel IPVS. VRRP is not done \
                  here: run `keepalived --vrrp` for it. SIGHUP reloads the configuration."
)]
struct Cli {
    /// The configuration file.
    #[arg(
        short = 'f',
        long = "use-file",
        value_name = "FILE",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    file: PathBuf,
    /// Check the configuration, print what is wrong (file and line) and exit
    /// (0: fine, 5: errors, 4: unreadable). With =LOG_FILE, write there.
    #[arg(short = 't', long = "config-test", value_name = "LOG_FILE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    config_test: Option<String>,
    /// Stay in the foreground.
    #[arg(short = 'n', long = "dont-fork")]
    dont_fork: bool,
    /// Log to the console (stderr) as well.
    #[arg(short = 'l', long = "log-console")]
    log_console: bool,
    /// More detailed logs (debug level).
    #[arg(short = 'D', long = "log-detail")]
    log_detail: bool,
    /// Do not log to syslog.
    #[arg(short = 'G', long = "no-syslog")]
    no_syslog: bool,
    /// Syslog facility: 0-7 (local0-7), localN, user or daemon.
    #[arg(
        short = 'S',
        long = "log-facility",
        value_name = "FACILITY",
        default_value = "daemon"
    )]
    log_facility: String,
    /// Leave rvsd's services as they are on stop.
    #[arg(short = 'I', long = "dont-release-ipvs")]
    dont_release_ipvs: bool,
    /// Health checkers only (what rvs-keepalived always does).
    #[arg(short = 'C', long = "check")]
    check_only: bool,
    /// keepalived's VRRP-only mode: not rvs-keepalived's job.
    #[arg(short = 'P', long = "vrrp")]
    vrrp: bool,
    /// Write the process id here.
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pid: Option<PathBuf>,
    /// The id for `@id` configuration lines (default: the host name's
    /// first part).
    #[arg(short = 'i', long = "config-id", value_name = "ID")]
    config_id: Option<String>,
    /// rvsd's control socket (or $RVS_SOCKET).
    #[arg(long, value_name = "PATH", env = "RVS_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where to write the checkers' state (read by `rvsadm --health`).
    #[arg(long = "status-file", value_name = "PATH", default_value = DEFAULT_STATUS_FILE)]
    status_file: PathBuf,
}

/// keepalived's log: `Tue Dec  1 15:33:47 2026: message` on the console,
/// and syslog unless `-G`.
struct Logger {
    console: bool,
    level: log::LevelFilter,
    syslog: Option<Mutex<syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>>>,
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // Only our own crate's records: rustls and others stay quiet.
        if !r.target().starts_with("rvs_keepalived") {
            return;
        }
        let msg = r.args().to_string();
        if self.console {
            let ts = chrono::Local::now().format("%a %b %e %H:%M:%S %Y");
            let _ = writeln!(std::io::stderr().lock(), "{ts}: {msg}");
        }
        if let Some(s) = &self.syslog {
            if let Ok(mut s) = s.lock() {
                let _ = match r.level() {
                    log::Level::Error => s.err(&msg),
                    log::Level::Warn => s.warning(&msg),
                    log::Level::Info => s.info(&msg),
                    _ => s.debug(&msg),
                };
            }
        }
    }

    fn flush(&self) {}
}

fn facility(s: &str) -> Option<syslog::Facility> {
    use syslog::Facility::*;
    Some(match s {
        "daemon" => LOG_DAEMON,
        "user" => LOG_USER,
        "0" | "local0" => LOG_LOCAL0,
        "1" | "local1" => LOG_LOCAL1,
        "2" | "local2" => LOG_LOCAL2,
        "3" | "local3" => LOG_LOCAL3,
        "4" | "local4" => LOG_LOCAL4,
        "5" | "local5" => LOG_LOCAL5,
        "6" | "local6" => LOG_LOCAL6,
        "7" | "local7" => LOG_LOCAL7,
        _ => return None,
    })
}

fn init_logging(cli: &Cli) -> Result<(), String> {
    let fac = facility(&cli.log_facility).ok_or_else(|| {
        format!(
            "invalid log facility '{}': use 0-7, local0-7, user or daemon",
            cli.log_facility
        )
    })?;
    let syslog = if cli.no_syslog {
        None
    } else {
        match syslog::unix(syslog::Formatter3164 {
            facility: fac,
            hostname: None,
            process: "rvs-keepalived".into(),
            pid: std::process::id(),
        }) {
            Ok(l) => Some(Mutex::new(l)),
            Err(e) => {
                if !cli.log_console {
                    eprintln!("rvs-keepalived: no syslog ({e}); use -l to log to the console");
                }
                None
            }
        }
    };
    let logger = Logger {
        console: cli.log_console,
        level: if cli.log_detail {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        },
        syslog,
    };
    log::set_max_level(logger.level);
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())
}

/// keepalived's default config id: the host name up to the first dot.
fn default_config_id() -> Option<String> {
    let h = nix::unistd::gethostname().ok()?;
    let h = h.to_string_lossy();
    Some(h.split('.').next().unwrap_or(&h).to_string())
}

/// `-t`: every message with its file and line; the exit code says whether
/// there were errors.
fn config_test(cli: &Cli, id: Option<&str>, log_file: &str) -> ExitCode {
    let mut out: Box<dyn Write> = if log_file.is_empty() {
        Box::new(std::io::stderr())
    } else {
        match std::fs::File::create(log_file) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("cannot write {log_file}: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    match config::load(&cli.file, id) {
        Err(e) => {
            let _ = writeln!(out, "{e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Ok(l) => {
            for d in l.diags.all() {
                let _ = writeln!(out, "{d}");
            }
            if l.diags.has_errors() {
                ExitCode::from(EXIT_CONFIG_TEST)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Paths stay valid after `daemon()` changes to `/`.
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.vrrp {
        eprintln!(
            "rvs-keepalived runs keepalived's health checkers only; for VRRP run keepalived itself: keepalived --vrrp"
        );
        return ExitCode::from(2);
    }
    let _ = cli.check_only;
    let id = cli.config_id.clone().or_else(default_config_id);
    if let Some(f) = &cli.config_test {
        return config_test(&cli, id.as_deref(), f);
    }
    cli.file = absolute(&cli.file);
    cli.socket = absolute(&cli.socket);
    cli.status_file = absolute(&cli.status_file);
    cli.pid = cli.pid.as_deref().map(absolute);
    // Read the configuration before forking, so that a missing file is
    // said on the terminal.
    let loaded = match config::load(&cli.file, id.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rvs-keepalived: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if !cli.dont_fork {
        // Before any thread exists: fork keeps only the calling thread.
        if let Err(e) = nix::unistd::daemon(false, cli.log_console) {
            eprintln!("rvs-keepalived: cannot run in the background: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = init_logging(&cli) {
        eprintln!("rvs-keepalived: {e}");
        return ExitCode::from(1);
    }
    if let Some(p) = &cli.pid {
        if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
            log::warn!("cannot write pid file {}: {e}", p.display());
        }
    }
    log::info!(
        "Starting rvs-keepalived v{} (keepalived 2.2 health checkers for rvs)",
        env!("CARGO_PKG_VERSION")
    );
    log::info!("Configuration file {}", cli.file.display());
    daemon::log_diags(&loaded.diags);
    let opts = Options {
        config: cli.file.clone(),
        config_id: id,
        socket: cli.socket.clone(),
        status_file: cli.status_file.clone(),
        dont_release_ipvs: cli.dont_release_ipvs,
    };
    let r = daemon::run(&opts, loaded.config);
    if let Some(p) = &cli.pid {
        let _ = std::fs::remove_file(p);
    }
    match r {
        Ok(()) => {
            log::info!("Stopped rvs-keepalived");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e:#}");
            eprintln!("rvs-keepalived: {e:#}");
            ExitCode::from(1)
        }
    }
}
