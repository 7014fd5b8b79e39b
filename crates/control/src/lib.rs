//! The control plane's server side.
//!
//! rvsd listens on a Unix socket ([`server`]). The server validates
//! configuration commands against its own replica of the service table, then
//! hands the validated change to every worker and waits until each has
//! applied it, so a command that returned is in force on the fast path. The
//! protocol, the client and ipvsadm's formats are in `rvs-control-proto`, so
//! that clients build without DPDK.

#![forbid(unsafe_code)]

pub mod server;
pub mod stats;
pub mod sync;

pub use rvs_control_proto::{client, format, proto, DEFAULT_SOCKET};
