//! The control thread's side of the traffic counters.
//!
//! Why this file is long (about 590 lines): the counters' bookkeeping is
//! about 380 lines; the rest is its tests.
//!
//! Workers count per dest only, one cache line each (see
//! `rvs_ipvs::stats`). What the kernel keeps beside its per-CPU counters
//! is kept here, per dest, per service and in total: the zero point `-Z`
//! set (the kernel's `kstats0`) and the rate estimator. A service's
//! counters are the sum of its dests' plus what its deleted dests had
//! counted; the total is the sum of the services' plus what deleted
//! services had counted. That is exactly what the kernel's three counters
//! hold, since it counts every packet in a dest, the dest's service and the
//! total at once, and stops counting a dest once it is deleted.

use std::collections::HashMap;

use rvs_control_proto::proto::Totals;
use rvs_ipvs::stats::{DestStats, Estimator, Rates, Stats};
use rvs_ipvs::{DestKey, DestShared};
use rvs_ipvs::{Director, Service, ServiceKey};

/// One object's zero point and estimator.
#[derive(Debug, Clone, Copy, Default)]
struct Book {
    /// The counters as `-Z` found them; shown values are counted from here.
    base: Stats,
    est: Estimator,
}

impl Book {
    fn shown(&self, raw: Stats) -> (Stats, Rates) {
        (raw - self.base, self.est.rates())
    }

    fn zero(&mut self, raw: Stats) {
        self.base = raw;
        self.est.zero(raw);
    }
}

/// A dest's book, and per worker what its lanes hold that the kernel would
/// not have counted: what came while it was deleted (in the trash), or all
/// it had when it came back into a new service.
#[derive(Debug, Clone, Default)]
struct DestBook {
    book: Book,
    uncounted: Vec<Stats>,
}

#[derive(Debug)]
struct ServiceBook {
    /// Tells a service from an earlier one under the same key (a dest
    /// coming back from the trash keeps its counters only in the same one).
    id: u64,
    own: Book,
    dests: HashMap<DestKey, DestBook>,
    /// Per worker: what the service's deleted dests had counted.
    retired: Vec<Stats>,
}

/// Changes whose counting effect waits until every worker applied them: a
/// deleted dest's counts go into its service's, a deleted service's into
/// the total's, and a dest back from the trash takes its own back.
#[derive(Debug)]
pub enum Retirement {
    Dest(ServiceKey, DestKey, DestStats),
    Service(ServiceKey, Vec<(DestKey, DestStats)>),
    Revived(ServiceKey, DestKey, DestStats),
}

/// A deleted dest, as the kernel's trash keeps it.
#[derive(Debug)]
struct Trashed {
    stats: DestStats,
    service_id: u64,
    dest: DestBook,
    /// Per worker: what it added to its service's retired counts.
    folded: Vec<Stats>,
    /// Per worker: its lanes when it was deleted.
    lanes_then: Vec<Stats>,
}

/// Zero points, estimators and retired counts of every service, dest and
/// the total (the kernel's `tot_stats`).
#[derive(Debug)]
pub struct StatsBook {
    workers: usize,
    services: HashMap<ServiceKey, ServiceBook>,
    total: Book,
    /// Per worker: what deleted services had counted.
    retired: Vec<Stats>,
    trash: Vec<Trashed>,
    next_id: u64,
}

fn lanes_of(s: &DestStats, n: usize) -> Vec<Stats> {
    let mut v: Vec<Stats> = s.lanes().iter().map(|l| l.snapshot()).collect();
    v.resize(n, Stats::default());
    v
}

fn sub_lanes(a: &[Stats], b: &[Stats]) -> Vec<Stats> {
    a.iter()
        .enumerate()
        .map(|(i, x)| *x - b.get(i).copied().unwrap_or_default())
        .collect()
}

fn add_into(into: &mut Vec<Stats>, v: &[Stats]) {
    if into.len() < v.len() {
        into.resize(v.len(), Stats::default());
    }
    for (acc, x) in into.iter_mut().zip(v) {
        *acc += *x;
    }
}

fn sum(v: &[Stats]) -> Stats {
    v.iter().copied().fold(Stats::default(), |a, b| a + b)
}

impl StatsBook {
    pub fn new(workers: usize) -> StatsBook {
        StatsBook {
            workers: workers.max(1),
            services: HashMap::new(),
            total: Book::default(),
            retired: vec![Stats::default(); workers.max(1)],
            trash: Vec::new(),
            next_id: 1,
        }
    }

    fn service_book_mut(&mut self, k: ServiceKey) -> &mut ServiceBook {
        let id = &mut self.next_id;
        self.services.entry(k).or_insert_with(|| {
            *id += 1;
            ServiceBook {
                id: *id,
                own: Book::default(),
                dests: HashMap::new(),
                retired: Vec::new(),
            }
        })
    }

    /// Per worker: what a dest counted as the kernel would have.
    fn dest_lanes(&self, svc: &ServiceKey, dk: DestKey, d: &DestShared) -> Vec<Stats> {
        let lanes = lanes_of(&d.stats, self.workers);
        match self.services.get(svc).and_then(|b| b.dests.get(&dk)) {
            Some(b) => sub_lanes(&lanes, &b.uncounted),
            None => lanes,
        }
    }

    fn dest_raw(&self, svc: &ServiceKey, dk: DestKey, d: &DestShared) -> Stats {
        sum(&self.dest_lanes(svc, dk, d))
    }

    fn service_raw(&self, svc: &Service) -> Stats {
        let k = svc.spec.key;
        let retired = self
            .services
            .get(&k)
            .map(|b| sum(&b.retired))
            .unwrap_or_default();
        svc.dests
            .iter()
            .map(|d| self.dest_raw(&k, d.key(), &d.shared))
            .fold(retired, |a, b| a + b)
    }

    /// Per worker: everything counted, deleted services and dests included
    /// (the kernel's per-CPU `tot_stats`).
    pub fn total_lanes(&self, director: &Director) -> Vec<Stats> {
        let mut lanes = self.retired.clone();
        for svc in director.services() {
            let k = svc.spec.key;
            if let Some(b) = self.services.get(&k) {
                add_into(&mut lanes, &b.retired);
            }
            for d in &svc.dests {
                add_into(&mut lanes, &self.dest_lanes(&k, d.key(), &d.shared));
            }
        }
        lanes
    }

    fn total_raw(&self, director: &Director) -> Stats {
        sum(&self.total_lanes(director))
    }

    /// A service's counters and rates as `-L --stats/--rate` show them.
    pub fn service(&self, svc: &Service) -> (Stats, Rates) {
        let book = self
            .services
            .get(&svc.spec.key)
            .map(|b| b.own)
            .unwrap_or_default();
        book.shown(self.service_raw(svc))
    }

    /// A dest's counters and rates.
    pub fn dest(&self, svc: &ServiceKey, key: DestKey, d: &DestShared) -> (Stats, Rates) {
        let book = self
            .services
            .get(svc)
            .and_then(|b| b.dests.get(&key))
            .map(|b| b.book)
            .unwrap_or_default();
        book.shown(self.dest_raw(svc, key, d))
    }

    /// The totals, zeroed by `-Z` with no service; the per-worker rows raw.
    pub fn totals(&self, director: &Director) -> Totals {
        let lanes = self.total_lanes(director);
        let (stats, rates) = self.total.shown(sum(&lanes));
        Totals {
            stats,
            rates,
            workers: lanes,
        }
    }

    /// The estimator's 2-second tick over every service, dest and the total.
    pub fn tick(&mut self, director: &Director) {
        for svc in director.services() {
            let k = svc.spec.key;
            let raw = self.service_raw(svc);
            let dests: Vec<(DestKey, Stats)> = svc
                .dests
                .iter()
                .map(|d| (d.key(), self.dest_raw(&k, d.key(), &d.shared)))
                .collect();
            let book = self.service_book_mut(k);
            book.own.est.tick(raw);
            for (dk, raw) in dests {
                book.dests.entry(dk).or_default().book.est.tick(raw);
            }
        }
        let raw = self.total_raw(director);
        self.total.est.tick(raw);
        // Trashed dests that nothing uses any more are gone for good.
        self.trash.retain(|t| !t.stats.is_unshared());
    }

    /// `-Z service`: the service and its dests start again from zero.
    /// False if there is no such service.
    pub fn zero_service(&mut self, director: &Director, key: &ServiceKey) -> bool {
        let Some(svc) = director.service(key) else {
            return false;
        };
        let raw = self.service_raw(svc);
        let dests: Vec<(DestKey, Stats)> = svc
            .dests
            .iter()
            .map(|d| (d.key(), self.dest_raw(key, d.key(), &d.shared)))
            .collect();
        let book = self.service_book_mut(*key);
        book.own.zero(raw);
        for (dk, raw) in dests {
            book.dests.entry(dk).or_default().book.zero(raw);
        }
        true
    }

    /// `-Z`: every service, every dest and the total.
    pub fn zero_all(&mut self, director: &Director) {
        let keys: Vec<ServiceKey> = director.services().map(|s| s.spec.key).collect();
        for k in keys {
            self.zero_service(director, &k);
        }
        let raw = self.total_raw(director);
        self.total.zero(raw);
    }

    /// What deleting by `cmd` will take out of the counted dests, captured
    /// before the replica forgets them.
    pub fn retirement(director: &Director, cmd: &rvs_ipvs::Command) -> Vec<Retirement> {
        use rvs_ipvs::Command;
        let whole = |s: &Service| {
            Retirement::Service(
                s.spec.key,
                s.dests
                    .iter()
                    .map(|d| (d.key(), d.shared.stats.clone()))
                    .collect(),
            )
        };
        match cmd {
            Command::DelDest(k, dk) => director
                .service(k)
                .and_then(|s| s.dests.iter().find(|d| d.key() == *dk))
                .map(|d| vec![Retirement::Dest(*k, *dk, d.shared.stats.clone())])
                .unwrap_or_default(),
            Command::DelService(k) => director.service(k).map(whole).into_iter().collect(),
            Command::Clear => director.services().map(whole).collect(),
            _ => Vec::new(),
        }
    }

    /// A dest the replica added: back from its trash, it takes its counters
    /// back (see [`StatsBook::retire`]); new, nothing to do.
    pub fn added(change: &rvs_ipvs::Change) -> Option<Retirement> {
        match change {
            rvs_ipvs::Change::AddDest(k, spec, shared) => {
                Some(Retirement::Revived(*k, spec.key(), shared.stats.clone()))
            }
            _ => None,
        }
    }

    /// Applies a [`Retirement`] once the workers applied its change (so
    /// none of their counting falls between two stools).
    pub fn retire(&mut self, r: Retirement) {
        let n = self.workers;
        match r {
            Retirement::Dest(k, dk, stats) => {
                let book = self.service_book_mut(k);
                let dest = book.dests.remove(&dk).unwrap_or_default();
                let lanes_then = lanes_of(&stats, n);
                let folded = sub_lanes(&lanes_then, &dest.uncounted);
                add_into(&mut book.retired, &folded);
                let service_id = book.id;
                self.trash.push(Trashed {
                    stats,
                    service_id,
                    dest,
                    folded,
                    lanes_then,
                });
            }
            Retirement::Service(k, dests) => {
                let mut book = self.services.remove(&k);
                if let Some(b) = &book {
                    let r = b.retired.clone();
                    add_into(&mut self.retired, &r);
                }
                for (dk, stats) in dests {
                    let dest = book
                        .as_mut()
                        .and_then(|b| b.dests.remove(&dk))
                        .unwrap_or_default();
                    let lanes_then = lanes_of(&stats, n);
                    let folded = sub_lanes(&lanes_then, &dest.uncounted);
                    add_into(&mut self.retired, &folded);
                    self.trash.push(Trashed {
                        stats,
                        service_id: book.as_ref().map_or(0, |b| b.id),
                        dest,
                        folded,
                        lanes_then,
                    });
                }
            }
            Retirement::Revived(k, dk, stats) => {
                let Some(i) = self.trash.iter().position(|t| t.stats.ptr_eq(&stats)) else {
                    return; // a new dest: nothing counted yet
                };
                let t = self.trash.swap_remove(i);
                let now = lanes_of(&stats, n);
                let book = self.service_book_mut(k);
                let dest = if book.id == t.service_id {
                    // Back into the same service (ip_vs_trash_get_dest): its
                    // counters go on, without what came while it was
                    // deleted, and they leave the service's retired counts.
                    book.retired = sub_lanes(&book.retired, &t.folded);
                    let mut d = t.dest;
                    let away = sub_lanes(&now, &t.lanes_then);
                    add_into(&mut d.uncounted, &away);
                    d
                } else {
                    // Into a new service under the same address: the kernel
                    // zeroes its counters (old_svc != svc).
                    DestBook {
                        book: Book::default(),
                        uncounted: now,
                    }
                };
                book.dests.insert(dk, dest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ipvs::{Command, DestSpec, FwdMethod, Protocol, ServiceSpec};
    use std::sync::Arc;

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.168.1.10".parse().unwrap(),
            port,
        }
    }

    fn svc(port: u16) -> Command {
        Command::AddService(ServiceSpec {
            key: key(port),
            scheduler: "rr".into(),
            sched_flags: 0,
            persistent: None,
            netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            one_packet: false,
        })
    }

    fn dest(a: &str) -> DestSpec {
        DestSpec {
            addr: a.parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        }
    }

    /// `n` packets of 100 bytes and one connection, on worker `lane`.
    fn traffic(d: &Director, port: u16, addr: &str, lane: usize, n: u64) {
        let s = d.service(&key(port)).unwrap();
        let dst = s.dests.iter().find(|x| x.spec.addr.to_string() == addr);
        let l = dst.unwrap().shared.stats.lane(lane).unwrap();
        l.count_conn();
        for _ in 0..n {
            l.count_in(100);
        }
    }

    fn apply(d: &mut Director, b: &mut StatsBook, c: Command) {
        let r = StatsBook::retirement(d, &c);
        let change = d.apply(&c).unwrap();
        for x in r.into_iter().chain(StatsBook::added(&change)) {
            b.retire(x);
        }
    }

    #[test]
    fn a_dest_back_from_the_trash_keeps_its_counts_in_the_same_service_only() {
        let mut d = Director::with_stats_lanes(1);
        let mut b = StatsBook::new(1);
        let a = DestKey {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        apply(&mut d, &mut b, svc(80));
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.1")));
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.2")));
        traffic(&d, 80, "10.0.0.1", 0, 3);
        traffic(&d, 80, "10.0.0.2", 0, 4);
        let shared = |d: &Director| {
            let s = d.service(&key(80)).unwrap();
            s.dests
                .iter()
                .find(|x| x.key() == a)
                .unwrap()
                .shared
                .clone()
        };
        let gone = shared(&d);
        let s80 = |d: &Director, b: &StatsBook| b.service(d.service(&key(80)).unwrap()).0;
        apply(&mut d, &mut b, Command::DelDest(key(80), a));
        assert_eq!(s80(&d, &b).inpkts, 7);
        // Its connections carry on while it is deleted; nothing counts that.
        gone.stats.lane(0).unwrap().count_in(100);
        gone.stats.lane(0).unwrap().count_in(100);
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.1")));
        assert!(Arc::ptr_eq(&shared(&d), &gone), "back from the trash");
        assert_eq!(b.dest(&key(80), a, &gone).0.inpkts, 3);
        assert_eq!(s80(&d, &b).inpkts, 7, "not counted twice");
        traffic(&d, 80, "10.0.0.1", 0, 2);
        assert_eq!(b.dest(&key(80), a, &gone).0.inpkts, 5);
        assert_eq!(s80(&d, &b).inpkts, 9);
        assert_eq!(b.totals(&d).stats.inpkts, 9);
        assert_eq!(b.totals(&d).workers[0].inpkts, 9);
        // A new service under the same address: the dest comes back with
        // its counters zeroed, as the kernel zeroes them (old_svc != svc).
        apply(&mut d, &mut b, Command::DelService(key(80)));
        apply(&mut d, &mut b, svc(80));
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.1")));
        assert!(Arc::ptr_eq(&shared(&d), &gone));
        assert_eq!(b.dest(&key(80), a, &gone).0, Stats::default());
        assert_eq!(s80(&d, &b), Stats::default());
        assert_eq!(b.totals(&d).stats.inpkts, 9, "the total keeps it all once");
        traffic(&d, 80, "10.0.0.1", 0, 1);
        assert_eq!(s80(&d, &b).inpkts, 1);
        assert_eq!(b.totals(&d).stats.inpkts, 10);
    }

    #[test]
    fn services_and_total_are_sums_that_keep_deleted_dests() {
        let mut d = Director::with_stats_lanes(2);
        let mut b = StatsBook::new(2);
        apply(&mut d, &mut b, svc(80));
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.1")));
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.2")));
        apply(&mut d, &mut b, svc(81));
        apply(&mut d, &mut b, Command::AddDest(key(81), dest("10.0.0.1")));
        traffic(&d, 80, "10.0.0.1", 0, 3);
        traffic(&d, 80, "10.0.0.2", 1, 4);
        traffic(&d, 81, "10.0.0.1", 1, 5);
        let s80 = |d: &Director, b: &StatsBook| b.service(d.service(&key(80)).unwrap()).0;
        assert_eq!((s80(&d, &b).conns, s80(&d, &b).inpkts), (2, 7));
        let t = b.totals(&d);
        assert_eq!(
            (t.stats.conns, t.stats.inpkts, t.stats.inbytes),
            (3, 12, 1200)
        );
        assert_eq!(t.workers[0].inpkts, 3);
        assert_eq!(t.workers[1].inpkts, 9);
        // A deleted dest's counts stay in its service and the total...
        let gone = d.service(&key(80)).unwrap().dests[0].shared.clone();
        apply(
            &mut d,
            &mut b,
            Command::DelDest(
                key(80),
                DestKey {
                    addr: "10.0.0.2".parse().unwrap(),
                    port: 80,
                },
            ),
        );
        assert_eq!(s80(&d, &b).inpkts, 7);
        // ...and what its remaining connections carry counts nowhere, as
        // the kernel stops counting an unavailable dest.
        gone.stats.lane(0).unwrap().count_in(100);
        assert_eq!(s80(&d, &b).inpkts, 7);
        assert_eq!(b.totals(&d).stats.inpkts, 12);
        // A deleted service's counts stay in the total.
        apply(&mut d, &mut b, Command::DelService(key(80)));
        assert_eq!(b.totals(&d).stats.inpkts, 12);
        apply(&mut d, &mut b, Command::Clear);
        let t = b.totals(&d);
        assert_eq!((t.stats.conns, t.stats.inpkts), (3, 12));
        assert_eq!(t.workers.iter().map(|w| w.inpkts).sum::<u64>(), 12);
        // A service added again under the same key starts from nothing.
        apply(&mut d, &mut b, svc(80));
        assert_eq!(s80(&d, &b), Stats::default());
    }

    #[test]
    fn zero_sets_the_zero_point_and_restarts_the_rates() {
        let mut d = Director::with_stats_lanes(1);
        let mut b = StatsBook::new(1);
        apply(&mut d, &mut b, svc(80));
        apply(&mut d, &mut b, Command::AddDest(key(80), dest("10.0.0.1")));
        apply(&mut d, &mut b, svc(81));
        apply(&mut d, &mut b, Command::AddDest(key(81), dest("10.0.0.1")));
        for _ in 0..5 {
            traffic(&d, 80, "10.0.0.1", 0, 100);
            traffic(&d, 81, "10.0.0.1", 0, 100);
            b.tick(&d);
        }
        let s = |d: &Director, b: &StatsBook, p| b.service(d.service(&key(p)).unwrap());
        assert!(s(&d, &b, 80).1.inpps > 0);
        assert!(!b.zero_service(&d, &key(99)), "no such service");
        assert!(b.zero_service(&d, &key(80)));
        assert_eq!(s(&d, &b, 80), (Stats::default(), Rates::default()));
        let dk = DestKey {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        let dshared = d.service(&key(80)).unwrap().dests[0].shared.clone();
        assert_eq!(
            b.dest(&key(80), dk, &dshared),
            (Stats::default(), Rates::default())
        );
        // The other service and the total are untouched.
        assert_eq!(s(&d, &b, 81).0.inpkts, 500);
        assert_eq!(b.totals(&d).stats.inpkts, 1000);
        // Counting goes on from the zero point.
        traffic(&d, 80, "10.0.0.1", 0, 7);
        assert_eq!(s(&d, &b, 80).0.inpkts, 7);
        b.tick(&d);
        // 7 packets in 2 s: 3.5/s, a quarter of it after one tick, rounds
        // to 1 in the kernel's decoding.
        assert_eq!(s(&d, &b, 80).1.inpps, 1);
        b.zero_all(&d);
        assert_eq!(b.totals(&d).stats, Stats::default());
        assert_eq!(b.totals(&d).rates, Rates::default());
        assert_eq!(s(&d, &b, 81).0, Stats::default());
        // The per-worker rows are never zeroed, as the kernel's per-CPU ones.
        assert_eq!(b.totals(&d).workers[0].inpkts, 1007);
    }
}
