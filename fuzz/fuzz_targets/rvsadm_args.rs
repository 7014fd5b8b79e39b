//! See `rvs_fuzz::rvsadm_args`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::rvsadm_args::run(data));
