//! NAT's rewrite of a packet, for both families: one end's address and
//! port, the IPv4 header checksum, and the transport checksum updated
//! incrementally (RFC 1624) for both (`rewrite_ports`, written once).
//! ICMP errors rewrite their quoted packet in `icmp.rs` and `icmp6.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};

use rvs_packet::checksum;
use rvs_packet::ipv4::{self, Ipv4Packet};
use rvs_packet::ipv6::{self, next_header, Ipv6Packet};
use rvs_packet::{TcpSegment, UdpDatagram};

use super::Step;
use crate::counters::DropReason;

/// Which address of a packet a NAT rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Src,
    Dst,
}

/// Rewrites the source or destination address and port of the IPv4 packet
/// in `ipbuf`, updating the IP and TCP/UDP checksums incrementally
/// (RFC 1624). In a fragment only the first has the ports and the
/// transport checksum (which covers the whole datagram, so the same
/// incremental update is right); later ones get the address alone.
pub(super) fn rewrite_v4(ipbuf: &mut [u8], side: Side, addr: Ipv4Addr, port: u16) -> Step<()> {
    let mut ip = Ipv4Packet::new_checked(&mut *ipbuf).map_err(|_| DropReason::TruncatedIpv4)?;
    let old = if side == Side::Dst {
        ip.dst()
    } else {
        ip.src()
    };
    let (o, n) = (u32::from(old), u32::from(addr));
    let c = checksum::update32(ip.checksum(), o, n);
    ip.set_checksum(c);
    match side {
        Side::Dst => ip.set_dst(addr),
        Side::Src => ip.set_src(addr),
    }
    let proto = if ip.frag_offset() == 0 {
        ip.protocol()
    } else {
        0
    };
    // A zero UDP checksum means "none" in IPv4, and stays so.
    rewrite_ports(ip.payload_mut(), proto, side, port, true, |c| {
        checksum::update32(c, o, n)
    })
}

/// The transport half of a NAT rewrite, the same in both families: the
/// port of `side` becomes `port`, and the TCP or UDP checksum follows the
/// port and, through `for_address`, the address in the pseudo-header.
/// `zero_udp_is_none`: a zero UDP checksum means there is none (IPv4).
pub(super) fn rewrite_ports(
    l4: &mut [u8],
    protocol: u8,
    side: Side,
    port: u16,
    zero_udp_is_none: bool,
    for_address: impl Fn(u16) -> u16,
) -> Step<()> {
    match protocol {
        ipv4::protocol::TCP => {
            let mut t = TcpSegment::new_checked(l4).map_err(|_| DropReason::BadL4Header)?;
            let op = match side {
                Side::Dst => t.dst_port(),
                Side::Src => t.src_port(),
            };
            t.set_checksum(checksum::update16(for_address(t.checksum()), op, port));
            match side {
                Side::Dst => t.set_dst_port(port),
                Side::Src => t.set_src_port(port),
            }
        }
        ipv4::protocol::UDP => {
            let mut u = UdpDatagram::new_header_checked(l4).map_err(|_| DropReason::BadL4Header)?;
            let op = match side {
                Side::Dst => u.dst_port(),
                Side::Src => u.src_port(),
            };
            if !(zero_udp_is_none && u.checksum() == 0) {
                let c = checksum::update16(for_address(u.checksum()), op, port);
                u.set_checksum(if c == 0 { 0xffff } else { c });
            }
            match side {
                Side::Dst => u.set_dst_port(port),
                Side::Src => u.set_src_port(port),
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rewrites one end of the IPv6 packet in `ipbuf` and fixes the transport
/// checksum incrementally (IPv6 has no header checksum). The transport
/// header may sit behind extension headers; a fragment other than the
/// first has none, and gets the address alone (as for IPv4).
pub(super) fn rewrite_v6(ipbuf: &mut [u8], side: Side, addr: Ipv6Addr, port: u16) -> Step<()> {
    let mut ip = Ipv6Packet::new_checked(&mut *ipbuf).map_err(|_| DropReason::TruncatedIpv6)?;
    let old = if side == Side::Dst {
        ip.dst()
    } else {
        ip.src()
    };
    match side {
        Side::Dst => ip.set_dst(addr),
        Side::Src => ip.set_src(addr),
    }
    let (nh, l4) = match ip.next_header() {
        nh @ (next_header::TCP | next_header::UDP) => (nh, ip.payload_mut()),
        nh if !next_header::is_walked_extension(nh) => return Ok(()),
        _ => {
            let u = ipv6::upper_layer(&ipbuf[..]).map_err(|_| DropReason::Ipv6ExtHeaders)?;
            if u.fragment.is_some_and(|f| f.offset != 0) {
                return Ok(());
            }
            let end = ipv6::HEADER_LEN
                + Ipv6Packet::new_checked(&ipbuf[..])
                    .map_err(|_| DropReason::TruncatedIpv6)?
                    .payload_len() as usize;
            (u.protocol, &mut ipbuf[u.offset..end])
        }
    };
    rewrite_ports(l4, nh, side, port, false, |c| {
        checksum::update128(c, old, addr)
    })
}
