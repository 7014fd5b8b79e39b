//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to 16
/// bits but not inverted. An odd trailing byte is padded with zero.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    match <&[u8; 20]>::try_from(data) {
        Ok(h) => sum20(h),
        Err(_) => sum_any(data),
    }
}

/// An option-less IPv4 header, the case of every forwarded packet: five
/// native-order 32-bit loads. The one's-complement sum does not care about
/// byte order until the end (RFC 1071, 2.B), where one swap fixes it.
#[inline]
fn sum20(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]) as u64;
    u16::from_be(fold(w(0) + w(4) + w(8) + w(12) + w(16)))
}

/// Native-order 32-bit words, swapped once at the end as in `sum20`
/// (twice as fast as big-endian 16-bit words: a sync message's UDP
/// checksum covers up to a whole MTU). A trailing part word is padded with
/// zeros after it, as RFC 1071 pads an odd byte.
fn sum_any(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 4];
        w[..rest.len()].copy_from_slice(rest);
        acc += u32::from_ne_bytes(w) as u64;
    }
    u16::from_be(fold(acc))
}

/// Folds a wide one's-complement accumulator to 16 bits.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// One's-complement addition of partial sums.
#[inline]
pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| p as u64).sum())
}

/// The sum of the IPv4 pseudo-header used by TCP and UDP.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    combine(&[
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        protocol as u16,
        length,
    ])
}

/// The sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    let mut acc: u64 = 0;
    for a in [src, dst] {
        for w in a.segments() {
            acc += w as u64;
        }
    }
    acc += (length >> 16) as u64 + (length & 0xffff) as u64 + next_header as u64;
    fold(acc)
}

/// As [`update16`] for a 128-bit value (an IPv6 address).
pub fn update128(csum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    old.segments()
        .iter()
        .zip(new.segments())
        .fold(csum, |c, (o, n)| update16(c, *o, n))
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered
/// data changes from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u64 + !old as u64 + new as u64)
}

/// As [`update16`] for a 32-bit value (an IPv4 address).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let c = update16(csum, (old >> 16) as u16, (new >> 16) as u16);
    update16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    /// RFC 1071's definition, word by word.
    fn sum_by_words(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for w in data.chunks(2) {
            acc += (w[0] as u64) << 8 | w.get(1).copied().unwrap_or(0) as u64;
        }
        fold(acc)
    }

    proptest! {
        #[test]
        fn the_sum_is_rfc1071s_for_any_length(data in proptest::collection::vec(any::<u8>(), 0..1600usize)) {
            prop_assert_eq!(sum(&data), sum_by_words(&data));
        }

        #[test]
        fn twenty_byte_sum_matches_the_general_one(data in proptest::collection::vec(any::<u8>(), 20..=20usize)) {
            prop_assert_eq!(sum(&data), sum_any(&data));
        }
    }

    proptest! {
        #[test]
        fn incremental_update_matches_recompute(
            mut data in proptest::collection::vec(any::<u8>(), 2..64usize),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            if data.len() % 2 == 1 { data.push(0); }
            let words = data.len() / 2;
            let i = idx.index(words) * 2;
            let before = !sum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let after = !sum(&data);
            let inc = update16(before, old, new);
            // 0x0000 and 0xffff are the same value in one's complement.
            prop_assert!(inc == after || (inc == 0xffff && after == 0) || (inc == 0 && after == 0xffff));
        }
    }
}
