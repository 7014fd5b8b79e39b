//! The dataplane clock: milliseconds since the process started, the same
//! origin for every worker and the control thread, so that expiry times
//! written by one can be compared by another.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process.
#[inline]
pub fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
