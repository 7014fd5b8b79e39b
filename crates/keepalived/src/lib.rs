//! rvs-keepalived: keepalived's health checkers for rvs.
//!
//! It reads the LVS part of a keepalived.conf ([`config`]), maps it onto
//! rvs services ([`mapping`]), runs the checkers ([`check`]) and keeps each
//! real server's state the way keepalived does ([`state`]), and drives rvsd
//! over its control socket ([`daemon`]), as keepalived drives kernel IPVS.

#![forbid(unsafe_code)]

pub mod check;
pub mod config;
pub mod daemon;
pub mod mapping;
pub mod scripts;
pub mod state;
/// The table of services it manages and the diff it sends: shared with
/// rvsd's reload, so it lives in `rvs-control-proto`.
pub use rvs_control_proto::table;
