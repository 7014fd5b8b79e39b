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

    // Always in line, as are the TCP header's ports and flags: LLVM merged
    // these identical two-byte reads into one out-of-line function that
    // the fast path called several times a packet.
    #[inline(always)]
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
    #[inline(always)]
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

/// Splits the IPv4 packet `packet` (header without options) into
/// fragments of at most `mtu` bytes, as a router does (RFC 791): each
/// carries the header with its own length, offset and more-fragments flag,
/// and a piece of the payload whose length is a multiple of 8 but for the
/// last. A packet that is itself a fragment keeps its offset and, on its
/// last piece, its more-fragments flag. `emit` gets each fragment in order.
///
/// Errors: a malformed packet, one with options (routers copy only some of
/// them; rvs forwards none), one with DF set, or an MTU that leaves no room
/// for 8 bytes of payload.
pub fn fragment(packet: &[u8], mtu: usize, mut emit: impl FnMut(&[u8])) -> Result<usize> {
    let ip = Ipv4Packet::new_checked(packet)?;
    if ip.has_options() || ip.dont_frag() {
        return Err(Error::Malformed);
    }
    let piece = mtu.saturating_sub(MIN_HEADER_LEN) & !7;
    if piece == 0 {
        return Err(Error::Malformed);
    }
    let payload = ip.payload();
    let (base, more) = (ip.frag_offset() as usize, ip.more_frags());
    let mut buf = Vec::with_capacity(mtu);
    let mut n = 0;
    for (i, chunk) in payload.chunks(piece).enumerate() {
        let last = (i + 1) * piece >= payload.len();
        buf.clear();
        buf.extend_from_slice(&packet[..MIN_HEADER_LEN]);
        buf.extend_from_slice(chunk);
        let off = (base + i * piece) / 8;
        if off > 0x1fff {
            return Err(Error::Malformed);
        }
        let flags = if !last || more { 0x2000 } else { 0 };
        set_be16(
            &mut buf,
            field::LENGTH,
            (MIN_HEADER_LEN + chunk.len()) as u16,
        );
        set_be16(&mut buf, field::FLG_OFF, flags | off as u16);
        Ipv4Packet { buf: &mut buf[..] }.fill_checksum();
        emit(&buf);
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::HEADER_LEN;
    use crate::fixtures;

    fn syn() -> Vec<u8> {
        fixtures::TCP_SYN[HEADER_LEN..].to_vec()
    }

    /// A UDP datagram of `n` payload bytes, 10.0.0.1 to 10.0.0.2, DF clear.
    fn big_udp(n: usize) -> Vec<u8> {
        let total = MIN_HEADER_LEN + 8 + n;
        let mut b = vec![0u8; total];
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        Ipv4Packet::emit(
            &mut b[..],
            src,
            dst,
            protocol::UDP,
            total as u16,
            64,
            77,
            false,
        )
        .unwrap();
        for (i, x) in b[MIN_HEADER_LEN + 8..].iter_mut().enumerate() {
            *x = i as u8;
        }
        b[MIN_HEADER_LEN + 4..MIN_HEADER_LEN + 6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
        b
    }

    /// Reassembles fragments by offset, checking each header on the way.
    fn reassemble(frags: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.frag_offset() as usize, payload.len());
            assert_eq!(ip.more_frags(), i + 1 < frags.len());
            assert_eq!(ip.ident(), 77);
            payload.extend_from_slice(ip.payload());
        }
        payload
    }

    #[test]
    fn fragments_fit_the_mtu_and_reassemble_to_the_packet() {
        let p = big_udp(8192);
        for mtu in [68, 576, 1000, 1500] {
            let mut frags = Vec::new();
            let n = fragment(&p, mtu, |f| frags.push(f.to_vec())).unwrap();
            assert_eq!(n, frags.len());
            assert!(frags.iter().all(|f| f.len() <= mtu), "mtu {mtu}");
            // Every piece but the last carries a multiple of 8 bytes.
            for f in &frags[..n - 1] {
                assert_eq!((f.len() - MIN_HEADER_LEN) % 8, 0);
            }
            assert_eq!(reassemble(&frags), p[MIN_HEADER_LEN..]);
        }
    }

    #[test]
    fn a_fragment_fragmented_again_keeps_its_offset_and_more_flag() {
        let p = big_udp(4000);
        let mut frags = Vec::new();
        fragment(&p, 1500, |f| frags.push(f.to_vec())).unwrap();
        let mut again = Vec::new();
        for f in &frags {
            fragment(f, 600, |g| again.push(g.to_vec())).unwrap();
        }
        assert!(again.len() > frags.len());
        assert_eq!(reassemble(&again), p[MIN_HEADER_LEN..]);
    }

    #[test]
    fn fragmenting_refuses_df_options_and_tiny_mtus() {
        let mut p = big_udp(100);
        assert_eq!(fragment(&p, 27, |_| {}), Err(Error::Malformed));
        p[6] = 0x40;
        assert_eq!(fragment(&p, 60, |_| {}), Err(Error::Malformed));
        let mut o = big_udp(100);
        o[0] = 0x46;
        assert!(fragment(&o, 60, |_| {}).is_err());
        assert_eq!(fragment(&[1, 2, 3], 60, |_| {}), Err(Error::Truncated));
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
