//! The control plane.
//!
//! rvsd listens on a Unix socket ([`server`]); `rvsadm` connects, sends one
//! [`proto::Request`] as a JSON line and reads one [`proto::Response`]
//! ([`client`]). The server validates configuration commands against its own
//! replica of the service table, then hands the validated change to every
//! worker and waits until each has applied it, so a command that returned
//! is in force on the fast path. [`format`] prints listings exactly as
//! ipvsadm does.

#![forbid(unsafe_code)]

pub mod client;
pub mod format;
pub mod proto;
pub mod server;

/// Where rvsd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";
