//! Writes pcap captures for the benchmarks: N flows of TCP SYNs (new
//! flows), TCP ACKs with payload (established), a mix, SYNs each later
//! followed by a FIN (`synfin`), or UDP, over IPv4 or IPv6, at a given frame size,
//! addressed to a VIP behind a given MAC.
//!
//!     pktgen --out F.pcap --flows 1000000 --traffic ack --size 64 \
//!            [--ipv6] [--vip 10.99.0.1] [--vport 80] [--dst-mac 02:70:63:61:70:00]
//!            [--shard K/N | --rss K/N] [--flow-seed S]
//!
//! (`pktgen --help` lists every option with its default.)
//!
//! `--shard K/N` keeps the packets a NIC programmed by rvsd puts on its
//! queue K of N: Toeplitz over the client's address and port alone under
//! rvsd's key, through rvsd's redirection table
//! (`rvs_bench::client_endpoint_rss_queue`). Those are the flows rvsd's
//! worker K owns, so none is handed over (the benchmark checks that it is
//! so). rvsd draws its key at random unless `[workers] flow_seed` fixes
//! it: `--flow-seed` must be the same number (0 unless given).
//! `--rss K/N` keeps the packets an ordinary NIC would put on its queue K of
//! N: Toeplitz over the 5-tuple with Microsoft's key, through a round-robin
//! redirection table (`rvs_bench::rss_queue`); rvsd then hands the others'
//! packets over to their owners.
//!
//! Every flow appears once per pass (clients 10.0.0.0/8 or fd00:c::/96, a
//! port each); replaying the capture in a loop (net_pcap infinite_rx) repeats
//! the flows. `mix` is one SYN in ten. `synfin` is every flow's SYN, then
//! every flow's FIN: the FIN takes the connection from SYN_RECV to
//! TIME_WAIT, so on the next pass its SYN opens a new connection (IPVS's
//! conn_reuse_mode; a RST would not do, SYN_RECV ignores it): every pass
//! creates N connections, however long the replay runs.
//!
//! `flood` is the SYN-flood row's capture, played once (not in a loop):
//! `--established E` clients open connections to VIP:80 (SYN, ACK) first;
//! then, in rounds, spoofed SYNs to VIP:82 from random sources (`--flows`
//! of them in all, one each), one legitimate new client a round to VIP:81
//! whose ACK follows `--rtt-rounds` rounds later (its handshake spans that
//! much flood), and ACKs of the established clients. Separate ports only
//! tell the three apart in the service counters; they share the worker's
//! connection table. A JSON file beside the capture (`OUT.json`) says how
//! many packets of each kind it holds. `--lead-in N` puts N UDP datagrams
//! to VIP:83 first: played while rvsd loads its rules (a service of its
//! own, added last, counts those that came after).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use clap::{Parser, ValueEnum};
use rvs_bench::frames::{self, FrameSpec, ACK, FIN, SYN};
use rvs_packet::MacAddr;

#[derive(Clone, Copy, PartialEq, Debug, ValueEnum)]
enum Traffic {
    Syn,
    Ack,
    Mix,
    #[value(name = "synfin")]
    SynFin,
    Udp,
    Flood,
}

/// Writes pcap captures of generated flows for the benchmarks (see the
/// top of `bench/src/bin/pktgen.rs`).
#[derive(Clone, Debug, Parser)]
#[command(name = "pktgen")]
struct Args {
    /// The capture to write.
    #[arg(long, default_value = "bench.pcap")]
    out: String,
    /// Flows (`flood`: spoofed SYNs).
    #[arg(long, default_value_t = 1000)]
    flows: u64,
    #[arg(long, value_enum, default_value_t = Traffic::Ack)]
    traffic: Traffic,
    /// Frame size in bytes, FCS included.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// IPv6 clients and VIP (the VIP fd00:99::1 unless `--vip`).
    #[arg(long)]
    ipv6: bool,
    /// The VIP [default: 10.99.0.1, fd00:99::1 with --ipv6].
    #[arg(long)]
    vip: Option<IpAddr>,
    #[arg(long, default_value_t = 80)]
    vport: u16,
    /// The director's MAC, the frames' destination.
    #[arg(long, default_value = "02:70:63:61:70:00", value_parser = parse_mac)]
    dst_mac: MacAddr,
    /// Only the packets a NIC programmed by rvsd (RSS on the client
    /// endpoint) puts on its queue K of N: the flows rvsd's worker K owns.
    #[arg(long, value_name = "K/N", value_parser = parse_share, conflicts_with = "rss")]
    shard: Option<(usize, usize)>,
    /// Only the packets a NIC hashing the 5-tuple puts on its queue K of N.
    #[arg(long, value_name = "K/N", value_parser = parse_share)]
    rss: Option<(usize, usize)>,
    /// rvsd's `[workers] flow_seed`, for `--shard`.
    #[arg(long, default_value_t = 0)]
    flow_seed: u64,
    /// `flood`: clients with established connections.
    #[arg(long, default_value_t = 16384)]
    established: u64,
    /// `flood`: legitimate new clients (one a round).
    #[arg(long, default_value_t = 4096)]
    legit: u64,
    /// `flood`: rounds between a legitimate client's SYN and its ACK.
    #[arg(long, default_value_t = 16)]
    rtt_rounds: u64,
    /// `flood`: UDP datagrams to VIP:83 first.
    #[arg(long, default_value_t = 0)]
    lead_in: u64,
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let b = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|e| format!("{s:?} is not a MAC (aa:bb:cc:dd:ee:ff): {e}"))?;
    let b: [u8; 6] = b
        .try_into()
        .map_err(|_| format!("{s:?} is not a 6-byte MAC (aa:bb:cc:dd:ee:ff)"))?;
    Ok(MacAddr(b))
}

/// `K/N`: part K (0-based) of N.
fn parse_share(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{s:?} is not K/N (part K of N, 0 <= K < N)");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

#[derive(Clone)]
struct Opts {
    out: String,
    flows: u64,
    traffic: Traffic,
    size: usize,
    vip: IpAddr,
    vport: u16,
    dst_mac: [u8; 6],
    shard: Option<(usize, usize)>,
    flow_seed: u64,
    /// `flood`: established clients, legitimate new clients, and how many
    /// rounds a handshake's ACK comes after its SYN.
    established: u64,
    legit: u64,
    rtt_rounds: u64,
    lead_in: u64,
    /// Split as a NIC's RSS would, rather than by rvsd's owner.
    rss: bool,
}

fn parse() -> Opts {
    let a = Args::parse();
    let default_vip = if a.ipv6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1))
    };
    Opts {
        out: a.out,
        flows: a.flows,
        traffic: a.traffic,
        size: a.size,
        vip: a.vip.unwrap_or(default_vip),
        vport: a.vport,
        dst_mac: a.dst_mac.0,
        shard: a.shard.or(a.rss),
        flow_seed: a.flow_seed,
        established: a.established,
        legit: a.legit,
        rtt_rounds: a.rtt_rounds,
        lead_in: a.lead_in,
        rss: a.rss.is_some(),
    }
}

fn frame(o: &Opts, flow: u64, flags: u8) -> Vec<u8> {
    let (caddr, cport) = client(o, flow);
    frame_to(o, caddr, cport, o.vport, flow as u32, flags)
}

fn frame_to(o: &Opts, caddr: IpAddr, cport: u16, vport: u16, seq: u32, flags: u8) -> Vec<u8> {
    let spec = FrameSpec {
        size: o.size,
        udp: o.traffic == Traffic::Udp,
        dst_mac: o.dst_mac,
        vip: o.vip,
    };
    frames::frame_to(&spec, caddr, cport, vport, seq, flags)
}

fn client(o: &Opts, flow: u64) -> (IpAddr, u16) {
    frames::client(o.vip, flow)
}

fn write_frame(w: &mut (impl Write + ?Sized), f: &[u8]) -> std::io::Result<()> {
    let len = f.len() as u32;
    w.write_all(&[0; 8])?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(f)
}

/// A spoofed source, as `hping3 --rand-source` makes them, but never twice
/// the same: 100.64.0.0/10 (never the real clients' 10.0.0.0/8), one
/// address after another, then the next port.
fn spoofed(o: &Opts, n: u64) -> (IpAddr, u16) {
    let port = 1024 + (n >> 22) as u16;
    let host = (n & 0x3f_ffff) as u32;
    let addr = match o.vip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(0x6440_0000u32 | host)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from((0xfd00_00ff_u128 << 96) | host as u128)),
    };
    (addr, port)
}

/// The `flood` capture (see the top of this file); returns the JSON
/// summary of what it holds.
fn flood(o: &Opts, w: &mut impl Write) -> std::io::Result<String> {
    let (e, l, f) = (o.established, o.legit.max(1), o.flows);
    let est = |i: u64| client(o, i);
    // Legitimate clients: after the established ones in the same range.
    let legit = |i: u64| client(o, e + i);
    let mut packets = 0u64;
    let mut put = |w: &mut dyn Write, frame: Vec<u8>| -> std::io::Result<()> {
        packets += 1;
        write_frame(w, &frame)
    };
    let udp = Opts {
        traffic: Traffic::Udp,
        ..o.clone()
    };
    let filler = IpAddr::V4(Ipv4Addr::new(10, 255, 255, 1));
    for i in 0..o.lead_in {
        put(w, frame_to(&udp, filler, 5353, 83, i as u32, 0))?;
    }
    for i in 0..e {
        let (a, p) = est(i);
        put(w, frame_to(o, a, p, 80, 1, SYN))?;
        put(w, frame_to(o, a, p, 80, 2, ACK))?;
    }
    let mut est_packets = 2 * e;
    let rounds = l + o.rtt_rounds;
    let mut sent_flood = 0;
    let mut next_est = 0;
    for r in 0..rounds {
        // This round's share of the flood.
        let upto = f * (r + 1) / rounds;
        while sent_flood < upto {
            let (a, p) = spoofed(o, sent_flood);
            put(w, frame_to(o, a, p, 82, sent_flood as u32, SYN))?;
            sent_flood += 1;
        }
        if r < l {
            let (a, p) = legit(r);
            put(w, frame_to(o, a, p, 81, 1, SYN))?;
        }
        if r >= o.rtt_rounds {
            let (a, p) = legit(r - o.rtt_rounds);
            put(w, frame_to(o, a, p, 81, 2, ACK))?;
        }
        // The established clients keep talking: ACKs spread over the rounds.
        let upto = e * (r + 1) / rounds;
        while next_est < upto {
            let (a, p) = est(next_est);
            put(w, frame_to(o, a, p, 80, 3, ACK))?;
            next_est += 1;
            est_packets += 1;
        }
    }
    Ok(serde_json::json!({
        "packets": packets,
        "lead_in": o.lead_in,
        "established_flows": e,
        "established_packets": est_packets,
        "legit_flows": l,
        "flood_syns": f,
    })
    .to_string())
}

fn main() -> std::io::Result<()> {
    let o = parse();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&o.out)?);
    // pcap global header: microsecond timestamps, Ethernet.
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    if o.traffic == Traffic::Flood {
        let summary = flood(&o, &mut w)?;
        w.flush()?;
        std::fs::write(format!("{}.json", o.out), &summary)?;
        eprintln!("{}: {summary}", o.out);
        return Ok(());
    }
    let mut written = 0u64;
    let passes = if o.traffic == Traffic::SynFin { 2 } else { 1 };
    let key = rvs_dataplane::FlowSharding::with_seed(o.flow_seed).rss_key();
    for (pass, flow) in (0..passes).flat_map(|p| (0..o.flows).map(move |f| (p, f))) {
        if let Some((k, n)) = o.shard {
            let (a, p) = client(&o, flow);
            let queue = if o.rss {
                rvs_bench::rss_queue(a, o.vip, p, o.vport, n)
            } else {
                rvs_bench::client_endpoint_rss_queue(&key, a, p, n)
            };
            if queue != k {
                continue;
            }
        }
        written += 1;
        let flags = match o.traffic {
            Traffic::Syn => SYN,
            Traffic::Mix if flow % 10 == 0 => SYN,
            Traffic::SynFin if pass == 0 => SYN,
            Traffic::SynFin => FIN | ACK,
            _ => ACK,
        };
        write_frame(&mut w, &frame(&o, flow, flags))?;
    }
    w.flush()?;
    eprintln!("{}: {} packets", o.out, written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn arguments_are_consistent() {
        Args::command().debug_assert();
    }

    /// The arguments `cargo xtask bench` passes (`xtask/src/bench.rs`).
    #[test]
    fn takes_what_xtask_passes() {
        let a = Args::try_parse_from([
            "pktgen",
            "--out",
            "x.pcap",
            "--flows",
            "1000000",
            "--traffic",
            "synfin",
            "--size",
            "64",
            "--rss",
            "1/2",
            "--flow-seed",
            "42",
            "--ipv6",
        ])
        .unwrap();
        assert_eq!(
            (a.traffic, a.rss, a.shard, a.flow_seed),
            (Traffic::SynFin, Some((1, 2)), None, 42)
        );
        assert!(a.ipv6 && a.vip.is_none());
        let a = Args::try_parse_from([
            "pktgen",
            "--out",
            "f.pcap",
            "--traffic",
            "flood",
            "--flows",
            "262144",
            "--established",
            "16384",
            "--legit",
            "4096",
            "--lead-in",
            "100",
        ])
        .unwrap();
        assert_eq!(
            (a.traffic, a.flows, a.established, a.legit, a.lead_in),
            (Traffic::Flood, 262144, 16384, 4096, 100)
        );
        assert_eq!(a.dst_mac, MacAddr([0x02, 0x70, 0x63, 0x61, 0x70, 0x00]));
    }

    #[test]
    fn refuses_bad_values() {
        for bad in [
            ["--shard", "2/2"],
            ["--shard", "1"],
            ["--dst-mac", "02:00:00:00:00"],
            ["--traffic", "syn-fin"],
        ] {
            assert!(
                Args::try_parse_from(["pktgen", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
        assert!(Args::try_parse_from(["pktgen", "--shard", "0/2", "--rss", "0/2"]).is_err());
    }
}
