//! Which settings a reload applies, and what it says about the others.
//!
//! The timeouts, the SYN-flood defence and the rules file change live. Everything else is fixed at
//! start: ports and their addresses (the EAL probed them), lcores (workers
//! are launched on them), memory and buffers (the EAL reserved them), the
//! connection table's size (preallocated), the control socket, routes,
//! neighbours and the idle policy (copied into each worker). A reload
//! reports each such change and leaves it alone.

use std::collections::BTreeMap;

use super::Config;

/// The keys a reload applies.
pub const LIVE: &[&str] = &[
    "connections.syn_recv_timeout_s",
    "connections.tcp_timeout_s",
    "connections.tcp_fin_timeout_s",
    "connections.udp_timeout_s",
    "defense.amemthresh",
    "defense.am_droprate",
    "defense.drop_entry",
    "defense.drop_packet",
    "defense.secure_tcp",
    "defense.secure_tcp_syn_timeout_s",
    "defense.reclaim_half_open",
    "control.rules",
    "control.keepalived_status",
];

/// One line per setting that differs between the running configuration and
/// the new one and needs a restart: `workers.lcores = [1, 2] (running:
/// [1]): needs a restart`.
pub fn restart_needed(running: &Config, new: &Config) -> Vec<String> {
    let (old, new) = (flatten(running), flatten(new));
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| !LIVE.contains(&k.as_str()))
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "(not set)".into());
            format!(
                "{k} = {} (running: {}): needs a restart",
                show(new.get(k)),
                show(old.get(k))
            )
        })
        .collect()
}

/// Every setting as `dotted.key` → its TOML value; arrays of tables are
/// indexed (`port.0.device`), other arrays are values.
fn flatten(c: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match toml::Value::try_from(c) {
        Ok(v) => walk("", &v, &mut out),
        // Every field serialises; were one not to, say so rather than
        // claim nothing changed.
        Err(e) => {
            out.insert("(configuration)".into(), format!("unreadable: {e}"));
        }
    }
    out
}

fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                walk(&join(k), v, out);
            }
        }
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(|e| e.is_table()) => {
            for (i, e) in a.iter().enumerate() {
                walk(&join(&i.to_string()), e, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[[port]]\nname = 'lan'\ndevice = 'net_null0'\naddress = '10.0.0.1/24'\n";

    fn cfg(extra: &str) -> Config {
        Config::parse(&format!("{BASE}{extra}")).unwrap()
    }

    #[test]
    fn live_settings_are_not_reported_the_others_are() {
        let running = cfg("");
        assert!(restart_needed(&running, &cfg("")).is_empty());
        // Defaults written out are no change.
        assert!(restart_needed(&running, &cfg("[workers]\nlcores = [1]\n")).is_empty());
        assert!(restart_needed(
            &running,
            &cfg("[connections]\ntcp_timeout_s = 60\n[control]\nrules = '/etc/rvs/rules'\n")
        )
        .is_empty());
        assert!(restart_needed(
            &running,
            &cfg("[defense]\ndrop_packet = 1\nsecure_tcp = 2\nreclaim_half_open = false\n")
        )
        .is_empty());
        assert_eq!(
            restart_needed(
                &running,
                &cfg("[workers]\nlcores = [1, 2]\n[dpdk]\nmemory_mb = 1024\n")
            ),
            [
                "dpdk.memory_mb = 1024 (running: 512): needs a restart",
                "workers.lcores = [1, 2] (running: [1]): needs a restart",
            ]
        );
        let two_ports = cfg(
            "[[port]]\nname = 'wan'\ndevice = 'net_null1'\naddress = '10.0.1.1/24'\nmtu = 9000\n",
        );
        let r = restart_needed(&running, &two_ports);
        assert!(
            r.contains(&"port.1.mtu = 9000 (running: (not set)): needs a restart".to_string()),
            "{r:?}"
        );
        let r = restart_needed(&two_ports, &running);
        assert!(
            r.contains(
                &"port.1.device = (not set) (running: \"net_null1\"): needs a restart".to_string()
            ),
            "{r:?}"
        );
    }
}
