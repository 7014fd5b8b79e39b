//! The connection sync daemon's settings: what `rvsadm --start-daemon`
//! asks for and what `rvsadm -L --daemon` shows, with the kernel's
//! defaults and limits (`start_sync_thread` in ip_vs_sync.c, checked
//! against a real kernel: oracle/scenarios/cli/sync-daemon.toml).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// A director sends its connections as master and takes its peers' as
/// backup; one box may be both at once (active-active).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRole {
    Master,
    Backup,
}

impl SyncRole {
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }
}

/// `--start-daemon ROLE` and its options, as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonRequest {
    pub role: SyncRole,
    /// `--mcast-interface`: the interface the messages leave and arrive on.
    pub mcast_ifn: String,
    /// `--syncid`: a master's messages carry it; a backup takes only its
    /// own (0: every one).
    pub syncid: u8,
    /// `--sync-maxlen`, `--mcast-group`, `--mcast-port`, `--mcast-ttl`.
    pub maxlen: Option<u16>,
    pub group: Option<IpAddr>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
}

/// A running daemon's settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonView {
    pub role: SyncRole,
    pub mcast_ifn: String,
    pub syncid: u8,
    pub maxlen: u16,
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
}

/// The largest message a master sends by default and the smallest buffer a
/// backup reads into: the kernel's, whatever the link.
const DEFAULT_MTU: u32 = 1500;
const BACKUP_MIN_MAXLEN: u32 = 1024;

impl DaemonRequest {
    /// The settings the kernel would run with on a link of `link_mtu`
    /// bytes: group 224.0.0.81, port 8848, TTL 1 by default; a master's
    /// messages at most 1500 bytes of IP by default (whatever the link),
    /// a backup's buffer the link's MTU (at least 1500); a given
    /// `--sync-maxlen` kept within 1 (backup: 1024) and 65535 less the
    /// headers.
    pub fn resolve(&self, link_mtu: u32) -> DaemonView {
        let group = self.group.unwrap_or(IpAddr::V4(rvs_sync_group()));
        let headers = if group.is_ipv6() { 40 + 8 } else { 20 + 8 };
        let (mtu, min) = match self.role {
            SyncRole::Master => (DEFAULT_MTU, 1),
            SyncRole::Backup => (link_mtu.clamp(DEFAULT_MTU, 65535), BACKUP_MIN_MAXLEN),
        };
        let maxlen = match self.maxlen {
            Some(m) => (m as u32).clamp(min, 65535 - headers),
            None => mtu - headers,
        };
        DaemonView {
            role: self.role,
            mcast_ifn: self.mcast_ifn.clone(),
            syncid: self.syncid,
            maxlen: maxlen as u16,
            group,
            port: self.port.unwrap_or(8848),
            ttl: self.ttl.unwrap_or(1),
        }
    }
}

/// `IP_VS_SYNC_GROUP`.
fn rvs_sync_group() -> Ipv4Addr {
    Ipv4Addr::new(224, 0, 0, 81)
}

/// One line of `-L --daemon`, as ipvsadm prints it.
pub fn line(v: &DaemonView) -> String {
    format!(
        "{} sync daemon (mcast={}, syncid={}, maxlen={}, group={}, port={}, ttl={})\n",
        v.role.name(),
        v.mcast_ifn,
        v.syncid,
        v.maxlen,
        v.group,
        v.port,
        v.ttl
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(role: SyncRole) -> DaemonRequest {
        DaemonRequest {
            role,
            mcast_ifn: "eth0".into(),
            syncid: 0,
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
        }
    }

    /// What a Debian 6.1 kernel showed (`ipvsadm -L --daemon`) for the
    /// same settings on a 1500-byte dummy interface.
    #[test]
    fn defaults_and_limits_are_the_kernels() {
        let m = req(SyncRole::Master).resolve(1500);
        assert_eq!(
            line(&m),
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        );
        let b = DaemonRequest {
            syncid: 7,
            maxlen: Some(1400),
            group: Some("224.0.0.99".parse().unwrap()),
            port: Some(9000),
            ttl: Some(3),
            ..req(SyncRole::Backup)
        };
        assert_eq!(
            line(&b.resolve(1500)),
            "backup sync daemon (mcast=eth0, syncid=7, maxlen=1400, group=224.0.0.99, port=9000, ttl=3)\n"
        );
        let small = |role, m| {
            DaemonRequest {
                maxlen: Some(m),
                ..req(role)
            }
            .resolve(1500)
            .maxlen
        };
        assert_eq!(small(SyncRole::Backup, 10), 1024);
        assert_eq!(small(SyncRole::Master, 100), 100);
        assert_eq!(small(SyncRole::Master, 65507), 65507);
        let v6 = DaemonRequest {
            group: Some("ff02::1".parse().unwrap()),
            ..req(SyncRole::Master)
        };
        // The master's default ignores the link (1400 here).
        assert_eq!(v6.resolve(1400).maxlen, 1452);
        // A backup reads up to the link's MTU, 1500 at least.
        assert_eq!(req(SyncRole::Backup).resolve(9000).maxlen, 8972);
        assert_eq!(req(SyncRole::Backup).resolve(1400).maxlen, 1472);
    }
}
