//! Connection sync with a real kernel, both ways (`rvs-oracle
//! sync-interop`, run in the kernel VM by `cargo xtask kernel-vm test`):
//!
//! - kernel master → rvs: kernel IPVS with `--start-daemon master` syncs
//!   a UDP connection made by three datagrams; the message it multicasts
//!   is caught on the link and decoded with rvs-sync's decoder, which must
//!   find that connection, field by field;
//! - rvs → kernel backup: a message for an ESTABLISHED TCP connection,
//!   made and framed as rvsd's workers make and frame theirs (rvs-sync's
//!   encoder with headroom, then `frame::frame`: Ethernet, IPv4 and UDP
//!   multicast), is sent raw on the link to a kernel running
//!   `--start-daemon backup`; `ipvsadm -Lnc` there must then list it.
//!
//! rvsd's workers send exactly these frames, and its backup reads these
//! bytes (crates/control's sync.rs), so this is the wire between the two;
//! the daemons and the workers are tested in the lab
//! (crates/lab/tests/sync.rs).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rvs_sync::{flags, SyncConn};

use crate::netns::Netns;

const PREFIX: &str = "rvs-syncx";
const KERNEL_ADDR: &str = "10.7.0.1";
const PEER_ADDR: &str = "10.7.0.2";
const VIP: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 100);
const RS: Ipv4Addr = Ipv4Addr::new(10, 7, 0, 9);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);

fn ipvsadm(ns: &Netns, line: &str) -> Result<String> {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    let out = ns.output("ipvsadm", &args, &[])?;
    ensure!(
        out.status.success(),
        "ipvsadm {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sh(cmd: &str) -> Result<()> {
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()?;
    ensure!(st.success(), "{cmd}: {st}");
    Ok(())
}

/// Two namespaces on one veth: the kernel director (`k`, with the VIP,
/// a DR service to a silent real server) and its peer (`p`).
struct Pair {
    k: Netns,
    p: Netns,
}

impl Pair {
    fn new() -> Result<Pair> {
        let _ = Self::teardown();
        let (k, p) = (format!("{PREFIX}-k"), format!("{PREFIX}-p"));
        sh(&format!(
            "ip netns add {k} && ip netns add {p} && \
             ip link add vk netns {k} type veth peer name vp netns {p} && \
             ip -n {k} addr add {KERNEL_ADDR}/24 dev vk && ip -n {k} addr add {VIP}/32 dev vk && \
             ip -n {k} link set vk up && ip -n {k} link set lo up && \
             ip -n {k} neigh add {RS} lladdr 02:00:00:00:00:09 dev vk && \
             ip -n {p} addr add {PEER_ADDR}/24 dev vp && ip -n {p} link set vp up && \
             ip -n {p} link set lo up"
        ))?;
        let pair = Pair {
            k: Netns::new(&k),
            p: Netns::new(&p),
        };
        ipvsadm(&pair.k, &format!("-A -u {VIP}:53 -s rr"))?;
        ipvsadm(&pair.k, &format!("-a -u {VIP}:53 -r {RS}:53 -g"))?;
        ipvsadm(&pair.k, &format!("-A -t {VIP}:80 -s rr"))?;
        ipvsadm(&pair.k, &format!("-a -t {VIP}:80 -r {RS}:80 -g"))?;
        Ok(pair)
    }

    fn teardown() -> Result<()> {
        sh(&format!(
            "ip netns del {PREFIX}-k 2>/dev/null; ip netns del {PREFIX}-p 2>/dev/null; true"
        ))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Self::teardown();
    }
}

/// A socket in the peer that has joined the sync group on its link.
fn group_socket() -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, rvs_sync::SYNC_PORT)).into())?;
    s.join_multicast_v4(&GROUP, &PEER_ADDR.parse()?)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s.into())
}

/// Kernel master → rvs decoder. Returns what was decoded.
fn kernel_master(pair: &Pair) -> Result<SyncConn> {
    ipvsadm(
        &pair.k,
        "--start-daemon master --mcast-interface vk --syncid 9",
    )?;
    let msg = pair.p.run(|| {
        let listen = group_socket()?;
        // Three datagrams: the kernel syncs a connection at its third
        // packet (sync_threshold).
        let client = UdpSocket::bind((PEER_ADDR, 5000))?;
        for _ in 0..3 {
            client.send_to(b"ask", (VIP, 53))?;
        }
        let mut buf = vec![0u8; 65536];
        let started = Instant::now();
        loop {
            let (n, from) = listen
                .recv_from(&mut buf)
                .context("no sync message in 10 s")?;
            if from.ip() == KERNEL_ADDR.parse::<IpAddr>()? {
                return Ok(buf[..n].to_vec());
            }
            ensure!(
                started.elapsed() < Duration::from_secs(10),
                "no sync message"
            );
        }
    })?;
    println!(
        "kernel master sent {} bytes: {}",
        msg.len(),
        msg.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let d = rvs_sync::decode(&msg, 9).map_err(|e| anyhow::anyhow!("rvs-sync refused it: {e}"))?;
    ensure!(d.syncid == 9, "syncid {}", d.syncid);
    ensure!(d.dropped.is_none() && d.skipped.is_empty(), "{d:?}");
    let c = d
        .conns
        .into_iter()
        .find(|c| c.cport == 5000)
        .context("the message does not hold the client's connection")?;
    let want = (
        rvs_sync::UDP,
        IpAddr::V4(PEER_ADDR.parse()?),
        IpAddr::V4(VIP),
        IpAddr::V4(RS),
        (5000, 53, 53),
        flags::DROUTE,
    );
    let got = (
        c.protocol,
        c.caddr,
        c.vaddr,
        c.daddr,
        (c.cport, c.vport, c.dport),
        c.flags & flags::FWD_MASK,
    );
    ensure!(got == want, "decoded {c:?}, wanted {want:?}");
    ensure!(c.timeout_s == 300, "the UDP timeout, got {}", c.timeout_s);
    ipvsadm(&pair.k, "--stop-daemon master")?;
    Ok(c)
}

/// rvs encoder → kernel backup.
fn kernel_backup(pair: &Pair) -> Result<String> {
    ipvsadm(
        &pair.k,
        "--start-daemon backup --mcast-interface vk --syncid 7",
    )?;
    let conn = SyncConn {
        protocol: rvs_sync::TCP,
        flags: flags::DROUTE,
        state: 1,
        caddr: IpAddr::V4(PEER_ADDR.parse()?),
        vaddr: IpAddr::V4(VIP),
        daddr: IpAddr::V4(RS),
        cport: 40000,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout_s: 900,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
    };
    let mut enc = rvs_sync::Encoder::with_headroom(7, 1472, rvs_sync::frame::HEADERS);
    enc.push(&conn)?;
    let mut frame = enc.finish().context("a message")?;
    let mut tap = crate::packets::Tap::open(&pair.p, "peer", "vp")?;
    let wire = rvs_sync::frame::Wire {
        mac: tap.mac,
        src: PEER_ADDR.parse()?,
        group: GROUP,
        port: rvs_sync::SYNC_PORT,
        ttl: 1,
    };
    rvs_sync::frame::frame(&mut frame, &wire, 1).context("framing the message")?;
    // The backup's socket may take a moment to join: a few sends.
    for _ in 0..3 {
        tap.send(&frame)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    loop {
        let list = ipvsadm(&pair.k, "-Lnc")?;
        if let Some(l) = list
            .lines()
            .find(|l| l.contains(&format!("{PEER_ADDR}:40000")))
        {
            ensure!(
                l.contains("ESTABLISHED")
                    && l.contains(&format!("{VIP}:80"))
                    && l.contains(&format!("{RS}:80")),
                "the kernel's entry: {l}"
            );
            ipvsadm(&pair.k, "--stop-daemon backup")?;
            return Ok(l.trim().to_string());
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the kernel backup did not take the connection:\n{list}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both directions; prints what it saw, fails on any mismatch.
pub fn run() -> Result<()> {
    sh("modprobe ip_vs && modprobe ip_vs_rr")?;
    let pair = Pair::new()?;
    let c = kernel_master(&pair)?;
    println!("sync-interop: kernel master -> rvs-sync decoder: ok ({c:?})");
    let l = kernel_backup(&pair)?;
    println!("sync-interop: rvs worker's frame -> kernel backup: ok ({l})");
    Ok(())
}
