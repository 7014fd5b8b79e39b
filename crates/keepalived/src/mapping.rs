//! keepalived.conf → rvs's service table, in one place: what keepalived's
//! `ipvs_set_srule`/`ipvs_set_drule` send the kernel, as rvs commands.
//!
//! - `lb_algo` is the scheduler (`wlc` when unset); `flag-1..3`,
//!   `sh-port`/`sh-fallback`, `mh-port`/`mh-fallback` are `-b` flags; `ops`
//!   is `-o`.
//! - `persistence_timeout` is `-p` (360 s when given without a value or
//!   implied by `persistence_granularity` or a zero port);
//!   `persistence_granularity` is `-M` (a /32 or /128 otherwise).
//! - `lb_kind` NAT/DR/TUN is `-m`/`-g`/`-i` with the tunnel's type, port
//!   and checksum option.
//! - A dest's port is the real server's with NAT and the service's
//!   otherwise; its weight is what the health state says (the configured
//!   weight, 0 when inhibited, a MISC_CHECK's dynamic weight) and its
//!   thresholds are `uthreshold`/`lthreshold`.

use rvs_ipvs::{DestSpec, FwdMethod, ServiceKey, ServiceSpec};

use crate::config::VirtualServer;

/// The service spec of one of `vs`'s services.
pub fn service_spec(vs: &VirtualServer, key: ServiceKey) -> ServiceSpec {
    ServiceSpec {
        key,
        scheduler: vs.scheduler.clone(),
        sched_flags: vs.sched_flags,
        persistent: vs.persistence,
        netmask: vs.netmask,
        one_packet: vs.one_packet,
    }
}

/// A dest as IPVS gets it.
#[allow(clippy::too_many_arguments)]
pub fn dest_spec(
    addr: std::net::IpAddr,
    dest_port: u16,
    fwd: FwdMethod,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
) -> DestSpec {
    DestSpec {
        addr,
        port: dest_port,
        fwd,
        weight,
        u_threshold,
        l_threshold,
    }
}

#[cfg(test)]
mod tests {
    use crate::config;

    use super::*;

    fn load(text: &str) -> config::Loaded {
        config::load_text(text)
    }

    #[test]
    fn defaults_are_keepalived_s() {
        let l = load(
            "virtual_server 10.0.0.1 80 {\n protocol TCP\n lb_kind DR\n real_server 10.0.0.2 8080 {\n }\n}\n",
        );
        let vs = &l.config.virtual_servers[0];
        let spec = service_spec(vs, vs.services[0]);
        assert_eq!(spec.scheduler, "wlc");
        assert_eq!(spec.persistent, None);
        assert!(spec.netmask.is_full());
        let rs = &vs.real_servers[0];
        // DR: the dest takes the service's port (keepalived resets it).
        assert_eq!((rs.port, rs.dest_port(80), rs.weight), (80, 80, 1));
        let msgs: Vec<String> = l.diags.errors().map(|d| d.to_string()).collect();
        assert!(
            msgs.iter()
                .any(|m| m.ends_with("no scheduler set, setting default 'wlc'")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("ports don't match - resetting")),
            "{msgs:?}"
        );
    }

    #[test]
    fn persistence_and_flags() {
        let l = load(
            "virtual_server 10.0.0.1 443 {\n protocol TCP\n lb_algo sh\n sh-port\n sh-fallback\n flag-3\n lb_kind NAT\n persistence_granularity 255.255.255.0\n real_server 10.0.0.2 8443 {\n weight 3\n uthreshold 100\n lthreshold 10\n }\n}\n",
        );
        assert!(!l.diags.has_errors(), "{:?}", l.diags);
        let vs = &l.config.virtual_servers[0];
        let spec = service_spec(vs, vs.services[0]);
        assert_eq!(spec.persistent, Some(360));
        assert_eq!(
            spec.netmask,
            rvs_ipvs::PersistMask::V4("255.255.255.0".parse().unwrap())
        );
        assert_eq!(spec.sched_flags, 0x08 | 0x10 | 0x20);
        let rs = &vs.real_servers[0];
        assert_eq!(
            (
                rs.dest_port(443),
                rs.fwd,
                rs.weight,
                rs.u_threshold,
                rs.l_threshold
            ),
            (8443, FwdMethod::Masq, 3, 100, 10)
        );
    }

    #[test]
    fn tunnels_udp_ops_and_ipv6() {
        let l = load(
            "virtual_server 2001:db8::10 53 {
  protocol UDP
  ops
  lb_kind TUN type gue port 6080 csum
  real_server 2001:db8::20 53 {
  }
  real_server 2001:db8::21 53 {
    lvs_method DR
  }
}
",
        );
        let errors: Vec<&str> = l.diags.errors().map(|d| d.msg.as_str()).collect();
        assert_eq!(
            errors,
            ["Virtual server [2001:db8::10]:udp:53: no scheduler set, setting default 'wlc'"]
        );
        let vs = &l.config.virtual_servers[0];
        let spec = service_spec(vs, vs.services[0]);
        assert!(spec.one_packet);
        assert!(spec.netmask.is_full());
        assert_eq!(
            vs.real_servers[0].fwd,
            FwdMethod::Tunnel(rvs_ipvs::TunSpec {
                kind: rvs_ipvs::TunKind::Gue,
                port: 6080,
                csum: rvs_ipvs::TunCsum::Csum
            })
        );
        assert_eq!(vs.real_servers[1].fwd, FwdMethod::Route);
        assert_eq!(vs.real_servers[0].name, "[2001:db8::20]:udp:53");
    }

    #[test]
    fn bad_tunnel_options_and_deprecated_keywords_are_reported() {
        let l = load(
            "virtual_server 10.0.0.1 80 {
  protocol TCP
  lb_algo rr
  lb_kind TUN type gue
  real_server 10.0.0.2 80 {
    HTTP_GET {
      nb_get_retry 4
      url {
        path /
        status_code 200-204 999
      }
    }
  }
}
",
        );
        let errors: Vec<String> = l.diags.errors().map(|d| d.msg.clone()).collect();
        assert!(
            errors.contains(&"gue tunnels require port, otherwise cannot have port.".to_string()),
            "{errors:?}"
        );
        assert!(errors.contains(&"nb_get_retry is deprecated - please use 'retry'".to_string()));
        assert!(errors.contains(&"Invalid HTTP_GET status code '999'".to_string()));
        // lb_kind was refused, so keepalived's NAT default applies.
        assert!(errors
            .iter()
            .any(|e| e.ends_with("no forwarding method set, setting default NAT")));
        let ck = &l.config.virtual_servers[0].real_servers[0].checkers[0];
        assert_eq!(ck.retry, 4);
        let crate::config::CheckKind::Http(h) = &ck.kind else {
            panic!()
        };
        assert!(h.urls[0].status.contains(204) && !h.urls[0].status.contains(205));
        // HTTP_GET's default delay before retry is 3 s; the loop 60 s.
        assert_eq!(ck.delay_before_retry, std::time::Duration::from_secs(3));
        assert_eq!(ck.delay_loop, std::time::Duration::from_secs(60));
    }
}
