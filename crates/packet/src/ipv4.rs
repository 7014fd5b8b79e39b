//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use crate::checksum;
use crate::{be16, set_be16, Error, Result};

mod field {
    use crate::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

pub const MIN_HEADER_LEN: usize = 20;

pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
}

/// What is wrong with an IPv4 header, for counting drops by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Error {
    Truncated,
    BadVersion,
    BadIhl,
    BadTotalLength,
}

/// A view of an IPv4 packet whose header and total length were validated:
/// version 4, `20 <= IHL*4 <= total length <= buffer length`.
#[derive(Debug)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        Self::validate(buf.as_ref()).map_err(|e| match e {
            Ipv4Error::Truncated => Error::Truncated,
            _ => Error::Malformed,
        })?;
        Ok(Ipv4Packet { buf })
    }

    /// As `new_checked`, but says exactly what is wrong.
    pub fn new_validated(buf: T) -> std::result::Result<Self, Ipv4Error> {
        Self::validate(buf.as_ref())?;
        Ok(Ipv4Packet { buf })
    }

    fn validate(b: &[u8]) -> std::result::Result<(), Ipv4Error> {
        if b.len() < MIN_HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Ipv4Error::BadVersion);
        }
        let hl = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(Ipv4Error::BadIhl);
        }
        let total = be16(b, field::LENGTH) as usize;
        if total < hl || total > b.len() {
            return Err(Ipv4Error::BadTotalLength);
        }
        Ok(())
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::VER_IHL] & 0x0f) as usize) * 4
    }

    #[inline]
    pub fn has_options(&self) -> bool {
        self.header_len() > MIN_HEADER_LEN
    }

    #[inline]
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[field::TOS]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x4000 != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buf.as_ref(), field::FLG_OFF) & 0x2000 != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buf.as_ref(), field::FLG_OFF) & 0x1fff) * 8
    }

    /// Any fragment, first or not.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        let b = &self.buf.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// True when the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.buf.as_ref()[..self.header_len()]) == 0xffff
    }

    /// The payload, up to the total length (link padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_tos(&mut self, v: u8) {
        self.buf.as_mut()[field::TOS] = v;
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buf.as_mut()[field::TTL] = v;
    }

    #[inline]
    pub fn set_src(&mut self, a: Ipv4Addr) {
        self.buf.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_dst(&mut self, a: Ipv4Addr) {
        self.buf.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, c);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = !checksum::sum(&self.buf.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// Decrements the TTL, updating the checksum incrementally.
    pub fn decrement_ttl(&mut self) {
        let b = self.buf.as_ref();
        let old = u16::from_be_bytes([b[field::TTL], b[field::PROTOCOL]]);
        let ttl = b[field::TTL].wrapping_sub(1);
        let new = u16::from_be_bytes([ttl, b[field::PROTOCOL]]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_ttl(ttl);
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len() as usize);
        &mut self.buf.as_mut()[hl..tl]
    }

    /// Writes a 20-byte header without options and fills its checksum.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        buf: T,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        total_len: u16,
        ttl: u8,
        ident: u16,
        dont_frag: bool,
    ) -> Result<Self> {
        let mut buf = buf;
        let b = buf.as_mut();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        b[field::VER_IHL] = 0x45;
        b[field::TOS] = 0;
        set_be16(b, field::LENGTH, total_len);
        set_be16(b, field::IDENT, ident);
        set_be16(b, field::FLG_OFF, if dont_frag { 0x4000 } else { 0 });
        b[field::TTL] = ttl;
        b[field::PROTOCOL] = protocol;
        b[field::SRC].copy_from_slice(&src.octets());
        b[field::DST].copy_from_slice(&dst.octets());
        let mut p = Ipv4Packet { buf };
        p.fill_checksum();
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::HEADER_LEN;
    use crate::fixtures;

    fn syn() -> Vec<u8> {
        fixtures::TCP_SYN[HEADER_LEN..].to_vec()
    }

    #[test]
    fn parse_fixture() {
        let b = syn();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 1, 50));
        assert_eq!(p.dst(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(p.protocol(), protocol::TCP);
        assert!(p.verify_checksum());
        assert!(!p.is_fragment());
        assert!(p.dont_frag());
        assert!(!p.has_options());
    }

    #[test]
    fn validation_reasons() {
        let b = syn();
        assert_eq!(
            Ipv4Packet::new_validated(&b[..19]).unwrap_err(),
            Ipv4Error::Truncated
        );
        let mut v = b.clone();
        v[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_validated(&v[..]).unwrap_err(),
            Ipv4Error::BadVersion
        );
        let mut v = b.clone();
        v[0] = 0x44; // IHL 16 bytes
        assert_eq!(
            Ipv4Packet::new_validated(&v[..]).unwrap_err(),
            Ipv4Error::BadIhl
        );
        let mut v = b.clone();
        v[0] = 0x4f; // IHL 60 bytes, longer than the packet
        assert_eq!(
            Ipv4Packet::new_validated(&v[..40]).unwrap_err(),
            Ipv4Error::BadIhl
        );
        let mut v = b.clone();
        v[2..4].copy_from_slice(&(b.len() as u16 + 1).to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_validated(&v[..]).unwrap_err(),
            Ipv4Error::BadTotalLength
        );
        let mut v = b;
        v[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_validated(&v[..]).unwrap_err(),
            Ipv4Error::BadTotalLength
        );
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = syn();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        let ttl = p.ttl();
        p.decrement_ttl();
        assert_eq!(p.ttl(), ttl - 1);
        assert!(p.verify_checksum());
    }

    #[test]
    fn emit_roundtrip() {
        let mut b = [0u8; 28];
        let p = Ipv4Packet::emit(
            &mut b[..],
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            protocol::UDP,
            28,
            64,
            7,
            true,
        )
        .unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8);
    }
}
