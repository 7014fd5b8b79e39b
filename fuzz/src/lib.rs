//! The harnesses behind the fuzz targets (`fuzz_targets/`, one each), in a
//! library so that the seed corpora are made, and every seed replayed, by
//! plain `cargo test --lib` (see docs/fuzzing.md).

pub mod build;
pub mod control_proto;
pub mod keepalived_conf;
pub mod rules_file;
pub mod rvsadm_args;
pub mod rvsd_toml;
pub mod seeds;
pub mod wire;
pub mod worker_handle;

#[cfg(test)]
mod tests;
