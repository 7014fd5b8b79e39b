//! The IPVS model, free of DPDK so it can be tested on plain values.
//!
//! - [`Director`]: the virtual services and their real servers ("dests"), in
//!   the kernel's list order, with one scheduler instance per service. The
//!   control thread and every worker each hold a replica; commands are
//!   validated once ([`Director::apply`]) and replayed on the replicas
//!   ([`Director::replay`]), so all replicas stay identical while each
//!   worker's scheduler state stays its own.
//! - [`sched`]: the schedulers, one module each, behind [`sched::Scheduler`].
//! - [`conn`]: the connection table a worker keeps, and [`tcp_state`]: the
//!   kernel's TCP state tables.
//! - [`defense`]: the kernel's SYN-flood defences (`amemthresh`,
//!   `drop_entry`, `drop_packet`, `secure_tcp`) on the table's free slots.
//! - [`stats`]: traffic counters (per dest, one cache line per worker) and
//!   the kernel's rate estimator.

#![forbid(unsafe_code)]

pub mod clock;
pub mod command;
pub mod conn;
pub mod conn_row;
pub mod defense;
pub mod dest;
pub mod director;
pub mod error;
pub mod persist;
pub mod sched;
pub mod service;
pub mod stats;
pub mod tcp_state;
pub mod types;

pub use command::{Change, Command};
pub use conn_row::ConnRow;
pub use dest::{Dest, DestShared, DestSpec};
pub use director::Director;
pub use error::{IpvsError, Unsupported};
pub use service::{Service, ServiceSpec};
pub use types::{DestKey, FwdMethod, PersistMask, Protocol, ServiceKey, TunCsum, TunKind, TunSpec};
