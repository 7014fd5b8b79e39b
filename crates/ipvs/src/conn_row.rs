//! One connection as `ipvsadm -Lc` shows it: what a worker reports about its
//! table and the persistence templates, for listings.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::types::Protocol;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnRow {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// The state's name: a TCP state, `UDP`, or `NONE` for templates (a
    /// static name when a worker makes the row: no allocation per row).
    pub state: Cow<'static, str>,
    /// Seconds until it expires.
    pub expires_s: u64,
}
