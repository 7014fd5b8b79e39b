//! `cargo xtask docker build | test | up | down`: the rvs image and the
//! walkthrough as containers (docker/).
//!
//! Why this file is long (about 780 lines): one task (`cargo xtask docker`):
//! its images, the Docker daemon it may start, the compose project and the
//! test scenarios.
//!
//! `test` makes sure there is a Docker to talk to (installs Debian's
//! docker.io and docker-compose when missing; starts a dockerd when none
//! answers, and stops it again at the end), builds the images and runs the
//! walkthrough twice, once per way rvsd gets its port: net_af_packet on the
//! director container's eth0, and virtio_user over a vhost-user socket to a
//! dpdk-testpmd forwarder. Each run: the seed's three rvsadm commands through
//! `docker exec`, curls that must answer RS2, RS1, RS2, ..., then a NAT
//! service on port 8080 that must alternate the same way. Every container,
//! network and volume it made is removed, on failure and Ctrl-C too; the
//! images stay, as a cache for the next run.
//!
//! Which docker CLI: Debian's /usr/bin/docker when it is there, since it is
//! the one built with the daemon it talks to (20.10). A newer CLI found on
//! PATH negotiates the API version down by itself, but builds then need
//! DOCKER_BUILDKIT=0 (it has no buildx); that is set for every call, so the
//! Dockerfiles build with the classic builder whichever CLI runs.
//! Compose: `docker-compose` (Debian 12's is 1.29, the Python one; a v2
//! binary of that name takes the same arguments).

use std::cell::Cell;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Subcommand;

use crate::{cargo, root, setup, sh};

#[derive(Subcommand)]
pub enum Action {
    /// Build the images: the base (docker/base.sh), rvs/rvs and the
    /// testbed's client/real-server and forwarder images.
    Build {
        /// Put debug binaries in the image (no release build).
        #[arg(long)]
        debug: bool,
    },
    /// Both scenarios end to end, then remove every container, network and
    /// volume made (needs root).
    Test {
        /// Put debug binaries in the image (no release build).
        #[arg(long)]
        debug: bool,
    },
    /// Build the images and start a scenario to try by hand (containers
    /// rvs-client, rvs-director, rvs-rs1, rvs-rs2).
    Up {
        /// rvsd on virtio_user through the vhost-user forwarder, instead
        /// of net_af_packet on its eth0.
        #[arg(long)]
        virtio: bool,
    },
    /// Remove what `up` started.
    Down,
}

pub const VIP: &str = "192.168.1.10";
const RS1: &str = "192.168.1.220";
const RS2: &str = "192.168.1.193";

/// The images, as docker/compose.yml names them.
const BASE_IMAGE: &str = "rvs/debian:bookworm";
const RVS_IMAGE: &str = "rvs/rvs";
const PEER_IMAGE: &str = "rvs/testbed-peer";
const FORWARDER_IMAGE: &str = "rvs/testbed-forwarder";

/// What `up`/`down` name things: RVS_DOCKER_PREFIX, or "rvs" (containers
/// rvs-client, rvs-director, ...), as docker/compose.yml does by itself.
fn hand_prefix() -> String {
    env::var("RVS_DOCKER_PREFIX").unwrap_or_else(|_| "rvs".to_string())
}

/// Set by Ctrl-C. The docker commands running then get the signal too and
/// fail; the waits below check this; either way the error unwinds through
/// the guards, which remove what was made.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    AfPacket,
    Virtio,
}

impl Scenario {
    /// The compose profile (docker/compose.yml).
    fn profile(self) -> &'static str {
        match self {
            Scenario::AfPacket => "af_packet",
            Scenario::Virtio => "virtio",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::AfPacket => "rvsd on the director container's eth0 through net_af_packet",
            Scenario::Virtio => {
                "rvsd on virtio_user, over a vhost-user socket to dpdk-testpmd (net_vhost <-> net_af_packet)"
            }
        }
    }
}

pub fn run(action: Action) -> Result<()> {
    ensure!(
        is_root(),
        "cargo xtask docker needs root (apt-get, dockerd, debootstrap); run it as root"
    );
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::Relaxed))?;
    match action {
        Action::Build { debug } => {
            let docker = Docker::ready()?;
            build_images(&docker, debug)?;
            report_sizes(&docker)
        }
        Action::Test { debug } => test(debug),
        Action::Up { virtio } => {
            let docker = Docker::ready()?;
            build_images(&docker, false)?;
            let scenario = if virtio {
                Scenario::Virtio
            } else {
                Scenario::AfPacket
            };
            // A scenario left from an earlier `up` goes first (one network
            // can hold the walkthrough's addresses).
            down_hand(&docker)?;
            let mut project = Project::up(&docker, &hand_prefix(), scenario)?;
            project.ready()?;
            project.keep = true;
            docker.keep_daemon();
            let d = project.container("director");
            println!(
                "The walkthrough is up ({}). Try:\n\
\x20 docker exec {d} rvsadm -A -t {VIP}:80 -s rr\n\
\x20 docker exec {d} rvsadm -a -t {VIP}:80 -r {RS1}:80 -g -w 1\n\
\x20 docker exec {d} rvsadm -a -t {VIP}:80 -r {RS2}:80 -g -w 1\n\
\x20 docker exec {c} curl -s http://{VIP}/\n\
\x20 docker exec {d} rvsadm -Ln\n\
Remove it with: cargo xtask docker down",
                scenario.describe(),
                c = project.container("client"),
            );
            Ok(())
        }
        Action::Down => {
            let docker = Docker::ready()?;
            down_hand(&docker)?;
            println!("removed");
            Ok(())
        }
    }
}

fn down_hand(docker: &Docker) -> Result<()> {
    for scenario in [Scenario::AfPacket, Scenario::Virtio] {
        Project::new(docker, &hand_prefix(), scenario).down()?;
    }
    Ok(())
}

fn test(debug: bool) -> Result<()> {
    let started = Instant::now();
    // Docker object names start with "rvs" and the test prefix, so that a
    // test run removes only its own (and its names differ from `up`'s).
    let prefix = format!("rvs{}", rvs_lab::test_prefix());
    let docker = Docker::ready()?;
    let t = Instant::now();
    build_images(&docker, debug)?;
    println!("== images built in {:.0} s", t.elapsed().as_secs_f64());
    report_sizes(&docker)?;
    for scenario in [Scenario::AfPacket, Scenario::Virtio] {
        let t = Instant::now();
        println!(
            "\n== scenario {}: {}",
            scenario.profile(),
            scenario.describe()
        );
        walkthrough(&docker, &prefix, scenario)?;
        println!(
            "== scenario {} passed in {:.0} s",
            scenario.profile(),
            t.elapsed().as_secs_f64()
        );
    }
    let left = docker.leftovers(&prefix)?;
    ensure!(left.is_empty(), "left behind: {}", left.join(", "));
    println!(
        "\n== docker test passed in {:.0} s; no container, network or volume named {prefix}* left",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One scenario: bring it up, configure rvsd as the seed does, check the
/// answers, tear it down.
fn walkthrough(docker: &Docker, prefix: &str, scenario: Scenario) -> Result<()> {
    let mut project = Project::up(docker, prefix, scenario)?;
    let result = project.ready().and_then(|()| {
        if scenario == Scenario::Virtio {
            // The director has no network: what reaches the real servers
            // went over virtio_user and the forwarder.
            let links = project.exec("director", &["ls", "/sys/class/net"])?;
            ensure!(
                links.split_whitespace().eq(["lo"]),
                "the virtio director should have no network interface but lo, has: {links}"
            );
        }
        let d = "director";
        println!("# direct routing, the seed's commands");
        for line in [
            format!("-A -t {VIP}:80 -s rr"),
            format!("-a -t {VIP}:80 -r {RS1}:80 -g -w 1"),
            format!("-a -t {VIP}:80 -r {RS2}:80 -g -w 1"),
        ] {
            println!("$ docker exec {} rvsadm {line}", project.container(d));
            project.rvsadm(&line)?;
        }
        print!("{}", project.rvsadm("-Ln")?);
        project.curls(&format!("http://{VIP}/"), 6)?;
        println!("# NAT: port 8080 to the servers' port 80, replies back through rvsd");
        for line in [
            format!("-A -t {VIP}:8080 -s rr"),
            format!("-a -t {VIP}:8080 -r {RS1}:80 -m"),
            format!("-a -t {VIP}:8080 -r {RS2}:80 -m"),
        ] {
            println!("$ docker exec {} rvsadm {line}", project.container(d));
            project.rvsadm(&line)?;
        }
        project.curls(&format!("http://{VIP}:8080/"), 4)?;
        print!("{}", project.rvsadm("-Ln")?);
        Ok(())
    });
    if result.is_err() {
        project.dump_logs();
    }
    let down = project.down();
    project.keep = true; // already down
    result.and(down)
}

/// Builds rvsd and rvsadm, stages them in docker/bin, and builds the
/// images. The compiler runs while the base and testbed images build: one
/// is CPU, the other mostly waiting on Debian's mirror.
fn build_images(docker: &Docker, debug: bool) -> Result<()> {
    // DPDK's headers and libraries for the build (a no-op when present).
    setup()?;
    let profile = if debug { "debug" } else { "release" };
    let mut build = cargo();
    build.args(["build", "-p", "rvsd", "-p", "rvsadm"]);
    if !debug {
        build.arg("--release");
    }
    std::thread::scope(|s| {
        let compiled = s.spawn(move || sh(&mut build));
        let images = sh(Command::new("bash")
            .arg("docker/base.sh")
            .env("DOCKER", &docker.cli)
            .env("BASE_IMAGE", BASE_IMAGE))
        .and_then(|()| {
            build_image(docker, "docker/testbed", Some("peer"), PEER_IMAGE)?;
            build_image(docker, "docker/testbed", Some("forwarder"), FORWARDER_IMAGE)
        });
        let compiled = compiled.join().expect("the cargo build thread panicked");
        images.and(compiled)
    })?;
    let bin = root().join("docker/bin");
    fs::create_dir_all(&bin)?;
    for b in ["rvsd", "rvsadm"] {
        let (from, to) = (root().join("target").join(profile).join(b), bin.join(b));
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        // The line tables stay in target/; the symbols stay for backtraces.
        sh(Command::new("strip").arg("--strip-debug").arg(&to))?;
    }
    build_image(docker, "docker", None, RVS_IMAGE)
}

/// `docker build` with `--network host`, so that apt inside the build
/// reaches Debian's mirror whatever the daemon's bridge setup (this one
/// runs without iptables).
fn build_image(docker: &Docker, dir: &str, target: Option<&str>, image: &str) -> Result<()> {
    let before = docker.image_id(image);
    let mut build = docker.cmd();
    build.args(["build", "-q", "--network", "host", "-t", image]);
    if let Some(t) = target {
        build.args(["--target", t]);
    }
    output_ok(build.arg(dir))?;
    // The image this one replaces, unless something still uses it: no pile
    // of untagged rvs images after many runs.
    if let Some(old) = before.filter(|old| Some(old) != docker.image_id(image).as_ref()) {
        let _ = docker.output(&["image", "rm", &old]);
    }
    Ok(())
}

fn report_sizes(docker: &Docker) -> Result<()> {
    for image in [BASE_IMAGE, RVS_IMAGE, PEER_IMAGE, FORWARDER_IMAGE] {
        let size = docker.output(&["image", "inspect", "-f", "{{.Size}}", image])?;
        let mb = size.trim().parse::<f64>().unwrap_or(0.0) / 1e6;
        println!("image {image}: {mb:.1} MB");
    }
    Ok(())
}

/// The Docker this run talks to, and the daemon it started, if any.
struct Docker {
    cli: PathBuf,
    compose: PathBuf,
    /// A dockerd this run started: stopped again on drop unless kept.
    daemon: Option<Child>,
    keep_daemon: Cell<bool>,
}

impl Docker {
    /// Installs what is missing, and starts a daemon if none answers.
    fn ready() -> Result<Docker> {
        let mut missing = Vec::new();
        if find_in_path("dockerd").is_none() {
            missing.push("docker.io");
        }
        if find_in_path("docker-compose").is_none() {
            missing.push("docker-compose");
        }
        if !missing.is_empty() {
            apt_install(&missing)?;
        }
        let cli = Path::new("/usr/bin/docker")
            .exists()
            .then(|| PathBuf::from("/usr/bin/docker"))
            .or_else(|| find_in_path("docker"))
            .context(
                "no docker CLI found (installing docker.io should have brought /usr/bin/docker)",
            )?;
        let compose = find_in_path("docker-compose").context("docker-compose not found")?;
        let mut docker = Docker {
            cli,
            compose,
            daemon: None,
            keep_daemon: Cell::new(false),
        };
        if !docker.answers() {
            docker.start_daemon()?;
        }
        let version = docker.output(&["version", "-f", "{{.Server.Version}}"])?;
        let compose_version =
            output_ok(Command::new(&docker.compose).args(["version", "--short"]))?;
        println!(
            "docker: daemon {} ({}), CLI {}, {} {}",
            version.trim(),
            if docker.daemon.is_some() {
                "started by this run"
            } else {
                "already running"
            },
            docker.cli.display(),
            docker.compose.display(),
            compose_version.trim()
        );
        Ok(docker)
    }

    fn answers(&self) -> bool {
        self.cmd()
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// `dockerd --iptables=false --ip6tables=false`, as this platform needs,
    /// and --ip-forward=false --bridge=none: the walkthrough's containers
    /// share one user-defined bridge and need neither the host routing for
    /// them nor the default docker0 bridge, so the host's ip_forward and
    /// links stay as they were. Its own process group, so that a Ctrl-C
    /// meant for this run reaches it only through the clean-up.
    fn start_daemon(&mut self) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let dockerd = find_in_path("dockerd").context("dockerd not found")?;
        let dir = root().join("target/docker");
        fs::create_dir_all(&dir)?;
        let log_path = dir.join("dockerd.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new(dockerd)
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--bridge=none",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting dockerd")?;
        println!(
            "docker: no daemon answers; started dockerd (pid {}, log {})",
            child.id(),
            log_path.display()
        );
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            interrupted()?;
            if self.answers() {
                return Ok(());
            }
            if let Some(Some(status)) = self.daemon.as_mut().map(|c| c.try_wait().ok().flatten()) {
                self.daemon = None;
                bail!(
                    "dockerd exited ({status}) while starting:\n{}",
                    tail(&log_path, 20)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd did not answer within 60 s:\n{}",
                    tail(&log_path, 20)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Leaves the daemon running when this value is dropped (`up`).
    fn keep_daemon(&self) {
        if let Some(c) = &self.daemon {
            println!("docker: dockerd (pid {}) keeps running", c.id());
            self.keep_daemon.set(true);
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.cli);
        c.env("DOCKER_BUILDKIT", "0").current_dir(root());
        c
    }

    fn output(&self, args: &[&str]) -> Result<String> {
        output_ok(self.cmd().args(args))
    }

    fn image_id(&self, image: &str) -> Option<String> {
        self.output(&["image", "inspect", "-f", "{{.Id}}", image])
            .ok()
            .map(|id| id.trim().to_string())
    }

    /// Containers, networks and volumes whose names start with `prefix`.
    fn leftovers(&self, prefix: &str) -> Result<Vec<String>> {
        let filter = format!("name={prefix}");
        let mut left = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-a", "--format", "{{.Names}}"]),
            ("network", vec!["network", "ls", "--format", "{{.Name}}"]),
            ("volume", vec!["volume", "ls", "--format", "{{.Name}}"]),
        ] {
            let mut args = args;
            args.extend(["--filter", &filter]);
            for name in self.output(&args)?.lines() {
                // The filter matches anywhere in the name.
                if name.starts_with(prefix) {
                    left.push(format!("{what} {name}"));
                }
            }
        }
        Ok(left)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let Some(mut child) = self.daemon.take() else {
            return;
        };
        if self.keep_daemon.get() {
            return;
        }
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                println!("docker: stopped the dockerd this run started");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("docker: dockerd did not stop within 30 s of SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A scenario's compose project: `<prefix>-<profile>`, containers
/// `<prefix>-client`, `<prefix>-director`, ...
struct Project<'a> {
    docker: &'a Docker,
    prefix: String,
    scenario: Scenario,
    /// Leave it running on drop (`up`).
    keep: bool,
}

impl<'a> Project<'a> {
    fn new(docker: &'a Docker, prefix: &str, scenario: Scenario) -> Project<'a> {
        Project {
            docker,
            prefix: prefix.to_string(),
            scenario,
            keep: false,
        }
    }

    /// `docker-compose up -d`; from here on, dropping the value removes
    /// what it made.
    fn up(docker: &'a Docker, prefix: &str, scenario: Scenario) -> Result<Project<'a>> {
        // The bridge is named "<prefix>-lan": Linux allows 15 characters.
        ensure!(
            prefix.len() <= 11,
            "docker prefix {prefix:?} too long (at most 11 characters; RVS_TEST_PREFIX at most 8)"
        );
        let project = Project::new(docker, prefix, scenario);
        println!(
            "$ docker-compose -f docker/compose.yml -p {} --profile {} up -d",
            project.name(),
            scenario.profile()
        );
        sh(project.compose().args(["up", "-d"]))?;
        Ok(project)
    }

    fn name(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.scenario.profile().replace('_', "")
        )
    }

    fn compose(&self) -> Command {
        let mut c = Command::new(&self.docker.compose);
        c.env("RVS_DOCKER_PREFIX", &self.prefix)
            .env("DOCKER_BUILDKIT", "0")
            .current_dir(root())
            .args(["-f", "docker/compose.yml", "-p", &self.name()])
            .args(["--profile", self.scenario.profile()]);
        c
    }

    fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix)
    }

    /// Removes the project's containers, network and volume.
    fn down(&self) -> Result<()> {
        let out = self
            .compose()
            .args(["down", "-v", "--remove-orphans", "-t", "5"])
            .output()
            .context("running docker-compose down")?;
        ensure!(
            out.status.success(),
            "docker-compose down ({}) failed: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// Waits until rvsd reports healthy (the image's HEALTHCHECK: rvsadm
    /// -Ln over its socket), nginx answers on both real servers and the
    /// client computes checksums in software.
    fn ready(&self) -> Result<()> {
        let director = self.container("director");
        self.wait("rvsd's health check", || {
            let status = self.docker.output(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Health.Status}}",
                &director,
            ])?;
            match status.split_whitespace().collect::<Vec<_>>()[..] {
                ["running", "healthy"] => Ok(true),
                ["running", "unhealthy"] => bail!("{director} is unhealthy"),
                ["running", _] => Ok(false),
                _ => bail!("{director} is not running: {}", status.trim()),
            }
        })?;
        for rs in ["rs1", "rs2"] {
            self.wait(&format!("nginx in {rs}"), || {
                Ok(self
                    .exec_status(rs, &["curl", "-s", "-m", "1", "http://127.0.0.1/"])?
                    .success())
            })?;
        }
        self.wait("the client's software checksums", || {
            Ok(self
                .exec("client", &["ethtool", "-k", "eth0"])
                .unwrap_or_default()
                .contains("tx-checksumming: off"))
        })
    }

    /// Polls every 200 ms for up to 60 s.
    fn wait(&self, what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            interrupted()?;
            if ready()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("{what}: not ready after 60 s")
    }

    fn exec_cmd(&self, service: &str, args: &[&str]) -> Command {
        let mut c = self.docker.cmd();
        c.arg("exec")
            .arg(self.container(service))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn exec(&self, service: &str, args: &[&str]) -> Result<String> {
        output_ok(&mut self.exec_cmd(service, args))
    }

    fn exec_status(&self, service: &str, args: &[&str]) -> Result<std::process::ExitStatus> {
        self.exec_cmd(service, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running docker exec")
    }

    fn rvsadm(&self, line: &str) -> Result<String> {
        let mut args = vec!["rvsadm"];
        args.extend(line.split_whitespace());
        self.exec("director", &args)
    }

    /// `count` curls from the client: the answers must alternate RS2, RS1,
    /// ... (round robin starts at the newest real server, RS2).
    fn curls(&self, url: &str, count: usize) -> Result<()> {
        let client = self.container("client");
        let mut answers = Vec::new();
        for _ in 0..count {
            let body = self.exec("client", &["curl", "-sS", "-m", "5", url])?;
            println!("{client}$ curl {url}  ->  {}", body.trim());
            answers.push(body.trim().to_string());
        }
        let expected: Vec<&str> = ["RS2", "RS1"].iter().cycle().take(count).copied().collect();
        ensure!(
            answers == expected,
            "curl {url}: answers {answers:?}, expected {expected:?}"
        );
        Ok(())
    }

    /// The end of the director's (and forwarder's) log, for a failure.
    fn dump_logs(&self) {
        let mut services = vec!["director"];
        if self.scenario == Scenario::Virtio {
            services.push("forwarder");
        }
        for s in services {
            let out = self
                .docker
                .cmd()
                .args(["logs", "--tail", "40", &self.container(s)])
                .output();
            if let Ok(out) = out {
                eprintln!(
                    "--- {} log ---\n{}{}",
                    self.container(s),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for Project<'_> {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = self.down() {
                eprintln!("{e:#}");
            }
        }
    }
}

/// Runs a command; its stdout when it succeeds, else an error with its
/// stderr.
fn output_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    println!("docker: installing {} (apt)", packages.join(" "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            // Wait for another apt run rather than fail.
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
    };
    if install()? {
        return Ok(());
    }
    // Package lists may be missing or stale on a new machine.
    sh(Command::new("apt-get").args(["update", "-qq"]))?;
    ensure!(
        install()?,
        "apt-get install {} failed (needs root and Debian's mirror)",
        packages.join(" ")
    );
    Ok(())
}

/// The real uid from /proc/self/status is 0 (no libc dependency).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
