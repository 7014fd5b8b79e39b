//! End to end: the same client and real servers behind rvsd (DR), nginx
//! `stream` and HAProxy `mode tcp`, and with no director at all, measured
//! with wrk (keep-alive, and a new connection per request) and a long
//! transfer. Part of `cargo xtask bench` (not --quick).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Result};
use rvs_lab::{Lab, RvsdOptions, RS1, RS2, VIP};

const PREFIX: &str = "rvb";
const SECS: u32 = 5;

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

/// Runs of wrk per figure: single runs on a shared 2-CPU VM move by up to
/// ten per cent, so each figure is the median of these.
const RUNS: usize = 3;

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

fn wrk_median(lab: &Lab, url: &str, close: bool) -> Result<Wrk> {
    Ok(median(
        (0..RUNS)
            .map(|_| wrk(lab, url, close))
            .collect::<Result<Vec<_>>>()?,
    ))
}

/// The median of the ratios of runs taken in pairs.
fn paired_ratio(through: &[Wrk], direct: &[Wrk]) -> f64 {
    let mut r: Vec<f64> = through
        .iter()
        .zip(direct)
        .map(|(t, d)| t.rps / d.rps.max(1e-9))
        .collect();
    r.sort_by(f64::total_cmp);
    r[r.len() / 2]
}

fn wrk(lab: &Lab, url: &str, close: bool) -> Result<Wrk> {
    let mut args = vec!["wrk", "-t2", "-c32", "--latency"];
    let d = format!("-d{SECS}s");
    args.push(&d);
    if close {
        args.extend(["-H", "Connection: close"]);
    }
    args.push(url);
    let out = lab.exec("client", &args)?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
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
    /// Keep-alive and new-connection rates as fractions of the direct ones,
    /// when measured in pairs; else the ratio of the medians.
    vs_direct: Option<(f64, f64)>,
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
    // 100 MB for the long transfer.
    let big = dir.join("www/big");
    if !big.exists() {
        let f = std::fs::File::create(&big)?;
        f.set_len(100 << 20)?;
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

fn proxy(lab: &mut Lab, kind: &str) -> Result<()> {
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
stream {{ upstream rs {{ server {RS1}:80; server {RS2}:80; }}\n  server {{ listen {VIP}:80; proxy_pass rs; }} }}\n",
                d = d.display()
            );
            std::fs::write(d.join("nginx.conf"), conf)?;
            let c = d.join("nginx.conf").display().to_string();
            lab.spawn_daemon("director", &["nginx", "-c", &c])?;
        }
        _ => {
            let conf = format!(
                "global\n  maxconn 8192\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
frontend f\n  bind {VIP}:80\n  default_backend b\nbackend b\n  balance roundrobin\n  server rs1 {RS1}:80\n  server rs2 {RS2}:80\n"
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
            let _ = Command::new("kill").arg(p).status();
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = rvs_lab::run(
        "ip",
        &[
            "-n",
            &lab.ns("director"),
            "addr",
            "flush",
            "dev",
            "veth-dir",
        ],
    );
}

/// The table, and rvsd's keep-alive and new-connection rates as fractions
/// of the direct ones.
pub fn run(root: &Path) -> Result<(String, f64, f64)> {
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
    let _ = root;
    let mut lab = Lab::create(PREFIX, Path::new("/run/rvs/bench-lab"))?;
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
    let mut rows: Vec<Row> = Vec::new();
    let measure = |lab: &Lab, host: &str, cpu: &dyn Fn() -> f64| -> Result<(Wrk, Wrk, f64, f64)> {
        let c0 = cpu();
        let ka = wrk_median(lab, &format!("http://{host}/"), false)?;
        let nc = wrk_median(lab, &format!("http://{host}/"), true)?;
        let c1 = cpu();
        let bw = transfer(lab, &format!("http://{host}/big"))?;
        let cpu_per_100k = (c1 - c0) / (ka.requests + nc.requests).max(1.0) * 100_000.0;
        Ok((ka, nc, bw, cpu_per_100k))
    };
    // rvsd (direct routing) and no director at all (the client talks to
    // RS1 itself), measured alternately so that the shared machine's drift
    // hits both alike; rvsd naps while the direct runs pass it by.
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: Path::new("/run/rvs/bench-lab/rvsd.sock").to_path_buf(),
    })?;
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr"))?;
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1} -g"))?;
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS2} -g"))?;
    let rvsd_cpu = || cpu_seconds(&lab, "director", "rvsd");
    let (direct_url, vip_url) = (format!("http://{RS1}/"), format!("http://{VIP}/"));
    let (mut d_ka, mut d_nc, mut r_ka, mut r_nc) = (vec![], vec![], vec![], vec![]);
    let mut cpu = 0.0;
    for _ in 0..RUNS {
        d_ka.push(wrk(&lab, &direct_url, false)?);
        let c0 = rvsd_cpu();
        r_ka.push(wrk(&lab, &vip_url, false)?);
        cpu += rvsd_cpu() - c0;
        d_nc.push(wrk(&lab, &direct_url, true)?);
        let c0 = rvsd_cpu();
        r_nc.push(wrk(&lab, &vip_url, true)?);
        cpu += rvsd_cpu() - c0;
    }
    let vs_direct = (paired_ratio(&r_ka, &d_ka), paired_ratio(&r_nc, &d_nc));
    let bw = transfer(&lab, &format!("http://{RS1}/big"))?;
    rows.push(Row::new(
        "direct to one real server",
        median(d_ka),
        median(d_nc),
        bw,
        f64::NAN,
    ));
    let bw = transfer(&lab, &format!("http://{VIP}/big"))?;
    let (ka, nc) = (median(r_ka), median(r_nc));
    let cpu = cpu / (ka.requests + nc.requests).max(1.0) * 100_000.0;
    rows.push(Row {
        vs_direct: Some(vs_direct),
        ..Row::new("rvsd, DR (1 worker)", ka, nc, bw, cpu)
    });
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
        proxy(&mut lab, kind)?;
        let (ka, nc, bw, cpu) = measure(&lab, VIP, &|| cpu_seconds(&lab, "director", proc_name))?;
        rows.push(Row::new(name, ka, nc, bw, cpu));
        stop_director(&lab);
    }
    drop(lab);
    let base = (rows[0].ka.rps, rows[0].nc.rps);
    let ratios = |r: &Row| {
        r.vs_direct
            .unwrap_or((r.ka.rps / base.0, r.nc.rps / base.1))
    };
    let rvsd = ratios(&rows[1]);
    let mut t = String::new();
    let _ = writeln!(t, "| director | keep-alive req/s | × direct | p50 / p99 ms | new conn per request req/s | × direct | p50 / p99 ms | long transfer MB/s | director CPU s / 100k req |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (ka, nc) = (&r.ka, &r.nc);
        let _ =
            writeln!(
            t,
            "| {} | {:.0} | {:.2} | {:.2} / {:.2} | {:.0} | {:.2} | {:.2} / {:.2} | {:.0} | {} |",
            r.name,
            ka.rps,
            ratios(r).0,
            ka.p50_ms,
            ka.p99_ms,
            nc.rps,
            ratios(r).1,
            nc.p50_ms,
            nc.p99_ms,
            r.bw / 1e6,
            if r.cpu.is_nan() { "-".into() } else { format!("{:.2}", r.cpu) }
        );
    }
    Ok((t, rvsd.0, rvsd.1))
}
