//! ICMPv4 (RFC 792): echo, and the errors that quote another packet.

use crate::checksum;
use crate::{be16, set_be16, Error, Result};

mod field {
    use crate::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
}

pub const HEADER_LEN: usize = 8;

pub mod kind {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    /// Code of DEST_UNREACHABLE: fragmentation needed and DF set.
    pub const CODE_FRAG_NEEDED: u8 = 4;
    pub const CODE_PORT_UNREACHABLE: u8 = 3;
}

/// A view of an ICMPv4 message.
#[derive(Debug)]
pub struct IcmpPacket<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(IcmpPacket { buf })
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[field::TYPE]
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), field::CHECKSUM)
    }

    /// Bytes 4..8: identifier/sequence for echo, next-hop MTU for frag-needed.
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        let mut r = [0; 4];
        r.copy_from_slice(&self.buf.as_ref()[field::REST]);
        r
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buf.as_ref()) == 0xffff
    }

    /// For errors: the quoted original packet (IP header + 8 bytes or more).
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }

    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            kind::DEST_UNREACHABLE | kind::TIME_EXCEEDED | 4 | 5 | 12
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpPacket<T> {
    #[inline]
    pub fn set_msg_type(&mut self, t: u8) {
        self.buf.as_mut()[field::TYPE] = t;
    }

    #[inline]
    pub fn set_code(&mut self, c: u8) {
        self.buf.as_mut()[field::CODE] = c;
    }

    pub fn set_rest_of_header(&mut self, r: [u8; 4]) {
        self.buf.as_mut()[field::REST].copy_from_slice(&r);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }

    pub fn fill_checksum(&mut self) {
        set_be16(self.buf.as_mut(), field::CHECKSUM, 0);
        let c = !checksum::sum(self.buf.as_ref());
        set_be16(self.buf.as_mut(), field::CHECKSUM, c);
    }

    /// Turns an echo request into its reply in place (type 8 → 0), with
    /// the checksum computed afresh: RFC 1624's incremental update gives
    /// 0x0000 where the reply's words all sum to zero (id, sequence and
    /// data all zero), and receivers want 0xffff there.
    pub fn make_echo_reply(&mut self) {
        self.set_msg_type(kind::ECHO_REPLY);
        self.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::ipv4::Ipv4Packet;

    #[test]
    fn echo_reply_in_place() {
        let ip = Ipv4Packet::new_checked(&fixtures::ICMP_ECHO[14..]).unwrap();
        let mut m = ip.payload().to_vec();
        let mut i = IcmpPacket::new_checked(&mut m[..]).unwrap();
        assert_eq!(i.msg_type(), kind::ECHO_REQUEST);
        assert!(i.verify_checksum());
        i.make_echo_reply();
        assert_eq!(i.msg_type(), kind::ECHO_REPLY);
        assert!(i.verify_checksum());
        assert!(!i.is_error());
    }

    /// Found by the worker_handle fuzz target: an all-zero echo request
    /// (id 0, sequence 0, no data) got a reply with checksum 0x0000.
    #[test]
    fn echo_reply_to_all_zero_request_verifies() {
        let mut m = [kind::ECHO_REQUEST, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut i = IcmpPacket::new_checked(&mut m[..]).unwrap();
        i.fill_checksum();
        assert!(i.verify_checksum());
        i.make_echo_reply();
        assert_eq!(i.msg_type(), kind::ECHO_REPLY);
        assert!(i.verify_checksum(), "checksum {:#06x}", i.checksum());
    }

    #[test]
    fn short_is_truncated() {
        assert_eq!(
            IcmpPacket::new_checked(&[0u8; 7][..]).unwrap_err(),
            Error::Truncated
        );
    }
}
