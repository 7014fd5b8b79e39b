//! The cluster lab: several directors behind a router that spreads the VIP's
//! flows over them by ECMP, as Maglev and Katran deploy.
//!
//! Why this file is long (about 680 lines): one topology (router, directors,
//! real servers, BIRD with BFD, rvs-announce) and every operation its tests
//! do on it.
//!
//! ```text
//!  <p>-client 192.168.2.50
//!       │ veth-cli ── veth-edge 192.168.2.1
//!  <p>-router  BIRD 2, AS 65000; learns VIP/32 from every director and
//!       │      installs it with one next hop per director (merge paths,
//!       │      fib_multipath_hash_policy=1: the L4 hash picks the director)
//!       │ veth-rtr 192.168.1.1
//!  ─────┴──────── br0 in <p>-lan ──┬───────────────┬──────────────┐
//!  <p>-dir1 .. <p>-dirN                          <p>-rs1 .. <p>-rsM
//!    rvsd on veth-dir (kernel kept off), port     192.168.1.221..
//!    address 192.168.1.213.. ; its kernel         VIP 10.99.0.10/32 on lo,
//!    interface rvs-lan carries BIRD 2 (AS 65001,  arp_ignore/announce,
//!    BGP + BFD to the router), which announces    default route via the
//!    what the director's announcer writes         router (DR: replies go
//!                                                 straight to the client)
//! ```
//!
//! The real servers are shared: every director forwards to all of them by
//! DR. With [`ClusterOptions::tunnel`] they sit instead on a network of
//! their own behind the router (192.168.3.0/24, `<p>-rs1..` on `br1`),
//! reached by IPIP tunnels routed through it: each decapsulates with
//! crates/lab/tools/tun-decap.py (this machine's kernel has no ipip) and
//! answers the client through the router. `cargo xtask lab up --cluster N` and the tests build it through
//! [`Cluster`]; every namespace is `<prefix>-<role>`, so [`crate::teardown`]
//! removes it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{bin_dir, run, rvsd_config_text, Lab, RvsdOptions};

/// The cluster's VIP: outside every lab subnet, reached only through the
/// routes the directors announce.
pub const CLUSTER_VIP: &str = "10.99.0.10";
pub const CLUSTER_CLIENT: &str = "192.168.2.50";
/// The router on the clients' side and on the directors' LAN.
pub const ROUTER_EDGE: &str = "192.168.2.1";
pub const ROUTER_LAN: &str = "192.168.1.1";
pub const ROUTER_AS: u32 = 65000;
/// Every director speaks for the same AS, so that the router sees equal
/// routes and merges them into one multipath route.
pub const DIRECTOR_AS: u32 = 65001;
/// BFD's interval on both ends; three missed packets take a session down.
pub const BFD_INTERVAL_MS: u32 = 100;

/// Director `i`'s port address (1-based): 192.168.1.213, .214, ...
pub fn director_addr(i: usize) -> String {
    format!("192.168.1.{}", 212 + i)
}

/// Real server `i`'s address (1-based): 192.168.1.221, .222, ...
pub fn real_server_addr(i: usize) -> String {
    format!("192.168.1.{}", 220 + i)
}

/// The tunnelled real servers' network, behind the router, and the
/// router's address on it.
pub const FAR_NET: &str = "192.168.3.0/24";
pub const ROUTER_FAR: &str = "192.168.3.1";

/// Tunnelled real server `i`'s address (1-based): 192.168.3.221, ...
pub fn tunnel_server_addr(i: usize) -> String {
    format!("192.168.3.{}", 220 + i)
}

/// What to build.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// 2 to 4.
    pub directors: usize,
    /// 1 to 8.
    pub real_servers: usize,
    pub worker_lcores: Vec<u32>,
    pub idle_empty_polls: u32,
    /// `[connections] sloppy_tcp`: a director that did not see a flow's
    /// SYN (ECMP moved the flow to it) still takes its packets.
    pub sloppy_tcp: bool,
    /// The real servers are reached by IPIP tunnels, routed, not by DR on
    /// the LAN.
    pub tunnel: bool,
}

impl ClusterOptions {
    pub fn new(directors: usize, real_servers: usize) -> ClusterOptions {
        ClusterOptions {
            directors,
            real_servers,
            worker_lcores: vec![1],
            idle_empty_polls: 256,
            sloppy_tcp: true,
            tunnel: false,
        }
    }
}

/// A running cluster lab. Dropping it tears it down (through its [`Lab`])
/// unless [`Lab::keep`] was called on `lab`.
pub struct Cluster {
    /// The processes and namespaces; its `exec`, `spawn_named`, `wait_for`
    /// and friends work on the cluster's roles.
    pub lab: Lab,
    pub opts: ClusterOptions,
}

impl Cluster {
    /// Builds the namespaces, links and addresses, starts the router's
    /// BIRD and every director's BIRD (which has nothing to announce until
    /// [`Cluster::announce`] or an announcer writes its routes). rvsd is
    /// not started: [`Cluster::start_rvsd`]. A lab left over with the same
    /// prefix is removed first.
    pub fn create(prefix: &str, dir: &Path, opts: ClusterOptions) -> Result<Cluster> {
        if !(2..=4).contains(&opts.directors) {
            bail!(
                "a cluster has 2 to 4 directors, not {}: pick --cluster 2, 3 or 4",
                opts.directors
            );
        }
        if !(1..=8).contains(&opts.real_servers) {
            bail!(
                "a cluster has 1 to 8 real servers, not {}",
                opts.real_servers
            );
        }
        if crate::not_root() {
            bail!("the lab needs root (network namespaces); run as root");
        }
        crate::teardown(prefix)?;
        crate::fresh_dir(prefix, dir)?;
        let mut cluster = Cluster {
            lab: Lab::empty(prefix, dir, ""),
            opts,
        };
        let built = cluster
            .build()
            .and_then(|_| cluster.start_decapsulators())
            .and_then(|_| cluster.start_birds());
        if let Err(e) = built {
            // Drop tears the namespaces down and stops what was started.
            drop(cluster);
            return Err(e);
        }
        Ok(cluster)
    }

    pub fn director_role(i: usize) -> String {
        format!("dir{i}")
    }

    pub fn real_server_role(i: usize) -> String {
        format!("rs{i}")
    }

    fn build(&self) -> Result<()> {
        let lab = &self.lab;
        lab.add_namespace("lan")?;
        let lan = lab.ns("lan");
        run("ip", &["-n", &lan, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &lan, "link", "set", "br0", "up"])?;

        // The router: one leg on the LAN, one towards the client.
        lab.add_lan_host("router", "veth-rtr")?;
        let router = lab.ns("router");
        addr(&router, &format!("{ROUTER_LAN}/24"), "veth-rtr")?;
        lab.add_namespace("client")?;
        let client = lab.ns("client");
        run(
            "ip",
            &[
                "link",
                "add",
                "veth-cli",
                "netns",
                &client,
                "type",
                "veth",
                "peer",
                "name",
                "veth-edge",
                "netns",
                &router,
            ],
        )?;
        for (ns, ifc) in [(&client, "veth-cli"), (&router, "veth-edge")] {
            run("ip", &["-n", ns, "link", "set", ifc, "up"])?;
            run(
                "ip",
                &["netns", "exec", ns, "ethtool", "-K", ifc, "tx", "off"],
            )?;
        }
        addr(&router, &format!("{ROUTER_EDGE}/24"), "veth-edge")?;
        addr(&client, &format!("{CLUSTER_CLIENT}/24"), "veth-cli")?;
        run(
            "ip",
            &["-n", &client, "route", "add", "default", "via", ROUTER_EDGE],
        )?;
        for kv in [
            "net.ipv4.ip_forward=1",
            // The L4 hash: flows of one client spread over the directors.
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            lab.sysctl(&router, kv)?;
        }

        for i in 1..=self.opts.directors {
            let role = Self::director_role(i);
            lab.add_lan_host(&role, "veth-dir")?;
            lab.keep_kernel_off(&role, "veth-dir")?;
            // No services from an earlier lab in the same directory.
            fs::write(self.rules_file(i), "")?;
        }
        if self.opts.tunnel {
            return self.build_far_network();
        }
        for i in 1..=self.opts.real_servers {
            let role = Self::real_server_role(i);
            lab.add_lan_host(&role, "veth-rs")?;
            let ns = lab.ns(&role);
            addr(&ns, &format!("{}/24", real_server_addr(i)), "veth-rs")?;
            addr(&ns, &format!("{CLUSTER_VIP}/32"), "lo")?;
            for k in ["all", "default"] {
                lab.sysctl(&ns, &format!("net.ipv4.conf.{k}.arp_ignore=1"))?;
                lab.sysctl(&ns, &format!("net.ipv4.conf.{k}.arp_announce=2"))?;
            }
            run(
                "ip",
                &["-n", &ns, "route", "add", "default", "via", ROUTER_LAN],
            )?;
        }
        Ok(())
    }

    /// The tunnelled real servers: a second bridge (`br1` in `<p>-lan`)
    /// with the router's third leg and the servers, each holding the VIP
    /// and decapsulating IPIP in userspace into its own stack.
    fn build_far_network(&self) -> Result<()> {
        let lab = &self.lab;
        let lan = lab.ns("lan");
        run("ip", &["-n", &lan, "link", "add", "br1", "type", "bridge"])?;
        run("ip", &["-n", &lan, "link", "set", "br1", "up"])?;
        let router = lab.ns("router");
        let mut legs = vec![(
            "router".to_string(),
            "veth-far".to_string(),
            "br-far".to_string(),
        )];
        for i in 1..=self.opts.real_servers {
            let role = Self::real_server_role(i);
            lab.add_namespace(&role)?;
            legs.push((role, "veth-rs".into(), format!("br-trs{i}")));
        }
        for (role, ifc, port) in &legs {
            let ns = lab.ns(role);
            run(
                "ip",
                &[
                    "link", "add", ifc, "netns", &ns, "type", "veth", "peer", "name", port,
                    "netns", &lan,
                ],
            )?;
            run(
                "ip",
                &["-n", &lan, "link", "set", port, "master", "br1", "up"],
            )?;
            run("ip", &["-n", &ns, "link", "set", ifc, "up"])?;
            run(
                "ip",
                &["netns", "exec", &ns, "ethtool", "-K", ifc, "tx", "off"],
            )?;
        }
        addr(&router, &format!("{ROUTER_FAR}/24"), "veth-far")?;
        lab.sysctl(&router, "net.ipv4.conf.veth-far.rp_filter=0")?;
        for i in 1..=self.opts.real_servers {
            let role = Self::real_server_role(i);
            let ns = lab.ns(&role);
            addr(&ns, &format!("{}/24", tunnel_server_addr(i)), "veth-rs")?;
            addr(&ns, &format!("{CLUSTER_VIP}/32"), "lo")?;
            for k in ["all", "default"] {
                lab.sysctl(&ns, &format!("net.ipv4.conf.{k}.arp_ignore=1"))?;
                lab.sysctl(&ns, &format!("net.ipv4.conf.{k}.arp_announce=2"))?;
                lab.sysctl(&ns, &format!("net.ipv4.conf.{k}.rp_filter=0"))?;
            }
            run(
                "ip",
                &["-n", &ns, "route", "add", "default", "via", ROUTER_FAR],
            )?;
        }
        Ok(())
    }

    /// The tunnelled servers' decapsulators (processes of the lab).
    fn start_decapsulators(&mut self) -> Result<()> {
        if !self.opts.tunnel {
            return Ok(());
        }
        let decap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tun-decap.py");
        for i in 1..=self.opts.real_servers {
            let role = Self::real_server_role(i);
            let ns = self.lab.ns(&role);
            let name = format!("decap-{role}.log");
            self.lab.spawn_in(
                &role,
                &["python3", &decap.display().to_string(), "ipip", "rvsdecap"],
                &name,
            )?;
            let log = self.lab.dir.join(&name);
            self.lab.wait_for("the tunnel decapsulator", || {
                Ok(fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("ready"))
            })?;
            run("ip", &["-n", &ns, "link", "set", "rvsdecap", "up"])?;
            self.lab.sysctl(&ns, "net.ipv4.conf.rvsdecap.rp_filter=0")?;
        }
        Ok(())
    }

    /// The router's BIRD socket, and director `i`'s (0 for the router).
    pub fn bird_socket(&self, i: usize) -> PathBuf {
        match i {
            0 => self.lab.dir.join("bird-router.ctl"),
            i => self.lab.dir.join(format!("bird-dir{i}.ctl")),
        }
    }

    /// The file director `i`'s BIRD includes in its static protocol: one
    /// `route <vip>/32 blackhole;` per VIP it announces.
    pub fn routes_file(&self, i: usize) -> PathBuf {
        self.lab.dir.join(format!("vips-dir{i}.conf"))
    }

    fn start_birds(&mut self) -> Result<()> {
        let bfd = format!(
            "protocol bfd {{\n  interface \"*\" {{ min rx interval {BFD_INTERVAL_MS} ms; \
min tx interval {BFD_INTERVAL_MS} ms; multiplier 3; }};\n}}\n"
        );
        // Hold time 3 s (keepalives every second) backs BFD up.
        let session = "hold time 3;\n  keepalive time 1;\n  connect retry time 1;\n  \
error wait time 1, 5;\n  bfd on;\n";
        let mut router = format!(
            "# Written by the rvs cluster lab.\nrouter id {ROUTER_LAN};\n\
protocol device {{ scan time 1; }}\n\
protocol kernel {{\n  ipv4 {{ import none; export where source = RTS_BGP; }};\n  \
merge paths on;\n}}\n{bfd}"
        );
        for i in 1..=self.opts.directors {
            router.push_str(&format!(
                "protocol bgp dir{i} {{\n  local {ROUTER_LAN} as {ROUTER_AS};\n  \
neighbor {} as {DIRECTOR_AS};\n  {session}  ipv4 {{ import all; export none; }};\n}}\n",
                director_addr(i)
            ));
        }
        self.start_bird(0, "router", &router)?;
        for i in 1..=self.opts.directors {
            let routes = self.routes_file(i);
            fs::write(&routes, "")?;
            let conf = format!(
                "# Written by the rvs cluster lab: director {i}'s BGP speaker on rvsd's\n\
# kernel interface. The announcer writes {r}.\nrouter id {me};\n\
protocol device {{ scan time 1; }}\n{bfd}\
protocol static vips {{\n  ipv4;\n  include \"{r}\";\n}}\n\
protocol bgp uplink {{\n  local {me} as {DIRECTOR_AS};\n  neighbor {ROUTER_LAN} as {ROUTER_AS};\n  \
{session}  ipv4 {{ import none; export where proto = \"vips\"; }};\n}}\n",
                me = director_addr(i),
                r = routes.display()
            );
            self.start_bird(i, &Self::director_role(i), &conf)?;
        }
        Ok(())
    }

    fn start_bird(&mut self, i: usize, role: &str, conf: &str) -> Result<()> {
        let name = format!("bird-{role}");
        let path = self.lab.dir.join(format!("{name}.conf"));
        fs::write(&path, conf)?;
        let ctl = self.bird_socket(i);
        let (c, s) = (path.display().to_string(), ctl.display().to_string());
        self.lab
            .spawn_named(&name, role, &["bird", "-f", "-c", &c, "-s", &s])?;
        let started = self.lab.wait_for(&format!("BIRD in {role}"), || {
            Ok(self.birdc(i, "show status")?.contains("Daemon is up"))
        });
        started.with_context(|| format!("BIRD's log: {}", self.lab.log_of(&name)))
    }

    /// Runs `birdc` on the router's (0) or director `i`'s BIRD; its output.
    pub fn birdc(&self, i: usize, cmd: &str) -> Result<String> {
        let role = match i {
            0 => "router".to_string(),
            i => Self::director_role(i),
        };
        let ctl = self.bird_socket(i).display().to_string();
        let mut args = vec!["birdc", "-s", &ctl];
        args.extend(cmd.split_whitespace());
        let out = self.lab.exec(&role, &args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Makes director `i` announce `vips` (none: withdraw all) by hand, as
    /// the announcer does: rewrite the routes file, reconfigure BIRD.
    pub fn announce(&self, i: usize, vips: &[&str]) -> Result<()> {
        let text: String = vips
            .iter()
            .map(|v| format!("route {v}/32 blackhole;\n"))
            .collect();
        fs::write(self.routes_file(i), text)?;
        let out = self.birdc(i, "configure")?;
        if !out.contains("Reconfigured") && !out.contains("Reconfiguration in progress") {
            bail!("BIRD in director {i} refused its new routes: {out}");
        }
        Ok(())
    }

    /// The router's next hops for `vip` in its kernel (empty: no route).
    pub fn router_next_hops(&self, vip: &str) -> Result<Vec<String>> {
        let out = self
            .lab
            .exec("router", &["ip", "-4", "route", "show", vip])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut hops: Vec<String> = words
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        hops.sort();
        Ok(hops)
    }

    /// Waits up to `limit` until the router's route to `vip` goes through
    /// exactly the directors `directors` (1-based; empty: no route); how
    /// long that took.
    pub fn wait_next_hops(
        &self,
        vip: &str,
        directors: &[usize],
        limit: Duration,
    ) -> Result<Duration> {
        let mut want: Vec<String> = directors.iter().map(|&i| director_addr(i)).collect();
        want.sort();
        let start = Instant::now();
        loop {
            let hops = self.router_next_hops(vip)?;
            if hops == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!(
                    "the router's route to {vip} goes via {hops:?}, not {want:?}, after {limit:?}\n\
router's BGP: {}",
                    self.birdc(0, "show protocols").unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rvsd_socket(&self, i: usize) -> PathBuf {
        self.lab.dir.join(format!("rvsd-dir{i}.sock"))
    }

    /// Director `i`'s rules file (`rvsadm -S` format), which its rvsd loads
    /// at start: a restarted director gets the same services, with the real
    /// servers in the same order.
    pub fn rules_file(&self, i: usize) -> PathBuf {
        self.lab.dir.join(format!("rules-dir{i}"))
    }

    /// Writes director `i`'s configuration (`rvsd-dir<i>.toml`); returns
    /// its path.
    pub fn write_rvsd_config(&self, i: usize) -> Result<PathBuf> {
        let role = Self::director_role(i);
        let mut ports = format!(
            "[[port]]\nname = \"lan\"\ndevice = \"net_af_packet0,iface=veth-dir\"\n\
address = \"{}/24\"\n",
            director_addr(i)
        );
        if self.opts.tunnel {
            // The tunnelled servers, through the router.
            ports.push_str(&format!(
                "\n[[route]]\nto = \"{FAR_NET}\"\nvia = \"{ROUTER_LAN}\"\n"
            ));
        }
        let rules = self.rules_file(i);
        let opts = RvsdOptions {
            worker_lcores: self.opts.worker_lcores.clone(),
            idle_empty_polls: self.opts.idle_empty_polls,
            socket: self.rvsd_socket(i),
        };
        // Ordinary pages: several rvsds, and other labs, need not share the
        // machine's few hugepages.
        let text = rvsd_config_text(
            &self.lab.ns(&role),
            "off",
            &ports,
            &opts,
            &format!("[connections]\nsloppy_tcp = {}\n\n", self.opts.sloppy_tcp),
            &format!("rules = \"{}\"\n", rules.display()),
        );
        let path = self.lab.dir.join(format!("rvsd-{role}.toml"));
        fs::write(&path, text)?;
        Ok(path)
    }

    /// The lab's name for director `i`'s rvsd ([`Lab::spawn_named`]).
    pub fn rvsd_name(i: usize) -> String {
        format!("rvsd-dir{i}")
    }

    /// Starts director `i`'s rvsd (writing its configuration) and waits
    /// until its control socket answers.
    pub fn start_rvsd(&mut self, i: usize) -> Result<()> {
        let rvsd = bin_dir().join("rvsd");
        if !rvsd.exists() {
            bail!(
                "{} not found: build it first (cargo build -p rvsd -p rvsadm)",
                rvsd.display()
            );
        }
        let cfg = self.write_rvsd_config(i)?;
        let (bin, c) = (rvsd.display().to_string(), cfg.display().to_string());
        let role = Self::director_role(i);
        let name = Self::rvsd_name(i);
        self.lab
            .spawn_named(&name, &role, &[&bin, "--config", &c])?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.lab.try_wait(&name)? {
                bail!(
                    "director {i}'s rvsd exited ({st}) during start-up:\n{}",
                    self.lab.log_of(&name)
                );
            }
            if self.rvsadm(i, &["-Ln"])?.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "director {i}'s rvsd did not answer within 30 s:\n{}",
                    self.lab.log_of(&name)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The lab's name for director `i`'s rvs-announce.
    pub fn announcer_name(i: usize) -> String {
        format!("announce-dir{i}")
    }

    /// Starts rvs-announce in director `i`: it announces the VIPs rvsd can
    /// serve through the director's BIRD, polling every 100 ms.
    pub fn start_announcer(&mut self, i: usize) -> Result<()> {
        let bin = bin_dir().join("rvs-announce");
        if !bin.exists() {
            bail!(
                "{} not found: build it first (cargo build -p rvs-announce)",
                bin.display()
            );
        }
        let args = [
            bin.display().to_string(),
            "--socket".into(),
            self.rvsd_socket(i).display().to_string(),
            "--bird-socket".into(),
            self.bird_socket(i).display().to_string(),
            "--routes-file".into(),
            self.routes_file(i).display().to_string(),
            "--interval-ms".into(),
            "100".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let role = Self::director_role(i);
        self.lab.spawn_named(&Self::announcer_name(i), &role, &args)
    }

    /// Stops director `i`'s rvsd with SIGTERM, as an init system would.
    pub fn stop_rvsd(&mut self, i: usize) -> Result<std::process::ExitStatus> {
        self.lab.stop_named(&Self::rvsd_name(i))
    }

    /// Whether director `i`'s BGP session with the router is up, as the
    /// router sees it.
    pub fn bgp_established(&self, i: usize) -> Result<bool> {
        Ok(self
            .birdc(0, &format!("show protocols dir{i}"))?
            .contains("Established"))
    }

    /// Kills director `i`'s rvsd with SIGKILL, as a crash would, and waits
    /// until it is gone.
    pub fn kill_rvsd(&mut self, i: usize) -> Result<()> {
        let name = Self::rvsd_name(i);
        self.lab.signal(&name, "KILL")?;
        self.lab.wait_exit(&name, Duration::from_secs(10))?;
        Ok(())
    }

    /// Runs rvsadm against director `i`'s rvsd.
    pub fn rvsadm(&self, i: usize, args: &[&str]) -> Result<Output> {
        std::process::Command::new(bin_dir().join("rvsadm"))
            .arg("--socket")
            .arg(self.rvsd_socket(i))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .context("running rvsadm")
    }

    /// rvsadm with its arguments in one string, which must succeed; stdout.
    pub fn rvsadm_ok(&self, i: usize, line: &str) -> Result<String> {
        let args: Vec<&str> = line.split_whitespace().collect();
        let out = self.rvsadm(i, &args)?;
        if !out.status.success() {
            bail!(
                "rvsadm {line} on director {i} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Gives every director the same service: CLUSTER_VIP:`port`/TCP with
    /// scheduler `scheduler` (ipvsadm's words after `-s`, flags included:
    /// "mh -b mh-port") and every real server by DR, added in the same
    /// order everywhere (mh and sh tables depend on it, as the kernel's
    /// do), and writes it to each rules file so that a restarted rvsd
    /// loads it again. Directors whose rvsd is not running get the rules
    /// file only.
    pub fn configure_service(&self, scheduler: &str, port: u16) -> Result<()> {
        let mut rules = format!("-A -t {CLUSTER_VIP}:{port} -s {scheduler}\n");
        for r in 1..=self.opts.real_servers {
            let (addr, method) = if self.opts.tunnel {
                (tunnel_server_addr(r), "-i")
            } else {
                (real_server_addr(r), "-g")
            };
            rules.push_str(&format!(
                "-a -t {CLUSTER_VIP}:{port} -r {addr}:{port} {method} -w 1\n"
            ));
        }
        for i in 1..=self.opts.directors {
            fs::write(self.rules_file(i), &rules)?;
            if self.rvsadm(i, &["-Ln"])?.status.success() {
                for line in rules.lines() {
                    self.rvsadm_ok(i, line)?;
                }
            }
        }
        Ok(())
    }

    /// New connections director `i` has scheduled (`rvsadm --counters`).
    pub fn new_connections(&self, i: usize) -> Result<u64> {
        let out = self.rvsadm_ok(i, "--counters")?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("new_connections")).then(|| f.next()?.parse::<u64>().ok())?
            })
            .sum())
    }
}

fn addr(ns: &str, cidr: &str, dev: &str) -> Result<()> {
    run("ip", &["-n", ns, "addr", "add", cidr, "dev", dev]).map(|_| ())
}
