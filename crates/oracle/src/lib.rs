//! The kernel oracle: the same scenario against real Linux IPVS and against
//! rvsd, in the same VM and topology, compared line by line.
//!
//! - [`scenario`]: a scenario file (oracle/scenarios/GROUP/NAME.toml).
//! - [`topology`]: the hosts as network namespaces; [`netns`] enters them.
//! - [`traffic`] and [`packets`]: real connections and scripted packets.
//! - [`runner`]: one scenario against one director, into a [`transcript`].
//! - [`compare`]: the two transcripts, with the deliberate differences
//!   (oracle/deliberate.toml) normalised away.
//!
//! `cargo xtask kernel-vm test` boots the VM once per group and runs
//! `rvs-oracle run` inside; the comparison happens on the host.

#![forbid(unsafe_code)]

pub mod compare;
pub mod netns;
pub mod packets;
pub mod runner;
pub mod scenario;
pub mod sync_interop;
pub mod topology;
pub mod traffic;
pub mod transcript;

use std::path::{Path, PathBuf};

/// A scenario's name: its path under the scenarios folder, without `.toml`
/// (`sched/rr`).
pub fn scenario_name(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .with_extension("")
        .to_string_lossy()
        .into_owned()
}

/// Where a run's transcript goes: `<results>/<group>~<name>.<director>`.
pub fn result_path(results: &Path, name: &str, director: &str) -> PathBuf {
    results.join(format!("{}.{director}", name.replace('/', "~")))
}
