//! What a director may announce to its routers: the VIPs it can serve,
//! unless it is draining. rvs-announce asks rvsd for this and turns it into
//! BGP routes (see ARCHITECTURE.md, "Several directors").

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::proto::Listing;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// `rvsadm --drain`: announce nothing, keep forwarding what arrives so
    /// that existing connections finish.
    pub draining: bool,
    /// The VIPs with at least one service that has an available real server
    /// (weight above 0), sorted, each once.
    pub ready: Vec<IpAddr>,
}

impl Announcement {
    pub fn of(listing: &Listing, draining: bool) -> Announcement {
        let mut ready: Vec<IpAddr> = listing
            .services
            .iter()
            .filter(|s| s.dests.iter().any(|d| d.spec.weight > 0))
            .map(|s| s.spec.key.addr)
            .collect();
        ready.sort();
        ready.dedup();
        Announcement { draining, ready }
    }

    /// What to announce now.
    pub fn announced(&self) -> &[IpAddr] {
        if self.draining {
            &[]
        } else {
            &self.ready
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{DestView, ServiceView};
    use rvs_ipvs::{DestSpec, FwdMethod, PersistMask, Protocol, ServiceKey, ServiceSpec};

    fn service(vip: &str, port: u16, weights: &[u32]) -> ServiceView {
        ServiceView {
            spec: ServiceSpec {
                key: ServiceKey {
                    protocol: Protocol::Tcp,
                    addr: vip.parse().unwrap(),
                    port,
                },
                scheduler: "mh".into(),
                sched_flags: 0,
                persistent: None,
                netmask: PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
                one_packet: false,
            },
            dests: weights
                .iter()
                .enumerate()
                .map(|(i, &weight)| DestView {
                    spec: DestSpec {
                        addr: format!("192.168.1.{}", 221 + i).parse().unwrap(),
                        port,
                        fwd: FwdMethod::Route,
                        weight,
                        u_threshold: 0,
                        l_threshold: 0,
                    },
                    active: 0,
                    inactive: 0,
                    persistent: 0,
                    stats: Default::default(),
                    rates: Default::default(),
                })
                .collect(),
            stats: Default::default(),
            rates: Default::default(),
        }
    }

    fn listing(services: Vec<ServiceView>) -> Listing {
        Listing {
            conn_table_size: 4096,
            services,
        }
    }

    #[test]
    fn a_vip_is_ready_when_one_of_its_services_has_a_real_server_with_weight() {
        let l = listing(vec![
            // No real server, all quiesced, one with weight: only the last
            // VIP, and the second service of the first VIP, count.
            service("10.0.0.3", 80, &[]),
            service("10.0.0.2", 80, &[0, 0]),
            service("10.0.0.1", 443, &[0, 3]),
            service("10.0.0.1", 80, &[0]),
        ]);
        let a = Announcement::of(&l, false);
        assert_eq!(a.ready, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(a.announced(), a.ready.as_slice());
    }

    #[test]
    fn ready_vips_are_sorted_and_named_once() {
        let l = listing(vec![
            service("10.0.0.9", 80, &[1]),
            service("10.0.0.1", 80, &[1]),
            service("10.0.0.9", 443, &[1]),
        ]);
        let a = Announcement::of(&l, false);
        let want: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.9".parse().unwrap()];
        assert_eq!(a.ready, want);
    }

    #[test]
    fn a_draining_director_announces_nothing_but_still_says_what_is_ready() {
        let a = Announcement::of(&listing(vec![service("10.0.0.1", 80, &[1])]), true);
        assert!(a.announced().is_empty());
        assert_eq!(a.ready.len(), 1);
    }
}
