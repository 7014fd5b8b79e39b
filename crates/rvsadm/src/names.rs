//! Name lookups for listings without `-n`, and service names for ports.

use std::net::IpAddr;

use rvs_control_proto::format::Names;
use rvs_ipvs::Protocol;

/// Resolves like ipvsadm without `-n`: reverse DNS for hosts, /etc/services
/// for ports; numbers when there is no name.
pub struct Resolving;

impl Names for Resolving {
    fn host(&self, addr: IpAddr) -> String {
        dns_lookup::lookup_addr(&addr).unwrap_or_else(|_| addr.to_string())
    }

    fn port(&self, port: u16, protocol: Protocol) -> String {
        service_name(port, protocol).unwrap_or_else(|| port.to_string())
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

/// An entry of /etc/services: (name and aliases, port, protocol).
type ServiceEntry = (Vec<String>, u16, String);

/// Entries of /etc/services, read once per process (a listing without `-n`
/// asks for every port it prints).
fn services() -> &'static [ServiceEntry] {
    static SERVICES: std::sync::OnceLock<Vec<ServiceEntry>> = std::sync::OnceLock::new();
    SERVICES.get_or_init(|| {
        let Ok(text) = std::fs::read_to_string("/etc/services") else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| {
                let l = l.split('#').next()?;
                let mut w = l.split_whitespace();
                let name = w.next()?;
                let (port, proto) = w.next()?.split_once('/')?;
                let port = port.parse().ok()?;
                let mut names = vec![name.to_string()];
                names.extend(w.map(String::from));
                Some((names, port, proto.to_string()))
            })
            .collect()
    })
}

/// The port a service name stands for (`-t 10.0.0.1:http`).
pub fn service_port(name: &str, protocol: Protocol) -> Option<u16> {
    let p = proto_name(protocol);
    services()
        .iter()
        .find(|(names, _, proto)| proto == p && names.iter().any(|n| n == name))
        .map(|(_, port, _)| *port)
}

fn service_name(port: u16, protocol: Protocol) -> Option<String> {
    let p = proto_name(protocol);
    services()
        .iter()
        .find(|(_, n, proto)| *n == port && proto == p)
        .map(|(names, _, _)| names[0].clone())
}
