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

/// Where targets that must read files write their input: a tmpfs when
/// there is one (ext4 flushes a file rewritten in place, which made the
/// file system most of a run).
pub fn scratch_dir() -> std::path::PathBuf {
    // `cargo xtask fuzz` names a folder of its own and removes it after
    // the runs: libFuzzer ends a process with exit(), so a harness never
    // gets to remove what it wrote.
    if let Some(d) = std::env::var_os("RVS_FUZZ_SCRATCH") {
        let d = std::path::PathBuf::from(d);
        let _ = std::fs::create_dir_all(&d);
        return d;
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
