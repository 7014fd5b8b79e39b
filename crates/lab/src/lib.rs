//! The lab: the classic IPVS direct-routing walkthrough, built from network
//! namespaces on one machine.
//!
//! Why this file is long (about 950 lines): the walkthrough topology and
//! every operation tests do on it (directors, real servers, services,
//! traffic, clean-up); the other topologies have their own modules.
//!
//! ```text
//!  <p>-client 192.168.1.50 ─┐
//!  <p>-director (rvsd on    ├── br0 in <p>-lan
//!    veth-dir, which the kernel keeps off; the kernel has
//!    rvs-lan 192.168.1.213/24, rvsd's exception path)
//!  <p>-rs1 192.168.1.220 ───┤   both real servers hold VIP 192.168.1.10/32
//!  <p>-rs2 192.168.1.193 ───┘   on lo, with arp_ignore=1, arp_announce=2
//! ```
//!
//! `cargo xtask demo`, `cargo xtask lab up|down` and the end-to-end tests
//! all build it through [`Lab`]. Every namespace is named `<prefix>-<role>`,
//! so [`teardown`] can remove a lab, and kill whatever runs in it, knowing
//! only the prefix.

#![forbid(unsafe_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const VIP: &str = "192.168.1.10";
pub const CLIENT: &str = "192.168.1.50";
pub const DIRECTOR: &str = "192.168.1.213";
/// A second director's address (the VRRP demo, [`Lab::add_director`]).
pub const DIRECTOR2: &str = "192.168.1.214";
pub const RS1: &str = "192.168.1.220";
pub const RS2: &str = "192.168.1.193";
/// Where the lab's rvsd serves metrics and its status page, inside the
/// director's namespace.
pub const METRICS_LISTEN: &str = "127.0.0.1:9105";

pub mod selftest;

/// Several directors behind an ECMP router.
pub mod cluster;

/// Failover and rejoin on the cluster lab, measured.
pub mod failover;

/// A Debian 12 root for the package test.
pub mod debian;

/// A host of the lab: its role (namespace suffix), interface and address.
struct Host {
    role: &'static str,
    iface: &'static str,
    bridge_port: &'static str,
    addr: Option<&'static str>,
}

const HOSTS: [Host; 4] = [
    Host {
        role: "client",
        iface: "veth-cli",
        bridge_port: "br-cli",
        addr: Some(CLIENT),
    },
    // The director's veth has no kernel address: rvsd owns 192.168.1.213
    // (and gives it to the kernel on rvs-lan, its exception path).
    Host {
        role: "director",
        iface: "veth-dir",
        bridge_port: "br-dir",
        addr: None,
    },
    Host {
        role: "rs1",
        iface: "veth-rs1",
        bridge_port: "br-rs1",
        addr: Some(RS1),
    },
    Host {
        role: "rs2",
        iface: "veth-rs2",
        bridge_port: "br-rs2",
        addr: Some(RS2),
    },
];

/// Runs a command; fails with its stderr when it exits non-zero.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Where rvsd and rvsadm are: `RVS_BIN_DIR`, or this workspace's
/// target/debug.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("RVS_BIN_DIR") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug")
}

/// How rvsd runs in the lab.
#[derive(Debug, Clone)]
pub struct RvsdOptions {
    pub worker_lcores: Vec<u32>,
    /// Empty polls before a nap; the lab keeps a 2-core machine usable.
    pub idle_empty_polls: u32,
    pub socket: PathBuf,
}

/// A running lab. Dropping it tears it down unless [`Lab::keep`] was called.
pub struct Lab {
    pub prefix: String,
    pub dir: PathBuf,
    children: Vec<Child>,
    socket: Option<PathBuf>,
    /// Index of rvsd in `children`.
    rvsd: Option<usize>,
    /// Processes started under a name ([`Lab::spawn_named`]), by index in
    /// `children`.
    named: std::collections::HashMap<String, usize>,
    keep: bool,
    /// rvsd's `[[port]]` (and `[[route]]`) sections for this topology.
    ports_toml: String,
}

/// The walkthrough's single director port.
const WALKTHROUGH_PORTS: &str = "[[port]]\nname = \"lan\"\ndevice = \"net_af_packet0,iface=veth-dir\"\naddress = \"192.168.1.213/24\"\n";

impl Lab {
    /// Builds the namespaces, the bridge and the hosts. A lab left over with
    /// the same prefix is removed first.
    pub fn create(prefix: &str, dir: &Path) -> Result<Lab> {
        if not_root() {
            bail!("the lab needs root (network namespaces); run as root");
        }
        teardown(prefix)?;
        fresh_dir(prefix, dir)?;
        let lab = Lab::empty(prefix, dir, WALKTHROUGH_PORTS);
        lab.build().inspect_err(|_| {
            let _ = teardown(prefix);
        })?;
        Ok(lab)
    }

    pub(crate) fn empty(prefix: &str, dir: &Path, ports_toml: &str) -> Lab {
        Lab {
            prefix: prefix.to_string(),
            dir: dir.to_path_buf(),
            children: Vec::new(),
            socket: None,
            rvsd: None,
            named: std::collections::HashMap::new(),
            keep: false,
            ports_toml: ports_toml.to_string(),
        }
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{}", self.prefix, role)
    }

    fn build(&self) -> Result<()> {
        let lan = self.ns("lan");
        for role in ["lan", "client", "director", "rs1", "rs2"] {
            self.add_namespace(role)?;
        }
        run("ip", &["-n", &lan, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &lan, "link", "set", "br0", "up"])?;
        for h in &HOSTS {
            let ns = self.ns(h.role);
            self.plug_into_bridge(h.role, h.iface, h.bridge_port)?;
            if let Some(a) = h.addr {
                run(
                    "ip",
                    &["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", h.iface],
                )?;
            }
        }
        self.keep_kernel_off("director", "veth-dir")?;
        for rs in ["rs1", "rs2"] {
            let ns = self.ns(rs);
            run(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
            )?;
            for k in ["all", "default"] {
                self.sysctl(&ns, &format!("net.ipv4.conf.{k}.arp_ignore=1"))?;
                self.sysctl(&ns, &format!("net.ipv4.conf.{k}.arp_announce=2"))?;
            }
        }
        Ok(())
    }

    /// Adds another director to the walkthrough's LAN: a namespace
    /// `<prefix>-<role>` whose interface `iface` is on the bridge, with no
    /// kernel address and the kernel kept off it, as the first director's
    /// (for a second rvsd; the VRRP demo).
    pub fn add_director(&self, role: &str, iface: &str) -> Result<()> {
        self.add_lan_host(role, iface)?;
        self.keep_kernel_off(role, iface)
    }

    /// A new namespace `<prefix>-<role>` (no IPv6, loopback up) whose
    /// interface `iface` is a port of the LAN's bridge, up, with no address.
    pub(crate) fn add_lan_host(&self, role: &str, iface: &str) -> Result<()> {
        let bridge_port = format!("br-{role}");
        let bridge_port = &bridge_port[..bridge_port.len().min(15)];
        self.add_namespace(role)?;
        self.plug_into_bridge(role, iface, bridge_port)
    }

    /// A veth pair from `role`'s namespace (`iface`, up) to the LAN's bridge
    /// (`bridge_port`, up, in br0).
    fn plug_into_bridge(&self, role: &str, iface: &str, bridge_port: &str) -> Result<()> {
        let (ns, lan) = (self.ns(role), self.ns("lan"));
        run(
            "ip",
            &[
                "link",
                "add",
                iface,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                bridge_port,
                "netns",
                &lan,
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                &lan,
                "link",
                "set",
                bridge_port,
                "master",
                "br0",
                "up",
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", iface, "up"])?;
        // af_packet must see finished checksums, so the hosts compute them
        // in software.
        run(
            "ip",
            &["netns", "exec", &ns, "ethtool", "-K", iface, "tx", "off"],
        )?;
        Ok(())
    }

    /// A new namespace `<prefix>-<role>` with no IPv6 and loopback up.
    pub(crate) fn add_namespace(&self, role: &str) -> Result<()> {
        let ns = self.ns(role);
        run("ip", &["netns", "add", &ns])?;
        // No IPv6 chatter (router solicitations) on the lab's links.
        for k in ["all", "default"] {
            self.sysctl(&ns, &format!("net.ipv6.conf.{k}.disable_ipv6=1"))?;
        }
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        self.bridges_stay_layer_two(&ns);
        Ok(())
    }

    /// With br_netfilter loaded (Docker loads it), a bridge hands IPv4 and
    /// IPv6 to netfilter, which reassembles fragments: a lab bridge would
    /// turn a client's fragments into one frame bigger than the link. Off
    /// in every lab namespace; the keys are missing without the module.
    pub(crate) fn bridges_stay_layer_two(&self, ns: &str) {
        for k in ["iptables", "ip6tables", "arptables"] {
            let _ = self.sysctl(ns, &format!("net.bridge.bridge-nf-call-{k}=0"));
        }
    }

    /// Keeps the kernel's own stack off an interface that rvsd reads
    /// through af_packet, so that the director's kernel sees the port's
    /// traffic once, through rvsd's kernel interface (the exception path),
    /// and not a second time straight from the wire: the interface becomes
    /// a port of a bridge that stays down. af_packet's sockets get each
    /// frame before the bridge drops it; sending is not affected. (This
    /// kernel has no tc actions, which would be the other way.)
    pub(crate) fn keep_kernel_off(&self, role: &str, iface: &str) -> Result<()> {
        let ns = self.ns(role);
        let bridge = format!("off-{iface}");
        let bridge = &bridge[..bridge.len().min(15)];
        run("ip", &["-n", &ns, "link", "add", bridge, "type", "bridge"])?;
        run("ip", &["-n", &ns, "link", "set", iface, "master", bridge])?;
        Ok(())
    }

    pub(crate) fn sysctl(&self, ns: &str, kv: &str) -> Result<()> {
        run("ip", &["netns", "exec", ns, "sysctl", "-qw", kv]).map(|_| ())
    }

    /// Keeps the lab (and what runs in it) when this value is dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Starts a long-running program in a host's namespace; it is stopped
    /// with the lab.
    pub fn spawn_daemon(&mut self, role: &str, args: &[&str]) -> Result<()> {
        let n = self.children.len();
        self.spawn_in(role, args, &format!("{role}-{n}.log"))
    }

    /// A UDP server in `role` on `bind:port` that answers every datagram
    /// with `answer` from the address it came to. One process, one socket:
    /// socat's forking UDP server let a child swallow the next client's
    /// datagram as a "wrong peer" when requests came close together.
    pub fn spawn_udp_responder(
        &mut self,
        role: &str,
        bind: &str,
        port: u16,
        answer: &str,
    ) -> Result<()> {
        let script = "import socket,sys\n\
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
s = socket.socket(fam, socket.SOCK_DGRAM)\n\
s.bind((sys.argv[1], int(sys.argv[2])))\n\
while True:\n    _, peer = s.recvfrom(65535)\n    s.sendto(sys.argv[3].encode() + b'\\n', peer)\n";
        self.spawn_daemon(
            role,
            &["python3", "-c", script, bind, &port.to_string(), answer],
        )?;
        self.wait_listening(role, "udp", port)
    }

    pub(crate) fn spawn_in(&mut self, role: &str, args: &[&str], log: &str) -> Result<()> {
        let ns = self.ns(role);
        let log = fs::File::create(self.dir.join(log))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} in {ns}", args[0]))?;
        self.children.push(child);
        Ok(())
    }

    /// Starts a long-running program in a host's namespace under `name`, so
    /// that it can be signalled and stopped on its own; its output goes to
    /// `<name>.log` in the lab directory. It is stopped with the lab.
    pub fn spawn_named(&mut self, name: &str, role: &str, args: &[&str]) -> Result<()> {
        if self.named.contains_key(name) {
            bail!("a process named {name} is already running in the lab");
        }
        self.spawn_in(role, args, &format!("{name}.log"))?;
        self.named.insert(name.to_string(), self.children.len() - 1);
        Ok(())
    }

    fn named_child(&mut self, name: &str) -> Result<&mut Child> {
        let i = *self
            .named
            .get(name)
            .with_context(|| format!("no process named {name} in the lab"))?;
        Ok(&mut self.children[i])
    }

    /// The process id of a named process (`ip netns exec` execs the
    /// program, so this is the program itself).
    pub fn pid_of(&mut self, name: &str) -> Result<u32> {
        Ok(self.named_child(name)?.id())
    }

    /// Sends `signal` ("HUP", "TERM", "KILL", ...) to a named process.
    pub fn signal(&mut self, name: &str, signal: &str) -> Result<()> {
        let pid = self.pid_of(name)?.to_string();
        run("kill", &[&format!("-{signal}"), &pid]).map(|_| ())
    }

    /// Whether a named process has exited, and how.
    pub fn try_wait(&mut self, name: &str) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.named_child(name)?.try_wait()?)
    }

    /// Waits up to `timeout` for a named process to exit, then forgets it.
    pub fn wait_exit(&mut self, name: &str, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait(name)? {
                self.named.remove(name);
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("{name} did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops a named process (SIGTERM, then SIGKILL after 5 s).
    pub fn stop_named(&mut self, name: &str) -> Result<std::process::ExitStatus> {
        self.signal(name, "TERM")?;
        match self.wait_exit(name, Duration::from_secs(5)) {
            Ok(st) => Ok(st),
            Err(_) => {
                self.signal(name, "KILL")?;
                self.wait_exit(name, Duration::from_secs(5))
            }
        }
    }

    /// The output of a named process so far.
    pub fn log_of(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops the HTTP server [`Lab::serve_http`] started on `port` in
    /// `role`, and waits until nothing listens there any more.
    pub fn stop_http(&mut self, role: &str, port: u16) -> Result<()> {
        self.stop_named(&format!("http-{role}-{port}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.exec(role, &["ss", "-Hltn", &format!("sport = :{port}")])?;
            if out.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("port {port} in {role} still listening 20 s after its server stopped");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where [`Lab::serve_http`] serves files from for `role` and `port`:
    /// tests add files there (a health page, say).
    pub fn www_root(&self, role: &str, port: u16) -> PathBuf {
        self.dir.join(format!("www-{role}-{port}"))
    }

    /// Serves `body` (as `/` and `/index.html`) over HTTP on `port` in a
    /// real server's namespace and waits until it answers.
    pub fn serve_http(&mut self, role: &str, port: u16, body: &str) -> Result<()> {
        self.serve(role, port, body, false)
    }

    /// The same over HTTPS, with a self-signed certificate made for the lab.
    pub fn serve_https(&mut self, role: &str, port: u16, body: &str) -> Result<()> {
        self.serve(role, port, body, true)
    }

    fn serve(&mut self, role: &str, port: u16, body: &str, tls: bool) -> Result<()> {
        let root = self.www_root(role, port);
        fs::create_dir_all(&root)?;
        fs::write(root.join("index.html"), format!("{body}\n"))?;
        let (p, r) = (port.to_string(), root.display().to_string());
        let httpd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/httpd.py");
        let httpd = httpd.display().to_string();
        let mut args = vec!["python3".to_string(), httpd, p, r];
        if tls {
            let (cert, key) = self.lab_certificate()?;
            args.push(cert.display().to_string());
            args.push(key.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_named(&format!("http-{role}-{port}"), role, &args)?;
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}/");
        self.wait_for(&format!("{scheme} server in {role}"), || {
            Ok(self
                .exec(role, &["curl", "-k", "-s", "-m", "1", &url])?
                .status
                .success())
        })
    }

    /// A self-signed certificate and key in the lab directory (made once).
    fn lab_certificate(&self) -> Result<(PathBuf, PathBuf)> {
        let (cert, key) = (self.dir.join("lab-cert.pem"), self.dir.join("lab-key.pem"));
        if !cert.exists() {
            let (c, k) = (cert.display().to_string(), key.display().to_string());
            run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=rvs-lab",
                    "-days",
                    "2",
                    "-keyout",
                    &k,
                    "-out",
                    &c,
                ],
            )?;
        }
        Ok((cert, key))
    }

    /// A TCP server on `port` in a real server's namespace that greets each
    /// connection with `greeting` and then echoes what it receives.
    pub fn serve_echo(&mut self, role: &str, port: u16, greeting: &str) -> Result<()> {
        let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
        let sys = format!("SYSTEM:echo {greeting}; exec cat");
        self.spawn_in(
            role,
            &["socat", &listen, &sys],
            &format!("echo-{role}-{port}.log"),
        )?;
        self.wait_listening(role, "tcp", port)
    }

    /// Waits until a socket listens on `port` (`proto` "tcp" or "udp") in a
    /// host's namespace.
    pub fn wait_listening(&self, role: &str, proto: &str, port: u16) -> Result<()> {
        let flags = if proto == "udp" { "-Hlun" } else { "-Hltn" };
        self.wait_for(&format!("{proto} port {port} in {role}"), || {
            let out = self.exec(role, &["ss", flags, &format!("sport = :{port}")])?;
            Ok(!out.stdout.is_empty())
        })
    }

    /// Polls `ready` every 50 ms for up to 20 s.
    pub fn wait_for(&self, what: &str, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if ready()? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{what} not ready after 20 s")
    }

    /// Writes rvsd's config for this lab and starts it in the director's
    /// namespace; returns when its control socket answers.
    pub fn start_rvsd(&mut self, opts: &RvsdOptions) -> Result<()> {
        let cfg = self.write_rvsd_config(opts)?;
        self.start_rvsd_with(&cfg, &opts.socket, &[])
    }

    /// Writes rvsd's config for this lab (`rvsd.toml` in the lab
    /// directory) and returns its path; tests add to it before starting.
    pub fn write_rvsd_config(&self, opts: &RvsdOptions) -> Result<PathBuf> {
        let cfg = self.dir.join("rvsd.toml");
        fs::write(
            &cfg,
            rvsd_config_text(&self.ns("director"), "auto", &self.ports_toml, opts, "", ""),
        )?;
        Ok(cfg)
    }

    /// Starts rvsd on the configuration file `config` (whose control socket
    /// is `socket`), with `env` added to its environment, in the director's
    /// namespace; returns when the socket answers.
    pub fn start_rvsd_with(
        &mut self,
        config: &Path,
        socket: &Path,
        env: &[(&str, &str)],
    ) -> Result<()> {
        self.spawn_rvsd(config, socket, env)?;
        self.wait_rvsd()
    }

    /// Starts rvsd as [`Lab::start_rvsd_with`] does, without waiting.
    pub fn spawn_rvsd(&mut self, config: &Path, socket: &Path, env: &[(&str, &str)]) -> Result<()> {
        let rvsd = bin_dir().join("rvsd");
        if !rvsd.exists() {
            bail!(
                "{} not found: build it first (cargo build -p rvsd -p rvsadm; cargo xtask test does)",
                rvsd.display()
            );
        }
        let (bin, c) = (rvsd.display().to_string(), config.display().to_string());
        let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args: Vec<&str> = vec!["env"];
        args.extend(vars.iter().map(String::as_str));
        args.extend([bin.as_str(), "--config", c.as_str()]);
        self.spawn_in("director", &args, "rvsd.log")?;
        self.rvsd = Some(self.children.len() - 1);
        self.socket = Some(socket.to_path_buf());
        Ok(())
    }

    /// Waits until the rvsd [`Lab::spawn_rvsd`] started answers on its
    /// control socket (30 s at most).
    pub fn wait_rvsd(&mut self) -> Result<()> {
        let i = self.rvsd.context("rvsd is not started")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.children[i].try_wait().ok().flatten() {
                bail!(
                    "rvsd exited ({status}) during start-up:\n{}",
                    self.rvsd_log()
                );
            }
            if self.rvsadm(&["-Ln"])?.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("rvsd did not answer within 30 s:\n{}", self.rvsd_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` ("HUP", "TERM", ...) to rvsd (`ip netns exec` and
    /// `env` exec it, so the child is rvsd itself).
    pub fn signal_rvsd(&self, signal: &str) -> Result<()> {
        let pid = self.rvsd_pid().context("rvsd is not started")?.to_string();
        run("kill", &[&format!("-{signal}"), &pid]).map(|_| ())
    }

    /// Stops rvsd with SIGTERM, as an init system would, and returns how it
    /// exited.
    pub fn stop_rvsd(&mut self) -> Result<std::process::ExitStatus> {
        let i = self.rvsd.take().context("rvsd is not started")?;
        let child = &mut self.children[i];
        // `ip netns exec` execs rvsd, so the child is rvsd itself.
        run("kill", &["-TERM", &child.id().to_string()])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("rvsd did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running rvsd's process id (`ip netns exec` execs it).
    pub fn rvsd_pid(&self) -> Option<u32> {
        self.rvsd.map(|i| self.children[i].id())
    }

    pub fn rvsd_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.join("rvsd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Runs rvsadm against this lab's rvsd.
    pub fn rvsadm(&self, args: &[&str]) -> Result<Output> {
        let socket = self.socket.as_ref().context("rvsd is not started")?;
        Command::new(bin_dir().join("rvsadm"))
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running rvsadm")
    }

    /// Runs rvsadm with its arguments in one string, which must succeed;
    /// returns its stdout.
    pub fn rvsadm_ok(&self, line: &str) -> Result<String> {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = self.rvsadm(&args)?;
        if !out.status.success() {
            bail!(
                "rvsadm {line} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command in a host's namespace.
    pub fn exec(&self, role: &str, args: &[&str]) -> Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} in {}", args[0], self.ns(role)))
    }

    /// One UDP request ("ask") from `role` to `to`, optionally from a fixed
    /// source port; the first line of the answer, or "" when none came
    /// within `timeout`. (socat's answer window after its stdin closes is
    /// half a second: a loaded machine missed answers that came later.)
    pub fn udp_ask(
        &self,
        role: &str,
        to: std::net::SocketAddr,
        source_port: Option<u16>,
        timeout: std::time::Duration,
    ) -> Result<String> {
        let script = "import socket,sys\n\
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\n\
s = socket.socket(fam, socket.SOCK_DGRAM)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
if int(sys.argv[3]): s.bind(('', int(sys.argv[3])))\n\
s.settimeout(float(sys.argv[4]))\n\
s.connect((sys.argv[1], int(sys.argv[2])))\n\
s.send(b'ask\\n')\n\
try:\n    print(s.recv(65535).decode(errors='replace').splitlines()[0])\n\
except (socket.timeout, IndexError):\n    pass\n";
        let out = self.exec(
            role,
            &[
                "python3",
                "-c",
                script,
                &to.ip().to_string(),
                &to.port().to_string(),
                &source_port.unwrap_or(0).to_string(),
                &timeout.as_secs_f64().to_string(),
            ],
        )?;
        if !out.status.success() {
            anyhow::bail!(
                "udp_ask in {role}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// A Prometheus scrape of rvsd's metrics endpoint from `role`'s
    /// namespace: series (with labels) → value.
    pub fn scrape_metrics(&self, role: &str) -> Result<std::collections::HashMap<String, f64>> {
        let url = format!("http://{METRICS_LISTEN}/metrics");
        let out = self.exec(role, &["curl", "-s", "-S", "-m", "5", &url])?;
        if !out.status.success() {
            bail!(
                "scraping {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect())
    }

    /// A command in a host's namespace with its stdin and stdout piped, for
    /// long-lived connections.
    pub fn spawn_piped(&self, role: &str, args: &[&str]) -> Result<Child> {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} in {}", args[0], self.ns(role)))
    }

    /// `curl` from the client; the body, trimmed.
    pub fn curl(&self, url: &str) -> Result<String> {
        let out = self.exec("client", &["curl", "-s", "-S", "-m", "5", url])?;
        if !out.status.success() {
            bail!(
                "curl {url} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops everything and removes the namespaces.
    pub fn down(&mut self) -> Result<()> {
        let r = teardown(&self.prefix);
        for c in &mut self.children {
            let pid = c.id();
            let _ = c.kill();
            let _ = c.wait();
            // A killed rvsd cannot remove its EAL runtime folder (prefix
            // `rvs<pid>`; `dpdk::Eal::remove_own_runtime_dir`): remove it
            // here. Other children have none.
            let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/rvs{pid}"));
        }
        self.children.clear();
        self.named.clear();
        r
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = self.down() {
                eprintln!("lab teardown: {e:#}");
            }
            if self.dir == test_dir(&self.prefix) && std::env::var_os("RVS_KEEP_LAB_DIR").is_none()
            {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// Makes the lab's folder; a test's scratch folder ([`test_dir`]) left by
/// an earlier run starts empty.
pub(crate) fn fresh_dir(prefix: &str, dir: &Path) -> Result<()> {
    if dir == test_dir(prefix) && dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// rvsd's configuration for a lab director in namespace `ns`, with the
/// `[[port]]` sections `ports` and `[dpdk] hugepages = hugepages`;
/// `sections` come before `[control]`, and `control_keys` go into it.
pub(crate) fn rvsd_config_text(
    ns: &str,
    hugepages: &str,
    ports: &str,
    opts: &RvsdOptions,
    sections: &str,
    control_keys: &str,
) -> String {
    let lcores: Vec<String> = opts.worker_lcores.iter().map(|l| l.to_string()).collect();
    format!(
        "# Written by the lab for namespace {ns}.\n\
[dpdk]\nhugepages = \"{hugepages}\"\nmemory_mb = 256\nmbufs = 8191\n\n\
{ports}\n\
[workers]\nlcores = [{l}]\nidle_empty_polls = {e}\nidle_sleep_us = 100\n\n\
{sections}\
[control]\nsocket = \"{s}\"\n{control_keys}\n\
[metrics]\nlisten = \"{m}\"\n",
        m = METRICS_LISTEN,
        l = lcores.join(", "),
        e = opts.idle_empty_polls,
        s = opts.socket.display()
    )
}

fn not_root() -> bool {
    // /proc/self/status "Uid:" real uid; avoids a libc dependency.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u != "0"))
        })
        .unwrap_or(true)
}

/// The namespaces of the lab with this prefix.
pub fn namespaces(prefix: &str) -> Result<Vec<String>> {
    namespaces_starting(&format!("{prefix}-"))
}

/// Every namespace whose name starts with `start` (the labs of all the
/// end-to-end tests: [`test_prefix`]).
pub fn namespaces_starting(start: &str) -> Result<Vec<String>> {
    let out = run("ip", &["netns", "list"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(start))
        .map(String::from)
        .collect())
}

/// The scratch folder of the lab with this prefix (rvsd's configuration,
/// socket and logs, the servers' files): the tests' labs live here, and a
/// lab removes it when it goes, unless `RVS_KEEP_LAB_DIR` is set (to read
/// the logs of a failed test).
pub fn test_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rvs-lab-{prefix}"))
}

/// What every end-to-end test's lab prefix starts with: `RVS_TEST_PREFIX`,
/// or "rvt". Two test runs on one machine (two checkouts) keep apart by
/// setting different ones; `cargo xtask test` removes what its own run left.
pub fn test_prefix() -> String {
    std::env::var("RVS_TEST_PREFIX").unwrap_or_else(|_| "rvt".to_string())
}

/// Removes the lab with this prefix: terminates the processes in its
/// namespaces (TERM, then KILL after 5 s) and deletes the namespaces.
pub fn teardown(prefix: &str) -> Result<()> {
    let nss = namespaces(prefix)?;
    let mut pids: Vec<String> = Vec::new();
    for ns in &nss {
        if let Ok(out) = run("ip", &["netns", "pids", ns]) {
            pids.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(String::from),
            );
        }
    }
    if !pids.is_empty() {
        let mut args = vec!["-TERM"];
        args.extend(pids.iter().map(|s| s.as_str()));
        let _ = Command::new("kill")
            .args(&args)
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && pids.iter().any(|p| alive(p)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<&str> = pids
            .iter()
            .filter(|p| alive(p))
            .map(|s| s.as_str())
            .collect();
        if !left.is_empty() {
            let mut args = vec!["-KILL"];
            args.extend(left);
            let _ = Command::new("kill")
                .args(&args)
                .stderr(Stdio::null())
                .status();
        }
    }
    for ns in &nss {
        run("ip", &["netns", "del", ns])?;
    }
    Ok(())
}

/// A process that has exited but not been reaped (a zombie) counts as gone.
fn alive(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
