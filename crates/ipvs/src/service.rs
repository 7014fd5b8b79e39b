//! Virtual services.

use serde::{Deserialize, Serialize};

use crate::dest::Dest;
use crate::sched::Scheduler;
use crate::types::{DestKey, PersistMask, ServiceKey};

/// Scheduler flags (`-b`), as the kernel's IP_VS_SVC_F_SCHED{1,2,3} bits.
pub mod sched_flags {
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
    pub const ALL: u32 = SCHED1 | SCHED2 | SCHED3;
}

/// What `-A`/`-E` say about a service. `-E` replaces every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub scheduler: String,
    /// `-b` bits (see [`sched_flags`]).
    pub sched_flags: u32,
    /// `-p`: persistence timeout in seconds.
    pub persistent: Option<u32>,
    /// `-M`: the persistence mask.
    pub netmask: PersistMask,
    /// `-o`: one-packet scheduling.
    pub one_packet: bool,
}

/// A virtual service in one replica: its spec, its dests in the kernel's
/// list order (newest first) and this replica's scheduler instance.
pub struct Service {
    pub spec: ServiceSpec,
    pub dests: Vec<Dest>,
    pub sched: Box<dyn Scheduler>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("spec", &self.spec)
            .field("dests", &self.dests)
            .field("sched", &self.sched.name())
            .finish()
    }
}

impl Service {
    pub fn key(&self) -> ServiceKey {
        self.spec.key
    }

    pub fn find_dest(&self, key: DestKey) -> Option<usize> {
        self.dests.iter().position(|d| d.key() == key)
    }
}
