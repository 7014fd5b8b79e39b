//! The exception path's kernel side: one interface per port in the
//! director's kernel (a `net_tap` device), named after the port, with the
//! port's MAC and the director's addresses, so that what rvsd does not
//! serve itself reaches the kernel as it would on a host's NIC.
//!
//! The interface is configured with iproute2's `ip` rather than netlink
//! from here: it is four commands once at start, `ip` is on every Debian
//! system (Priority: important), its messages are the ones an operator
//! knows, and the commands it ran are logged as an operator would type
//! them. rvsd never changes them afterwards, so there is no state to keep
//! in step. The unit's ambient CAP_NET_ADMIN reaches `ip` too.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use dpdk::{Eal, MacAddr, Mempool, Port, PortConfig};

/// What a port's kernel interface is made of.
pub struct KernelInterface<'a> {
    /// The port's place in the configuration (for the vdev's name).
    pub port_index: usize,
    pub port_name: &'a str,
    /// The interface's name in the kernel.
    pub name: &'a str,
    /// The port's MAC, which the interface carries too: the kernel's ARP
    /// answers and frames then name the same station as rvsd's.
    pub mac: MacAddr,
    pub addr: (Ipv4Addr, u8),
    pub addr6: Option<(Ipv6Addr, u8)>,
    pub mtu: u16,
}

/// Descriptors per tap queue. net_tap gives every receive descriptor an
/// mbuf up front, so a few suffice: the kernel sends little, and the
/// worker takes a burst at least every 100 µs.
const TAP_DESCRIPTORS: u16 = 128;

/// Creates and starts the tap for `k` with one queue pair per worker, and
/// gives the kernel side its addresses and MTU.
pub fn start(eal: &Eal, k: &KernelInterface, workers: usize, pool: Arc<Mempool>) -> Result<Port> {
    let what = format!("port {:?}: kernel interface {:?}", k.port_name, k.name);
    if Path::new("/sys/class/net").join(k.name).exists() {
        bail!(
            "{what}: an interface of that name exists already (another rvsd?): \
             name the port's with kernel_interface = \"NAME\", or turn it off with \
             kernel_interface = false"
        );
    }
    let vdev = format!("net_tap_rvs{}", k.port_index);
    let id = dpdk::create_vdev(eal, &vdev, &format!("iface={},mac={}", k.name, k.mac))
        .with_context(|| {
            format!(
                "{what}: creating it (net_tap needs /dev/net/tun and CAP_NET_ADMIN; \
                 kernel_interface = false turns the exception path off)"
            )
        })?;
    let pc = PortConfig {
        rx_queues: workers as u16,
        tx_queues: workers as u16,
        rx_desc: TAP_DESCRIPTORS,
        tx_desc: TAP_DESCRIPTORS,
        // The kernel takes only what rvsd hands it; a promiscuous flag on
        // its interface would only mislead whoever looks.
        promiscuous: false,
        rss_key: None,
    };
    let port = Port::start(eal, id, &pc, pool)
        .with_context(|| format!("{what}: starting its {workers} queue pairs"))?;
    if port.mac() != k.mac {
        bail!(
            "{what}: net_tap gave it MAC {} instead of the port's {}",
            port.mac(),
            k.mac
        );
    }
    let (a, len) = k.addr;
    ip(&["link", "set", "dev", k.name, "mtu", &k.mtu.to_string()])
        .with_context(|| format!("{what}: setting its MTU"))?;
    ip(&["addr", "add", &format!("{a}/{len}"), "dev", k.name])
        .with_context(|| format!("{what}: giving it {a}/{len}"))?;
    let v6_off =
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", k.name))
            .map(|v| v.trim() == "1")
            .unwrap_or(true);
    match k.addr6 {
        // A host may have IPv6 off: rvsd serves its IPv6 all the same, the
        // kernel just has no IPv6 address to talk from.
        Some((a6, len6)) if v6_off => log::warn!(
            "{what}: IPv6 is disabled in this kernel (net.ipv6.conf.{}.disable_ipv6): \
             it gets no {a6}/{len6}; rvsd still serves IPv6 on the port",
            k.name
        ),
        // rvsd owns the address already (it answers for it): no duplicate
        // address detection, which would hold it back for a second.
        Some((a6, len6)) => ip(&[
            "-6",
            "addr",
            "add",
            &format!("{a6}/{len6}"),
            "dev",
            k.name,
            "nodad",
        ])
        .with_context(|| format!("{what}: giving it {a6}/{len6}"))?,
        None => {}
    }
    ip(&["link", "set", "dev", k.name, "up"]).with_context(|| format!("{what}: bringing it up"))?;
    log::info!(
        "port {:?}: kernel interface {} (dpdk port {id}, mac {}, {a}/{len}{})",
        k.port_name,
        k.name,
        k.mac,
        k.addr6
            .map(|(a6, l6)| format!(", {a6}/{l6}"))
            .unwrap_or_default()
    );
    Ok(port)
}

/// Runs `ip ARGS`; its stderr is the error.
fn ip(args: &[&str]) -> Result<()> {
    log::debug!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
