//! Which worker owns a flow, computed as the NIC computes its receive queue.

use std::net::IpAddr;
use std::sync::Arc;

use dpdk::RSS_KEY_LEN;
use rvs_ipvs::conn::FlowKey;

use super::Worker;

/// The 40-byte RSS key Microsoft publishes with its RSS verification
/// suite, which NIC drivers (DPDK's among them) use as their default.
pub const MICROSOFT_RSS_KEY: [u8; RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash a NIC computes for receive-side scaling: for every
/// set bit of `input` (most significant first), the 32 key bits starting at
/// that bit's position are XORed in. Written here because it is a dozen
/// lines and no maintained crate offers it (DPDK's `rte_softrss` is the
/// same loop, inline in a header); the tests check it against Microsoft's
/// published values. `key` must be at least 4 bytes longer than `input`.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    assert!(key.len() >= input.len() + 4, "RSS key too short for input");
    let mut hash = 0u32;
    // The key's 32-bit window at the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, byte) in input.iter().enumerate() {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                hash ^= window;
            }
            // Slide the window one bit along the key.
            window = (window << 1) | u32::from((key[i + 4] >> bit) & 1);
        }
    }
    hash
}

/// Bytes of a client endpoint as the NIC hashes it with RSS on the source
/// alone: address, then port (18 for IPv6).
const ENDPOINT_BYTES: usize = 18;

/// Which worker owns a flow: the worker whose receive queue a NIC puts
/// the client's packets on when rvsd has programmed its RSS
/// (`dpdk::PortConfig::rss_key`): the Toeplitz hash of the client endpoint
/// alone (source address and port, `RTE_ETH_RSS_L3_SRC_ONLY |
/// L4_SRC_ONLY`) under this key, through the redirection table
/// [`dpdk::reta_queue`] describes. On such a NIC no packet from a client
/// is handed between workers; a NAT server's reply (addressed to the
/// client endpoint) and traffic on ports that hash otherwise are handed to
/// the owner.
///
/// The key is drawn at random when rvsd starts, so that a client cannot
/// choose addresses and ports that all land on one worker. (Toeplitz is
/// linear, but without the key, or a way to see which worker served it,
/// a client has nothing to solve for; and the NIC spreads the load by
/// this same hash before any worker sees it.) `[workers] flow_seed` fixes
/// the key, for benchmarks whose captures are split by owner in advance
/// (`pktgen --shard K/N --flow-seed S`).
#[derive(Clone)]
pub struct FlowSharding {
    key: [u8; RSS_KEY_LEN],
    /// `table[i][b]`: the hash's share of byte value `b` at position `i`
    /// of the endpoint. Toeplitz is linear (XOR), so a whole endpoint's
    /// hash is the XOR of its bytes' shares: 6 lookups for IPv4 instead
    /// of 48 steps of the bit loop. 18 KB, of which IPv4 reads 6.
    table: Arc<[[u32; 256]; ENDPOINT_BYTES]>,
}

impl std::fmt::Debug for FlowSharding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret of sorts: clients that knew it could aim.
        f.write_str("FlowSharding { key: .. }")
    }
}

impl PartialEq for FlowSharding {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for FlowSharding {}

impl FlowSharding {
    /// A sharding under this RSS key.
    pub fn with_key(key: [u8; RSS_KEY_LEN]) -> FlowSharding {
        let mut table = Box::new([[0u32; 256]; ENDPOINT_BYTES]);
        let mut input = [0u8; ENDPOINT_BYTES];
        for (i, row) in table.iter_mut().enumerate() {
            for (b, share) in row.iter_mut().enumerate() {
                input[i] = b as u8;
                *share = toeplitz(&key, &input[..=i]);
            }
            input[i] = 0;
        }
        FlowSharding {
            key,
            table: Arc::from(table),
        }
    }

    /// A key from a fixed seed (benchmarks, tests): SplitMix64's output
    /// stream, so that seeds 0, 1, 2... give unrelated keys.
    pub fn with_seed(seed: u64) -> FlowSharding {
        let mut state = seed;
        let mut key = [0u8; RSS_KEY_LEN];
        for chunk in key.chunks_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
        }
        FlowSharding::with_key(key)
    }

    /// A key from the operating system's random source.
    pub fn random() -> std::io::Result<FlowSharding> {
        let mut key = [0u8; RSS_KEY_LEN];
        getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(FlowSharding::with_key(key))
    }

    /// The RSS key, for the ports (`dpdk::PortConfig::rss_key`).
    pub fn rss_key(&self) -> [u8; RSS_KEY_LEN] {
        self.key
    }

    /// The Toeplitz hash of a client endpoint (address, then port, in
    /// network order) under this key.
    #[inline]
    pub fn endpoint_hash(&self, caddr: IpAddr, cport: u16) -> u32 {
        let port = cport.to_be_bytes();
        match caddr {
            IpAddr::V4(a) => self.hash_bytes(a.octets().iter().chain(&port)),
            IpAddr::V6(a) => self.hash_bytes(a.octets().iter().chain(&port)),
        }
    }

    #[inline]
    fn hash_bytes<'a>(&self, bytes: impl Iterator<Item = &'a u8>) -> u32 {
        bytes
            .zip(self.table.iter())
            .fold(0, |h, (&b, row)| h ^ row[usize::from(b)])
    }

    /// The worker that owns connections of this client endpoint.
    #[inline]
    pub fn owner_of(&self, caddr: IpAddr, cport: u16, workers: usize) -> usize {
        if workers <= 1 {
            return 0;
        }
        dpdk::reta_queue(self.endpoint_hash(caddr, cport), workers)
    }
}

impl Worker {
    /// The worker owning this packet's connection, if not this one: the
    /// client is the source of packets to a VIP and the destination of
    /// anything else (a NAT server's reply).
    #[inline(always)]
    pub(super) fn elsewhere(&self, key: &FlowKey) -> Option<usize> {
        // One worker owns everything: one test in line, not a call.
        if self.cfg.workers <= 1 {
            return None;
        }
        self.owner_if_not_this(key)
    }

    #[inline(never)]
    fn owner_if_not_this(&self, key: &FlowKey) -> Option<usize> {
        let n = self.cfg.workers;
        let w = if self.director.is_vip(key.vaddr) {
            self.cfg.sharding.owner_of(key.caddr, key.cport, n)
        } else {
            self.cfg.sharding.owner_of(key.vaddr, key.vport, n)
        };
        (w != self.cfg.id).then_some(w)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// Microsoft's "Verifying the RSS Hash Calculation" table (IPv4 with
    /// TCP ports, and IPv4 alone): destination, source, expected hashes.
    #[test]
    fn toeplitz_matches_microsofts_verification_values() {
        let cases = [
            (
                "161.142.100.80",
                1766,
                "66.9.149.187",
                2794,
                0x51cc_c178u32,
                0x323e_8fc2u32,
            ),
            (
                "65.69.140.83",
                4739,
                "199.92.111.2",
                14230,
                0xc626_b0ea,
                0xd718_262a,
            ),
            (
                "12.22.207.184",
                38024,
                "24.19.198.95",
                12898,
                0x5c2b_394a,
                0xd2d0_a5de,
            ),
            (
                "209.142.163.6",
                2217,
                "38.27.205.30",
                48228,
                0xafc7_327f,
                0x8298_9176,
            ),
            (
                "202.188.127.2",
                1303,
                "153.39.163.191",
                44251,
                0x10e8_28a2,
                0x5d18_09c5,
            ),
        ];
        for (dst, dport, src, sport, with_ports, addrs_only) in cases {
            let (d, s): (Ipv4Addr, Ipv4Addr) = (dst.parse().unwrap(), src.parse().unwrap());
            let mut input = [s.octets(), d.octets()].concat();
            assert_eq!(
                toeplitz(&MICROSOFT_RSS_KEY, &input),
                addrs_only,
                "{src} -> {dst}"
            );
            input.extend_from_slice(&(sport as u16).to_be_bytes());
            input.extend_from_slice(&(dport as u16).to_be_bytes());
            assert_eq!(
                toeplitz(&MICROSOFT_RSS_KEY, &input),
                with_ports,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    /// The table's XOR of byte shares is the bit loop's hash, for IPv4
    /// and IPv6 endpoints under Microsoft's key and seeded ones.
    #[test]
    fn the_endpoint_hash_is_toeplitz_over_address_then_port() {
        for s in [
            FlowSharding::with_key(MICROSOFT_RSS_KEY),
            FlowSharding::with_seed(0),
            FlowSharding::with_seed(77),
        ] {
            for i in 0..2000u32 {
                let v4 = Ipv4Addr::from(i.wrapping_mul(0x9e37_79b9));
                let v6 = Ipv6Addr::from(
                    u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                );
                let port = (i as u16).wrapping_mul(40503);
                for a in [IpAddr::V4(v4), IpAddr::V6(v6)] {
                    let mut input = match a {
                        IpAddr::V4(a) => a.octets().to_vec(),
                        IpAddr::V6(a) => a.octets().to_vec(),
                    };
                    input.extend_from_slice(&port.to_be_bytes());
                    let want = toeplitz(&s.rss_key(), &input);
                    assert_eq!(s.endpoint_hash(a, port), want, "{a} port {port}");
                    assert_eq!(s.owner_of(a, port, 3), dpdk::reta_queue(want, 3));
                }
            }
        }
    }

    #[test]
    fn seeds_give_unrelated_keys() {
        let keys: Vec<_> = (0..4)
            .map(|s| FlowSharding::with_seed(s).rss_key())
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                let same_bits: u32 = a.iter().zip(b).map(|(x, y)| (!(x ^ y)).count_ones()).sum();
                // 320 bits: about half agree.
                assert!((110..210).contains(&same_bits), "{same_bits}");
            }
        }
        assert_eq!(FlowSharding::with_seed(3), FlowSharding::with_seed(3));
    }
}
