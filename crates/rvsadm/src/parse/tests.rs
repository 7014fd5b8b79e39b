use super::*;

fn p(line: &str) -> Result<Action, ParseError> {
    let args: Vec<String> = line.split_whitespace().map(String::from).collect();
    parse(&args, "ipvsadm")
}

fn err(line: &str) -> (String, u8) {
    let e = p(line).unwrap_err();
    (e.msg, e.code)
}

fn vip(port: u16) -> ServiceKey {
    ServiceKey {
        protocol: Protocol::Tcp,
        addr: "192.168.1.10".parse().unwrap(),
        port,
    }
}

#[test]
fn walkthrough_commands() {
    assert_eq!(
        p("-A -t 192.168.1.10:80 -s rr").unwrap(),
        Action::Apply(Command::AddService(ServiceSpec {
            key: vip(80),
            scheduler: "rr".into(),
            sched_flags: 0,
            persistent: None,
            netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
            one_packet: false,
        }))
    );
    assert_eq!(
        p("-a -t 192.168.1.10:80 -r 192.168.1.220:80 -g -w 1").unwrap(),
        Action::Apply(Command::AddDest(
            vip(80),
            DestSpec {
                addr: "192.168.1.220".parse().unwrap(),
                port: 80,
                fwd: FwdMethod::Route,
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
            }
        ))
    );
    for l in ["-Ln", "-L -n", "-l -n", "-ln", "--list -n", "-L --numeric"] {
        assert_eq!(
            p(l).unwrap(),
            Action::List {
                numeric: true,
                only: None,
                mode: ListMode::Normal,
                sort: true,
            },
            "{l}"
        );
    }
    assert_eq!(
        p("-L -n -t 192.168.1.10:80").unwrap(),
        Action::List {
            numeric: true,
            only: Some(vip(80)),
            mode: ListMode::Normal,
            sort: true,
        }
    );
    assert_eq!(
        p("-L -n --thresholds --persistent-conn").unwrap(),
        Action::List {
            numeric: true,
            only: None,
            mode: ListMode::Thresholds,
            sort: true,
        }
    );
}

#[test]
fn defaults_follow_ipvsadm() {
    // wlc is the default scheduler; weight 1 and -g by default; DR forces
    // the service port, NAT keeps the given one; -r without port takes the
    // service's.
    match p("-A -t 192.168.1.10:80").unwrap() {
        Action::Apply(Command::AddService(s)) => assert_eq!(s.scheduler, "wlc"),
        a => panic!("{a:?}"),
    }
    match p("-a -t 192.168.1.10:80 -r 10.0.0.1:8080").unwrap() {
        Action::Apply(Command::AddDest(_, d)) => {
            assert_eq!((d.port, d.weight, d.fwd), (80, 1, FwdMethod::Route))
        }
        a => panic!("{a:?}"),
    }
    match p("-a -t 192.168.1.10:80 -r 10.0.0.1:8080 -m").unwrap() {
        Action::Apply(Command::AddDest(_, d)) => assert_eq!(d.port, 8080),
        a => panic!("{a:?}"),
    }
    match p("-a -t 192.168.1.10:80 -r 10.0.0.1 -m").unwrap() {
        Action::Apply(Command::AddDest(_, d)) => assert_eq!(d.port, 80),
        a => panic!("{a:?}"),
    }
    match p("-e -t 192.168.1.10:80 -r 10.0.0.1 -w 0").unwrap() {
        Action::Apply(Command::EditDest(_, d)) => assert_eq!(d.weight, 0),
        a => panic!("{a:?}"),
    }
    match p("-e -t 192.168.1.10:80 -r 10.0.0.1 -w 2147483647").unwrap() {
        Action::Apply(Command::EditDest(_, d)) => assert_eq!(d.weight, i32::MAX as u32),
        a => panic!("{a:?}"),
    }
    assert_eq!(p("--set 1 2 3 4").unwrap_err().msg, "unexpected argument 4");
    assert_eq!(
        p("--set 1 2").unwrap_err().msg,
        "--set option requires 3 timeout values"
    );
    // Clustered options with a value take the rest of the cluster.
    assert!(matches!(
        p("-At 192.168.1.10:80 -srr").unwrap(),
        Action::Apply(Command::AddService(ServiceSpec { ref scheduler, .. })) if scheduler == "rr"
    ));
    // inet_aton shorthand.
    match p("-A -t 10.1:80").unwrap() {
        Action::Apply(Command::AddService(s)) => {
            assert_eq!(s.key.addr, "10.0.0.1".parse::<IpAddr>().unwrap())
        }
        a => panic!("{a:?}"),
    }
    // No arguments lists with names.
    assert_eq!(
        parse(&[], "ipvsadm").unwrap(),
        Action::List {
            numeric: false,
            only: None,
            mode: ListMode::Normal,
            sort: true,
        }
    );
}

#[test]
fn ipvsadm_error_messages_and_codes() {
    let try_help = (
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information.".to_string(),
        255,
    );
    assert_eq!(err("-n -L"), try_help);
    assert_eq!(err("-nL"), try_help);
    assert_eq!(err("foo"), try_help);
    assert_eq!(err("--bogus"), try_help);
    let cases: &[(&str, &str, u8)] = &[
        ("-A", "You need to supply the 'service-address' option for the 'add-service' command", 2),
        ("-a -t 1.2.3.4:80", "You need to supply the 'real-server' option for the 'add-server' command", 2),
        ("-A -t 1.2.3.4:80 -w 2", "Illegal 'weight' option with the 'add-service' command", 2),
        ("-D -t 1.2.3.4:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command", 2),
        ("-C -t 1.2.3.4:80", "Illegal 'service-address' option with the 'flush' command", 2),
        // ipvsadm takes 0..INT_MAX (checked against the kernel VM).
        ("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 2147483648", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1 -w -1", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1 -w 1x", "illegal weight specified", 2),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1 -x abc", "illegal u_threshold specified", 2),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1 -y abc", "illegal l_threshold specified", 2),
        ("-A -t 1.2.3.4:99999", "illegal virtual server address[:port] specified", 2),
        ("-A -t 80", "illegal virtual server address[:port] specified", 2),
        ("-A -t 1.2.3.4:", "illegal virtual server address[:port] specified", 2),
        ("-A -t [::1]", "illegal virtual server address[:port] specified", 2),
        ("-a -t 1.2.3.4:80 -r 300.1.1.1", "illegal real server address[:port] specified", 2),
        ("-A -t 1.2.3.4", "Zero port specified for non-persistent service", 2),
        ("-A -t 1.2.3.4:80 -o", "One-Packet Scheduling is only for UDP virtual services", 2),
        ("-A -t 1.2.3.4:80 -p abc", "invalid timeout value `abc' specified", 2),
        ("-a -t 1.2.3.4:80 -r 10.0.0.1 -g -m", "multiple 'forwarding-method' options specified", 2),
        ("-A -t 1.2.3.4:80 -s rr -b sh-port", "incompatible scheduler flag `sh-port'", 2),
        ("-A -t 1.2.3.4:80 -b nope", "invalid scheduler flag `nope'", 2),
        ("-L -l", "invalid option `-l'", 2),
        ("-L -A", "invalid option `-A'", 2),
        ("-L -c -t 1.2.3.4:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command", 2),
        ("-A -t 1.2.3.4:80 extra", "unexpected argument extra", 2),
        ("-L -q", "-q: unknown option", 255),
        ("-L --numeric=1", "--numeric=1: option does not take an argument", 255),
        ("-A -t", "-t: missing argument", 255),
    ];
    for (line, msg, code) in cases {
        assert_eq!(err(line), (msg.to_string(), *code), "{line}");
    }
}

#[test]
fn set_timeouts_and_connection_listing() {
    assert_eq!(
        p("--set 100 20 0").unwrap(),
        Action::SetTimeouts {
            tcp: 100,
            tcpfin: 20,
            udp: 0
        }
    );
    assert_eq!(
        err("--set 1 2"),
        ("--set option requires 3 timeout values".into(), 2)
    );
    assert_eq!(
        err("--set 1 2 x"),
        ("invalid timeout value `x' specified".into(), 2)
    );
    assert_eq!(
        err("--set 1 2 9999999"),
        ("invalid timeout value `9999999' specified".into(), 2)
    );
    assert_eq!(p("-Lnc").unwrap(), Action::ListConns { numeric: true });
    assert_eq!(p("-L --timeout").unwrap(), Action::Timeouts);
    assert_eq!(
        err("-L --timeout -c"),
        (
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command"
                .into(),
            2
        )
    );
}

#[test]
fn persistent_takes_an_optional_value() {
    // Persistence itself arrives with the scheduler issue; here the parse.
    let svc = |line: &str| match p(line).unwrap() {
        Action::Apply(Command::AddService(s)) => s,
        a => panic!("{a:?}"),
    };
    assert_eq!(svc("-A -t 1.2.3.4:80 -p").persistent, Some(360));
    assert_eq!(svc("-A -t 1.2.3.4:80 -p 120").persistent, Some(120));
    assert_eq!(svc("-A -t 1.2.3.4:80 -p -s rr").persistent, Some(360));
    assert_eq!(
        svc("-A -t 1.2.3.4:0 -p -M 255.255.255.0").netmask,
        rvs_ipvs::PersistMask::V4("255.255.255.0".parse().unwrap())
    );
    // Non-contiguous masks and inet_aton's shorthand, as ipvsadm takes them
    // (the kernel VM lists "mask 255.255.0.255").
    assert_eq!(
        svc("-A -t 1.2.3.4:0 -p -M 255.255.0.255").netmask,
        rvs_ipvs::PersistMask::V4("255.255.0.255".parse().unwrap())
    );
    assert_eq!(
        svc("-A -t 1.2.3.4:0 -p -M 24").netmask,
        rvs_ipvs::PersistMask::V4("0.0.0.24".parse().unwrap())
    );
}

#[test]
fn socket_option_is_removed_anywhere() {
    let mut a: Vec<String> = "-L --socket /tmp/x.sock -n"
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(
        take_socket_option(&mut a).unwrap(),
        Some("/tmp/x.sock".into())
    );
    assert_eq!(a, ["-L", "-n"]);
    let mut a: Vec<String> = vec!["--socket=/s".into(), "-C".into()];
    assert_eq!(take_socket_option(&mut a).unwrap(), Some("/s".into()));
    assert_eq!(a, ["-C"]);
}

#[test]
fn ipv6_services() {
    match p("-A -t [2001:db8::10]:80 -s rr").unwrap() {
        Action::Apply(Command::AddService(s)) => {
            assert_eq!(s.key.addr, "2001:db8::10".parse::<IpAddr>().unwrap());
            assert_eq!(s.netmask, rvs_ipvs::PersistMask::V6Prefix(128));
        }
        a => panic!("{a:?}"),
    }
}

#[test]
fn tunnel_options_follow_ipvsadm_rules() {
    let tun = |line: &str| match p(line).unwrap() {
        Action::Apply(Command::AddDest(_, d)) => d.fwd,
        a => panic!("{a:?}"),
    };
    assert_eq!(
        tun("-a -t 1.2.3.4:80 -r 10.0.0.1 -i"),
        FwdMethod::Tunnel(TunSpec::default())
    );
    assert_eq!(
        tun("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 6080 --tun-csum"),
        FwdMethod::Tunnel(TunSpec {
            kind: TunKind::Gue,
            port: 6080,
            csum: TunCsum::Csum
        })
    );
    assert_eq!(
        tun("-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre"),
        FwdMethod::Tunnel(TunSpec {
            kind: TunKind::Gre,
            port: 0,
            csum: TunCsum::None
        })
    );
    let cases: &[(&str, &str)] = &[
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -g --tun-type gre",
            "Tunnel options conflict with forward method",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type vxlan",
            "illegal tunnel type specified",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue",
            "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-port 5",
            "Illegal 'tun-port' option with the 'ipip' tunnel type",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gre --tun-remcsum",
            "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum",
            "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
        ),
        (
            "-a -t 1.2.3.4:80 -r 10.0.0.1 -i --tun-type gue --tun-port 0",
            "illegal tunnel port specified",
        ),
    ];
    for (line, msg) in cases {
        assert_eq!(err(line), (msg.to_string(), 2), "{line}");
    }
}

#[test]
fn stats_rate_exact_and_their_precedence() {
    let list = |mode| Action::List {
        numeric: true,
        only: None,
        mode,
        sort: true,
    };
    assert_eq!(
        p("-Ln --stats").unwrap(),
        list(ListMode::Stats { exact: false })
    );
    assert_eq!(
        p("-L -n --rate --exact").unwrap(),
        list(ListMode::Rate { exact: true })
    );
    assert_eq!(
        p("-LnX --stats").unwrap(),
        list(ListMode::Stats { exact: true })
    );
    // ipvsadm: stats > rate > thresholds > persistent-conn > tun-info.
    assert_eq!(
        p("-Ln --rate --stats --thresholds").unwrap(),
        list(ListMode::Stats { exact: false })
    );
    assert_eq!(
        p("-Ln --thresholds --rate").unwrap(),
        list(ListMode::Rate { exact: false })
    );
    assert_eq!(
        p("-Ln --nosort").unwrap(),
        Action::List {
            numeric: true,
            only: None,
            mode: ListMode::Normal,
            sort: false,
        }
    );
    assert_eq!(
        p("-L -n -t 192.168.1.10:80 --stats").unwrap(),
        Action::List {
            numeric: true,
            only: Some(vip(80)),
            mode: ListMode::Stats { exact: false },
            sort: true,
        }
    );
}

#[test]
fn list_mode_conflicts_as_ipvsadm() {
    for l in [
        "-L -c --stats",
        "-L --timeout --rate",
        "-L -c --thresholds",
        "-L --timeout --persistent-conn",
        "-L --daemon --stats",
    ] {
        assert_eq!(
            err(l),
            ("options conflicts in the list command".into(), 2),
            "{l}"
        );
    }
    // -c with --persistent-conn is allowed (ipvsadm then lists connections).
    assert!(matches!(
        p("-L -c --persistent-conn").unwrap(),
        Action::ListConns { .. }
    ));
}

#[test]
fn zero_and_totals() {
    assert_eq!(p("-Z").unwrap(), Action::Zero(None));
    assert_eq!(p("--zero").unwrap(), Action::Zero(None));
    assert_eq!(
        p("-Z -t 192.168.1.10:80").unwrap(),
        Action::Zero(Some(vip(80)))
    );
    assert_eq!(
        err("-Z -t 192.168.1.10:80 -s rr"),
        (
            "Illegal 'scheduler' option with the 'zero' command".into(),
            2
        )
    );
    assert_eq!(
        err("-Z -n"),
        ("Illegal 'numeric' option with the 'zero' command".into(), 2)
    );
    assert_eq!(p("--totals").unwrap(), Action::Totals { per_worker: false });
    assert_eq!(p("--defense").unwrap(), Action::Defense);
    assert_eq!(
        err("--defense -n"),
        (
            "Illegal 'numeric' option with the 'defense' command".into(),
            2
        )
    );
    assert_eq!(
        p("--totals-per-worker").unwrap(),
        Action::Totals { per_worker: true }
    );
    assert_eq!(
        err("--totals -n"),
        (
            "Illegal 'numeric' option with the 'totals' command".into(),
            2
        )
    );
}

#[test]
fn health_takes_no_options_and_status_file_is_taken_out() {
    assert_eq!(p("--health").unwrap(), Action::Health);
    assert!(p("--health -n").is_err());
    let mut args: Vec<String> = ["--health", "--status-file", "/tmp/x", "--socket=/s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        take_path_option(&mut args, "--status-file")
            .unwrap()
            .as_deref(),
        Some("/tmp/x")
    );
    assert_eq!(
        take_socket_option(&mut args).unwrap().as_deref(),
        Some("/s")
    );
    assert_eq!(args, ["--health"]);
    let mut args = vec!["--health".to_string(), "--status-file".to_string()];
    assert_eq!(
        take_path_option(&mut args, "--status-file")
            .unwrap_err()
            .msg,
        "--status-file: missing argument"
    );
}

#[test]
fn reload_takes_no_options() {
    assert_eq!(p("--reload").unwrap(), Action::Reload);
    assert_eq!(
        err("--reload -n"),
        (
            "Illegal 'numeric' option with the 'reload' command".to_string(),
            2
        )
    );
    assert!(usage("rvsadm").contains("--reload"));
}

#[test]
fn drain_undrain_and_announcement_take_no_options() {
    assert_eq!(p("--drain").unwrap(), Action::Drain(true));
    assert_eq!(p("--undrain").unwrap(), Action::Drain(false));
    assert_eq!(p("--announcement").unwrap(), Action::Announcement);
    assert_eq!(
        err("--drain -t 10.0.0.1:80"),
        (
            "Illegal 'service-address' option with the 'drain' command".to_string(),
            2
        )
    );
    // A second command is an invalid option, as in ipvsadm.
    assert_eq!(
        err("--drain --undrain"),
        ("invalid option `--undrain'".to_string(), 2)
    );
    for c in ["--drain", "--undrain", "--announcement"] {
        assert!(usage("rvsadm").contains(c), "{c}");
    }
}

#[test]
fn the_option_table_is_what_the_parser_takes() {
    let table = option_table();
    assert!(table.len() > 50);
    for o in &table {
        // Every long name parses as the parser's own (an unknown one would
        // say "unknown option"); commands are accepted first.
        let line = if o.is_command {
            format!("--{}", o.long)
        } else {
            format!("-L --{}", o.long)
        };
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        if let Err(e) = parse(&args, "rvsadm") {
            assert!(!e.msg.contains("unknown option"), "{line}: {}", e.msg);
        }
    }
    let p = table.iter().find(|o| o.long == "persistent").unwrap();
    assert_eq!((p.short, p.value), (Some('p'), ValueKind::Optional));
    assert!(table.iter().any(|o| o.long == "reload" && o.is_command));
}
