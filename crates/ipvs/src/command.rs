//! Configuration commands (what `rvsadm` asks for); their errors are in
//! [`crate::error`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dest::{DestShared, DestSpec};
use crate::service::ServiceSpec;
use crate::types::{DestKey, ServiceKey};

/// A change to the service table, as ipvsadm's commands express it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DelService(ServiceKey),
    /// `-C`: remove every service.
    Clear,
    AddDest(ServiceKey, DestSpec),
    EditDest(ServiceKey, DestSpec),
    DelDest(ServiceKey, DestKey),
}

/// A validated command, ready to replay on every replica. It carries the new
/// dest's shared counters so that all replicas count into the same place.
#[derive(Debug, Clone)]
pub enum Change {
    AddService(ServiceSpec),
    EditService(ServiceSpec),
    DelService(ServiceKey),
    Clear,
    AddDest(ServiceKey, DestSpec, Arc<DestShared>),
    EditDest(ServiceKey, DestSpec),
    DelDest(ServiceKey, DestKey),
}
