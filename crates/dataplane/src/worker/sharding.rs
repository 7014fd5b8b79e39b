//! Which worker owns a flow.

use std::net::IpAddr;

use rvs_ipvs::conn::FlowKey;

use super::Worker;

/// Which worker owns a flow: a keyed hash of its client endpoint (the same
/// answer for both directions of a flow, whatever the VIP or NAT port).
///
/// The key is drawn at random when rvsd starts, so a client cannot choose
/// addresses and ports that all land on one worker (with an unkeyed hash
/// it could, from rvsd's source). SipHash-1-3 is the keyed hash made for
/// inputs an adversary picks. `[workers] flow_seed` fixes the key, for
/// benchmarks whose captures are split by owner in advance (`pktgen
/// --shard K/N --flow-seed S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSharding {
    keys: (u64, u64),
}

impl FlowSharding {
    /// A key from a fixed seed (benchmarks, tests).
    pub fn with_seed(seed: u64) -> FlowSharding {
        // Two halves of one 64-bit seed: the second spreads the first so
        // that seeds 0, 1, 2... give unrelated keys.
        FlowSharding {
            keys: (
                seed,
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d,
            ),
        }
    }

    /// A key from the operating system's random source.
    pub fn random() -> std::io::Result<FlowSharding> {
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        let (k0, k1) = b.split_at(8);
        Ok(FlowSharding {
            keys: (
                u64::from_le_bytes(k0.try_into().expect("8 bytes")),
                u64::from_le_bytes(k1.try_into().expect("8 bytes")),
            ),
        })
    }

    /// The worker that owns connections of this client endpoint.
    #[inline]
    pub fn owner_of(&self, caddr: IpAddr, cport: u16, workers: usize) -> usize {
        use std::hash::Hasher;
        if workers <= 1 {
            return 0;
        }
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.keys.0, self.keys.1);
        // The bytes themselves, not std's `Hash` of `IpAddr`: pktgen must
        // get the same answer as rvsd, whatever builds them.
        match caddr {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.write(&cport.to_be_bytes());
        (h.finish() % workers as u64) as usize
    }
}

impl Worker {
    /// The worker owning this packet's connection, if not this one: the
    /// client is the source of packets to a VIP and the destination of
    /// anything else (a NAT server's reply).
    #[inline]
    pub(super) fn elsewhere(&self, key: &FlowKey) -> Option<usize> {
        let n = self.cfg.workers;
        if n <= 1 {
            return None;
        }
        let w = if self.director.is_vip(key.vaddr) {
            self.cfg.sharding.owner_of(key.caddr, key.cport, n)
        } else {
            self.cfg.sharding.owner_of(key.vaddr, key.vport, n)
        };
        (w != self.cfg.id).then_some(w)
    }
}
