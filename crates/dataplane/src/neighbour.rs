//! The neighbour table (ARP and NDP): IP address → MAC, shared by all
//! workers.
//!
//! Reads are lock-free (an `ArcSwap` snapshot); writes, which happen only when
//! an ARP packet teaches something new, copy the map. Entries older than the
//! expiry are treated as unknown; entries past half of it are refreshed.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use rustc_hash::FxHashMap;
use rvs_packet::MacAddr;

/// `confirmed_ms` of permanent entries.
const STATIC: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighEntry {
    pub mac: MacAddr,
    /// When it was last confirmed, in the dataplane clock (ms).
    pub confirmed_ms: u64,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbour {
    /// Known and fresh.
    Reachable(MacAddr),
    /// Known but old: use it, and ask again.
    Stale(MacAddr),
    /// Unknown or expired.
    Missing,
}

type Map = FxHashMap<IpAddr, NeighEntry>;

#[derive(Debug)]
pub struct NeighbourTable {
    map: ArcSwap<Map>,
    expiry_ms: u64,
}

/// How an entry (or its absence) reads at `now_ms`.
#[inline]
fn classify(e: Option<&NeighEntry>, now_ms: u64, expiry_ms: u64) -> Neighbour {
    match e {
        Some(e) if e.confirmed_ms == STATIC => Neighbour::Reachable(e.mac),
        Some(e) => {
            let age = now_ms.saturating_sub(e.confirmed_ms);
            if age >= expiry_ms {
                Neighbour::Missing
            } else if age >= expiry_ms / 2 {
                Neighbour::Stale(e.mac)
            } else {
                Neighbour::Reachable(e.mac)
            }
        }
        None => Neighbour::Missing,
    }
}

/// Entries of a reader's memo (direct-mapped by address).
const MEMO: usize = 16;

/// One worker's view of the table for its fast path: a snapshot that the
/// worker refreshes once per poll loop (and after it learns something
/// itself), so that a packet touches no shared cache line; the few
/// addresses a worker sends to (its real servers, gateways) are memoized in
/// front of the snapshot's hash map.
pub struct NeighbourReader {
    table: Arc<NeighbourTable>,
    snapshot: Arc<Map>,
    memo: [Option<(IpAddr, Option<NeighEntry>)>; MEMO],
    /// The table's, copied: the table's own cache line is written on every
    /// learn (its `ArcSwap`), and a packet should not read it.
    expiry_ms: u64,
}

fn memo_slot(ip: &IpAddr) -> usize {
    let low = match ip {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => u128::from(*a) as u32,
    };
    (low.wrapping_mul(0x9e37_79b9) >> 28) as usize % MEMO
}

impl NeighbourReader {
    /// Takes the table's current snapshot if it changed.
    pub fn refresh(&mut self) {
        let current = self.table.map.load();
        if !Arc::ptr_eq(&current, &self.snapshot) {
            self.snapshot = Guard::into_inner(current);
            self.memo = [None; MEMO];
        }
    }

    /// Looks `ip` up in the snapshot of the last [`NeighbourReader::refresh`].
    #[inline]
    pub fn lookup(&mut self, ip: impl Into<IpAddr>, now_ms: u64) -> Neighbour {
        let ip = ip.into();
        let slot = &mut self.memo[memo_slot(&ip)];
        let entry = match slot {
            Some((a, e)) if *a == ip => *e,
            _ => {
                let e = self.snapshot.get(&ip).copied();
                *slot = Some((ip, e));
                e
            }
        };
        classify(entry.as_ref(), now_ms, self.expiry_ms)
    }
}

impl NeighbourTable {
    pub fn new(expiry_ms: u64) -> NeighbourTable {
        NeighbourTable {
            map: ArcSwap::from_pointee(FxHashMap::default()),
            expiry_ms,
        }
    }

    #[inline]
    pub fn lookup(&self, ip: impl Into<IpAddr>, now_ms: u64) -> Neighbour {
        classify(self.map.load().get(&ip.into()), now_ms, self.expiry_ms)
    }

    /// A reader for one worker's fast path.
    pub fn reader(self: &Arc<Self>) -> NeighbourReader {
        NeighbourReader {
            table: self.clone(),
            snapshot: self.map.load_full(),
            memo: [None; MEMO],
            expiry_ms: self.expiry_ms,
        }
    }

    /// A permanent entry (from the configuration): never ages, never
    /// relearned.
    pub fn add_static(&self, ip: impl Into<IpAddr>, mac: MacAddr) {
        let ip = ip.into();
        self.map.rcu(|m| {
            let mut m = FxHashMap::clone(m);
            m.insert(
                ip,
                NeighEntry {
                    mac,
                    confirmed_ms: STATIC,
                },
            );
            Arc::new(m)
        });
    }

    /// Records `ip` at `mac`; returns whether the table changed. Confirmations
    /// of a known entry are written at most once a second.
    pub fn learn(&self, ip: impl Into<IpAddr>, mac: MacAddr, now_ms: u64) -> bool {
        let ip = ip.into();
        if let Some(e) = self.map.load().get(&ip) {
            if e.confirmed_ms == STATIC
                || (e.mac == mac && now_ms.saturating_sub(e.confirmed_ms) < 1000)
            {
                return false;
            }
        }
        self.map.rcu(|m| {
            let mut m = FxHashMap::clone(m);
            m.insert(
                ip,
                NeighEntry {
                    mac,
                    confirmed_ms: now_ms,
                },
            );
            Arc::new(m)
        });
        true
    }

    /// Every entry, for display.
    pub fn entries(&self) -> Vec<(IpAddr, NeighEntry)> {
        let mut v: Vec<_> = self.map.load().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn ages_through_stale_to_missing() {
        let t = NeighbourTable::new(10_000);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(t.lookup(ip, 0), Neighbour::Missing);
        assert!(t.learn(ip, mac, 1000));
        assert!(
            !t.learn(ip, mac, 1500),
            "recent confirmation is not rewritten"
        );
        assert_eq!(t.lookup(ip, 2000), Neighbour::Reachable(mac));
        assert_eq!(t.lookup(ip, 7000), Neighbour::Stale(mac));
        assert_eq!(t.lookup(ip, 11_000), Neighbour::Missing);
        assert!(t.learn(ip, mac, 11_000));
        assert_eq!(t.lookup(ip, 11_001), Neighbour::Reachable(mac));
    }

    #[test]
    fn a_reader_sees_every_change() {
        let t = Arc::new(NeighbourTable::new(10_000));
        let mut r = t.reader();
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(r.lookup(ip, 0), Neighbour::Missing);
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        t.learn(ip, a, 0);
        assert_eq!(r.lookup(ip, 1), Neighbour::Missing, "until refreshed");
        r.refresh();
        assert_eq!(r.lookup(ip, 1), Neighbour::Reachable(a));
        t.learn(ip, b, 2000);
        r.refresh();
        assert_eq!(r.lookup(ip, 2001), Neighbour::Reachable(b));
        assert_eq!(r.lookup(ip, 7000), Neighbour::Stale(b));
    }

    #[test]
    fn static_entries_never_age_or_move() {
        let t = NeighbourTable::new(10_000);
        let ip = Ipv4Addr::new(10, 0, 0, 9);
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        t.add_static(ip, mac);
        assert_eq!(t.lookup(ip, u64::MAX / 2), Neighbour::Reachable(mac));
        assert!(!t.learn(ip, MacAddr([2, 0, 0, 0, 0, 1]), 5));
        assert_eq!(t.lookup(ip, 5), Neighbour::Reachable(mac));
    }
}
