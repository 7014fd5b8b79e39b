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

/// One line per entry of `option_table()`: what `cargo xtask dist` makes the
/// man page and the completions from.
fn option_line(o: &OptionInfo) -> String {
    let short = o.short.map(|c| format!("-{c} ")).unwrap_or_default();
    let value = match o.value {
        ValueKind::None => "",
        ValueKind::Required => " V",
        ValueKind::Optional => " [V]",
    };
    let kind = if o.is_command { "cmd" } else { "opt" };
    format!("{kind} {short}--{}{value}", o.long)
}

#[test]
fn the_option_table_keeps_its_entries_and_their_order() {
    let lines: Vec<String> = option_table().iter().map(option_line).collect();
    let expected = [
        "cmd -A --add-service",
        "cmd -E --edit-service",
        "cmd -D --delete-service",
        "cmd -C --clear",
        "cmd -L --list",
        "cmd -l --list",
        "cmd -Z --zero",
        "cmd -a --add-server",
        "cmd -e --edit-server",
        "cmd -d --delete-server",
        "cmd --set",
        "cmd -h --help",
        "cmd -v --version",
        "cmd -R --restore",
        "cmd -S --save",
        "cmd --start-daemon V",
        "cmd --stop-daemon V",
        "cmd --counters",
        "cmd --defense",
        "cmd --totals",
        "cmd --totals-per-worker",
        "cmd --health",
        "cmd --reload",
        "cmd --drain",
        "cmd --undrain",
        "cmd --announcement",
        "opt -t --tcp-service V",
        "opt -u --udp-service V",
        "opt --sctp-service V",
        "opt -f --fwmark-service V",
        "opt -s --scheduler V",
        "opt -p --persistent [V]",
        "opt -M --netmask V",
        "opt -r --real-server V",
        "opt -m --masquerading",
        "opt -i --ipip",
        "opt -g --gatewaying",
        "opt -w --weight V",
        "opt -x --u-threshold V",
        "opt -y --l-threshold V",
        "opt -n --numeric",
        "opt -c --connection",
        "opt --mcast-interface V",
        "opt --syncid V",
        "opt --timeout",
        "opt --daemon",
        "opt --stats",
        "opt --rate",
        "opt --thresholds",
        "opt --persistent-conn",
        "opt --nosort",
        "opt --sort",
        "opt -X --exact",
        "opt -6 --ipv6",
        "opt -o --ops",
        "opt --pe V",
        "opt -b --sched-flags V",
        "opt --mcast-group V",
        "opt --mcast-port V",
        "opt --mcast-ttl V",
        "opt --sync-maxlen V",
        "opt --tun-info",
        "opt --tun-type V",
        "opt --tun-port V",
        "opt --tun-nocsum",
        "opt --tun-csum",
        "opt --tun-remcsum",
    ];
    assert_eq!(lines, expected);
}

/// ipvsadm's command/option table, pinned: for each command, its name in
/// messages and one char per option in `optnames` order (the order the
/// table is checked in, so the order in which errors name options).
#[test]
fn the_command_option_table_keeps_every_rule_and_the_check_order() {
    let all_opts = OPT_TABLE.map(|row| row.opt);
    let names: Vec<&str> = all_opts.iter().map(|o| o.name()).collect();
    assert_eq!(
        names,
        [
            "numeric",
            "connection",
            "service-address",
            "scheduler",
            "persistent",
            "netmask",
            "real-server",
            "forwarding-method",
            "weight",
            "u-threshold",
            "l-threshold",
            "mcast-interface",
            "timeout",
            "daemon",
            "stats",
            "rate",
            "thresholds",
            "persistent-conn",
            "nosort",
            "syncid",
            "exact",
            "ops",
            "pe",
            "sched-flags",
            "mcast-group",
            "mcast-port",
            "mcast-ttl",
            "sync-maxlen",
            "tun-info",
            "tun-type",
            "tun-port",
            "tun-nocsum",
            "tun-csum",
            "tun-remcsum",
        ]
    );
    // Each option's enum value is its place in that order (the bit it sets
    // in `State::seen`).
    for (i, o) in all_opts.iter().enumerate() {
        assert_eq!(*o as usize, i, "{o:?}");
    }
    let rules: Vec<(&str, String)> = [
        Cmd::AddService,
        Cmd::EditService,
        Cmd::DelService,
        Cmd::Flush,
        Cmd::List,
        Cmd::AddServer,
        Cmd::DelServer,
        Cmd::EditServer,
        Cmd::Set,
        Cmd::StartDaemon,
        Cmd::StopDaemon,
        Cmd::Restore,
        Cmd::Save,
        Cmd::Zero,
        Cmd::Help,
        Cmd::Version,
        Cmd::Counters,
        Cmd::Defense,
        Cmd::Totals,
        Cmd::TotalsPerWorker,
        Cmd::Health,
        Cmd::Reload,
        Cmd::Drain,
        Cmd::Undrain,
        Cmd::Announcement,
    ]
    .into_iter()
    .map(|c| (c.name(), all_opts.iter().map(|o| rule(c, *o)).collect()))
    .collect();
    // One char per option, in the order of the names above.
    let expected = [
        ("add-service", "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx"),
        ("edit-service", "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx"),
        ("delete-service", "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("flush", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("list", " 11xxxxxxxxx11       xxxxxxx xxxxx"),
        ("add-server", "xx+xxx+    xxxxxxxxxxxxxxxxxx     "),
        ("delete-server", "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("edit-server", "xx+xxx+    xxxxxxxxxxxxxxxxxx     "),
        ("set", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("start-daemon", "xxxxxxxxxxx xxxxxxx xxxx    xxxxxx"),
        ("stop-daemon", "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx"),
        ("restore", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("save", " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("zero", "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("help", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("version", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("counters", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("defense", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("totals", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("totals-per-worker", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("health", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("reload", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("drain", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("undrain", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("announcement", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ];
    let got: Vec<(&str, &str)> = rules.iter().map(|(c, r)| (*c, r.as_str())).collect();
    assert_eq!(got, expected);
}

/// What each spelling means to the parser, pinned with the entries of
/// `option_table()` above (same order).
#[test]
fn every_spelling_keeps_its_command_or_option() {
    let got: Vec<String> = DEFS
        .iter()
        .map(|d| format!("{} {:?}", d.long, d.kind))
        .collect();
    let expected = [
        "add-service Cmd(AddService)",
        "edit-service Cmd(EditService)",
        "delete-service Cmd(DelService)",
        "clear Cmd(Flush)",
        "list Cmd(List)",
        "list Cmd(List)",
        "zero Cmd(Zero)",
        "add-server Cmd(AddServer)",
        "edit-server Cmd(EditServer)",
        "delete-server Cmd(DelServer)",
        "set Cmd(Set)",
        "help Cmd(Help)",
        "version Cmd(Version)",
        "restore Cmd(Restore)",
        "save Cmd(Save)",
        "start-daemon Cmd(StartDaemon)",
        "stop-daemon Cmd(StopDaemon)",
        "counters Cmd(Counters)",
        "defense Cmd(Defense)",
        "totals Cmd(Totals)",
        "totals-per-worker Cmd(TotalsPerWorker)",
        "health Cmd(Health)",
        "reload Cmd(Reload)",
        "drain Cmd(Drain)",
        "undrain Cmd(Undrain)",
        "announcement Cmd(Announcement)",
        "tcp-service Opt(Service)",
        "udp-service Opt(Service)",
        "sctp-service Opt(Service)",
        "fwmark-service Opt(Service)",
        "scheduler Opt(Scheduler)",
        "persistent Opt(Persistent)",
        "netmask Opt(Netmask)",
        "real-server Opt(RealServer)",
        "masquerading Opt(Forward)",
        "ipip Opt(Forward)",
        "gatewaying Opt(Forward)",
        "weight Opt(Weight)",
        "u-threshold Opt(UThreshold)",
        "l-threshold Opt(LThreshold)",
        "numeric Opt(Numeric)",
        "connection Opt(Connection)",
        "mcast-interface Opt(McastInterface)",
        "syncid Opt(SyncId)",
        "timeout Opt(Timeout)",
        "daemon Opt(Daemon)",
        "stats Opt(Stats)",
        "rate Opt(Rate)",
        "thresholds Opt(Thresholds)",
        "persistent-conn Opt(PersistentConn)",
        "nosort Opt(NoSort)",
        "sort Sort",
        "exact Opt(Exact)",
        "ipv6 Ipv6",
        "ops Opt(Ops)",
        "pe Opt(Pe)",
        "sched-flags Opt(SchedFlags)",
        "mcast-group Opt(McastGroup)",
        "mcast-port Opt(McastPort)",
        "mcast-ttl Opt(McastTtl)",
        "sync-maxlen Opt(SyncMaxlen)",
        "tun-info Opt(TunInfo)",
        "tun-type Opt(TunType)",
        "tun-port Opt(TunPort)",
        "tun-nocsum Opt(TunNoCsum)",
        "tun-csum Opt(TunCsum)",
        "tun-remcsum Opt(TunRemCsum)",
    ];
    assert_eq!(got, expected);
}

/// A new row cannot take a spelling another has: a short form is one
/// command or option, and a long name given twice (`--list` for `-L` and
/// `-l`) means the same thing both times.
#[test]
fn a_spelling_means_one_thing() {
    for (i, a) in DEFS.iter().enumerate() {
        for b in &DEFS[i + 1..] {
            assert!(
                a.short.is_none() || a.short != b.short,
                "-{} is both --{} and --{}",
                a.short.unwrap(),
                a.long,
                b.long
            );
            if a.long == b.long {
                assert_eq!(
                    format!("{:?}", a.kind),
                    format!("{:?}", b.kind),
                    "--{}",
                    a.long
                );
            }
        }
    }
}
