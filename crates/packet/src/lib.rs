//! Zero-copy packet views, in the manner of smoltcp's `wire` module.
//!
//! Each protocol has a view `Foo<T: AsRef<[u8]>>` built by `new_checked`,
//! which validates lengths once so that every accessor can index without
//! re-checking. Getters need `AsRef<[u8]>`, setters `AsMut<[u8]>`, so the same
//! code reads a fixture array in a test and rewrites an mbuf in the dataplane.

#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

/// Literal packets shared by this crate's tests and the dataplane's.
pub mod fixtures;

pub use arp::ArpPacket;
pub use ethernet::{EtherType, EthernetFrame, MacAddr};
pub use icmp::IcmpPacket;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use tcp::TcpSegment;
pub use udp::UdpDatagram;

/// Why a view could not be built over a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the header")]
    Truncated,
    #[error("malformed header field")]
    Malformed,
}

pub type Result<T> = std::result::Result<T, Error>;

/// A byte range inside a header.
pub(crate) type Field = std::ops::Range<usize>;

#[inline]
pub(crate) fn be16(b: &[u8], f: Field) -> u16 {
    u16::from_be_bytes([b[f.start], b[f.start + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], f: Field) -> u32 {
    u32::from_be_bytes([b[f.start], b[f.start + 1], b[f.start + 2], b[f.start + 3]])
}

#[inline]
pub(crate) fn set_be16(b: &mut [u8], f: Field, v: u16) {
    b[f].copy_from_slice(&v.to_be_bytes());
}
