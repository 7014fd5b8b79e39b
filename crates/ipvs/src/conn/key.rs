//! Flow keys as the slabs store them, and the table's seeded hash.
//!
//! A connection is hashed by its client endpoint alone (protocol, client
//! address and port), as the kernel's `ip_vs_conn_hashkey_conn` does: a NAT
//! server's reply carries that endpoint too (as its destination), so one
//! index entry serves both directions and NAT needs no second index.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::FlowKey;
use crate::types::Protocol;

/// The address family specific part of a slot.
pub(super) trait SlotKey: Copy + Default + PartialEq {
    fn from_flow(k: &FlowKey) -> Option<Self>;
    fn to_flow(&self) -> FlowKey;
    /// The hash of the key's client endpoint ([`client_hash`]).
    fn seeded_hash(&self, seed: &Seed) -> u64;
    /// Whether the key's client endpoint is this one.
    fn is_client(&self, protocol: u8, caddr: IpAddr, cport: u16) -> bool;
    fn is_tcp(&self) -> bool;
}

/// The index's hash of a client endpoint: what a client's packet carries
/// as its source and a NAT server's reply as its destination.
#[inline]
pub(super) fn client_hash(seed: &Seed, protocol: u8, caddr: IpAddr, cport: u16) -> u64 {
    match caddr {
        IpAddr::V4(a) => v4_hash(seed, protocol, a.into(), cport),
        IpAddr::V6(a) => v6_hash(seed, protocol, a.octets(), cport),
    }
}

#[inline]
fn v4_hash(seed: &Seed, protocol: u8, caddr: u32, cport: u16) -> u64 {
    seed.hash2(caddr as u64, (cport as u64) << 8 | protocol as u64)
}

#[inline]
fn v6_hash(seed: &Seed, protocol: u8, caddr: [u8; 16], cport: u16) -> u64 {
    let a = u128::from_be_bytes(caddr);
    let h = seed.hash2((a >> 64) as u64, a as u64);
    seed.hash2(h, (cport as u64) << 8 | protocol as u64)
}

/// The seeds of a table's hashes, random per table: clients choose their
/// addresses and ports, and must not be able to aim them at one bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seed(u64, u64);

impl Seed {
    pub(super) fn random() -> Seed {
        let s = std::collections::hash_map::RandomState::new();
        Seed(s.hash_one(1u8) | 1, s.hash_one(2u8) | 1)
    }

    /// Two words into one hash: one 64×64→128-bit multiply, folded (the
    /// mixing step of wyhash/foldhash); every output bit depends on every
    /// input bit.
    #[inline]
    pub(super) fn hash2(&self, a: u64, b: u64) -> u64 {
        let p = (a ^ self.0) as u128 * (b ^ self.1) as u128;
        (p as u64) ^ (p >> 64) as u64
    }
}

/// An IPv4 flow key: 16 bytes (13 used).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub(super) struct V4Key {
    caddr: u32,
    vaddr: u32,
    cport: u16,
    vport: u16,
    protocol: u8,
}

/// An IPv6 flow key: 40 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub(super) struct V6Key {
    caddr: [u8; 16],
    vaddr: [u8; 16],
    cport: u16,
    vport: u16,
    protocol: u8,
}

impl SlotKey for V4Key {
    fn from_flow(k: &FlowKey) -> Option<Self> {
        match (k.caddr, k.vaddr) {
            (IpAddr::V4(c), IpAddr::V4(v)) => Some(V4Key {
                caddr: c.into(),
                vaddr: v.into(),
                cport: k.cport,
                vport: k.vport,
                protocol: k.protocol.number(),
            }),
            _ => None,
        }
    }

    #[inline]
    fn seeded_hash(&self, seed: &Seed) -> u64 {
        v4_hash(seed, self.protocol, self.caddr, self.cport)
    }

    #[inline]
    fn is_client(&self, protocol: u8, caddr: IpAddr, cport: u16) -> bool {
        self.protocol == protocol && self.cport == cport && caddr == Ipv4Addr::from(self.caddr)
    }

    fn is_tcp(&self) -> bool {
        self.protocol == Protocol::Tcp.number()
    }

    fn to_flow(&self) -> FlowKey {
        FlowKey {
            protocol: Protocol::from_number(self.protocol).unwrap_or(Protocol::Tcp),
            caddr: IpAddr::V4(Ipv4Addr::from(self.caddr)),
            cport: self.cport,
            vaddr: IpAddr::V4(Ipv4Addr::from(self.vaddr)),
            vport: self.vport,
        }
    }
}

impl SlotKey for V6Key {
    fn from_flow(k: &FlowKey) -> Option<Self> {
        match (k.caddr, k.vaddr) {
            (IpAddr::V6(c), IpAddr::V6(v)) => Some(V6Key {
                caddr: c.octets(),
                vaddr: v.octets(),
                cport: k.cport,
                vport: k.vport,
                protocol: k.protocol.number(),
            }),
            _ => None,
        }
    }

    #[inline]
    fn seeded_hash(&self, seed: &Seed) -> u64 {
        v6_hash(seed, self.protocol, self.caddr, self.cport)
    }

    #[inline]
    fn is_client(&self, protocol: u8, caddr: IpAddr, cport: u16) -> bool {
        self.protocol == protocol && self.cport == cport && caddr == Ipv6Addr::from(self.caddr)
    }

    fn is_tcp(&self) -> bool {
        self.protocol == Protocol::Tcp.number()
    }

    fn to_flow(&self) -> FlowKey {
        FlowKey {
            protocol: Protocol::from_number(self.protocol).unwrap_or(Protocol::Tcp),
            caddr: IpAddr::V6(Ipv6Addr::from(self.caddr)),
            cport: self.cport,
            vaddr: IpAddr::V6(Ipv6Addr::from(self.vaddr)),
            vport: self.vport,
        }
    }
}
