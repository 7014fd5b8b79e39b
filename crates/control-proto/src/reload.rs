//! What a reload of rvsd did (SIGHUP or `rvsadm --reload`): rvsd logs it,
//! and `rvsadm --reload` prints it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// What was read: the configuration file, the rules file with what it
    /// holds.
    pub sources: Vec<String>,
    /// The table commands applied, as rvsadm command lines, in order. Real
    /// servers that did not change are not among them: their connections
    /// flow on untouched.
    pub applied: Vec<String>,
    /// Timeouts that changed (`tcp 900 -> 600`).
    pub timeouts: Vec<String>,
    /// Other live settings that changed (`defense.drop_packet 0 -> 1`).
    #[serde(default)]
    pub settings: Vec<String>,
    /// What was read but left as it is, and why: settings that need a
    /// restart, services rvs-keepalived manages, services the rules file
    /// does not name.
    pub left_alone: Vec<String>,
}

impl ReloadReport {
    /// For people: what was read, what changed, what was left alone.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.sources {
            out.push_str(&format!("read {s}\n"));
        }
        if self.applied.is_empty() && self.timeouts.is_empty() && self.settings.is_empty() {
            out.push_str("no changes\n");
        }
        for c in &self.applied {
            out.push_str(&format!("applied: {c}\n"));
        }
        for t in &self.timeouts {
            out.push_str(&format!("timeout: {t}\n"));
        }
        for s in &self.settings {
            out.push_str(&format!("set: {s}\n"));
        }
        for l in &self.left_alone {
            out.push_str(&format!("left alone: {l}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_says_what_changed_and_what_did_not() {
        let r = ReloadReport {
            sources: vec!["config /etc/rvs/rvsd.toml".into()],
            ..ReloadReport::default()
        };
        assert_eq!(r.render(), "read config /etc/rvs/rvsd.toml\nno changes\n");
        let r = ReloadReport {
            sources: vec![],
            applied: vec!["-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1".into()],
            timeouts: vec!["tcp 900 -> 600".into()],
            settings: vec!["defense.drop_packet 0 -> 1".into()],
            left_alone: vec!["workers.lcores: needs a restart".into()],
        };
        assert_eq!(
            r.render(),
            "applied: -a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n\
timeout: tcp 900 -> 600\n\
set: defense.drop_packet 0 -> 1\n\
left alone: workers.lcores: needs a restart\n"
        );
    }
}
