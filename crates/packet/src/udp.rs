//! UDP headers (RFC 768).

use std::net::Ipv4Addr;

use crate::checksum;
use crate::{be16, set_be16, Error, Result};

mod field {
    use crate::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram whose length field fits the buffer.
#[derive(Debug)]
pub struct UdpDatagram<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Only the header: for the first fragment of a datagram, which holds
    /// the header and a part of what the length field counts.
    pub fn new_header_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if (be16(b, field::LENGTH) as usize) < HEADER_LEN {
            return Err(Error::Malformed);
        }
        Ok(UdpDatagram { buf })
    }

    pub fn new_checked(buf: T) -> Result<Self> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = be16(b, field::LENGTH) as usize;
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(UdpDatagram { buf })
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buf.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() as usize == HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..self.len() as usize]
    }

    pub fn verify_checksum_v6(&self, src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) -> bool {
        let b = &self.buf.as_ref()[..self.len() as usize];
        let ph = checksum::pseudo_header_v6(src, dst, crate::ipv4::protocol::UDP, b.len() as u32);
        checksum::combine(&[ph, checksum::sum(b)]) == 0xffff
    }

    /// A zero checksum means "none" over IPv4.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buf.as_ref()[..self.len() as usize];
        let ph = checksum::pseudo_header_v4(src, dst, crate::ipv4::protocol::UDP, b.len() as u16);
        checksum::combine(&[ph, checksum::sum(b)]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    /// Writes a header in front of the payload already in `buf` (all of
    /// it after the header's 8 bytes), its checksum left zero: fill it
    /// with the addresses.
    pub fn header_in_place(mut buf: T, src_port: u16, dst_port: u16) -> Result<Self> {
        let b = buf.as_mut();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = u16::try_from(b.len()).map_err(|_| Error::Malformed)?;
        set_be16(b, field::SRC_PORT, src_port);
        set_be16(b, field::DST_PORT, dst_port);
        set_be16(b, field::LENGTH, len);
        set_be16(b, field::CHECKSUM, 0);
        Ok(UdpDatagram { buf })
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

    /// Recomputes the checksum; a result of 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len() as usize;
        let b = &self.buf.as_ref()[..len];
        let ph = checksum::pseudo_header_v4(src, dst, crate::ipv4::protocol::UDP, len as u16);
        let c = !checksum::combine(&[ph, checksum::sum(b)]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Recomputes the checksum for IPv6, where it is mandatory.
    pub fn fill_checksum_v6(&mut self, src: std::net::Ipv6Addr, dst: std::net::Ipv6Addr) {
        self.set_checksum(0);
        let len = self.len() as usize;
        let b = &self.buf.as_ref()[..len];
        let ph = checksum::pseudo_header_v6(src, dst, crate::ipv4::protocol::UDP, len as u32);
        let c = !checksum::combine(&[ph, checksum::sum(b)]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::ipv4::Ipv4Packet;

    #[test]
    fn header_written_in_place_reads_back_with_a_valid_checksum() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(224, 0, 0, 81));
        let mut buf = *b"\xaa\xaa\xaa\xaa\xaa\xaa\xaa\xaahello";
        let mut u = UdpDatagram::header_in_place(&mut buf[..], 8848, 8848).unwrap();
        u.fill_checksum_v4(src, dst);
        let u = UdpDatagram::new_checked(&buf[..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (8848, 8848, 13));
        assert_eq!(u.payload(), b"hello");
        assert!(u.checksum() != 0 && u.verify_checksum_v4(src, dst));
        assert!(UdpDatagram::header_in_place(&mut [0u8; 7][..], 1, 2).is_err());
    }

    #[test]
    fn parse_dns_query() {
        let ip = Ipv4Packet::new_checked(&fixtures::UDP_DNS[14..]).unwrap();
        let u = UdpDatagram::new_checked(ip.payload()).unwrap();
        assert_eq!(u.src_port(), 50000);
        assert_eq!(u.dst_port(), 53);
        assert!(u.verify_checksum_v4(ip.src(), ip.dst()));
        assert_eq!(u.payload().len(), u.len() as usize - HEADER_LEN);
    }

    #[test]
    fn length_checks() {
        let ip = Ipv4Packet::new_checked(&fixtures::UDP_DNS[14..]).unwrap();
        let mut d = ip.payload().to_vec();
        assert_eq!(
            UdpDatagram::new_checked(&d[..7]).unwrap_err(),
            Error::Truncated
        );
        d[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            UdpDatagram::new_checked(&d[..]).unwrap_err(),
            Error::Malformed
        );
        d[4..6].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(
            UdpDatagram::new_checked(&d[..]).unwrap_err(),
            Error::Truncated
        );
    }
}
