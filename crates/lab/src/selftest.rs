//! The topology of the kernel's own IPVS test
//! (`tools/testing/selftests/net/netfilter/ipvs.sh`), with rvsd as the
//! director:
//!
//! ```text
//!  <p>-client: br0 10.0.0.2/24 over veth01, veth02
//!       veth01 ── veth10  <p>-director (rvsd port 0, 10.0.0.1/24)
//!                 veth12  (rvsd port 1, 172.16.0.1/24) ── veth21 172.16.0.2/24
//!       veth02 ───────────────────────────────────────── veth20 10.0.0.3/24
//!                                                        <p>-server
//! ```
//!
//! DR and TUN servers answer the client directly over veth20; in NAT the
//! server loses veth20 and routes via the director. The kernel here has no
//! ipip/GRE/FOU, so TUN servers decapsulate in userspace (tools/tun-decap.py)
//! into a TUN device, and their own stack takes it from there.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::{run, teardown, Lab};

pub const VIP: &str = "207.175.44.110";
pub const PORT: u16 = 8080;
pub const CLIENT: &str = "10.0.0.2";
pub const GATEWAY: &str = "10.0.0.1";
pub const DIRECTOR_SERVER_SIDE: &str = "172.16.0.1";
pub const SERVER: &str = "172.16.0.2";
pub const SERVER_CLIENT_SIDE: &str = "10.0.0.3";

/// The IPv6 variant's addresses: the same topology, one /64 per link.
pub const VIP6: &str = "fd00:99::10";
pub const CLIENT6: &str = "fd00:1::2";
pub const GATEWAY6: &str = "fd00:1::1";
pub const DIRECTOR6_SERVER_SIDE: &str = "fd00:2::1";
pub const SERVER6: &str = "fd00:2::2";
pub const SERVER6_CLIENT_SIDE: &str = "fd00:1::3";

/// How the director reaches the real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dr,
    Nat,
    /// With the tunnel type as tun-decap.py takes it: `ipip`, `gre`,
    /// `gue:PORT`.
    Tun(&'static str),
}

const PORTS: &str = "[[port]]\nname = \"client\"\ndevice = \"net_af_packet0,iface=veth10\"\naddress = \"10.0.0.1/24\"\naddress6 = \"fd00:1::1/64\"\n\n\
[[port]]\nname = \"server\"\ndevice = \"net_af_packet1,iface=veth12\"\naddress = \"172.16.0.1/24\"\naddress6 = \"fd00:2::1/64\"\n";

impl Lab {
    /// Builds the selftest topology for `mode` (rvsd not started yet).
    pub fn create_selftest(prefix: &str, dir: &Path, mode: Mode) -> Result<Lab> {
        Self::selftest(prefix, dir, mode, false)
    }

    /// The same over IPv6 (the IPv4 addresses stay too).
    pub fn create_selftest_v6(prefix: &str, dir: &Path, mode: Mode) -> Result<Lab> {
        Self::selftest(prefix, dir, mode, true)
    }

    fn selftest(prefix: &str, dir: &Path, mode: Mode, v6: bool) -> Result<Lab> {
        teardown(prefix)?;
        crate::fresh_dir(prefix, dir)?;
        let mut lab = Lab::empty(prefix, dir, PORTS);
        if let Err(e) = lab.build_selftest(mode, v6) {
            let _ = lab.down();
            return Err(e);
        }
        Ok(lab)
    }

    fn build_selftest(&mut self, mode: Mode, v6: bool) -> Result<()> {
        let (c, d, s) = (self.ns("client"), self.ns("director"), self.ns("server"));
        let off = if v6 { "0" } else { "1" };
        for ns in [&c, &d, &s] {
            run("ip", &["netns", "add", ns])?;
            for k in ["all", "default"] {
                self.sysctl(ns, &format!("net.ipv6.conf.{k}.disable_ipv6={off}"))?;
                self.sysctl(ns, &format!("net.ipv4.conf.{k}.rp_filter=0"))?;
            }
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            self.bridges_stay_layer_two(ns);
        }
        for (a, ans, b, bns) in [
            ("veth01", &c, "veth10", &d),
            ("veth02", &c, "veth20", &s),
            ("veth12", &d, "veth21", &s),
        ] {
            run(
                "ip",
                &[
                    "link", "add", a, "netns", ans, "type", "veth", "peer", "name", b, "netns", bns,
                ],
            )?;
            run("ip", &["-n", ans, "link", "set", a, "up"])?;
            run("ip", &["-n", bns, "link", "set", b, "up"])?;
        }
        // rvsd's ports: the director's kernel sees them through rvsd.
        self.keep_kernel_off("director", "veth10")?;
        self.keep_kernel_off("director", "veth12")?;
        run("ip", &["-n", &c, "link", "add", "br0", "type", "bridge"])?;
        for v in ["veth01", "veth02"] {
            run("ip", &["-n", &c, "link", "set", v, "master", "br0"])?;
        }
        run("ip", &["-n", &c, "link", "set", "br0", "up"])?;
        run(
            "ip",
            &[
                "-n",
                &c,
                "addr",
                "add",
                &format!("{CLIENT}/24"),
                "dev",
                "br0",
            ],
        )?;
        run(
            "ip",
            &["-n", &c, "route", "add", VIP, "via", GATEWAY, "dev", "br0"],
        )?;
        run(
            "ip",
            &[
                "-n",
                &s,
                "addr",
                "add",
                &format!("{SERVER}/24"),
                "dev",
                "veth21",
            ],
        )?;
        run(
            "ip",
            &[
                "-n",
                &s,
                "addr",
                "add",
                &format!("{SERVER_CLIENT_SIDE}/24"),
                "dev",
                "veth20",
            ],
        )?;
        if v6 {
            // nodad: usable at once, no duplicate-address probing.
            for (ns, a, dev) in [
                (&c, CLIENT6, "br0"),
                (&s, SERVER6, "veth21"),
                (&s, SERVER6_CLIENT_SIDE, "veth20"),
            ] {
                run(
                    "ip",
                    &[
                        "-n",
                        ns,
                        "addr",
                        "add",
                        &format!("{a}/64"),
                        "dev",
                        dev,
                        "nodad",
                    ],
                )?;
            }
            run(
                "ip",
                &[
                    "-n", &c, "-6", "route", "add", VIP6, "via", GATEWAY6, "dev", "br0",
                ],
            )?;
        }
        // af_packet must see finished checksums.
        for (ns, dev) in [
            (&c, "br0"),
            (&c, "veth01"),
            (&c, "veth02"),
            (&s, "veth20"),
            (&s, "veth21"),
        ] {
            run(
                "ip",
                &["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"],
            )?;
        }
        match mode {
            Mode::Dr => self.server_holds_vip(&s, v6)?,
            Mode::Nat => {
                run("ip", &["-n", &s, "link", "del", "veth20"])?;
                run(
                    "ip",
                    &[
                        "-n",
                        &s,
                        "route",
                        "add",
                        "default",
                        "via",
                        DIRECTOR_SERVER_SIDE,
                        "dev",
                        "veth21",
                    ],
                )?;
                if v6 {
                    let via = DIRECTOR6_SERVER_SIDE;
                    run(
                        "ip",
                        &[
                            "-n", &s, "-6", "route", "add", "default", "via", via, "dev", "veth21",
                        ],
                    )?;
                }
            }
            Mode::Tun(kind) => {
                self.server_holds_vip(&s, v6)?;
                let kind = if v6 { "ip6ip6" } else { kind };
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/tun-decap.py");
                let script = script.display().to_string();
                self.spawn_in(
                    "server",
                    &["python3", &script, kind, "rvsdecap"],
                    "decap.log",
                )?;
                let log = self.dir.join("decap.log");
                self.wait_for("the tunnel decapsulator", || {
                    Ok(fs::read_to_string(&log)
                        .unwrap_or_default()
                        .contains("ready"))
                })?;
                run("ip", &["-n", &s, "link", "set", "rvsdecap", "up"])?;
                self.sysctl(&s, "net.ipv4.conf.rvsdecap.rp_filter=0")?;
            }
        }
        Ok(())
    }

    /// The DR/TUN real server's set-up: the VIP on lo, no ARP for it.
    /// (Linux answers neighbour solicitations only for the addresses of the
    /// interface they arrive on, so IPv6 needs no such setting.)
    fn server_holds_vip(&self, ns: &str, v6: bool) -> Result<()> {
        run(
            "ip",
            &["-n", ns, "addr", "add", &format!("{VIP}/32"), "dev", "lo"],
        )?;
        if v6 {
            let vip6 = format!("{VIP6}/128");
            run(
                "ip",
                &["-n", ns, "addr", "add", &vip6, "dev", "lo", "nodad"],
            )?;
        }
        for k in ["all", "default"] {
            self.sysctl(ns, &format!("net.ipv4.conf.{k}.arp_ignore=1"))?;
            self.sysctl(ns, &format!("net.ipv4.conf.{k}.arp_announce=2"))?;
        }
        Ok(())
    }

    /// The selftest's check: the server receives with `socat -u` into a
    /// file, the client sends `data` through the VIP; returns what arrived.
    pub fn transfer(&mut self, data: &[u8], timeout_s: u32) -> Result<Vec<u8>> {
        self.transfer_to(VIP, data, timeout_s)
    }

    /// As [`Lab::transfer`], to `vip` (IPv4 or IPv6).
    pub fn transfer_to(&mut self, vip: &str, data: &[u8], timeout_s: u32) -> Result<Vec<u8>> {
        let v6 = vip.contains(':');
        let (inp, out) = (self.dir.join("in.bin"), self.dir.join("out.bin"));
        fs::write(&inp, data)?;
        let _ = fs::remove_file(&out);
        let listen = if v6 {
            format!("TCP6-LISTEN:{PORT},reuseaddr")
        } else {
            format!("TCP4-LISTEN:{PORT},reuseaddr")
        };
        let sink = format!("OPEN:{},creat,trunc", out.display());
        self.spawn_in(
            "server",
            &["socat", "-u", &listen, &sink],
            "socat-server.log",
        )?;
        self.wait_listening("server", "tcp", PORT)?;
        let src = format!("OPEN:{}", inp.display());
        let dst = if v6 {
            format!("TCP6:[{vip}]:{PORT}")
        } else {
            format!("TCP4:{vip}:{PORT}")
        };
        let t = timeout_s.to_string();
        let sent = self.exec("client", &["timeout", &t, "socat", "-u", &src, &dst])?;
        anyhow::ensure!(
            sent.status.success(),
            "client socat failed: {}",
            String::from_utf8_lossy(&sent.stderr)
        );
        // The server's socat exits once the connection closes.
        self.wait_for("the server to finish writing", || {
            let out = self.exec("server", &["ss", "-Htn", &format!("sport = :{PORT}")])?;
            let listening = self.exec("server", &["ss", "-Hltn", &format!("sport = :{PORT}")])?;
            Ok(out.stdout.is_empty() && listening.stdout.is_empty())
        })?;
        fs::read(&out).context("reading what the server received")
    }
}
