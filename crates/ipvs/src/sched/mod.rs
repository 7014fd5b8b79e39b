//! Schedulers: one module per scheduler, as the kernel keeps one
//! `ip_vs_<name>.c` each. Adding one means a module and a line in
//! [`SCHEDULERS`], the one list of them.
//!
//! A scheduler instance belongs to one replica of a service (see
//! [`crate::Director`]): its cursors are private to the worker that owns the
//! replica, while the connection counters it reads are shared by all.

use std::net::IpAddr;

use crate::dest::Dest;
use crate::error::IpvsError;
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

/// Scheduler flags (`-b`), as the kernel's IP_VS_SVC_F_SCHED{1,2,3} bits.
pub mod sched_flags {
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
    pub const ALL: u32 = SCHED1 | SCHED2 | SCHED3;
}

/// A scheduler rvs knows: its name (`-s`), how to make an instance for a
/// service's `-b` flags, and the limit it puts on the number of dests.
#[derive(Clone, Copy)]
pub struct Entry {
    pub name: &'static str,
    make: fn(u32) -> Box<dyn Scheduler>,
    /// Whether a service may have this many dests (mh: its table size).
    dests_allowed: fn(usize) -> Result<(), IpvsError>,
}

fn any_number(_dests: usize) -> Result<(), IpvsError> {
    Ok(())
}

/// Every scheduler rvs knows, in ipvsadm's documentation order.
pub const SCHEDULERS: &[Entry] = &[
    Entry {
        name: "rr",
        make: |_| Box::new(rr::RoundRobin::default()),
        dests_allowed: any_number,
    },
    Entry {
        name: "wrr",
        make: |_| Box::new(wrr::WeightedRoundRobin::default()),
        dests_allowed: any_number,
    },
    Entry {
        name: "lc",
        make: |_| Box::new(lc::LeastConnection),
        dests_allowed: any_number,
    },
    Entry {
        name: "wlc",
        make: |_| Box::new(wlc::WeightedLeastConnection),
        dests_allowed: any_number,
    },
    Entry {
        name: "lblc",
        make: lblc::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "lblcr",
        make: lblcr::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "dh",
        make: dh::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "sh",
        make: sh::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "sed",
        make: sed::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "nq",
        make: nq::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "fo",
        make: fo::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "ovf",
        make: ovf::new,
        dests_allowed: any_number,
    },
    Entry {
        name: "mh",
        make: mh::new,
        dests_allowed: mh::check_dest_count,
    },
    Entry {
        name: "twos",
        make: twos::new,
        dests_allowed: any_number,
    },
];

/// The names of [`SCHEDULERS`], in their order (for help texts and
/// argument parsers).
pub const NAMES: &[&str] = &names::<{ SCHEDULERS.len() }>();

const fn names<const N: usize>() -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = SCHEDULERS[i].name;
        i += 1;
    }
    out
}

/// The scheduler ipvsadm uses when `-s` is not given.
pub const DEFAULT: &str = "wlc";

fn entry(name: &str) -> Option<&'static Entry> {
    SCHEDULERS.iter().find(|e| e.name == name)
}

pub fn exists(name: &str) -> bool {
    entry(name).is_some()
}

/// A fresh scheduler instance, or None for an unknown name. `flags` are the
/// service's `-b` bits (see [`sched_flags`]).
pub fn by_name(name: &str, flags: u32) -> Option<Box<dyn Scheduler>> {
    entry(name).map(|e| (e.make)(flags))
}

/// Limits a scheduler puts on the number of dests (mh: its table size).
pub fn check_add(name: &str, dests_after: usize) -> Result<(), IpvsError> {
    match entry(name) {
        Some(e) => (e.dests_allowed)(dests_after),
        None => Ok(()),
    }
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

    /// Each entry makes the scheduler it is named for, once: the names
    /// are what `-s` takes and what listings print back.
    #[test]
    fn each_entry_makes_the_scheduler_of_its_name() {
        assert_eq!(NAMES.len(), SCHEDULERS.len());
        for (e, name) in SCHEDULERS.iter().zip(NAMES) {
            assert_eq!(e.name, *name);
            assert_eq!(by_name(name, 0).unwrap().name(), *name);
            assert_eq!(NAMES.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
        assert!(by_name("nope", 0).is_none());
        assert!(exists(DEFAULT));
    }

    #[test]
    fn only_mh_limits_the_number_of_dests() {
        for name in NAMES {
            let many = check_add(name, 1_000_000);
            assert_eq!(many.is_err(), *name == "mh", "{name}");
            assert!(check_add(name, 1).is_ok(), "{name}");
        }
    }

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
                for flags in [0, crate::sched::sched_flags::SCHED1] {
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
