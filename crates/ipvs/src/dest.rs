//! Real servers ("dests").

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::stats::DestStats;
use crate::types::{DestKey, FwdMethod};

/// What `-a`/`-e` say about a real server. `-e` replaces every field, as the
/// kernel's edit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestSpec {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: FwdMethod,
    pub weight: u32,
    /// `-x`: 0 means no upper connection threshold.
    pub u_threshold: u32,
    /// `-y`: 0 means no lower threshold.
    pub l_threshold: u32,
}

impl DestSpec {
    pub fn key(&self) -> DestKey {
        DestKey {
            addr: self.addr,
            port: self.port,
        }
    }
}

/// The part of a dest that every replica and every connection share: the
/// connection counters the schedulers read, the overload flag, the
/// thresholds that drive it, and the traffic counters. A connection keeps
/// its dest's `Arc` for its whole life, so counters stay right after the
/// dest is edited or deleted.
#[derive(Debug)]
pub struct DestShared {
    pub activeconns: AtomicU32,
    pub inactconns: AtomicU32,
    pub persistconns: AtomicU32,
    /// Connections ever scheduled to this dest.
    pub conns: AtomicU64,
    overloaded: AtomicBool,
    /// Deleted from its service (`-d`); templates pointing at it are void.
    removed: AtomicBool,
    u_threshold: AtomicU32,
    l_threshold: AtomicU32,
    /// Traffic counters, one cache line per worker (see [`crate::stats`]).
    pub stats: DestStats,
}

impl DestShared {
    /// A dest with traffic counters for one worker.
    pub fn new(spec: &DestSpec) -> Arc<DestShared> {
        Self::with_lanes(spec, 1)
    }

    /// A dest with traffic counters for `lanes` workers.
    pub fn with_lanes(spec: &DestSpec, lanes: usize) -> Arc<DestShared> {
        Arc::new(DestShared {
            activeconns: AtomicU32::new(0),
            inactconns: AtomicU32::new(0),
            persistconns: AtomicU32::new(0),
            conns: AtomicU64::new(0),
            overloaded: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            u_threshold: AtomicU32::new(spec.u_threshold),
            l_threshold: AtomicU32::new(spec.l_threshold),
            stats: DestStats::new(lanes),
        })
    }

    pub fn active(&self) -> u32 {
        self.activeconns.load(Relaxed)
    }

    pub fn inactive(&self) -> u32 {
        self.inactconns.load(Relaxed)
    }

    /// The kernel's `ip_vs_dest_conn_overhead`: active * 256 + inactive.
    pub fn overhead(&self) -> u64 {
        ((self.active() as u64) << 8) + self.inactive() as u64
    }

    pub fn is_overloaded(&self) -> bool {
        self.overloaded.load(Relaxed)
    }

    /// Back in a service (taken from the trash by `-a`): its templates count
    /// again, as the kernel's become valid once the dest is available.
    pub fn mark_restored(&self) {
        self.removed.store(false, Relaxed);
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Relaxed);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Relaxed)
    }

    pub fn thresholds(&self) -> (u32, u32) {
        (
            self.u_threshold.load(Relaxed),
            self.l_threshold.load(Relaxed),
        )
    }

    fn total(&self) -> u32 {
        self.active() + self.inactive()
    }

    /// A new connection binds (counted inactive until its first state
    /// change says otherwise).
    pub fn bind_conn(&self) {
        self.inactconns.fetch_add(1, Relaxed);
        self.conns.fetch_add(1, Relaxed);
        self.update_overload();
    }

    /// A connection goes away; `active` says which counter it was in.
    pub fn unbind_conn(&self, active: bool) {
        if active {
            self.activeconns.fetch_sub(1, Relaxed);
        } else {
            self.inactconns.fetch_sub(1, Relaxed);
        }
        if self.is_overloaded() {
            self.update_overload();
        }
    }

    /// The kernel's `ip_vs_dest_update_overload`: overloaded once the
    /// connections reach the upper threshold, until they drop below the
    /// lower one (by default `u - u/4`, three quarters rounded up); no
    /// upper threshold, never overloaded.
    fn update_overload(&self) {
        let (u, l) = self.thresholds();
        if u == 0 {
            self.overloaded.store(false, Relaxed);
            return;
        }
        let conns = self.total() as u64;
        if conns >= u as u64 {
            self.overloaded.store(true, Relaxed);
            return;
        }
        let l = if l != 0 { l } else { u - (u >> 2) };
        if conns < l as u64 {
            self.overloaded.store(false, Relaxed);
        }
    }

    /// A connection moves between the active and inactive counters.
    pub fn set_conn_active(&self, active: bool) {
        if active {
            self.inactconns.fetch_sub(1, Relaxed);
            self.activeconns.fetch_add(1, Relaxed);
        } else {
            self.activeconns.fetch_sub(1, Relaxed);
            self.inactconns.fetch_add(1, Relaxed);
        }
    }

    /// `-e` set the thresholds: when they changed, the overload flag is
    /// worked out again from the connections the dest has now (kernel
    /// `__ip_vs_update_dest`, as of the 2026 fix that Debian's 6.1 carries).
    pub fn set_thresholds(&self, u: u32, l: u32) {
        if self.thresholds() != (u, l) {
            self.u_threshold.store(u, Relaxed);
            self.l_threshold.store(l, Relaxed);
            self.update_overload();
        }
    }
}

/// A real server as one replica of the model sees it.
#[derive(Debug, Clone)]
pub struct Dest {
    pub spec: DestSpec,
    /// The latest non-zero weight (used by mh).
    pub last_weight: u32,
    pub shared: Arc<DestShared>,
}

impl Dest {
    pub fn key(&self) -> DestKey {
        self.spec.key()
    }

    #[inline]
    pub fn weight(&self) -> u32 {
        self.spec.weight
    }

    /// Eligible for new connections: weight > 0 and not overloaded.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.spec.weight > 0 && !self.shared.is_overloaded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(u: u32, l: u32) -> DestSpec {
        DestSpec {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: u,
            l_threshold: l,
        }
    }

    #[test]
    fn upper_threshold_sets_and_three_quarters_clears() {
        let d = DestShared::new(&spec(4, 0));
        for _ in 0..3 {
            d.bind_conn();
        }
        assert!(!d.is_overloaded());
        d.bind_conn();
        assert!(d.is_overloaded(), "total 4 >= u_threshold 4");
        d.unbind_conn(false); // total 3: 3*4 = 12 < 12? no
        assert!(d.is_overloaded());
        d.unbind_conn(false); // total 2: 8 < 12
        assert!(!d.is_overloaded());
    }

    #[test]
    fn lower_threshold_clears_below_it() {
        let d = DestShared::new(&spec(4, 2));
        for _ in 0..4 {
            d.bind_conn();
        }
        assert!(d.is_overloaded());
        d.unbind_conn(false);
        d.unbind_conn(false); // total 2, not < 2
        assert!(d.is_overloaded());
        d.unbind_conn(false);
        assert!(!d.is_overloaded());
    }

    #[test]
    fn raising_upper_threshold_clears() {
        let d = DestShared::new(&spec(1, 0));
        d.bind_conn();
        assert!(d.is_overloaded());
        d.set_thresholds(1, 0);
        assert!(d.is_overloaded(), "same threshold keeps the flag");
        d.set_thresholds(5, 0);
        assert!(!d.is_overloaded());
    }
}
