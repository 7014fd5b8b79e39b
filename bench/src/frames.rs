//! The benchmark's generated frames: what `pktgen` writes into captures and
//! `flowgen` builds on the fly, one definition for both so that the two
//! kinds of run carry the same traffic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rvs_packet::checksum;

/// TCP flags of a generated segment.
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;

/// What every generated frame shares.
#[derive(Clone, Copy, Debug)]
pub struct FrameSpec {
    /// Frame size in bytes, FCS included (the frame is 4 bytes shorter).
    pub size: usize,
    /// UDP datagrams rather than TCP segments.
    pub udp: bool,
    /// The director's MAC.
    pub dst_mac: [u8; 6],
    /// The VIP; clients take its family.
    pub vip: IpAddr,
}

/// The client endpoint of flow number `flow`: 10.0.0.1 + flow (or
/// fd00:c::flow), and a port spread over 1024..61024.
pub fn client(vip: IpAddr, flow: u64) -> (IpAddr, u16) {
    let cport = 1024 + (flow.wrapping_mul(7919) % 60000) as u16;
    let caddr = match vip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(0x0a00_0001u32.wrapping_add(flow as u32))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from((0xfd00_000c_u128 << 96) | flow as u128)),
    };
    (caddr, cport)
}

/// A frame from `caddr:cport` to the VIP's `vport`, with sequence number
/// `seq`. SYNs and FINs carry no payload; every frame is padded to the size.
pub fn frame_to(
    spec: &FrameSpec,
    caddr: IpAddr,
    cport: u16,
    vport: u16,
    seq: u32,
    flags: u8,
) -> Vec<u8> {
    let bare = flags & (SYN | FIN) != 0;
    let ipv6 = spec.vip.is_ipv6();
    let l4_hdr = if spec.udp { 8 } else { 20 };
    let ip_hdr = if ipv6 { 40 } else { 20 };
    // Frame size counts the 4-byte FCS, as line rates do; captures omit it.
    let flen = spec
        .size
        .saturating_sub(4)
        .max(14 + ip_hdr + l4_hdr)
        .max(60);
    let payload = if bare { 0 } else { flen - 14 - ip_hdr - l4_hdr };
    let mut f = Vec::with_capacity(flen);
    f.extend_from_slice(&spec.dst_mac);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(if ipv6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let octets = |a: IpAddr| match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let (src, dst) = (octets(caddr), octets(spec.vip));
    let proto = if spec.udp { 17u8 } else { 6 };
    let l4_len = l4_hdr + payload;
    if ipv6 {
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
    } else {
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = !checksum::sum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
    }
    let mut l4 = vec![0u8; l4_len];
    l4[0..2].copy_from_slice(&cport.to_be_bytes());
    l4[2..4].copy_from_slice(&vport.to_be_bytes());
    if spec.udp {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        l4[4..8].copy_from_slice(&seq.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = flags;
        l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    }
    for (k, b) in l4[l4_hdr..].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(31);
    }
    let pseudo = match (caddr, spec.vip) {
        (IpAddr::V4(c), IpAddr::V4(v)) => checksum::pseudo_header_v4(c, v, proto, l4_len as u16),
        (IpAddr::V6(c), IpAddr::V6(v)) => checksum::pseudo_header_v6(c, v, proto, l4_len as u32),
        _ => unreachable!("clients take the VIP's family"),
    };
    let c = !checksum::combine(&[checksum::sum(&l4), pseudo]);
    let at = if spec.udp { 6 } else { 16 };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&l4);
    f.resize(flen, 0);
    f
}

/// The established traffic of `pktgen --traffic ack` over IPv4, one flow's
/// ACK at a time, written into a buffer: flow 0's frame, with the client's
/// address and port and the sequence number patched in and both checksums
/// updated (RFC 1624), so that a generator makes each frame in a few
/// nanoseconds rather than building it.
pub struct AckFrames {
    template: Vec<u8>,
    base_addr: u32,
    base_port: u16,
}

/// Where [`AckFrames`] patches an IPv4 TCP frame.
const IP_CSUM: usize = 24;
const IP_SRC: usize = 26;
const TCP_SPORT: usize = 34;
const TCP_SEQ: usize = 38;
const TCP_CSUM: usize = 50;

impl AckFrames {
    /// `spec.vip` must be IPv4 and `spec.udp` false.
    pub fn new(spec: &FrameSpec, vport: u16) -> AckFrames {
        assert!(spec.vip.is_ipv4() && !spec.udp, "IPv4 TCP only");
        let (caddr, cport) = client(spec.vip, 0);
        let IpAddr::V4(base) = caddr else {
            unreachable!("an IPv4 VIP's clients are IPv4")
        };
        AckFrames {
            template: frame_to(spec, caddr, cport, vport, 0, ACK),
            base_addr: u32::from(base),
            base_port: cport,
        }
    }

    /// Bytes in each frame.
    pub fn len(&self) -> usize {
        self.template.len()
    }

    /// Never: a frame has headers.
    pub fn is_empty(&self) -> bool {
        self.template.is_empty()
    }

    /// Writes flow `flow`'s frame into `out` (at least [`Self::len`]
    /// bytes): the same bytes as `frame_to` for that flow.
    pub fn write(&self, flow: u64, out: &mut [u8]) {
        let out = &mut out[..self.template.len()];
        out.copy_from_slice(&self.template);
        let (caddr, cport) = client(IpAddr::V4(Ipv4Addr::from(self.base_addr)), flow);
        let IpAddr::V4(addr) = caddr else {
            unreachable!("an IPv4 VIP's clients are IPv4")
        };
        let (addr, seq) = (u32::from(addr), flow as u32);
        let get = |o: &[u8], at: usize| u16::from_be_bytes([o[at], o[at + 1]]);
        // update16/32 take and give the header's field itself.
        let ip_csum = checksum::update32(get(out, IP_CSUM), self.base_addr, addr);
        let mut tcp = checksum::update32(get(out, TCP_CSUM), self.base_addr, addr);
        tcp = checksum::update16(tcp, self.base_port, cport);
        tcp = checksum::update32(tcp, 0, seq);
        out[IP_CSUM..IP_CSUM + 2].copy_from_slice(&ip_csum.to_be_bytes());
        out[IP_SRC..IP_SRC + 4].copy_from_slice(&addr.to_be_bytes());
        out[TCP_SPORT..TCP_SPORT + 2].copy_from_slice(&cport.to_be_bytes());
        out[TCP_SEQ..TCP_SEQ + 4].copy_from_slice(&seq.to_be_bytes());
        out[TCP_CSUM..TCP_CSUM + 2].copy_from_slice(&tcp.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: usize) -> FrameSpec {
        FrameSpec {
            size,
            udp: false,
            dst_mac: [2, 0x70, 0x63, 0x61, 0x70, 0],
            vip: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)),
        }
    }

    #[test]
    fn patched_frames_are_the_built_ones() {
        for size in [64, 128, 1500] {
            let s = spec(size);
            let acks = AckFrames::new(&s, 80);
            let mut buf = vec![0u8; 2048];
            for flow in [0, 1, 2, 255, 65_535, 65_536, 999_999, 9_999_999, 16_000_000] {
                let (a, p) = client(s.vip, flow);
                acks.write(flow, &mut buf);
                assert_eq!(
                    &buf[..acks.len()],
                    &frame_to(&s, a, p, 80, flow as u32, ACK)[..],
                    "flow {flow}, {size} B"
                );
            }
        }
    }

    #[test]
    fn checksums_verify() {
        let s = spec(64);
        let acks = AckFrames::new(&s, 80);
        let mut f = vec![0u8; acks.len()];
        acks.write(123_456, &mut f);
        // An IPv4 header with its checksum sums to all ones.
        assert_eq!(checksum::sum(&f[14..34]), 0xffff);
        let (IpAddr::V4(c), IpAddr::V4(v)) = (client(s.vip, 123_456).0, s.vip) else {
            unreachable!()
        };
        let l4 = &f[34..];
        let pseudo = checksum::pseudo_header_v4(c, v, 6, l4.len() as u16);
        assert_eq!(checksum::combine(&[checksum::sum(l4), pseudo]), 0xffff);
    }
}
