//! A master's message as it goes on the wire from a port: the Ethernet,
//! IPv4 and UDP headers the kernel's master sends it with (rvsd's workers
//! frame their messages themselves; `rvs-oracle sync-interop` sends the
//! same frames to a kernel backup).

use std::net::Ipv4Addr;

use rvs_packet::ethernet::{self, EtherType, EthernetFrame, MacAddr};
use rvs_packet::ipv4::{self, Ipv4Packet};
use rvs_packet::udp::{self, UdpDatagram};

/// The headers before a message: fill messages with this much headroom
/// (`Encoder::with_headroom`) and frame them in place.
pub const HEADERS: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN;

/// Where a master's frames go and come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub mac: MacAddr,
    pub src: Ipv4Addr,
    pub group: Ipv4Addr,
    pub port: u16,
    pub ttl: u8,
}

/// Writes, in the [`HEADERS`] bytes before the message in `f`, UDP to the
/// multicast group from the interface's address, DF set (the message is
/// never fragmented: `maxlen` leaves room for the headers within the MTU).
/// The UDP source port is the sync port (the kernel's is an ephemeral
/// one; receivers do not look at it). `None` if `f` has no room for the
/// headers or is too long for IPv4.
pub fn frame(f: &mut [u8], wire: &Wire, ident: u16) -> Option<()> {
    let total = u16::try_from(f.len().checked_sub(ethernet::HEADER_LEN)?).ok()?;
    if f.len() < HEADERS {
        return None;
    }
    {
        let mut eth = EthernetFrame::new_checked(&mut f[..]).ok()?;
        eth.set_dst(multicast_mac(wire.group));
        eth.set_src(wire.mac);
        eth.set_ethertype(EtherType::Ipv4);
    }
    let mut ip = Ipv4Packet::emit(
        &mut f[ethernet::HEADER_LEN..],
        wire.src,
        wire.group,
        ipv4::protocol::UDP,
        total,
        wire.ttl,
        ident,
        true,
    )
    .ok()?;
    let mut u = UdpDatagram::header_in_place(ip.payload_mut(), wire.port, wire.port).ok()?;
    u.fill_checksum_v4(wire.src, wire.group);
    Some(())
}

/// The Ethernet address of an IPv4 multicast group (RFC 1112): 01:00:5e
/// and the group's low 23 bits.
pub fn multicast_mac(group: Ipv4Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoder;

    #[test]
    fn a_framed_message_reads_back_as_sent() {
        let wire = Wire {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src: Ipv4Addr::new(10, 0, 0, 1),
            group: Ipv4Addr::new(239, 200, 0, 81),
            port: 8848,
            ttl: 1,
        };
        let mut e = Encoder::with_headroom(3, 1472, HEADERS);
        e.push(&crate::tests::syn_recv()).unwrap();
        let mut f = e.finish().unwrap();
        frame(&mut f, &wire, 7).unwrap();
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.dst(), MacAddr([1, 0, 0x5e, 0x48, 0, 81]), "low 23 bits");
        let ip = Ipv4Packet::new_validated(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.ttl(), ip.ident()),
            (wire.src, wire.group, 1, 7)
        );
        assert!(ip.dont_frag());
        let u = UdpDatagram::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum_v4(wire.src, wire.group));
        let d = crate::decode(u.payload(), 3).unwrap();
        assert_eq!(d.conns.len(), 1);
        assert!(frame(&mut [0u8; HEADERS - 1], &wire, 0).is_none());
    }
}
