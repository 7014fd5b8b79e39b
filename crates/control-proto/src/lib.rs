//! What rvsd and its clients (rvsadm, rvs-keepalived) share, without DPDK.
//!
//! A client connects to rvsd's Unix socket, sends one [`proto::Request`] as a
//! JSON line and reads one [`proto::Response`] ([`client`]). [`format`]
//! prints listings exactly as ipvsadm does. The server side lives in
//! `rvs-control`, next to the dataplane it drives. [`health`] is
//! rvs-keepalived's status file, which rvsadm and exporters read. [`table`]
//! turns one service table into another with the fewest commands (used by
//! rvs-keepalived and by rvsd's reload, whose outcome is a [`reload`]
//! report). [`sync`] is the connection sync daemon's settings.

#![forbid(unsafe_code)]

pub mod announce;
pub mod client;
pub mod format;
pub mod health;
pub mod proto;
pub mod reload;
pub mod sync;
pub mod table;

/// Where rvsd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";
