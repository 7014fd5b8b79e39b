//! IPv6 headers (RFC 8200), and the walk over the extension headers in
//! front of the transport header: hop-by-hop and destination options and
//! routing headers are skipped, a fragment header is read.

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
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const DEST_OPTIONS: u8 = 60;

    /// Whether `nh` is an extension header [`super::upper_layer`] walks.
    #[inline]
    pub fn is_walked_extension(nh: u8) -> bool {
        matches!(nh, HOP_BY_HOP | ROUTING | FRAGMENT | DEST_OPTIONS)
    }
}

/// Most extension headers walked before the transport: more is an attack
/// (or a test of one), not traffic.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// The fragment header of an IPv6 packet (RFC 8200 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Offset of this fragment's data in the original's fragmentable
    /// part, in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// Where the transport header of an IPv6 packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The protocol after the last extension header (of the fragment
    /// header, for a fragment).
    pub protocol: u8,
    /// Offset from the start of the IPv6 header: of the transport header,
    /// or, in a fragment that is not the first, of its data.
    pub offset: usize,
    pub fragment: Option<Fragment>,
}

/// Why an extension-header chain is not walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionError {
    /// A header runs past the payload.
    Truncated,
    /// A routing header with segments left: the packet is not for this
    /// node in the end, it is passing through (RFC 8200 4.4).
    SegmentsLeft,
    /// Hop-by-hop options anywhere but first, two fragment headers, or
    /// more than [`MAX_EXTENSION_HEADERS`].
    Malformed,
}

/// Walks the extension headers of the IPv6 packet `packet` (whose payload
/// length was validated) up to the transport header. A fragment that is not
/// the first stops the walk at its fragment header: what follows is data.
pub fn upper_layer(packet: &[u8]) -> std::result::Result<UpperLayer, ExtensionError> {
    let end = (HEADER_LEN + be16(packet, field::PAYLOAD_LEN) as usize).min(packet.len());
    let b = &packet[..end];
    let mut nh = b[field::NEXT_HEADER];
    let mut at = HEADER_LEN;
    let mut fragment = None;
    for _ in 0..MAX_EXTENSION_HEADERS {
        match nh {
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTIONS => {
                if nh == next_header::HOP_BY_HOP && at != HEADER_LEN {
                    return Err(ExtensionError::Malformed);
                }
                let h = b.get(at..at + 8).ok_or(ExtensionError::Truncated)?;
                if nh == next_header::ROUTING && h[3] != 0 {
                    return Err(ExtensionError::SegmentsLeft);
                }
                let len = (h[1] as usize + 1) * 8;
                if at + len > b.len() {
                    return Err(ExtensionError::Truncated);
                }
                nh = h[0];
                at += len;
            }
            next_header::FRAGMENT => {
                if fragment.is_some() {
                    return Err(ExtensionError::Malformed);
                }
                let h = b.get(at..at + 8).ok_or(ExtensionError::Truncated)?;
                let off_m = u16::from_be_bytes([h[2], h[3]]);
                let f = Fragment {
                    offset: off_m & 0xfff8,
                    more: off_m & 1 != 0,
                    ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                };
                fragment = Some(f);
                nh = h[0];
                at += 8;
                if f.offset != 0 {
                    break;
                }
            }
            _ => break,
        }
    }
    if next_header::is_walked_extension(nh) && fragment.is_none_or(|f| f.offset == 0) {
        return Err(ExtensionError::Malformed);
    }
    Ok(UpperLayer {
        protocol: nh,
        offset: at,
        fragment,
    })
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

    /// An IPv6 packet whose payload is `exts` (each: next header, then its
    /// bytes after the next-header byte) followed by 8 bytes of `last`.
    fn with_extensions(exts: &[(u8, Vec<u8>)], last: u8) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, (_, body)) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(last, |e| e.0);
            payload.push(next);
            payload.extend_from_slice(body);
        }
        payload.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50, 0, 8, 0, 0]);
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        let first = exts.first().map_or(last, |e| e.0);
        let a: Ipv6Addr = "fd00::1".parse().unwrap();
        Ipv6Packet::emit(&mut b[..], a, a, first, payload.len() as u16, 64, 0).unwrap();
        b[HEADER_LEN..].copy_from_slice(&payload);
        b
    }

    /// Options header body of 8 bytes in all: length 0, then PadN.
    fn options() -> Vec<u8> {
        vec![0, 1, 4, 0, 0, 0, 0]
    }

    fn routing(segments_left: u8) -> Vec<u8> {
        vec![0, 4, segments_left, 0, 0, 0, 0]
    }

    fn fragment_header(offset: u16, more: bool, ident: u32) -> Vec<u8> {
        let om = offset | more as u16;
        let mut v = vec![0, (om >> 8) as u8, om as u8];
        v.extend_from_slice(&ident.to_be_bytes());
        v
    }

    #[test]
    fn the_walk_skips_options_and_finished_routing_headers() {
        use next_header::*;
        let p = with_extensions(
            &[
                (HOP_BY_HOP, options()),
                (ROUTING, routing(0)),
                (DEST_OPTIONS, options()),
            ],
            UDP,
        );
        let u = upper_layer(&p).unwrap();
        assert_eq!(
            (u.protocol, u.offset, u.fragment),
            (UDP, HEADER_LEN + 24, None)
        );
        assert_eq!(&p[u.offset..u.offset + 2], &[0x1f, 0x90]);
        let plain = with_extensions(&[], TCP);
        assert_eq!(upper_layer(&plain).unwrap().offset, HEADER_LEN);
    }

    #[test]
    fn the_walk_reads_fragment_headers() {
        use next_header::*;
        let first = with_extensions(&[(FRAGMENT, fragment_header(0, true, 0xdead_beef))], UDP);
        let u = upper_layer(&first).unwrap();
        assert_eq!((u.protocol, u.offset), (UDP, HEADER_LEN + 8));
        let f = Fragment {
            offset: 0,
            more: true,
            ident: 0xdead_beef,
        };
        assert_eq!(u.fragment, Some(f));
        // A later fragment: its data starts after the fragment header, even
        // when the fragmentable part began with more extension headers.
        let later = with_extensions(
            &[
                (DEST_OPTIONS, options()),
                (FRAGMENT, fragment_header(1448, false, 7)),
            ],
            DEST_OPTIONS,
        );
        let u = upper_layer(&later).unwrap();
        assert_eq!((u.protocol, u.offset), (DEST_OPTIONS, HEADER_LEN + 16));
        assert_eq!(
            u.fragment.map(|f| (f.offset, f.more, f.ident)),
            Some((1448, false, 7))
        );
    }

    #[test]
    fn the_walk_refuses_what_it_must() {
        use next_header::*;
        let e = |exts: &[(u8, Vec<u8>)]| upper_layer(&with_extensions(exts, UDP)).unwrap_err();
        assert_eq!(e(&[(ROUTING, routing(1))]), ExtensionError::SegmentsLeft);
        let late_hbh = [(DEST_OPTIONS, options()), (HOP_BY_HOP, options())];
        assert_eq!(e(&late_hbh), ExtensionError::Malformed);
        let two = [
            (FRAGMENT, fragment_header(0, true, 1)),
            (FRAGMENT, fragment_header(0, true, 1)),
        ];
        assert_eq!(e(&two), ExtensionError::Malformed);
        let many = vec![(DEST_OPTIONS, options()); MAX_EXTENSION_HEADERS + 1];
        assert_eq!(e(&many), ExtensionError::Malformed);
        let eight = vec![(DEST_OPTIONS, options()); MAX_EXTENSION_HEADERS];
        assert!(upper_layer(&with_extensions(&eight, UDP)).is_ok());
        // A header whose length runs past the payload.
        let mut p = with_extensions(&[(DEST_OPTIONS, options())], UDP);
        p[HEADER_LEN + 1] = 5;
        assert_eq!(upper_layer(&p), Err(ExtensionError::Truncated));
        let mut cut = with_extensions(&[(DEST_OPTIONS, options())], UDP);
        cut.truncate(HEADER_LEN + 4);
        cut[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(upper_layer(&cut), Err(ExtensionError::Truncated));
    }

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
