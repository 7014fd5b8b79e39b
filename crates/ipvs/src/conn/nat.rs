//! The NAT reply index: a real server's reply finds its connection by the
//! reply's addresses and ports (each slab has one, sized up front).

use std::net::IpAddr;

use super::key::{ip_bits, Seed};
use super::{Conn, ConnRef, ConnTable, OutKey, V6};

pub(super) fn out_hash(
    seed: &Seed,
    protocol: u8,
    daddr: IpAddr,
    dport: u16,
    caddr: IpAddr,
    cport: u16,
) -> u64 {
    seed.hash_addrs(
        ip_bits(daddr),
        ip_bits(caddr),
        (dport as u64) << 32 | (cport as u64) << 16 | protocol as u64,
    )
}

impl ConnTable {
    /// The NAT connection a reply from a real server belongs to.
    #[inline]
    pub fn lookup_out(&self, key: &OutKey) -> Option<ConnRef> {
        let matches = |c: &Conn| c.out_key() == *key;
        let h = || {
            out_hash(
                &self.seed,
                key.protocol.number(),
                key.daddr,
                key.dport,
                key.caddr,
                key.cport,
            )
        };
        if key.caddr.is_ipv4() {
            if self.v4.out_index.is_empty() {
                return None;
            }
            self.v4
                .out_index
                .find(h(), |i| matches(&self.view(ConnRef(i))))
                .map(ConnRef)
        } else {
            if self.v6.out_index.is_empty() {
                return None;
            }
            self.v6
                .out_index
                .find(h(), |i| matches(&self.view(ConnRef(i | V6))))
                .map(|i| ConnRef(i | V6))
        }
    }
}
