//! The service table: one replica per worker and one for the control thread.
//!
//! Why this file is long (about 720 lines): the validation of every command
//! in one place, as the kernel's `ip_vs_ctl.c` has it (about 440 lines), and
//! its tests (about 280).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::command::{Change, Command};
use crate::dest::{Dest, DestShared, DestSpec};
use crate::error::{IpvsError, Unsupported};
use crate::sched::{self, sched_flags, DestChange};
use crate::service::{Service, ServiceSpec};
use crate::types::{FwdMethod, PersistMask, Protocol, ServiceKey, TunKind};

/// Highest weight IPVS accepts (ipvsadm and the kernel take an int).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;

/// How long a deleted real server nobody uses any more stays in the trash
/// (the kernel's IP_VS_DEST_TRASH_PERIOD).
pub const TRASH_PERIOD_MS: u64 = 120_000;

/// All virtual services of one replica.
#[derive(Debug, Default)]
pub struct Director {
    services: BTreeMap<(Protocol, IpAddr, u16), Service>,
    /// How many services each virtual address has: `is_vip` is asked for
    /// every packet.
    vips: rustc_hash::FxHashMap<IpAddr, usize>,
    /// Workers that count traffic into each new dest (one lane each); 0
    /// counts as 1.
    stats_lanes: usize,
    /// Deleted real servers, kept as the kernel keeps them (its dest trash):
    /// `-a` of the same server to the same service address brings one back
    /// with the connections that still point at it. Only the replica that
    /// validates (`apply`) keeps it.
    trash: Vec<Trashed>,
    /// The broadcast addresses of the director's own networks, which cannot
    /// be real servers (the kernel's `inet_addr_type` says RTN_BROADCAST).
    broadcasts: Vec<std::net::Ipv4Addr>,
}

#[derive(Debug)]
struct Trashed {
    service: ServiceKey,
    dest: crate::types::DestKey,
    shared: std::sync::Arc<DestShared>,
    /// When nothing but the trash held it any more (0: still in use).
    idle_since_ms: u64,
}

fn idx(k: &ServiceKey) -> (Protocol, IpAddr, u16) {
    (k.protocol, k.addr, k.port)
}

impl Director {
    pub fn new() -> Director {
        Director::default()
    }

    /// A replica whose new dests get traffic counters for `workers` workers
    /// (the control thread's: it validates the commands, so it makes the
    /// dests every replica then shares).
    pub fn with_stats_lanes(workers: usize) -> Director {
        Director {
            stats_lanes: workers,
            ..Director::default()
        }
    }

    /// Validates `cmd` against this replica and, if it is allowed, applies it
    /// and returns the [`Change`] to replay on the other replicas.
    pub fn apply(&mut self, cmd: &Command) -> Result<Change, IpvsError> {
        self.apply_at(cmd, crate::clock::now_ms())
    }

    /// Tells the validating replica the director's own IPv4 networks
    /// (address, prefix length): their broadcast addresses are refused as
    /// real servers, as the kernel refuses them.
    pub fn set_local_networks(&mut self, nets: &[(std::net::Ipv4Addr, u8)]) {
        self.broadcasts = nets
            .iter()
            .filter(|(_, len)| *len < 31)
            .map(|(a, len)| (u32::from(*a) | (u32::MAX >> len)).into())
            .collect();
    }

    /// Takes `other`'s own networks ([`Director::set_local_networks`]), so
    /// that a scratch replica refuses what `other` would.
    pub fn copy_local_networks_from(&mut self, other: &Director) {
        self.broadcasts = other.broadcasts.clone();
    }

    /// [`Director::apply`] at a given time (for the trash's expiry).
    pub fn apply_at(&mut self, cmd: &Command, now_ms: u64) -> Result<Change, IpvsError> {
        self.expire_trash(now_ms);
        let mut change = self.validate(cmd)?;
        if let Change::AddDest(key, spec, shared) = &mut change {
            if let Some(i) = self
                .trash
                .iter()
                .position(|t| t.service == *key && t.dest == spec.key())
            {
                // The same real server of the same service address: the
                // kernel's ip_vs_trash_get_dest hands the old one back.
                let t = self.trash.swap_remove(i);
                t.shared.mark_restored();
                t.shared.set_thresholds(spec.u_threshold, spec.l_threshold);
                *shared = t.shared;
            }
        }
        let removed = self.removed_by(&change);
        self.replay(&change);
        for (service, d) in removed {
            self.trash.push(Trashed {
                service,
                dest: d.spec.key(),
                shared: d.shared,
                idle_since_ms: 0,
            });
        }
        Ok(change)
    }

    /// The dests a change takes out of their services.
    fn removed_by(&self, change: &Change) -> Vec<(ServiceKey, Dest)> {
        let of = |k: &ServiceKey| -> Vec<(ServiceKey, Dest)> {
            self.service(k)
                .map(|s| s.dests.iter().map(|d| (*k, d.clone())).collect())
                .unwrap_or_default()
        };
        match change {
            Change::DelService(k) => of(k),
            Change::Clear => self
                .services
                .values()
                .flat_map(|s| of(&s.spec.key))
                .collect(),
            Change::DelDest(k, dk) => of(k).into_iter().filter(|(_, d)| d.key() == *dk).collect(),
            _ => Vec::new(),
        }
    }

    /// Drops trashed dests that nothing has used for the trash period.
    fn expire_trash(&mut self, now_ms: u64) {
        for t in &mut self.trash {
            if std::sync::Arc::strong_count(&t.shared) > 1 {
                t.idle_since_ms = 0;
            } else if t.idle_since_ms == 0 {
                t.idle_since_ms = now_ms.max(1);
            }
        }
        self.trash
            .retain(|t| t.idle_since_ms == 0 || now_ms < t.idle_since_ms + TRASH_PERIOD_MS);
    }

    fn validate(&self, cmd: &Command) -> Result<Change, IpvsError> {
        Ok(match cmd {
            Command::AddService(spec) => {
                if self.services.contains_key(&idx(&spec.key)) {
                    return Err(IpvsError::ServiceExists);
                }
                check_service_spec(spec)?;
                Change::AddService(spec.clone())
            }
            Command::EditService(spec) => {
                if !self.services.contains_key(&idx(&spec.key)) {
                    return Err(IpvsError::NoSuchService);
                }
                check_service_spec(spec)?;
                Change::EditService(spec.clone())
            }
            Command::DelService(key) => {
                if !self.services.contains_key(&idx(key)) {
                    return Err(IpvsError::NoSuchService);
                }
                Change::DelService(*key)
            }
            Command::Clear => Change::Clear,
            Command::AddDest(key, spec) => {
                let svc = self
                    .services
                    .get(&idx(key))
                    .ok_or(IpvsError::ServiceNotDefined)?;
                check_dest_spec(spec)?;
                check_forwarding(&svc.spec.key, spec)?;
                if svc.find_dest(spec.key()).is_some() {
                    return Err(IpvsError::DestExists);
                }
                if !self.unicast(spec.addr) {
                    return Err(IpvsError::Invalid);
                }
                sched::check_add(&svc.spec.scheduler, svc.dests.len() + 1)?;
                Change::AddDest(*key, *spec, DestShared::with_lanes(spec, self.stats_lanes))
            }
            Command::EditDest(key, spec) => {
                let svc = self
                    .services
                    .get(&idx(key))
                    .ok_or(IpvsError::ServiceNotDefined)?;
                check_dest_spec(spec)?;
                check_forwarding(&svc.spec.key, spec)?;
                if svc.find_dest(spec.key()).is_none() {
                    return Err(IpvsError::NoSuchDest);
                }
                Change::EditDest(*key, *spec)
            }
            Command::DelDest(key, dkey) => {
                let svc = self
                    .services
                    .get(&idx(key))
                    .ok_or(IpvsError::ServiceNotDefined)?;
                if svc.find_dest(*dkey).is_none() {
                    return Err(IpvsError::NoSuchDest);
                }
                Change::DelDest(*key, *dkey)
            }
        })
    }

    /// Applies a change that [`Director::apply`] validated on another replica.
    /// Replicas that saw the same changes in the same order are identical, so
    /// this cannot fail; a change that no longer fits is ignored.
    pub fn replay(&mut self, change: &Change) {
        match change {
            Change::AddService(spec) => {
                let Some(sched) = sched::by_name(&spec.scheduler, spec.sched_flags) else {
                    return;
                };
                *self.vips.entry(spec.key.addr).or_default() += 1;
                self.services.insert(
                    idx(&spec.key),
                    Service {
                        spec: spec.clone(),
                        dests: Vec::new(),
                        sched,
                    },
                );
            }
            Change::EditService(spec) => {
                let Some(svc) = self.services.get_mut(&idx(&spec.key)) else {
                    return;
                };
                // A new scheduler (or new flags) starts from scratch; the same
                // one keeps its state, as ip_vs_edit_service does.
                if svc.spec.scheduler != spec.scheduler || svc.spec.sched_flags != spec.sched_flags
                {
                    if let Some(mut s) = sched::by_name(&spec.scheduler, spec.sched_flags) {
                        s.update(&svc.dests, DestChange::Reset);
                        svc.sched = s;
                    }
                }
                svc.spec = spec.clone();
            }
            Change::DelService(key) => {
                if let Some(svc) = self.services.remove(&idx(key)) {
                    if let Some(n) = self.vips.get_mut(&key.addr) {
                        *n -= 1;
                        if *n == 0 {
                            self.vips.remove(&key.addr);
                        }
                    }
                    svc.dests.iter().for_each(|d| d.shared.mark_removed());
                }
            }
            Change::Clear => {
                for svc in self.services.values() {
                    svc.dests.iter().for_each(|d| d.shared.mark_removed());
                }
                self.services.clear();
                self.vips.clear();
            }
            Change::AddDest(key, spec, shared) => {
                let Some(svc) = self.services.get_mut(&idx(key)) else {
                    return;
                };
                // The kernel inserts new dests at the head of the list.
                svc.dests.insert(
                    0,
                    Dest {
                        spec: *spec,
                        last_weight: spec.weight,
                        shared: shared.clone(),
                    },
                );
                svc.sched.update(&svc.dests, DestChange::Added(0));
            }
            Change::EditDest(key, spec) => {
                let Some(svc) = self.services.get_mut(&idx(key)) else {
                    return;
                };
                let Some(i) = svc.find_dest(spec.key()) else {
                    return;
                };
                let d = &mut svc.dests[i];
                d.spec = *spec;
                if spec.weight > 0 {
                    d.last_weight = spec.weight;
                }
                d.shared.set_thresholds(spec.u_threshold, spec.l_threshold);
                svc.sched.update(&svc.dests, DestChange::Edited(i));
            }
            Change::DelDest(key, dkey) => {
                let Some(svc) = self.services.get_mut(&idx(key)) else {
                    return;
                };
                let Some(i) = svc.find_dest(*dkey) else {
                    return;
                };
                svc.dests.remove(i).shared.mark_removed();
                svc.sched.update(
                    &svc.dests,
                    DestChange::Removed {
                        index: i,
                        key: *dkey,
                    },
                );
            }
        }
    }

    /// Whether `addr` may be a real server: the kernel takes a unicast or
    /// local address only (`ip_vs_new_dest`): not 0.0.0.0, the limited
    /// broadcast, a network's broadcast, multicast (the rest of 0/8 is
    /// unicast since Linux 5.x, and the kernel VM takes 0.1.2.3); for IPv6
    /// not the unspecified, multicast or link-local addresses.
    fn unicast(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => {
                !a.is_unspecified()
                    && !a.is_broadcast()
                    && !a.is_multicast()
                    && !self.broadcasts.contains(&a)
            }
            IpAddr::V6(a) => {
                !a.is_unspecified() && !a.is_multicast() && (a.segments()[0] & 0xffc0) != 0xfe80
            }
        }
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(&idx(key))
    }

    pub fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        self.services.get_mut(&idx(key))
    }

    /// The service a packet to `addr:port` over `protocol` belongs to.
    #[inline]
    pub fn lookup(&mut self, protocol: Protocol, addr: IpAddr, port: u16) -> Option<&mut Service> {
        self.services.get_mut(&(protocol, addr, port))
    }

    /// Whether some service listens on `addr` (the director answers ARP for it).
    #[inline]
    pub fn is_vip(&self, addr: IpAddr) -> bool {
        self.vips.contains_key(&addr)
    }

    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.values()
    }

    pub fn len(&self) -> usize {
        self.services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

fn check_service_spec(spec: &ServiceSpec) -> Result<(), IpvsError> {
    if spec.key.protocol == Protocol::Sctp {
        return Err(IpvsError::Unsupported(Unsupported::Sctp));
    }
    if !sched::exists(&spec.scheduler) {
        return Err(IpvsError::SchedulerNotFound);
    }
    if spec.sched_flags & !sched_flags::ALL != 0 {
        return Err(IpvsError::Invalid);
    }
    if let Some(t) = spec.persistent {
        if !(1..=2_678_400).contains(&t) {
            return Err(IpvsError::Invalid);
        }
    }
    match (spec.netmask, spec.key.addr) {
        (PersistMask::V4(_), IpAddr::V4(_)) => {}
        (PersistMask::V6Prefix(p), IpAddr::V6(_)) if p <= 128 => {}
        _ => return Err(IpvsError::Invalid),
    }
    if spec.key.port == 0 && spec.persistent.is_none() {
        // Port-zero services only make sense with persistence.
        return Err(IpvsError::Invalid);
    }
    if spec.one_packet && spec.key.protocol != Protocol::Udp {
        return Err(IpvsError::Invalid);
    }
    Ok(())
}

/// Whether the dataplane can reach this real server of service `svc` by
/// its forwarding method. The kernel takes a server of the other address
/// family only through a tunnel (EINVAL otherwise); rvs's tunnels carry a
/// packet in an outer header of its own family, and IPv6 ones are
/// IPv6-in-IPv6 only.
fn check_forwarding(svc: &ServiceKey, spec: &DestSpec) -> Result<(), IpvsError> {
    let same_family = svc.addr.is_ipv4() == spec.addr.is_ipv4();
    match spec.fwd {
        FwdMethod::Tunnel(_) if !same_family => {
            Err(IpvsError::Unsupported(Unsupported::TunnelFamily))
        }
        _ if !same_family => Err(IpvsError::Invalid),
        FwdMethod::Tunnel(t) if spec.addr.is_ipv6() && t.kind != TunKind::Ipip => {
            let name = match t.kind {
                TunKind::Gue => "gue",
                _ => "gre",
            };
            Err(IpvsError::Unsupported(Unsupported::TunnelOverIpv6(
                name.into(),
            )))
        }
        _ => Ok(()),
    }
}

fn check_dest_spec(spec: &DestSpec) -> Result<(), IpvsError> {
    if spec.weight > MAX_WEIGHT {
        return Err(IpvsError::OutOfRange);
    }
    if spec.l_threshold > spec.u_threshold {
        return Err(IpvsError::OutOfRange);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DestKey, FwdMethod};

    fn svc(port: u16, sched: &str) -> ServiceSpec {
        ServiceSpec {
            key: ServiceKey {
                protocol: Protocol::Tcp,
                addr: "192.168.1.10".parse().unwrap(),
                port,
            },
            scheduler: sched.into(),
            sched_flags: 0,
            persistent: None,
            netmask: PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
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
    fn errors_match_ipvsadm_and_change_nothing() {
        let mut d = Director::new();
        let s = svc(80, "rr");
        d.apply(&Command::AddService(s.clone())).unwrap();
        assert_eq!(
            d.apply(&Command::AddService(s.clone()))
                .unwrap_err()
                .to_string(),
            "Service already exists"
        );
        assert_eq!(
            d.apply(&Command::AddService(svc(81, "nosuch")))
                .unwrap_err(),
            IpvsError::SchedulerNotFound
        );
        assert!(d.service(&svc(81, "rr").key).is_none());
        d.apply(&Command::AddDest(s.key, dest("10.0.0.1", 1)))
            .unwrap();
        assert_eq!(
            d.apply(&Command::AddDest(s.key, dest("10.0.0.1", 2)))
                .unwrap_err()
                .to_string(),
            "Destination already exists"
        );
        assert_eq!(d.service(&s.key).unwrap().dests[0].weight(), 1);
        let missing = svc(82, "rr").key;
        assert_eq!(
            d.apply(&Command::AddDest(missing, dest("10.0.0.1", 1)))
                .unwrap_err()
                .to_string(),
            "Service not defined"
        );
        assert_eq!(
            d.apply(&Command::DelService(missing))
                .unwrap_err()
                .to_string(),
            "No such service"
        );
        let nodest = DestKey {
            addr: "10.9.9.9".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            d.apply(&Command::DelDest(s.key, nodest))
                .unwrap_err()
                .to_string(),
            "No such destination"
        );
        let mut bad = dest("10.0.0.2", 1);
        bad.l_threshold = 5;
        assert_eq!(
            d.apply(&Command::AddDest(s.key, bad))
                .unwrap_err()
                .to_string(),
            "Numerical result out of range"
        );
        assert_eq!(d.service(&s.key).unwrap().dests.len(), 1);
    }

    /// What the dataplane cannot forward is refused, with ipvsadm's words,
    /// instead of being accepted and then dropped packet by packet.
    #[test]
    fn what_the_dataplane_cannot_forward_is_refused() {
        use crate::types::{TunCsum, TunKind, TunSpec};
        let mut d = Director::new();
        let sctp = ServiceSpec {
            key: ServiceKey {
                protocol: Protocol::Sctp,
                ..svc(80, "rr").key
            },
            ..svc(80, "rr")
        };
        let e = d.apply(&Command::AddService(sctp.clone())).unwrap_err();
        assert!(matches!(e, IpvsError::Unsupported(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "Protocol not supported: rvs forwards TCP and UDP services only, not SCTP"
        );
        assert!(d.is_empty());

        let v4 = svc(80, "rr");
        let v6 = ServiceSpec {
            key: ServiceKey {
                addr: "fd00::10".parse().unwrap(),
                ..v4.key
            },
            netmask: PersistMask::V6Prefix(128),
            ..v4.clone()
        };
        d.apply(&Command::AddService(v4.clone())).unwrap();
        d.apply(&Command::AddService(v6.clone())).unwrap();
        let tun = |kind| {
            FwdMethod::Tunnel(TunSpec {
                kind,
                port: if kind == TunKind::Gue { 6080 } else { 0 },
                csum: TunCsum::None,
            })
        };
        let with = |a: &str, fwd| DestSpec { fwd, ..dest(a, 1) };
        // A tunnel to a server of the other family.
        for (k, a) in [(v4.key, "fd00::2"), (v6.key, "10.0.0.2")] {
            let e = d
                .apply(&Command::AddDest(k, with(a, tun(TunKind::Ipip))))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "Operation not supported with specified address family: \
rvs tunnels only to real servers of the service's own address family"
            );
        }
        // Not tunnelled: the kernel's own refusal (EINVAL).
        assert_eq!(
            d.apply(&Command::AddDest(v4.key, with("fd00::2", FwdMethod::Masq)))
                .unwrap_err(),
            IpvsError::Invalid
        );
        // GUE and GRE to IPv6 servers; IPv6-in-IPv6 is fine.
        for kind in [TunKind::Gue, TunKind::Gre] {
            let e = d
                .apply(&Command::AddDest(v6.key, with("fd00::2", tun(kind))))
                .unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("Operation not supported with IPv6: "),
                "{e}"
            );
        }
        d.apply(&Command::AddDest(
            v6.key,
            with("fd00::2", tun(TunKind::Ipip)),
        ))
        .unwrap();
        // Nor may -e turn a server into one.
        let e = d
            .apply(&Command::EditDest(
                v6.key,
                with("fd00::2", tun(TunKind::Gre)),
            ))
            .unwrap_err();
        assert!(matches!(e, IpvsError::Unsupported(_)), "{e:?}");
        assert_eq!(
            d.service(&v6.key).unwrap().dests[0].spec.fwd,
            tun(TunKind::Ipip)
        );
        // Nor -E a service into SCTP (the key cannot change, so -E of an
        // SCTP service finds none).
        assert_eq!(
            d.apply(&Command::EditService(sctp)).unwrap_err(),
            IpvsError::NoSuchService
        );
    }

    #[test]
    fn a_deleted_dest_comes_back_from_the_trash_with_its_counters() {
        let mut d = Director::new();
        let s = svc(80, "rr");
        d.apply_at(&Command::AddService(s.clone()), 0).unwrap();
        d.apply_at(&Command::AddDest(s.key, dest("10.0.0.1", 1)), 0)
            .unwrap();
        let first = d.service(&s.key).unwrap().dests[0].shared.clone();
        first.bind_conn();
        // The service goes, comes back, and so does the server: the same
        // counters, as in the kernel (oracle: sched/persistence).
        d.apply_at(&Command::DelService(s.key), 1).unwrap();
        assert!(first.is_removed());
        d.apply_at(&Command::AddService(s.clone()), 2).unwrap();
        d.apply_at(&Command::AddDest(s.key, dest("10.0.0.1", 3)), 3)
            .unwrap();
        let again = &d.service(&s.key).unwrap().dests[0];
        assert!(std::sync::Arc::ptr_eq(&first, &again.shared));
        assert!(!first.is_removed());
        assert_eq!(again.spec.weight, 3);
        assert_eq!(first.inactive(), 1);
        // Another port is another dest.
        d.apply_at(
            &Command::AddDest(
                s.key,
                DestSpec {
                    port: 81,
                    ..dest("10.0.0.1", 1)
                },
            ),
            4,
        )
        .unwrap();
        assert_eq!(d.service(&s.key).unwrap().dests[0].shared.inactive(), 0);
        // Unused for the trash period, it is gone for good.
        d.apply_at(&Command::DelDest(s.key, dest("10.0.0.1", 1).key()), 5)
            .unwrap();
        first.unbind_conn(false);
        drop(first);
        d.apply_at(&Command::Clear, 10).unwrap();
        d.apply_at(&Command::AddService(s.clone()), TRASH_PERIOD_MS + 20)
            .unwrap();
        d.apply_at(
            &Command::AddDest(s.key, dest("10.0.0.1", 1)),
            TRASH_PERIOD_MS + 20,
        )
        .unwrap();
        assert_eq!(d.trash.len(), 1, "only the port-81 dest is left");
    }

    #[test]
    fn newest_dest_first_and_replay_keeps_replicas_equal() {
        let mut control = Director::new();
        let mut worker = Director::new();
        let s = svc(80, "rr");
        for cmd in [
            Command::AddService(s.clone()),
            Command::AddDest(s.key, dest("10.0.0.1", 1)),
            Command::AddDest(s.key, dest("10.0.0.2", 1)),
            Command::AddDest(s.key, dest("10.0.0.3", 1)),
            Command::DelDest(
                s.key,
                DestKey {
                    addr: "10.0.0.2".parse().unwrap(),
                    port: 80,
                },
            ),
        ] {
            let ch = control.apply(&cmd).unwrap();
            worker.replay(&ch);
        }
        let order = |d: &Director| -> Vec<String> {
            d.service(&s.key)
                .unwrap()
                .dests
                .iter()
                .map(|d| d.spec.addr.to_string())
                .collect()
        };
        assert_eq!(order(&control), vec!["10.0.0.3", "10.0.0.1"]);
        assert_eq!(order(&control), order(&worker));
        // Both replicas count into the same shared counters.
        let a = &control.service(&s.key).unwrap().dests[0].shared;
        let b = &worker.service(&s.key).unwrap().dests[0].shared;
        assert!(std::sync::Arc::ptr_eq(a, b));
        // The VIP set follows services in and out.
        assert!(worker.is_vip(s.key.addr));
        let other = ServiceSpec {
            key: ServiceKey { port: 81, ..s.key },
            ..s.clone()
        };
        worker.replay(&control.apply(&Command::AddService(other.clone())).unwrap());
        worker.replay(&control.apply(&Command::DelService(s.key)).unwrap());
        assert!(worker.is_vip(s.key.addr), "port 81 still uses the address");
        worker.replay(&control.apply(&Command::DelService(other.key)).unwrap());
        assert!(!worker.is_vip(s.key.addr));
    }
}
