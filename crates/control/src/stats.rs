//! The control thread's side of the traffic counters.
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

#[derive(Debug, Default)]
struct ServiceBook {
    own: Book,
    dests: HashMap<DestKey, Book>,
    /// Per worker: what the service's deleted dests had counted.
    retired: Vec<Stats>,
}

/// Counts to fold in once the workers stopped counting them: a deleted
/// dest's into its service, a deleted service's into the total.
#[derive(Debug)]
pub enum Retirement {
    Dest(ServiceKey, DestKey, DestStats),
    Service(ServiceKey, Vec<DestStats>),
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
}

fn add_lanes(into: &mut [Stats], s: &DestStats) {
    for (acc, lane) in into.iter_mut().zip(s.lanes()) {
        *acc += lane.snapshot();
    }
}

fn sum(v: &[Stats]) -> Stats {
    v.iter().copied().fold(Stats::default(), |a, b| a + b)
}

fn dest_raw(d: &DestShared) -> Stats {
    d.stats.sum()
}

impl StatsBook {
    pub fn new(workers: usize) -> StatsBook {
        StatsBook {
            workers: workers.max(1),
            services: HashMap::new(),
            total: Book::default(),
            retired: vec![Stats::default(); workers.max(1)],
        }
    }

    fn service_book(&self, k: &ServiceKey) -> Option<&ServiceBook> {
        self.services.get(k)
    }

    fn service_raw(&self, svc: &Service) -> Stats {
        let retired = self
            .service_book(&svc.spec.key)
            .map(|b| sum(&b.retired))
            .unwrap_or_default();
        svc.dests
            .iter()
            .map(|d| dest_raw(&d.shared))
            .fold(retired, |a, b| a + b)
    }

    /// Per worker: everything counted, deleted services and dests included
    /// (the kernel's per-CPU `tot_stats`).
    pub fn total_lanes(&self, director: &Director) -> Vec<Stats> {
        let mut lanes = self.retired.clone();
        for svc in director.services() {
            if let Some(b) = self.service_book(&svc.spec.key) {
                for (acc, r) in lanes.iter_mut().zip(&b.retired) {
                    *acc += *r;
                }
            }
            for d in &svc.dests {
                add_lanes(&mut lanes, &d.shared.stats);
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
            .service_book(&svc.spec.key)
            .map(|b| b.own)
            .unwrap_or_default();
        book.shown(self.service_raw(svc))
    }

    /// A dest's counters and rates.
    pub fn dest(&self, svc: &ServiceKey, key: DestKey, d: &DestShared) -> (Stats, Rates) {
        let book = self
            .service_book(svc)
            .and_then(|b| b.dests.get(&key))
            .copied()
            .unwrap_or_default();
        book.shown(dest_raw(d))
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
            let raw = self.service_raw(svc);
            let book = self.services.entry(svc.spec.key).or_default();
            book.own.est.tick(raw);
            for d in &svc.dests {
                book.dests
                    .entry(d.key())
                    .or_default()
                    .est
                    .tick(dest_raw(&d.shared));
            }
        }
        let raw = self.total_raw(director);
        self.total.est.tick(raw);
    }

    /// `-Z service`: the service and its dests start again from zero.
    /// False if there is no such service.
    pub fn zero_service(&mut self, director: &Director, key: &ServiceKey) -> bool {
        let Some(svc) = director.service(key) else {
            return false;
        };
        let raw = self.service_raw(svc);
        let book = self.services.entry(*key).or_default();
        book.own.zero(raw);
        for d in &svc.dests {
            book.dests
                .entry(d.key())
                .or_default()
                .zero(dest_raw(&d.shared));
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
                s.dests.iter().map(|d| d.shared.stats.clone()).collect(),
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

    /// Folds deleted dests' counts into their service's, and deleted
    /// services' into the total's, once the workers applied the deletion
    /// (so none of their counting falls between two stools).
    pub fn retire(&mut self, r: Retirement) {
        let n = self.workers;
        match r {
            Retirement::Dest(k, dk, stats) => {
                let book = self.services.entry(k).or_default();
                book.retired.resize(n, Stats::default());
                add_lanes(&mut book.retired, &stats);
                book.dests.remove(&dk);
            }
            Retirement::Service(k, dests) => {
                if let Some(book) = self.services.remove(&k) {
                    for (acc, r) in self.retired.iter_mut().zip(&book.retired) {
                        *acc += *r;
                    }
                }
                for d in &dests {
                    add_lanes(&mut self.retired, d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ipvs::{Command, DestSpec, FwdMethod, Protocol, ServiceSpec};

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
            netmask: 32,
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
        d.apply(&c).unwrap();
        for x in r {
            b.retire(x);
        }
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
