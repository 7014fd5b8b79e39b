//! The dataplane clock: milliseconds since the process started, the same
//! origin for every worker and the control thread, so that expiry times
//! written by one can be compared by another.

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process.
#[inline]
pub fn now_ms() -> u64 {
    ms_at(Instant::now())
}

/// [`now_ms`] for an instant the caller read itself (the poll loop reads
/// the clock once per pass and times the pass with the same reading).
#[inline]
pub fn ms_at(at: Instant) -> u64 {
    at.saturating_duration_since(*START.get_or_init(Instant::now))
        .as_millis() as u64
}
