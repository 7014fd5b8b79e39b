//! Schedulers: one module per scheduler, as the kernel keeps one
//! `ip_vs_<name>.c` each. Adding one means a module and a line in [`by_name`].
//!
//! A scheduler instance belongs to one replica of a service (see
//! [`crate::Director`]): its cursors are private to the worker that owns the
//! replica, while the connection counters it reads are shared by all.

use std::net::IpAddr;

use crate::command::IpvsError;
use crate::dest::Dest;
use crate::types::DestKey;

pub mod hash;

mod dh;
mod fo;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod rr;
mod sed;
mod sh;
mod twos;
mod wlc;
mod wrr;

#[cfg(test)]
mod across_directors;

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy)]
pub struct SchedInput {
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// The dataplane clock in milliseconds (lblc/lblcr age their caches).
    pub now_ms: u64,
}

/// How the dest list just changed; schedulers with cursors or tables react.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestChange {
    /// A new scheduler over an existing list.
    Reset,
    /// A dest was inserted at this index (always 0: the list head).
    Added(usize),
    /// The dest at this index was edited.
    Edited(usize),
    /// The dest that was at `index` was removed.
    Removed { index: usize, key: DestKey },
}

/// The kernel's `ip_vs_scheduler` ops, for one service.
pub trait Scheduler: Send {
    fn name(&self) -> &'static str;

    /// Called after every change of the service's dest list.
    fn update(&mut self, dests: &[Dest], change: DestChange);

    /// Picks a dest for a new connection: an index into `dests`, or None
    /// when no dest is available.
    fn schedule(&mut self, dests: &[Dest], input: &SchedInput) -> Option<usize>;
}

/// Every scheduler name rvs knows, in ipvsadm's documentation order.
pub const NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// The scheduler ipvsadm uses when `-s` is not given.
pub const DEFAULT: &str = "wlc";

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// A fresh scheduler instance, or None for an unknown name. `flags` are the
/// service's `-b` bits (see [`crate::service::sched_flags`]).
pub fn by_name(name: &str, flags: u32) -> Option<Box<dyn Scheduler>> {
    Some(match name {
        "rr" => Box::new(rr::RoundRobin::default()),
        "wrr" => Box::new(wrr::WeightedRoundRobin::default()),
        "lc" => Box::new(lc::LeastConnection),
        "wlc" => Box::new(wlc::WeightedLeastConnection),
        "lblc" => lblc::new(flags),
        "lblcr" => lblcr::new(flags),
        "dh" => dh::new(flags),
        "sh" => sh::new(flags),
        "sed" => sed::new(flags),
        "nq" => nq::new(flags),
        "fo" => fo::new(flags),
        "ovf" => ovf::new(flags),
        "mh" => mh::new(flags),
        "twos" => twos::new(flags),
        _ => return None,
    })
}

/// Limits a scheduler puts on the number of dests (mh: its table size).
pub fn check_add(name: &str, dests_after: usize) -> Result<(), IpvsError> {
    if name == "mh" {
        return mh::check_dest_count(dests_after);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod testutil {
    use std::net::IpAddr;

    use crate::dest::{Dest, DestShared, DestSpec};
    use crate::types::FwdMethod;

    use super::{DestChange, SchedInput, Scheduler};

    /// Builds a dest list the way the kernel does: each new dest goes to the
    /// head. `adds` is in the order of the `ipvsadm -a` commands.
    pub fn list(adds: &[(&str, u32)]) -> Vec<Dest> {
        let mut v = Vec::new();
        for (a, w) in adds {
            let spec = DestSpec {
                addr: a.parse().unwrap(),
                port: 80,
                fwd: FwdMethod::Route,
                weight: *w,
                u_threshold: 0,
                l_threshold: 0,
            };
            v.insert(
                0,
                Dest {
                    spec,
                    last_weight: *w,
                    shared: DestShared::new(&spec),
                },
            );
        }
        v
    }

    pub fn input() -> SchedInput {
        SchedInput {
            saddr: "192.168.1.50".parse::<IpAddr>().unwrap(),
            sport: 40000,
            daddr: "192.168.1.10".parse::<IpAddr>().unwrap(),
            dport: 80,
            now_ms: 0,
        }
    }

    /// Adds dests one by one through the scheduler's hooks, as a replica does.
    pub fn build(s: &mut dyn Scheduler, adds: &[(&str, u32)]) -> Vec<Dest> {
        let all = list(adds);
        let mut v: Vec<Dest> = Vec::new();
        for d in all.into_iter().rev() {
            v.insert(0, d);
            s.update(&v, DestChange::Added(0));
        }
        v
    }

    pub fn picks(s: &mut dyn Scheduler, dests: &[Dest], n: usize) -> Vec<String> {
        (0..n)
            .map(|_| match s.schedule(dests, &input()) {
                Some(i) => dests[i].spec.addr.to_string(),
                None => "-".into(),
            })
            .collect()
    }

    pub fn set_conns(d: &Dest, active: u32, inactive: u32) {
        use std::sync::atomic::Ordering::Relaxed;
        d.shared.activeconns.store(active, Relaxed);
        d.shared.inactconns.store(inactive, Relaxed);
    }
}

#[cfg(test)]
mod registry_tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::atomic::Ordering::Relaxed;

    use proptest::prelude::*;

    use super::testutil::list;
    use super::*;
    use crate::dest::DestSpec;

    proptest! {
        /// Every scheduler rvs registers, on a random list with some dests
        /// quiesced and some overloaded, only ever picks an available dest.
        /// (Each pick is for a new destination address, so lblc/lblcr decide
        /// afresh instead of returning a cached dest, which the kernel
        /// returns even when its threshold flag is set.)
        #[test]
        fn no_scheduler_picks_a_quiesced_or_overloaded_dest(
            dests in proptest::collection::vec((0u32..4, any::<bool>()), 1..8),
            sources in proptest::collection::vec(any::<u32>(), 1..20),
        ) {
            for name in NAMES {
                for flags in [0, crate::service::sched_flags::SCHED1] {
                    let adds: Vec<(String, u32)> = dests
                        .iter()
                        .enumerate()
                        .map(|(i, (w, _))| (format!("10.0.0.{}", i + 1), *w))
                        .collect();
                    let refs: Vec<(&str, u32)> = adds.iter().map(|(a, w)| (a.as_str(), *w)).collect();
                    let mut d = list(&refs);
                    for (dest, (_, over)) in d.iter_mut().zip(dests.iter().rev()) {
                        if *over {
                            dest.spec = DestSpec { u_threshold: 1, ..dest.spec };
                            dest.shared = crate::dest::DestShared::new(&dest.spec);
                            dest.shared.bind_conn();
                            dest.shared.inactconns.store(0, Relaxed);
                        }
                    }
                    let mut s = by_name(name, flags).unwrap();
                    s.update(&d, DestChange::Reset);
                    for (k, src) in sources.iter().enumerate() {
                        let input = SchedInput {
                            saddr: IpAddr::V4(Ipv4Addr::from(*src)),
                            sport: (*src >> 16) as u16,
                            daddr: IpAddr::V4(Ipv4Addr::new(10, 9, (k >> 8) as u8, k as u8)),
                            dport: 80,
                            now_ms: k as u64,
                        };
                        if let Some(i) = s.schedule(&d, &input) {
                            prop_assert!(d[i].is_available(), "{name} (flags {flags}) picked {:?}", d[i].spec);
                        }
                    }
                }
            }
        }
    }
}
