//! Configuration commands (what `rvsadm` asks for) and their errors.

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

/// Why a command was refused. The messages are ipvsadm's, word for word,
/// because scripts match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum IpvsError {
    #[error("Service already exists")]
    ServiceExists,
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// -E, -D, -Z and listing a missing service.
    #[error("No such service")]
    NoSuchService,
    /// -a, -e, -d on a missing service.
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestExists,
    #[error("No such destination")]
    NoSuchDest,
    /// ERANGE: lower threshold above the upper one, or weight out of range.
    #[error("Numerical result out of range")]
    OutOfRange,
    /// EINVAL, as the kernel returns for inconsistent requests.
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    Invalid,
    /// A feature this version of rvs does not implement yet.
    #[error("Operation not supported: {0}")]
    Unsupported(String),
}
