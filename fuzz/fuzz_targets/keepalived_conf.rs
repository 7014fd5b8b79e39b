//! See `rvs_fuzz::keepalived_conf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::keepalived_conf::run(data));
