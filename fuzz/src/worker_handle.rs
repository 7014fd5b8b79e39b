//! `worker_handle`: arbitrary frames through `Worker::handle`, on a director
//! configured with every forwarding method (DR, NAT, IPIP/GUE/GRE tunnels),
//! IPv6 (DR, NAT, ip6ip6), persistence, a one-packet service, static and
//! learned neighbours, a static route, and one to three workers.
//!
//! Why this file is long (about 1310 lines): one target's harness. The
//! checks below need its state (every worker, the counters before and after
//! each frame, the frames held and handed over), so they are its methods:
//! about 350 lines check the frames that leave, 360 run the input and
//! account for every frame, 300 set the director up (the addresses and MACs
//! the seeds share, its rules, the control lines); frame parsing is in
//! `wire.rs`.
//!
//! # Input
//!
//! The first byte picks the setup (workers, sloppy TCP, a tiny connection
//! table, counting off). Then records, each starting with a tag byte whose
//! low two bits say what it is:
//!
//! - `0`, `1`: a frame received on port 0 or 1, by worker `(tag >> 2 & 3)
//!   % workers`; a little-endian u16 length follows, then the frame. With
//!   bit 4 set, the harness first makes the frame's checksums right
//!   ([`wire::fix_checksums`]), so that mutations reach past them.
//! - `2`: the clock advances by a little-endian u16 shifted left by
//!   `(tag >> 2) & 15` milliseconds; every worker does its housekeeping.
//! - `3`: a control change (one byte: which, from [`CONTROL_MENU`]),
//!   validated on a control replica and replayed on every worker, as
//!   rvsd's control thread does (at most [`MAX_CONTROLS`] per input).
//!
//! # What is checked
//!
//! After every `handle`, besides "no panic":
//!
//! - the counters moved by exactly what the verdict says (one `rx_packets`;
//!   a drop counts once under its reason; a transmitted frame counts once
//!   as forwarded, an ARP reply or an echo reply; a consumed or redirected
//!   frame counts as neither; every frame the worker generated is counted
//!   as an ARP request, a neighbour solicitation or advertisement, or an
//!   ICMP error);
//! - a transmitted frame is well formed: it leaves from its port's MAC to a
//!   known neighbour (or, for a reply, to the asker); IPv4 headers have
//!   IHL 5, a total length equal to the frame's and a right header
//!   checksum; a packet forwarded without encapsulation
//!   differs from the one received only in the fields NAT rewrites
//!   (addresses, ports, checksums, TTL or hop limit, the ICMP error's
//!   quote), its transport checksum is right if it was right when received
//!   (NAT updates it incrementally: checked by recomputing it), and its TTL
//!   went down by one exactly when the director routed it (NAT replies);
//!   a tunnelled packet carries the received packet unchanged, behind
//!   headers whose lengths and checksums are right;
//! - a frame held for its next hop's MAC is as a transmitted one would be,
//!   its destination MAC not filled in yet; it is later sent (counted as
//!   forwarded then, once) or dropped as a neighbour miss;
//! - a redirected frame goes, unchanged, to a worker that handles it
//!   without redirecting it again;
//! - generated frames (ARP and ND requests, ND advertisements, ICMP and
//!   ICMPv6 errors) are well formed with right checksums;
//! - fragments (`worker/frag.rs`): every frame received is accounted for
//!   exactly once, whatever happened to it and to the fragments it let go
//!   (forwarded, held for a next hop, handed over, dropped, waiting for
//!   its first fragment, or split into pieces: each piece counts); a
//!   packet sent in pieces, put back together, passes the checks of a
//!   transmitted one; every piece and every fragment sent later fits its
//!   port's MTU, with a right header; fragments handed to their owner are
//!   handled there without another hand-over;
//! - at the end, with time run forward past every retry, every held frame
//!   was either sent or dropped, and no fragment is still waiting.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rvs_dataplane::counters::DropReason;
use rvs_dataplane::worker::{PortInfo, Route};
use rvs_dataplane::{
    NeighbourTable, Verdict, VipArp, Worker, WorkerConfig, WorkerMsg, WorkerShared,
};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{Command, Director};
use rvs_packet::MacAddr;

use crate::wire::{self, be16, V4, V6};

pub const DIRECTOR0_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd1]);
pub const DIRECTOR1_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd2]);
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x50]);
pub const GATEWAY_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0x01]);
pub const ROUTER_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 1, 0xfe]);
pub const RS_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

pub const PORT0_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 213);
pub const PORT1_ADDR: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 50);
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
pub const VIP_TUN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);
pub const VIP_PERSIST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 12);
/// A NAT real server on the server-side link.
pub const NAT_RS: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 3);
/// A NAT real server whose MAC nobody configured: learned by ARP.
pub const NAT_RS_UNKNOWN: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 4);
/// A NAT real server behind the router (static route).
pub const NAT_RS_ROUTED: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 5);
pub const DR_RS0: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 220);
pub const DR_RS1: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);
pub const GUE_PORT: u16 = 6080;

/// The tunnelling real servers (behind the router) and their tunnels.
pub const TUN_RS: [(Ipv4Addr, Tunnel); 5] = [
    (Ipv4Addr::new(10, 9, 0, 11), Tunnel::Ipip),
    (Ipv4Addr::new(10, 9, 0, 12), Tunnel::Gue { csum: false }),
    (Ipv4Addr::new(10, 9, 0, 13), Tunnel::Gue { csum: true }),
    (Ipv4Addr::new(10, 9, 0, 14), Tunnel::Gre { csum: false }),
    (Ipv4Addr::new(10, 9, 0, 15), Tunnel::Gre { csum: true }),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Ipip,
    Gue { csum: bool },
    Gre { csum: bool },
}

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().expect("an IPv6 literal")
}

pub const PORT0_ADDR6: &str = "fd00:1::1";
pub const PORT1_ADDR6: &str = "fd00:2::1";
pub const CLIENT6: &str = "fd00:1::2";
pub const VIP6: &str = "fd00:99::10";
pub const TUN6_RS: &str = "fd00:2::4";

/// The table, in rvsadm's words (parsed with rvsadm's own parser).
pub const RULES: &str = "\
-A -t 192.168.1.10:80 -s rr
-a -t 192.168.1.10:80 -r 192.168.1.220:80 -g
-a -t 192.168.1.10:80 -r 172.16.0.2:80 -g
-A -t 192.168.1.10:8080 -s wlc
-a -t 192.168.1.10:8080 -r 172.16.0.3:80 -m
-a -t 192.168.1.10:8080 -r 172.16.0.4:8080 -m -w 2
-a -t 192.168.1.10:8080 -r 10.9.0.5:8080 -m
-A -u 192.168.1.10:53 -s rr
-a -u 192.168.1.10:53 -r 172.16.0.3:5353 -m
-a -u 192.168.1.10:53 -r 172.16.0.4:53 -m
-A -t 192.168.1.11:80 -s wrr
-a -t 192.168.1.11:80 -r 10.9.0.11 -i
-a -t 192.168.1.11:80 -r 10.9.0.12 -i --tun-type gue --tun-port 6080
-a -t 192.168.1.11:80 -r 10.9.0.13 -i --tun-type gue --tun-port 6080 --tun-csum
-a -t 192.168.1.11:80 -r 10.9.0.14 -i --tun-type gre
-a -t 192.168.1.11:80 -r 10.9.0.15 -i --tun-type gre --tun-csum
-A -u 192.168.1.11:53 -s rr -o
-a -u 192.168.1.11:53 -r 172.16.0.2 -g
-a -u 192.168.1.11:53 -r 10.9.0.11 -i
-A -t 192.168.1.12:0 -s sh -p 300 -M 255.255.255.0
-a -t 192.168.1.12:0 -r 172.16.0.3 -m
-a -t 192.168.1.12:0 -r 172.16.0.2 -g
-A -u 192.168.1.12:500 -s rr -p 60
-a -u 192.168.1.12:500 -r 172.16.0.3:500 -m
-A -t [fd00:99::10]:80 -s rr
-a -t [fd00:99::10]:80 -r [fd00:2::2]:80 -g
-A -t [fd00:99::10]:8080 -s wlc
-a -t [fd00:99::10]:8080 -r [fd00:2::3]:80 -m
-a -t [fd00:99::10]:8080 -r [fd00:2::5]:8080 -m
-A -t [fd00:99::10]:81 -s rr
-a -t [fd00:99::10]:81 -r [fd00:2::4]:81 -i
-A -u [fd00:99::10]:53 -s rr -p 30
-a -u [fd00:99::10]:53 -r [fd00:2::3]:5353 -m
";

/// Control changes a record can ask for: rvsadm lines (or `--set`).
pub const CONTROL_MENU: &[&str] = &[
    "-d -t 192.168.1.10:80 -r 172.16.0.2:80",
    "-a -t 192.168.1.10:80 -r 172.16.0.2:80 -g",
    "-e -t 192.168.1.10:8080 -r 172.16.0.3:80 -m -w 0",
    "-e -t 192.168.1.10:8080 -r 172.16.0.3:80 -m -w 1",
    "-D -t 192.168.1.10:8080",
    "-A -t 192.168.1.10:8080 -s wlc\n-a -t 192.168.1.10:8080 -r 172.16.0.3:80 -m",
    "--set 2 1 1",
    "--set 900 120 300",
    "-E -t 192.168.1.11:80 -s sh",
    "-d -t [fd00:99::10]:81 -r [fd00:2::4]:81",
    "-C",
    // Everything back (what exists already is refused, as by rvsd).
    RULES,
    "-e -t 192.168.1.11:80 -r 10.9.0.12 -g",
    "-a -t 192.168.1.10:80 -r 172.16.0.4:80 -g",
    "-E -u 192.168.1.12:500 -s rr",
    "-e -t [fd00:99::10]:8080 -r [fd00:2::3]:80 -g",
];

/// Control records an input may have; later ones are skipped.
pub const MAX_CONTROLS: usize = 8;

fn ports() -> Vec<PortInfo> {
    vec![
        PortInfo {
            mac: DIRECTOR0_MAC,
            addr: PORT0_ADDR,
            prefix_len: 24,
            mtu: 1500,
            addr6: Some((v6(PORT0_ADDR6), 64)),
            // One port with the exception path, one without: both answers
            // to a frame for the director get exercised.
            kernel: true,
            vip_arp: VipArp::Always,
        },
        PortInfo {
            mac: DIRECTOR1_MAC,
            addr: PORT1_ADDR,
            prefix_len: 24,
            // Smaller than the client side's: tunnels run out of room.
            mtu: 1400,
            addr6: Some((v6(PORT1_ADDR6), 64)),
            kernel: false,
            vip_arp: VipArp::Always,
        },
    ]
}

fn routes() -> Vec<Route> {
    vec![
        Route {
            dst: Ipv4Addr::UNSPECIFIED,
            prefix_len: 0,
            via: Ipv4Addr::new(192, 168, 1, 1),
        },
        Route {
            dst: Ipv4Addr::new(10, 9, 0, 0),
            prefix_len: 16,
            via: Ipv4Addr::new(172, 16, 0, 254),
        },
    ]
}

/// The setup the first input byte picks.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub workers: usize,
    pub sloppy_tcp: bool,
    pub conn_capacity: usize,
    pub count_stats: bool,
    /// The SYN-flood defences all on (mode 3), or the defaults.
    pub defense: rvs_ipvs::defense::DefenseConfig,
}

impl Setup {
    pub fn from_byte(b: u8) -> Setup {
        Setup {
            workers: [1, 1, 2, 3][(b & 3) as usize],
            sloppy_tcp: b & 4 != 0,
            conn_capacity: if b & 8 != 0 { 4 } else { 1024 },
            count_stats: b & 16 == 0,
            defense: if b & 32 != 0 {
                rvs_ipvs::defense::DefenseConfig {
                    drop_entry: 3,
                    drop_packet: 3,
                    secure_tcp: 3,
                    ..Default::default()
                }
            } else {
                Default::default()
            },
        }
    }
}

/// A parsed rvsadm line: a table command, or `--set`'s timeouts.
type Line = Result<Command, Timeouts>;

/// Parses rvsadm lines into table commands and timeouts.
fn commands(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| {
            let words: Vec<String> = l.split_whitespace().map(String::from).collect();
            match rvsadm::parse::parse(&words, "rvsadm").expect("the harness's own lines parse") {
                rvsadm::parse::Action::Apply(c) => Ok(c),
                rvsadm::parse::Action::SetTimeouts { tcp, tcpfin, udp } => Err(Timeouts {
                    tcp,
                    tcp_fin: tcpfin,
                    udp,
                    ..Timeouts::default()
                }),
                a => panic!("not a table command: {a:?}"),
            }
        })
        .collect()
}

/// [`RULES`] and [`CONTROL_MENU`], parsed once (parsing them for every
/// input took most of the time).
fn parsed() -> &'static (Vec<Line>, Vec<Vec<Line>>) {
    static PARSED: std::sync::OnceLock<(Vec<Line>, Vec<Vec<Line>>)> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| {
        (
            commands(RULES),
            CONTROL_MENU.iter().map(|t| commands(t)).collect(),
        )
    })
}

/// The counters `handle` moves, read before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snap {
    rx: u64,
    forwarded: u64,
    redirected: u64,
    queued: u64,
    arp_replies: u64,
    arp_requests: u64,
    nd_adverts: u64,
    nd_solicits: u64,
    echo_replies: u64,
    icmp_errors_sent: u64,
    icmp_errors_forwarded: u64,
    fragments_held: u64,
    packets_fragmented: u64,
    fragments_made: u64,
    drops: Vec<u64>,
}

impl Snap {
    fn of(w: &Worker) -> Snap {
        let c = &w.shared().counters;
        Snap {
            rx: c.rx_packets.get(),
            forwarded: c.forwarded.get(),
            redirected: c.redirected.get(),
            queued: c.neighbour_queued.get(),
            arp_replies: c.arp_replies_sent.get(),
            arp_requests: c.arp_requests_sent.get(),
            nd_adverts: c.nd_advertisements_sent.get(),
            nd_solicits: c.nd_solicitations_sent.get(),
            echo_replies: c.icmp_echo_replies.get(),
            icmp_errors_sent: c.icmp_errors_sent.get(),
            icmp_errors_forwarded: c.icmp_errors_forwarded.get(),
            fragments_held: c.fragments_held.get(),
            packets_fragmented: c.packets_fragmented.get(),
            fragments_made: c.fragments_made.get(),
            drops: DropReason::ALL.iter().map(|r| c.drops(*r)).collect(),
        }
    }

    fn minus(&self, b: &Snap) -> Snap {
        Snap {
            rx: self.rx - b.rx,
            forwarded: self.forwarded - b.forwarded,
            redirected: self.redirected - b.redirected,
            queued: self.queued - b.queued,
            arp_replies: self.arp_replies - b.arp_replies,
            arp_requests: self.arp_requests - b.arp_requests,
            nd_adverts: self.nd_adverts - b.nd_adverts,
            nd_solicits: self.nd_solicits - b.nd_solicits,
            echo_replies: self.echo_replies - b.echo_replies,
            icmp_errors_sent: self.icmp_errors_sent - b.icmp_errors_sent,
            icmp_errors_forwarded: self.icmp_errors_forwarded - b.icmp_errors_forwarded,
            fragments_held: self.fragments_held - b.fragments_held,
            packets_fragmented: self.packets_fragmented - b.packets_fragmented,
            fragments_made: self.fragments_made - b.fragments_made,
            drops: self
                .drops
                .iter()
                .zip(&b.drops)
                .map(|(a, b)| a - b)
                .collect(),
        }
    }

    fn generated(&self) -> u64 {
        self.arp_requests + self.nd_solicits + self.nd_adverts + self.icmp_errors_sent
    }

    fn drop_total(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// The director under test: its workers, the control replica, and what the
/// checks keep count of.
pub struct Harness {
    setup: Setup,
    ports: Vec<PortInfo>,
    workers: Vec<Worker>,
    /// The control thread's replica, made when the first control record
    /// comes (most inputs have none, and making it costs as much as the
    /// rest of the setup): the table's changes replayed on a new one.
    control: Option<Director>,
    /// The changes that made the table, for that.
    initial: Vec<rvs_ipvs::Change>,
    neigh: Arc<NeighbourTable>,
    templates: Arc<Templates>,
    now_ms: u64,
    /// Frames each worker held for a next hop (counted `neighbour_queued`)
    /// and what became of them.
    held: Vec<u64>,
    released: Vec<u64>,
    held_dropped: Vec<u64>,
    /// What the checks saw, by kind (for the seed tests: every path the
    /// checks cover is reached by some seed).
    pub seen: RefCell<BTreeMap<&'static str, u64>>,
}

impl Harness {
    pub fn new(setup: Setup) -> Harness {
        let neigh = Arc::new(NeighbourTable::new(300_000));
        for (ip, mac) in [
            (IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)), GATEWAY_MAC),
            (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 254)), ROUTER_MAC),
            (IpAddr::V4(CLIENT), CLIENT_MAC),
            (IpAddr::V4(DR_RS0), RS_MAC),
            (IpAddr::V4(DR_RS1), RS_MAC),
            (IpAddr::V4(NAT_RS), RS_MAC),
            (IpAddr::V6(v6(CLIENT6)), CLIENT_MAC),
            (IpAddr::V6(v6("fd00:2::2")), RS_MAC),
            (IpAddr::V6(v6("fd00:2::3")), RS_MAC),
            (IpAddr::V6(v6(TUN6_RS)), RS_MAC),
        ] {
            neigh.add_static(ip, mac);
        }
        let templates = Arc::new(Templates::new());
        let workers = (0..setup.workers)
            .map(|id| {
                Worker::new(
                    WorkerConfig {
                        id,
                        workers: setup.workers,
                        sharding: rvs_dataplane::FlowSharding::with_seed(0),
                        ports: ports(),
                        routes: routes(),
                        conn_capacity: setup.conn_capacity,
                        timeouts: Timeouts::default(),
                        arp_retry_ms: 1000,
                        expire_budget: 64,
                        sloppy_tcp: setup.sloppy_tcp,
                        count_stats: setup.count_stats,
                        defense: setup.defense,
                    },
                    neigh.clone(),
                    templates.clone(),
                    Arc::new(WorkerShared::default()),
                )
            })
            .collect();
        let mut h = Harness {
            setup,
            ports: ports(),
            workers,
            control: None,
            initial: Vec::new(),
            neigh,
            templates,
            now_ms: 1_000,
            held: vec![0; setup.workers],
            released: vec![0; setup.workers],
            held_dropped: vec![0; setup.workers],
            seen: RefCell::default(),
        };
        // The table, as the control thread would send it (the checks were
        // done once: `the_table_is_what_a_director_accepts`).
        for line in &parsed().0 {
            let change = match line {
                Ok(Command::AddService(spec)) => rvs_ipvs::Change::AddService(spec.clone()),
                Ok(Command::AddDest(key, spec)) => rvs_ipvs::Change::AddDest(
                    *key,
                    *spec,
                    rvs_ipvs::DestShared::with_lanes(spec, setup.workers),
                ),
                other => panic!("not a table line: {other:?}"),
            };
            h.broadcast(&WorkerMsg::Change(change.clone()));
            h.initial.push(change);
        }
        h
    }

    /// Runs one fuzz input.
    pub fn run(data: &[u8]) {
        Harness::run_seen(data);
    }

    /// Runs one input; returns what the checks saw.
    pub fn run_seen(data: &[u8]) -> BTreeMap<&'static str, u64> {
        let Some((&setup, mut rest)) = data.split_first() else {
            return BTreeMap::new();
        };
        let mut h = Harness::new(Setup::from_byte(setup));
        let mut controls = 0;
        while let Some((&tag, tail)) = rest.split_first() {
            rest = tail;
            match tag & 3 {
                0 | 1 => {
                    let n = take_u16(&mut rest) as usize;
                    let (frame, tail) = rest.split_at(n.min(rest.len()));
                    rest = tail;
                    let worker = (tag >> 2 & 3) as usize % h.workers.len();
                    let mut frame = frame.to_vec();
                    if tag & 0x10 != 0 {
                        wire::fix_checksums(&mut frame);
                    }
                    h.frame(worker, (tag & 1) as usize, &frame);
                }
                2 => {
                    let d = (take_u16(&mut rest) as u64) << ((tag >> 2) & 15);
                    h.advance(d);
                }
                _ => {
                    let Some((&which, tail)) = rest.split_first() else {
                        break;
                    };
                    rest = tail;
                    // A few per input: each costs as much as many frames.
                    if controls < MAX_CONTROLS {
                        controls += 1;
                        h.control(&parsed().1[which as usize % CONTROL_MENU.len()]);
                    }
                }
            }
        }
        h.finish();
        h.seen.into_inner()
    }

    fn saw(&self, what: &'static str) {
        *self.seen.borrow_mut().entry(what).or_default() += 1;
    }

    /// Applies rvsadm lines (parsed) as rvsd's control thread would: validated on the
    /// control replica, replayed on every worker. Returns how many were
    /// accepted.
    fn control(&mut self, lines: &[Line]) -> usize {
        let mut accepted = 0;
        for c in lines {
            let msg = match c {
                Ok(cmd) => {
                    let control = self.control.get_or_insert_with(|| {
                        let mut d = Director::with_stats_lanes(self.setup.workers);
                        for c in &self.initial {
                            d.replay(c);
                        }
                        d
                    });
                    match control.apply_at(cmd, self.now_ms) {
                        Ok(change) => WorkerMsg::Change(change),
                        Err(_) => continue,
                    }
                }
                Err(t) => WorkerMsg::SetTimeouts(*t),
            };
            accepted += 1;
            self.broadcast(&msg);
        }
        accepted
    }

    /// Replays a control message on every worker, as each does between two
    /// bursts.
    fn broadcast(&mut self, msg: &WorkerMsg) {
        for i in 0..self.workers.len() {
            let c = &self.workers[i].shared().counters;
            let asked = c.arp_requests_sent.get() + c.nd_solicitations_sent.get();
            let g = self.workers[i].generated.len();
            self.workers[i].apply(msg, self.now_ms);
            let c = &self.workers[i].shared().counters;
            // Worker 0 asks for a new real server's MAC: counted.
            assert_eq!(
                (self.workers[i].generated.len() - g) as u64,
                c.arp_requests_sent.get() + c.nd_solicitations_sent.get() - asked,
                "frames generated by a control change are counted"
            );
            self.drain_generated(i, g, false);
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        // The control thread's once-a-second template sweep.
        self.templates.sweep(self.now_ms);
        for i in 0..self.workers.len() {
            self.housekeeping(i);
        }
    }

    /// The end of a poll-loop pass: expiry, and frames whose next hop
    /// answered (or did not in time).
    fn housekeeping(&mut self, i: usize) {
        self.workers[i].refresh_neighbours();
        let before = Snap::of(&self.workers[i]);
        let waiting = self.workers[i].fragments_waiting();
        let g = self.workers[i].generated.len();
        self.workers[i].housekeeping(self.now_ms);
        let d = Snap::of(&self.workers[i]).minus(&before);
        assert_eq!(
            self.workers[i].generated.len(),
            g,
            "housekeeping makes no frame"
        );
        let sent: Vec<(usize, Vec<u8>)> = self.workers[i].sent.drain(..).collect();
        let missed = d.drops[DropReason::NeighbourMiss as usize];
        let orphans = d.drops[DropReason::FragmentOrphan as usize];
        assert_eq!(
            d.forwarded,
            sent.len() as u64,
            "released frames count as forwarded"
        );
        assert_eq!(
            d.drop_total(),
            missed + orphans,
            "housekeeping drops only neighbour misses and fragments whose first never came"
        );
        assert_eq!(
            (waiting - self.workers[i].fragments_waiting()) as u64,
            orphans,
            "a fragment that stops waiting is dropped as an orphan"
        );
        if orphans > 0 {
            self.saw("fragment orphaned");
        }
        assert_eq!(d.rx, 0);
        self.released[i] += sent.len() as u64;
        if !sent.is_empty() {
            self.saw("released");
        }
        self.held_dropped[i] += missed;
        for (port, f) in sent {
            self.check_released(port, &f);
        }
    }

    /// One frame received by worker `w` on `port`, as one poll-loop pass.
    pub fn frame(&mut self, w: usize, port: usize, bytes: &[u8]) {
        let mut f = bytes.to_vec();
        let v = self.handle_checked(w, port, &mut f);
        if let Verdict::Redirect(owner) = v {
            self.saw("redirected");
            assert!(owner < self.workers.len() && owner != w, "{v:?} from {w}");
            // The owner handles the same buffer (run.rs hands the mbuf
            // over its ring).
            assert!(
                f.len() <= bytes.len() && bytes[..f.len()] == f[..],
                "handed over unchanged (link padding aside)"
            );
            let v = self.handle_checked(owner, port, &mut f);
            assert!(
                !matches!(v, Verdict::Redirect(_)),
                "the owner sent it on again: {v:?}"
            );
            self.housekeeping(owner);
        }
        // Fragments that waited for their first, whose connection another
        // worker owns (run.rs copies them into mbufs for its ring).
        let handed: Vec<(usize, usize, Vec<u8>)> = self.workers[w].handed_over.drain(..).collect();
        for (owner, port, mut f) in handed {
            self.saw("fragment handed over");
            assert!(
                owner < self.workers.len() && owner != w,
                "to {owner} from {w}"
            );
            assert!(port < self.ports.len());
            let v = self.handle_checked(owner, port, &mut f);
            assert!(
                !matches!(v, Verdict::Redirect(_)),
                "the owner sent a fragment on again: {v:?}"
            );
            self.housekeeping(owner);
        }
        self.housekeeping(w);
    }

    /// `handle` and every check of its outcome.
    fn handle_checked(&mut self, w: usize, port: usize, f: &mut Vec<u8>) -> Verdict {
        let input = f.clone();
        self.workers[w].refresh_neighbours();
        let before = Snap::of(&self.workers[w]);
        let waiting = self.workers[w].fragments_waiting() as u64;
        let handed = self.workers[w].handed_over.len();
        let g = self.workers[w].generated.len();
        assert!(self.workers[w].sent.is_empty());
        let v = self.workers[w].handle(port, f, self.now_ms);
        let d = Snap::of(&self.workers[w]).minus(&before);
        let generated = (self.workers[w].generated.len() - g) as u64;
        let sent: Vec<(usize, Vec<u8>)> = self.workers[w].sent.drain(..).collect();
        let handed = self.workers[w].handed_over.len() - handed;

        assert_eq!(d.rx, 1, "one rx_packets per frame handled");
        assert_eq!(
            generated,
            d.generated(),
            "generated frames are counted: {d:?}"
        );
        let replies = d.arp_replies + d.echo_replies;
        // Fragments that waited for their first and went with it.
        let released = waiting + d.fragments_held - self.workers[w].fragments_waiting() as u64;
        let fragmenting = released > 0 || d.fragments_held > 0 || d.packets_fragmented > 0;
        // Every frame is accounted for once: this one and those it let go,
        // a frame sent in n pieces as n.
        let unaccounted = match v {
            Verdict::ToKernel => 1,
            Verdict::Consumed if d.queued + d.fragments_held + d.packets_fragmented == 0 => 1,
            _ => 0,
        };
        assert_eq!(
            d.forwarded
                + replies
                + d.queued
                + d.redirected
                + d.drop_total()
                + d.fragments_held
                + unaccounted,
            1 + released + d.fragments_made - d.packets_fragmented,
            "{v:?}, {released} released: {d:?}"
        );
        assert_eq!(
            handed as u64,
            d.redirected - matches!(v, Verdict::Redirect(_)) as u64
        );
        assert!(sent.len() as u64 <= d.forwarded);
        for (out, piece) in &sent {
            self.check_sent(*out, piece);
        }
        if fragmenting {
            self.saw("fragments");
            if let Verdict::Drop(r) = v {
                assert!(d.drops[r as usize] >= 1);
            }
            if released > 0 {
                self.saw("fragments released");
            }
            if let Verdict::Tx(out) = v {
                self.check_tx(port, out, &input, f, replies == 1, false);
            }
            if v == Verdict::Consumed && d.fragments_held == 1 {
                self.saw("fragment held");
                // Kept as it came, its link padding aside.
                assert!(input.starts_with(&f[..]), "kept as it came");
            }
            // Sent in pieces, and nothing else sent: put back together,
            // the pieces are the packet a transmission would have been.
            if d.packets_fragmented == 1 && released == 0 && d.queued == 0 {
                self.saw("sent in fragments");
                let out = sent[0].0;
                assert!(sent.iter().all(|(o, _)| *o == out));
                let whole = reassemble_v4(&sent);
                self.check_tx(port, out, &input, &whole, false, false);
            }
            self.held[w] += d.queued;
            assert!(self.workers[w].conns().len() <= self.setup.conn_capacity);
            self.drain_generated(w, g, false);
            return v;
        }
        assert!(sent.is_empty());
        match v {
            Verdict::Drop(r) => {
                self.saw("dropped");
                assert_eq!(d.drop_total(), 1, "{v:?}: {d:?}");
                assert_eq!(d.drops[r as usize], 1, "{v:?}: {d:?}");
                assert_eq!((d.forwarded, d.redirected, replies, d.queued), (0, 0, 0, 0));
            }
            Verdict::Redirect(_) => {
                assert_eq!(d.drop_total(), 0, "{v:?}: {d:?}");
                assert_eq!((d.forwarded, d.redirected, replies, d.queued), (0, 1, 0, 0));
                assert_eq!(d.icmp_errors_forwarded, 0);
            }
            Verdict::Tx(out) => {
                assert_eq!(d.drop_total(), 0, "{v:?}: {d:?}");
                assert_eq!(d.redirected + d.queued, 0, "{v:?}: {d:?}");
                assert_eq!(d.forwarded + replies, 1, "{v:?}: {d:?}");
                self.check_tx(port, out, &input, f, replies == 1, false);
            }
            Verdict::ToKernel => {
                self.saw("to kernel");
                assert!(
                    self.ports[port].kernel,
                    "only a port with a kernel interface hands frames to it"
                );
                assert_eq!(d.drop_total(), 0, "{v:?}: {d:?}");
                assert_eq!((d.forwarded, d.redirected, replies, d.queued), (0, 0, 0, 0));
                assert_eq!(generated, 0, "{v:?}: {d:?}");
            }
            Verdict::Consumed => {
                assert_eq!(d.drop_total(), 0, "{v:?}: {d:?}");
                assert_eq!((d.forwarded, d.redirected, replies), (0, 0, 0), "{d:?}");
                if d.queued == 1 {
                    self.saw("held");
                    self.held[w] += 1;
                    let out = self
                        .ports
                        .iter()
                        .position(|p| f.len() >= 12 && f[6..12] == p.mac.0)
                        .expect("a held frame is addressed from one of our ports");
                    self.check_tx(port, out, &input, f, false, true);
                } else {
                    assert_eq!(d.queued, 0);
                }
            }
        }
        // An ICMP error is counted as passed on only when it is.
        if d.icmp_errors_forwarded > 0 {
            self.saw("icmp error forwarded");
            assert_eq!(d.icmp_errors_forwarded, 1);
            assert!(
                matches!(v, Verdict::Tx(_)) || d.queued == 1,
                "icmp_errors_forwarded counted, but {v:?}"
            );
        }
        assert!(self.workers[w].conns().len() <= self.setup.conn_capacity);
        self.drain_generated(w, g, false);
        v
    }

    /// Checks and removes worker `w`'s generated frames from index `from`:
    /// made by the director, or `released` (held frames whose next hop
    /// answered).
    fn drain_generated(&mut self, w: usize, from: usize, released: bool) {
        let frames: Vec<(usize, Vec<u8>)> = self.workers[w].generated.drain(from..).collect();
        for (port, f) in frames {
            if released {
                self.check_released(port, &f);
            } else {
                self.check_generated(port, &f);
            }
        }
    }

    /// Runs time forward past every neighbour retry: every held frame must
    /// have been sent or dropped by then.
    pub fn finish(&mut self) {
        self.advance(10_000);
        for i in 0..self.workers.len() {
            assert_eq!(
                self.workers[i].fragments_waiting(),
                0,
                "worker {i}: no fragment waits for ever"
            );
            assert_eq!(
                self.held[i],
                self.released[i] + self.held_dropped[i],
                "worker {i}: held frames are all sent or dropped"
            );
        }
    }

    fn known_mac(&self, mac: [u8; 6]) -> bool {
        self.neigh.entries().iter().any(|(_, e)| e.mac.0 == mac)
    }

    /// A frame `handle` said to send out of `out` (or held for its next hop,
    /// `held`), given the frame it received.
    fn check_tx(
        &self,
        in_port: usize,
        out: usize,
        input: &[u8],
        output: &[u8],
        reply: bool,
        held: bool,
    ) {
        assert!(out < self.ports.len());
        let e = wire::eth(output).expect("an Ethernet header");
        let ie = wire::eth(input).expect("it came with one");
        assert_eq!(e.src, self.ports[out].mac.0, "from the port's own MAC");
        if reply {
            assert_eq!(out, in_port, "replies leave where the request came in");
            // ARP replies go to the sender hardware address the request
            // gives (as Linux's arp_process does), echo replies to the
            // Ethernet source.
            let asker = if ie.ethertype == wire::ETHERTYPE_ARP {
                &ie.payload[8..14]
            } else {
                &ie.src[..]
            };
            assert_eq!(&e.dst[..], asker, "replies go to the asker");
        } else if held {
            assert_eq!(e.dst, [0; 6], "the MAC is filled in on release");
        } else {
            assert!(
                self.known_mac(e.dst),
                "to a neighbour's MAC: {:02x?}",
                e.dst
            );
        }
        assert_eq!(e.ethertype, ie.ethertype, "the same network protocol");
        match e.ethertype {
            wire::ETHERTYPE_ARP => {
                self.saw("arp reply");
                self.check_arp_reply(out, &ie, &e)
            }
            wire::ETHERTYPE_IPV4 => self.check_v4_tx(out, ie.payload, e.payload, reply),
            wire::ETHERTYPE_IPV6 => self.check_v6_tx(out, ie.payload, e.payload, reply),
            t => panic!("sent a frame of ethertype {t:#06x}"),
        }
    }

    fn check_arp_reply(&self, out: usize, ie: &wire::Eth<'_>, e: &wire::Eth<'_>) {
        let (a, q) = (e.payload, ie.payload);
        assert!(a.len() >= 28);
        assert_eq!(&a[0..6], &[0, 1, 8, 0, 6, 4], "Ethernet/IPv4 ARP");
        assert_eq!(be16(a, 6), 2, "a reply");
        assert_eq!(&a[8..14], &self.ports[out].mac.0, "our MAC");
        assert_eq!(&a[14..18], &q[24..28], "for the address asked about");
        assert_eq!(&a[18..24], &q[8..14], "to the asker's MAC");
        assert_eq!(&a[24..28], &q[14..18], "and address");
    }

    fn check_v4_tx(&self, out: usize, input: &[u8], output: &[u8], reply: bool) {
        let i = V4::parse(input).expect("only a valid IPv4 packet is sent on");
        let o = V4::parse(output).expect("a valid IPv4 header");
        assert_eq!(o.ihl, 20, "no options");
        assert!(o.header_ok(), "IPv4 header checksum");
        if !reply {
            assert_eq!(o.pkt.len(), output.len(), "link padding removed");
        }
        let tunnel = TUN_RS.iter().find(|(a, _)| *a == o.dst()).map(|(_, t)| *t);
        if let (Some(t), true) = (tunnel, o.src() == self.ports[out].addr) {
            if matches!(
                (t, o.proto()),
                (Tunnel::Ipip, wire::IPIP)
                    | (Tunnel::Gue { .. }, wire::UDP)
                    | (Tunnel::Gre { .. }, wire::GRE)
            ) {
                self.saw(match t {
                    Tunnel::Ipip => "ipip",
                    Tunnel::Gue { csum: false } => "gue",
                    Tunnel::Gue { csum: true } => "gue with checksum",
                    Tunnel::Gre { csum: false } => "gre",
                    Tunnel::Gre { csum: true } => "gre with checksum",
                });
                return check_tunnel_v4(t, &i, &o);
            }
        }
        if reply {
            self.saw("echo reply");
            return check_echo_reply_v4(&i, &o);
        }
        assert_eq!(o.pkt.len(), i.pkt.len(), "NAT and DR keep the length");
        // Only what NAT rewrites may differ.
        let ihl = i.ihl;
        let allowed = |at: usize| -> bool {
            if at == 8 || (10..20).contains(&at) {
                return true;
            }
            let l4 = at.wrapping_sub(ihl);
            match i.proto() {
                wire::TCP => l4 < 4 || (16..18).contains(&l4),
                wire::UDP => l4 < 4 || (6..8).contains(&l4),
                wire::ICMP => {
                    // The checksum, and the quoted packet's addresses,
                    // header checksum and ports.
                    let q = l4.wrapping_sub(8);
                    let qihl = i.payload().get(8).map_or(20, |b| (b & 0x0f) as usize * 4);
                    (2..4).contains(&l4) || (10..20).contains(&q) || (qihl..qihl + 4).contains(&q)
                }
                _ => false,
            }
        };
        for at in wire::diff_offsets(i.pkt, o.pkt) {
            assert!(
                allowed(at),
                "byte {at} of the IPv4 packet changed ({:#04x} -> {:#04x}) (protocol {})",
                i.pkt[at],
                o.pkt[at],
                i.proto()
            );
        }
        // Routed by the director (a NAT reply, or an ICMP error from the
        // server side): the source became the VIP, and the TTL went down.
        let routed = o.src() != i.src();
        self.saw(match (i.proto(), routed, o.dst() != i.dst()) {
            (wire::ICMP, true, _) => "icmp error to the client (NAT)",
            (wire::ICMP, false, true) => "icmp error to the server (NAT)",
            (wire::ICMP, false, false) => "icmp error passed on",
            (_, true, _) => "nat reply",
            (_, false, true) => "nat",
            (_, false, false) => "direct routing",
        });
        if routed {
            assert!(i.ttl() > 1, "routed with TTL {} (must be dropped)", i.ttl());
            assert_eq!(
                o.ttl(),
                i.ttl() - 1,
                "a routed packet's TTL goes down by one"
            );
        } else {
            assert_eq!(o.ttl(), i.ttl(), "TTL untouched");
        }
        if i.transport_ok() == Some(true) {
            assert_eq!(
                o.transport_ok(),
                Some(true),
                "the transport checksum was right and is no more (protocol {})",
                i.proto()
            );
        }
        if i.proto() == wire::UDP && i.payload().len() >= 8 {
            assert_eq!(
                be16(i.payload(), 6) == 0,
                be16(o.payload(), 6) == 0,
                "a UDP datagram without checksum stays without, one with keeps one"
            );
        }
        if i.proto() == wire::ICMP {
            // The quoted header's checksum, kept right when rewritten.
            let (qi, qo) = (&i.payload()[8..], &o.payload()[8..]);
            if qi.len() >= 20 {
                let qihl = (qi[0] & 0x0f) as usize * 4;
                if qihl >= 20 && qi.len() >= qihl && wire::sums_to_ones(&[&qi[..qihl]]) {
                    assert!(
                        wire::sums_to_ones(&[&qo[..qihl]]),
                        "the quoted header's checksum"
                    );
                }
            }
        }
    }

    fn check_v6_tx(&self, out: usize, input: &[u8], output: &[u8], reply: bool) {
        let i = V6::parse(input).expect("only a valid IPv6 packet is sent on");
        let o = V6::parse(output).expect("a valid IPv6 header");
        assert_eq!(
            o.pkt.len(),
            output.len(),
            "payload length matches the frame"
        );
        let port6 = self.ports[out].addr6.map(|(a, _)| a);
        if o.next_header() == wire::IPV6_IN && o.dst() == v6(TUN6_RS) && Some(o.src()) == port6 {
            self.saw("ip6ip6");
            assert_eq!(o.payload(), i.pkt, "ip6ip6 carries the packet unchanged");
            assert_eq!(o.hop_limit(), 64);
            assert_eq!(
                (o.pkt[0] & 0x0f) << 4 | o.pkt[1] >> 4,
                (i.pkt[0] & 0x0f) << 4 | i.pkt[1] >> 4,
                "traffic class copied"
            );
            return;
        }
        if reply {
            self.saw("echo reply v6");
            assert_eq!(i.next_header(), wire::ICMPV6);
            assert_eq!((i.payload()[0], o.payload()[0]), (128, 129), "echo reply");
            assert_eq!((o.src(), o.dst()), (i.dst(), i.src()));
            assert_eq!(o.hop_limit(), 64);
            assert_eq!(o.transport_ok(), Some(true), "ICMPv6 checksum");
            assert_eq!(
                &o.payload()[4..],
                &i.payload()[4..],
                "same id, sequence, data"
            );
            return;
        }
        assert_eq!(o.pkt.len(), i.pkt.len(), "NAT and DR keep the length");
        // The transport header, behind extension headers too; a later
        // fragment has none (only its addresses may change).
        let (proto, l4_at) = i.upper().unwrap_or((0, i.pkt.len()));
        let allowed = |at: usize| -> bool {
            if at == 7 || (8..40).contains(&at) {
                return true;
            }
            let l4 = at.wrapping_sub(l4_at);
            match proto {
                wire::TCP => l4 < 4 || (16..18).contains(&l4),
                wire::UDP => l4 < 4 || (6..8).contains(&l4),
                wire::ICMPV6 => {
                    let q = l4.wrapping_sub(8);
                    (2..4).contains(&l4) || (8..44).contains(&q)
                }
                _ => false,
            }
        };
        for at in wire::diff_offsets(i.pkt, o.pkt) {
            assert!(
                allowed(at),
                "byte {at} of the IPv6 packet changed ({:#04x} -> {:#04x})",
                i.pkt[at],
                o.pkt[at]
            );
        }
        let routed = o.src() != i.src();
        self.saw(match (i.next_header(), routed, o.dst() != i.dst()) {
            (wire::ICMPV6, _, _) => "icmpv6 error (NAT)",
            (_, true, _) => "nat reply v6",
            (_, false, true) => "nat v6",
            (_, false, false) => "direct routing v6",
        });
        if routed && i.next_header() != wire::ICMPV6 {
            assert!(i.hop_limit() > 1, "routed with hop limit {}", i.hop_limit());
            assert_eq!(o.hop_limit(), i.hop_limit() - 1, "a NAT reply is routed");
        } else if !routed {
            assert_eq!(o.hop_limit(), i.hop_limit());
        }
        if i.transport_ok() == Some(true) {
            assert_eq!(
                o.transport_ok(),
                Some(true),
                "the transport checksum was right"
            );
        }
    }

    /// A frame the director made itself: an ARP request, a neighbour
    /// solicitation or advertisement, an ICMP or ICMPv6 error.
    fn check_generated(&self, port: usize, f: &[u8]) {
        assert!(port < self.ports.len());
        let e = wire::eth(f).expect("an Ethernet header");
        assert_eq!(e.src, self.ports[port].mac.0);
        match e.ethertype {
            wire::ETHERTYPE_ARP => {
                let a = e.payload;
                self.saw("arp request");
                assert_eq!(&a[0..8], &[0, 1, 8, 0, 6, 4, 0, 1], "an ARP request");
                assert_eq!(e.dst, [0xff; 6]);
                assert_eq!(&a[8..14], &self.ports[port].mac.0);
                assert_eq!(&a[14..18], &self.ports[port].addr.octets());
            }
            wire::ETHERTYPE_IPV4 => {
                let o = V4::parse(e.payload).expect("a valid IPv4 header");
                assert!(o.header_ok(), "IPv4 header checksum");
                assert_eq!(o.pkt.len(), e.payload.len());
                assert_eq!(o.proto(), wire::ICMP);
                assert_eq!(&o.payload()[..2], &[3, 4], "fragmentation needed");
                self.saw("fragmentation needed");
                assert_eq!(o.transport_ok(), Some(true), "ICMP checksum");
            }
            wire::ETHERTYPE_IPV6 => {
                let o = V6::parse(e.payload).expect("a valid IPv6 header");
                assert_eq!(o.pkt.len(), e.payload.len());
                assert_eq!(o.next_header(), wire::ICMPV6);
                match o.payload()[0] {
                    2 => self.saw("packet too big"),
                    t @ (135 | 136) => {
                        self.saw(if t == 135 {
                            "neighbour solicitation"
                        } else {
                            "neighbour advertisement"
                        });
                        assert_eq!(o.hop_limit(), 255, "ND's hop limit");
                    }
                    t => panic!("generated ICMPv6 type {t}"),
                }
                assert_eq!(o.transport_ok(), Some(true), "ICMPv6 checksum");
            }
            t => panic!("generated a frame of ethertype {t:#06x}"),
        }
    }

    /// A frame forwarded apart from a verdict, when it was handled: a piece
    /// of a packet too big for its link, or a fragment that waited for its
    /// first. It leaves from its port's MAC to a known neighbour and fits
    /// the port's MTU, with a right header.
    fn check_sent(&self, port: usize, f: &[u8]) {
        self.check_released(port, f);
        let e = wire::eth(f).expect("an Ethernet header");
        assert!(
            e.payload.len() <= self.ports[port].mtu as usize,
            "{} bytes through an MTU of {}",
            e.payload.len(),
            self.ports[port].mtu
        );
        if e.ethertype == wire::ETHERTYPE_IPV4 {
            assert_eq!(V4::parse(e.payload).map(|o| o.ihl), Some(20));
        }
    }

    /// A held frame, sent once its next hop's MAC is known (it was checked
    /// in full when it was held).
    fn check_released(&self, port: usize, f: &[u8]) {
        assert!(port < self.ports.len());
        let e = wire::eth(f).expect("an Ethernet header");
        assert_eq!(e.src, self.ports[port].mac.0);
        assert!(
            self.known_mac(e.dst),
            "to a neighbour's MAC: {:02x?}",
            e.dst
        );
        match e.ethertype {
            wire::ETHERTYPE_IPV4 => {
                let o = V4::parse(e.payload).expect("a valid IPv4 header");
                assert!(o.header_ok());
                assert_eq!(o.pkt.len(), e.payload.len());
            }
            wire::ETHERTYPE_IPV6 => {
                let o = V6::parse(e.payload).expect("a valid IPv6 header");
                assert_eq!(o.pkt.len(), e.payload.len());
            }
            t => panic!("released a frame of ethertype {t:#06x}"),
        }
    }
}

/// IPv4 fragments (Ethernet frames, in order) put back together into one
/// frame: the first's Ethernet and IPv4 headers, the last's more-fragments
/// flag, the total length of all, the checksum recomputed.
fn reassemble_v4(pieces: &[(usize, Vec<u8>)]) -> Vec<u8> {
    let first = &pieces[0].1;
    let mut whole = first[..14 + 20].to_vec();
    let mut next = None;
    for (_, p) in pieces {
        let o = V4::parse(&p[14..]).expect("a piece is a valid IPv4 packet");
        assert!(o.header_ok(), "a piece's header checksum");
        let off = (be16(o.pkt, 6) & 0x1fff) as usize * 8;
        assert!(next.is_none_or(|n| n == off), "pieces in order, no gap");
        next = Some(off + o.payload().len());
        assert_eq!(o.pkt[..2], first[14..16], "the same header");
        assert_eq!(o.pkt[4..6], first[18..20], "the same identification");
        assert_eq!(o.pkt[8..10], first[22..24], "the same TTL and protocol");
        assert_eq!(o.pkt[12..20], first[26..34], "the same addresses");
        whole.extend_from_slice(o.payload());
    }
    let last = &pieces[pieces.len() - 1].1;
    let total = (whole.len() - 14) as u16;
    whole[16..18].copy_from_slice(&total.to_be_bytes());
    whole[20] = (whole[20] & !0x20) | (last[20] & 0x20);
    whole[24..26].copy_from_slice(&[0, 0]);
    let c = wire::checksum(&[&whole[14..34]]);
    whole[24..26].copy_from_slice(&c.to_be_bytes());
    whole
}

fn check_echo_reply_v4(i: &V4<'_>, o: &V4<'_>) {
    assert_eq!(i.proto(), wire::ICMP);
    assert_eq!(
        (i.payload()[0], o.payload()[0]),
        (8, 0),
        "echo request → reply"
    );
    assert_eq!((o.src(), o.dst()), (i.dst(), i.src()));
    assert_eq!(o.ttl(), 64);
    assert_eq!(o.transport_ok(), Some(true), "ICMP checksum");
    assert_eq!(
        &o.payload()[4..],
        &i.payload()[4..],
        "same id, sequence, data"
    );
}

fn check_tunnel_v4(t: Tunnel, i: &V4<'_>, o: &V4<'_>) {
    assert_eq!(o.ttl(), 64);
    assert_eq!(o.pkt[1], i.pkt[1], "TOS copied");
    assert_eq!(
        be16(o.pkt, 6) & 0x4000,
        be16(i.pkt, 6) & 0x4000,
        "DF copied"
    );
    let p = o.payload();
    let inner = match t {
        Tunnel::Ipip => p,
        Tunnel::Gue { csum } => {
            assert_eq!(be16(p, 4) as usize, p.len(), "UDP length");
            assert_eq!(be16(p, 2), GUE_PORT);
            assert_eq!(
                be16(p, 0) & 0xc000,
                0xc000,
                "source port in the ephemeral range"
            );
            assert_eq!(&p[8..12], &[0, wire::IPIP, 0, 0], "GUE v0 carrying IPv4");
            assert_eq!(be16(p, 6) != 0, csum, "a UDP checksum exactly when asked");
            assert_eq!(o.transport_ok(), Some(true), "GUE's UDP checksum");
            &p[12..]
        }
        Tunnel::Gre { csum } => {
            assert_eq!(be16(p, 2), 0x0800, "GRE carrying IPv4");
            if csum {
                assert_eq!(p[0], 0x80);
                assert!(wire::sums_to_ones(&[p]), "GRE checksum");
                &p[8..]
            } else {
                assert_eq!(p[0], 0);
                &p[4..]
            }
        }
    };
    assert_eq!(inner, i.pkt, "the tunnel carries the packet unchanged");
}

fn take_u16(rest: &mut &[u8]) -> u16 {
    let v = match rest {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        [a] => *a as u16,
        [] => 0,
    };
    *rest = &rest[rest.len().min(2)..];
    v
}

/// An input of the format above, for seeds and tests.
#[derive(Debug, Clone, Default)]
pub struct Input(pub Vec<u8>);

impl Input {
    pub fn new(setup: u8) -> Input {
        Input(vec![setup])
    }

    /// A frame, its checksums to be fixed by the harness.
    pub fn frame(self, worker: u8, port: u8, f: &[u8]) -> Input {
        self.frame_as_is(worker, port | 0x10, f)
    }

    /// A frame, handed over as it is.
    pub fn frame_as_is(mut self, worker: u8, port: u8, f: &[u8]) -> Input {
        self.0.push(worker << 2 | port);
        self.0.extend_from_slice(&(f.len() as u16).to_le_bytes());
        self.0.extend_from_slice(f);
        self
    }

    pub fn advance(mut self, ms: u16) -> Input {
        self.0.push(2);
        self.0.extend_from_slice(&ms.to_le_bytes());
        self
    }

    pub fn control(mut self, which: u8) -> Input {
        self.0.extend_from_slice(&[3, which]);
        self
    }
}
