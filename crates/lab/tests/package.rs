//! The .deb (`cargo xtask dist`) installed into a debootstrap'ed Debian 12
//! root: its dependencies come from Debian's mirror, its files, conffiles,
//! user and unit are checked, the packaged rvsd runs in the lab as the
//! unit runs it (user rvs, the unit's capabilities, nothing more) with the
//! packaged rvsadm talking to it, and removing and purging it leaves
//! nothing behind. This machine is not changed: everything happens in a
//! copy of a cached root under target/deb-test.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rvs_lab::debian::{bookworm_base, Root};
use rvs_lab::{Lab, RS1, RS2, VIP};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The package `cargo xtask dist` made.
fn the_deb() -> PathBuf {
    let dir = workspace().join("target/debian");
    let debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "deb"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        debs.len(),
        1,
        "one .deb expected in {}: run cargo xtask dist (cargo xtask test does)",
        dir.display()
    );
    debs[0].clone()
}

/// `Key=a b c` lines of the unit, the values split.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(String::from))
        .collect()
}

/// The capabilities of a running process (CapEff), as setpriv names them.
fn effective_caps(pid: u32) -> Vec<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    let bits = u64::from_str_radix(hex, 16).unwrap();
    // The numbers of the four the unit may grant (linux/capability.h).
    let names = [
        (12, "net_admin"),
        (13, "net_raw"),
        (14, "ipc_lock"),
        (17, "sys_rawio"),
    ];
    let known: u64 = names.iter().map(|(b, _)| 1u64 << b).sum();
    let mut out: Vec<String> = names
        .iter()
        .filter(|(b, _)| bits & (1 << b) != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    if bits & !known != 0 {
        out.push(format!("others:{:x}", bits & !known));
    }
    out
}

fn uid_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs root, debootstrap, Debian's mirror and the .deb; run with cargo xtask test"]
fn deb_installs_runs_and_goes_away() {
    let deb = the_deb();
    let cache = workspace().join("target/deb-test");
    let base = bookworm_base(&cache).expect("the cached Debian 12 root");
    let root = Root::copy_of(
        &base,
        &cache.join(format!("run-{}", rvs_lab::test_prefix())),
    )
    .unwrap();
    std::fs::copy(&deb, root.path("/tmp/rvsd.deb")).unwrap();
    // Downloads are kept between runs.
    let archives = cache.join("apt-archives");
    std::fs::create_dir_all(archives.join("partial")).unwrap();
    let apt = [(archives.as_path(), "/var/cache/apt/archives")];

    // dpkg -i stops at the missing DPDK libraries; apt-get -f brings them
    // from Debian and finishes the install.
    let first = root.run("dpkg -i /tmp/rvsd.deb").unwrap();
    if !first.status.success() {
        let fix = "apt-get -f install -y -qq --no-install-recommends";
        let mut out = root.run_with(&apt, fix).unwrap();
        if !out.status.success() {
            // Lists older than the mirror (a point release): refresh, retry.
            root.ok("apt-get update -qq").unwrap();
            out = root.run_with(&apt, fix).unwrap();
        }
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = root
        .ok("dpkg-query -W -f='${Status} ${Version}' rvsd")
        .unwrap();
    assert!(status.starts_with("install ok installed "), "{status}");
    // Every library rvsd links is there.
    let ldd = root.ok("ldd /usr/sbin/rvsd").unwrap();
    assert!(!ldd.contains("not found"), "{ldd}");

    // The files, and which are conffiles.
    for f in [
        "/usr/sbin/rvsd",
        "/usr/sbin/rvsadm",
        "/etc/rvs/rvsd.toml",
        "/etc/rvs/rules",
        "/usr/lib/systemd/system/rvsd.service",
        "/usr/lib/sysusers.d/rvsd.conf",
        "/usr/share/man/man8/rvsd.8.gz",
        "/usr/share/man/man8/rvsadm.8.gz",
        "/usr/share/bash-completion/completions/rvsd",
        "/usr/share/bash-completion/completions/rvsadm",
        "/usr/share/zsh/vendor-completions/_rvsd",
        "/usr/share/zsh/vendor-completions/_rvsadm",
    ] {
        assert!(root.path(f).is_file(), "{f} not installed");
    }
    let conffiles = root.ok("dpkg-query -W -f='${Conffiles}' rvsd").unwrap();
    let conffiles: Vec<&str> = conffiles
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(conffiles, ["/etc/rvs/rvsd.toml", "/etc/rvs/rules"]);
    // The user the unit runs as, made by systemd-sysusers.
    let passwd = root.ok("getent passwd rvs").unwrap();
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    assert_eq!(
        (fields[0], fields[5], fields[6]),
        ("rvs", "/nonexistent", "/usr/sbin/nologin")
    );
    let (uid, gid): (u32, u32) = (fields[2].parse().unwrap(), fields[3].parse().unwrap());
    assert!(uid > 0 && uid < 1000, "a system user: {passwd}");

    // The unit, as Debian 12's systemd reads it.
    let verify = root
        .run("systemd-analyze verify /usr/lib/systemd/system/rvsd.service")
        .unwrap();
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let unit = std::fs::read_to_string(root.path("/usr/lib/systemd/system/rvsd.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LimitMEMLOCK=infinity",
        "User=rvs",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    let caps = unit_values(&unit, "AmbientCapabilities");
    assert_eq!(caps, unit_values(&unit, "CapabilityBoundingSet"));
    assert_eq!(
        caps,
        [
            "CAP_NET_RAW",
            "CAP_NET_ADMIN",
            "CAP_IPC_LOCK",
            "CAP_SYS_RAWIO"
        ]
    );

    // The programs run from there, with the packaged files.
    let v = root.ok("rvsd --version").unwrap();
    assert_eq!(v, format!("rvsd {}\n", env!("CARGO_PKG_VERSION")));
    let check = root.ok("rvsd --check-config").unwrap();
    assert_eq!(
        check,
        "/etc/rvs/rvsd.toml: ok\nrules /etc/rvs/rules: 0 services, 0 real servers\n"
    );
    assert!(root.ok("rvsadm -h").unwrap().contains("--reload"));
    // The completions load in bash and register.
    let complete = root
        .ok("bash -c '. /usr/share/bash-completion/completions/rvsadm && complete -p rvsadm'")
        .unwrap();
    assert!(complete.contains("rvsadm"), "{complete}");
    let page = root.ok("zcat /usr/share/man/man8/rvsadm.8.gz").unwrap();
    assert!(page.contains(".TH RVSADM 8"), "{page}");

    // rvsd as the unit runs it, in the lab: user rvs, the unit's
    // capabilities in every set (ambient, so they survive the exec), the
    // packaged rules file.
    let prefix = format!("{}pkg", rvs_lab::test_prefix());
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).unwrap();
    lab.serve_http("rs1", 80, "RS1").unwrap();
    lab.serve_http("rs2", 80, "RS2").unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    rvs_lab::run(
        "chown",
        &[&format!("{uid}:{gid}"), &run.display().to_string()],
    )
    .unwrap();
    let packaged = std::fs::read_to_string(root.path("/etc/rvs/rvsd.toml")).unwrap();
    let lab_cfg = packaged
        .replace("iface=eth1", "iface=veth-dir")
        .replace("192.0.2.1/24", "192.168.1.213/24")
        .replace("idle_empty_polls = 256", "idle_empty_polls = 64");
    assert_ne!(lab_cfg, packaged);
    std::fs::write(root.path("/etc/rvs/lab.toml"), &lab_cfg).unwrap();
    std::fs::write(
        root.path("/etc/rvs/rules"),
        format!(
            "-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {RS1}:80 -g -w 1\n-a -t {VIP}:80 -r {RS2}:80 -g -w 1\n"
        ),
    )
    .unwrap();
    let setpriv_caps: Vec<String> = caps
        .iter()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let caps_arg = setpriv_caps.join(",");
    let rvsd = format!(
        "exec setpriv --reuid=rvs --regid=rvs --init-groups --inh-caps=-all,{caps_arg} \
--ambient-caps=-all,{caps_arg} --bounding-set=-all,{caps_arg} \
/usr/sbin/rvsd --config /etc/rvs/lab.toml"
    );
    let line = root.enter_line(&[(run.as_path(), "/run/rvs")], &rvsd);
    let args: Vec<&str> = line.iter().map(String::as_str).collect();
    lab.spawn_named("rvsd", "director", &args).unwrap();
    // A command in the root, in the director's namespace, beside rvsd.
    let inside = |lab: &Lab, cmd: &str| {
        let line = root.enter_line(&[(run.as_path(), "/run/rvs")], cmd);
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        lab.exec("director", &args).unwrap()
    };
    lab.wait_for("the packaged rvsd's socket", || {
        Ok(inside(&lab, "rvsadm -Ln").status.success())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.log_of("rvsd")));
    let pid = lab.pid_of("rvsd").unwrap();
    assert_eq!(uid_of(pid), uid, "runs as rvs");
    assert_eq!(
        effective_caps(pid),
        ["net_admin", "net_raw", "ipc_lock", "sys_rawio"]
    );
    let listing = String::from_utf8_lossy(&inside(&lab, "rvsadm -Ln").stdout).into_owned();
    assert!(listing.contains(&format!("TCP  {VIP}:80 rr")), "{listing}");
    // The exception path's interface, made by the rvs user with the unit's
    // capabilities (net_tap, then the package's iproute2).
    let kernel_if = lab
        .exec("director", &["ip", "-o", "-4", "addr", "show", "rvs-lan"])
        .unwrap();
    assert!(
        String::from_utf8_lossy(&kernel_if.stdout).contains("192.168.1.213/24"),
        "{}\n{}",
        String::from_utf8_lossy(&kernel_if.stderr),
        lab.log_of("rvsd")
    );
    let got: Vec<String> = (0..4)
        .map(|_| lab.curl(&format!("http://{VIP}/")).unwrap())
        .collect();
    assert_eq!(got, ["RS2", "RS1", "RS2", "RS1"]);
    // A reload from the packaged rvsadm, as the rvs user would run it.
    std::fs::write(
        root.path("/etc/rvs/rules"),
        format!("-A -t {VIP}:80 -s rr\n-a -t {VIP}:80 -r {RS1}:80 -g -w 1\n"),
    )
    .unwrap();
    let out = inside(
        &lab,
        "setpriv --reuid=rvs --regid=rvs --init-groups rvsadm --reload",
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains(&format!("applied: -d -t {VIP}:80 -r {RS2}:80\n")),
        "{report}"
    );
    // The socket is group rvs's (the packaged [control] group), mode 0660:
    // a member of rvs may use rvsadm, someone else may not.
    let m = std::fs::symlink_metadata(run.join("rvsd.sock")).unwrap();
    assert_eq!(
        (m.permissions().mode() & 0o777, m.uid(), m.gid()),
        (0o660, uid, gid)
    );
    root.ok("useradd --no-create-home --groups rvs ops && useradd --no-create-home stranger")
        .unwrap();
    let out = inside(
        &lab,
        "setpriv --reuid=ops --regid=ops --init-groups rvsadm -Ln",
    );
    assert!(
        out.status.success(),
        "a member of rvs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = inside(
        &lab,
        "setpriv --reuid=stranger --regid=stranger --init-groups rvsadm -Ln",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.signal("rvsd", "TERM").unwrap();
    let st = lab.wait_exit("rvsd", Duration::from_secs(20)).unwrap();
    assert!(st.success(), "{st}\n{}", lab.log_of("rvsd"));
    drop(lab);

    // Remove: the programs go, the conffiles stay; purge: they go too.
    std::fs::remove_file(root.path("/etc/rvs/lab.toml")).unwrap();
    root.ok("dpkg -r rvsd").unwrap();
    assert!(!root.path("/usr/sbin/rvsd").exists());
    assert!(!root.path("/usr/sbin/rvsadm").exists());
    assert!(!root.path("/usr/lib/systemd/system/rvsd.service").exists());
    assert!(root.path("/etc/rvs/rvsd.toml").exists());
    root.ok("dpkg -P rvsd").unwrap();
    assert!(!root.path("/etc/rvs").exists(), "/etc/rvs left after purge");
    let gone = root.run("dpkg-query -W rvsd").unwrap();
    assert!(
        !gone.status.success(),
        "rvsd still known to dpkg after purge"
    );
}
