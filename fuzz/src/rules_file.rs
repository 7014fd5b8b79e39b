//! `rules_file`: rvsd's rules file as rvsd loads and reloads it: parsed
//! with rvsadm's parser (`rvsadm::rules::parse_file`), played on an empty
//! table (`DesiredTable::from_rules`), and applied to a running control
//! server as the difference from its table (`ControlServer::apply_plan`).
//!
//! Input: two rules files separated by a NUL byte (invalid UTF-8
//! replaced): the one rvsd starts with and the one a reload finds.
//!
//! Checked, besides "no panic": an error names a line of the file; a file
//! that loads leaves the running table exactly as it says (services and
//! real servers with their settings); applying the same file again
//! changes nothing; a second file that loads on its own is applied by a
//! reload too, after which the table is that file's.

use std::collections::BTreeMap;
use std::sync::Arc;

use rvs_control::server::{ControlServer, DesiredTable, ReloadPlan};
use rvs_control_proto::table::Table;
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_ipvs::{DestSpec, ServiceSpec};

type Specs = BTreeMap<String, (ServiceSpec, BTreeMap<String, DestSpec>)>;

/// A table's services and dests with their settings, without the order
/// dests were added in (a reload keeps unchanged dests where they are).
fn specs(t: &Table) -> Specs {
    t.services
        .values()
        .map(|s| {
            (
                format!("{:?}", s.spec.key),
                (
                    s.spec.clone(),
                    s.dests
                        .values()
                        .map(|d| (format!("{:?}", d.spec.key()), d.spec))
                        .collect(),
                ),
            )
        })
        .collect()
}

/// Reads a rules file as rvsd does; None if rvsd would refuse it.
fn load(text: &str) -> Option<DesiredTable> {
    let rules = match rvsadm::rules::parse_file(text) {
        Ok(r) => r,
        Err(e) => {
            let lines = text.lines().count();
            assert!(
                (1..=lines).contains(&e.line),
                "error on line {} of {lines}: {e}",
                e.line
            );
            assert!(!e.msg.is_empty());
            return None;
        }
    };
    for r in &rules {
        assert!(
            text.lines().nth(r.line - 1) == Some(r.text.as_str()),
            "{r:?}: its own line"
        );
    }
    let numbered: Vec<_> = rules
        .into_iter()
        .map(|r| (r.line, r.text, r.command))
        .collect();
    match DesiredTable::from_rules("rules", &numbered) {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(e.starts_with("rules:"), "{e}: names the file and line");
            None
        }
    }
}

fn plan(d: &DesiredTable) -> ReloadPlan {
    ReloadPlan {
        sources: vec!["rules".into()],
        rules: Some(d.clone()),
        timeouts: Timeouts::default(),
        ..ReloadPlan::default()
    }
}

fn running(server: &ControlServer) -> Specs {
    specs(&Table::from_listing(
        &server.listing(),
        &|_| true,
        &|_, _| true,
    ))
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (first, second) = text.split_once('\0').unwrap_or((&text, ""));
    let mut server = ControlServer::new(vec![], 4096, Arc::new(Templates::new()));
    let Some(start) = load(first) else {
        return;
    };
    // rvsd's start: the running table is empty.
    server
        .apply_plan(plan(&start))
        .unwrap_or_else(|e| panic!("a file that loads on its own applies to an empty table: {e}"));
    assert_eq!(
        running(&server),
        specs(&start.table),
        "the table is the file's"
    );
    let again = server
        .apply_plan(plan(&start))
        .expect("the same file again");
    assert!(
        again.applied.is_empty(),
        "the same file again changed {:?}",
        again.applied
    );
    let Some(next) = load(second) else {
        return;
    };
    // A reload: only the difference. A file rvsd would start with, it
    // reaches by a reload too.
    server
        .apply_plan(plan(&next))
        .unwrap_or_else(|e| panic!("a file that loads on its own is refused as a reload: {e}"));
    assert_eq!(
        running(&server),
        specs(&next.table),
        "the table is the new file's"
    );
}
