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
}

impl Row {
    fn new(name: &str, ka: Wrk, nc: Wrk, bw: f64, cpu: f64) -> Row {
        Row {
            name: name.to_string(),
            ka,
            nc,
            bw,
            cpu,
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
    nginx_server(&mut lab, "rs1", "RS1")?;
    nginx_server(&mut lab, "rs2", "RS2")?;
    let mut rows: Vec<Row> = Vec::new();
    let measure = |lab: &Lab, host: &str, cpu: &dyn Fn() -> f64| -> Result<(Wrk, Wrk, f64, f64)> {
        let c0 = cpu();
        let ka = wrk(lab, &format!("http://{host}/"), false)?;
        let nc = wrk(lab, &format!("http://{host}/"), true)?;
        let c1 = cpu();
        let bw = transfer(lab, &format!("http://{host}/big"))?;
        let cpu_per_100k = (c1 - c0) / (ka.requests + nc.requests).max(1.0) * 100_000.0;
        Ok((ka, nc, bw, cpu_per_100k))
    };
    // No director: the client talks to RS1 itself.
    let (ka, nc, bw, _) = measure(&lab, RS1, &|| 0.0)?;
    rows.push(Row::new("direct to one real server", ka, nc, bw, f64::NAN));
    // rvsd, direct routing.
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: Path::new("/run/rvs/bench-lab/rvsd.sock").to_path_buf(),
    })?;
    lab.rvsadm_ok(&format!("-A -t {VIP}:80 -s rr"))?;
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS1} -g"))?;
    lab.rvsadm_ok(&format!("-a -t {VIP}:80 -r {RS2} -g"))?;
    let (ka, nc, bw, cpu) = measure(&lab, VIP, &|| cpu_seconds(&lab, "director", "rvsd"))?;
    rows.push(Row::new("rvsd, DR (1 worker)", ka, nc, bw, cpu));
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
    let rvsd = (rows[1].ka.rps / base.0, rows[1].nc.rps / base.1);
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
            ka.rps / base.0,
            ka.p50_ms,
            ka.p99_ms,
            nc.rps,
            nc.rps / base.1,
            nc.p50_ms,
            nc.p99_ms,
            r.bw / 1e6,
            if r.cpu.is_nan() { "-".into() } else { format!("{:.2}", r.cpu) }
        );
    }
    Ok((t, rvsd.0, rvsd.1))
}
