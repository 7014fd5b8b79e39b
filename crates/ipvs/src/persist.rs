//! Persistence templates (`-p`, `-M`): a client network that was sent to a
//! real server keeps going there while the template lives.
//!
//! A template is keyed by `(protocol, client address & netmask, VIP, vport)`
//! (vport 0 for port-zero and FTP services, as the kernel does) and points at
//! the dest first chosen. Every connection created through it re-arms its
//! timeout and is "controlled" by it; a template with controlled connections
//! does not expire. Templates are shared by all workers, since a client's
//! connections may arrive on any of them; they are touched only when a new
//! connection of a persistent service is scheduled, never for established
//! traffic.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use dashmap::DashMap;

use crate::dest::{Dest, DestShared};
use crate::types::{FwdMethod, PersistMask, Protocol};

/// What a template is found by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub protocol: Protocol,
    /// The client address with the service's netmask applied.
    pub cnet: IpAddr,
    pub vaddr: IpAddr,
    pub vport: u16,
}

impl TemplateKey {
    /// The kernel's template key for a packet from `caddr` to a service at
    /// `vaddr:svc_port` with persistence mask `mask`.
    pub fn new(
        protocol: Protocol,
        caddr: IpAddr,
        mask: PersistMask,
        vaddr: IpAddr,
        svc_port: u16,
    ) -> Self {
        // FTP (port 21) templates cover the data connections too: vport 0.
        let vport = if svc_port == 21 { 0 } else { svc_port };
        TemplateKey {
            protocol,
            cnet: mask.apply(caddr),
            vaddr,
            vport,
        }
    }
}

/// One template: where the client network goes.
#[derive(Debug)]
pub struct Template {
    pub daddr: IpAddr,
    pub dport: u16,
    pub fwd: FwdMethod,
    pub dest: Arc<DestShared>,
    expires_ms: AtomicU64,
    controlled: AtomicU32,
    /// A connection it controls was established (TCP) or answered (UDP):
    /// `-Lc` shows ASSURED instead of NONE.
    assured: AtomicBool,
}

impl Template {
    /// A connection is created through the template: count it and re-arm.
    pub fn attach(&self, now_ms: u64, timeout_s: u32) {
        self.controlled.fetch_add(1, Relaxed);
        self.expires_ms
            .fetch_max(now_ms + timeout_s as u64 * 1000, Relaxed);
    }

    /// A connection created through the template went away.
    pub fn detach(&self) {
        self.controlled.fetch_sub(1, Relaxed);
    }

    /// A packet of a one-packet service used the template (no connection).
    pub fn touch(&self, now_ms: u64, timeout_s: u32) {
        self.expires_ms
            .fetch_max(now_ms + timeout_s as u64 * 1000, Relaxed);
    }

    pub fn assure(&self) {
        if !self.assured.load(Relaxed) {
            self.assured.store(true, Relaxed);
        }
    }

    /// The template's state as `-Lc` names it.
    pub fn state_name(&self) -> &'static str {
        if self.assured.load(Relaxed) {
            "ASSURED"
        } else {
            "NONE"
        }
    }

    pub fn controlled(&self) -> u32 {
        self.controlled.load(Relaxed)
    }

    pub fn expires_ms(&self) -> u64 {
        self.expires_ms.load(Relaxed)
    }
}

/// All templates of the director.
#[derive(Debug, Default)]
pub struct Templates {
    map: DashMap<TemplateKey, Arc<Template>>,
}

impl Templates {
    pub fn new() -> Templates {
        Templates::default()
    }

    /// The live template for `key`, if its dest is still in its service (a
    /// quiesced dest still counts, as in the kernel's default).
    ///
    /// A template whose dest was removed is dropped here. Several workers
    /// (and the sweep) may find it void at once: only the one that takes it
    /// out of the map counts its dest's `persistconns` down, and a fresh
    /// template another worker put under the same key meanwhile stays.
    pub fn get(&self, key: &TemplateKey) -> Option<Arc<Template>> {
        let t = self.map.get(key)?.clone();
        if t.dest.is_removed() {
            if let Some((_, gone)) = self.map.remove_if(key, |_, x| Arc::ptr_eq(x, &t)) {
                gone.dest.persistconns.fetch_sub(1, Relaxed);
            }
            return None;
        }
        Some(t)
    }

    /// Creates the template for `key` pointing at `dest`, unless another
    /// worker created one first, in which case that one is returned.
    pub fn create(&self, key: TemplateKey, dest: &Dest) -> Arc<Template> {
        self.map
            .entry(key)
            .or_insert_with(|| {
                dest.shared.persistconns.fetch_add(1, Relaxed);
                Arc::new(Template {
                    daddr: dest.spec.addr,
                    dport: dest.spec.port,
                    fwd: dest.spec.fwd,
                    dest: dest.shared.clone(),
                    expires_ms: AtomicU64::new(0),
                    controlled: AtomicU32::new(0),
                    assured: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Removes expired templates that control no connection; returns how
    /// many. Called from the control thread, off the fast path.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let mut n = 0;
        self.map.retain(|_, t| {
            let keep = t.controlled() > 0 || t.expires_ms() > now_ms;
            if !keep {
                t.dest.persistconns.fetch_sub(1, Relaxed);
                n += 1;
            }
            keep
        });
        n
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every template (for listings).
    pub fn snapshot(&self) -> Vec<(TemplateKey, Arc<Template>)> {
        self.map
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::DestSpec;

    fn dest(a: &str) -> Dest {
        let spec = DestSpec {
            addr: a.parse().unwrap(),
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

    #[test]
    fn key_masks_client_and_zeroes_ftp_port() {
        let k = TemplateKey::new(
            Protocol::Tcp,
            "192.168.1.77".parse().unwrap(),
            PersistMask::V4("255.255.255.0".parse().unwrap()),
            "10.0.0.1".parse().unwrap(),
            21,
        );
        assert_eq!(k.cnet, "192.168.1.0".parse::<IpAddr>().unwrap());
        assert_eq!(k.vport, 0);
        assert_eq!(
            PersistMask::V6Prefix(64).apply("2001:db8::1:2".parse().unwrap()),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
        // Non-contiguous masks apply bit by bit, as in the kernel.
        assert_eq!(
            PersistMask::V4("255.255.0.255".parse().unwrap()).apply("10.1.2.3".parse().unwrap()),
            "10.1.0.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn lives_while_controlled_then_expires() {
        let t = Templates::new();
        let d = dest("10.0.0.1");
        let key = TemplateKey::new(
            Protocol::Tcp,
            "1.2.3.4".parse().unwrap(),
            PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            "10.0.0.9".parse().unwrap(),
            80,
        );
        let tpl = t.create(key, &d);
        assert_eq!(d.shared.persistconns.load(Relaxed), 1);
        tpl.attach(0, 360);
        assert_eq!(t.sweep(400_000), 0, "a controlled template stays");
        tpl.detach();
        assert_eq!(t.sweep(359_999), 0);
        assert_eq!(t.sweep(360_000), 1);
        assert!(t.get(&key).is_none());
        assert_eq!(d.shared.persistconns.load(Relaxed), 0);
    }

    #[test]
    fn removed_dest_invalidates_its_templates() {
        let t = Templates::new();
        let d = dest("10.0.0.1");
        let key = TemplateKey::new(
            Protocol::Udp,
            "1.2.3.4".parse().unwrap(),
            PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            "10.0.0.9".parse().unwrap(),
            53,
        );
        t.create(key, &d);
        assert!(t.get(&key).is_some());
        d.shared.mark_removed();
        assert!(t.get(&key).is_none());
        assert!(t.is_empty());
    }

    /// Two workers (and the sweep) meet a template of a removed server at
    /// the same time: it is dropped, and its server's persistconns counted
    /// down, exactly once.
    #[test]
    fn racing_workers_count_a_void_template_down_once() {
        let key = TemplateKey::new(
            Protocol::Tcp,
            "1.2.3.4".parse().unwrap(),
            PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            "10.0.0.9".parse().unwrap(),
            80,
        );
        let t = Arc::new(Templates::new());
        let d = dest("10.0.0.1");
        let rounds = 10_000;
        // The three racers and this thread, which sets each round up.
        let start = Arc::new(std::sync::Barrier::new(4));
        let racers: Vec<_> = (0..3)
            .map(|i| {
                let (t, start) = (t.clone(), start.clone());
                std::thread::spawn(move || {
                    for _ in 0..rounds {
                        start.wait();
                        if i == 2 {
                            t.sweep(u64::MAX);
                        } else {
                            assert!(t.get(&key).is_none());
                        }
                        start.wait();
                    }
                })
            })
            .collect();
        for round in 0..rounds {
            d.shared.mark_restored();
            t.create(key, &d);
            d.shared.mark_removed();
            start.wait();
            start.wait();
            assert_eq!(
                d.shared.persistconns.load(Relaxed),
                0,
                "round {round}: counted down once"
            );
            assert!(t.is_empty());
        }
        for r in racers {
            r.join().unwrap();
        }
    }
}
