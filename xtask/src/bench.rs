//! `cargo xtask bench [--quick]`: rvsd and dpdk-testpmd on the same virtual
//! devices and cores, side by side. The device is `net_pcap` replaying a
//! capture from `pktgen` forever (`rx_pcap=FILE,infinite_rx=1`) with no TX
//! device (sent packets are dropped), so both measure packet handling alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn rx_args(pcaps: &[PathBuf]) -> String {
    pcaps
        .iter()
        .map(|p| format!("rx_pcap={}", p.display()))
        .collect::<Vec<_>>()
        .join(",")
}

/// How big the packet pool of a run is.
struct Sizing {
    mb: u64,
    mbufs: u64,
    /// Bytes of packet data per mbuf, after the headroom.
    data_room: u64,
}

/// One measured setup.
struct Scenario {
    name: &'static str,
    traffic: &'static str,
    flows: u64,
    size: usize,
    ipv6: bool,
    /// rvsadm forwarding flag; NAT maps the port to 8080.
    fwd: &'static str,
    workers: usize,
    /// Change the configuration every second while measuring.
    churn: bool,
    /// Report new connections per second rather than packets per second.
    new_flows: bool,
    /// Count traffic per real server, service and total (`[stats]
    /// enabled`); off only to measure what counting costs.
    stats: bool,
    /// The port's kernel interface (the exception path). rvsd then runs in
    /// a network namespace of its own (`unshare --net`), so that the tap
    /// and its address never touch the machine's own network; off in the
    /// rows, on and off in the pair that measures what it costs.
    kernel: bool,
}

struct Run {
    testpmd_5tswap: f64,
    testpmd_macswap: f64,
    rvsd: serde_json::Value,
}

pub struct Bench {
    root: PathBuf,
    bin: PathBuf,
    dir: PathBuf,
    quick: bool,
    secs: f64,
}

const VIP4: &str = "10.99.0.1";
const VIP6: &str = "[fd00:99::1]";

impl Bench {
    pub fn new(root: &Path, quick: bool) -> Bench {
        let profile = if quick { "debug" } else { "release" };
        Bench {
            root: root.to_path_buf(),
            bin: root.join("target").join(profile),
            dir: root.join("target/bench"),
            quick,
            secs: if quick { 2.0 } else { 6.0 },
        }
    }

    fn scenarios(&self) -> Vec<Scenario> {
        let s = |name, traffic, flows, fwd, workers| Scenario {
            name,
            traffic,
            flows,
            size: 64,
            ipv6: false,
            fwd,
            workers,
            churn: false,
            new_flows: false,
            stats: true,
            kernel: false,
        };
        if self.quick {
            return vec![
                s("DR, established", "ack", 1000, "-g", 1),
                s("NAT, established", "ack", 1000, "-m", 1),
            ];
        }
        let m = 1_000_000;
        vec![
            s("DR, established, 1M flows", "ack", m, "-g", 1),
            s("DR, established, 1M flows", "ack", m, "-g", 2),
            s("NAT, established, 1M flows", "ack", m, "-m", 1),
            s("TUN (ipip), established, 1M flows", "ack", m, "-i", 1),
            Scenario {
                ipv6: true,
                ..s("DR over IPv6, established, 1M flows", "ack", m, "-g", 1)
            },
            Scenario {
                size: 1500,
                ..s(
                    "DR, established, 100k flows, 1500 B",
                    "ack",
                    100_000,
                    "-g",
                    1,
                )
            },
            Scenario {
                new_flows: true,
                ..s(
                    "New flows: 1M clients, SYN then FIN, each SYN a new connection",
                    "synfin",
                    m,
                    "-g",
                    1,
                )
            },
            Scenario {
                churn: true,
                ..s("DR, mix, config change every second", "mix", m, "-g", 1)
            },
        ]
    }

    /// One capture per worker queue: with several workers, each holds the
    /// flows that worker owns (as an RSS hash matching rvsd's would).
    fn pcaps(&self, sc: &Scenario) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.dir)?;
        (0..sc.workers)
            .map(|k| {
                let f = self.dir.join(format!(
                    "{}-{}-{}{}-{k}of{}.pcap",
                    sc.traffic,
                    sc.flows,
                    sc.size,
                    if sc.ipv6 { "-v6" } else { "" },
                    sc.workers
                ));
                if !f.exists() {
                    let mut c = Command::new(self.bin.join("pktgen"));
                    c.args([
                        "--out",
                        f.to_str().unwrap(),
                        "--flows",
                        &sc.flows.to_string(),
                    ])
                    .args(["--traffic", sc.traffic, "--size", &sc.size.to_string()])
                    .args(["--shard", &format!("{k}/{}", sc.workers)]);
                    if sc.ipv6 {
                        c.arg("--ipv6");
                    }
                    let st = c.status().context("running pktgen")?;
                    if !st.success() {
                        bail!("pktgen failed");
                    }
                }
                Ok(f)
            })
            .collect()
    }

    /// Memory, mbufs and mbuf data room (after the 128-byte headroom) so
    /// that the whole capture fits in the pool. Captures of more than about
    /// 1.5 M packets only fit with small buffers (a pool of 2 M 2 KiB mbufs
    /// cannot be allocated on ordinary pages here); both sides then use them.
    fn sizing(sc: &Scenario) -> Sizing {
        let packets = if sc.traffic == "synfin" {
            2 * sc.flows
        } else {
            sc.flows
        };
        let mbufs = packets + 65536;
        let data_room: u64 = if packets > 1_500_000 { 256 } else { 2048 };
        // An mbuf takes its data room, the headroom, the 128-byte struct and
        // the pool's object header; pools need one contiguous area on
        // ordinary pages, and the EAL some besides.
        let mb = mbufs * (data_room + 1152) / (1 << 20) + 1024;
        Sizing {
            mb,
            mbufs,
            data_room,
        }
    }

    fn lcores(workers: usize) -> String {
        // Main lcore 0; workers 1..; on small machines extra lcores share
        // CPUs round robin.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..=workers)
            .map(|l| format!("{l}@{}", l % cpus))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn testpmd(&self, sc: &Scenario, pcaps: &[PathBuf], mode: &str) -> Result<f64> {
        let Sizing {
            mb,
            mbufs,
            data_room,
        } = Self::sizing(sc);
        let rx = rx_args(pcaps);
        // Loading the capture into mbufs takes a while before forwarding.
        let load = 6 + sc.flows / 100_000;
        let out = Command::new("timeout")
            .args(["-s", "INT", &format!("{}", self.secs as u64 + load)])
            .arg("dpdk-testpmd")
            .arg(format!("--lcores={}", Self::lcores(sc.workers)))
            .args([
                "--no-huge",
                "-m",
                &mb.to_string(),
                "--no-pci",
                "--file-prefix",
                "rvsbench",
            ])
            .arg(format!("--vdev=net_pcap0,{rx},infinite_rx=1"))
            .arg("--")
            .arg(format!("--forward-mode={mode}"))
            .args([
                "--stats-period",
                "1",
                "--total-num-mbufs",
                &mbufs.to_string(),
            ])
            // testpmd's size includes the headroom.
            .arg(format!("--mbuf-size={}", data_room + 128))
            .arg(format!("--nb-cores={}", sc.workers))
            .arg(format!("--rxq={}", sc.workers))
            .arg(format!("--txq={}", sc.workers))
            .stdin(Stdio::null())
            .output()
            .context("running dpdk-testpmd")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut pps: Vec<f64> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        // The first periods include start-up and loading the capture.
        if pps.len() > 2 {
            pps.drain(..2);
        }
        pps.sort_by(f64::total_cmp);
        pps.get(pps.len() / 2)
            .copied()
            .context("testpmd printed no rates")
    }

    fn rvsd(&self, sc: &Scenario, pcaps: &[PathBuf]) -> Result<serde_json::Value> {
        let Sizing {
            mb,
            mbufs,
            data_room,
        } = Self::sizing(sc);
        let rx = rx_args(pcaps);
        let socket = self.dir.join("rvsd.sock");
        let lcores: Vec<String> = (1..=sc.workers).map(|l| l.to_string()).collect();
        let mut statics = String::new();
        for i in 1..=4 {
            let _ = write!(
                statics,
                "{{ address = \"10.99.1.{i}\", mac = \"02:00:00:00:01:0{i}\" }}, {{ address = \"fd00:99::1:{i}\", mac = \"02:00:00:00:01:0{i}\" }}, "
            );
        }
        let cfg = format!(
            "[dpdk]\nhugepages = \"off\"\nmemory_mb = {mb}\nmbufs = {mbufs}\nmbuf_data_room = {data_room}\n\n\
[[port]]\nname = \"pcap\"\ndevice = \"net_pcap0,{rx},infinite_rx=1\"\naddress = \"10.99.0.254/16\"\naddress6 = \"fd00:99::fe/64\"\nkernel_interface = {kernel}\n\n\
[workers]\nlcores = [{l}]\nidle_empty_polls = 0\n\n\
[connections]\ncapacity_per_worker = {cap}\nsloppy_tcp = true\n\n\
[stats]\nenabled = {stats}\n\n\
[neighbours]\nstatic = [{statics}]\n\n\
[control]\nsocket = \"{s}\"\n",
            l = lcores.join(", "),
            cap = sc.flows + 1000,
            stats = sc.stats,
            kernel = sc.kernel,
            s = socket.display()
        );
        let cfg_path = self.dir.join("rvsd-bench.toml");
        std::fs::write(&cfg_path, cfg)?;
        let rvsd = self.bin.join("rvsd");
        let mut child = if sc.kernel {
            let mut c = Command::new("unshare");
            c.arg("--net").arg("--").arg(&rvsd);
            c
        } else {
            Command::new(&rvsd)
        };
        let mut child = child
            .args(["--config", cfg_path.to_str().unwrap()])
            .args(["--run-for", &format!("{}", self.secs + 2.0)])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rvsd")?;
        // rvsadm against this run's daemon.
        let rvsadm_cmd = |line: &str| {
            let mut c = Command::new(self.bin.join("rvsadm"));
            c.arg("--socket").arg(&socket).args(line.split_whitespace());
            c
        };
        let rvsadm = |line: &str| -> Result<()> {
            let st = rvsadm_cmd(line).status()?;
            if !st.success() {
                bail!("rvsadm {line} failed");
            }
            Ok(())
        };
        let ready = Instant::now();
        while rvsadm_cmd("-Ln")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            if ready.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                bail!("rvsd did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (vip, rs): (&str, Box<dyn Fn(u32) -> String>) = if sc.ipv6 {
            (VIP6, Box::new(|i| format!("[fd00:99::1:{i}]")))
        } else {
            (VIP4, Box::new(|i| format!("10.99.1.{i}")))
        };
        rvsadm(&format!("-A -t {vip}:80 -s wlc"))?;
        for i in 1..=4 {
            let port = if sc.fwd == "-m" { 8080 } else { 80 };
            rvsadm(&format!("-a -t {vip}:80 -r {}:{port} {}", rs(i), sc.fwd))?;
        }
        if sc.churn {
            let mut w = 1;
            while child.try_wait()?.is_none() {
                std::thread::sleep(Duration::from_secs(1));
                // The daemon stops itself when its time is up.
                if child.try_wait()?.is_some() {
                    break;
                }
                w = w % 5 + 1;
                // Quietly: the daemon may stop between the check and the call.
                let _ = rvsadm_cmd(&format!("-e -t {vip}:80 -r {}:80 {} -w {w}", rs(1), sc.fwd))
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let json = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .context("rvsd printed no summary")?;
        Ok(serde_json::from_str(json)?)
    }

    /// `conn-memory`'s table (bytes per IPv4 connection at 1 M and 10 M
    /// entries; 100 k in quick mode) and the largest figure in it.
    fn conn_memory(&self) -> Result<(String, f64)> {
        let mut cmd = Command::new(self.bin.join("conn-memory"));
        if self.quick {
            cmd.arg("100000");
        }
        let out = cmd.output().context("running conn-memory")?;
        anyhow::ensure!(out.status.success(), "conn-memory failed");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // Rows: connections, table B/conn, RSS B/conn, insert ns, lookup ns.
        let worst = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 5 && f[0].parse::<u64>().is_ok())
                    .then(|| f[1].parse::<f64>().ok())
                    .flatten()
            })
            .fold(0.0, f64::max);
        anyhow::ensure!(worst > 0.0, "conn-memory printed no sizes:\n{text}");
        Ok((text, worst))
    }

    /// What a setting costs: DR over the established flows of the main row,
    /// with the setting on and off, alternating (on, off, on, ...) so that
    /// the machine's drift hits both alike; the median of the paired
    /// ratios. `what` names the setting in the table's header. Returns the
    /// table and that median.
    fn paired_cost(&self, what: &str, on: Scenario, off: Scenario) -> Result<(String, f64)> {
        let pairs = if self.quick { 1 } else { 3 };
        let pcaps = self.pcaps(&on)?;
        let mut t =
            format!("| pair | {what} on Mpps | {what} off Mpps | on / off |\n|---|---|---|---|\n");
        let mut ratios = Vec::new();
        for i in 1..=pairs {
            let pps = |sc: &Scenario| -> Result<f64> {
                let r = self.rvsd(sc, &pcaps)?;
                let pps = r["rx_pps"].as_f64().unwrap_or(0.0);
                anyhow::ensure!(pps > 0.0, "no packets measured");
                Ok(pps)
            };
            let (a, b) = (pps(&on)?, pps(&off)?);
            ratios.push(a / b);
            let _ = writeln!(
                t,
                "| {i} | {:.2} | {:.2} | {:.3} |",
                a / 1e6,
                b / 1e6,
                a / b
            );
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let _ = writeln!(t, "\nMedian on / off: {median:.3}");
        Ok((t, median))
    }

    /// The DR row's scenario, for the paired measurements.
    fn dr_established(&self) -> Scenario {
        Scenario {
            name: "DR, established",
            traffic: "ack",
            flows: if self.quick { 1000 } else { 1_000_000 },
            size: 64,
            ipv6: false,
            fwd: "-g",
            workers: 1,
            churn: false,
            new_flows: false,
            stats: true,
            kernel: false,
        }
    }

    /// What counting traffic costs (`[stats] enabled`).
    pub fn counting_cost(&self) -> Result<(String, f64)> {
        let on = self.dr_established();
        let off = Scenario { stats: false, ..on };
        self.paired_cost("counting", on, off)
    }

    /// What the exception path costs (`[[port]] kernel_interface`): the
    /// worker's paced look at its tap, and the classification's extra
    /// tests. None of the capture is for the kernel.
    pub fn exception_cost(&self) -> Result<(String, f64)> {
        let off = self.dr_established();
        let on = Scenario {
            kernel: true,
            ..off
        };
        self.paired_cost("exception path", on, off)
    }

    pub fn run(&self) -> Result<()> {
        eprintln!("== connection table memory");
        let (memory, per_conn) = self.conn_memory()?;
        println!("{memory}");
        let mut rows = Vec::new();
        for sc in self.scenarios() {
            let pcap = match self.pcaps(&sc) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{}: {e:#}", sc.name);
                    continue;
                }
            };
            eprintln!(
                "== {} ({} worker{})",
                sc.name,
                sc.workers,
                if sc.workers > 1 { "s" } else { "" }
            );
            // A failed measurement is reported as 0 and the run goes on.
            let or_zero = |r: Result<f64>| {
                r.unwrap_or_else(|e| {
                    eprintln!("{}: {e:#}", sc.name);
                    0.0
                })
            };
            let r = Run {
                testpmd_5tswap: or_zero(self.testpmd(&sc, &pcap, "5tswap")),
                testpmd_macswap: if self.quick {
                    0.0
                } else {
                    or_zero(self.testpmd(&sc, &pcap, "macswap"))
                },
                rvsd: self.rvsd(&sc, &pcap).unwrap_or_else(|e| {
                    eprintln!("{}: {e:#}", sc.name);
                    serde_json::json!({})
                }),
            };
            rows.push((sc, r));
        }
        let table = self.table(&rows);
        println!("{table}");
        eprintln!("== what counting traffic costs (DR, established; on and off alternating)");
        let (cost, cost_ratio) = self.counting_cost()?;
        println!("{cost}");
        eprintln!("== what the exception path costs (DR, established; on and off alternating)");
        let (kcost, kcost_ratio) = self.exception_cost()?;
        println!("{kcost}");
        if self.quick {
            // A smoke check: the runner works and both sides moved packets.
            for (sc, r) in &rows {
                let pps = r.rvsd["rx_pps"].as_f64().unwrap_or(0.0);
                if pps <= 0.0 || r.testpmd_5tswap <= 0.0 {
                    bail!(
                        "{}: no packets measured (rvsd {pps}, testpmd {})",
                        sc.name,
                        r.testpmd_5tswap
                    );
                }
            }
            println!("bench --quick: ok");
        } else {
            eprintln!("== end to end: rvsd, nginx stream, HAProxy and no director");
            // The lab runs the release rvsd this benchmark built.
            std::env::set_var("RVS_BIN_DIR", &self.bin);
            let (e2e, ka, nc) = crate::bench_e2e::run(&self.root)?;
            println!("{e2e}");
            let targets = Self::targets(&rows, ka, nc, per_conn, cost_ratio, kcost_ratio);
            println!("{targets}");
            let results = self.root.join("bench/RESULTS.md");
            std::fs::write(
                &results,
                self.report(&table, &e2e, &memory, &cost, &kcost, &targets),
            )?;
            println!("written to {}", results.display());
        }
        Ok(())
    }

    fn table(&self, rows: &[(Scenario, Run)]) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| scenario | workers | testpmd 5tswap Mpps | testpmd macswap Mpps | rvsd Mpps | rvsd ns/pkt | rvsd / 5tswap | new conn/s | burst p50 / p99 / p99.9 µs |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
        for (sc, r) in rows {
            let pps = r.rvsd["rx_pps"].as_f64().unwrap_or(0.0);
            let us = |k: &str| r.rvsd[k].as_f64().unwrap_or(0.0) / 1000.0;
            let _ = writeln!(
                t,
                "| {} | {} | {:.2} | {} | {:.2} | {:.1} | {:.2} | {} | {:.1} / {:.1} / {:.1} |",
                sc.name,
                sc.workers,
                r.testpmd_5tswap / 1e6,
                if r.testpmd_macswap > 0.0 {
                    format!("{:.2}", r.testpmd_macswap / 1e6)
                } else {
                    "-".into()
                },
                pps / 1e6,
                if pps > 0.0 {
                    1e9 / pps * sc.workers as f64
                } else {
                    0.0
                },
                pps / r.testpmd_5tswap.max(1.0),
                if sc.new_flows {
                    format!("{:.0}", r.rvsd["new_conns_per_s"].as_f64().unwrap_or(0.0))
                } else {
                    "-".into()
                },
                us("burst_ns_p50"),
                us("burst_ns_p99"),
                us("burst_ns_p999"),
            );
        }
        t
    }

    /// The issue's targets against this run's figures.
    fn targets(
        rows: &[(Scenario, Run)],
        ka: f64,
        nc: f64,
        per_conn: f64,
        counting: f64,
        kernel: f64,
    ) -> String {
        let ratio = |pred: &dyn Fn(&Scenario) -> bool| {
            rows.iter()
                .find(|(s, _)| pred(s))
                .map(|(_, r)| r.rvsd["rx_pps"].as_f64().unwrap_or(0.0) / r.testpmd_5tswap.max(1.0))
                .unwrap_or(0.0)
        };
        let dr = ratio(&|s| s.name.starts_with("DR, established, 1M") && s.workers == 1);
        let nf = ratio(&|s| s.new_flows);
        let line = |what: &str, got: f64, want: f64| {
            let verdict = if got >= want {
                "met".to_string()
            } else {
                format!("missed by {:.0} %", (1.0 - got / want) * 100.0)
            };
            format!("| {what} | ≥ {want:.2} | {got:.2} | {verdict} |\n")
        };
        let mut t = String::from("| target | wanted | measured | |\n|---|---|---|---|\n");
        t += &line("DR, established, 1M flows: rvsd / testpmd 5tswap", dr, 0.5);
        t += &line("New flows: rvsd / testpmd 5tswap", nf, 0.25);
        t += &line("End to end, rvsd DR keep-alive: × direct", ka, 0.9);
        t += &line(
            "End to end, rvsd DR new connection per request: × direct",
            nc,
            0.9,
        );
        t += &format!(
            "| Memory per IPv4 connection (`conn-memory`, half of them NAT) | ≤ 64 B | {per_conn:.1} B | {} |\n",
            if per_conn <= 64.0 { "met" } else { "missed" }
        );
        t += &line(
            "Traffic counters: DR, established, 1M flows, counting on / off",
            counting,
            0.97,
        );
        t += &line(
            "Exception path: DR, established, 1M flows, kernel interface on / off",
            kernel,
            0.98,
        );
        t
    }

    fn report(
        &self,
        table: &str,
        e2e: &str,
        memory: &str,
        cost: &str,
        kcost: &str,
        targets: &str,
    ) -> String {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let date = Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        format!(
            "# Benchmark results\n\n\
Machine: {cpu}, {cpus} CPUs (a shared VM: figures drift from run to run; compare within a run). Date: {date}.\n\n\
Command: `cargo xtask bench` (release build). Each row replays one capture from `pktgen` through `net_pcap` \
(`rx_pcap=FILE,infinite_rx=1`, TX to nowhere) for {secs} s, first with `dpdk-testpmd --forward-mode=5tswap` and \
`macswap`, then with rvsd (busy polling, `sloppy_tcp` so a replayed capture of ACKs opens its connections on the first pass), \
on the same lcores. 64-byte frames unless said. rvsd's Mpps counts packets handled after a two-second warm-up; ns/pkt is per worker; \
burst times are rx-to-tx per non-empty pass of the poll loop (up to 64 packets: a second rx burst when the first \
was full), in hdrhistogram (a pass runs from one clock reading at the top of the poll loop to the next, so it includes its slice of the expiry sweep). The new-flow capture holds every client's SYN and then every client's FIN: the FIN \
takes the connection to TIME_WAIT, so on the next pass the SYN opens a new one (IPVS's conn_reuse_mode) and every \
SYN is a new connection however long the replay runs; \"new conn/s\" is that sustained rate. Its 2 M packets only \
fit a pool of 384-byte mbufs, which testpmd then uses too. \
With 2 workers on this 2-CPU machine, worker 2 shares CPU 0 with the (mostly idle) control thread.\n\n{table}\n\
## End to end\n\n\
The walkthrough's namespaces: one client, two real servers running nginx (one worker process each), and in the \
director's place rvsd (DR, af_packet, one worker with idle back-off), nginx `stream` (one worker process) or \
HAProxy `mode tcp` (one thread); \"direct\" is the client talking to one real server with no director. \
wrk -t2 -c32 for {e2e_secs} s, with keep-alive and with `Connection: close` (a new connection per request), \
three runs each, the median shown; the direct runs and those through rvsd alternate, and rvsd's × direct is the \
median of the three paired ratios (the other directors' are ratios of medians); the namespaces reuse TIME_WAIT \
ports (`tcp_tw_reuse`), as load generators must; \
the long transfer is one curl of a 100 MB file. Client, servers and director share the machine's {cpus} CPUs, \
so the figures compare the directors with each other, not with dedicated hardware. Director CPU counts the \
director process's user and system time during both wrk runs (rvsd's includes its polling).\n\n{e2e}\n\
## Memory per connection\n\n\
`conn-memory` (part of this run): IPv4 connections inserted into one worker's table sized for them, half \
of them NAT (which are indexed a second time by their replies' key); bytes by the table's own accounting \
(slab, index, registries) and by the growth of the process's resident memory. DPVS spends about 576 bytes \
per connection.\n\n```\n{memory}```\n\n\
## What counting traffic costs\n\n\
rvsd counts connections, packets and bytes per real server as the kernel's `ip_vs_stats` does (services and the \
total are summed on the control thread): each worker adds to a cache line of its own per real server, with plain \
loads and stores. The DR row above again, with `[stats] enabled` on and off in alternating runs of {secs} s; the \
ratio of each pair, and their median.\n\n{cost}\n\
## What the exception path costs\n\n\
With a kernel interface (`[[port]] kernel_interface`, on by default) each worker also owns a queue pair on the \
port's tap and looks for frames from the kernel every 100 µs (an empty look is one system call), and the \
classification tests whether a frame is the host's. The DR row above again (none of its packets are the kernel's), \
with the kernel interface on and off in alternating runs of {secs} s (rvsd in a network namespace of its own); \
the ratio of each pair, and their median.\n\n{kcost}\n\
## Targets\n\n{targets}\n\
Where the time goes (DR, 1 M flows). testpmd's 5tswap spends its whole budget in `net_pcap` (each packet is \
copied out of a capture mbuf that is long out of cache) and the dropping TX; rvsd pays the same and then parses, \
finds the connection, steps its TCP state and rewrites the frame. At 1 M flows the connection table (about 40 MB: \
slots and index) is larger than the caches, and a lookup needs two memory accesses, the index line and the slot. \
rvsd overlaps them across a group of up to 64 packets (two rx bursts when the first was full): it hashes every \
packet's flow key and prefetches its 64-byte index line, then reads those lines and prefetches the slots whose \
16-bit tags match, and only then handles the packets, each starting at the slot found for it (the scheme of \
DPDK's `rte_hash_lookup_bulk`; `hashbrown`, used before, exposes no bucket address to prefetch). With everything \
in cache, `cargo bench -p rvs-bench` puts one established packet through `Worker::handle` in about 50 ns. \
The 1500-byte row is bounded by copying the frames, for testpmd as for rvsd. The machine is a shared VM: while \
tuning, alternating runs of one build against testpmd moved the DR ratio by about ±3 %, and the end-to-end \
new-connection ratio by about ±5 %.\n",
            secs = self.secs,
            e2e_secs = 5
        )
    }
}
