//! TCP headers (RFC 9293): enough to classify, track state and rewrite ports.

use std::net::Ipv4Addr;

use crate::checksum;
use crate::{be16, be32, set_be16, Error, Result};

mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const DOFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

pub const MIN_HEADER_LEN: usize = 20;

pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// A view of a TCP segment with a validated data offset.
#[derive(Debug)]
pub struct TcpSegment<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = ((b[field::DOFF] >> 4) as usize) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(TcpSegment { buf })
    }

    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }

    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buf.as_ref(), field::ACK)
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        ((self.buf.as_ref()[field::DOFF] >> 4) as usize) * 4
    }

    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buf.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// Verifies the checksum over the whole buffer (header and payload).
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let b = self.buf.as_ref();
        let ph = checksum::pseudo_header_v4(src, dst, crate::ipv4::protocol::TCP, b.len() as u16);
        checksum::combine(&[ph, checksum::sum(b)]) == 0xffff
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..]
    }

    /// Verifies the checksum over the whole buffer given the IPv6
    /// pseudo-header.
    pub fn verify_checksum_v6(&self, src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) -> bool {
        let b = self.buf.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, crate::ipv4::protocol::TCP, b.len() as u32);
        checksum::combine(&[ph, checksum::sum(b)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Writes a 20-byte header without options in front of the payload
    /// already in `buf` (all of it after the header), the urgent pointer
    /// zero and the checksum left zero: fill it with the addresses.
    pub fn emit(
        buf: T,
        src_port: u16,
        dst_port: u16,
        seq: u32,
        ack_number: u32,
        flags: u8,
        window: u16,
    ) -> Result<Self> {
        let mut buf = buf;
        let b = buf.as_mut();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        set_be16(b, field::SRC_PORT, src_port);
        set_be16(b, field::DST_PORT, dst_port);
        b[field::SEQ].copy_from_slice(&seq.to_be_bytes());
        b[field::ACK].copy_from_slice(&ack_number.to_be_bytes());
        b[field::DOFF] = ((MIN_HEADER_LEN / 4) as u8) << 4;
        b[field::FLAGS] = flags;
        set_be16(b, field::WINDOW, window);
        set_be16(b, field::CHECKSUM, 0);
        set_be16(b, field::URGENT, 0);
        Ok(TcpSegment { buf })
    }

    #[inline]
    pub fn set_src_port(&mut self, p: u16) {
        set_be16(self.buf.as_mut(), field::SRC_PORT, p);
    }

    #[inline]
    pub fn set_dst_port(&mut self, p: u16) {
        set_be16(self.buf.as_mut(), field::DST_PORT, p);
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, c);
    }

    /// Recomputes the checksum from scratch over the whole buffer.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let b = self.buf.as_ref();
        let ph = checksum::pseudo_header_v4(src, dst, crate::ipv4::protocol::TCP, b.len() as u16);
        let c = !checksum::combine(&[ph, checksum::sum(b)]);
        self.set_checksum(c);
    }

    /// Recomputes the checksum over the whole buffer for IPv6.
    pub fn fill_checksum_v6(&mut self, src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buf.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, crate::ipv4::protocol::TCP, b.len() as u32);
        let c = !checksum::combine(&[ph, checksum::sum(b)]);
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::ipv4::Ipv4Packet;

    #[test]
    fn parse_syn() {
        let ip = Ipv4Packet::new_checked(&fixtures::TCP_SYN[14..]).unwrap();
        let t = TcpSegment::new_checked(ip.payload()).unwrap();
        assert_eq!(t.src_port(), 40000);
        assert_eq!(t.dst_port(), 80);
        assert!(t.syn() && !t.ack() && !t.rst() && !t.fin());
        assert!(t.verify_checksum_v4(ip.src(), ip.dst()));
    }

    #[test]
    fn bad_data_offset() {
        let ip = Ipv4Packet::new_checked(&fixtures::TCP_SYN[14..]).unwrap();
        let mut t = ip.payload().to_vec();
        t[12] = 0x40; // 16-byte header
        assert_eq!(
            TcpSegment::new_checked(&t[..]).unwrap_err(),
            Error::Malformed
        );
        t[12] = 0xf0; // 60-byte header, longer than the segment
        assert_eq!(
            TcpSegment::new_checked(&t[..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            TcpSegment::new_checked(&t[..10]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn emit_writes_what_the_getters_read() {
        let mut seg = [0xaau8; MIN_HEADER_LEN + 3];
        let mut t = TcpSegment::emit(&mut seg[..], 1, 2, 3, 4, flags::ACK, 5).unwrap();
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        t.fill_checksum_v4(src, dst);
        let t = TcpSegment::new_checked(&seg[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (1, 2));
        assert_eq!((t.seq(), t.ack_number(), t.flags()), (3, 4, flags::ACK));
        assert_eq!((t.header_len(), t.window()), (MIN_HEADER_LEN, 5));
        assert_eq!(&seg[18..20], &[0, 0], "urgent pointer");
        assert_eq!(t.payload(), &[0xaa; 3]);
        assert!(t.verify_checksum_v4(src, dst));
        assert_eq!(
            TcpSegment::emit(&mut [0u8; 19][..], 1, 2, 3, 4, 0, 5).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn port_rewrite_incremental_equals_recompute() {
        let ip = Ipv4Packet::new_checked(&fixtures::TCP_SYN[14..]).unwrap();
        let (src, dst) = (ip.src(), ip.dst());
        let mut seg = ip.payload().to_vec();
        let mut t = TcpSegment::new_checked(&mut seg[..]).unwrap();
        let c = checksum::update16(t.checksum(), t.dst_port(), 8080);
        t.set_dst_port(8080);
        t.set_checksum(c);
        assert!(t.verify_checksum_v4(src, dst));
    }
}
