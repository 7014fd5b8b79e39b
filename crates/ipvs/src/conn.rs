//! A worker's connection table: which real server each flow was given, its
//! TCP state, and when it expires.
//!
//! Entries live in a slab indexed by a hash map, so that expiry can sweep the
//! slab a few slots at a time from the poll loop and never stalls a worker.

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::dest::{Dest, DestShared};
use crate::persist::Template;
use crate::tcp_state::{next_state, Direction, Event, TcpState, Timeouts};
use crate::types::{FwdMethod, Protocol};

/// A flow as the client sent it: protocol, client and virtual endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
}

/// A NAT connection as its replies carry it: the real server's endpoint and
/// the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutKey {
    pub protocol: Protocol,
    pub daddr: IpAddr,
    pub dport: u16,
    pub caddr: IpAddr,
    pub cport: u16,
}

/// One tracked connection.
#[derive(Debug)]
pub struct Conn {
    pub key: FlowKey,
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwd: FwdMethod,
    pub state: TcpState,
    /// Counted in the dest's activeconns (else inactconns).
    active: bool,
    /// DR/TUN: the director never sees replies, so INPUT_ONLY applies.
    no_output: bool,
    /// When it expires, in the table's clock (milliseconds).
    pub expires_ms: u64,
    dest: Arc<DestShared>,
    /// The persistence template that created it, if any.
    template: Option<Arc<Template>>,
}

/// Where a new connection goes: a dest, directly or through a template.
#[derive(Debug, Clone)]
pub struct Binding {
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwd: FwdMethod,
    pub dest: Arc<DestShared>,
    pub template: Option<Arc<Template>>,
}

impl Binding {
    pub fn to_dest(d: &Dest) -> Binding {
        Binding {
            daddr: d.spec.addr,
            dport: d.spec.port,
            fwd: d.spec.fwd,
            dest: d.shared.clone(),
            template: None,
        }
    }
}

impl Conn {
    /// The key of this connection's replies, for NAT.
    pub fn out_key(&self) -> OutKey {
        OutKey {
            protocol: self.key.protocol,
            daddr: self.daddr,
            dport: self.dport,
            caddr: self.key.caddr,
            cport: self.key.cport,
        }
    }

    pub fn dest(&self) -> &Arc<DestShared> {
        &self.dest
    }

    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// A handle to a table slot; valid until the entry is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef(u32);

/// The table is at its configured size; the new flow is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("connection table full")]
pub struct TableFull;

/// One worker's connections. Not shared: the worker that owns it is the only
/// reader and writer, so no locks are taken.
#[derive(Debug)]
pub struct ConnTable {
    index: FxHashMap<FlowKey, u32>,
    /// NAT connections by their replies' key.
    out_index: FxHashMap<OutKey, u32>,
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    capacity: usize,
    sweep_at: usize,
    pub timeouts: Timeouts,
}

impl ConnTable {
    pub fn new(capacity: usize, timeouts: Timeouts) -> ConnTable {
        ConnTable {
            index: FxHashMap::default(),
            out_index: FxHashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            capacity,
            sweep_at: 0,
            timeouts,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<ConnRef> {
        self.index.get(key).map(|&i| ConnRef(i))
    }

    /// The NAT connection a reply from a real server belongs to.
    #[inline]
    pub fn lookup_out(&self, key: &OutKey) -> Option<ConnRef> {
        if self.out_index.is_empty() {
            return None;
        }
        self.out_index.get(key).map(|&i| ConnRef(i))
    }

    #[inline]
    pub fn get(&self, r: ConnRef) -> &Conn {
        self.slots[r.0 as usize].as_ref().expect("live conn ref")
    }

    /// Creates the connection of a newly scheduled flow, bound to `dest`.
    pub fn insert(&mut self, key: FlowKey, dest: &Dest, now_ms: u64) -> Result<ConnRef, TableFull> {
        self.insert_bound(key, Binding::to_dest(dest), now_ms)
    }

    /// Creates a connection as `binding` says (a template's dest, say).
    pub fn insert_bound(
        &mut self,
        key: FlowKey,
        b: Binding,
        now_ms: u64,
    ) -> Result<ConnRef, TableFull> {
        if self.index.len() >= self.capacity {
            return Err(TableFull);
        }
        b.dest.bind_conn();
        let no_output = b.fwd != FwdMethod::Masq;
        let timeout = match key.protocol {
            Protocol::Udp => self.timeouts.udp,
            _ => self.timeouts.tcp_timeout(TcpState::None),
        };
        let conn = Conn {
            key,
            daddr: b.daddr,
            dport: b.dport,
            fwd: b.fwd,
            state: TcpState::None,
            active: false,
            no_output,
            expires_ms: now_ms + timeout as u64 * 1000,
            dest: b.dest,
            template: b.template,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(conn);
                i
            }
            None => {
                self.slots.push(Some(conn));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        let c = self.slots[slot as usize].as_ref().expect("just inserted");
        if c.fwd == FwdMethod::Masq {
            self.out_index.insert(c.out_key(), slot);
        }
        Ok(ConnRef(slot))
    }

    /// Removes the connection and releases its dest counters.
    pub fn remove(&mut self, r: ConnRef) {
        if let Some(c) = self.slots[r.0 as usize].take() {
            self.index.remove(&c.key);
            if c.fwd == FwdMethod::Masq {
                self.out_index.remove(&c.out_key());
            }
            c.dest.unbind_conn(c.active);
            if let Some(t) = &c.template {
                t.detach();
            }
            self.free.push(r.0);
        }
    }

    /// A TCP segment of this connection passed: step the state machine, move
    /// the dest's active/inactive counters, re-arm the timer.
    pub fn on_tcp(&mut self, r: ConnRef, output: bool, event: Option<Event>, now_ms: u64) {
        let timeouts = self.timeouts;
        let c = self.slots[r.0 as usize].as_mut().expect("live conn ref");
        let dir = if output {
            c.no_output = false;
            Direction::Output
        } else if c.no_output {
            Direction::InputOnly
        } else {
            Direction::Input
        };
        let new = next_state(dir, c.state, event);
        if new != c.state {
            let now_active = new == TcpState::Established;
            if now_active != c.active {
                c.dest.set_conn_active(now_active);
                c.active = now_active;
            }
            c.state = new;
        }
        c.expires_ms = now_ms + timeouts.tcp_timeout(new) as u64 * 1000;
    }

    /// A UDP datagram of this connection passed: re-arm the timer.
    pub fn on_udp(&mut self, r: ConnRef, now_ms: u64) {
        let t = self.timeouts.udp as u64 * 1000;
        let c = self.slots[r.0 as usize].as_mut().expect("live conn ref");
        c.expires_ms = now_ms + t;
    }

    /// Looks at up to `budget` slots from where the last call stopped and
    /// removes the expired connections among them; returns how many.
    pub fn expire_some(&mut self, now_ms: u64, budget: usize) -> usize {
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            if self.sweep_at >= n {
                self.sweep_at = 0;
            }
            let i = self.sweep_at;
            self.sweep_at += 1;
            if matches!(&self.slots[i], Some(c) if c.expires_ms <= now_ms) {
                self.remove(ConnRef(i as u32));
                removed += 1;
            }
        }
        removed
    }

    /// Every live connection (for listing).
    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::DestSpec;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn dest() -> Dest {
        let spec = DestSpec {
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
        };
        Dest {
            spec,
            last_weight: 1,
            shared: DestShared::new(&spec),
        }
    }

    fn key(cport: u16) -> FlowKey {
        FlowKey {
            protocol: Protocol::Tcp,
            caddr: "192.168.1.50".parse().unwrap(),
            cport,
            vaddr: "192.168.1.10".parse().unwrap(),
            vport: 80,
        }
    }

    #[test]
    fn counters_follow_dr_handshake_and_expiry() {
        let d = dest();
        let mut t = ConnTable::new(10, Timeouts::default());
        let r = t.insert(key(1), &d, 0).unwrap();
        assert_eq!((d.shared.active(), d.shared.inactive()), (0, 1));
        t.on_tcp(r, false, Some(Event::Syn), 0);
        assert_eq!(t.get(r).state, TcpState::SynRecv);
        t.on_tcp(r, false, Some(Event::Ack), 0);
        assert_eq!(t.get(r).state, TcpState::Established);
        assert_eq!((d.shared.active(), d.shared.inactive()), (1, 0));
        t.on_tcp(r, false, Some(Event::Fin), 1000);
        assert_eq!(t.get(r).state, TcpState::FinWait);
        assert_eq!((d.shared.active(), d.shared.inactive()), (0, 1));
        // FIN_WAIT lasts 120 s.
        assert_eq!(t.expire_some(120_999, 100), 0);
        assert_eq!(t.expire_some(121_000, 100), 1);
        assert!(t.is_empty());
        assert_eq!((d.shared.active(), d.shared.inactive()), (0, 0));
    }

    #[test]
    fn full_table_refuses() {
        let d = dest();
        let mut t = ConnTable::new(2, Timeouts::default());
        t.insert(key(1), &d, 0).unwrap();
        t.insert(key(2), &d, 0).unwrap();
        assert_eq!(t.insert(key(3), &d, 0), Err(TableFull));
        assert_eq!(d.shared.inactive(), 2, "a refused flow is not counted");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u64),
        Lookup(u16),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..64, 0u64..5000).prop_map(|(p, t)| Op::Insert(p, t)),
            (0u16..64).prop_map(Op::Lookup),
            (0u64..5000).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Insert, lookup and full expiry sweeps agree with a HashMap model.
        #[test]
        fn matches_hashmap_model(ops in proptest::collection::vec(op(), 1..200)) {
            let d = dest();
            let mut t = ConnTable::new(1000, Timeouts::default());
            let mut model: HashMap<u16, u64> = HashMap::new();
            let mut now = 0u64;
            for o in ops {
                match o {
                    Op::Insert(p, dt) => {
                        now += dt;
                        if t.lookup(&key(p)).is_none() {
                            t.insert(key(p), &d, now).unwrap();
                            model.insert(p, now + 2000); // state NONE: 2 s
                        }
                    }
                    Op::Lookup(p) => {
                        prop_assert_eq!(t.lookup(&key(p)).is_some(), model.contains_key(&p));
                    }
                    Op::Expire(dt) => {
                        now += dt;
                        let cap = t.slots.len();
                        t.expire_some(now, cap);
                        model.retain(|_, exp| *exp > now);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(d.shared.inactive() as usize, model.len());
            }
        }
    }
}
