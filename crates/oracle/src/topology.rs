//! The hosts of a scenario, as network namespaces on veth pairs and bridges.
//!
//! ```text
//! lan (DR, TUN):   <p>-client ─┐                 real servers hold every
//!                  <p>-dir ────┼─ br0 in <p>-sw   VIP on lo (arp_ignore=1,
//!                  <p>-rs1..4 ─┘                 arp_announce=2) and
//!                                                decapsulate ipip/GUE/GRE
//! nat:             <p>-client ── br0 ── eth0 <p>-dir eth1 ── br1 ── <p>-rs1..4
//!                  192.168.1.x          .213        10.10.0.1       10.10.0.2..
//! ```
//!
//! Both directors get the same hosts, MAC addresses included; only the
//! director's namespace differs: kernel IPVS needs its addresses (and the
//! VIPs) on the interfaces, rvsd owns the bare interfaces through
//! `net_af_packet`.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::netns::{ip_batch, Netns};
use crate::scenario::{Scenario, TopologyKind, Vars};

/// Client addresses: 192.168.1.100 and up.
pub const CLIENTS: u8 = 64;
pub const VIPS: [&str; 3] = ["192.168.1.10", "192.168.1.11", "192.168.1.12"];
pub const DIRECTOR: &str = "192.168.1.213";
pub const DIRECTOR_SERVER_SIDE: &str = "10.10.0.1";
/// A client address no kernel owns: scripted packets come from it, and the
/// director reaches it through a static neighbour entry.
pub const PHANTOM: &str = "192.168.1.77";
const LAN_SERVERS: [&str; 4] = [
    "192.168.1.220",
    "192.168.1.193",
    "192.168.1.221",
    "192.168.1.222",
];
const NAT_SERVERS: [&str; 4] = ["10.10.0.2", "10.10.0.3", "10.10.0.4", "10.10.0.5"];
/// The GUE port the real servers decapsulate on.
pub const GUE_PORT: u16 = 6080;

/// A MAC address in the locally administered range, the same in every run.
pub fn mac(host: u8, port: u8) -> String {
    format!("02:00:00:00:{host:02x}:{port:02x}")
}

pub const CLIENT_MAC_HOST: u8 = 0x50;
pub const DIRECTOR_MAC_HOST: u8 = 0xd1;

pub struct Topology {
    pub kind: TopologyKind,
    pub prefix: String,
    pub switch: Netns,
    pub client: Netns,
    pub director: Netns,
    pub servers: Vec<Netns>,
    pub server_addrs: Vec<Ipv4Addr>,
    pub client_addrs: Vec<Ipv4Addr>,
    pub vips: Vec<Ipv4Addr>,
    pub silent: bool,
    pub vars: Vars,
}

impl Topology {
    /// Builds the hosts of `sc` under namespace names starting with `prefix`.
    pub fn build(sc: &Scenario, prefix: &str) -> Result<Topology> {
        teardown(prefix);
        let kind = sc.topology;
        let n = sc.servers;
        let server_addrs: Vec<Ipv4Addr> = match kind {
            TopologyKind::Lan => &LAN_SERVERS[..n],
            TopologyKind::Nat => &NAT_SERVERS[..n],
        }
        .iter()
        .map(|a| a.parse().expect("literal"))
        .collect();
        let mut vars = Vars::default();
        for (i, v) in VIPS.iter().enumerate() {
            vars.set(
                &if i == 0 {
                    "VIP".into()
                } else {
                    format!("VIP{}", i + 1)
                },
                *v,
            );
        }
        vars.set("DIR", DIRECTOR);
        vars.set("DIRS", DIRECTOR_SERVER_SIDE);
        vars.set("PHANTOM", PHANTOM);
        vars.set("CLIENT", "192.168.1.100");
        vars.set("GUE_PORT", GUE_PORT.to_string());
        for (i, a) in server_addrs.iter().enumerate() {
            vars.set(&format!("RS{}", i + 1), a.to_string());
        }
        let vips = sc
            .vips
            .iter()
            .map(|v| {
                vars.expand(v)
                    .parse()
                    .with_context(|| format!("vip {v:?} is not an IPv4 address"))
            })
            .collect::<Result<Vec<Ipv4Addr>>>()?;
        let t = Topology {
            kind,
            prefix: prefix.to_string(),
            switch: Netns::new(&format!("{prefix}-sw")),
            client: Netns::new(&format!("{prefix}-client")),
            director: Netns::new(&format!("{prefix}-dir")),
            servers: (1..=n)
                .map(|i| Netns::new(&format!("{prefix}-rs{i}")))
                .collect(),
            server_addrs,
            client_addrs: (0..CLIENTS)
                .map(|i| Ipv4Addr::new(192, 168, 1, 100 + i))
                .collect(),
            vips,
            silent: sc.silent_servers,
            vars,
        };
        t.wire().inspect_err(|_| teardown(prefix))?;
        Ok(t)
    }

    fn all(&self) -> Vec<&Netns> {
        let mut v = vec![&self.switch, &self.client, &self.director];
        v.extend(&self.servers);
        v
    }

    /// The director's MAC on the clients' side (port 0) and, for nat, on the
    /// servers' side (port 1).
    pub fn director_mac(&self, port: u8) -> String {
        mac(DIRECTOR_MAC_HOST, port)
    }

    pub fn server_mac(&self, i: usize) -> String {
        mac(0xa0 + i as u8, 0)
    }

    pub fn client_mac(&self) -> String {
        mac(CLIENT_MAC_HOST, 0)
    }

    /// The real servers' side of the director: its port index and network.
    pub fn server_port(&self) -> u8 {
        match self.kind {
            TopologyKind::Lan => 0,
            TopologyKind::Nat => 1,
        }
    }

    fn wire(&self) -> Result<()> {
        let mut root = Vec::new();
        for ns in self.all() {
            root.push(format!("netns add {}", ns.name));
        }
        ip_batch(None, &root)?;
        // Every host's side of a link is eth0 (eth1 for the director's second
        // port); the switch side is named after the host.
        let mut links = vec![
            (
                &self.client,
                "eth0",
                "c".to_string(),
                self.client_mac(),
                "br0",
            ),
            (
                &self.director,
                "eth0",
                "d0".into(),
                self.director_mac(0),
                "br0",
            ),
        ];
        let server_bridge = match self.kind {
            TopologyKind::Lan => "br0",
            TopologyKind::Nat => {
                links.push((
                    &self.director,
                    "eth1",
                    "d1".into(),
                    self.director_mac(1),
                    "br1",
                ));
                "br1"
            }
        };
        for (i, s) in self.servers.iter().enumerate() {
            links.push((
                s,
                "eth0",
                format!("s{}", i + 1),
                self.server_mac(i),
                server_bridge,
            ));
        }
        let mut sw = vec![
            "link add br0 type bridge".to_string(),
            "link set br0 up".into(),
        ];
        if self.kind == TopologyKind::Nat {
            sw.push("link add br1 type bridge".into());
            sw.push("link set br1 up".into());
        }
        let mut root = Vec::new();
        for (ns, ifname, peer, mac, _) in &links {
            root.push(format!(
                "link add {ifname}-{peer} netns {} address {mac} type veth peer name {peer} netns {}",
                ns.name, self.switch.name
            ));
        }
        ip_batch(None, &root)?;
        for (_, _, peer, _, br) in &links {
            sw.push(format!("link set {peer} master {br} up"));
        }
        self.switch.ip_batch(&sw)?;
        // The switch knows every host's MAC from the start: a frame for a
        // server that never sends (silent scenarios) goes to that server's
        // port alone instead of being flooded to all of them, so the watch
        // sees it where the director sent it.
        for (_, _, peer, mac, _) in &links {
            let args: Vec<String> = ["fdb", "replace", mac.as_str(), "dev", peer.as_str()]
                .into_iter()
                .chain(["master", "static"])
                .map(String::from)
                .collect();
            let out = self.switch.output("bridge", &args, &[])?;
            anyhow::ensure!(
                out.status.success(),
                "bridge {} in {}: {}",
                args.join(" "),
                self.switch.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for ns in self.all() {
            // IPv6 off: no router solicitations or DAD in the captures.
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        }
        let rename = |ns: &Netns, from: &str, to: &str| -> Result<()> {
            ns.ip_batch(&[
                format!("link set {from} name {to}"),
                format!("link set {to} up"),
                "link set lo up".into(),
            ])
        };
        for (ns, ifname, peer, _, _) in &links {
            rename(ns, &format!("{ifname}-{peer}"), ifname)?;
        }
        // The client: every client address on one interface.
        let mut c: Vec<String> = self
            .client_addrs
            .iter()
            .map(|a| format!("addr add {a}/24 dev eth0"))
            .collect();
        // The servers' network of the nat topology is behind the director.
        c.push(format!("route add 10.10.0.0/24 via {DIRECTOR}"));
        self.client.ip_batch(&c)?;
        self.no_tx_checksum(&self.client)?;
        for (i, s) in self.servers.iter().enumerate() {
            self.no_tx_checksum(s)?;
            if self.silent {
                continue;
            }
            let a = self.server_addrs[i];
            let mut cmds = match self.kind {
                TopologyKind::Lan => vec![format!("addr add {a}/24 dev eth0")],
                TopologyKind::Nat => vec![
                    format!("addr add {a}/24 dev eth0"),
                    format!("route add default via {DIRECTOR_SERVER_SIDE}"),
                ],
            };
            if self.kind == TopologyKind::Lan {
                for v in &self.vips {
                    cmds.push(format!("addr add {v}/32 dev lo"));
                }
                // Tunnel endpoints, for TUN: packets that come out of ipip
                // (also GUE's inner packets) or GRE are for a VIP on lo.
                cmds.push("link set tunl0 up".into());
                cmds.push("link set gre0 up".into());
                cmds.push(format!("fou add port {GUE_PORT} gue"));
            }
            s.ip_batch(&cmds)?;
            for k in ["all", "default", "eth0"] {
                s.sysctl(&format!("net.ipv4.conf.{k}.arp_ignore"), "1")?;
                s.sysctl(&format!("net.ipv4.conf.{k}.arp_announce"), "2")?;
                s.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0")?;
            }
            if self.kind == TopologyKind::Lan {
                for k in ["tunl0", "gre0"] {
                    s.sysctl(&format!("net.ipv4.conf.{k}.rp_filter"), "0")?;
                }
            }
        }
        Ok(())
    }

    /// af_packet hands rvsd frames as the sender's stack left them: the
    /// senders must fill in their checksums themselves.
    fn no_tx_checksum(&self, ns: &Netns) -> Result<()> {
        let out = ns.output(
            "ethtool",
            &["-K".into(), "eth0".into(), "tx".into(), "off".into()],
            &[],
        )?;
        if !out.status.success() {
            anyhow::bail!(
                "ethtool -K eth0 tx off in {}: {}",
                ns.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Configures the director's namespace for kernel IPVS: the director's
    /// addresses, the VIPs on its client-side interface, forwarding for NAT.
    pub fn kernel_director(&self) -> Result<()> {
        let mut cmds = vec![format!("addr add {DIRECTOR}/24 dev eth0")];
        for v in &self.vips {
            cmds.push(format!("addr add {v}/32 dev eth0"));
        }
        if self.kind == TopologyKind::Nat {
            cmds.push(format!("addr add {DIRECTOR_SERVER_SIDE}/24 dev eth1"));
        }
        let dev = if self.server_port() == 0 {
            "eth0"
        } else {
            "eth1"
        };
        for (n, mac) in self.static_neighbours() {
            let dev = if n == PHANTOM { "eth0" } else { dev };
            cmds.push(format!(
                "neigh replace {n} lladdr {mac} dev {dev} nud permanent"
            ));
        }
        self.director.ip_batch(&cmds)?;
        if self.kind == TopologyKind::Nat {
            self.director.sysctl("net.ipv4.ip_forward", "1")?;
        }
        Ok(())
    }

    /// Neighbours the director cannot learn when the servers are silent:
    /// the servers, and the phantom client.
    pub fn static_neighbours(&self) -> Vec<(String, String)> {
        if !self.silent {
            return Vec::new();
        }
        let mut v: Vec<(String, String)> = self
            .server_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (a.to_string(), self.server_mac(i)))
            .collect();
        v.push((PHANTOM.to_string(), self.client_mac()));
        v
    }

    /// rvsd's `[[port]]` and `[neighbours]` sections for this topology.
    /// No kernel interface: the oracle compares what IPVS does, and the
    /// scripted packets to the director's address would otherwise meet
    /// its host stack, which the kernel run's director does not have in
    /// the same place.
    pub fn rvsd_ports_toml(&self) -> String {
        let mut s = format!(
            "[[port]]\nname = \"clients\"\ndevice = \"net_af_packet0,iface=eth0\"\naddress = \"{DIRECTOR}/24\"\nkernel_interface = false\n\n"
        );
        if self.kind == TopologyKind::Nat {
            s.push_str(&format!(
                "[[port]]\nname = \"servers\"\ndevice = \"net_af_packet1,iface=eth1\"\naddress = \"{DIRECTOR_SERVER_SIDE}/24\"\nkernel_interface = false\n\n"
            ));
        }
        let statics: Vec<String> = self
            .static_neighbours()
            .iter()
            .map(|(a, m)| format!("{{ address = \"{a}\", mac = \"{m}\" }}"))
            .collect();
        s.push_str(&format!(
            "[neighbours]\nstatic = [{}]\n\n",
            statics.join(", ")
        ));
        s
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        teardown(&self.prefix);
    }
}

/// Kills what runs in the namespaces starting with `prefix-` and deletes
/// them. Best effort: it also runs before a build, on nothing.
pub fn teardown(prefix: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let start = format!("{prefix}-");
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&start))
        .map(String::from)
        .collect();
    let mut pids = Vec::new();
    for n in &names {
        if let Ok(o) = Command::new("ip").args(["netns", "pids", n]).output() {
            pids.extend(
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(String::from),
            );
        }
    }
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && pids
                .iter()
                .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(&pids)
            .stderr(Stdio::null())
            .status();
    }
    let dels: Vec<String> = names.iter().map(|n| format!("netns del {n}")).collect();
    if !dels.is_empty() {
        let _ = ip_batch(None, &dels);
    }
}
