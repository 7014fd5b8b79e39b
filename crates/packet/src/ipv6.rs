//! IPv6 headers (RFC 8200). rvs handles packets whose next header is the
//! transport (TCP, UDP, ICMPv6) or IPv6 itself (tunnels); extension headers
//! are counted and dropped.

use std::net::Ipv6Addr;

use crate::{be16, set_be16, Error, Result};

mod field {
    use crate::Field;
    pub const VTF: usize = 0;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

pub const HEADER_LEN: usize = 40;

pub mod next_header {
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ICMPV6: u8 = 58;
}

/// A view of an IPv6 packet: version 6, and the payload length fits.
#[derive(Debug)]
pub struct Ipv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VTF] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + be16(b, field::PAYLOAD_LEN) as usize > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv6Packet { buf })
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::PAYLOAD_LEN)
    }

    /// Header plus payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[field::HOP_LIMIT]
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buf.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::SRC]);
        a.into()
    }

    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buf.as_ref()[field::DST]);
        a.into()
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buf.as_mut()[field::HOP_LIMIT] = v;
    }

    #[inline]
    pub fn set_src(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst(&mut self, a: Ipv6Addr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buf.as_mut()[HEADER_LEN..end]
    }

    /// Writes a header (flow label 0).
    pub fn emit(
        buf: T,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next_header: u8,
        payload_len: u16,
        hop_limit: u8,
        traffic_class: u8,
    ) -> Result<Self> {
        let mut buf = buf;
        let b = buf.as_mut();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        b[0] = 0x60 | (traffic_class >> 4);
        b[1] = traffic_class << 4;
        b[2] = 0;
        b[3] = 0;
        set_be16(b, field::PAYLOAD_LEN, payload_len);
        b[field::NEXT_HEADER] = next_header;
        b[field::HOP_LIMIT] = hop_limit;
        b[field::SRC].copy_from_slice(&src.octets());
        b[field::DST].copy_from_slice(&dst.octets());
        Ok(Ipv6Packet { buf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_parse_roundtrip_and_checks() {
        let mut b = [0u8; 48];
        let s: Ipv6Addr = "fd00:1::2".parse().unwrap();
        let d: Ipv6Addr = "fd00:99::10".parse().unwrap();
        Ipv6Packet::emit(&mut b[..], s, d, next_header::UDP, 8, 64, 0xb8).unwrap();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.src(), p.dst(), p.next_header(), p.hop_limit()),
            (s, d, 17, 64)
        );
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.payload().len(), 8);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..47]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            Error::Truncated
        );
        let mut v = b;
        v[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            Error::Malformed
        );
    }
}
