//! End to end: the same client and real servers behind rvsd (DR), nginx
//! `stream` and HAProxy `mode tcp`, and with no director at all, measured
//! with wrk (keep-alive, and a new connection per request) and a long
//! transfer. Part of `cargo xtask bench` (not --quick). Two like-for-like
//! pairs: each director with one real server against the client talking to
//! that server (the director's overhead), and each director with two
//! against the client spreading its load over both itself (the balanced
//! ceiling).
//!
//! Why this file is long (about 600 lines): one benchmark's whole procedure
//! (tools, servers, paired runs, the table it writes), which reads best in
//! order.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rvs_lab::{Lab, RvsdOptions, RS1, RS2, VIP};

/// The lab's namespace prefix, unless `RVS_TEST_PREFIX` names another (so
/// that runs beside other users of the machine do not collide).
fn prefix() -> String {
    std::env::var("RVS_TEST_PREFIX").unwrap_or_else(|_| "rvb".into())
}

/// wrk's threads and connections, in all: one process with both, or two
/// with half each when the client spreads its load itself.
pub const WRK_THREADS: u32 = 2;
pub const WRK_CONNECTIONS: u32 = 32;
/// The long transfer's file.
pub const BIG_FILE_MB: u64 = 100;

/// How long and how often: each figure is the median of `runs` wrk runs
/// of `secs` seconds.
#[derive(Clone, Copy)]
pub struct Plan {
    pub secs: u32,
    pub runs: usize,
}

impl Plan {
    /// Single runs on a shared 2-CPU VM moved by up to ten per cent, so
    /// the full benchmark takes the median of three.
    pub const FULL: Plan = Plan { secs: 5, runs: 3 };
    /// A smoke run: the setups work and traffic flows.
    pub const QUICK: Plan = Plan { secs: 2, runs: 1 };
}

/// Sparse traffic: this many requests, each on a new connection after a
/// pause of SPARSE_GAP_MS, so that rvsd's worker is napping (or about to)
/// when each comes: what a director adds to a request at low load.
pub const SPARSE_REQUESTS: u32 = 300;
pub const SPARSE_GAP_MS: u32 = 10;

/// The client's side of the sparse measurement (python3, in the client's
/// namespace): connect, ask, read to the server's close, timed; prints
/// the median and the 90th percentile in milliseconds.
const SPARSE_CLIENT: &str = r#"
import socket, sys, time
host, n, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1000
ms = []
for _ in range(n):
    time.sleep(gap)
    t = time.perf_counter()
    s = socket.create_connection((host, 80), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
    ms.append((time.perf_counter() - t) * 1e3)
ms.sort()
print(ms[len(ms) // 2], ms[len(ms) * 9 // 10])
"#;

/// One sparse run to `host`: median and 90th-percentile request (ms).
fn sparse_run(lab: &Lab, host: &str) -> Result<(f64, f64)> {
    let out = lab.exec(
        "client",
        &[
            "python3",
            "-c",
            SPARSE_CLIENT,
            host,
            &SPARSE_REQUESTS.to_string(),
            &SPARSE_GAP_MS.to_string(),
        ],
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match (out.status.success(), v.as_slice()) {
        (true, [p50, p90]) => Ok((*p50, *p90)),
        _ => bail!(
            "sparse requests to {host}: {}\n{}",
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Sparse traffic straight to `server` and through rvsd (balancing over
/// it alone), in `runs` alternating pairs: a table of the pairs, and the
/// median of rvsd's p50 / direct's p50.
pub fn sparse_paired(lab: &Lab, plan: Plan, server: &str) -> Result<(String, f64)> {
    let mut table = String::from(
        "| pair | direct p50 / p90 ms | rvsd p50 / p90 ms | rvsd adds at p50, ms | rvsd / direct, p50 |\n\
         |---|---|---|---|---|\n",
    );
    let mut ratios = Vec::new();
    for i in 0..plan.runs {
        // Each side goes first in every other pair.
        let (d, r) = if i % 2 == 0 {
            let d = sparse_run(lab, server)?;
            (d, sparse_run(lab, VIP)?)
        } else {
            let r = sparse_run(lab, VIP)?;
            (sparse_run(lab, server)?, r)
        };
        let ratio = r.0 / d.0.max(1e-9);
        ratios.push(ratio);
        writeln!(
            table,
            "| {} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} | {ratio:.2} |",
            i + 1,
            d.0,
            d.1,
            r.0,
            r.1,
            r.0 - d.0
        )?;
    }
    ratios.sort_by(f64::total_cmp);
    Ok((table, ratios[ratios.len() / 2]))
}

/// One wrk run: requests per second, p50 and p99 latency (ms), requests.
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: f64,
}

fn ms(s: &str) -> f64 {
    let (num, mul) = if let Some(v) = s.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (s, 1.0)
    };
    num.parse::<f64>().unwrap_or(0.0) * mul
}

/// The median run by requests per second; `requests` counts all runs, as
/// the director's CPU time does.
fn median(mut runs: Vec<Wrk>) -> Wrk {
    let requests = runs.iter().map(|w| w.requests).sum();
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    let mid = runs.len() / 2;
    Wrk {
        requests,
        ..runs.swap_remove(mid)
    }
}

/// Ratios of runs taken in pairs: their median, lowest and highest.
pub type Ratios = (f64, f64, f64);

/// The ratios of runs taken in pairs.
fn paired_ratio(through: &[Wrk], direct: &[Wrk]) -> Ratios {
    let mut r: Vec<f64> = through
        .iter()
        .zip(direct)
        .map(|(t, d)| t.rps / d.rps.max(1e-9))
        .collect();
    r.sort_by(f64::total_cmp);
    (r[r.len() / 2], r[0], r[r.len() - 1])
}

fn wrk_args(plan: Plan, url: &str, close: bool, share: u32) -> Vec<String> {
    let mut args = vec![
        "wrk".to_string(),
        format!("-t{}", WRK_THREADS / share),
        format!("-c{}", WRK_CONNECTIONS / share),
        "--latency".into(),
        format!("-d{}s", plan.secs),
    ];
    if close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    args.push(url.into());
    args
}

/// One wrk run from the client against `urls`: one process for one URL;
/// for several, as many at once, the threads and connections shared
/// between them, their rates and requests summed and the higher of their
/// latencies kept.
fn wrk(lab: &Lab, plan: Plan, urls: &[&str], close: bool) -> Result<Wrk> {
    let share = urls.len() as u32;
    let children = urls
        .iter()
        .map(|url| {
            Command::new("ip")
                .args(["netns", "exec", &lab.ns("client")])
                .args(wrk_args(plan, url, close, share))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting wrk in the client namespace")
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all = Wrk {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        requests: 0.0,
    };
    for (child, url) in children.into_iter().zip(urls) {
        let out = child.wait_with_output()?;
        let one = parse_wrk(url, &String::from_utf8_lossy(&out.stdout)).with_context(|| {
            format!(
                "wrk ({}) said: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        all.rps += one.rps;
        all.requests += one.requests;
        all.p50_ms = all.p50_ms.max(one.p50_ms);
        all.p99_ms = all.p99_ms.max(one.p99_ms);
    }
    Ok(all)
}

fn parse_wrk(url: &str, text: &str) -> Result<Wrk> {
    let find = |prefix: &str| -> Option<String> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let rps: f64 = find("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    if rps == 0.0 {
        bail!("wrk {url}: no result:\n{text}");
    }
    Ok(Wrk {
        rps,
        p50_ms: find("50%").map(|v| ms(&v)).unwrap_or(0.0),
        p99_ms: find("99%").map(|v| ms(&v)).unwrap_or(0.0),
        requests,
    })
}

/// One director's figures.
struct Row {
    name: String,
    ka: Wrk,
    nc: Wrk,
    /// Long transfer, bytes per second.
    bw: f64,
    /// Director CPU seconds per 100k requests (NaN: no director).
    cpu: f64,
    /// Keep-alive and new-connection rates as fractions of the baseline's,
    /// when measured in pairs (median, lowest, highest); else the ratio
    /// of the medians.
    vs_direct: Option<(Ratios, Ratios)>,
}

impl Row {
    fn new(name: &str, ka: Wrk, nc: Wrk, bw: f64, cpu: f64) -> Row {
        Row {
            name: name.to_string(),
            ka,
            nc,
            bw,
            cpu,
            vs_direct: None,
        }
    }
}

/// What the end-to-end run found.
pub struct E2e {
    pub plan: Plan,
    /// rvsd's `[workers] idle_empty_polls` in these runs.
    pub idle_empty_polls: u32,
    /// Each director with one real server, against the client talking to
    /// it directly.
    pub one_server: String,
    /// Each director with two, against the client spreading its load over
    /// both itself.
    pub two_servers: String,
    /// rvsd with one real server: keep-alive and new-connection rates as
    /// fractions of direct (median of the paired ratios, lowest, highest).
    pub rvsd_one_ka: Ratios,
    pub rvsd_one_nc: Ratios,
    /// (setup, director, keep-alive req/s, new connection per request
    /// req/s) for every row of both tables, for the plot.
    pub bars: Vec<(&'static str, String, f64, f64)>,
    /// Sparse traffic, rvsd against direct ([`sparse_paired`]): the
    /// pairs' table and the median p50 ratio.
    pub sparse: String,
    pub sparse_p50_ratio: f64,
}

/// Bytes per second of one long download.
fn transfer(lab: &Lab, url: &str) -> Result<f64> {
    let out = lab.exec(
        "client",
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{speed_download}",
            "-m",
            "60",
            url,
        ],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0))
}

/// CPU seconds (user + system) used so far by the processes in a namespace
/// whose name starts with `name`.
fn cpu_seconds(lab: &Lab, ns_role: &str, name: &str) -> f64 {
    let pids = rvs_lab::run("ip", &["netns", "pids", &lab.ns(ns_role)])
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let tick = 100.0; // USER_HZ
    pids.split_whitespace()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter(|s| s.contains(&format!("({name}")))
        .map(|s| {
            let f: Vec<&str> = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let k: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            (u + k) / tick
        })
        .sum()
}

fn nginx_server(lab: &mut Lab, role: &str, body: &str) -> Result<()> {
    let dir = lab.dir.join(format!("nginx-{role}"));
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::write(dir.join("www/index.html"), format!("{body}\n"))?;
    // The long transfer's file.
    let big = dir.join("www/big");
    if !big.exists() {
        let f = std::fs::File::create(&big)?;
        f.set_len(BIG_FILE_MB << 20)?;
    }
    let conf = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
events {{ worker_connections 4096; }}\n\
http {{ access_log off; sendfile on; keepalive_requests 100000;\n\
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
  server {{ listen 80; root {d}/www; }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let c = dir.join("nginx.conf").display().to_string();
    lab.spawn_daemon(role, &["nginx", "-c", &c])?;
    lab.wait_listening(role, "tcp", 80)
}

/// nginx `stream` or HAProxy in the director's place, balancing over
/// `servers`.
fn proxy(lab: &mut Lab, kind: &str, servers: &[&str]) -> Result<()> {
    let d = lab.dir.join(format!("proxy-{kind}"));
    std::fs::create_dir_all(&d)?;
    // The proxy owns the VIP on the director's veth (rvsd is not running).
    let _ = rvs_lab::run(
        "ip",
        &[
            "-n",
            &lab.ns("director"),
            "addr",
            "add",
            &format!("{VIP}/24"),
            "dev",
            "veth-dir",
        ],
    );
    match kind {
        "nginx" => {
            let conf = format!(
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\nworker_processes 1;\ndaemon off;\n\
pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 8192; }}\n\
stream {{ upstream rs {{ {ups} }}\n  server {{ listen {VIP}:80; proxy_pass rs; }} }}\n",
                d = d.display(),
                ups = servers
                    .iter()
                    .map(|s| format!("server {s}:80;"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            std::fs::write(d.join("nginx.conf"), conf)?;
            let c = d.join("nginx.conf").display().to_string();
            lab.spawn_daemon("director", &["nginx", "-c", &c])?;
        }
        _ => {
            let conf = format!(
                "global\n  maxconn 8192\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
frontend f\n  bind {VIP}:80\n  default_backend b\nbackend b\n  balance roundrobin\n{ups}",
                ups = servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!("  server rs{} {s}:80\n", i + 1))
                    .collect::<String>()
            );
            std::fs::write(d.join("haproxy.cfg"), conf)?;
            let c = d.join("haproxy.cfg").display().to_string();
            lab.spawn_daemon("director", &["haproxy", "-db", "-f", &c])?;
        }
    }
    lab.wait_listening("director", "tcp", 80)
}

fn stop_director(lab: &Lab) {
    if let Ok(o) = rvs_lab::run("ip", &["netns", "pids", &lab.ns("director")]) {
        for p in String::from_utf8_lossy(&o.stdout).split_whitespace() {
            let _ = Command::new("kill").arg(p).stderr(Stdio::null()).status();
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let ns = lab.ns("director");
    let _ = rvs_lab::run("ip", &["-n", &ns, "addr", "flush", "dev", "veth-dir"]);
    // The lab keeps the kernel off rvsd's interface by making it a bridge
    // port; the proxies need the kernel on it.
    let _ = rvs_lab::run("ip", &["-n", &ns, "link", "set", "veth-dir", "nomaster"]);
}

/// Installs nginx (with its stream module), HAProxy and wrk when missing.
fn install_tools() -> Result<()> {
    let missing: Vec<&str> = ["nginx", "haproxy", "wrk"]
        .into_iter()
        .filter(|b| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .collect();
    if !missing.is_empty() {
        let st = Command::new("sh")
            .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx libnginx-mod-stream haproxy wrk >/dev/null"])
            .status()?;
        if !st.success() {
            bail!("installing nginx, haproxy and wrk failed");
        }
    }
    Ok(())
}

/// rvsd and the baseline, alternately, so that the shared machine's drift
/// hits both alike: keep-alive and new connection per request, `runs`
/// times each. Returns the baseline's row and rvsd's (with the paired
/// ratios).
fn rvsd_paired(
    lab: &Lab,
    plan: Plan,
    baseline: (&str, &[&str]),
    rvsd_name: &str,
) -> Result<(Row, Row)> {
    let vip_url = format!("http://{VIP}/");
    let rvsd_cpu = || cpu_seconds(lab, "director", "rvsd");
    let (mut d_ka, mut d_nc, mut r_ka, mut r_nc) = (vec![], vec![], vec![], vec![]);
    let mut cpu = 0.0;
    for _ in 0..plan.runs {
        d_ka.push(wrk(lab, plan, baseline.1, false)?);
        let c0 = rvsd_cpu();
        r_ka.push(wrk(lab, plan, &[&vip_url], false)?);
        cpu += rvsd_cpu() - c0;
        d_nc.push(wrk(lab, plan, baseline.1, true)?);
        let c0 = rvsd_cpu();
        r_nc.push(wrk(lab, plan, &[&vip_url], true)?);
        cpu += rvsd_cpu() - c0;
    }
    let vs = (paired_ratio(&r_ka, &d_ka), paired_ratio(&r_nc, &d_nc));
    let base = Row::new(baseline.0, median(d_ka), median(d_nc), 0.0, f64::NAN);
    let (ka, nc) = (median(r_ka), median(r_nc));
    let cpu = cpu / (ka.requests + nc.requests).max(1.0) * 100_000.0;
    let through = Row {
        vs_direct: Some(vs),
        ..Row::new(rvsd_name, ka, nc, 0.0, cpu)
    };
    Ok((base, through))
}

/// A proxy's figures: keep-alive and new connection per request, the
/// median of `runs` each, and its CPU time.
fn proxy_row(lab: &Lab, plan: Plan, name: &str, proc_name: &str) -> Result<Row> {
    let url = format!("http://{VIP}/");
    let cpu = || cpu_seconds(lab, "director", proc_name);
    let c0 = cpu();
    let ka = median(
        (0..plan.runs)
            .map(|_| wrk(lab, plan, &[&url], false))
            .collect::<Result<Vec<_>>>()?,
    );
    let nc = median(
        (0..plan.runs)
            .map(|_| wrk(lab, plan, &[&url], true))
            .collect::<Result<Vec<_>>>()?,
    );
    let cpu = (cpu() - c0) / (ka.requests + nc.requests).max(1.0) * 100_000.0;
    Ok(Row::new(name, ka, nc, 0.0, cpu))
}

/// A table of rows, the first the baseline the others are compared with.
fn table(rows: &[Row], baseline: &str, transfer: bool) -> String {
    let base = (rows[0].ka.rps, rows[0].nc.rps);
    let ratios = |r: &Row| {
        r.vs_direct
            .map_or((r.ka.rps / base.0, r.nc.rps / base.1), |(k, n)| (k.0, n.0))
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| director | keep-alive req/s | × {baseline} | p50 / p99 ms | new conn per request req/s | × {baseline} | p50 / p99 ms |{} director CPU s / 100k req |",
        if transfer { " long transfer MB/s |" } else { "" }
    );
    let _ = writeln!(
        t,
        "|---|---|---|---|---|---|---|{}---|",
        if transfer { "---|" } else { "" }
    );
    for r in rows {
        let (ka, nc) = (&r.ka, &r.nc);
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.2} | {:.2} / {:.2} | {:.0} | {:.2} | {:.2} / {:.2} |{} {} |",
            r.name,
            ka.rps,
            ratios(r).0,
            ka.p50_ms,
            ka.p99_ms,
            nc.rps,
            ratios(r).1,
            nc.p50_ms,
            nc.p99_ms,
            if transfer {
                format!(" {:.0} |", r.bw / 1e6)
            } else {
                String::new()
            },
            if r.cpu.is_nan() {
                "-".into()
            } else {
                format!("{:.2}", r.cpu)
            }
        );
    }
    t
}

/// Seconds a run of `plan` is expected to take, for the progress display:
/// rvsd and its baseline (four wrk runs per round, two setups), each proxy
/// (two wrk runs per round, two setups), and setting up the lab and the
/// long transfers.
pub fn expected_secs(plan: Plan) -> f64 {
    let wrk_runs = 2 * 4 * plan.runs + 2 * 2 * 2 * plan.runs;
    let sparse_secs = 2 * plan.runs as u32 * SPARSE_REQUESTS * (SPARSE_GAP_MS + 1) / 1000;
    (wrk_runs as u32 * plan.secs + sparse_secs) as f64 + 40.0
}

/// The shipped configuration for CPUs shared with other work, whose idle
/// back-off the end to end measures rvsd with (client, servers and
/// director share this machine's CPUs).
pub const SHIPPED_CONFIG: &str = "conf/rvsd.toml";

/// `[workers] idle_empty_polls` of [`SHIPPED_CONFIG`].
pub fn shipped_idle_empty_polls() -> Result<u32> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SHIPPED_CONFIG);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let conf: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    conf.get("workers")
        .and_then(|w| w.get("idle_empty_polls"))
        .and_then(|v| v.as_integer())
        .and_then(|v| u32::try_from(v).ok())
        .with_context(|| format!("{} sets no [workers] idle_empty_polls", path.display()))
}

/// Both setups for every director; see the module's comment.
pub fn run(plan: Plan) -> Result<E2e> {
    install_tools()?;
    let prefix = prefix();
    let lab_dir = Path::new("/run/rvs").join(format!("bench-lab-{prefix}"));
    let mut lab = Lab::create(&prefix, &lab_dir)?;
    // Load-generator settings, in these namespaces only: tens of thousands
    // of short connections a second leave their ports in TIME_WAIT on
    // whichever side closed first, and without reuse later runs find no
    // free port and collapse (repeated direct runs fell to a fifth of the
    // first, HAProxy's to a tenth).
    for role in ["client", "director", "rs1", "rs2"] {
        let out = lab.exec(
            role,
            &[
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.tcp_tw_reuse=1",
                "net.ipv4.ip_local_port_range=1024 65000",
            ],
        )?;
        if !out.status.success() {
            bail!(
                "sysctl in {role}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    nginx_server(&mut lab, "rs1", "RS1")?;
    nginx_server(&mut lab, "rs2", "RS2")?;
    let idle_empty_polls = shipped_idle_empty_polls()?;
    let (rs1_url, rs2_url) = (format!("http://{RS1}/"), format!("http://{RS2}/"));
    // rvsd (direct routing) first with RS1 alone, against the client
    // talking to RS1; then with RS1 and RS2, against the client spreading
    // its load over both. rvsd naps while the direct runs pass it by.
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls,
        socket: lab_dir.join("rvsd.sock"),
    })?;
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr"))?;
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1} -g"))?;
    let (mut direct1, mut rvsd1) = rvsd_paired(
        &lab,
        plan,
        ("direct to the real server", &[&rs1_url]),
        "rvsd, DR (1 worker)",
    )?;
    let (sparse, sparse_p50_ratio) = sparse_paired(&lab, plan, RS1)?;
    direct1.bw = transfer(&lab, &format!("http://{RS1}/big"))?;
    rvsd1.bw = transfer(&lab, &format!("http://{VIP}/big"))?;
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS2} -g"))?;
    let (direct2, rvsd2) = rvsd_paired(
        &lab,
        plan,
        (
            "client to both servers itself (a wrk each)",
            &[&rs1_url, &rs2_url],
        ),
        "rvsd, DR (1 worker)",
    )?;
    let (rvsd_one_ka, rvsd_one_nc) = rvsd1.vs_direct.expect("paired");
    let mut one = vec![direct1, rvsd1];
    let mut two = vec![direct2, rvsd2];
    stop_director(&lab);
    // Proxies talk to the servers from the VIP: the servers must not hold it.
    for rs in ["rs1", "rs2"] {
        rvs_lab::run(
            "ip",
            &[
                "-n",
                &lab.ns(rs),
                "addr",
                "del",
                &format!("{VIP}/32"),
                "dev",
                "lo",
            ],
        )?;
    }
    for (kind, name, proc_name) in [
        ("nginx", "nginx stream", "nginx"),
        ("haproxy", "HAProxy mode tcp", "haproxy"),
    ] {
        proxy(&mut lab, kind, &[RS1])?;
        let mut row = proxy_row(&lab, plan, name, proc_name)?;
        row.bw = transfer(&lab, &format!("http://{VIP}/big"))?;
        one.push(row);
        stop_director(&lab);
        proxy(&mut lab, kind, &[RS1, RS2])?;
        two.push(proxy_row(&lab, plan, name, proc_name)?);
        stop_director(&lab);
    }
    drop(lab);
    let mut bars = Vec::new();
    for (setup, rows) in [("one real server", &one), ("two real servers", &two)] {
        for r in rows.iter() {
            bars.push((setup, r.name.clone(), r.ka.rps, r.nc.rps));
        }
    }
    Ok(E2e {
        plan,
        idle_empty_polls,
        one_server: table(&one, "direct", true),
        two_servers: table(&two, "client alone", false),
        rvsd_one_ka,
        rvsd_one_nc,
        bars,
        sparse,
        sparse_p50_ratio,
    })
}
