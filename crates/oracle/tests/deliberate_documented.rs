//! Every deliberate difference the oracle accepts is documented, and the
//! scenarios only name differences that exist.

use std::path::Path;

use rvs_oracle::compare::load_deliberate;
use rvs_oracle::scenario::Scenario;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn each_deliberate_difference_is_in_the_docs() {
    let rules = load_deliberate(&root().join("oracle/deliberate.toml")).unwrap();
    assert!(!rules.is_empty());
    let docs = std::fs::read_to_string(root().join("docs/ipvsadm-behaviour.md")).unwrap();
    let section = docs
        .split("## 7. Deliberate differences")
        .nth(1)
        .expect("docs/ipvsadm-behaviour.md has a 'Deliberate differences' section");
    for r in &rules {
        assert!(
            section.contains(&format!("**{}.**", r.what)),
            "oracle/deliberate.toml's {:?} is not listed in docs/ipvsadm-behaviour.md section 7",
            r.what
        );
        assert!(r.why.len() > 40, "{:?} needs a reason", r.what);
    }
}

#[test]
fn scenarios_parse_and_name_existing_differences() {
    let rules = load_deliberate(&root().join("oracle/deliberate.toml")).unwrap();
    let mut n = 0;
    for group in std::fs::read_dir(root().join("oracle/scenarios")).unwrap() {
        for f in std::fs::read_dir(group.unwrap().path()).unwrap() {
            let f = f.unwrap().path();
            let sc = Scenario::load(&f).unwrap();
            n += 1;
            for s in &sc.steps {
                if let Some(name) = &s.explained_by {
                    assert!(
                        rules.iter().any(|r| r.step_name() == Some(name.as_str())),
                        "{}: explained_by {name:?} is not in oracle/deliberate.toml",
                        f.display()
                    );
                }
            }
        }
    }
    assert!(n >= 30, "only {n} scenarios");
}
