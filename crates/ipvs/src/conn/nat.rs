//! A NAT real server's reply finds its connection by the client endpoint it
//! is addressed to, in the same index as the client's packets (`key.rs`):
//! among that endpoint's connections, the NAT one to the reply's source.

use super::key::{client_hash, SlotKey};
use super::registry::{DestId, DestRef, Registry};
use super::slab::{Shard, F_LIVE};
use super::{ConnRef, ConnTable, OutKey, V6};
use crate::types::FwdMethod;

/// The slot of `s` that holds the NAT connection `key` is a reply of.
/// The hash is taken only when `s` has NAT connections: without, every
/// new flow's first packet asks here for nothing.
#[inline]
fn find_reply<K: SlotKey>(
    s: &Shard<K>,
    dests: &Registry<DestRef, DestId>,
    hash: impl FnOnce() -> u64,
    key: &OutKey,
) -> Option<u32> {
    if s.nat_live == 0 {
        return None;
    }
    let protocol = key.protocol.number();
    s.index.find(hash(), |i| {
        let slot = &s.slots[i as usize];
        if slot.data.flags & F_LIVE == 0
            || slot.data.dport != key.dport
            || !slot.key.is_client(protocol, key.caddr, key.cport)
        {
            return false;
        }
        let dest = dests.get(slot.data.dest);
        dest.fwd == FwdMethod::Masq && dest.addr == key.daddr
    })
}

impl ConnTable {
    /// The NAT connection a reply from a real server belongs to.
    #[inline]
    pub fn lookup_out(&self, key: &OutKey) -> Option<ConnRef> {
        let hash = || client_hash(&self.seed, key.protocol.number(), key.caddr, key.cport);
        if key.caddr.is_ipv4() {
            find_reply(&self.v4, &self.dests, hash, key).map(ConnRef)
        } else {
            find_reply(&self.v6, &self.dests, hash, key).map(|i| ConnRef(i | V6))
        }
    }
}
