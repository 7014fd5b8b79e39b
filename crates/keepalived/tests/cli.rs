//! rvs-keepalived's command line, run as a program: `-t` on good and broken
//! configurations (the file and line of each problem, through includes),
//! and the refusals. Needs no root and no network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rvs-keepalived")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("runs rvs-keepalived")
}

/// A fresh directory for one test's files.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-ka-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("conf.d")).unwrap();
    d
}

fn repo_conf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../conf/keepalived")
        .join(name)
}

#[test]
fn shipped_configs_pass_the_test() {
    for f in ["http-dr.conf", "nat-sorry.conf", "https-persistent.conf"] {
        let p = repo_conf(f);
        let out = run(&["-t", "-f", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{f}: {err}");
        // What rvs-keepalived leaves aside is said, but is no error.
        if f == "http-dr.conf" {
            assert!(err.contains("vrrp_instance VI_WEB is VRRP"), "{err}");
            assert!(err.contains("keepalived --vrrp"), "{err}");
        }
    }
}

#[test]
fn broken_config_is_rejected_with_file_and_line() {
    let d = dir("broken");
    let main = d.join("keepalived.conf");
    std::fs::write(
        &main,
        "global_defs {\n    router_id test\n}\ninclude conf.d/*.conf\n",
    )
    .unwrap();
    let vs = d.join("conf.d/web.conf");
    std::fs::write(
        &vs,
        "virtual_server 192.168.1.10 80 {\n    delay_loop 2\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n    real_server 192.168.1.220 80 {\n        wieght 1\n        TCP_CHECK {\n            connect_timeout abc\n        }\n    }\n}\n",
    )
    .unwrap();
    let out = run(&["-t", "-f", main.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    let vs_name = vs.display().to_string();
    assert!(
        err.contains(&format!("({vs_name}: Line 7) Unknown keyword 'wieght'")),
        "{err}"
    );
    assert!(
        err.contains(&format!("({vs_name}: Line 9) invalid number 'abc'")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "({vs_name}: Line 9) connect_timeout abc invalid - ignoring"
        )),
        "{err}"
    );
    // An unbalanced brace names the block that is left open.
    std::fs::write(&vs, "virtual_server 192.168.1.10 80 {\n    protocol TCP\n").unwrap();
    let out = run(&["--config-test", "-f", main.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains(&format!(
            "({vs_name}: Line 1) 'virtual_server 192.168.1.10 80' block has no closing '}}'"
        )),
        "{err}"
    );
    // -t=FILE writes the report there.
    let report = d.join("report.txt");
    let out = run(&[
        &format!("--config-test={}", report.display()),
        "-f",
        main.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5));
    assert!(std::fs::read_to_string(&report)
        .unwrap()
        .contains("has no closing"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn missing_file_and_fwmark_and_vrrp_mode() {
    let out = run(&["-t", "-f", "/nonexistent/keepalived.conf"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/keepalived.conf"));
    // Starting with a missing file fails before forking, on the terminal.
    let out = run(&["-n", "-f", "/nonexistent/keepalived.conf"]);
    assert_eq!(out.status.code(), Some(4));

    let d = dir("fwmark");
    let f = d.join("k.conf");
    std::fs::write(
        &f,
        "virtual_server fwmark 1 {\n    lb_kind DR\n    real_server 192.168.1.220 80 {\n    }\n}\n",
    )
    .unwrap();
    let out = run(&["-t", "-f", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5));
    assert!(err.contains("rvs has no firewall-mark services"), "{err}");
    assert!(err.contains("k.conf: Line 1)"), "{err}");

    let out = run(&["-P"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("keepalived --vrrp"));
    std::fs::remove_dir_all(&d).unwrap();
}
