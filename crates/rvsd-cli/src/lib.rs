//! rvsd's command line, in a crate of its own so that `cargo xtask dist`
//! can make rvsd's man page and shell completions from the very definition
//! rvsd parses (clap_mangen, clap_complete) without building DPDK.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::Parser;

/// Where the packaged rvsd reads its configuration.
pub const DEFAULT_CONFIG: &str = "/etc/rvs/rvsd.toml";

#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "rvsd",
    version,
    about = "rvs: an IPVS-compatible layer-4 load balancer on DPDK",
    long_about = "rvsd is the rvs director: it brings up the DPDK ports named in its \
configuration, runs one poll-mode worker per configured lcore, loads the \
rules file ([control] rules, in `rvsadm -S` format) and serves rvsadm on its \
control socket.\n\n\
SIGHUP, or `rvsadm --reload`, reads the configuration and the rules file \
again and applies only what changed: services and real servers added, \
edited or deleted, and the timeouts. Real servers that did not change keep \
their connections. Settings that need a restart (ports, lcores, memory) are \
reported and left alone. A file with an error changes nothing; the error \
names the file and the line.\n\n\
Under systemd (Type=notify) rvsd reports READY=1 once its ports are up and \
its socket listens, and RELOADING=1 ... READY=1 around a reload.",
    after_help = "Files: /etc/rvs/rvsd.toml (configuration), /etc/rvs/rules (rules), \
/run/rvs/rvsd.sock (control socket). Logs go to stderr (the journal under \
systemd); RUST_LOG=debug|info|warn sets the level."
)]
pub struct Args {
    /// The TOML configuration file.
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG, value_hint = clap::ValueHint::FilePath)]
    pub config: PathBuf,
    /// Override the control socket path from the configuration.
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub socket: Option<PathBuf>,
    /// Check the configuration (FILE, or --config's) and the rules file it
    /// names, print what they hold, and exit: 0 when both are good, 1 with
    /// the messages a reload would give (file and line) when not.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        value_hint = clap::ValueHint::FilePath
    )]
    pub check_config: Option<Option<PathBuf>>,
    /// Same as --check-config (older spelling).
    #[arg(long, hide = true)]
    pub check: bool,
    /// Benchmark mode: run this many seconds, then print a JSON summary
    /// (rates; burst-time percentiles when rvsd is built with the
    /// `burst-histogram` feature, as `cargo xtask bench` builds it) and
    /// exit.
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub run_for: Option<f64>,
    /// Benchmark mode: the first SECONDS of --run-for are not measured
    /// [default: a third of --run-for, at most 2]. Longer where the first
    /// pass over the flows takes longer (10 M connections to open).
    #[arg(long, value_name = "SECONDS", hide = true, requires = "run_for")]
    pub warm_up: Option<f64>,
}

impl Args {
    /// The configuration file to check, when asked to check only.
    pub fn config_to_check(&self) -> Option<PathBuf> {
        match &self.check_config {
            Some(Some(f)) => Some(f.clone()),
            Some(None) => Some(self.config.clone()),
            None if self.check => Some(self.config.clone()),
            None => None,
        }
    }
}

/// The clap command, for the man page and the completions.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("rvsd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn check_config_takes_an_optional_file() {
        assert_eq!(parse(&[]).config_to_check(), None);
        assert_eq!(
            parse(&["--check-config"]).config_to_check(),
            Some(PathBuf::from(DEFAULT_CONFIG))
        );
        assert_eq!(
            parse(&["-c", "/tmp/a.toml", "--check-config"]).config_to_check(),
            Some(PathBuf::from("/tmp/a.toml"))
        );
        assert_eq!(
            parse(&["--check-config", "/tmp/b.toml"]).config_to_check(),
            Some(PathBuf::from("/tmp/b.toml"))
        );
        assert_eq!(
            parse(&["--check"]).config_to_check(),
            Some(PathBuf::from(DEFAULT_CONFIG))
        );
        command().debug_assert();
    }
}
