//! Frames with right checksums, for the seeds and the tests.

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_packet::MacAddr;

use crate::wire::{self, checksum, pseudo_v4, pseudo_v6};

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;

pub fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TCP header (no options) and payload; checksum left zero.
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1000u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(payload);
    t
}

/// A UDP header and payload; checksum left zero.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    u
}

/// An ICMP (or ICMPv6) message: type, code, the 4 bytes after the
/// checksum, data; checksum left zero.
pub fn icmp(kind: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    m
}

fn fill_transport(l4: &mut [u8], proto: u8, pseudo: &[u8]) {
    let at = match proto {
        wire::TCP => 16,
        wire::UDP => 6,
        wire::ICMP | wire::ICMPV6 => 2,
        _ => return,
    };
    if l4.len() < at + 2 {
        return;
    }
    l4[at..at + 2].fill(0);
    let c = if proto == wire::ICMP {
        checksum(&[l4])
    } else {
        checksum(&[pseudo, l4])
    };
    // UDP sends a computed zero as all ones (zero means "none").
    let c = if proto == wire::UDP && c == 0 {
        0xffff
    } else {
        c
    };
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 packet (20-byte header) around `l4`, both checksums filled.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, df: bool, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&77u16.to_be_bytes());
    if df {
        p[6] = 0x40;
    }
    p[8] = ttl;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&[&p]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut l4 = l4.to_vec();
    let pseudo = pseudo_v4(&src.octets(), &dst.octets(), proto, l4.len());
    fill_transport(&mut l4, proto, &pseudo);
    p.extend_from_slice(&l4);
    p
}

/// An IPv6 packet around `l4`, its transport checksum filled.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, hops: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    p[6] = nh;
    p[7] = hops;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    let mut l4 = l4.to_vec();
    let pseudo = pseudo_v6(&src.octets(), &dst.octets(), nh, l4.len());
    fill_transport(&mut l4, nh, &pseudo);
    p.extend_from_slice(&l4);
    p
}

pub fn eth4(dst: MacAddr, src: MacAddr, ip: &[u8]) -> Vec<u8> {
    eth(dst, src, wire::ETHERTYPE_IPV4, ip)
}

pub fn eth6(dst: MacAddr, src: MacAddr, ip: &[u8]) -> Vec<u8> {
    eth(dst, src, wire::ETHERTYPE_IPV6, ip)
}

/// An ARP request or reply (`op` 1 or 2).
pub fn arp(
    op: u16,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
    eth_dst: MacAddr,
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha.0);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha.0);
    a.extend_from_slice(&tpa.octets());
    eth(eth_dst, sha, wire::ETHERTYPE_ARP, &a)
}

/// A neighbour solicitation (135) or advertisement (136) for `target` with
/// a link-layer address option.
pub fn nd(kind: u8, target: Ipv6Addr, mac: MacAddr) -> Vec<u8> {
    let mut data = target.octets().to_vec();
    data.extend_from_slice(&[if kind == 135 { 1 } else { 2 }, 1]);
    data.extend_from_slice(&mac.0);
    let rest = if kind == 136 { [0x60, 0, 0, 0] } else { [0; 4] };
    icmp(kind, 0, rest, &data)
}
