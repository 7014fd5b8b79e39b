//! `rvsd --check-config`: the configuration and its rules file read as a
//! reload reads them, without starting anything (no root, no DPDK).

use std::path::{Path, PathBuf};
use std::process::Command;

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("rvsd-check-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// rvsd's exit code, stdout and stderr.
fn rvsd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvsd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const BASE: &str =
    "[[port]]\nname = \"lan\"\ndevice = \"net_af_packet0,iface=eth1\"\naddress = \"10.0.0.1/24\"\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn good_files_are_summed_up() {
    let d = dir("good");
    write(
        &d.0,
        "rules",
        "# saved with rvsadm -S -n\n-A -t 10.0.0.10:80 -s rr\n\
-a -t 10.0.0.10:80 -r 10.0.0.20:80 -g -w 1\n-a -t 10.0.0.10:80 -r 10.0.0.21:80 -g -w 1\n\
-A -u 10.0.0.10:53 -s wlc\n",
    );
    // A relative rules path is the configuration file's directory's.
    let cfg = write(
        &d.0,
        "rvsd.toml",
        &format!("{BASE}[control]\nrules = \"rules\"\n[connections]\ntcp_timeout_s = 600\n"),
    );
    let (code, out, err) = rvsd(&["--check-config", &cfg]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        format!(
            "{cfg}: ok\nrules {}: 2 services, 2 real servers\n",
            d.0.join("rules").display()
        )
    );
    // -c FILE --check-config checks FILE.
    let (code, out, _) = rvsd(&["-c", &cfg, "--check-config"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(&format!("{cfg}: ok\n")), "{out}");
}

#[test]
fn errors_name_the_file_and_the_line() {
    let d = dir("bad");
    let rules = write(
        &d.0,
        "rules",
        "-A -t 10.0.0.10:80 -s rr\n\n-a -t 10.0.0.10:80 -r 10.0.0.20 -w -3\n",
    );
    let cfg = write(
        &d.0,
        "rvsd.toml",
        &format!("{BASE}[control]\nrules = \"{rules}\"\n"),
    );
    let (code, out, err) = rvsd(&["--check-config", &cfg]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        format!(
            "rvsd: {rules}:3: illegal weight specified: -a -t 10.0.0.10:80 -r 10.0.0.20 -w -3\n"
        )
    );

    // Refused as ipvsadm would refuse it, on the line that does it.
    write(
        &d.0,
        "rules",
        "-A -t 10.0.0.10:80 -s rr\n-A -t 10.0.0.10:80 -s wlc\n",
    );
    let (code, _, err) = rvsd(&["--check-config", &cfg]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("rvsd: {rules}:2: Service already exists: -A -t 10.0.0.10:80 -s wlc\n")
    );
    write(&d.0, "rules", "-A -t 10.0.0.10:80 -s nosuch\n");
    let (_, _, err) = rvsd(&["--check-config", &cfg]);
    assert_eq!(
        err,
        format!("rvsd: {rules}:1: Scheduler or persistence engine not found: -A -t 10.0.0.10:80 -s nosuch\n")
    );
    write(&d.0, "rules", "-Ln\n");
    let (_, _, err) = rvsd(&["--check-config", &cfg]);
    assert!(
        err.starts_with(&format!("rvsd: {rules}:1: only table commands")),
        "{err}"
    );

    // TOML: syntax, unknown keys, checks after parsing, each with its line.
    let cases = [
        (
            format!("{BASE}[workers]\nlcores = [1,\n"),
            7,
            "invalid array: expected `]`",
        ),
        (
            format!("{BASE}[workers]\nlcorez = [1]\n"),
            6,
            "unknown field `lcorez`",
        ),
        (
            format!("{BASE}[workers]\nlcores = [0]\n"),
            6,
            "lcore 0 is dpdk.main_lcore",
        ),
        (BASE.replace("/24", ""), 4, "needs a prefix length"),
        (
            format!("{BASE}[connections]\nudp_timeout_s = 0\n"),
            6,
            "connections.udp_timeout_s = 0: a timeout is 1 to 2678400 seconds",
        ),
    ];
    for (text, line, what) in cases {
        let cfg = write(&d.0, "bad.toml", &text);
        let (code, _, err) = rvsd(&["--check-config", &cfg]);
        assert_eq!(code, 1, "{text}");
        assert!(
            err.starts_with(&format!("rvsd: {cfg}:{line}: ")) && err.contains(what),
            "{text}\n{err}"
        );
    }

    let missing = d.0.join("nope.rules");
    let cfg = write(
        &d.0,
        "missing.toml",
        &format!("{BASE}[control]\nrules = \"{}\"\n", missing.display()),
    );
    let (code, _, err) = rvsd(&["--check-config", &cfg]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("reading the rules file {}", missing.display())),
        "{err}"
    );
}

#[test]
fn shipped_configurations_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = rvsd(&[
        "--check-config",
        &root.join("../../conf/rvsd.toml").display().to_string(),
    ]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    // The packaged one, with the packaged rules file where it will be.
    let d = dir("shipped");
    let rules = d.0.join("rules");
    std::fs::copy(root.join("debian/rules"), &rules).unwrap();
    let text = std::fs::read_to_string(root.join("debian/rvsd.toml")).unwrap();
    assert!(text.contains("rules = \"/etc/rvs/rules\"\n"));
    // The package's group (made by its sysusers file) may not exist on the
    // machine running the test: the group of this process stands in.
    assert!(text.contains("group = \"rvs\"\n"));
    let here = std::process::Command::new("id")
        .arg("-gn")
        .output()
        .unwrap();
    let here = String::from_utf8(here.stdout).unwrap();
    let cfg = write(
        &d.0,
        "rvsd.toml",
        &text
            .replace("/etc/rvs/rules", &rules.display().to_string())
            .replace("group = \"rvs\"", &format!("group = \"{}\"", here.trim())),
    );
    let (code, out, err) = rvsd(&["--check-config", &cfg]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(
        out,
        format!(
            "{cfg}: ok\nrules {}: 0 services, 0 real servers\n",
            rules.display()
        )
    );
}
