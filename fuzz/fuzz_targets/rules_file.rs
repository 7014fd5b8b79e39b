//! See `rvs_fuzz::rules_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::rules_file::run(data));
