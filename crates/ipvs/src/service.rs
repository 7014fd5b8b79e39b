//! Virtual services.

use serde::{Deserialize, Serialize};

use crate::dest::Dest;
use crate::sched::Scheduler;
use crate::types::{DestKey, PersistMask, ServiceKey};

/// What `-A`/`-E` say about a service. `-E` replaces every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub key: ServiceKey,
    pub scheduler: String,
    /// `-b` bits (see [`crate::sched::sched_flags`]).
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
