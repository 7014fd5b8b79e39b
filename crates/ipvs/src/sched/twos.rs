//! Power of two choices (`ip_vs_twos.c`): two dests drawn at random in
//! proportion to their weights; the less loaded of the two (by
//! `overhead / weight`) wins.
//!
//! Exactly, over the dests that are not overloaded and have weight > 0
//! ("eligible"), in list order:
//!
//! 1. `total = sum(weights) + 1`; none eligible: no dest.
//! 2. `r1 = rand_u32() % total`, then `r2 = rand_u32() % total`.
//! 3. Walk the eligible dests subtracting each weight from both; choice 1 is
//!    the first dest where `r1` becomes `<= 0`, choice 2 the first where `r2`
//!    does. (As `r <= total - 1 = sum`, both are always found; so the first
//!    eligible dest is drawn with odds `(w + 1) / total`, every other one with
//!    `w / total`.)
//! 4. Choice 2 wins if `w2 * overhead1 > w1 * overhead2`, else choice 1.
//!    The kernel computes these products in 32-bit `int`, as it does the
//!    overhead `active * 256 + inactive`; they are reproduced here with
//!    wrapping 32-bit arithmetic.
//!
//! The kernel's random source cannot be matched; this uses SplitMix64 and
//! takes the high 32 bits of each output as `rand_u32()`. [`new`] seeds it
//! from the process's random hasher keys; tests use
//! `TwoChoices::with_seed`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use super::{DestChange, SchedInput, Scheduler};
use crate::dest::Dest;

/// SplitMix64 (Steele, Lea and Flood): a 64-bit counter through a mixing
/// function; small, fast, and good enough for picking servers.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

#[derive(Debug)]
pub struct TwoChoices {
    rng: SplitMix64,
}

pub fn new(_flags: u32) -> Box<dyn Scheduler> {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(crate::clock::now_ms());
    Box::new(TwoChoices::with_seed(h.finish()))
}

/// A twos scheduler with a fixed seed, for deterministic tests.
#[cfg(test)]
pub(crate) fn with_seed(seed: u64) -> Box<dyn Scheduler> {
    Box::new(TwoChoices::with_seed(seed))
}

/// The kernel's `ip_vs_dest_conn_overhead` as a 32-bit `int`.
fn overhead_i32(d: &Dest) -> i32 {
    ((d.shared.active() as i32) << 8).wrapping_add(d.shared.inactive() as i32)
}

impl TwoChoices {
    pub(crate) fn with_seed(seed: u64) -> TwoChoices {
        TwoChoices {
            rng: SplitMix64(seed),
        }
    }
}

impl Scheduler for TwoChoices {
    fn name(&self) -> &'static str {
        "twos"
    }

    fn update(&mut self, _dests: &[Dest], _change: DestChange) {}

    fn schedule(&mut self, dests: &[Dest], _input: &SchedInput) -> Option<usize> {
        // Weights go up to INT_MAX, so the sum is an i64 (the kernel's int
        // sum would wrap with several huge weights; twos draws at random
        // and is not compared with the kernel).
        let mut total: i64 = 0;
        let mut last = None;
        for (i, d) in dests.iter().enumerate() {
            if d.is_available() {
                total += d.weight() as i64;
                last = Some(i);
            }
        }
        // Choice 1 defaults to the last eligible dest (never used: the walk
        // always finds one).
        let mut choice1 = last?;
        total += 1;
        let mut r1 = (self.rng.next_u32() as i64) % total;
        let mut r2 = (self.rng.next_u32() as i64) % total;

        let (mut w1, mut oh1): (i32, i32) = (-1, 0);
        let mut choice2: Option<(usize, i32, i32)> = None;
        for (i, d) in dests.iter().enumerate() {
            if !d.is_available() {
                continue;
            }
            let w = d.weight() as i64;
            r1 -= w;
            r2 -= w;
            if r1 <= 0 && w1 == -1 {
                choice1 = i;
                w1 = w as i32;
                oh1 = overhead_i32(d);
            }
            if r2 <= 0 && choice2.is_none() {
                choice2 = Some((i, w as i32, overhead_i32(d)));
            }
            if w1 != -1 && choice2.is_some() {
                break;
            }
        }
        if let Some((i2, w2, oh2)) = choice2 {
            if w2.wrapping_mul(oh1) > w1.wrapping_mul(oh2) {
                return Some(i2);
            }
        }
        Some(choice1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::sed::testgen::*;
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 1234567 (the values
        // published with the reference C implementation).
        let mut r = SplitMix64(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    /// The draw replayed by hand from the same random numbers.
    #[test]
    fn draw_follows_the_documented_walk() {
        // List order: .3 (w1) .2 (w2) .1 (w3); total = 7.
        let d = list(&[("10.0.0.1", 3), ("10.0.0.2", 2), ("10.0.0.3", 1)]);
        set_conns(&d[0], 2, 0); // .3: overhead 512 / 1
        set_conns(&d[1], 1, 0); // .2: overhead 256 / 2
        set_conns(&d[2], 0, 5); // .1: overhead 5 / 3
        let weights = [1i64, 2, 3];
        let oh = [512i64, 256, 5];
        let walk = |mut r: i64| {
            weights
                .iter()
                .position(|w| {
                    r -= w;
                    r <= 0
                })
                .unwrap()
        };
        let mut s = TwoChoices::with_seed(42);
        let mut rng = SplitMix64(42);
        for _ in 0..200 {
            let c1 = walk(rng.next_u32() as i64 % 7);
            let c2 = walk(rng.next_u32() as i64 % 7);
            let want = if weights[c2] * oh[c1] > weights[c1] * oh[c2] {
                c2
            } else {
                c1
            };
            assert_eq!(s.schedule(&d, &input()), Some(want));
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)]);
        let a = picks(&mut TwoChoices::with_seed(7), &d, 20);
        let b = picks(&mut TwoChoices::with_seed(7), &d, 20);
        assert_eq!(a, b);
        let c = picks(&mut TwoChoices::with_seed(8), &d, 20);
        assert_ne!(a, c);
    }

    #[test]
    fn frequencies_follow_weights_when_idle() {
        // All idle: overheads are 0, so choice 1 always stands and the pick
        // is distributed as the r1 walk: list order .3 (w1) .2 (w2) .1 (w4),
        // total 8: .3 gets (1 + 1)/8, .2 2/8, .1 4/8.
        let d = list(&[("10.0.0.1", 4), ("10.0.0.2", 2), ("10.0.0.3", 1)]);
        let mut s = TwoChoices::with_seed(0xdead_beef);
        let n = 80_000;
        let mut count = [0usize; 3];
        for _ in 0..n {
            count[s.schedule(&d, &input()).unwrap()] += 1;
        }
        let expect = [2.0 / 8.0, 2.0 / 8.0, 4.0 / 8.0];
        for (c, e) in count.iter().zip(expect) {
            let f = *c as f64 / n as f64;
            assert!((f - e).abs() < 0.01, "{count:?}");
        }
    }

    #[test]
    fn less_loaded_of_the_two_wins() {
        // List order .2 (w1, busy) .1 (w1, idle); total = 3, so a draw lands
        // on the list head for r in {0, 1} and on .1 for r = 2: odds 2/3 and
        // 1/3. The busy .2 is picked only when both draws land on it:
        // (2/3)^2 = 4/9.
        let d = list(&[("10.0.0.1", 1), ("10.0.0.2", 1)]);
        set_conns(&d[0], 1, 0);
        let mut s = TwoChoices::with_seed(99);
        let n = 90_000;
        let busy = (0..n)
            .filter(|_| s.schedule(&d, &input()) == Some(0))
            .count();
        let f = busy as f64 / n as f64;
        assert!((f - 4.0 / 9.0).abs() < 0.01, "{f}");
    }

    #[test]
    fn skips_overloaded_and_weight_zero() {
        // List order: .3 (w5, overloaded) .2 (w0) .1 (w1)
        let mut d = list(&[("10.0.0.1", 1), ("10.0.0.2", 0), ("10.0.0.3", 5)]);
        overload(&mut d[0]);
        let mut s = TwoChoices::with_seed(1);
        assert!(picks(&mut s, &d, 50).iter().all(|p| p == "10.0.0.1"));
        overload(&mut d[2]);
        assert_eq!(picks(&mut s, &d, 1), ["-"]);
    }

    #[test]
    fn products_wrap_like_the_kernels_int() {
        // Equal weights 100; .2 has 90_000 active (overhead 23_040_000, and
        // 100 * that leaves the i32 range), .1 has 10 (overhead 2560).
        // Whichever order the two draws come in, the wrapped product makes
        // the kernel prefer .2: it is picked whenever either draw lands on
        // it, i.e. 1 - (100/201)^2 ~ 0.75 of the time, where the
        // arithmetic answer would be "only when both do" (~0.25).
        let d = list(&[("10.0.0.1", 100), ("10.0.0.2", 100)]);
        set_conns(&d[0], 90_000, 0);
        set_conns(&d[1], 10, 0);
        let mut s = TwoChoices::with_seed(5);
        let n = 40_000;
        let heavy = (0..n)
            .filter(|_| s.schedule(&d, &input()) == Some(0))
            .count();
        let f = heavy as f64 / n as f64;
        let want = 1.0 - (100.0f64 / 201.0).powi(2);
        assert!((f - want).abs() < 0.01, "{f}");
    }
}
