//! See `rvs_fuzz::rvsd_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::rvsd_toml::run(data));
