//! `cargo xtask dist`: the Debian package of rvsd and rvsadm.
//!
//! Builds the release binaries, writes the man pages and the bash and zsh
//! completions under target/dist, then has cargo-deb (installed on first
//! use) pack them with the unit, the configuration and the rules file
//! (`[package.metadata.deb]` in crates/rvsd/Cargo.toml).
//!
//! Where the pages and completions come from:
//! - rvsd: its clap definition (`rvsd-cli`), through clap_mangen and
//!   clap_complete, so `--help` and the page cannot disagree.
//! - rvsadm parses by hand (ipvsadm's popt rules are its interface), so
//!   there is no clap parser to ask. Its page is made from `rvsadm -h`'s
//!   own text (`parse::usage`): the synopsis and every option line, with a
//!   few sections (description, rules file, files, exit status) added
//!   here. Its completions come from a clap command built from the
//!   parser's option table (`parse::option_table`), with each option's
//!   line of `-h` as its help: they offer exactly what rvsadm accepts.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap_complete::Shell;
use roff::{bold, italic, roman, Roff};
use rvsadm::parse::{self, ValueKind};

use crate::{cargo, sh};

/// Builds everything and returns the .deb's path.
pub fn run(root: &Path) -> Result<PathBuf> {
    if std::env::var_os("CARGO_TARGET_DIR").is_some() {
        bail!("cargo xtask dist packs files from ./target (see crates/rvsd/Cargo.toml): unset CARGO_TARGET_DIR");
    }
    ensure_cargo_deb()?;
    sh(cargo().args(["build", "--release", "-p", "rvsd", "-p", "rvsadm"]))?;
    let out = root.join("target/dist");
    write_docs(&out)?;
    let debian = root.join("target/debian");
    // Only this build's package in the folder, so the test finds it.
    let _ = fs::remove_dir_all(&debian);
    let o = cargo()
        // The release profile keeps line tables (for perf in benchmarks);
        // the package ships stripped binaries.
        .args(["deb", "-p", "rvsd", "--no-build", "--strip", "--output"])
        .arg(&debian)
        .current_dir(root)
        .output()
        .context("running cargo deb")?;
    if !o.status.success() {
        bail!(
            "cargo deb failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let deb = built_deb(&debian)?;
    println!("dist: {}", deb.display());
    Ok(deb)
}

/// The one .deb in `dir`.
pub fn built_deb(dir: &Path) -> Result<PathBuf> {
    let debs: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    match debs.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one .deb in {}, found {debs:?}", dir.display()),
    }
}

fn ensure_cargo_deb() -> Result<()> {
    let have = cargo()
        .args(["deb", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        println!("dist: installing cargo-deb (cargo install cargo-deb --locked)");
        sh(cargo().args(["install", "cargo-deb", "--locked", "--version", "^3"]))?;
    }
    Ok(())
}

/// The man pages (`man/rvsd.8`, `man/rvsadm.8`) and completions
/// (`completions/rvsd.bash`, `_rvsd`, and rvsadm's) under `out`.
pub fn write_docs(out: &Path) -> Result<()> {
    let man = out.join("man");
    let comp = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&comp)?;
    fs::write(man.join("rvsd.8"), rvsd_man()?)?;
    fs::write(man.join("rvsadm.8"), rvsadm_man())?;
    for (name, mut cmd) in [("rvsd", rvsd_cli::command()), ("rvsadm", rvsadm_command())] {
        for shell in [Shell::Bash, Shell::Zsh] {
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                _ => format!("{name}.bash"),
            };
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut buf);
            fs::write(comp.join(file), buf)?;
        }
    }
    Ok(())
}

/// rvsd(8), from its clap definition.
pub fn rvsd_man() -> Result<Vec<u8>> {
    let cmd = rvsd_cli::command().version(env!("CARGO_PKG_VERSION"));
    let mut buf = Vec::new();
    let m = clap_mangen::Man::new(cmd).section("8").manual("rvs");
    m.render_title(&mut buf)?;
    m.render_name_section(&mut buf)?;
    m.render_synopsis_section(&mut buf)?;
    m.render_description_section(&mut buf)?;
    m.render_options_section(&mut buf)?;
    let mut extra = Roff::new();
    extra.control("SH", ["SIGNALS"]);
    extra.control("TP", []);
    extra.text([bold("SIGHUP")]);
    extra.text([roman(
        "Read the configuration and the rules file again and apply what changed (as rvsadm --reload).",
    )]);
    extra.control("TP", []);
    extra.text([bold("SIGTERM"), roman(", "), bold("SIGINT")]);
    extra.text([roman("Stop: the workers finish, the ports are released.")]);
    extra.control("SH", ["FILES"]);
    for (f, what) in FILES {
        extra.control("TP", []);
        extra.text([italic(*f)]);
        extra.text([roman(*what)]);
    }
    extra.control("SH", ["SEE ALSO"]);
    extra.text([
        bold("rvsadm"),
        roman("(8), "),
        bold("ipvsadm"),
        roman("(8), "),
        bold("systemctl"),
        roman("(1)"),
    ]);
    extra.to_writer(&mut buf)?;
    m.render_version_section(&mut buf)?;
    Ok(buf)
}

const FILES: &[(&str, &str)] = &[
    (
        "/etc/rvs/rvsd.toml",
        "rvsd's configuration: ports, lcores, memory, timeouts, the rules file, the control socket.",
    ),
    (
        "/etc/rvs/rules",
        "The rules: rvsadm commands, one a line, as rvsadm -S -n writes them. Loaded at start, read again on reload.",
    ),
    (
        "/run/rvs/rvsd.sock",
        "The control socket rvsadm talks to.",
    ),
    (
        "/run/rvs/keepalived.status",
        "rvs-keepalived's status file: the services it names are its own, and a reload leaves them alone.",
    ),
];

/// The blocks of `rvsadm -h`: the title, the synopsis lines, then each
/// titled list of (term, description).
struct Usage {
    title: String,
    synopsis: Vec<String>,
    sections: Vec<(String, Vec<(String, String)>)>,
}

fn usage() -> Usage {
    let text = parse::usage("rvsadm");
    let mut blocks = text.split("\n\n");
    let mut head = blocks.next().unwrap_or_default().lines();
    let title = head.next().unwrap_or_default().to_string();
    let synopsis = head
        .filter(|l| *l != "Usage:")
        .map(|l| l.trim().to_string())
        .collect();
    let sections = blocks
        .map(|b| {
            let mut lines = b.lines();
            let name = lines
                .next()
                .unwrap_or_default()
                .trim_end_matches(':')
                .to_string();
            let entries = lines
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    // Columns are two or more spaces apart; the last is the
                    // description.
                    let cols: Vec<&str> = l
                        .trim()
                        .split("  ")
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .collect();
                    match cols.split_last() {
                        Some((desc, terms)) if !terms.is_empty() => {
                            (terms.join(", "), desc.to_string())
                        }
                        _ => (l.trim().to_string(), String::new()),
                    }
                })
                .collect();
            (name, entries)
        })
        .collect();
    Usage {
        title,
        synopsis,
        sections,
    }
}

/// The line of `-h` that describes `--long`, if any.
fn help_of(u: &Usage, long: &str) -> Option<String> {
    let flag = format!("--{long}");
    u.sections.iter().flat_map(|(_, e)| e).find_map(|(t, d)| {
        t.split([',', '|', ' '])
            .any(|w| w == flag)
            .then(|| d.clone())
    })
}

/// rvsadm(8), from `rvsadm -h`'s text and the parser's option table.
pub fn rvsadm_man() -> String {
    let u = usage();
    let mut r = Roff::new();
    r.control(
        "TH",
        [
            "RVSADM",
            "8",
            "",
            &format!("rvsadm {}", env!("CARGO_PKG_VERSION")),
            "rvs",
        ],
    );
    r.control("SH", ["NAME"]);
    r.text([roman(
        "rvsadm - configure rvsd, the rvs director, as ipvsadm configures kernel IPVS",
    )]);
    r.control("SH", ["SYNOPSIS"]);
    for s in &u.synopsis {
        r.text([bold(s.as_str())]);
        r.control("br", []);
    }
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "rvsadm is a drop-in for ipvsadm(8): the same commands and options, parsed by the \
same rules (the first option is the command, -Ln clusters, -p takes an optional value), \
the same messages and exit codes, and the same -L and -S output, byte for byte. It talks \
to rvsd over its control socket instead of to the kernel. ",
    )]);
    r.text([roman(format!(
        "The sections below are rvsadm -h's ({}).",
        u.title
    ))]);
    for (name, entries) in &u.sections {
        r.control("SH", [name.to_uppercase().as_str()]);
        for (term, desc) in entries {
            r.control("TP", []);
            r.text([bold(term.as_str())]);
            r.text([roman(desc.as_str())]);
        }
    }
    // What the parser takes beyond the help text: ipvsadm's other options.
    let mentioned = |long: &str| help_of(&u, long).is_some();
    let mut others: Vec<String> = parse::option_table()
        .into_iter()
        .filter(|o| !mentioned(o.long))
        .map(|o| format!("--{}", o.long))
        .collect();
    others.dedup();
    r.control("SH", ["OTHER IPVSADM OPTIONS"]);
    r.text([roman(format!(
        "rvsadm also parses ipvsadm's {}, with ipvsadm's meaning (see ipvsadm(8)); \
those rvs does not implement are refused with a message saying so.",
        others.join(", ")
    ))]);
    r.control("SH", ["RULES FILE"]);
    r.text([roman(
        "rvsd loads /etc/rvs/rules (its [control] rules setting) at start: one rvsadm command \
per line, as rvsadm -S -n writes them; # starts a comment. To keep the running table \
across restarts: ",
    )]);
    r.control("RS", []);
    r.text([bold("rvsadm -S -n > /etc/rvs/rules")]);
    r.control("RE", []);
    r.text([roman(
        "rvsadm --reload (or systemctl reload rvsd) reads it again with rvsd.toml and applies \
only the difference: services and real servers added, edited or deleted; real servers that \
did not change keep their connections. A file with an error changes nothing; the error names \
the file and the line. As with ipvsadm, -S does not write thresholds (-x, -y); write them in \
the rules file by hand.",
    )]);
    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", []);
    r.text([bold("RVS_SOCKET")]);
    r.text([roman("rvsd's control socket, unless --socket is given.")]);
    r.control("SH", ["FILES"]);
    for (f, what) in FILES {
        r.control("TP", []);
        r.text([italic(*f)]);
        r.text([roman(*what)]);
    }
    r.control("SH", ["EXIT STATUS"]);
    r.text([roman(
        "0 on success; ipvsadm's codes otherwise: 2 for a command line error, 255 for a \
command rvsd refused (a refused --reload too), 1 for a failed listing.",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([bold("rvsd"), roman("(8), "), bold("ipvsadm"), roman("(8)")]);
    r.render()
}

/// A clap command with rvsadm's options, for the completions only.
pub fn rvsadm_command() -> clap::Command {
    use clap::{Arg, ArgAction, ValueHint};
    let u = usage();
    let mut cmd = clap::Command::new("rvsadm")
        .about("configure rvsd as ipvsadm configures kernel IPVS")
        .disable_help_flag(true)
        .disable_version_flag(true);
    let table = parse::option_table();
    let mut seen: Vec<&str> = Vec::new();
    for o in &table {
        if seen.contains(&o.long) {
            continue;
        }
        seen.push(o.long);
        let mut a = Arg::new(o.long).long(o.long);
        // A second short form (-L and -l) is an alias.
        let shorts: Vec<char> = table
            .iter()
            .filter(|x| x.long == o.long)
            .filter_map(|x| x.short)
            .collect();
        if let Some((first, rest)) = shorts.split_first() {
            a = a.short(*first).short_aliases(rest.to_vec());
        }
        if let Some(h) = help_of(&u, o.long) {
            a = a.help(h);
        }
        a = match o.value {
            ValueKind::None => a.action(ArgAction::SetTrue),
            ValueKind::Required => a.num_args(1),
            ValueKind::Optional => a.num_args(0..=1),
        };
        a = match o.long {
            "scheduler" => a.value_parser(rvs_ipvs::sched::NAMES.to_vec()),
            "tun-type" => a.value_parser(["ipip", "gue", "gre"]),
            "sched-flags" => a.value_parser([
                "flag-1",
                "flag-2",
                "flag-3",
                "sh-fallback",
                "sh-port",
                "mh-fallback",
                "mh-port",
            ]),
            "tcp-service" | "udp-service" | "sctp-service" | "real-server" => {
                a.value_hint(ValueHint::Hostname)
            }
            _ => a,
        };
        cmd = cmd.arg(a);
    }
    // rvs's own options, taken out before ipvsadm's parsing.
    for (long, help) in [
        ("socket", "rvsd's control socket"),
        ("status-file", "rvs-keepalived's status file, for --health"),
    ] {
        cmd = cmd.arg(
            Arg::new(long)
                .long(long)
                .num_args(1)
                .value_hint(ValueHint::FilePath)
                .help(help),
        );
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rvsadm_page_has_every_help_line_and_the_other_options() {
        let page = rvsadm_man();
        let help = parse::usage("rvsadm");
        // Every option of -h is on the page, and every one the parser
        // takes is named somewhere.
        for o in parse::option_table() {
            assert!(
                page.contains(&format!("\\-\\-{}", o.long.replace('-', "\\-"))),
                "--{} missing from rvsadm.8:\n{page}",
                o.long
            );
        }
        for l in help.lines().filter(|l| l.trim_start().starts_with("--")) {
            let first = l.split_whitespace().next().unwrap();
            let first = first.split('|').next().unwrap().replace('-', "\\-");
            assert!(page.contains(&first), "{first} missing");
        }
        assert!(page.contains(".SH \"RULES FILE\""), "{page}");
        assert!(page.contains("rvsadm \\-S \\-n > /etc/rvs/rules"));
    }

    /// groff reads both pages without a warning (groff-base comes with
    /// dpdk-build/setup.sh).
    #[test]
    fn pages_render_cleanly() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        for page in [rvsd_man().unwrap(), rvsadm_man().into_bytes()] {
            let mut groff = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("groff (apt-get install groff-base)");
            groff.stdin.take().unwrap().write_all(&page).unwrap();
            let out = groff.wait_with_output().unwrap();
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        }
    }

    #[test]
    fn rvsd_page_comes_from_its_parser() {
        let page = String::from_utf8(rvsd_man().unwrap()).unwrap();
        for opt in [
            "\\-\\-check\\-config",
            "\\-\\-config",
            "\\-\\-socket",
            "SIGHUP",
        ] {
            assert!(page.contains(opt), "{opt} missing:\n{page}");
        }
        assert!(
            !page.contains("\\-\\-check\n"),
            "hidden options stay hidden"
        );
        assert!(
            !page.contains("run\\-for"),
            "the benchmark option is hidden"
        );
    }

    #[test]
    fn rvsadm_completions_offer_what_the_parser_takes() {
        let mut cmd = rvsadm_command();
        cmd.build();
        for long in ["add-service", "reload", "tun-type", "persistent", "socket"] {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(long)),
                "{long}"
            );
        }
        let l = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some("list"))
            .unwrap();
        assert_eq!(l.get_short(), Some('L'));
        assert_eq!(l.get_all_short_aliases(), Some(vec!['l']));
        let mut buf = Vec::new();
        clap_complete::generate(Shell::Bash, &mut cmd, "rvsadm", &mut buf);
        let bash = String::from_utf8(buf).unwrap();
        assert!(bash.contains("--reload") && bash.contains("wlc"), "{bash}");
    }
}
