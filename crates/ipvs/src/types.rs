//! Identifiers shared by the model, the control protocol and the dataplane.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A virtual service's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// As ipvsadm prints it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// `-M`, the persistence mask, as the kernel keeps it: for IPv4 any 32-bit
/// mask (ipvsadm takes non-contiguous ones like 255.255.0.255 and the kernel
/// applies them bit by bit), for IPv6 a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PersistMask {
    V4(std::net::Ipv4Addr),
    V6Prefix(u8),
}

impl PersistMask {
    /// No grouping: every client address on its own.
    pub fn full(addr: IpAddr) -> PersistMask {
        match addr {
            IpAddr::V4(_) => PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            IpAddr::V6(_) => PersistMask::V6Prefix(128),
        }
    }

    pub fn is_full(self) -> bool {
        match self {
            PersistMask::V4(m) => m == std::net::Ipv4Addr::BROADCAST,
            PersistMask::V6Prefix(p) => p >= 128,
        }
    }

    /// `addr` with the mask applied (a mask of the other family leaves it).
    pub fn apply(self, addr: IpAddr) -> IpAddr {
        match (self, addr) {
            (PersistMask::V4(m), IpAddr::V4(a)) => IpAddr::V4((u32::from(a) & u32::from(m)).into()),
            (PersistMask::V6Prefix(p), IpAddr::V6(a)) => {
                IpAddr::V6((u128::from(a) & prefix_mask_v6(p)).into())
            }
            _ => addr,
        }
    }
}

/// The mask of an IPv6 prefix `len` bits long (a longer one is taken as
/// 128 bits). The one place prefix masks are made, for both families.
#[inline]
pub fn prefix_mask_v6(len: u8) -> u128 {
    // A shift by the full width is no shift: /0 is the `None` case.
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// The mask of an IPv4 prefix `len` bits long (a longer one is taken as
/// 32 bits): the top of the IPv6 mask of the same length.
#[inline]
pub fn prefix_mask_v4(len: u8) -> u32 {
    (prefix_mask_v6(len.min(32)) >> 96) as u32
}

/// Identifies a virtual service: protocol, virtual address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.name(),
            fmt_addr_port(self.addr, self.port)
        )
    }
}

/// `a.b.c.d:port` or `[v6]:port`, as ipvsadm writes addresses.
pub fn fmt_addr_port(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Identifies a real server within a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_addr_port(self.addr, self.port))
    }
}

/// The encapsulation of a tunnelled real server (`--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TunKind {
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to `port`.
    Gue,
    Gre,
}

/// Checksum option of GUE/GRE tunnels (`--tun-nocsum/--tun-csum/--tun-remcsum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TunCsum {
    #[default]
    None,
    Csum,
    /// Remote checksum offload (GUE only).
    RemCsum,
}

/// A tunnel's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct TunSpec {
    pub kind: TunKind,
    /// GUE's UDP destination port (`--tun-port`); 0 otherwise.
    pub port: u16,
    pub csum: TunCsum,
}

impl TunSpec {
    /// The `TunnelInfo` column of `ipvsadm -L --tun-info`.
    pub fn info(&self) -> String {
        let c = match self.csum {
            TunCsum::None => "-c",
            TunCsum::Csum => "+c",
            TunCsum::RemCsum => "r+c",
        };
        match self.kind {
            TunKind::Ipip => "ipip".into(),
            TunKind::Gue => format!("gue:{}:{c}", self.port),
            TunKind::Gre => format!("gre:{c}"),
        }
    }
}

/// How packets reach a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum FwdMethod {
    /// NAT (`-m`).
    Masq,
    /// The director itself (ipvsadm shows it for local real servers).
    Local,
    /// IP-in-IP and friends (`-i`).
    Tunnel(TunSpec),
    /// Direct routing (`-g`), the default.
    #[default]
    Route,
}

impl FwdMethod {
    /// The `Forward` column of `ipvsadm -L`.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel(_) => "Tunnel",
            FwdMethod::Route => "Route",
        }
    }
}

/// ipvsadm's address comparison for sorting: the host-order words are
/// subtracted as u32 and the difference read as i32, per 32-bit word. This is
/// not a total order for addresses more than 2^31 apart (192.168.0.1 sorts
/// before 10.0.0.1), and ipvsadm users see exactly that order.
pub fn ipvsadm_addr_cmp(a: IpAddr, b: IpAddr) -> Ordering {
    fn words(a: IpAddr) -> Vec<u32> {
        match a {
            IpAddr::V4(v) => vec![u32::from(v)],
            IpAddr::V6(v) => v
                .octets()
                .chunks(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    }
    for (x, y) in words(a).into_iter().zip(words(b)) {
        let d = x.wrapping_sub(y) as i32;
        if d != 0 {
            return d.cmp(&0);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against masks written out bit by bit: `len` ones from the top.
    #[test]
    fn prefix_masks_have_len_leading_ones() {
        for len in 0..=u8::MAX {
            let ones4 = u32::from(len.min(32));
            let want4 = (0..ones4).fold(0u32, |m, i| m | 1 << (31 - i));
            assert_eq!(prefix_mask_v4(len), want4, "/{len}");
            let ones6 = u32::from(len.min(128));
            let want6 = (0..ones6).fold(0u128, |m, i| m | 1 << (127 - i));
            assert_eq!(prefix_mask_v6(len), want6, "/{len}");
        }
        assert_eq!(prefix_mask_v4(24), 0xffff_ff00);
        assert_eq!(prefix_mask_v6(64), u128::MAX << 64);
    }
}
