//! The kernel's hash helpers used by the hashing schedulers (dh, sh, lblc,
//! lblcr, mh), reproduced bit for bit.
//!
//! - [`hash_32`] is `include/linux/hash.h`'s generic multiplicative hash: the
//!   value times `0x61C88647` (the 32-bit golden ratio), keeping the top
//!   `bits` bits.
//! - [`fold`] is how every `ip_vs_*_hashkey` turns an address into a u32: the
//!   IPv4 address in host order; for IPv6 the XOR of its four 32-bit words.
//!   The kernel XORs the words as stored (network order) and then applies
//!   `ntohl`; byte swapping commutes with XOR, so that equals the XOR of the
//!   four words each read big-endian.
//! - [`hsiphash_u32`] is `hsiphash()` of a 4-byte buffer holding a u32 on a
//!   64-bit little-endian kernel: there the "half" SipHash is really
//!   SipHash-1-3 with two u64 key words, and the u64 result is cut to its low
//!   32 bits.

use std::net::IpAddr;

/// The kernel's `GOLDEN_RATIO_32`.
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(v, bits)`: `(v * GOLDEN_RATIO_32 mod 2^32) >> (32 - bits)`.
/// `bits` must be in 1..=32.
#[inline]
pub fn hash_32(v: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits), "hash_32 bits {bits}");
    v.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The address folded to a host-order u32 as `ip_vs_*_hashkey` do.
#[inline]
pub fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4)
                .map(|i| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
                .fold(0, |x, w| x ^ w)
        }
    }
}

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-1-3 with key `(k0, k1)` of the four little-endian bytes of `v`,
/// truncated to the low 32 bits: the 64-bit kernel's `hsiphash(&v, 4, key)`.
///
/// A 4-byte message has no full 8-byte block, so the only compression is of
/// the final block `b = len << 56 | bytes` (one round), then the
/// finalization (three rounds).
#[inline]
pub fn hsiphash_u32(v: u32, k0: u64, k1: u64) -> u32 {
    let mut s = [
        0x736f_6d65_7073_6575 ^ k0,
        0x646f_7261_6e64_6f6d ^ k1,
        0x6c79_6765_6e65_7261 ^ k0,
        0x7465_6462_7974_6573 ^ k1,
    ];
    let b: u64 = (4u64 << 56) | u64::from(v);
    s[3] ^= b;
    sip_round(&mut s);
    s[0] ^= b;
    s[2] ^= 0xff;
    sip_round(&mut s);
    sip_round(&mut s);
    sip_round(&mut s);
    (s[0] ^ s[1] ^ s[2] ^ s[3]) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::hash::Hasher;

    fn reference(v: u32, k0: u64, k1: u64) -> u32 {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
        h.write(&v.to_le_bytes());
        h.finish() as u32
    }

    #[test]
    fn hash_32_by_hand() {
        assert_eq!(hash_32(0, 8), 0);
        // 1 * 0x61C88647 >> 24 = 0x61.
        assert_eq!(hash_32(1, 8), 0x61);
        // 2 * 0x61C88647 = 0xC3910C8E.
        assert_eq!(hash_32(2, 8), 0xC3);
        assert_eq!(hash_32(2, 10), 0xC3910C8E >> 22);
        // 3 * 0x61C88647 = 0x1_255992D5, wraps to 0x255992D5.
        assert_eq!(hash_32(3, 8), 0x25);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
        // 192.168.1.50 = 0xC0A80132; * 0x61C88647 mod 2^32 = 0x404880DE.
        assert_eq!(0xC0A8_0132u32.wrapping_mul(GOLDEN_RATIO_32), 0x4048_80DE);
        assert_eq!(hash_32(0xC0A8_0132, 8), 0x40);
    }

    #[test]
    fn fold_v4_is_host_order() {
        assert_eq!(fold("10.1.2.3".parse().unwrap()), 0x0A01_0203);
    }

    #[test]
    fn fold_v6_xors_big_endian_words() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let want = 0x2001_0db8 ^ 0x0001_0002 ^ 0x0003_0004 ^ 0x0005_0006;
        assert_eq!(fold(a), want);
        assert_eq!(fold("::1".parse().unwrap()), 1);
        // Only the XOR matters: swapping two words folds the same.
        let b: IpAddr = "3:4:1:2:2001:db8:5:6".parse().unwrap();
        assert_eq!(fold(b), want);
    }

    #[test]
    fn hsiphash_matches_siphasher_on_mh_keys() {
        for k in [2_654_435_761u64, 2_654_446_892] {
            for v in [0u32, 1, 80, 0xC0A8_0132, 0x0A00_0001, u32::MAX] {
                assert_eq!(hsiphash_u32(v, k, k), reference(v, k, k), "v {v:#x} k {k}");
            }
        }
    }

    #[test]
    fn hsiphash_known_vectors() {
        // A third, independent SipHash-1-3: CPython 3.11 hashes bytes with
        // it, and with PYTHONHASHSEED=0 its key is (0, 0). The values are
        // `hash(struct.pack('<I', v)) & 0xffffffff` from that interpreter;
        // they pin the byte order and the truncation to the low half.
        for (v, want) in [
            (u32::from_le_bytes([0, 1, 2, 3]), 0x813e_4dbd),
            (0, 0x9ac4_8af0),
            (80, 0xc836_ee1b),
            (0xC0A8_0132, 0x8ef5_b899),
        ] {
            assert_eq!(hsiphash_u32(v, 0, 0), want, "v {v:#x}");
        }
    }

    proptest! {
        #[test]
        fn hsiphash_equals_siphash13(v: u32, k0: u64, k1: u64) {
            prop_assert_eq!(hsiphash_u32(v, k0, k1), reference(v, k0, k1));
        }
    }
}
