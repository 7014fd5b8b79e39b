//! See `rvs_fuzz::control_proto`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rvs_fuzz::control_proto::run(data));
