//! `cargo xtask bench [--quick]`: rvsd and dpdk-testpmd on the same virtual
//! devices and cores, side by side. The device is `net_pcap` replaying a
//! capture from `pktgen` forever (`rx_pcap=FILE,infinite_rx=1`) with no TX
//! device (sent packets are dropped), so both measure packet handling alone.
//!
//! Why this file is long (about 1950 lines): the whole benchmark (scenarios,
//! testpmd and rvsd runs, the statistics) and the text of
//! `bench/RESULTS.md`, whose explanations are written here with the numbers
//! they describe; about 150 lines are tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// 1k, 100k, 10M.
fn flows_label(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// The EAL makes a runtime folder per file prefix (`/var/run/dpdk/PREFIX`)
/// and never removes it: rvsd and flowgen remove their own on the way out
/// (`dpdk::Eal::remove_own_runtime_dir`), this is for testpmd's and for a
/// flowgen that was killed. Called once the process has exited.
fn remove_runtime_dir(prefix: &str) {
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(prefix));
}

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
#[derive(Clone, Copy)]
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
    /// How the traffic reaches several workers' queues.
    split: Split,
    /// The port's kernel interface (the exception path). rvsd then runs in
    /// a network namespace of its own (`unshare --net`), so that the tap
    /// and its address never touch the machine's own network; off in the
    /// rows, on and off in the pair that measures what it costs.
    kernel: bool,
    /// The connection sync daemon's master, on the port's kernel interface
    /// (`kernel` must be on); on and off in the pair that measures it.
    sync: bool,
    /// Where the packets come from.
    source: Source,
}

impl Scenario {
    /// The capture row of DR over 1 M established flows, 64-byte IPv4
    /// frames: the main row, and with one worker the first target's.
    fn is_dr_1m(&self) -> bool {
        self.traffic == "ack"
            && self.fwd == "-g"
            && self.flows == 1_000_000
            && self.size == 64
            && !self.ipv6
            && self.source == Source::Capture
    }

    /// The first target's row: DR, 1 M flows, one worker.
    fn is_dr_target(&self) -> bool {
        self.is_dr_1m() && self.workers == 1 && !self.churn
    }

    /// A two-worker target's row: DR, 1 M flows, two workers.
    fn is_two_worker_target(&self) -> bool {
        self.is_dr_1m() && self.workers == 2
    }

    /// The two-worker target's row split by `split`.
    fn is_scaling_target(&self, split: Split) -> bool {
        self.is_two_worker_target() && self.split == split
    }
}

/// Where a run's packets come from.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    /// A `pktgen` capture, replayed from mbufs by net_pcap (`infinite_rx`).
    Capture,
    /// `flowgen`, on a CPU of its own, over a memif pair: the same ACKs made
    /// on the fly, for flow counts whose capture would not fit in mbufs
    /// (the flow-count sweep).
    Generator,
}

/// How a capture is split over the workers' receive queues.
#[derive(Clone, Copy, PartialEq)]
enum Split {
    /// As a NIC puts it on its queues when rvsd has programmed its RSS
    /// (Toeplitz over the client's address and port under rvsd's key,
    /// through rvsd's redirection table: `dpdk::PortConfig::rss_key`).
    /// Each queue then holds the flows its worker owns (`owner_of` is that
    /// same hash), so no packet is handed over.
    ClientEndpointRss,
    /// As a NIC that cannot hash the source alone puts it on its queues:
    /// Toeplitz over the 5-tuple with Microsoft's key and a round-robin
    /// redirection table (`rvs_bench::rss_queue`); rvsd hands packets to
    /// their owners.
    FiveTupleRss,
}

struct Run {
    testpmd_5tswap: f64,
    testpmd_macswap: f64,
    /// flowgen's summary of testpmd's 5tswap run, when it was the source
    /// (rvsd's is in `rvsd["generator"]`).
    testpmd_generator: Option<serde_json::Value>,
    rvsd: serde_json::Value,
}

/// A running `flowgen` (see `bench/src/bin/flowgen.rs`), the source of the
/// [`Source::Generator`] rows; killed if dropped before [`Self::finish`].
struct Flowgen {
    child: Option<std::process::Child>,
}

impl Flowgen {
    /// Starts it against the measured side's memif socket, on CPU 0 (the
    /// measured worker runs on CPU 1), for at most `bound_secs`.
    fn start(bench: &Bench, sc: &Scenario, bound_secs: u64) -> Result<Flowgen> {
        let child = Command::new(bench.bin.join("flowgen"))
            .arg("--socket")
            .arg(bench.memif_socket())
            .args(["--flows", &sc.flows.to_string()])
            .args(["--size", &sc.size.to_string()])
            .args(["--cpu", "0", "--seconds", &bound_secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting flowgen")?;
        Ok(Flowgen { child: Some(child) })
    }

    /// Stops it (SIGINT) and returns its summary: frames sent, and how
    /// many of its tries to send a burst the measured side refused.
    fn finish(mut self) -> Result<serde_json::Value> {
        let child = self.child.take().context("flowgen already finished")?;
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let json = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .with_context(|| format!("flowgen printed no summary ({})", out.status))?;
        let v: serde_json::Value = serde_json::from_str(json)?;
        anyhow::ensure!(
            v["sent"].as_u64().unwrap_or(0) > 0,
            "flowgen sent nothing: its memif never connected"
        );
        Ok(v)
    }
}

impl Drop for Flowgen {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // Killed, it could not remove its own (`rvs<pid>`, as rvsd's).
            remove_runtime_dir(&format!("rvs{}", c.id()));
        }
    }
}

pub struct Bench {
    root: PathBuf,
    bin: PathBuf,
    dir: PathBuf,
    quick: bool,
    secs: f64,
}

/// Pairs of runs in each paired measurement (on / off): the median of
/// five, as single runs on this shared VM vary by a tenth or more.
const PAIRS: usize = 5;
/// rvsd's `[workers] flow_seed` in the benchmark, and pktgen's
/// `--flow-seed`: captures are split by owning worker in advance, which
/// needs the key rvsd hashes client endpoints with.
const BENCH_FLOW_SEED: u64 = 1;
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
            sync: false,
            split: Split::ClientEndpointRss,
            source: Source::Capture,
        };
        // The flow-count sweep: established DR from flowgen, one worker.
        let generated = |name, flows| Scenario {
            source: Source::Generator,
            ..s(name, "ack", flows, "-g", 1)
        };
        if self.quick {
            return vec![
                s("DR, established", "ack", 1000, "-g", 1),
                s("NAT, established", "ack", 1000, "-m", 1),
                s(
                    "DR, established, RSS on the client endpoint",
                    "ack",
                    1000,
                    "-g",
                    2,
                ),
                Scenario {
                    split: Split::FiveTupleRss,
                    ..s("DR, established, RSS on the 5-tuple", "ack", 1000, "-g", 2)
                },
                generated("DR, established, generated", 1000),
            ];
        }
        let m = 1_000_000;
        vec![
            s("DR, established, 1k flows", "ack", 1000, "-g", 1),
            s("DR, established, 100k flows", "ack", 100_000, "-g", 1),
            s("DR, established, 1M flows", "ack", m, "-g", 1),
            s(
                "DR, established, 1M flows, RSS on the client endpoint",
                "ack",
                m,
                "-g",
                2,
            ),
            Scenario {
                split: Split::FiveTupleRss,
                ..s(
                    "DR, established, 1M flows, RSS on the 5-tuple",
                    "ack",
                    m,
                    "-g",
                    2,
                )
            },
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
            generated("DR, established, 1k flows, generated", 1000),
            generated("DR, established, 100k flows, generated", 100_000),
            generated("DR, established, 1M flows, generated", m),
            generated("DR, established, 10M flows, generated", 10 * m),
        ]
    }

    /// One capture per worker queue: with several workers, each holds the
    /// flows that worker owns, or what an RSS hash puts on its queue (see
    /// [`Split`]).
    fn pcaps(&self, sc: &Scenario) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(&self.dir)?;
        if sc.source == Source::Generator {
            return Ok(Vec::new());
        }
        let (split_name, split_arg) = match sc.split {
            Split::ClientEndpointRss => ("ep", "--shard"),
            Split::FiveTupleRss => ("rss", "--rss"),
        };
        (0..sc.workers)
            .map(|k| {
                // Split by owner with rvsd's flow_seed (the file name
                // says which, so a capture split by another is not reused).
                let f = self.dir.join(format!(
                    "{}-{}-{}{}-{k}{split_name}{}-seed{BENCH_FLOW_SEED}.pcap",
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
                    .args([split_arg, &format!("{k}/{}", sc.workers)])
                    .args(["--flow-seed", &BENCH_FLOW_SEED.to_string()]);
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
        let packets = match (sc.source, sc.traffic) {
            // Only what is in flight between flowgen and the daemon.
            (Source::Generator, _) => 0,
            (_, "synfin") => 2 * sc.flows,
            _ => sc.flows,
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

    /// The port's device: the capture replayed forever, or the server end
    /// of flowgen's memif pair.
    fn device(&self, sc: &Scenario, pcaps: &[PathBuf]) -> String {
        match sc.source {
            Source::Capture => format!("net_pcap0,{},infinite_rx=1", rx_args(pcaps)),
            // net_pcap's MAC ("pcap"), which flowgen's frames are sent to
            // as pktgen's are.
            Source::Generator => format!(
                "net_memif0,role=server,socket={},socket-abstract=no,mac=02:70:63:61:70:00",
                self.memif_socket().display()
            ),
        }
    }

    fn memif_socket(&self) -> PathBuf {
        self.dir.join("memif.sock")
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

    /// testpmd's median rate, and flowgen's summary when it was the source.
    fn testpmd(
        &self,
        sc: &Scenario,
        pcaps: &[PathBuf],
        mode: &str,
    ) -> Result<(f64, Option<serde_json::Value>)> {
        let Sizing {
            mb,
            mbufs,
            data_room,
        } = Self::sizing(sc);
        let _ = std::fs::remove_file(self.memif_socket());
        // Loading the capture into mbufs takes a while before forwarding,
        // longer on a loaded machine: testpmd is stopped once it has
        // forwarded for the warm-up and the measuring time, or at this cap.
        let cap = self.secs as u64 + 30 + sc.flows / 50_000;
        let mut child = Command::new("timeout")
            .args(["-s", "INT", &cap.to_string()])
            .arg("dpdk-testpmd")
            .arg(format!("--lcores={}", Self::lcores(sc.workers)))
            .args([
                "--no-huge",
                "-m",
                &mb.to_string(),
                "--no-pci",
                "--file-prefix",
                // Its own, so that runs beside other DPDK processes (other
                // benchmarks, tests) never share runtime files.
                &format!("rvsbench{}", std::process::id()),
            ])
            .arg(format!("--vdev={}", self.device(sc, pcaps)))
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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running dpdk-testpmd")?;
        // Its stats, a line a second: periods of nothing before forwarding
        // began are start-up; the first two periods after warm up, as
        // rvsd's first two seconds do; the rest are measured.
        let warm_up = 2;
        let wanted = warm_up + self.secs.ceil() as usize;
        let mut pps: Vec<f64> = Vec::new();
        let mut flowgen: Option<Flowgen> = None;
        let mut generated = None;
        let stdout = child.stdout.take().context("testpmd's stdout")?;
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Some(v) = line?
                .trim()
                .strip_prefix("Rx-pps:")
                .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
            else {
                continue;
            };
            // Its first statistics come after its port started: flowgen's
            // memif client can connect now.
            if sc.source == Source::Generator && flowgen.is_none() && pps.len() < wanted {
                flowgen = Some(Flowgen::start(self, sc, cap)?);
            }
            if v > 0.0 || !pps.is_empty() {
                pps.push(v);
            }
            if pps.len() == wanted {
                if let Some(g) = flowgen.take() {
                    generated = Some(g.finish()?);
                }
                // SIGINT to `timeout`, which hands it on: testpmd stops its
                // ports and exits cleanly.
                let _ = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
            }
        }
        drop(flowgen);
        let out = child.wait_with_output()?;
        remove_runtime_dir(&format!("rvsbench{}", std::process::id()));
        let measured = pps.get(warm_up..).unwrap_or_default();
        let mut sorted = measured.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().with_context(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            format!(
                "testpmd forwarded for {} of the {wanted} s wanted within {cap} s ({}); its last words: {}",
                pps.len(),
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            )
        })?;
        Ok((median, generated))
    }

    fn rvsd(&self, sc: &Scenario, pcaps: &[PathBuf]) -> Result<serde_json::Value> {
        let Sizing {
            mb,
            mbufs,
            data_room,
        } = Self::sizing(sc);
        let device = self.device(sc, pcaps);
        let _ = std::fs::remove_file(self.memif_socket());
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
[[port]]\nname = \"pcap\"\ndevice = \"{device}\"\naddress = \"10.99.0.254/16\"\naddress6 = \"fd00:99::fe/64\"\nkernel_interface = {kernel}\n\n\
[workers]\nlcores = [{l}]\nidle_empty_polls = 0\nflow_seed = {BENCH_FLOW_SEED}\n\n\
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
        // flowgen's flows open their connections on its first pass over
        // them, at the new-connection rate (about 2 M/s): not measured.
        let warm_up = match sc.source {
            Source::Capture => 2.0,
            Source::Generator => 3.0 + sc.flows as f64 / 2e6,
        };
        let mut child = child
            .args(["--config", cfg_path.to_str().unwrap()])
            .args(["--run-for", &format!("{}", self.secs + warm_up)])
            .args(["--warm-up", &format!("{warm_up}")])
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
        if sc.sync {
            rvsadm("--start-daemon master --mcast-interface pcap")?;
        }
        let flowgen = match sc.source {
            Source::Generator => Some(Flowgen::start(self, sc, (self.secs + warm_up) as u64 + 30)?),
            Source::Capture => None,
        };
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
        let generated = flowgen.map(Flowgen::finish).transpose()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let json = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .context("rvsd printed no summary")?;
        let mut summary: serde_json::Value = serde_json::from_str(json)?;
        if let Some(g) = generated {
            summary["generator"] = g;
        }
        Ok(summary)
    }

    /// `conn-memory`'s output (bytes per IPv4 connection at 1 M and 10 M
    /// entries; 100 k in quick mode) and its rows.
    fn conn_memory(&self) -> Result<(String, Vec<MemoryRow>)> {
        let mut cmd = Command::new(self.bin.join("conn-memory"));
        if self.quick {
            cmd.arg("100000");
        }
        let out = cmd.output().context("running conn-memory")?;
        anyhow::ensure!(out.status.success(), "conn-memory failed");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        // Rows: connections, table B/conn, RSS B/conn, insert ns, lookup ns.
        let rows: Vec<MemoryRow> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() != 5 {
                    return None;
                }
                Some(MemoryRow {
                    conns: f[0].parse().ok()?,
                    table_bytes: f[1].parse().ok()?,
                })
            })
            .collect();
        anyhow::ensure!(!rows.is_empty(), "conn-memory printed no sizes:\n{text}");
        Ok((text, rows))
    }

    /// What a setting costs: DR over the established flows of the main row,
    /// with the setting on and off, alternating (on, off, on, ...) so that
    /// the machine's drift hits both alike; the median of the paired
    /// ratios of forwarded packets per second. `what` names the setting in
    /// the table's header.
    fn paired_cost(
        &self,
        what: &str,
        on: Scenario,
        off: Scenario,
        progress: &mut Progress,
    ) -> Result<Paired> {
        let (on_name, off_name) = (format!("{what} on"), format!("{what} off"));
        let names = [on_name.as_str(), off_name.as_str(), "on / off"];
        self.paired_with(names, on, self, off, progress)
    }

    /// The pairs of [`Self::paired_cost`], the "off" side run by `base`'s
    /// binaries (this build's own, or another build's: `against`).
    /// `names`: the two sides' names and their ratio's, for the table.
    fn paired_with(
        &self,
        [on_name, off_name, ratio_name]: [&str; 3],
        on: Scenario,
        base: &Bench,
        off: Scenario,
        progress: &mut Progress,
    ) -> Result<Paired> {
        let pairs = if self.quick { 1 } else { PAIRS };
        // Each side its own captures: the same files unless the sides'
        // worker counts differ (two workers against one).
        let (on_pcaps, off_pcaps) = (self.pcaps(&on)?, base.pcaps(&off)?);
        let header = format!(
            "| pair | {on_name} Mpps | {off_name} Mpps | {ratio_name} |\n|---|---|---|---|\n"
        );
        alternate(
            pairs,
            header,
            ratio_name,
            progress,
            |progress, i| {
                progress.step(
                    &format!("{on_name}, pair {i} of {pairs}"),
                    self.rvsd_secs(&on),
                );
                self.forwarded(&on, &on_pcaps)
            },
            |progress, i| {
                progress.step(
                    &format!("{off_name}, pair {i} of {pairs}"),
                    self.rvsd_secs(&off),
                );
                Ok(base.forwarded(&off, &off_pcaps)?.0)
            },
        )
    }

    /// RESULTS.md's section on the target rows' pairs, with what the same
    /// rows' single runs in the main table gave.
    fn headline_section(pairs: &[(&Scenario, Paired)], rows: &[(Scenario, Run)]) -> String {
        if pairs.is_empty() {
            return String::new();
        }
        let tables: Vec<&str> = pairs.iter().map(|(_, p)| p.table.as_str()).collect();
        let fwd = |r: &Run| r.rvsd["fwd_pps"].as_f64();
        let one_worker = rows.iter().find(|(s, _)| s.is_dr_target());
        let single: Vec<String> = pairs
            .iter()
            .filter_map(|(sc, p)| {
                let (_, r) = rows.iter().find(|(s, _)| s.name == sc.name)?;
                // Against testpmd on its row, or two workers against one.
                let one = if sc.workers == 2 {
                    fwd(r)? / fwd(&one_worker?.1)?
                } else {
                    fwd(r)? / r.testpmd_5tswap
                };
                let (lo, hi) = spread(&p.ratios);
                Some(format!(
                    "{}: {one:.2} in the table above, {lo:.2}-{hi:.2} in the pairs",
                    sc.name
                ))
            })
            .collect();
        format!(
            "### The target rows in pairs\n\n\
The Targets table's first four rows compare rvsd with testpmd 5tswap, and two workers with one. One run of \
each side, as in the table above, moves from hour to hour on this shared machine, so these rows are measured \
again in {PAIRS} pairs of alternating runs (rvsd, or two workers, first in odd pairs; the other side first in \
even ones), and the Targets table takes the median of the pairs' ratios. This run's single runs against \
the pairs: {}.\n\n{}\n",
            single.join("; "),
            tables.join("\n")
        )
    }

    /// One rvsd run of a pair: the packets per second it forwarded (an
    /// error when none), and its summary.
    fn forwarded(&self, sc: &Scenario, pcaps: &[PathBuf]) -> Result<(f64, serde_json::Value)> {
        let r = self.rvsd(sc, pcaps)?;
        let pps = r["fwd_pps"].as_f64().unwrap_or(0.0);
        anyhow::ensure!(pps > 0.0, "{}: rvsd forwarded nothing", sc.name);
        Ok((pps, r))
    }

    /// Seconds one pair of [`Bench::paired_vs_testpmd`] is expected to take.
    fn target_pair_secs(&self, sc: &Scenario) -> f64 {
        self.rvsd_secs(sc) + self.testpmd_secs(sc)
    }

    /// rvsd against testpmd 5tswap on one row, in pairs of alternating
    /// runs (which runs first alternates): the median of the paired ratios
    /// of rvsd's forwarded rate to testpmd's.
    fn paired_vs_testpmd(&self, sc: &Scenario, progress: &mut Progress) -> Result<Paired> {
        let pcaps = self.pcaps(sc)?;
        let header = format!(
            "{}:\n\n| pair | rvsd forwarded Mpps | testpmd 5tswap Mpps | forwarded / 5tswap |\n|---|---|---|---|\n",
            sc.name
        );
        alternate(
            PAIRS,
            header,
            "forwarded / 5tswap",
            progress,
            |progress, i| {
                progress.step(
                    &format!("{}: rvsd, pair {i} of {PAIRS}", sc.name),
                    self.rvsd_secs(sc),
                );
                self.forwarded(sc, &pcaps)
            },
            |progress, i| {
                let step = format!("{}: testpmd 5tswap, pair {i} of {PAIRS}", sc.name);
                progress.step(&step, self.testpmd_secs(sc));
                let (pps, _) = self.testpmd(sc, &pcaps, "5tswap")?;
                anyhow::ensure!(pps > 0.0, "{}: testpmd moved nothing", sc.name);
                Ok(pps)
            },
        )
    }

    /// Two workers against one (`one`, the DR target's row) on a
    /// two-worker row, in pairs of alternating runs: the median of the
    /// paired ratios of their forwarded rates. One run of each, divided,
    /// moved by a third between hours here (2.23 then 1.62 on 3 December).
    fn paired_scaling(
        &self,
        two: &Scenario,
        one: &Scenario,
        progress: &mut Progress,
    ) -> Result<Paired> {
        let names = ["2 workers", "1 worker", "2 workers / 1 worker"];
        let mut p = self.paired_with(names, *two, self, *one, progress)?;
        p.table = format!("{}:\n\n{}", two.name, p.table);
        Ok(p)
    }

    /// Seconds one pair of [`Bench::paired_scaling`] is expected to take.
    fn scaling_pair_secs(&self, two: &Scenario) -> f64 {
        self.rvsd_secs(two) + self.rvsd_secs(&Scenario { workers: 1, ..*two })
    }

    /// This build against the rvsd and rvsadm in `base` (built from another
    /// commit), row by row: DR, NAT, TUN and IPv6 DR over 1 M established
    /// flows, DR with two workers on captures split by either RSS, and the new-flow
    /// row (those whose name contains `only`, when given), each in pairs
    /// of alternating runs (this build against `base`); for a change that must
    /// leave the rates as they were, or raise them.
    pub fn against(&self, base: &Path, only: Option<&str>) -> Result<String> {
        for b in ["rvsd", "rvsadm"] {
            anyhow::ensure!(
                base.join(b).is_file(),
                "{} has no {b}: copy the other build's target/release/{{rvsd,rvsadm}} there",
                base.display()
            );
        }
        let other = Bench {
            root: self.root.clone(),
            bin: base.to_path_buf(),
            dir: self.dir.clone(),
            quick: self.quick,
            secs: self.secs,
        };
        let dr = self.dr_established();
        let rows = [
            dr,
            Scenario {
                name: "NAT, established",
                fwd: "-m",
                ..dr
            },
            Scenario {
                name: "TUN (ipip), established",
                fwd: "-i",
                ..dr
            },
            Scenario {
                name: "DR over IPv6, established",
                ipv6: true,
                ..dr
            },
            self.two_workers(Split::ClientEndpointRss),
            self.two_workers(Split::FiveTupleRss),
            self.new_flows(),
        ];
        let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
        let picked = rows_named(&names, only);
        let rows: Vec<Scenario> = rows
            .into_iter()
            .enumerate()
            .filter(|(i, _)| picked.contains(i))
            .map(|(_, r)| r)
            .collect();
        anyhow::ensure!(
            !rows.is_empty(),
            "no row is named {:?}, or has it in its name; the rows: {}",
            only.unwrap_or_default(),
            names.join("; ")
        );
        let mut progress = Progress::new(
            rows.iter()
                .map(|r| 2.0 * PAIRS as f64 * self.rvsd_secs(r))
                .sum(),
            Path::new("/dev/null"),
        );
        let mut out = String::new();
        let mut summary = String::from("| row | this / base (median) | pairs |\n|---|---|---|\n");
        for sc in rows {
            let names = ["this build", "base", "this / base"];
            let p = self.paired_with(names, sc, &other, sc, &mut progress)?;
            let _ = writeln!(out, "### {}\n\n{}", sc.name, p.table);
            let ratios: Vec<String> = p.ratios.iter().map(|r| format!("{r:.3}")).collect();
            let _ = writeln!(
                summary,
                "| {} | {:.3} | {} |",
                sc.name,
                p.median,
                ratios.join(", ")
            );
        }
        progress.finish();
        Ok(format!("{out}\n{summary}"))
    }

    /// The DR row with two workers, its capture split by `split`.
    fn two_workers(&self, split: Split) -> Scenario {
        Scenario {
            name: match split {
                Split::ClientEndpointRss => {
                    "DR, established, 2 workers, RSS on the client endpoint"
                }
                Split::FiveTupleRss => "DR, established, 2 workers, RSS on the 5-tuple",
            },
            workers: 2,
            split,
            ..self.dr_established()
        }
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
            sync: false,
            split: Split::ClientEndpointRss,
            source: Source::Capture,
        }
    }

    /// A paired measurement run on its own (`--counting-cost` and the
    /// like): its table and median, with no progress file.
    fn paired_alone(
        &self,
        measure: fn(&Self, &mut Progress) -> Result<Paired>,
    ) -> Result<(String, f64)> {
        let mut progress = Progress::new(self.paired_secs() / 2.0, Path::new("/dev/null"));
        let p = measure(self, &mut progress)?;
        Ok((p.table, p.median))
    }

    /// `--target-pairs`: the targets that compare rvsd with testpmd, and
    /// two workers with one, in pairs, as the full run measures them.
    pub fn target_pairs(&self) -> Result<String> {
        let one = self.dr_established();
        let against_testpmd = [one, self.new_flows()];
        let two = [
            self.two_workers(Split::ClientEndpointRss),
            self.two_workers(Split::FiveTupleRss),
        ];
        let total = PAIRS as f64
            * (against_testpmd
                .iter()
                .map(|sc| self.target_pair_secs(sc))
                .sum::<f64>()
                + two.iter().map(|sc| self.scaling_pair_secs(sc)).sum::<f64>());
        let mut progress = Progress::new(total, Path::new("/dev/null"));
        let mut out = String::new();
        for sc in &against_testpmd {
            let p = self.paired_vs_testpmd(sc, &mut progress)?;
            out.push_str(&p.table);
            out.push('\n');
        }
        for sc in &two {
            let p = self.paired_scaling(sc, &one, &mut progress)?;
            out.push_str(&p.table);
            out.push('\n');
        }
        progress.finish();
        Ok(out)
    }

    /// What counting traffic costs (`[stats] enabled`).
    pub fn counting_cost(&self) -> Result<(String, f64)> {
        self.paired_alone(Self::counting_cost_with)
    }

    fn counting_cost_with(&self, progress: &mut Progress) -> Result<Paired> {
        let on = self.dr_established();
        let off = Scenario { stats: false, ..on };
        self.paired_cost("counting", on, off, progress)
    }

    /// What the connection sync daemon costs the new-flow rate: the
    /// new-flow row's capture (every connection opened and closed, so each
    /// is synced once, when it closes), with a master on the port and
    /// without. Both sides have the kernel interface, so the pair measures
    /// the master alone: the workers writing entries into their messages
    /// and framing and sending them.
    pub fn sync_cost(&self) -> Result<(String, f64)> {
        self.paired_alone(Self::sync_cost_with)
    }

    fn sync_cost_with(&self, progress: &mut Progress) -> Result<Paired> {
        let off = Scenario {
            kernel: true,
            ..self.new_flows()
        };
        let on = Scenario { sync: true, ..off };
        let mut p = self.paired_cost("sync", on, off, progress)?;
        let offered = p.last_on["sync_offered"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            offered > 0,
            "the sync run offered no connection to the daemon: it measured nothing"
        );
        p.table = format!(
            "{}
Connections synced in the last \"on\" run: {offered}
",
            p.table
        );
        Ok(p)
    }

    /// The new-flow row's scenario.
    fn new_flows(&self) -> Scenario {
        Scenario {
            name: "New flows",
            traffic: "synfin",
            new_flows: true,
            flows: if self.quick { 1000 } else { 1_000_000 },
            ..self.dr_established()
        }
    }

    /// What the exception path costs (`[[port]] kernel_interface`): the
    /// worker's paced look at its tap, and the classification's extra
    /// tests. None of the capture is for the kernel.
    pub fn exception_cost(&self) -> Result<(String, f64)> {
        self.paired_alone(Self::exception_cost_with)
    }

    fn exception_cost_with(&self, progress: &mut Progress) -> Result<Paired> {
        let off = self.dr_established();
        let on = Scenario {
            kernel: true,
            ..off
        };
        self.paired_cost("exception path", on, off, progress)
    }

    /// Seconds one rvsd run is expected to take: its measuring time, the
    /// start (EAL, loading the capture) and the services' set-up.
    fn rvsd_secs(&self, sc: &Scenario) -> f64 {
        self.secs + 3.0 + sc.flows as f64 / 250_000.0
    }

    /// Seconds one testpmd run is expected to take (see
    /// [`Bench::testpmd`]): start-up, loading the capture, warm-up and
    /// measuring.
    fn testpmd_secs(&self, sc: &Scenario) -> f64 {
        self.secs + (6 + sc.flows / 100_000) as f64
    }

    /// Seconds the two paired measurements are expected to take.
    fn paired_secs(&self) -> f64 {
        let pairs = if self.quick { 1.0 } else { PAIRS as f64 };
        2.0 * pairs * 2.0 * self.rvsd_secs(&self.dr_established())
    }

    /// One established packet through `Worker::handle` with everything in
    /// cache: criterion's median estimate, in ns, from `cargo bench -p
    /// rvs-bench` run now for that one function.
    fn per_packet_in_cache(&self) -> Result<f64> {
        let filter = "handle DR, established";
        let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&self.root)
            .args([
                "bench",
                "--quiet",
                "-p",
                "rvs-bench",
                "--bench",
                "hot_paths",
                "--",
            ])
            .arg(filter)
            .stdout(Stdio::null())
            .status()
            .context("running cargo bench")?;
        anyhow::ensure!(st.success(), "cargo bench -p rvs-bench failed");
        // Criterion shortens long names for its directories.
        let dir = std::fs::read_dir(self.root.join("target/criterion"))?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().starts_with(filter))
            .context("criterion wrote no estimates for the per-packet benchmark")?;
        let est: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            dir.path().join("new/estimates.json"),
        )?)?;
        est["median"]["point_estimate"]
            .as_f64()
            .context("criterion's estimates hold no median")
    }

    /// One row: testpmd and rvsd on the scenario's traffic. A failed
    /// measurement is reported and counts 0; a capture that could not be
    /// made skips the row.
    fn measure(&self, sc: Scenario, progress: &mut Progress) -> Option<(Scenario, Run)> {
        let label = format!(
            "{} ({} worker{})",
            sc.name,
            sc.workers,
            if sc.workers > 1 { "s" } else { "" }
        );
        let pcap = match self.pcaps(&sc) {
            Ok(p) => p,
            Err(e) => {
                progress.print(&format!("{}: {e:#}", sc.name));
                return None;
            }
        };
        // A failed measurement is reported as 0 and the run goes on.
        progress.step(&format!("{label}: testpmd 5tswap"), self.testpmd_secs(&sc));
        let (testpmd_5tswap, testpmd_generator) =
            self.testpmd(&sc, &pcap, "5tswap").unwrap_or_else(|e| {
                progress.print(&format!("{}: {e:#}", sc.name));
                (0.0, None)
            });
        // macswap is the capture rows' second reference; the sweep
        // compares with 5tswap alone.
        let testpmd_macswap = if self.quick || sc.source == Source::Generator {
            0.0
        } else {
            progress.step(&format!("{label}: testpmd macswap"), self.testpmd_secs(&sc));
            match self.testpmd(&sc, &pcap, "macswap") {
                Ok((pps, _)) => pps,
                Err(e) => {
                    progress.print(&format!("{}: {e:#}", sc.name));
                    0.0
                }
            }
        };
        progress.step(&format!("{label}: rvsd"), self.rvsd_secs(&sc));
        let rvsd = self.rvsd(&sc, &pcap).unwrap_or_else(|e| {
            progress.print(&format!("{}: {e:#}", sc.name));
            serde_json::json!({})
        });
        Some((
            sc,
            Run {
                testpmd_5tswap,
                testpmd_macswap,
                testpmd_generator,
                rvsd,
            },
        ))
    }

    /// `--sweep`: the flow-count sweep alone (flowgen as the source; 1k
    /// flows with --quick): the rows and the sweep's table.
    pub fn sweep(&self) -> Result<String> {
        let rows: Vec<Scenario> = self
            .scenarios()
            .into_iter()
            .filter(|s| s.source == Source::Generator)
            .collect();
        let total = rows
            .iter()
            .map(|sc| self.rvsd_secs(sc) + self.testpmd_secs(sc))
            .sum();
        let mut progress = Progress::new(total, Path::new("/dev/null"));
        let rows: Vec<(Scenario, Run)> = rows
            .into_iter()
            .filter_map(|sc| self.measure(sc, &mut progress))
            .collect();
        progress.finish();
        if self.quick {
            Self::quick_check(&rows)?;
        }
        let mut out = format!("{}\n{}", self.table(&rows), Self::sweep_table(&rows));
        for (sc, r) in &rows {
            let _ = writeln!(
                out,
                "{}: rvsd's drops by reason: {}; flowgen: {} (to testpmd), {} (to rvsd)",
                sc.name,
                r.rvsd["drop_reasons"],
                r.testpmd_generator.clone().unwrap_or_default(),
                r.rvsd["generator"]
            );
        }
        Ok(out)
    }

    pub fn run(&self) -> Result<()> {
        let scenarios = self.scenarios();
        // The plan, with each step's expected seconds, for the progress
        // display's ETA.
        let mut total = if self.quick { 5.0 } else { 90.0 };
        for sc in &scenarios {
            total +=
                self.rvsd_secs(sc) + self.testpmd_secs(sc) * if self.quick { 1.0 } else { 2.0 };
        }
        // Counting, exception path and sync: half of `paired_secs` each.
        total += 2.0 * self.paired_secs() + self.paired_secs() / 2.0;
        if !self.quick {
            for sc in &scenarios {
                if sc.is_dr_target() || sc.new_flows {
                    total += PAIRS as f64 * self.target_pair_secs(sc);
                } else if sc.is_two_worker_target() {
                    total += PAIRS as f64 * self.scaling_pair_secs(sc);
                }
            }
        }
        total += 2.0 * self.flood_secs();
        let e2e_plan = crate::bench_e2e::Plan::FULL;
        if !self.quick {
            total += crate::bench_e2e::expected_secs(e2e_plan) + 60.0;
        }
        let mut progress = Progress::new(total, &self.dir.join("progress.log"));
        progress.step(
            "connection table memory (conn-memory)",
            if self.quick { 5.0 } else { 90.0 },
        );
        let (memory, memory_rows) = self.conn_memory()?;
        progress.print(&memory);
        let rows: Vec<(Scenario, Run)> = scenarios
            .into_iter()
            .filter_map(|sc| self.measure(sc, &mut progress))
            .collect();
        let table = self.table(&rows);
        progress.print(&table);
        if rows.iter().any(|(s, _)| s.source == Source::Generator) {
            progress.print(&Self::sweep_table(&rows));
        }
        for (sc, r) in &rows {
            if r.rvsd["drops"].as_u64().unwrap_or(0) > 0 {
                progress.print(&format!(
                    "{} ({}w): rvsd's drops by reason: {}",
                    sc.name, sc.workers, r.rvsd["drop_reasons"]
                ));
            }
        }
        // The targets that compare rvsd with testpmd, and two workers with
        // one, in pairs: one run of each moved by 0.12 between hours with
        // the same code here (DR 0.38-0.50 of testpmd, 3 December).
        let mut headline: Vec<(&Scenario, Paired)> = Vec::new();
        if !self.quick {
            let dr = rows.iter().find(|(s, _)| s.is_dr_target());
            let new_flows = rows.iter().find(|(s, _)| s.new_flows);
            if let (Some((dr, _)), Some((nf, _))) = (dr, new_flows) {
                for sc in [dr, nf] {
                    let p = self.paired_vs_testpmd(sc, &mut progress)?;
                    progress.print(&p.table);
                    headline.push((sc, p));
                }
            }
            if let Some((one, _)) = dr {
                for (two, _) in rows.iter().filter(|(s, _)| s.is_two_worker_target()) {
                    let p = self.paired_scaling(two, one, &mut progress)?;
                    progress.print(&p.table);
                    headline.push((two, p));
                }
            }
        }
        let cost = self.counting_cost_with(&mut progress)?;
        progress.print(&cost.table);
        let kcost = self.exception_cost_with(&mut progress)?;
        progress.print(&kcost.table);
        let scost = self.sync_cost_with(&mut progress)?;
        progress.print(&scost.table);
        progress.step(
            "SYN flood, four times the connection table: table pressure on and off",
            2.0 * self.flood_secs(),
        );
        let (flood_on, flood_off) = (self.flood(true)?, self.flood(false)?);
        let flood = format!("{FLOOD_HEADER}{}{}", flood_on.table(), flood_off.table());
        progress.print(&flood);
        let quick_check = Self::quick_check(&rows);
        let (e2e, per_packet_ns) = if self.quick {
            (None, None)
        } else {
            progress.step(
                "end to end: rvsd, nginx stream, HAProxy and no director",
                crate::bench_e2e::expected_secs(e2e_plan),
            );
            // The lab runs the release rvsd this benchmark built.
            std::env::set_var("RVS_BIN_DIR", &self.bin);
            let e2e = crate::bench_e2e::run(e2e_plan)?;
            progress.print(&e2e.one_server);
            progress.print(&e2e.two_servers);
            progress.step("per packet in cache (cargo bench -p rvs-bench)", 60.0);
            let ns = self.per_packet_in_cache().map_err(|e| {
                progress.print(&format!("per-packet benchmark: {e:#}"));
                e
            });
            (Some(e2e), ns.ok())
        };
        let paired_of = |pick: &dyn Fn(&Scenario) -> bool| {
            headline
                .iter()
                .find(|(s, _)| pick(s))
                .map(|(_, p)| Figure::paired(p))
        };
        let targets = Self::targets(
            self.quick,
            &rows,
            e2e.as_ref(),
            &memory_rows,
            Costs {
                counting: Figure::paired(&cost),
                kernel: Figure::paired(&kcost),
                sync: Figure::paired(&scost),
                dr: paired_of(&|s| s.is_dr_target()),
                new_flows: paired_of(&|s| s.new_flows),
                rss_endpoint: paired_of(&|s| s.is_scaling_target(Split::ClientEndpointRss)),
                rss_tuple: paired_of(&|s| s.is_scaling_target(Split::FiveTupleRss)),
            },
            &flood_on,
        );
        progress.print(&targets);
        progress.finish();
        if self.quick {
            // A smoke check: the runner works, both sides moved packets and
            // rvsd forwarded them.
            quick_check?;
            anyhow::ensure!(
                flood_on.established_lost() == 0 && flood_on.legit_completion() >= 0.99,
                "SYN flood: established clients lost {} packets, legitimate new clients completed {:.2} %",
                flood_on.established_lost(),
                flood_on.legit_completion() * 100.0
            );
            println!("bench --quick: ok");
        } else {
            let e2e = e2e.expect("measured in the full run");
            let plots = crate::bench_plots::write(
                &self.root.join("bench"),
                &Self::flow_sweep(&rows),
                &Self::burst_cdf(&rows),
                &e2e.bars,
            )
            .unwrap_or_else(|e| {
                eprintln!("plots: {e:#}");
                String::new()
            });
            let results = self.root.join("bench/RESULTS.md");
            let headline = Self::headline_section(&headline, &rows);
            let report = self.report(&Report {
                rows: &rows,
                table: &table,
                headline: &headline,
                e2e: &e2e,
                memory: &memory,
                memory_rows: &memory_rows,
                cost: &cost,
                kcost: &kcost,
                scost: &scost,
                flood: &flood,
                targets: &targets,
                per_packet_ns,
                plots: &plots,
            });
            std::fs::write(&results, &report)?;
            println!("written to {}", results.display());
            let readme = self.root.join("README.md");
            let text = std::fs::read_to_string(&readme)?;
            std::fs::write(&readme, readme_with_summary(&text, &report)?)?;
            println!("benchmark summary in {} rewritten", readme.display());
        }
        Ok(())
    }

    /// `--quick` fails when a row measured nothing, when rvsd forwarded
    /// nothing or dropped most of what it received, when a row split on
    /// the 5-tuple handed nothing over (then the split did not happen), or
    /// when a row split on the client endpoint handed packets over (then
    /// rvsd's owner and the NIC's queue, as pktgen computes it, disagree).
    fn quick_check(rows: &[(Scenario, Run)]) -> Result<()> {
        for (sc, r) in rows {
            let f = |k: &str| r.rvsd[k].as_f64().unwrap_or(0.0);
            let (rx, fwd, drops) = (f("rx_pps"), f("fwd_pps"), f("drop_pps"));
            let reasons = &r.rvsd["drop_reasons"];
            if rx <= 0.0 || r.testpmd_5tswap <= 0.0 {
                bail!(
                    "{}: no packets measured (rvsd {rx} pps received, testpmd {})",
                    sc.name,
                    r.testpmd_5tswap
                );
            }
            if fwd <= 0.0 {
                bail!(
                    "{}: rvsd received {rx:.0} pps but forwarded none (drops: {reasons})",
                    sc.name
                );
            }
            if drops > 0.5 * rx {
                bail!(
                    "{}: rvsd dropped {drops:.0} of the {rx:.0} pps it received (drops: {reasons})",
                    sc.name
                );
            }
            if sc.split == Split::FiveTupleRss && f("handed_over") <= 0.0 {
                bail!(
                    "{}: no packet was handed over between workers: the RSS split did not happen",
                    sc.name
                );
            }
            if sc.workers > 1 && sc.split == Split::ClientEndpointRss && f("handed_over") > 0.001 {
                bail!(
                    "{}: {:.1} % of the packets were handed over between workers: rvsd's owner_of \
                     disagrees with the queue a NIC programmed by rvsd gives them",
                    sc.name,
                    100.0 * f("handed_over")
                );
            }
        }
        Ok(())
    }

    /// (flows, testpmd 5tswap Mpps, rvsd forwarded Mpps) of the flowgen
    /// rows (1 k to 10 M flows), which differ only in their number of flows.
    fn flow_sweep(rows: &[(Scenario, Run)]) -> Vec<(u64, f64, f64)> {
        rows.iter()
            .filter(|(s, _)| s.source == Source::Generator)
            .map(|(s, r)| {
                (
                    s.flows,
                    r.testpmd_5tswap / 1e6,
                    r.rvsd["fwd_pps"].as_f64().unwrap_or(0.0) / 1e6,
                )
            })
            .collect()
    }

    /// The flow-count sweep's table: each side's rate with flowgen as the
    /// source, flowgen's rate, and the share of its tries to send a burst
    /// that the measured side refused (its ring was full). A side that
    /// refused none kept up with flowgen: its rate is flowgen's, a floor of
    /// what it could do.
    fn sweep_table(rows: &[(Scenario, Run)]) -> String {
        // flowgen's rate over its whole run, and the share of its tries to
        // send a burst that the measured side did not take whole.
        let offered = |g: Option<&serde_json::Value>| {
            let Some(g) = g else {
                return "-".to_string();
            };
            let n = |k: &str| g[k].as_f64().unwrap_or(0.0);
            format!(
                "{:.2} ({:.1} %)",
                n("sent_pps") / 1e6,
                100.0 * n("refused_tries") / n("tries").max(1.0)
            )
        };
        let mut t = String::from(
            "| flows | testpmd 5tswap Mpps | rvsd forwarded Mpps | rvsd drops/s | forwarded / 5tswap | flowgen Mpps to testpmd (tries refused) | flowgen Mpps to rvsd (tries refused) |\n|---|---|---|---|---|---|---|\n",
        );
        for (sc, r) in rows.iter().filter(|(s, _)| s.source == Source::Generator) {
            let f = |k: &str| r.rvsd[k].as_f64().unwrap_or(0.0);
            let _ = writeln!(
                t,
                "| {} | {:.2} | {:.2} | {:.0} | {:.2} | {} | {} |",
                flows_label(sc.flows),
                r.testpmd_5tswap / 1e6,
                f("fwd_pps") / 1e6,
                f("drop_pps"),
                f("fwd_pps") / r.testpmd_5tswap.max(1.0),
                offered(r.testpmd_generator.as_ref()),
                offered(r.rvsd.get("generator")),
            );
        }
        t
    }

    /// Every row's burst-time distribution: (row, [(quantile, µs)]).
    fn burst_cdf(rows: &[(Scenario, Run)]) -> Vec<(String, Vec<(f64, f64)>)> {
        rows.iter()
            .filter_map(|(s, r)| {
                let points: Vec<(f64, f64)> = r.rvsd["burst_ns_cdf"]
                    .as_array()?
                    .iter()
                    .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()? / 1000.0)))
                    .collect();
                (!points.is_empty()).then(|| (format!("{} ({}w)", s.name, s.workers), points))
            })
            .collect()
    }

    fn table(&self, rows: &[(Scenario, Run)]) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| scenario | workers | testpmd 5tswap Mpps | testpmd macswap Mpps | rvsd received Mpps | rvsd forwarded Mpps | rvsd drops/s | handed over | rvsd ns/pkt | forwarded / 5tswap | new conn/s | burst p50 / p99 / p99.9 µs |"
        );
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (sc, r) in rows {
            let f = |k: &str| r.rvsd[k].as_f64().unwrap_or(0.0);
            let (rx, fwd) = (f("rx_pps"), f("fwd_pps"));
            let _ = writeln!(
                t,
                "| {} | {} | {:.2} | {} | {:.2} | {:.2} | {:.0} | {} | {:.1} | {:.2} | {} | {:.1} / {:.1} / {:.1} |",
                sc.name,
                sc.workers,
                r.testpmd_5tswap / 1e6,
                if r.testpmd_macswap > 0.0 {
                    format!("{:.2}", r.testpmd_macswap / 1e6)
                } else {
                    "-".into()
                },
                rx / 1e6,
                fwd / 1e6,
                f("drop_pps"),
                if sc.workers > 1 {
                    format!("{:.1} %", f("handed_over") * 100.0)
                } else {
                    "-".into()
                },
                if rx > 0.0 {
                    1e9 / rx * sc.workers as f64
                } else {
                    0.0
                },
                fwd / r.testpmd_5tswap.max(1.0),
                if sc.new_flows {
                    format!("{:.0}", f("new_conns_per_s"))
                } else {
                    "-".into()
                },
                f("burst_ns_p50") / 1000.0,
                f("burst_ns_p99") / 1000.0,
                f("burst_ns_p999") / 1000.0,
            );
        }
        t
    }

    /// The issue's targets against this run's figures; what this run did
    /// not measure says so.
    fn targets(
        quick: bool,
        rows: &[(Scenario, Run)],
        e2e: Option<&crate::bench_e2e::E2e>,
        memory: &[MemoryRow],
        costs: Costs,
        flood: &Flood,
    ) -> String {
        let fwd = |pred: &dyn Fn(&Scenario) -> bool| {
            rows.iter()
                .find(|(s, _)| pred(s))
                .map(|(_, r)| r.rvsd["fwd_pps"].as_f64().unwrap_or(0.0))
                .filter(|&v| v > 0.0)
        };
        let testpmd = |pred: &dyn Fn(&Scenario) -> bool| {
            rows.iter()
                .find(|(s, _)| pred(s))
                .map(|(_, r)| r.testpmd_5tswap)
                .filter(|&v| v > 0.0)
        };
        let dr_one = |s: &Scenario| s.is_dr_target();
        let endpoint_two = |s: &Scenario| s.is_scaling_target(Split::ClientEndpointRss);
        let tuple_two = |s: &Scenario| s.is_scaling_target(Split::FiveTupleRss);
        let new_flows = |s: &Scenario| s.new_flows;
        let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let quick_why = "not measured: --quick replays 1000 flows in a debug build";
        let e2e_why = "not measured: --quick runs no end to end";
        let mut t = Targets::default();
        t.at_least(
            "DR, established, 1M flows: rvsd forwarded / testpmd 5tswap",
            0.65,
            costs
                .dr
                .or_else(|| ratio(fwd(&dr_one), testpmd(&dr_one)).map(Figure::one)),
            quick_why,
        );
        t.at_least(
            "New flows (SYN then FIN): rvsd forwarded / testpmd 5tswap",
            0.5,
            costs
                .new_flows
                .or_else(|| ratio(fwd(&new_flows), testpmd(&new_flows)).map(Figure::one)),
            quick_why,
        );
        t.at_least(
            "2 workers, RSS on the client endpoint (as rvsd programs a NIC that can), vs 1 worker (DR, 1M flows, forwarded)",
            1.6,
            costs
                .rss_endpoint
                .or_else(|| ratio(fwd(&endpoint_two), fwd(&dr_one)).map(Figure::one)),
            quick_why,
        );
        t.at_least(
            "2 workers, RSS on the 5-tuple (a NIC that cannot hash the source alone), vs 1 worker (DR, 1M flows, forwarded)",
            1.6,
            costs
                .rss_tuple
                .or_else(|| ratio(fwd(&tuple_two), fwd(&dr_one)).map(Figure::one)),
            quick_why,
        );
        t.at_least(
            "End to end, one real server, keep-alive: rvsd × direct",
            0.95,
            e2e.map(|e| Figure::of(e.rvsd_one_ka)),
            e2e_why,
        );
        t.at_least(
            "End to end, one real server, new connection per request: rvsd × direct",
            0.95,
            e2e.map(|e| Figure::of(e.rvsd_one_nc)),
            e2e_why,
        );
        t.at_most(
            "Bytes per connection at 10 M, half NAT (`conn-memory`, table's accounting)",
            40.0,
            memory
                .iter()
                .find(|m| m.conns == 10_000_000)
                .map(|m| Figure::one(m.table_bytes)),
            "not measured: --quick inserts 100 k connections",
        );
        t.at_least(
            "Traffic counters: DR, established, counting on / off",
            0.97,
            (!quick).then_some(costs.counting),
            quick_why,
        );
        t.at_least(
            "Exception path: DR, established, kernel interface on / off",
            0.98,
            (!quick).then_some(costs.kernel),
            quick_why,
        );
        t.at_least(
            "Connection sync: new flows, master on / off",
            0.90,
            (!quick).then_some(costs.sync),
            quick_why,
        );
        t.at_most(
            "SYN flood, four times the table: packets of established clients lost",
            0.0,
            Some(Figure::one(flood.established_lost() as f64)),
            "",
        );
        t.at_least(
            "SYN flood, four times the table: legitimate new connections completed",
            0.99,
            Some(Figure::one(flood.legit_completion())),
            "",
        );
        t.text
    }

    fn report(&self, r: &Report) -> String {
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
        let warmup = r
            .rows
            .iter()
            .find_map(|(_, run)| run.rvsd["warmup_seconds"].as_f64())
            .unwrap_or(0.0);
        // The new-flow capture's pool, as sized for this run.
        let small_pool = r
            .rows
            .iter()
            .find(|(s, _)| s.new_flows)
            .map(|(s, _)| (2 * s.flows, Self::sizing(s)))
            .filter(|(_, z)| z.data_room < 2048)
            .map(|(packets, z)| {
                format!(
                    " Its {:.1} M packets only fit a pool of {}-byte mbufs (data room and headroom), which testpmd then uses too.",
                    packets as f64 / 1e6,
                    z.data_room + 128
                )
            })
            .unwrap_or_default();
        // Where the lcores of the row with the most workers ran.
        let most = r.rows.iter().map(|(s, _)| s.workers).max().unwrap_or(1);
        let placement = format!(
            " With {most} workers, the lcores ran on CPUs as `{}` (lcore@CPU; lcore 0 is the main lcore, rvsd's mostly idle control thread) on this {cpus}-CPU machine.",
            Self::lcores(most)
        );
        let table_mb = r
            .memory_rows
            .iter()
            .find(|m| m.conns == 1_000_000)
            .map(|m| {
                format!(
                    " (`conn-memory` above: {:.0} MB for 1 M connections, slots and index)",
                    m.table_bytes * m.conns as f64 / 1e6
                )
            })
            .unwrap_or_default();
        let in_cache = match r.per_packet_ns {
            Some(ns) => format!(
                " With everything in cache, `cargo bench -p rvs-bench` (criterion, run as part of this benchmark) puts one established packet through `Worker::handle` in {ns:.0} ns (median)."
            ),
            None => " (`cargo bench -p rvs-bench`, the per-packet time with everything in cache, failed in this run.)".into(),
        };
        let (klo, khi) = spread(&r.cost.ratios);
        let (nlo, nhi) = (r.e2e.rvsd_one_nc.1, r.e2e.rvsd_one_nc.2);
        let noise = format!(
            "The machine is a shared VM; how much that moves the figures, in this run: the paired counting on / off ratios ranged {klo:.3}-{khi:.3}, and rvsd's paired end-to-end new-connection ratios (one real server) {nlo:.2}-{nhi:.2}."
        );
        let generated: Vec<&(Scenario, Run)> = r
            .rows
            .iter()
            .filter(|(s, _)| s.source == Source::Generator)
            .collect();
        let sweep = if !generated.is_empty() {
            let warm = generated
                .iter()
                .filter_map(|(s, run)| Some((s.flows, run.rvsd["warmup_seconds"].as_f64()?)))
                .map(|(n, w)| format!("{w:.1} s at {}", flows_label(n)))
                .collect::<Vec<_>>()
                .join(", ");
            // rvsd's drops in these runs, by reason, over each whole run.
            let mut only_tx_full = true;
            let drops = generated
                .iter()
                .filter_map(|(s, run)| {
                    let reasons = run.rvsd["drop_reasons"].as_object()?;
                    only_tx_full &= reasons.keys().all(|k| k == "drop_tx_full");
                    let list: Vec<String> =
                        reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    (!list.is_empty())
                        .then(|| format!("{}: {}", flows_label(s.flows), list.join(", ")))
                })
                .collect::<Vec<_>>();
            let drops = if drops.is_empty() {
                " rvsd dropped nothing in these runs.".to_string()
            } else {
                format!(
                    " rvsd's drops in these runs, by reason: {}{}.",
                    drops.join("; "),
                    if only_tx_full {
                        " (its transmit found flowgen's receive ring full: flowgen empties it between its bursts)"
                    } else {
                        ""
                    }
                )
            };
            format!(
                "## Flow-count sweep\n\n\
A capture of 10 M flows does not fit in a pool of mbufs, so these rows take their packets from `flowgen` \
(`bench/src/bin/flowgen.rs`) on CPU 0, over a memif pair (DPDK's `net_memif`; flowgen is the zero-copy client, \
the measured side the server, its worker alone on CPU 1): the `ack` captures' frames, flow after flow, each made \
by patching a template. Both sides pay the same per packet for the link: the measured side copies each packet out \
of flowgen's buffers on receive, as net_pcap copies out of its capture, and into them on transmit, where net_pcap \
only frees; flowgen frees what comes back. rvsd's rates are taken after its first pass over the flows, which opens \
their connections (warm-up: {warm}). \"Tries refused\" is the share of flowgen's tries to send a burst \
that the measured side did not take whole, its ring being full: where it is high, the measured side set the pace. A side that \
refused none kept up with flowgen: its figure is then flowgen's rate, a floor of what it can do (for testpmd, \
\"forwarded / 5tswap\" then overstates rvsd).{drops}\n\n{}\n",
                Self::sweep_table(r.rows)
            )
        } else {
            String::new()
        };
        let plan = r.e2e.plan;
        format!(
            "# Benchmark results\n\n\
Machine: {cpu}, {cpus} CPUs (a shared VM: figures drift from run to run; compare within a run). Date: {date}.\n\n\
Command: `cargo xtask bench` (release build). Each row replays one capture from `pktgen` through `net_pcap` \
(`rx_pcap=FILE,infinite_rx=1`, TX to nowhere) for {secs} s, first with `dpdk-testpmd --forward-mode=5tswap` and \
`macswap`, then with rvsd (busy polling, `sloppy_tcp` so a replayed capture of ACKs opens its connections on the first pass), \
on the same lcores. 64-byte frames unless said. rvsd's rates are taken after a warm-up of {warmup:.1} s: \
received counts the packets rvsd took from its queues, forwarded the packets its transmit queues accepted, drops/s \
every counted drop (any reason); \"forwarded / 5tswap\" compares what rvsd forwarded with what testpmd moved. ns/pkt is per worker (from received). \
With two workers the capture is split over the two receive queues as a NIC's RSS would split it, either \
on the client endpoint (Toeplitz over source address and port under rvsd's key, through rvsd's redirection table: \
what rvsd programs on a port that offers `RTE_ETH_RSS_L3_SRC_ONLY | L4_SRC_ONLY`, and the hash rvsd's `owner_of` uses, \
so no packet is handed over) or on the 5-tuple (a NIC that cannot hash the source alone, or one rvsd cannot program: \
Microsoft's published key and a 128-entry round-robin redirection table, `rvs_bench::rss_queue`; both hashes are \
checked against Microsoft's verification values): \"handed over\" is the share of received \
packets rvsd passed to the worker that owns their connection. \
Burst times are rx-to-tx per non-empty pass of the poll loop (a group of up to `PREFETCH_GROUP` packets, \
`crates/dataplane/src/run.rs`), in hdrhistogram (a pass runs from one clock reading at the top of the poll loop to the next, \
so it includes its slice of the expiry sweep). The new-flow capture holds every client's SYN and then every client's FIN: the FIN \
takes the connection to TIME_WAIT, so on the next pass the SYN opens a new one (IPVS's conn_reuse_mode) and every \
SYN is a new connection however long the replay runs; \"new conn/s\" is that sustained rate. rvsd opens the new \
connection in the slot of the one it ends (the key is the same), so this row measures reopened flows: a SYN from a \
port with no connection in the table also pays an insertion into the index, and its connection a removal by the \
expiry sweep later.{small_pool}{placement} \
The rows marked \"generated\" take their packets from `flowgen` instead (the flow-count sweep, below).\n\n{table}\n{headline}{sweep}{plots}\n\
## End to end\n\n\
The walkthrough's namespaces: one client, two real servers running nginx (one worker process each), and in the \
director's place rvsd (DR, af_packet, one worker with the idle back-off `{shipped}` ships for shared CPUs: it naps \
after {idle_polls} empty polls in a row), nginx `stream` (one worker process) or \
HAProxy `mode tcp` (one thread). Two like-for-like setups. **One real server**: each director balances over RS1 \
alone, against the client talking to RS1 directly: what the director costs. **Two real servers**: each director \
balances over both, against the client spreading its load over both servers itself (two wrk processes at once, \
one per server, each with half the threads and connections, their rates summed and the higher of their latencies \
shown): the balanced ceiling. \
wrk -t{threads} -c{conns} for {e2e_secs} s, with keep-alive and with `Connection: close` (a new connection per request), \
{runs} run(s) each, the median shown; the baseline's runs and rvsd's alternate, and rvsd's ratio is the \
median of the paired ratios (nginx's and HAProxy's are ratios of medians); the namespaces reuse TIME_WAIT \
ports (`tcp_tw_reuse`), as load generators must; \
the long transfer is one curl of a {big} MB file. Client, servers and director share the machine's {cpus} CPUs, \
so the figures compare the directors with each other, not with dedicated hardware. Director CPU counts the \
director process's user and system time during the wrk runs (rvsd's includes its polling).\n\n\
### One real server: the director's overhead\n\n{one}\n\
### Sparse traffic: what the director adds at low load\n\n\
One real server again, with rvsd balancing over it alone: {sparse_n} requests from one client (python3), each on \
a new connection after a pause of {sparse_gap} ms, timed from connect to the server's close, straight to RS1 and \
through rvsd in {runs} alternating pair(s). Between requests rvsd's worker naps: its first nap of a lull is \
a plain one, and the longer ones after it end at the first frame on the af_packet socket.\n\n{sparse}\n\
Median of rvsd's p50 / direct's p50: {sparse_ratio:.2}\n\n\
### Two real servers: the balanced ceiling\n\n{two}\n\
## Memory per connection\n\n\
`conn-memory` (part of this run): IPv4 connections inserted into one worker's table sized for them, half \
of them NAT (which are indexed a second time by their replies' key); bytes by the table's own accounting \
(slab, index, registries) and by the growth of the process's resident memory.\n\n```\n{memory}```\n\n\
## What counting traffic costs\n\n\
rvsd counts connections, packets and bytes per real server as the kernel's `ip_vs_stats` does (services and the \
total are summed on the control thread): each worker adds to a cache line of its own per real server, with plain \
loads and stores. The DR row above again, with `[stats] enabled` on and off in alternating runs of {secs} s; the \
ratio of each pair's forwarded rates, and their median.\n\n{cost}\n\
## What the exception path costs\n\n\
With a kernel interface (`[[port]] kernel_interface`, on by default) each worker also owns a queue pair on the \
port's tap and looks for frames from the kernel every `KERNEL_POLL_INTERVAL` (`crates/dataplane/src/run.rs`; an empty look is one system call), and the \
classification tests whether a frame is the host's. The DR row above again (none of its packets are the kernel's), \
with the kernel interface on and off in alternating runs of {secs} s (rvsd in a network namespace of its own); \
the ratio of each pair, and their median.\n\n{kcost}\n\
## What connection sync costs\n\n\
The new-flow row above again (every connection is synced once, when its FIN takes it to TIME_WAIT), with a sync \
master (`rvsadm --start-daemon master` on the port) and without, in alternating runs of {secs} s, both with the \
kernel interface. Each worker writes the entries into its own messages and frames them on the port itself \
(`crates/dataplane/src/worker/sync.rs`); the messages are not counted as forwarded. The ratio of each pair, and their median.\n\n{scost}\n\
## SYN flood\n\n\
One worker whose table holds 65 536 connections, and a capture from `pktgen --traffic flood` played once \
(not looped; `cargo xtask bench --flood` runs only this): 16 384 clients open connections (SYN, ACK), then, in rounds, \
262 144 SYNs from spoofed sources (four times the table, never the same source twice), 4 096 legitimate clients \
opening connections (each one's ACK 16 rounds, about 1 000 spoofed SYNs, after its SYN) and one more ACK from each \
established client. They go to three ports of the VIP only so that the services' counters tell them apart; \
all share the one table. Established clients' packets lost: sent less forwarded, plus any client scheduled a \
second time (it lost its entry); a legitimate connection completed when its ACK found its entry. Table pressure \
(`[defense] reclaim_half_open`, on by default) gives a half-open connection's place (under a flood, the oldest) to the \
new one; off, a full table drops new connections (rvs before this row). See docs/syn-flood.md.\n\n{flood}\n\
## Failover and rejoin\n\n{failover}\n\
## Targets\n\n\
Generated from this run's figures (same-run ratios). Where a figure is the median of paired runs, the lowest and highest pair follow it, and \"not in every pair\" marks a verdict that some pairs contradict: on this shared machine such a ratio lands either side of its target from run to run.\n\n{targets}\n\
Where the time goes (DR, 1 M flows). testpmd's 5tswap spends its whole budget in `net_pcap` (each packet is \
copied out of a capture mbuf that is long out of cache) and the dropping TX; rvsd pays the same and then parses, \
finds the connection, steps its TCP state and rewrites the frame. At 1 M flows the connection table{table_mb} is larger \
than the caches, and a lookup needs two memory accesses, the index line and the slot. \
rvsd overlaps them across a group of packets (two rx bursts when the first was full): it hashes every \
packet's flow key and prefetches its index line, then reads those lines and prefetches the slots whose \
tags match, and only then handles the packets, each starting at the slot found for it (the scheme of \
DPDK's `rte_hash_lookup_bulk`; `hashbrown`, used before, exposes no bucket address to prefetch).{in_cache} \
The 1500-byte row is bounded by copying the frames, for testpmd as for rvsd. {noise}\n",
            secs = self.secs,
            table = r.table,
            headline = r.headline,
            sweep = sweep,
            plots = r.plots,
            shipped = crate::bench_e2e::SHIPPED_CONFIG,
            idle_polls = r.e2e.idle_empty_polls,
            threads = crate::bench_e2e::WRK_THREADS,
            conns = crate::bench_e2e::WRK_CONNECTIONS,
            e2e_secs = plan.secs,
            runs = plan.runs,
            big = crate::bench_e2e::BIG_FILE_MB,
            one = r.e2e.one_server,
            sparse_n = crate::bench_e2e::SPARSE_REQUESTS,
            sparse_gap = crate::bench_e2e::SPARSE_GAP_MS,
            sparse = r.e2e.sparse,
            sparse_ratio = r.e2e.sparse_p50_ratio,
            two = r.e2e.two_servers,
            memory = r.memory,
            cost = r.cost.table,
            kcost = r.kcost.table,
            scost = r.scost.table,
            flood = r.flood,
            failover = std::fs::read_to_string(self.root.join("bench/failover.md")).unwrap_or_else(
                |_| "Not measured in this run: `cargo xtask failover` writes bench/failover.md.\n".into()
            ),
            targets = r.targets,
        )
    }
}

/// `pairs` pairs of runs of two sides, `a` and `b`, given the pair's
/// number: their table (under `header`) and the median of the ratios a / b.
/// Which side runs first alternates, so that whatever favours the first
/// (or second) run of a pair favours neither side. `a` also returns its
/// run's summary; the last one is kept.
fn alternate(
    pairs: usize,
    header: String,
    ratio_name: &str,
    progress: &mut Progress,
    mut a: impl FnMut(&mut Progress, usize) -> Result<(f64, serde_json::Value)>,
    mut b: impl FnMut(&mut Progress, usize) -> Result<f64>,
) -> Result<Paired> {
    let mut t = header;
    let mut ratios = Vec::new();
    let mut last_on = None;
    for i in 1..=pairs {
        let ((x, run), y) = if i % 2 == 1 {
            let x = a(progress, i)?;
            (x, b(progress, i)?)
        } else {
            let y = b(progress, i)?;
            (a(progress, i)?, y)
        };
        last_on = Some(run);
        ratios.push(x / y);
        let _ = writeln!(
            t,
            "| {i} | {:.2} | {:.2} | {:.3} |",
            x / 1e6,
            y / 1e6,
            x / y
        );
    }
    anyhow::ensure!(!ratios.is_empty(), "no pairs");
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let _ = writeln!(t, "\nMedian {ratio_name}: {median:.3}");
    Ok(Paired {
        table: t,
        median,
        ratios,
        last_on: last_on.unwrap_or_default(),
    })
}

/// One row of `conn-memory`'s output.
struct MemoryRow {
    conns: u64,
    /// Bytes per connection by the table's own accounting.
    table_bytes: f64,
}

/// A paired measurement: its table, the median ratio and every ratio.
struct Paired {
    table: String,
    median: f64,
    ratios: Vec<f64>,
    /// rvsd's summary of the last "on" run.
    last_on: serde_json::Value,
}

/// The lowest and highest of some ratios.
fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    (lo, hi)
}

/// The paired measurements, for the Targets table.
#[derive(Debug, Clone, Copy)]
struct Costs {
    counting: Figure,
    kernel: Figure,
    sync: Figure,
    /// rvsd against testpmd on the first two targets' rows, in pairs
    /// (none with --quick: the rows' single runs stand).
    dr: Option<Figure>,
    new_flows: Option<Figure>,
    /// Two workers against one on the DR 1 M row, split by either RSS, in
    /// pairs (none with --quick).
    rss_endpoint: Option<Figure>,
    rss_tuple: Option<Figure>,
}

/// A measured figure for the Targets table: one run's, or the median of
/// paired runs' ratios with their lowest and highest.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figure {
    value: f64,
    pairs: Option<(f64, f64)>,
}

impl Figure {
    fn one(value: f64) -> Figure {
        Figure { value, pairs: None }
    }

    fn paired(p: &Paired) -> Figure {
        Figure {
            value: p.median,
            pairs: Some(spread(&p.ratios)),
        }
    }

    fn of(r: crate::bench_e2e::Ratios) -> Figure {
        Figure {
            value: r.0,
            pairs: Some((r.1, r.2)),
        }
    }
}

/// What the report is made of.
struct Report<'a> {
    rows: &'a [(Scenario, Run)],
    table: &'a str,
    /// The target rows' pairs, against testpmd and two workers against
    /// one (empty with --quick).
    headline: &'a str,
    e2e: &'a crate::bench_e2e::E2e,
    memory: &'a str,
    memory_rows: &'a [MemoryRow],
    cost: &'a Paired,
    kcost: &'a Paired,
    scost: &'a Paired,
    flood: &'a str,
    targets: &'a str,
    per_packet_ns: Option<f64>,
    plots: &'a str,
}

/// The Targets table, a row at a time.
struct Targets {
    text: String,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            text: "| target | wanted | measured | |\n|---|---|---|---|\n".into(),
        }
    }
}

/// A Targets row's wanted figure: at least or at most `value`.
#[derive(Debug, Clone, Copy)]
enum Want {
    AtLeast(f64),
    AtMost(f64),
}

impl Want {
    fn met_by(self, v: f64) -> bool {
        match self {
            Want::AtLeast(w) => v >= w,
            Want::AtMost(w) => v <= w,
        }
    }
}

impl Targets {
    fn at_least(&mut self, what: &str, want: f64, got: Option<Figure>, why_not: &str) {
        self.row(what, Want::AtLeast(want), got, why_not);
    }

    fn at_most(&mut self, what: &str, want: f64, got: Option<Figure>, why_not: &str) {
        self.row(what, Want::AtMost(want), got, why_not);
    }

    /// One row. The figure is printed with more decimals where its
    /// rounding would print the target itself although it missed, or a
    /// figure past the target although it met it ("0.90, missed"); a
    /// median of pairs gets their range, and a verdict that some pairs
    /// contradict says so: on this shared machine a ratio near its target
    /// falls either side from run to run.
    fn row(&mut self, what: &str, want: Want, got: Option<Figure>, why_not: &str) {
        let (wanted, target, decimals) = match want {
            Want::AtLeast(w) => (format!("≥ {w:.2}"), w, 2),
            Want::AtMost(w) => (format!("≤ {w:.1}"), w, 1),
        };
        let meets = |v: f64| want.met_by(v);
        let Some(g) = got else {
            let _ = writeln!(self.text, "| {what} | {wanted} | - | {why_not} |");
            return;
        };
        let met = meets(g.value);
        let shown = |v: f64| {
            let side = |d: usize| meets(format!("{v:.d$}").parse().unwrap_or(v)) == meets(v);
            let d = (decimals..decimals + 3)
                .find(|&d| side(d))
                .unwrap_or(decimals + 3);
            format!("{v:.d$}")
        };
        let mut measured = shown(g.value);
        let mut verdict = if met {
            "met".to_string()
        } else {
            let by = (1.0 - g.value / target).abs() * 100.0;
            if by < 1.0 {
                "missed by < 1 %".to_string()
            } else {
                format!("missed by {by:.0} %")
            }
        };
        if let Some((lo, hi)) = g.pairs {
            let _ = write!(measured, " (pairs {}–{})", shown(lo), shown(hi));
            if meets(lo) != meets(hi) {
                verdict.push_str(", not in every pair");
            }
        }
        let _ = writeln!(self.text, "| {what} | {wanted} | {measured} | {verdict} |");
    }
}

/// Markers of the README's benchmark summary, which `cargo xtask bench`
/// rewrites from RESULTS.md.
pub const SUMMARY_START: &str =
    "<!-- bench-summary: generated by `cargo xtask bench` from bench/RESULTS.md; do not edit -->";
pub const SUMMARY_END: &str = "<!-- /bench-summary -->";

/// The README's summary of a RESULTS.md: its machine line and its Targets
/// table, quoted.
pub fn summary_of(results: &str) -> Result<String> {
    let machine = results
        .lines()
        .find(|l| l.starts_with("Machine:"))
        .context("RESULTS.md has no Machine line")?;
    let targets: Vec<&str> = results
        .lines()
        .skip_while(|l| l.trim() != "## Targets")
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    anyhow::ensure!(!targets.is_empty(), "RESULTS.md has no Targets table");
    Ok(format!(
        "From [bench/RESULTS.md](bench/RESULTS.md). {machine}\n\n{}\n\n",
        targets.join("\n")
    ))
}

/// `readme` with the text between the summary markers replaced by the
/// summary of `results`.
pub fn readme_with_summary(readme: &str, results: &str) -> Result<String> {
    let start = readme
        .find(SUMMARY_START)
        .context("README.md lacks the benchmark summary's start marker")?
        + SUMMARY_START.len();
    let end = readme
        .find(SUMMARY_END)
        .context("README.md lacks the benchmark summary's end marker")?;
    anyhow::ensure!(start <= end, "README.md's summary markers are out of order");
    Ok(format!(
        "{}\n{}{}",
        &readme[..start],
        summary_of(results)?,
        &readme[end..]
    ))
}

/// Progress of a long run on stderr: a bar with the current step when
/// stderr is a terminal (indicatif), else a plain line per step; both with
/// the ETA from the steps' expected seconds, scaled by how the run has kept
/// to them so far. Every line also goes to a log beside the captures.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    log: Option<std::fs::File>,
    total: f64,
    done: f64,
    current: f64,
    started: Instant,
    step: usize,
}

impl Progress {
    pub fn new(total_secs: f64, log: &Path) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total_secs.ceil() as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {percent:>3}% {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.enable_steady_tick(Duration::from_secs(1));
            b
        });
        Progress {
            bar,
            log: std::fs::File::create(log).ok(),
            total: total_secs,
            done: 0.0,
            current: 0.0,
            started: Instant::now(),
            step: 0,
        }
    }

    /// Starts a step expected to take `secs` (ending the one before).
    pub fn step(&mut self, what: &str, secs: f64) {
        use std::io::Write as _;
        self.done += self.current;
        self.current = secs;
        self.step += 1;
        let elapsed = self.started.elapsed().as_secs_f64();
        // How fast the run has gone against its plan so far.
        let pace = if self.done >= self.total / 10.0 {
            (elapsed / self.done).clamp(0.5, 4.0)
        } else {
            1.0
        };
        let eta = ((self.total - self.done).max(0.0) * pace) as u64;
        let line = format!("[{}] {what} (ETA {}m{:02}s)", self.step, eta / 60, eta % 60);
        if let Some(log) = self.log.as_mut() {
            let _ = writeln!(log, "{:.0}s {line}", elapsed);
        }
        match &self.bar {
            Some(b) => {
                b.set_position(self.done as u64);
                b.set_message(line.clone());
                b.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Prints results on stdout without tearing the bar.
    pub fn print(&self, text: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| println!("{text}")),
            None => println!("{text}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let t = self.started.elapsed().as_secs();
        eprintln!("done in {}m{:02}s", t / 60, t % 60);
    }
}

/// What the SYN-flood row measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flood {
    /// Table pressure (`[defense] reclaim_half_open`) on.
    pub reclaim: bool,
    pub capacity: u64,
    pub flood_syns: u64,
    pub established_flows: u64,
    pub established_sent: u64,
    pub established_forwarded: u64,
    /// Connections the established clients were given: more than one each
    /// means one lost its entry and was scheduled again.
    pub established_conns: u64,
    pub legit_flows: u64,
    pub legit_completed: u64,
    pub reclaimed: u64,
    pub table_full_drops: u64,
    pub seconds: f64,
}

/// The header of [`Flood::table`]'s rows.
pub const FLOOD_HEADER: &str = "| table pressure | connection table | spoofed SYNs | established clients: packets sent / forwarded / lost | legitimate new clients: completed | half-open reclaimed | dropped, table full | seconds |\n|---|---|---|---|---|---|---|---|\n";

impl Flood {
    pub fn established_lost(&self) -> u64 {
        self.established_sent
            .saturating_sub(self.established_forwarded)
            + self
                .established_conns
                .saturating_sub(self.established_flows)
    }

    pub fn legit_completion(&self) -> f64 {
        self.legit_completed as f64 / self.legit_flows.max(1) as f64
    }

    pub fn table(&self) -> String {
        format!(
            "| {} | {} | {} | {} / {} / {} | {} of {} ({:.2} %) | {} | {} | {:.2} |\n",
            if self.reclaim { "on" } else { "off" },
            self.capacity,
            self.flood_syns,
            self.established_sent,
            self.established_forwarded,
            self.established_lost(),
            self.legit_completed,
            self.legit_flows,
            self.legit_completion() * 100.0,
            self.reclaimed,
            self.table_full_drops,
            self.seconds,
        )
    }
}

/// `Conns` and `InPkts` of one service in `rvsadm -Ln --stats --exact`.
fn service_stats(listing: &str, proto: &str, vip_port: &str) -> Option<(u64, u64)> {
    listing.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[0] == proto && f[1] == vip_port)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

/// One counter of `rvsadm --counters`, summed over the workers.
fn counter(counters: &str, name: &str) -> u64 {
    counters
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next()?.parse::<u64>().ok())?
        })
        .sum()
}

impl Bench {
    /// The SYN-flood row: one worker whose table holds `capacity`
    /// connections, a capture played once (not looped) in which established
    /// clients keep talking and legitimate clients open connections while
    /// four times the table in spoofed SYNs arrives (pktgen's `flood`). The
    /// rules go in from a rules file at start; the capture's lead-in (UDP
    /// to a one-packet service added last) is played meanwhile, and that
    /// service's count shows the rules were all in before the rest came.
    /// `reclaim` turns table pressure on or off.
    /// About how long one flood run takes, for the progress display.
    fn flood_secs(&self) -> f64 {
        if self.quick {
            5.0
        } else {
            10.0
        }
    }

    pub fn flood(&self, reclaim: bool) -> Result<Flood> {
        let (capacity, legit): (u64, u64) = if self.quick {
            (8192, 1024)
        } else {
            (65536, 4096)
        };
        let (flood_syns, established) = (4 * capacity, capacity / 4);
        let lead_in = 400_000;
        std::fs::create_dir_all(&self.dir)?;
        let pcap = self
            .dir
            .join(format!("flood-{capacity}-{established}-{legit}.pcap"));
        let summary_path = PathBuf::from(format!("{}.json", pcap.display()));
        if !summary_path.exists() {
            let st = Command::new(self.bin.join("pktgen"))
                .args(["--out", pcap.to_str().unwrap(), "--traffic", "flood"])
                .args(["--flows", &flood_syns.to_string()])
                .args(["--established", &established.to_string()])
                .args(["--legit", &legit.to_string()])
                .args(["--lead-in", &lead_in.to_string()])
                .status()
                .context("running pktgen")?;
            anyhow::ensure!(st.success(), "pktgen failed");
        }
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary_path)?)?;
        let num = |k: &str| summary[k].as_u64().unwrap_or(0);
        let total = num("packets");

        let socket = self.dir.join("rvsd-flood.sock");
        let rules = self.dir.join("rvsd-flood.rules");
        let mut r = String::new();
        for (port, servers) in [(80, [1, 2]), (81, [3, 4]), (82, [1, 3])] {
            let _ = writeln!(r, "-A -t {VIP4}:{port} -s wlc");
            for i in servers {
                let _ = writeln!(r, "-a -t {VIP4}:{port} -r 10.99.1.{i}:{port} -g -w 1");
            }
        }
        let _ = writeln!(r, "-A -u {VIP4}:83 -s rr -o");
        let _ = writeln!(r, "-a -u {VIP4}:83 -r 10.99.1.1:83 -g -w 1");
        std::fs::write(&rules, r)?;
        let mut statics = String::new();
        for i in 1..=4 {
            let _ = write!(
                statics,
                "{{ address = \"10.99.1.{i}\", mac = \"02:00:00:00:01:0{i}\" }}, "
            );
        }
        let cfg = format!(
            "[dpdk]\nhugepages = \"off\"\nmemory_mb = 512\nmbufs = 16383\n\n\
[[port]]\nname = \"pcap\"\ndevice = \"net_pcap0,rx_pcap={pcap}\"\naddress = \"10.99.0.254/16\"\nkernel_interface = false\n\n\
[workers]\nlcores = [1]\nidle_empty_polls = 0\n\n\
[connections]\ncapacity_per_worker = {capacity}\n\n\
[defense]\nreclaim_half_open = {reclaim}\n\n\
[neighbours]\nstatic = [{statics}]\n\n\
[control]\nsocket = \"{s}\"\nrules = \"{rules}\"\n",
            pcap = pcap.display(),
            s = socket.display(),
            rules = rules.display(),
        );
        let cfg_path = self.dir.join("rvsd-flood.toml");
        std::fs::write(&cfg_path, cfg)?;
        let mut child = Command::new(self.bin.join("rvsd"))
            .args(["--config", cfg_path.to_str().unwrap()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting rvsd")?;
        let rvsadm = |args: &[&str]| -> Result<String> {
            let out = Command::new(self.bin.join("rvsadm"))
                .arg("--socket")
                .arg(&socket)
                .args(args)
                .stderr(Stdio::null())
                .output()?;
            anyhow::ensure!(out.status.success(), "rvsadm {args:?} failed");
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let started = Instant::now();
        // Until the whole capture went through (net_pcap then reads
        // nothing more): at most two minutes.
        let result = (|| -> Result<Flood> {
            let mut last = (0, Instant::now());
            loop {
                if let Some(st) = child.try_wait()? {
                    bail!("rvsd exited ({st}) during the flood row");
                }
                let rx = rvsadm(&["--counters"]).map_or(0, |c| counter(&c, "rx_packets"));
                if rx >= total {
                    break;
                }
                if rx != last.0 {
                    last = (rx, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(20)
                    || started.elapsed() > Duration::from_secs(120)
                {
                    bail!("rvsd took {rx} of the capture's {total} packets, then no more");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let seconds = started.elapsed().as_secs_f64();
            let listing = rvsadm(&["-L", "-n", "--stats", "--exact"])?;
            let counters = rvsadm(&["--counters"])?;
            let stats = |proto, port: u16| {
                service_stats(&listing, proto, &format!("{VIP4}:{port}"))
                    .with_context(|| format!("no {proto} {VIP4}:{port} in the listing:\n{listing}"))
            };
            let (lead_conns, _) = stats("UDP", 83)?;
            anyhow::ensure!(
                lead_conns > 0,
                "rvsd loaded its rules after the capture's lead-in of {lead_in} packets had passed: make it longer"
            );
            let (est_conns, est_in) = stats("TCP", 80)?;
            let (legit_conns, legit_in) = stats("TCP", 81)?;
            Ok(Flood {
                reclaim,
                capacity,
                flood_syns,
                established_flows: num("established_flows"),
                established_sent: num("established_packets"),
                established_forwarded: est_in,
                established_conns: est_conns,
                legit_flows: num("legit_flows"),
                // Each completed handshake is its SYN (a connection) and
                // its ACK.
                legit_completed: legit_in.saturating_sub(legit_conns),
                reclaimed: counter(&counters, "half_open_reclaimed"),
                table_full_drops: counter(&counters, "drop_conn_table_full"),
                seconds,
            })
        })();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let _ = std::fs::remove_file(&socket);
        result
    }
}

/// The rows `--rows TEXT` picks (indices into `names`): the one named
/// exactly TEXT if there is one (so that "DR, established" is the
/// one-worker row alone, not also the two-worker rows whose names start
/// with it), else every row whose name contains TEXT; all without TEXT.
fn rows_named(names: &[&str], only: Option<&str>) -> Vec<usize> {
    let Some(text) = only else {
        return (0..names.len()).collect();
    };
    match names.iter().position(|n| *n == text) {
        Some(i) => vec![i],
        None => (0..names.len())
            .filter(|&i| names[i].contains(text))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_figure_next_to_its_target_is_printed_on_its_side_of_it() {
        let mut t = Targets::default();
        t.at_least("a", 0.90, Some(Figure::one(0.8996)), "");
        t.at_least("b", 0.90, Some(Figure::one(0.9049)), "");
        t.at_most("c", 40.0, Some(Figure::one(40.04)), "");
        t.at_least("d", 0.65, None, "not measured");
        assert!(
            t.text.contains("| a | ≥ 0.90 | 0.8996 | missed by < 1 % |"),
            "{}",
            t.text
        );
        assert!(t.text.contains("| b | ≥ 0.90 | 0.90 | met |"), "{}", t.text);
        assert!(
            t.text.contains("| c | ≤ 40.0 | 40.04 | missed by < 1 % |"),
            "{}",
            t.text
        );
        assert!(
            t.text.contains("| d | ≥ 0.65 | - | not measured |"),
            "{}",
            t.text
        );
    }

    #[test]
    fn rows_named_prefers_an_exact_name_to_a_substring() {
        let names = [
            "DR, established",
            "NAT, established",
            "DR, established, 2 workers, RSS on the 5-tuple",
        ];
        assert_eq!(super::rows_named(&names, None), [0, 1, 2]);
        assert_eq!(super::rows_named(&names, Some("DR, established")), [0]);
        assert_eq!(super::rows_named(&names, Some("established")), [0, 1, 2]);
        assert_eq!(super::rows_named(&names, Some("5-tuple")), [2]);
        assert!(super::rows_named(&names, Some("UDP")).is_empty());
    }

    use super::*;

    /// The README's benchmark summary is RESULTS.md's, as `cargo xtask
    /// bench` writes it: an edit to either alone fails here.
    #[test]
    fn readme_summary_quotes_results() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let results = std::fs::read_to_string(root.join("bench/RESULTS.md")).unwrap();
        assert_eq!(
            readme_with_summary(&readme, &results).unwrap(),
            readme,
            "README.md's benchmark summary differs from bench/RESULTS.md's: rerun `cargo xtask bench`, or `cargo xtask bench --readme-only`"
        );
    }

    /// A full run's report from made-up figures: the Targets table says
    /// met, missed and not measured where it should, the prose carries the
    /// figures it was given, and the README summary can be made from it.
    #[test]
    fn report_from_made_up_figures() {
        let bench = Bench::new(Path::new("/nonexistent"), false);
        let run = |fwd: f64, testpmd: f64| Run {
            testpmd_5tswap: testpmd,
            testpmd_macswap: testpmd,
            testpmd_generator: None,
            rvsd: serde_json::json!({
                "rx_pps": fwd, "fwd_pps": fwd, "drop_pps": 0.0, "handed_over": 0.5,
                "warmup_seconds": 2.0, "new_conns_per_s": 1e6,
                "burst_ns_p50": 5000.0, "burst_ns_p99": 9000.0, "burst_ns_p999": 20000.0,
                "burst_ns_cdf": [[0.5, 5000], [0.99, 9000]],
            }),
        };
        let mut rows = Vec::new();
        for sc in bench.scenarios() {
            // DR 1 worker 0.70 of testpmd (met), new flows 0.40 (missed),
            // RSS 2 workers 1.5× one (missed).
            let mut r = if sc.new_flows {
                run(4e6, 10e6)
            } else if sc.workers == 2 {
                run(10.5e6, 20e6)
            } else {
                run(7e6, 10e6)
            };
            if sc.source == Source::Generator {
                // testpmd kept up with flowgen; rvsd refused a quarter of
                // flowgen's tries.
                r.testpmd_generator =
                    Some(serde_json::json!({"tries": 1000, "refused_tries": 0, "sent_pps": 10e6}));
                r.rvsd["generator"] =
                    serde_json::json!({"tries": 1000, "refused_tries": 250, "sent_pps": 8e6});
            }
            rows.push((sc, r));
        }
        let sweep = Bench::sweep_table(&rows);
        assert!(
            sweep.contains("| 10M | 10.00 | 7.00 | 0 | 0.70 | 10.00 (0.0 %) | 8.00 (25.0 %) |"),
            "{sweep}"
        );
        assert_eq!(sweep.lines().count(), 2 + 4, "{sweep}");
        assert_eq!(
            Bench::flow_sweep(&rows)
                .iter()
                .map(|p| p.0)
                .collect::<Vec<_>>(),
            [1000, 100_000, 1_000_000, 10_000_000]
        );
        let memory_rows = [
            MemoryRow {
                conns: 1_000_000,
                table_bytes: 44.0,
            },
            MemoryRow {
                conns: 10_000_000,
                table_bytes: 46.7,
            },
        ];
        let e2e = crate::bench_e2e::E2e {
            plan: crate::bench_e2e::Plan::FULL,
            idle_empty_polls: 8,
            one_server: "| one |\n".into(),
            two_servers: "| two |\n".into(),
            rvsd_one_ka: (0.97, 0.95, 0.99),
            rvsd_one_nc: (0.93, 0.90, 0.96),
            bars: vec![],
            sparse: "| pair |\n".into(),
            sparse_p50_ratio: 1.1,
        };
        let flood = Flood {
            established_flows: 10,
            established_sent: 30,
            established_forwarded: 30,
            established_conns: 10,
            legit_flows: 100,
            legit_completed: 98,
            ..Flood::default()
        };
        let costs = Costs {
            counting: Figure {
                value: 0.98,
                pairs: Some((0.96, 1.01)),
            },
            kernel: Figure {
                value: 0.99,
                pairs: Some((0.97, 1.02)),
            },
            sync: Figure {
                value: 0.85,
                pairs: Some((0.80, 0.89)),
            },
            dr: None,
            new_flows: None,
            rss_endpoint: None,
            rss_tuple: None,
        };
        let targets = Bench::targets(false, &rows, Some(&e2e), &memory_rows, costs, &flood);
        let verdict = |what: &str| {
            targets
                .lines()
                .find(|l| l.contains(what))
                .unwrap_or_else(|| panic!("no row {what} in\n{targets}"))
                .rsplit('|')
                .nth(1)
                .unwrap()
                .trim()
                .to_string()
        };
        assert_eq!(verdict("DR, established, 1M flows"), "met");
        assert_eq!(verdict("New flows"), "missed by 20 %");
        assert_eq!(verdict("RSS on the client endpoint"), "missed by 6 %");
        assert_eq!(verdict("RSS on the 5-tuple"), "missed by 6 %");
        assert_eq!(verdict("keep-alive"), "met");
        assert_eq!(
            verdict("new connection per request"),
            "missed by 2 %, not in every pair"
        );
        assert_eq!(verdict("at 10 M"), "missed by 17 %");
        assert_eq!(verdict("established clients lost"), "met");
        assert_eq!(verdict("legitimate new connections"), "missed by 1 %");
        assert_eq!(verdict("Connection sync"), "missed by 6 %");
        // A median of pairs shows their range, and where some pairs fall on
        // the other side of the target, says so.
        assert!(targets.contains("| 0.98 (pairs 0.96–1.01) | met, not in every pair |"));
        assert!(targets.contains("| 0.85 (pairs 0.80–0.89) | missed by 6 % |"));
        assert_eq!(verdict("kernel interface"), "met, not in every pair");
        // Measured in pairs against testpmd, the first two targets take the
        // pairs' median, not the rows' single runs.
        let paired = Costs {
            dr: Some(Figure {
                value: 0.62,
                pairs: Some((0.58, 0.67)),
            }),
            new_flows: Some(Figure {
                value: 0.52,
                pairs: Some((0.51, 0.55)),
            }),
            rss_endpoint: Some(Figure {
                value: 1.7,
                pairs: Some((1.62, 1.81)),
            }),
            ..costs
        };
        let t = Bench::targets(false, &rows, Some(&e2e), &memory_rows, paired, &flood);
        assert!(
            t.contains("testpmd 5tswap | ≥ 0.65 | 0.62 (pairs 0.58–0.67) | missed by 5 %, not in every pair |"),
            "{t}"
        );
        assert!(
            t.contains("| ≥ 0.50 | 0.52 (pairs 0.51–0.55) | met |"),
            "{t}"
        );
        // So do the two-worker rows measured in pairs; one that was not
        // keeps its single runs' ratio.
        assert!(
            t.contains("RSS on the client endpoint (as rvsd programs a NIC that can), vs 1 worker (DR, 1M flows, forwarded) | ≥ 1.60 | 1.70 (pairs 1.62–1.81) | met |"),
            "{t}"
        );
        assert!(t.contains("| ≥ 1.60 | 1.50 | missed by 6 % |"), "{t}");
        let quick = Bench::targets(true, &[], None, &memory_rows[..1], costs, &flood);
        assert_eq!(quick.matches("not measured").count(), 10, "{quick}");
        let paired = Paired {
            table: "| pair |\n".into(),
            median: 0.98,
            ratios: vec![0.97, 0.98, 0.99],
            last_on: serde_json::Value::Null,
        };
        let table = bench.table(&rows);
        // The pairs' section sets this run's single run of a row beside
        // its pairs.
        let dr = rows.iter().find(|(s, _)| s.is_dr_target()).unwrap();
        let dr_pairs = Paired {
            table: "| dr pair |\n".into(),
            median: 0.66,
            ratios: vec![0.61, 0.66, 0.72],
            last_on: serde_json::Value::Null,
        };
        let two = rows
            .iter()
            .find(|(s, _)| s.is_scaling_target(Split::FiveTupleRss))
            .unwrap();
        let two_pairs = Paired {
            table: "| two pair |\n".into(),
            median: 1.4,
            ratios: vec![1.3, 1.4, 1.55],
            last_on: serde_json::Value::Null,
        };
        let headline = Bench::headline_section(&[(&dr.0, dr_pairs), (&two.0, two_pairs)], &rows);
        // DR: 7 Mpps against testpmd's 10; two workers: 10.5 against 7.
        assert!(
            headline.contains(": 0.70 in the table above, 0.61-0.72 in the pairs;"),
            "{headline}"
        );
        assert!(
            headline
                .contains("RSS on the 5-tuple: 1.50 in the table above, 1.30-1.55 in the pairs."),
            "{headline}"
        );
        assert!(headline.contains("| two pair |"), "{headline}");
        assert!(headline.contains("| dr pair |"), "{headline}");
        assert_eq!(Bench::headline_section(&[], &rows), "");
        let report = bench.report(&Report {
            rows: &rows,
            table: &table,
            headline: &headline,
            e2e: &e2e,
            memory: "memory\n",
            memory_rows: &memory_rows,
            cost: &paired,
            kcost: &paired,
            scost: &paired,
            flood: "| flood |\n",
            targets: &targets,
            per_packet_ns: Some(51.0),
            plots: "## Plots\n",
        });
        for want in [
            "in 51 ns (median)",
            "44 MB for 1 M connections",
            "ranged 0.970-0.990",
            "(one real server) 0.90-0.96",
            "warm-up of 2.0 s",
            "wrk -t2 -c32 for 5 s",
            "| 50.0 % |",
            "## Flow-count sweep",
            "(warm-up: 2.0 s at 1k, 2.0 s at 100k, 2.0 s at 1M, 2.0 s at 10M)",
            "rvsd dropped nothing in these runs.",
        ] {
            assert!(report.contains(want), "report lacks {want:?}:\n{report}");
        }
        for bad in ["NaN", "inf-", "-inf", " inf ", "576", "about 50 ns"] {
            assert!(!report.contains(bad), "report has {bad:?}");
        }
        let summary = summary_of(&report).unwrap();
        assert!(summary.contains("missed by 20 %"));
    }

    #[test]
    fn summary_replaces_only_the_marked_block() {
        let results = "# R\n\nMachine: X, 2 CPUs. Date: D.\n\n## Targets\n\nGenerated.\n\n| a | b |\n|---|---|\n| c | met |\n\nprose\n";
        let readme = format!("before\n{SUMMARY_START}\nold\n{SUMMARY_END}\nafter\n");
        let out = readme_with_summary(&readme, results).unwrap();
        assert!(out.starts_with("before\n"));
        assert!(out.ends_with(&format!("{SUMMARY_END}\nafter\n")));
        assert!(out.contains("| c | met |"));
        assert!(out.contains("RESULTS.md). Machine: X, 2 CPUs. Date: D.\n"));
        assert!(!out.contains("old") && !out.contains("prose"));
        assert!(readme_with_summary("no markers", results).is_err());
    }
}
