//! ICMPv6 (RFC 4443) and the neighbour discovery messages (RFC 4861) a
//! director needs: solicitations and advertisements with link-layer
//! address options.

use std::net::Ipv6Addr;

use crate::checksum;
use crate::ethernet::MacAddr;
use crate::ipv6::next_header;
use crate::{be16, set_be16, Error, Result};

pub const HEADER_LEN: usize = 8;

pub mod kind {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// NDP option types.
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// A view of an ICMPv6 message.
#[derive(Debug)]
pub struct Icmpv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv6Packet { buf })
    }

    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }

    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 2..4)
    }

    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buf.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, next_header::ICMPV6, b.len() as u32);
        checksum::combine(&[ph, checksum::sum(b)]) == 0xffff
    }

    /// Bytes after the 8-byte header (the quoted packet of an error).
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }

    /// NS/NA: the target address.
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        let b = self.buf.as_ref();
        if b.len() < 24 {
            return None;
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[8..24]);
        Some(a.into())
    }

    /// NA: the flags (RFC 4861 4.4): whether it answers a solicitation
    /// (S) and whether it overrides a cached address (O). False for
    /// anything else.
    pub fn na_flags(&self) -> NaFlags {
        let b = self.buf.as_ref();
        if self.msg_type() != kind::NEIGHBOR_ADVERT || b.len() < 5 {
            return NaFlags::default();
        }
        NaFlags {
            router: b[4] & 0x80 != 0,
            solicited: b[4] & 0x40 != 0,
            override_flag: b[4] & 0x20 != 0,
        }
    }

    /// NS: the source link-layer address option; NA: the target one.
    pub fn nd_lladdr(&self) -> Option<MacAddr> {
        let b = self.buf.as_ref();
        let want = match self.msg_type() {
            kind::NEIGHBOR_SOLICIT => OPT_SOURCE_LLADDR,
            kind::NEIGHBOR_ADVERT => OPT_TARGET_LLADDR,
            _ => return None,
        };
        let mut o = 24;
        while o + 2 <= b.len() {
            let (t, len) = (b[o], b[o + 1] as usize * 8);
            if len == 0 || o + len > b.len() {
                return None;
            }
            if t == want && len >= 8 {
                let mut m = [0u8; 6];
                m.copy_from_slice(&b[o + 2..o + 8]);
                return Some(MacAddr(m));
            }
            o += len;
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, t: u8) {
        self.buf.as_mut()[0] = t;
    }

    pub fn set_code(&mut self, c: u8) {
        self.buf.as_mut()[1] = c;
    }

    pub fn set_rest_of_header(&mut self, r: [u8; 4]) {
        self.buf.as_mut()[4..8].copy_from_slice(&r);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }

    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        set_be16(self.buf.as_mut(), 2..4, 0);
        let b = self.buf.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, next_header::ICMPV6, b.len() as u32);
        let c = !checksum::combine(&[ph, checksum::sum(b)]);
        set_be16(self.buf.as_mut(), 2..4, c);
    }
}

/// A neighbour advertisement's flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NaFlags {
    pub router: bool,
    pub solicited: bool,
    pub override_flag: bool,
}

/// Length of an NS or NA with one link-layer address option.
pub const ND_LEN: usize = 32;

/// Writes a neighbour solicitation (`solicit`) or a solicited, overriding
/// advertisement for `target` carrying `mac` into `buf` (32 bytes); fills
/// the checksum for `src` → `dst`.
pub fn emit_nd(
    buf: &mut [u8],
    solicit: bool,
    target: Ipv6Addr,
    mac: MacAddr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> Result<()> {
    if buf.len() < ND_LEN {
        return Err(Error::Truncated);
    }
    let b = &mut buf[..ND_LEN];
    b.fill(0);
    if solicit {
        b[0] = kind::NEIGHBOR_SOLICIT;
        b[24] = OPT_SOURCE_LLADDR;
    } else {
        b[0] = kind::NEIGHBOR_ADVERT;
        // Solicited and Override.
        b[4] = 0x60;
        b[24] = OPT_TARGET_LLADDR;
    }
    b[8..24].copy_from_slice(&target.octets());
    b[25] = 1;
    b[26..32].copy_from_slice(&mac.0);
    Icmpv6Packet::new_checked(b)?.fill_checksum(src, dst);
    Ok(())
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast address of an IPv6 multicast address.
pub fn multicast_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nd_roundtrip() {
        let mut b = [0u8; ND_LEN];
        let t: Ipv6Addr = "fd00:2::2".parse().unwrap();
        let me: Ipv6Addr = "fd00:2::1".parse().unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 0xd2]);
        emit_nd(&mut b, true, t, mac, me, solicited_node(t)).unwrap();
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), kind::NEIGHBOR_SOLICIT);
        assert!(p.verify_checksum(me, solicited_node(t)));
        assert_eq!(p.nd_target(), Some(t));
        assert_eq!(p.nd_lladdr(), Some(mac));
        assert_eq!(p.na_flags(), NaFlags::default(), "a solicitation has none");
        emit_nd(&mut b, false, t, mac, me, t).unwrap();
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            p.na_flags(),
            NaFlags {
                router: false,
                solicited: true,
                override_flag: true
            }
        );
        assert_eq!(
            solicited_node(t),
            "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(t)),
            MacAddr([0x33, 0x33, 0xff, 0, 0, 2])
        );
    }

    #[test]
    fn malformed_options_are_ignored() {
        let mut b = [0u8; ND_LEN];
        let t: Ipv6Addr = "fd00::1".parse().unwrap();
        emit_nd(&mut b, false, t, MacAddr([2; 6]), t, t).unwrap();
        b[25] = 0; // zero-length option
        assert_eq!(Icmpv6Packet::new_checked(&b[..]).unwrap().nd_lladdr(), None);
        b[25] = 4; // runs past the end
        assert_eq!(Icmpv6Packet::new_checked(&b[..]).unwrap().nd_lladdr(), None);
    }
}
