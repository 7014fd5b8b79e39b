//! The neighbour table (ARP and NDP): IP address → MAC, shared by all
//! workers.
//!
//! Why this file is long (about 630 lines): one table, its lock-free reads,
//! and writes that follow Linux's rules case by case, with those rules and
//! their reasons written beside the code (a third of the file); the tests
//! are in `neighbour/tests.rs`.
//!
//! Reads are lock-free (an `ArcSwap` snapshot that each worker refreshes
//! once per poll loop, a pointer compare when nothing changed); writes copy
//! the map, so they are kept rare: a confirmation of what the table already
//! says is written at most four times per expiry period, and a flood of
//! new addresses is bounded by the table's capacity and by a rate.
//!
//! What neighbours say is taken as Linux takes it by default
//! (`net/ipv4/arp.c` `arp_process` with `arp_accept=0`,
//! `net/ipv6/ndisc.c` `ndisc_recv_ns`/`ndisc_recv_na` with
//! `accept_untracked_na=0`, `neigh_update`'s override rules):
//!
//! - An entry is created only by a neighbour asking for one of the
//!   director's addresses (its request carries its MAC), or by an answer
//!   to a request of rvsd's own. An unsolicited ARP reply, a gratuitous
//!   ARP or an unsolicited neighbour advertisement creates nothing.
//! - An ARP reply or request that names another MAC for a known address
//!   moves it only when the entry was last changed more than `locktime`
//!   ago (1 s, Linux's default): of several answers back to back, the
//!   first one wins. A gratuitous ARP moves it at once (it is how a
//!   failover announces itself), as in Linux.
//! - A neighbour advertisement moves it only with its override flag; one
//!   without the flag makes a reachable entry stale (asked again).
//! - Only a reply addressed to the director (or a solicited advertisement)
//!   confirms reachability; what else is heard leaves the entry stale, so
//!   that the next packet to it asks.
//! - Static entries are never changed by anything heard.
//!
//! [`LearnPolicy::SolicitedOnly`] goes further: only answers to rvsd's own
//! outstanding requests are taken (the first answer closes the request),
//! and nothing else a neighbour says changes the table.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use rustc_hash::FxHashMap;
use rvs_packet::MacAddr;

/// `confirmed_ms` of permanent entries.
const STATIC: u64 = u64::MAX;

/// Linux's `locktime` (`/proc/sys/net/ipv4/neigh/*/locktime`, 100 jiffies).
pub const LOCKTIME_MS: u64 = 1000;

/// Default for `[neighbours] max_entries`.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Entries created per second from neighbours asking for the director's
/// addresses (a table write copies the map: a flood of requests from made
/// up addresses must not turn into a flood of copies). Such an entry only
/// saves one ARP round trip; an address that misses out is asked for when
/// the director first sends to it.
pub const UNASKED_CREATIONS_PER_S: u32 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighEntry {
    pub mac: MacAddr,
    /// When it was last confirmed reachable, in the dataplane clock (ms).
    pub confirmed_ms: u64,
    /// When its MAC or state last changed (Linux's `updated`): the
    /// locktime runs from here.
    pub updated_ms: u64,
    /// Learned or moved by something other than an answer to the director
    /// (Linux's NUD_STALE): used, but the next packet to it asks again.
    pub stale: bool,
    /// The director asked for it (it sends to it): evicted after entries
    /// it never asked for.
    pub wanted: bool,
}

impl NeighEntry {
    fn is_static(&self) -> bool {
        self.confirmed_ms == STATIC
    }
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbour {
    /// Known and fresh.
    Reachable(MacAddr),
    /// Known but old, or not confirmed: use it, and ask again.
    Stale(MacAddr),
    /// Unknown or expired.
    Missing,
}

/// Which neighbour messages may change the table (`[neighbours] learn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LearnPolicy {
    /// Linux's default rules (see the module's documentation).
    #[default]
    Linux,
    /// Only answers to requests rvsd sent and is still waiting on.
    SolicitedOnly,
}

/// How the table behaves.
#[derive(Debug, Clone, Copy)]
pub struct NeighbourConfig {
    /// Entries unconfirmed for this long are forgotten; past half of it
    /// they are asked for again.
    pub expiry_ms: u64,
    /// Most learned entries (static ones come on top).
    pub capacity: usize,
    pub policy: LearnPolicy,
    /// How long a request of rvsd's waits for its answer.
    pub answer_window_ms: u64,
}

impl NeighbourConfig {
    /// Linux's rules, [`DEFAULT_CAPACITY`] entries, a 3 s answer window.
    pub fn new(expiry_ms: u64) -> NeighbourConfig {
        NeighbourConfig {
            expiry_ms,
            capacity: DEFAULT_CAPACITY,
            policy: LearnPolicy::Linux,
            answer_window_ms: 3000,
        }
    }
}

/// What a neighbour said, as the learning rules tell the cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// It asked for one of the director's addresses, with its own MAC (an
    /// ARP request, a neighbour solicitation): creates the entry, or moves
    /// it at once, stale (arp.c `neigh_event_ns`, `ndisc_recv_ns`).
    AskedForUs,
    /// An ARP reply; `unicast` when addressed to the director's MAC (only
    /// that confirms reachability).
    ArpReply { unicast: bool },
    /// A gratuitous ARP (sender address = target address).
    ArpGratuitous,
    /// Any other ARP request (it asks for someone else).
    ArpOther,
    /// A neighbour advertisement with its solicited and override flags.
    Advert {
        solicited: bool,
        override_flag: bool,
    },
}

impl Heard {
    /// An answer to a request: what may fill an entry rvsd asked for.
    fn is_answer(self) -> bool {
        matches!(
            self,
            Heard::ArpReply { .. }
                | Heard::Advert {
                    solicited: true,
                    ..
                }
        )
    }

    /// Whether it confirms reachability (NUD_REACHABLE rather than STALE).
    fn confirms(self) -> bool {
        matches!(
            self,
            Heard::ArpReply { unicast: true }
                | Heard::Advert {
                    solicited: true,
                    ..
                }
        )
    }
}

/// What the table did with what was heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// A new entry (`evicted`: entries removed to make room for it).
    Created { evicted: usize },
    /// A known address at a new MAC.
    Moved,
    /// A known address confirmed, or its state changed.
    Confirmed,
    /// Nothing to write.
    Unchanged,
    /// Not taken.
    Refused(Refusal),
}

/// Why something heard was not taken (each counted by the worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No entry, and rvsd had not asked (Linux: `arp_accept=0`,
    /// `accept_untracked_na=0`).
    Unsolicited,
    /// Another MAC within the locktime, or an advertisement without the
    /// override flag: the entry keeps its MAC.
    Locked,
    /// A static entry: configured, never changed by the network.
    Static,
    /// `learn = "solicited-only"`: not an answer to an outstanding request.
    NotAnAnswer,
    /// A new entry beyond [`UNASKED_CREATIONS_PER_S`].
    RateLimited,
}

type Map = FxHashMap<IpAddr, NeighEntry>;

/// Entries created in the current second, for [`UNASKED_CREATIONS_PER_S`].
#[derive(Debug, Default)]
struct CreationWindow {
    second: u64,
    count: u32,
}

#[derive(Debug)]
pub struct NeighbourTable {
    map: ArcSwap<Map>,
    cfg: NeighbourConfig,
    /// Requests rvsd sent and not yet answered: address → when asked. At
    /// most `capacity` of them.
    asked: Mutex<FxHashMap<IpAddr, u64>>,
    creations: Mutex<CreationWindow>,
}

/// How an entry (or its absence) reads at `now_ms`.
#[inline]
fn classify(e: Option<&NeighEntry>, now_ms: u64, expiry_ms: u64) -> Neighbour {
    match e {
        Some(e) if e.is_static() => Neighbour::Reachable(e.mac),
        Some(e) => {
            let age = now_ms.saturating_sub(e.confirmed_ms);
            if age >= expiry_ms {
                Neighbour::Missing
            } else if e.stale || age >= expiry_ms / 2 {
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
    /// Snapshots taken so far: what was read from an older one may be out
    /// of date ([`NeighbourReader::reachable_until`]).
    generation: u64,
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
            self.generation += 1;
        }
    }

    /// Which snapshot the reader holds: it changes whenever the table did.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Looks `ip` up in the snapshot of the last [`NeighbourReader::refresh`].
    #[inline]
    pub fn lookup(&mut self, ip: impl Into<IpAddr>, now_ms: u64) -> Neighbour {
        let entry = self.entry(ip.into());
        classify(entry.as_ref(), now_ms, self.expiry_ms)
    }

    /// `ip`'s MAC, and until when (dataplane ms) [`NeighbourReader::lookup`]
    /// finds it reachable as long as the reader's generation stays the
    /// same; none when it is not reachable now. What a caller may keep the
    /// MAC for without looking again.
    pub fn reachable_until(
        &mut self,
        ip: impl Into<IpAddr>,
        now_ms: u64,
    ) -> Option<(MacAddr, u64)> {
        let e = self.entry(ip.into())?;
        let until = if e.is_static() {
            u64::MAX
        } else if e.stale {
            return None;
        } else {
            e.confirmed_ms.saturating_add(self.expiry_ms / 2)
        };
        (now_ms < until).then_some((e.mac, until))
    }

    #[inline]
    fn entry(&mut self, ip: IpAddr) -> Option<NeighEntry> {
        let slot = &mut self.memo[memo_slot(&ip)];
        match slot {
            Some((a, e)) if *a == ip => *e,
            _ => {
                let e = self.snapshot.get(&ip).copied();
                *slot = Some((ip, e));
                e
            }
        }
    }
}

/// Makes room for one more learned entry in `m` (at most `capacity`
/// learned): expired entries go first, then the least recently confirmed
/// of those the director never asked for, then of the rest. An entry in
/// use is asked for again past half its expiry, so its confirmation is
/// recent: the least recently confirmed are the least recently used.
/// Returns how many went.
fn make_room(m: &mut Map, capacity: usize, now_ms: u64, expiry_ms: u64) -> usize {
    let learned = m.values().filter(|e| !e.is_static()).count();
    if learned < capacity {
        return 0;
    }
    let before = m.len();
    m.retain(|_, e| e.is_static() || now_ms.saturating_sub(e.confirmed_ms) < expiry_ms);
    let mut gone = before - m.len();
    let mut learned = learned - gone;
    while learned >= capacity.max(1) {
        let Some(victim) = m
            .iter()
            .filter(|(_, e)| !e.is_static())
            .min_by_key(|(_, e)| (e.wanted, e.confirmed_ms))
            .map(|(k, _)| *k)
        else {
            break;
        };
        m.remove(&victim);
        gone += 1;
        learned -= 1;
    }
    gone
}

impl NeighbourTable {
    /// A table with Linux's rules and the default capacity.
    pub fn new(expiry_ms: u64) -> NeighbourTable {
        NeighbourTable::with_config(NeighbourConfig::new(expiry_ms))
    }

    pub fn with_config(cfg: NeighbourConfig) -> NeighbourTable {
        NeighbourTable {
            map: ArcSwap::from_pointee(FxHashMap::default()),
            cfg,
            asked: Mutex::new(FxHashMap::default()),
            creations: Mutex::new(CreationWindow::default()),
        }
    }

    pub fn config(&self) -> &NeighbourConfig {
        &self.cfg
    }

    #[inline]
    pub fn lookup(&self, ip: impl Into<IpAddr>, now_ms: u64) -> Neighbour {
        classify(self.map.load().get(&ip.into()), now_ms, self.cfg.expiry_ms)
    }

    /// The entry for `ip`, if any (expired ones too).
    pub fn entry(&self, ip: impl Into<IpAddr>) -> Option<NeighEntry> {
        self.map.load().get(&ip.into()).copied()
    }

    /// A reader for one worker's fast path.
    pub fn reader(self: &Arc<Self>) -> NeighbourReader {
        NeighbourReader {
            table: self.clone(),
            snapshot: self.map.load_full(),
            memo: [None; MEMO],
            expiry_ms: self.cfg.expiry_ms,
            generation: 0,
        }
    }

    /// A permanent entry (from the configuration): never ages, never
    /// changed by anything heard, never evicted.
    pub fn add_static(&self, ip: impl Into<IpAddr>, mac: MacAddr) {
        let ip = ip.into();
        self.map.rcu(|m| {
            let mut m = FxHashMap::clone(m);
            m.insert(
                ip,
                NeighEntry {
                    mac,
                    confirmed_ms: STATIC,
                    updated_ms: 0,
                    stale: false,
                    wanted: true,
                },
            );
            Arc::new(m)
        });
    }

    /// Notes that rvsd asked for `ip` (an ARP request or a neighbour
    /// solicitation went out): its answer may fill the entry. Returns
    /// false when the table of outstanding requests is full (the answer
    /// will then be taken only as Linux takes an unsolicited one).
    pub fn asked(&self, ip: impl Into<IpAddr>, now_ms: u64) -> bool {
        let ip = ip.into();
        let window = self.cfg.answer_window_ms;
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        if asked.len() >= self.cfg.capacity && !asked.contains_key(&ip) {
            asked.retain(|_, t| now_ms < t.saturating_add(window));
            if asked.len() >= self.cfg.capacity {
                return false;
            }
        }
        asked.insert(ip, now_ms);
        true
    }

    /// Whether a request for `ip` is outstanding.
    fn is_asked(&self, ip: &IpAddr, now_ms: u64) -> bool {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked
            .get(ip)
            .is_some_and(|t| now_ms < t.saturating_add(self.cfg.answer_window_ms))
    }

    /// The first answer closes the request.
    fn answered(&self, ip: &IpAddr) {
        self.asked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(ip);
    }

    /// Whether one more entry may be created from a neighbour's own
    /// request this second.
    fn may_create_unasked(&self, now_ms: u64) -> bool {
        let mut w = self.creations.lock().unwrap_or_else(|e| e.into_inner());
        let second = now_ms / 1000;
        if w.second != second {
            *w = CreationWindow { second, count: 0 };
        }
        if w.count >= UNASKED_CREATIONS_PER_S {
            return false;
        }
        w.count += 1;
        true
    }

    /// Records `ip` at `mac` as confirmed reachable, as an answer to
    /// rvsd's own request is (tests and benchmarks seed tables with it);
    /// returns whether the table changed. A static entry stays.
    pub fn learn(&self, ip: impl Into<IpAddr>, mac: MacAddr, now_ms: u64) -> bool {
        let ip = ip.into();
        self.asked(ip, now_ms);
        matches!(
            self.heard(ip, mac, Heard::ArpReply { unicast: true }, now_ms),
            Learned::Created { .. } | Learned::Moved | Learned::Confirmed
        )
    }

    /// Takes what a neighbour said by the table's rules (see the module's
    /// documentation).
    pub fn heard(&self, ip: impl Into<IpAddr>, mac: MacAddr, heard: Heard, now_ms: u64) -> Learned {
        let ip = ip.into();
        let current = self.map.load().get(&ip).copied();
        if let Some(e) = current {
            if e.is_static() {
                return if e.mac == mac {
                    Learned::Unchanged
                } else {
                    Learned::Refused(Refusal::Static)
                };
            }
        }
        let answer = heard.is_answer() && self.is_asked(&ip, now_ms);
        let next = match self.cfg.policy {
            LearnPolicy::SolicitedOnly if !answer => {
                return Learned::Refused(Refusal::NotAnAnswer);
            }
            LearnPolicy::SolicitedOnly => self.take_answer(current, mac, now_ms),
            LearnPolicy::Linux => {
                let live =
                    current.filter(|e| now_ms.saturating_sub(e.confirmed_ms) < self.cfg.expiry_ms);
                match live {
                    // An address rvsd asked for and does not know is
                    // Linux's INCOMPLETE entry: the first answer fills it.
                    None if answer => self.take_answer(None, mac, now_ms),
                    None if heard != Heard::AskedForUs => {
                        return Learned::Refused(Refusal::Unsolicited);
                    }
                    None if !self.may_create_unasked(now_ms) => {
                        return Learned::Refused(Refusal::RateLimited);
                    }
                    None => Next::Create(NeighEntry {
                        mac,
                        confirmed_ms: now_ms,
                        updated_ms: now_ms,
                        stale: true,
                        wanted: false,
                    }),
                    Some(e) => match linux_update(e, mac, heard, now_ms, self.cfg.expiry_ms) {
                        Ok(Some(next)) => next,
                        Ok(None) => {
                            if answer {
                                self.answered(&ip);
                            }
                            return Learned::Unchanged;
                        }
                        Err(r) => return Learned::Refused(r),
                    },
                }
            }
        };
        if answer && !matches!(next, Next::MarkStale(_)) {
            self.answered(&ip);
        }
        self.write(ip, next, now_ms)
    }

    /// An answer to rvsd's request: fills, moves or confirms the entry.
    fn take_answer(&self, current: Option<NeighEntry>, mac: MacAddr, now_ms: u64) -> Next {
        let e = NeighEntry {
            mac,
            confirmed_ms: now_ms,
            updated_ms: now_ms,
            stale: false,
            wanted: true,
        };
        match current {
            None => Next::Create(e),
            Some(old) if old.mac != mac => Next::Move(e),
            Some(old) => Next::Confirm(NeighEntry {
                updated_ms: old.updated_ms,
                ..e
            }),
        }
    }

    /// Writes `next` (a copy of the map); `Created` says how many entries
    /// made room for it.
    fn write(&self, ip: IpAddr, next: Next, now_ms: u64) -> Learned {
        let (entry, outcome) = match next {
            Next::Create(e) => (e, Learned::Created { evicted: 0 }),
            Next::Move(e) => (e, Learned::Moved),
            Next::Confirm(e) => (e, Learned::Confirmed),
            Next::MarkStale(e) => (e, Learned::Refused(Refusal::Locked)),
        };
        let (capacity, expiry) = (self.cfg.capacity, self.cfg.expiry_ms);
        let mut evicted = 0;
        self.map.rcu(|m| {
            let mut m = FxHashMap::clone(m);
            evicted = 0;
            if !m.contains_key(&ip) {
                evicted = make_room(&mut m, capacity, now_ms, expiry);
            }
            m.insert(ip, entry);
            Arc::new(m)
        });
        match outcome {
            Learned::Created { .. } => Learned::Created { evicted },
            o => o,
        }
    }

    /// How many entries the table holds (static ones included).
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.load().is_empty()
    }

    /// Every entry, for display.
    pub fn entries(&self) -> Vec<(IpAddr, NeighEntry)> {
        let mut v: Vec<_> = self.map.load().iter().map(|(k, v)| (*k, *v)).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }
}

/// A write the rules decided on.
#[derive(Debug, Clone, Copy)]
enum Next {
    Create(NeighEntry),
    Move(NeighEntry),
    Confirm(NeighEntry),
    /// The MAC is refused, but the entry turns stale (asked again).
    MarkStale(NeighEntry),
}

/// Linux's `neigh_update` for a valid entry `e` and something heard that
/// is not an answer to an outstanding request: `Ok(None)` when nothing
/// needs writing.
fn linux_update(
    e: NeighEntry,
    mac: MacAddr,
    heard: Heard,
    now_ms: u64,
    expiry_ms: u64,
) -> Result<Option<Next>, Refusal> {
    let unlocked = now_ms > e.updated_ms.saturating_add(LOCKTIME_MS);
    let override_ok = match heard {
        Heard::AskedForUs | Heard::ArpGratuitous => true,
        Heard::ArpReply { .. } | Heard::ArpOther => unlocked,
        Heard::Advert { override_flag, .. } => override_flag,
    };
    let confirms = heard.confirms();
    if mac != e.mac {
        if !override_ok {
            // An advertisement without the override flag for a reachable
            // entry makes it stale: the next packet asks who is right.
            if matches!(heard, Heard::Advert { .. }) && !e.stale {
                return Ok(Some(Next::MarkStale(NeighEntry {
                    stale: true,
                    updated_ms: now_ms,
                    ..e
                })));
            }
            return Err(Refusal::Locked);
        }
        return Ok(Some(Next::Move(NeighEntry {
            mac,
            confirmed_ms: now_ms,
            updated_ms: now_ms,
            stale: !confirms,
            wanted: e.wanted,
        })));
    }
    if !confirms {
        // The same MAC, heard in passing: stale news changes nothing.
        return Ok(None);
    }
    // A confirmation: written when the entry was stale, or when a quarter
    // of the expiry has gone by (so a chatty neighbour costs at most four
    // copies of the map per expiry period).
    let age = now_ms.saturating_sub(e.confirmed_ms);
    if !e.stale && age < expiry_ms / 4 {
        return Ok(None);
    }
    Ok(Some(Next::Confirm(NeighEntry {
        confirmed_ms: now_ms,
        updated_ms: if e.stale { now_ms } else { e.updated_ms },
        stale: false,
        ..e
    })))
}

#[cfg(test)]
mod tests;
