//! ARP for IPv4 over Ethernet (RFC 826).

use std::net::Ipv4Addr;

use crate::ethernet::MacAddr;
use crate::{be16, set_be16, Error, Result};

mod field {
    use crate::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

pub const PACKET_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Other(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            o => Operation::Other(o),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Other(o) => o,
        }
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug)]
pub struct ArpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Accepts only Ethernet (1) / IPv4 (0x0800) with 6- and 4-byte addresses.
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if be16(b, field::HTYPE) != 1
            || be16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Malformed);
        }
        Ok(ArpPacket { buf })
    }

    pub fn operation(&self) -> Operation {
        be16(self.buf.as_ref(), field::OPER).into()
    }

    pub fn sender_mac(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[field::SHA]);
        MacAddr(m)
    }

    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::SPA];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn target_mac(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buf.as_ref()[field::THA]);
        MacAddr(m)
    }

    pub fn target_ip(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::TPA];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes a complete Ethernet/IPv4 ARP header into `buf` (>= 28 bytes).
    pub fn emit(
        buf: T,
        op: Operation,
        sha: MacAddr,
        spa: Ipv4Addr,
        tha: MacAddr,
        tpa: Ipv4Addr,
    ) -> Result<Self> {
        let mut buf = buf;
        let b = buf.as_mut();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        set_be16(b, field::HTYPE, 1);
        set_be16(b, field::PTYPE, 0x0800);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
        set_be16(b, field::OPER, op.into());
        b[field::SHA].copy_from_slice(&sha.0);
        b[field::SPA].copy_from_slice(&spa.octets());
        b[field::THA].copy_from_slice(&tha.0);
        b[field::TPA].copy_from_slice(&tpa.octets());
        Ok(ArpPacket { buf })
    }

    /// Turns a request for `our_ip` into the reply from `our_mac`, in place.
    pub fn make_reply(&mut self, our_mac: MacAddr) {
        let (sha, spa, tpa) = (self.sender_mac(), self.sender_ip(), self.target_ip());
        let b = self.buf.as_mut();
        set_be16(b, field::OPER, Operation::Reply.into());
        b[field::THA].copy_from_slice(&sha.0);
        b[field::TPA].copy_from_slice(&spa.octets());
        b[field::SHA].copy_from_slice(&our_mac.0);
        b[field::SPA].copy_from_slice(&tpa.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::{EthernetFrame, HEADER_LEN};
    use crate::fixtures;

    #[test]
    fn parse_request() {
        let f = EthernetFrame::new_checked(&fixtures::ARP_REQUEST[..]).unwrap();
        let a = ArpPacket::new_checked(f.payload()).unwrap();
        assert_eq!(a.operation(), Operation::Request);
        assert_eq!(a.sender_ip(), Ipv4Addr::new(192, 168, 1, 50));
        assert_eq!(a.target_ip(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(a.sender_mac(), MacAddr([0x02, 0, 0, 0, 0, 0x50]));
    }

    #[test]
    fn reply_in_place() {
        let mut b = fixtures::ARP_REQUEST.to_vec();
        let me = MacAddr([0x02, 0, 0, 0, 0, 0xd1]);
        let mut a = ArpPacket::new_checked(&mut b[HEADER_LEN..]).unwrap();
        a.make_reply(me);
        assert_eq!(a.operation(), Operation::Reply);
        assert_eq!(a.sender_mac(), me);
        assert_eq!(a.sender_ip(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(a.target_ip(), Ipv4Addr::new(192, 168, 1, 50));
        assert_eq!(a.target_mac(), MacAddr([0x02, 0, 0, 0, 0, 0x50]));
    }

    #[test]
    fn rejects_non_ethernet_ipv4() {
        let mut b = fixtures::ARP_REQUEST[HEADER_LEN..].to_vec();
        b[1] = 6; // htype IEEE 802
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(
            ArpPacket::new_checked(&b[..20]).unwrap_err(),
            Error::Truncated
        );
    }
}
