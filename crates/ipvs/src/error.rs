//! Why a command was refused: ipvsadm's messages, and what rvs refuses
//! that the kernel would take.

use serde::{Deserialize, Serialize};

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
    /// Something the kernel takes but rvs's dataplane cannot forward:
    /// refused rather than accepted and then dropped packet by packet.
    #[error("{0}")]
    Unsupported(Unsupported),
}

/// What rvs refuses that the kernel would take. Each message starts as
/// ipvsadm would print the kernel's errno (EPROTONOSUPPORT, EAFNOSUPPORT,
/// EOPNOTSUPP), then says what rvs does instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Unsupported {
    #[error("Protocol not supported: rvs forwards TCP and UDP services only, not SCTP")]
    Sctp,
    #[error(
        "Operation not supported with specified address family: \
rvs tunnels only to real servers of the service's own address family"
    )]
    TunnelFamily,
    /// GUE or GRE (named) to an IPv6 real server.
    #[error(
        "Operation not supported with IPv6: rvs tunnels to IPv6 real servers \
with ipip (IPv6-in-IPv6) only, not {0}"
    )]
    TunnelOverIpv6(String),
}
