//! The generator of `src/fixtures.rs`: each fixture is built here from its
//! description (addresses, ports, MACs, flags, numbers, payload) with this
//! crate's own emitters, setters and checksum functions, and its doc
//! comment is written from the same values, so the two cannot disagree.
//!
//! `fixtures_file_is_the_generators_output` fails when the literal bytes in
//! `src/fixtures.rs` differ from what the generator builds (a wrong fixture,
//! or an emitter or checksum that changed), or when the file's text does.
//! To change a fixture, change its description here and regenerate:
//!
//! ```text
//! RVS_WRITE_FIXTURES=1 cargo test -p rvs-packet --test fixtures
//! ```

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use rvs_packet::arp::{self, Operation};
use rvs_packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use rvs_packet::icmp::{self, IcmpPacket};
use rvs_packet::ipv4::{self, protocol, Ipv4Packet};
use rvs_packet::tcp::{self, flags, TcpSegment};
use rvs_packet::udp::{self, UdpDatagram};
use rvs_packet::ArpPacket;

/// The walkthrough's hosts: a client and the VIP on one link.
const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x50]);
const DIRECTOR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xd1]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 50);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);

/// Linux's initial window for a 1460-byte MSS.
const WINDOW: u16 = 64240;

/// The environment variable that makes the test write the file.
const WRITE_VAR: &str = "RVS_WRITE_FIXTURES";

struct Fixture {
    name: &'static str,
    /// The doc comment, one paragraph, unwrapped.
    doc: String,
    bytes: Vec<u8>,
}

/// The IPv4 header fields a fixture chooses (no options, TOS 0).
struct Ip {
    ident: u16,
    ttl: u8,
    dont_frag: bool,
}

impl Ip {
    fn describe(&self) -> String {
        let df = if self.dont_frag { "DF" } else { "no DF" };
        format!("IPv4 id {}, TTL {}, {df}", self.ident, self.ttl)
    }
}

/// A frame from the client's MAC to the director's carrying an IPv4
/// packet from the client to the VIP, whose `l4_len`-byte payload `l4`
/// writes (checksum included).
fn client_to_vip(ip: &Ip, proto: u8, l4_len: usize, l4: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let ip_len = ipv4::MIN_HEADER_LEN + l4_len;
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ip_len];
    let mut eth = EthernetFrame::new_checked(&mut frame[..]).unwrap();
    eth.set_dst(DIRECTOR_MAC);
    eth.set_src(CLIENT_MAC);
    eth.set_ethertype(EtherType::Ipv4);
    let total_len = u16::try_from(ip_len).unwrap();
    let mut packet = Ipv4Packet::emit(
        eth.payload_mut(),
        CLIENT,
        VIP,
        proto,
        total_len,
        ip.ttl,
        ip.ident,
        ip.dont_frag,
    )
    .unwrap();
    l4(packet.payload_mut());
    frame
}

fn arp_request() -> Fixture {
    let mut frame = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN];
    let mut eth = EthernetFrame::new_checked(&mut frame[..]).unwrap();
    eth.set_dst(MacAddr::BROADCAST);
    eth.set_src(CLIENT_MAC);
    eth.set_ethertype(EtherType::Arp);
    let (sha, spa, tha, tpa) = (CLIENT_MAC, CLIENT, MacAddr::ZERO, VIP);
    ArpPacket::emit(eth.payload_mut(), Operation::Request, sha, spa, tha, tpa).unwrap();
    Fixture {
        name: "ARP_REQUEST",
        doc: format!(
            "An ARP request from the client ({spa}, {sha}) for the VIP {tpa}, \
             broadcast; the target MAC is {tha}."
        ),
        bytes: frame,
    }
}

/// A TCP segment from the client to the VIP, 20-byte header, no options.
struct Tcp {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack_number: u32,
    flags: u8,
    payload: &'static str,
}

impl Tcp {
    fn build(&self, ip: &Ip) -> Vec<u8> {
        let len = tcp::MIN_HEADER_LEN + self.payload.len();
        client_to_vip(ip, protocol::TCP, len, |l4| {
            l4[tcp::MIN_HEADER_LEN..].copy_from_slice(self.payload.as_bytes());
            let (sp, dp, seq, ack) = (self.src_port, self.dst_port, self.seq, self.ack_number);
            let mut seg = TcpSegment::emit(l4, sp, dp, seq, ack, self.flags, WINDOW).unwrap();
            seg.fill_checksum_v4(CLIENT, VIP);
        })
    }

    fn describe(&self) -> String {
        let names = [
            (flags::FIN, "FIN"),
            (flags::SYN, "SYN"),
            (flags::RST, "RST"),
            (flags::PSH, "PSH"),
            (flags::ACK, "ACK"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        let payload = if self.payload.is_empty() {
            "no payload".to_string()
        } else {
            format!("payload {:?}", self.payload)
        };
        format!(
            "{CLIENT}:{} -> VIP {VIP}:{}, {}, seq {}, ack {}, window {WINDOW}, no options, {payload}",
            self.src_port,
            self.dst_port,
            set.join("|"),
            self.seq,
            self.ack_number,
        )
    }
}

/// TCP_SYN: the client opens a connection to the VIP's port 80.
const SYN: (Tcp, Ip) = (
    Tcp {
        src_port: 40000,
        dst_port: 80,
        seq: 1000,
        ack_number: 0,
        flags: flags::SYN,
        payload: "",
    },
    Ip {
        ident: 1,
        ttl: 64,
        dont_frag: true,
    },
);

/// TCP_ACK_DATA: the client's next segment on the same flow.
const ACK_DATA: (Tcp, Ip) = (
    Tcp {
        src_port: 40000,
        dst_port: 80,
        seq: 1001,
        ack_number: 5001,
        flags: flags::PSH | flags::ACK,
        payload: "hello",
    },
    Ip {
        ident: 2,
        ttl: 64,
        dont_frag: true,
    },
);

fn tcp_syn() -> Fixture {
    let (seg, ip) = SYN;
    Fixture {
        name: "TCP_SYN",
        doc: format!(
            "A TCP SYN from the client's MAC ({CLIENT_MAC}) to the director's \
             ({DIRECTOR_MAC}): {}; {}.",
            seg.describe(),
            ip.describe()
        ),
        bytes: seg.build(&ip),
    }
}

fn tcp_ack_data() -> Fixture {
    let (seg, ip) = ACK_DATA;
    Fixture {
        name: "TCP_ACK_DATA",
        doc: format!(
            "The client's ACK with {} bytes of data on TCP_SYN's flow, between the \
             same MACs: {}; {}.",
            seg.payload.len(),
            seg.describe(),
            ip.describe()
        ),
        bytes: seg.build(&ip),
    }
}

fn udp_dns() -> Fixture {
    let (src_port, dst_port) = (50000, 53);
    // Shaped like a DNS query: a 2-byte id, then the question.
    let (query_id, question) = (0x1234u16, "query");
    let mut payload = query_id.to_be_bytes().to_vec();
    payload.extend_from_slice(question.as_bytes());
    let ip = Ip {
        ident: 1,
        ttl: 64,
        dont_frag: false,
    };
    let len = udp::HEADER_LEN + payload.len();
    let bytes = client_to_vip(&ip, protocol::UDP, len, |l4| {
        l4[udp::HEADER_LEN..].copy_from_slice(&payload);
        let mut dgram = UdpDatagram::header_in_place(l4, src_port, dst_port).unwrap();
        dgram.fill_checksum_v4(CLIENT, VIP);
    });
    Fixture {
        name: "UDP_DNS",
        doc: format!(
            "A UDP datagram {CLIENT}:{src_port} -> VIP {VIP}:{dst_port}, between the same MACs \
             as TCP_SYN, with a {}-byte payload: id {query_id:#06x}, then {question:?}; {}.",
            payload.len(),
            ip.describe()
        ),
        bytes,
    }
}

fn icmp_echo() -> Fixture {
    let (echo_id, echo_seq, data) = (7u16, 1u16, "abcdefgh");
    let ip = Ip {
        ident: 1,
        ttl: 64,
        dont_frag: false,
    };
    let len = icmp::HEADER_LEN + data.len();
    let bytes = client_to_vip(&ip, protocol::ICMP, len, |l4| {
        let mut msg = IcmpPacket::new_checked(l4).unwrap();
        msg.set_msg_type(icmp::kind::ECHO_REQUEST);
        msg.set_code(0);
        let [i0, i1] = echo_id.to_be_bytes();
        let [s0, s1] = echo_seq.to_be_bytes();
        msg.set_rest_of_header([i0, i1, s0, s1]);
        msg.data_mut().copy_from_slice(data.as_bytes());
        msg.fill_checksum();
    });
    Fixture {
        name: "ICMP_ECHO",
        doc: format!(
            "An ICMP echo request {CLIENT} -> {VIP}, between the same MACs as TCP_SYN, \
             id {echo_id} seq {echo_seq}, data {data:?}; {}.",
            ip.describe()
        ),
        bytes,
    }
}

fn fixtures() -> Vec<Fixture> {
    vec![
        arp_request(),
        tcp_syn(),
        tcp_ack_data(),
        udp_dns(),
        icmp_echo(),
    ]
}

const HEADER: &str = "\
//! Packet fixtures as literal bytes (katran style), shared by this crate's
//! tests and the dataplane's. Generated, not written by hand: each is built
//! from its description by `crates/packet/tests/fixtures.rs` with this
//! crate's own emitters and checksum functions, and that test fails when
//! these bytes and the generator disagree. To change one, change its
//! description there and run
//! `RVS_WRITE_FIXTURES=1 cargo test -p rvs-packet --test fixtures`.
";

/// Greedy word wrap into `///` lines of at most 80 columns.
fn doc_lines(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("///");
    for word in text.split_whitespace() {
        if line.len() > 3 && line.len() + 1 + word.len() > 80 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("///");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// The whole of `src/fixtures.rs`, laid out as rustfmt lays it out.
fn render(fixtures: &[Fixture]) -> String {
    let mut out = String::from(HEADER);
    for f in fixtures {
        out.push('\n');
        out.push_str(&doc_lines(&f.doc));
        out.push_str(&format!(
            "pub const {}: [u8; {}] = [\n",
            f.name,
            f.bytes.len()
        ));
        for row in f.bytes.chunks(16) {
            let row: Vec<String> = row.iter().map(|b| format!("{b:#04x},")).collect();
            out.push_str(&format!("    {}\n", row.join(" ")));
        }
        out.push_str("];\n");
    }
    out
}

/// The byte arrays in the text of `src/fixtures.rs`, by name.
fn literals(text: &str) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut rest = text;
    while let Some(at) = rest.find("pub const ") {
        rest = &rest[at + "pub const ".len()..];
        let name = rest[..rest.find(':').expect("a `:` after the name")].to_string();
        let open = rest.find("= [").expect("an array") + "= [".len();
        let close = open + rest[open..].find("];").expect("the array's end");
        let bytes = rest[open..close]
            .split(',')
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).expect("a hex byte"))
            .collect();
        found.insert(name, bytes);
        rest = &rest[close..];
    }
    found
}

fn fixtures_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/fixtures.rs")
}

#[test]
fn fixtures_file_is_the_generators_output() {
    let fixtures = fixtures();
    let rendered = render(&fixtures);
    let path = fixtures_path();
    if std::env::var_os(WRITE_VAR).is_some_and(|v| v == "1") {
        std::fs::write(&path, &rendered).unwrap();
        eprintln!("wrote {}", path.display());
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let regenerate =
        format!("regenerate with {WRITE_VAR}=1 cargo test -p rvs-packet --test fixtures");

    let mut literals = literals(&text);
    for f in &fixtures {
        let literal = literals
            .remove(f.name)
            .unwrap_or_else(|| panic!("{} is not in {}; {regenerate}", f.name, path.display()));
        let show = |b: Option<&u8>| b.map_or("nothing".to_string(), |b| format!("{b:#04x}"));
        if let Some(at) =
            (0..literal.len().max(f.bytes.len())).find(|&i| literal.get(i) != f.bytes.get(i))
        {
            panic!(
                "{}: byte {at} is {} in the file but the generator builds {} (lengths {} and \
                 {}). A changed emitter or checksum function is a bug to fix; a changed \
                 description means: {regenerate}",
                f.name,
                show(literal.get(at)),
                show(f.bytes.get(at)),
                literal.len(),
                f.bytes.len()
            );
        }
    }
    assert!(
        literals.is_empty(),
        "{} holds fixtures the generator does not build: {:?}; {regenerate}",
        path.display(),
        literals.keys().collect::<Vec<_>>()
    );
    // The bytes agree; the rest (doc comments, layout) must too.
    if let Some((n, (file, generated))) = text
        .lines()
        .zip(rendered.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "{} line {}: {file:?}, the generator writes {generated:?}; {regenerate}",
            path.display(),
            n + 1
        );
    }
    assert_eq!(text, rendered, "{}: {regenerate}", path.display());
}

/// The compiled constants are the generator's bytes (the check above reads
/// the file's text; this one what other crates link against).
#[test]
fn compiled_constants_are_the_generators_bytes() {
    use rvs_packet::fixtures as lit;
    let compiled: [(&str, &[u8]); 5] = [
        ("ARP_REQUEST", &lit::ARP_REQUEST),
        ("TCP_SYN", &lit::TCP_SYN),
        ("TCP_ACK_DATA", &lit::TCP_ACK_DATA),
        ("UDP_DNS", &lit::UDP_DNS),
        ("ICMP_ECHO", &lit::ICMP_ECHO),
    ];
    let built: BTreeMap<&str, Vec<u8>> =
        fixtures().into_iter().map(|f| (f.name, f.bytes)).collect();
    for (name, bytes) in compiled {
        assert_eq!(Some(&bytes.to_vec()), built.get(name), "{name}");
    }
}

/// Each generated packet reads back through the crate's views as described,
/// its checksums verifying.
#[test]
fn generated_packets_parse_as_described() {
    let built: BTreeMap<&str, Vec<u8>> =
        fixtures().into_iter().map(|f| (f.name, f.bytes)).collect();

    let eth = EthernetFrame::new_checked(&built["ARP_REQUEST"][..]).unwrap();
    assert_eq!((eth.dst(), eth.src()), (MacAddr::BROADCAST, CLIENT_MAC));
    assert_eq!(eth.ethertype(), EtherType::Arp);
    let a = ArpPacket::new_checked(eth.payload()).unwrap();
    assert_eq!(a.operation(), Operation::Request);
    assert_eq!((a.sender_mac(), a.sender_ip()), (CLIENT_MAC, CLIENT));
    assert_eq!((a.target_mac(), a.target_ip()), (MacAddr::ZERO, VIP));

    let ip_of = |name: &str| {
        let frame: &[u8] = &built[name];
        let eth = EthernetFrame::new_checked(frame).unwrap();
        assert_eq!((eth.dst(), eth.src()), (DIRECTOR_MAC, CLIENT_MAC), "{name}");
        assert_eq!(eth.ethertype(), EtherType::Ipv4, "{name}");
        let ip = Ipv4Packet::new_validated(&frame[ethernet::HEADER_LEN..]).unwrap();
        assert!(ip.verify_checksum(), "{name}");
        assert_eq!((ip.src(), ip.dst()), (CLIENT, VIP), "{name}");
        assert_eq!(ip.total_len() as usize, eth.payload().len(), "{name}");
        ip
    };

    for (name, (want, want_ip)) in [("TCP_SYN", SYN), ("TCP_ACK_DATA", ACK_DATA)] {
        let ip = ip_of(name);
        assert_eq!(
            (ip.ident(), ip.ttl()),
            (want_ip.ident, want_ip.ttl),
            "{name}"
        );
        assert_eq!(ip.dont_frag(), want_ip.dont_frag, "{name}");
        assert_eq!(ip.protocol(), protocol::TCP);
        let t = TcpSegment::new_checked(ip.payload()).unwrap();
        let ports = (t.src_port(), t.dst_port());
        assert_eq!(ports, (want.src_port, want.dst_port), "{name}");
        let numbers = (t.seq(), t.ack_number(), t.flags());
        assert_eq!(numbers, (want.seq, want.ack_number, want.flags), "{name}");
        assert_eq!((t.header_len(), t.window()), (20, WINDOW), "{name}");
        assert_eq!(t.payload(), want.payload.as_bytes(), "{name}");
        assert!(t.verify_checksum_v4(CLIENT, VIP), "{name}");
    }

    let ip = ip_of("UDP_DNS");
    assert_eq!((ip.ident(), ip.ttl(), ip.dont_frag()), (1, 64, false));
    assert_eq!(ip.protocol(), protocol::UDP);
    let u = UdpDatagram::new_checked(ip.payload()).unwrap();
    assert_eq!((u.src_port(), u.dst_port()), (50000, 53));
    assert_eq!(u.payload(), b"\x12\x34query");
    assert!(u.verify_checksum_v4(CLIENT, VIP));

    let ip = ip_of("ICMP_ECHO");
    assert_eq!((ip.ident(), ip.ttl(), ip.dont_frag()), (1, 64, false));
    assert_eq!(ip.protocol(), protocol::ICMP);
    let m = IcmpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((m.msg_type(), m.code()), (icmp::kind::ECHO_REQUEST, 0));
    assert_eq!(m.rest_of_header(), [0, 7, 0, 1]);
    assert_eq!(m.data(), b"abcdefgh");
    assert!(m.verify_checksum());
}
