//! What a frame on the wire must look like, checked independently of
//! `rvs-packet` (a bug shared by the dataplane and its own parser must not
//! hide itself): the Internet checksum written out again, and readers that
//! say `None` for anything they cannot parse.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;

pub const ICMP: u8 = 1;
pub const IPIP: u8 = 4;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
/// The IPv6 fragment header's next-header number.
pub const FRAGMENT6: u8 = 44;
pub const IPV6_IN: u8 = 41;
pub const GRE: u8 = 47;
pub const ICMPV6: u8 = 58;

pub fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// RFC 1071's sum over `data` (big-endian words, an odd byte padded),
/// added to `acc`; not folded.
fn add(mut acc: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u16::from_be_bytes([w[0], w[1]]) as u64;
    }
    if let [b] = words.remainder() {
        acc += (*b as u64) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether the data, checksum field included, sums to all ones.
pub fn sums_to_ones(parts: &[&[u8]]) -> bool {
    fold(parts.iter().fold(0, |acc, p| add(acc, p))) == 0xffff
}

/// The checksum that makes `parts` (their checksum field zero) sum to all
/// ones.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    !fold(parts.iter().fold(0, |acc, p| add(acc, p)))
}

pub fn pseudo_v4(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(12);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

pub fn pseudo_v6(src: &[u8], dst: &[u8], nh: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(40);
    p.extend_from_slice(src);
    p.extend_from_slice(dst);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, nh]);
    p
}

/// An IPv4 packet whose header reads sanely: version 4, a header length of
/// at least 20 that fits, a total length within the buffer.
#[derive(Debug, Clone, Copy)]
pub struct V4<'a> {
    /// Exactly the packet: `total_len` bytes.
    pub pkt: &'a [u8],
    pub ihl: usize,
}

impl<'a> V4<'a> {
    pub fn parse(b: &'a [u8]) -> Option<V4<'a>> {
        if b.len() < 20 || b[0] >> 4 != 4 {
            return None;
        }
        let ihl = (b[0] & 0x0f) as usize * 4;
        let total = be16(b, 2) as usize;
        if ihl < 20 || total < ihl || total > b.len() {
            return None;
        }
        Some(V4 {
            pkt: &b[..total],
            ihl,
        })
    }

    pub fn proto(&self) -> u8 {
        self.pkt[9]
    }

    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.pkt[12], self.pkt[13], self.pkt[14], self.pkt[15])
    }

    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.pkt[16], self.pkt[17], self.pkt[18], self.pkt[19])
    }

    pub fn ttl(&self) -> u8 {
        self.pkt[8]
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.pkt[self.ihl..]
    }

    pub fn header_ok(&self) -> bool {
        sums_to_ones(&[&self.pkt[..self.ihl]])
    }

    pub fn is_fragment(&self) -> bool {
        be16(self.pkt, 6) & 0x3fff != 0
    }

    /// Whether the transport checksum is right: TCP and ICMP over the
    /// payload, UDP over its own length (zero: none, which is right). None
    /// for other protocols, fragments, or a transport header cut short.
    pub fn transport_ok(&self) -> Option<bool> {
        if self.is_fragment() {
            return None;
        }
        let p = self.payload();
        let (s, d) = (&self.pkt[12..16], &self.pkt[16..20]);
        match self.proto() {
            TCP if p.len() >= 20 => Some(sums_to_ones(&[&pseudo_v4(s, d, TCP, p.len()), p])),
            UDP if p.len() >= 8 => {
                let len = be16(p, 4) as usize;
                if len < 8 || len > p.len() {
                    return None;
                }
                if be16(p, 6) == 0 {
                    return Some(true);
                }
                Some(sums_to_ones(&[&pseudo_v4(s, d, UDP, len), &p[..len]]))
            }
            ICMP if p.len() >= 8 => Some(sums_to_ones(&[p])),
            _ => None,
        }
    }
}

/// An IPv6 packet: version 6, payload length within the buffer.
#[derive(Debug, Clone, Copy)]
pub struct V6<'a> {
    /// Exactly the packet: 40 + payload length bytes.
    pub pkt: &'a [u8],
}

impl<'a> V6<'a> {
    pub fn parse(b: &'a [u8]) -> Option<V6<'a>> {
        if b.len() < 40 || b[0] >> 4 != 6 {
            return None;
        }
        let total = 40 + be16(b, 4) as usize;
        if total > b.len() {
            return None;
        }
        Some(V6 { pkt: &b[..total] })
    }

    pub fn next_header(&self) -> u8 {
        self.pkt[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.pkt[7]
    }

    pub fn src(&self) -> Ipv6Addr {
        <[u8; 16]>::try_from(&self.pkt[8..24]).unwrap().into()
    }

    pub fn dst(&self) -> Ipv6Addr {
        <[u8; 16]>::try_from(&self.pkt[24..40]).unwrap().into()
    }

    pub fn payload(&self) -> &'a [u8] {
        &self.pkt[40..]
    }

    /// Past the options, routing and fragment headers (the checks' own
    /// walk, written apart from rvs-packet's): the transport protocol and
    /// where its header starts, or `None` for a fragment other than the
    /// first (no transport header) or a chain that does not parse.
    pub fn upper(&self) -> Option<(u8, usize)> {
        let (mut nh, mut at) = (self.next_header(), 40);
        loop {
            match nh {
                0 | 43 | 60 => {
                    let h = self.pkt.get(at..at + 2)?;
                    nh = h[0];
                    at += (h[1] as usize + 1) * 8;
                }
                FRAGMENT6 => {
                    let h = self.pkt.get(at..at + 8)?;
                    if be16(h, 2) & 0xfff8 != 0 {
                        return None;
                    }
                    nh = h[0];
                    at += 8;
                }
                _ => return (at <= self.pkt.len()).then_some((nh, at)),
            }
        }
    }

    /// As [`V4::transport_ok`]; in IPv6 every transport has a checksum.
    pub fn transport_ok(&self) -> Option<bool> {
        let p = self.payload();
        let (s, d) = (&self.pkt[8..24], &self.pkt[24..40]);
        let nh = self.next_header();
        let len = match nh {
            TCP if p.len() >= 20 => p.len(),
            UDP if p.len() >= 8 => {
                let len = be16(p, 4) as usize;
                if len < 8 || len > p.len() {
                    return None;
                }
                len
            }
            ICMPV6 if p.len() >= 8 => p.len(),
            _ => return None,
        };
        Some(sums_to_ones(&[&pseudo_v6(s, d, nh, len), &p[..len]]))
    }
}

fn fill(l4: &mut [u8], at: usize, parts: &[&[u8]]) {
    l4[at..at + 2].fill(0);
    let c = checksum(&[parts, &[&l4[..]]].concat());
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Makes the checksums of an IPv4 or IPv6 frame right (the IPv4 header's,
/// and TCP's, UDP's unless zero, ICMP's and ICMPv6's), where its headers
/// read sanely; leaves anything else alone. The fuzzer could seldom get
/// past a checksum by mutation alone.
pub fn fix_checksums(f: &mut [u8]) {
    if f.len() < ETH {
        return;
    }
    let ethertype = be16(f, 12);
    let b = &mut f[ETH..];
    /// The pseudo-header for a transport protocol and length.
    type Pseudo = Box<dyn Fn(u8, usize) -> Vec<u8>>;
    let (proto, l4_start, end, pseudo): (u8, usize, usize, Pseudo) = match ethertype {
        ETHERTYPE_IPV4 => {
            let Some(ip) = V4::parse(b) else { return };
            let (ihl, total, proto, frag) = (ip.ihl, ip.pkt.len(), ip.proto(), ip.is_fragment());
            b[10..12].fill(0);
            let c = checksum(&[&b[..ihl]]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            if frag {
                return;
            }
            let (s, d) = (b[12..16].to_vec(), b[16..20].to_vec());
            (
                proto,
                ihl,
                total,
                Box::new(move |p, len| pseudo_v4(&s, &d, p, len)),
            )
        }
        ETHERTYPE_IPV6 => {
            let Some(ip) = V6::parse(b) else { return };
            let (total, nh) = (ip.pkt.len(), ip.next_header());
            let (s, d) = (b[8..24].to_vec(), b[24..40].to_vec());
            (
                nh,
                40,
                total,
                Box::new(move |p, len| pseudo_v6(&s, &d, p, len)),
            )
        }
        _ => return,
    };
    let l4 = &mut b[l4_start..end];
    match proto {
        TCP if l4.len() >= 20 => {
            let p = pseudo(TCP, l4.len());
            fill(l4, 16, &[&p]);
        }
        UDP if l4.len() >= 8 => {
            let len = be16(l4, 4) as usize;
            if (8..=l4.len()).contains(&len) && be16(l4, 6) != 0 {
                let p = pseudo(UDP, len);
                fill(&mut l4[..len], 6, &[&p]);
                if be16(l4, 6) == 0 {
                    l4[6..8].copy_from_slice(&[0xff, 0xff]);
                }
            }
        }
        ICMP if ethertype == ETHERTYPE_IPV4 && l4.len() >= 8 => fill(l4, 2, &[]),
        ICMPV6 if ethertype == ETHERTYPE_IPV6 && l4.len() >= 8 => {
            let p = pseudo(ICMPV6, l4.len());
            fill(l4, 2, &[&p]);
        }
        _ => {}
    }
}

/// An Ethernet frame's parts.
pub struct Eth<'a> {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: u16,
    pub payload: &'a [u8],
}

pub fn eth(f: &[u8]) -> Option<Eth<'_>> {
    if f.len() < ETH {
        return None;
    }
    Some(Eth {
        dst: f[0..6].try_into().unwrap(),
        src: f[6..12].try_into().unwrap(),
        ethertype: be16(f, 12),
        payload: &f[ETH..],
    })
}

/// The offsets at which `a` and `b` differ (over the shorter's length).
pub fn diff_offsets(a: &[u8], b: &[u8]) -> Vec<usize> {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_packet::fixtures;

    #[test]
    fn the_fixtures_checksums_are_right_and_a_flipped_bit_is_seen() {
        for f in [
            &fixtures::TCP_SYN[..],
            &fixtures::TCP_ACK_DATA[..],
            &fixtures::UDP_DNS[..],
            &fixtures::ICMP_ECHO[..],
        ] {
            let ip = V4::parse(&f[ETH..]).unwrap();
            assert!(ip.header_ok());
            assert_eq!(ip.transport_ok(), Some(true));
            let mut bad = f.to_vec();
            *bad.last_mut().unwrap() ^= 0x10;
            let ip = V4::parse(&bad[ETH..]).unwrap();
            assert_eq!(ip.transport_ok(), Some(false));
            bad[ETH + 8] ^= 1;
            assert!(!V4::parse(&bad[ETH..]).unwrap().header_ok());
            fix_checksums(&mut bad);
            let ip = V4::parse(&bad[ETH..]).unwrap();
            assert!(ip.header_ok());
            assert_eq!(ip.transport_ok(), Some(true));
        }
    }
}
