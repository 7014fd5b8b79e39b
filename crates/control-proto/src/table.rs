//! A part of rvsd's service table as plain data, and the commands that turn
//! one such table into another ([`diff`]).
//!
//! Two clients keep a part of the table this way. rvs-keepalived's health
//! state edits a desired [`Table`] the way keepalived issues IPVS commands;
//! its daemon keeps the table it last applied and sends rvsd the
//! difference (a failed command, or rvsd restarting, only means the next
//! sync sends it again). rvsd's reload reads its rules file into a
//! [`Table`] and applies the difference to the running one, so that real
//! servers that did not change are not touched.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::proto::Listing;
use rvs_ipvs::{Command, DestKey, DestSpec, ServiceKey, ServiceSpec};

/// A dest and when it was (re)added: rvsd, like the kernel, lists a
/// service's dests newest first, and round robin starts at the head, so
/// adds go out in the order keepalived would have sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestEntry {
    pub spec: DestSpec,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub spec: ServiceSpec,
    pub dests: BTreeMap<DestOrd, DestEntry>,
}

/// A [`DestKey`] with an order, for the maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestOrd(pub IpAddr, pub u16);

impl From<DestKey> for DestOrd {
    fn from(k: DestKey) -> DestOrd {
        DestOrd(k.addr, k.port)
    }
}

impl DestOrd {
    pub fn key(self) -> DestKey {
        DestKey {
            addr: self.0,
            port: self.1,
        }
    }
}

/// A [`ServiceKey`] with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceOrd(pub rvs_ipvs::Protocol, pub IpAddr, pub u16);

impl From<ServiceKey> for ServiceOrd {
    fn from(k: ServiceKey) -> ServiceOrd {
        ServiceOrd(k.protocol, k.addr, k.port)
    }
}

impl ServiceOrd {
    pub fn key(self) -> ServiceKey {
        ServiceKey {
            protocol: self.0,
            addr: self.1,
            port: self.2,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub services: BTreeMap<ServiceOrd, ServiceEntry>,
    seq: u64,
}

impl Table {
    /// Adds the service, or replaces its spec (keeping its dests).
    pub fn upsert_service(&mut self, spec: ServiceSpec) {
        let k = ServiceOrd::from(spec.key);
        match self.services.get_mut(&k) {
            Some(e) => e.spec = spec,
            None => {
                self.services.insert(
                    k,
                    ServiceEntry {
                        spec,
                        dests: BTreeMap::new(),
                    },
                );
            }
        }
    }

    pub fn remove_service(&mut self, key: ServiceKey) {
        self.services.remove(&key.into());
    }

    /// Adds a dest (a new one goes to the head of the list) or changes an
    /// existing one in place. Returns false when the service is missing.
    pub fn set_dest(&mut self, service: ServiceKey, spec: DestSpec) -> bool {
        let Some(s) = self.services.get_mut(&service.into()) else {
            return false;
        };
        let k = DestOrd::from(spec.key());
        match s.dests.get_mut(&k) {
            Some(d) => d.spec = spec,
            None => {
                self.seq += 1;
                s.dests.insert(
                    k,
                    DestEntry {
                        spec,
                        seq: self.seq,
                    },
                );
            }
        }
        true
    }

    pub fn remove_dest(&mut self, service: ServiceKey, dest: DestKey) {
        if let Some(s) = self.services.get_mut(&service.into()) {
            s.dests.remove(&dest.into());
        }
    }

    pub fn dest(&self, service: ServiceKey, dest: DestKey) -> Option<&DestSpec> {
        self.services
            .get(&service.into())?
            .dests
            .get(&dest.into())
            .map(|d| &d.spec)
    }

    /// Applies a command that rvsd accepted, so that this table keeps
    /// matching rvsd's.
    pub fn apply(&mut self, cmd: &Command) {
        match cmd {
            Command::AddService(s) | Command::EditService(s) => self.upsert_service(s.clone()),
            Command::DelService(k) => self.remove_service(*k),
            Command::Clear => self.services.clear(),
            Command::AddDest(k, d) | Command::EditDest(k, d) => {
                self.set_dest(*k, *d);
            }
            Command::DelDest(k, d) => self.remove_dest(*k, *d),
        }
    }

    /// The managed part of what rvsd lists: the services in `services`, and
    /// in them the dests in `dests` (the others are left alone).
    pub fn from_listing(
        listing: &Listing,
        services: &dyn Fn(ServiceKey) -> bool,
        dests: &dyn Fn(ServiceKey, DestKey) -> bool,
    ) -> Table {
        let mut t = Table::default();
        for s in &listing.services {
            if !services(s.spec.key) {
                continue;
            }
            t.upsert_service(s.spec.clone());
            // rvsd lists newest first; record them oldest first.
            for d in s.dests.iter().rev() {
                if dests(s.spec.key, d.spec.key()) {
                    t.set_dest(s.spec.key, d.spec);
                }
            }
        }
        t
    }
}

/// The commands that turn `from` into `to`, for the services either holds.
/// Dests only `from` knows about in a service `to` keeps are removed.
pub fn diff(from: &Table, to: &Table) -> Vec<Command> {
    let mut cmds = Vec::new();
    for (k, want) in &to.services {
        let key = k.key();
        match from.services.get(k) {
            None => cmds.push(Command::AddService(want.spec.clone())),
            Some(have) if have.spec != want.spec => {
                cmds.push(Command::EditService(want.spec.clone()))
            }
            Some(_) => {}
        }
        let have = from.services.get(k);
        if let Some(have) = have {
            for (dk, _) in have.dests.iter() {
                if !want.dests.contains_key(dk) {
                    cmds.push(Command::DelDest(key, dk.key()));
                }
            }
        }
        let mut adds: Vec<&DestEntry> = Vec::new();
        for (dk, d) in &want.dests {
            match have.and_then(|h| h.dests.get(dk)) {
                Some(old) if old.spec == d.spec => {}
                Some(_) => cmds.push(Command::EditDest(key, d.spec)),
                None => adds.push(d),
            }
        }
        adds.sort_by_key(|d| d.seq);
        cmds.extend(adds.into_iter().map(|d| Command::AddDest(key, d.spec)));
    }
    for k in from.services.keys() {
        if !to.services.contains_key(k) {
            cmds.push(Command::DelService(k.key()));
        }
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ipvs::{FwdMethod, Protocol};

    fn svc(port: u16) -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                protocol: Protocol::Tcp,
                addr: "10.0.0.1".parse().unwrap(),
                port,
            },
            scheduler: "rr".into(),
            sched_flags: 0,
            persistent: None,
            netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            one_packet: false,
        }
    }

    fn dest(a: &str, w: u32) -> DestSpec {
        DestSpec {
            addr: a.parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: w,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    #[test]
    fn diff_adds_in_order_edits_and_removes() {
        let s = svc(80);
        let mut want = Table::default();
        want.upsert_service(s.clone());
        want.set_dest(s.key, dest("10.0.0.3", 1));
        want.set_dest(s.key, dest("10.0.0.2", 1));
        let cmds = diff(&Table::default(), &want);
        assert_eq!(
            cmds,
            [
                Command::AddService(s.clone()),
                Command::AddDest(s.key, dest("10.0.0.3", 1)),
                Command::AddDest(s.key, dest("10.0.0.2", 1)),
            ]
        );
        let mut have = Table::default();
        for c in &cmds {
            have.apply(c);
        }
        assert!(diff(&have, &want).is_empty());

        want.set_dest(s.key, dest("10.0.0.2", 0));
        want.remove_dest(s.key, dest("10.0.0.3", 1).key());
        let mut s2 = s.clone();
        s2.scheduler = "wrr".into();
        want.upsert_service(s2.clone());
        assert_eq!(
            diff(&have, &want),
            [
                Command::EditService(s2),
                Command::DelDest(s.key, dest("10.0.0.3", 1).key()),
                Command::EditDest(s.key, dest("10.0.0.2", 0)),
            ]
        );
        assert_eq!(diff(&have, &Table::default()), [Command::DelService(s.key)]);
    }
}
