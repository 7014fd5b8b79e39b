//! See `rvs_fuzz::worker_handle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::worker_handle::Harness::run(data));
