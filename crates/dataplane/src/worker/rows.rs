//! `-Lc` rows: a connection as ipvsadm lists it, from the table's view.

use rvs_ipvs::conn::Conn;
use rvs_ipvs::{ConnRow, Protocol};

/// A connection as `-Lc` shows it.
pub(super) fn conn_row(c: &Conn<'_>, now_ms: u64) -> ConnRow {
    ConnRow {
        protocol: c.key.protocol,
        caddr: c.key.caddr,
        cport: c.key.cport,
        vaddr: c.key.vaddr,
        vport: c.key.vport,
        daddr: c.daddr,
        dport: c.dport,
        state: match c.key.protocol {
            Protocol::Udp => "UDP".into(),
            _ => c.state.name().into(),
        },
        expires_s: c.expires_ms.saturating_sub(now_ms) / 1000,
    }
}
