//! Runs one scenario against one director and records its transcript.
//!
//! Why this file is long (about 810 lines): the one driver that runs a
//! scenario on both directors in lockstep; each kind of step is one of its
//! methods.
//!
//! The two runs of a scenario differ only in the director's namespace:
//! kernel IPVS driven by Debian's `ipvsadm`, or rvsd driven by `rvsadm`
//! invoked under the name `ipvsadm` (a drop-in, so its messages say
//! `ipvsadm` too). Hosts, addresses, MACs, traffic and timing are the same.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::packets::{self, Scripted, Tap};
use crate::scenario::{Connect, Keepalived, PacketSpec, Proto, Scenario, Side, Step, Transfer};
use crate::topology::{Topology, DIRECTOR, DIRECTOR_SERVER_SIDE};
use crate::traffic::{self, GreetingServer};
use crate::transcript::Transcript;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectorKind {
    Kernel,
    Rvs,
}

impl DirectorKind {
    pub fn name(self) -> &'static str {
        match self {
            DirectorKind::Kernel => "kernel",
            DirectorKind::Rvs => "rvs",
        }
    }
}

/// Where rvsd, rvsadm and rvs-keepalived are, and a scratch folder.
#[derive(Debug, Clone)]
pub struct Bins {
    pub rvsd: PathBuf,
    pub rvsadm: PathBuf,
    pub rvs_keepalived: PathBuf,
    pub work: PathBuf,
}

/// The director under test.
enum Director {
    Kernel,
    Rvs {
        child: Child,
        socket: PathBuf,
        log: PathBuf,
        /// A folder whose `ipvsadm` is rvsadm.
        shim: PathBuf,
    },
}

struct Run {
    topo: Topology,
    director: Director,
    /// Kept for the run's life; stopped when it drops.
    _servers: Vec<GreetingServer>,
    held: Vec<TcpStream>,
    taps: BTreeMap<String, Tap>,
    http_ports: Vec<u16>,
    bins: Bins,
    /// The health checker a `keepalived` step started.
    checker: Option<Child>,
    pings: u16,
    ident: u16,
}

/// Runs `sc` once per director, in lockstep: every step, and every
/// connection of a `connect` step, happens on all directors at the same time,
/// so the two runs share one timeline and connection-entry expiry times are
/// comparable. Returns one transcript (or the error that stopped it) per
/// director, in the order given.
pub fn run_lockstep(sc: &Scenario, kinds: &[DirectorKind], bins: &Bins) -> Vec<Result<Transcript>> {
    // Where the time goes, by kind of step (printed; TCG makes it dear).
    let mut spent: BTreeMap<&'static str, f64> = BTreeMap::new();
    let t0 = Instant::now();
    let setup: Vec<Result<Run>> = std::thread::scope(|s| {
        let hs: Vec<_> = kinds
            .iter()
            .map(|&k| s.spawn(move || Run::start(sc, k, bins)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("set-up panicked")))
            .collect()
    });
    let mut transcripts: Vec<Transcript> = kinds.iter().map(|_| Transcript::default()).collect();
    let mut errors: Vec<Option<anyhow::Error>> = Vec::new();
    let mut runs: Vec<Option<Run>> = Vec::new();
    for r in setup {
        match r {
            Ok(r) => {
                runs.push(Some(r));
                errors.push(None);
            }
            Err(e) => {
                runs.push(None);
                errors.push(Some(e.context("setting up")));
            }
        }
    }
    spent.insert("setup", t0.elapsed().as_secs_f64());
    for (i, step) in sc.steps.iter().enumerate() {
        let t = Instant::now();
        let results = step_all(&mut runs, i, step);
        let kind = results
            .iter()
            .flatten()
            .find_map(|r| r.as_ref().ok().map(|(k, _)| *k))
            .unwrap_or("failed");
        *spent.entry(kind).or_default() += t.elapsed().as_secs_f64();
        for (k, res) in results.into_iter().enumerate() {
            match res {
                Some(Ok((kind, lines))) => {
                    transcripts[k].push(i + 1, kind, step.compare, lines);
                    if let Some(s) = transcripts[k].sections.last_mut() {
                        s.explained_by = step.explained_by.clone();
                    }
                }
                Some(Err(e)) => {
                    errors[k] = Some(e.context(format!("step {}", i + 1)));
                    if let Some(mut r) = runs[k].take() {
                        r.stop_director();
                    }
                }
                None => {}
            }
        }
    }
    let t = Instant::now();
    for r in runs.iter_mut().flatten() {
        r.held.clear();
        r.stop_director();
    }
    drop(runs);
    spent.insert("teardown", t.elapsed().as_secs_f64());
    let parts: Vec<String> = spent.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
    println!("  time (s): {}", parts.join(", "));
    transcripts
        .into_iter()
        .zip(errors)
        .map(|(t, e)| match e {
            None => Ok(t),
            Some(e) => Err(e),
        })
        .collect()
}

/// `f` on every live run at once; `None` for runs already stopped.
fn parallel<T: Send>(
    runs: &mut [Option<Run>],
    f: impl Fn(&mut Run) -> Result<T> + Sync,
) -> Vec<Option<Result<T>>> {
    std::thread::scope(|s| {
        let f = &f;
        let hs: Vec<_> = runs
            .iter_mut()
            .map(|r| {
                r.as_mut().map(|r| {
                    s.spawn(move || {
                        let res = f(r);
                        if res.is_ok() {
                            r.check_director()?;
                        }
                        res
                    })
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.map(|h| h.join().unwrap_or_else(|_| bail!("a run panicked"))))
            .collect()
    })
}

type StepOut = (&'static str, Vec<String>);

/// One step on every run, kept in step with each other.
fn step_all(runs: &mut [Option<Run>], index: usize, step: &Step) -> Vec<Option<Result<StepOut>>> {
    let mut outs: Vec<Option<Result<StepOut>>> = runs
        .iter()
        .map(|r| r.as_ref().map(|_| Ok(("", Vec::new()))))
        .collect();
    // Appends one action's result to every run's output; a run that failed
    // keeps its error and is stopped.
    let merge = |outs: &mut Vec<Option<Result<StepOut>>>,
                 runs: &mut [Option<Run>],
                 kind: &'static str,
                 res: Vec<Option<Result<Vec<String>>>>| {
        for (k, r) in res.into_iter().enumerate() {
            let Some(r) = r else { continue };
            match (r, &mut outs[k]) {
                (Ok(lines), Some(Ok(o))) => {
                    o.0 = kind;
                    o.1.extend(lines);
                }
                (Err(e), slot) => {
                    *slot = Some(Err(e));
                    if let Some(mut run) = runs[k].take() {
                        run.stop_director();
                    }
                }
                _ => {}
            }
        }
    };
    if let Some(cmds) = &step.admin {
        for c in cmds {
            let res = parallel(runs, |r| r.admin(c, step.stdin.as_deref()));
            merge(&mut outs, runs, "admin", res);
        }
    } else if let Some(c) = &step.connect {
        let Some(first) = runs.iter().flatten().next() else {
            return outs;
        };
        let remote = first.vip(&c.vip).map(|v| SocketAddrV4::new(v, c.port));
        let remote = match remote {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{e:#}");
                return outs
                    .into_iter()
                    .map(|o| o.map(|_| Err(anyhow!("{msg}"))))
                    .collect();
            }
        };
        let plan = first.connect_plan(index, c);
        let mut names: Vec<Vec<String>> = runs.iter().map(|_| Vec::new()).collect();
        for local in plan {
            let res = parallel(runs, |r| r.connect_one(local, remote, c.proto, c.hold));
            let res = res
                .into_iter()
                .zip(names.iter_mut())
                .map(|(r, n)| {
                    r.map(|r| {
                        r.map(|name| {
                            n.push(name);
                            Vec::new()
                        })
                    })
                })
                .collect();
            merge(&mut outs, runs, "connect", res);
        }
        let res = parallel(runs, |r| r.barrier().map(|_| Vec::new()));
        merge(&mut outs, runs, "connect", res);
        let header = format!(
            "connect {} × {} to {remote}{}",
            c.proto.name(),
            c.count,
            if c.hold { " (held)" } else { "" }
        );
        for (k, n) in names.into_iter().enumerate() {
            if let Some(Ok(o)) = &mut outs[k] {
                o.1.push(header.clone());
                for (j, chunk) in n.chunks(10).enumerate() {
                    o.1.push(format!("  {:>3}: {}", j * 10 + 1, chunk.join(" ")));
                }
            }
        }
    } else if let Some(rel) = &step.release {
        let res = parallel(runs, |r| r.release(rel.count));
        merge(&mut outs, runs, "release", res);
    } else if let Some(ps) = &step.packet {
        for p in ps {
            let res = parallel(runs, |r| r.packet(p).map(|l| vec![l]));
            merge(&mut outs, runs, "packet", res);
        }
    } else if let Some(x) = &step.transfer {
        let res = parallel(runs, |r| r.transfer(index, x).map(|l| vec![l]));
        merge(&mut outs, runs, "transfer", res);
    } else if let Some(k) = &step.keepalived {
        let res = parallel(runs, |r| r.keepalived(k));
        merge(&mut outs, runs, "keepalived", res);
    } else if let Some(s) = step.wait_s {
        std::thread::sleep(Duration::from_secs_f64(s));
        let res = runs
            .iter()
            .map(|r| r.as_ref().map(|_| Ok(vec![format!("waited {s} s")])))
            .collect();
        merge(&mut outs, runs, "wait", res);
    }
    outs
}

fn start_rvsd(topo: &Topology, bins: &Bins, prefix: &str) -> Result<Director> {
    let dir = bins.work.join(prefix);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("rvsd.sock");
    let _ = std::fs::remove_file(&socket);
    let cfg = dir.join("rvsd.toml");
    std::fs::write(
        &cfg,
        format!(
            "# Written by rvs-oracle.\n[dpdk]\nhugepages = \"off\"\nmemory_mb = 256\nmbufs = 4095\n\n\
{ports}\
[workers]\nlcores = [1]\nidle_empty_polls = 64\nidle_sleep_us = 100\n\n\
[connections]\ncapacity_per_worker = 65536\n\n\
[control]\nsocket = \"{s}\"\n",
            ports = topo.rvsd_ports_toml(),
            s = socket.display()
        ),
    )?;
    let shim = dir.join("bin");
    std::fs::create_dir_all(&shim)?;
    let link = shim.join("ipvsadm");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&bins.rvsadm, &link)?;
    let log = dir.join("rvsd.log");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &topo.director.name])
        .arg(&bins.rvsd)
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(dir.join("rvsd.stderr"))?)
        .spawn()
        .context("starting rvsd")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait()? {
            bail!(
                "rvsd exited during start-up ({st}):\n{}",
                tail(&dir.join("rvsd.stderr"))
            );
        }
        if UnixStream::connect(&socket).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "rvsd did not listen within 60 s:\n{}",
                tail(&dir.join("rvsd.stderr"))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Director::Rvs {
        child,
        socket,
        log: dir.join("rvsd.stderr"),
        shim,
    })
}

/// HTTPS real servers: the lab's Python server over TLS with a self-signed
/// certificate, serving `/healthz` ("ok") and `/` (the server's name). They
/// run in the servers' namespaces and go with them.
fn start_https(topo: &Topology, ports: &[u16], bins: &Bins, prefix: &str) -> Result<()> {
    let dir = bins.work.join(prefix);
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let st = Command::new("openssl")
        // An EC key: RSA key generation takes seconds under TCG.
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=rvs-oracle", "-days", "2"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("openssl req")?;
    if !st.success() {
        bail!("openssl could not make the servers' certificate");
    }
    let httpd = std::fs::canonicalize("crates/lab/tools/httpd.py")
        .context("crates/lab/tools/httpd.py (the runner runs in the checkout)")?;
    for (i, ns) in topo.servers.iter().enumerate() {
        let root = dir.join(format!("www-rs{}", i + 1));
        std::fs::create_dir_all(&root)?;
        std::fs::write(root.join("healthz"), "ok\n")?;
        std::fs::write(root.join("index.html"), format!("RS{}\n", i + 1))?;
        for p in ports {
            Command::new("ip")
                .args(["netns", "exec", &ns.name, "python3"])
                .arg(&httpd)
                .arg(p.to_string())
                .arg(&root)
                .arg(&cert)
                .arg(&key)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting an HTTPS server")?;
            let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, *p);
            let deadline = Instant::now() + Duration::from_secs(30);
            while ns.run(|| {
                Ok(TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_err())
            })? {
                if Instant::now() > deadline {
                    bail!("the HTTPS server on port {p} in {} did not listen", ns.name);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn socket_addr(vars_expanded: &str) -> Result<SocketAddrV4> {
    vars_expanded
        .parse()
        .with_context(|| format!("{vars_expanded:?} is not an IPv4 address:port"))
}

impl Run {
    /// Builds the hosts, starts the greeting servers and the director.
    fn start(sc: &Scenario, kind: DirectorKind, bins: &Bins) -> Result<Run> {
        let prefix = match kind {
            DirectorKind::Kernel => "ok",
            DirectorKind::Rvs => "or",
        };
        let topo = Topology::build(sc, prefix)?;
        let servers: Vec<GreetingServer> = if sc.silent_servers {
            Vec::new()
        } else {
            topo.servers
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    GreetingServer::start(ns, &format!("RS{}", i + 1), &sc.ports, &sc.http_ports)
                })
                .collect::<Result<_>>()?
        };
        if !sc.https_ports.is_empty() {
            start_https(&topo, &sc.https_ports, bins, prefix)?;
        }
        let director = match kind {
            DirectorKind::Kernel => {
                topo.kernel_director()?;
                Director::Kernel
            }
            DirectorKind::Rvs => start_rvsd(&topo, bins, prefix)?,
        };
        Ok(Run {
            topo,
            director,
            _servers: servers,
            held: Vec::new(),
            taps: BTreeMap::new(),
            http_ports: sc.http_ports.clone(),
            bins: bins.clone(),
            checker: None,
            pings: 0,
            ident: 1,
        })
    }

    fn vip(&self, v: &str) -> Result<Ipv4Addr> {
        let e = self.topo.vars.expand(v);
        e.parse()
            .with_context(|| format!("{e:?} is not an IPv4 address"))
    }

    fn admin(&mut self, line: &str, stdin: Option<&str>) -> Result<Vec<String>> {
        let expanded = self.topo.vars.expand(line);
        let args = shlex::split(&expanded)
            .with_context(|| format!("unbalanced quotes in {expanded:?}"))?;
        let envs = match &self.director {
            Director::Kernel => Vec::new(),
            Director::Rvs { socket, shim, .. } => vec![
                (
                    "PATH".to_string(),
                    format!(
                        "{}:{}",
                        shim.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                ),
                ("RVS_SOCKET".to_string(), socket.display().to_string()),
            ],
        };
        let out = self
            .topo
            .director
            .output_with_stdin("ipvsadm", &args, &envs, stdin)?;
        let mut lines = vec![
            format!("$ ipvsadm {expanded}"),
            format!("[exit {}]", out.status.code().unwrap_or(-1)),
        ];
        lines.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.is_empty() {
            lines.push("[stderr]".into());
            lines.extend(err.lines().map(String::from));
        }
        Ok(lines)
    }

    /// The client endpoints of a `connect` step, in order.
    fn connect_plan(&self, index: usize, c: &Connect) -> Vec<SocketAddrV4> {
        let n = c
            .clients
            .unwrap_or(self.topo.client_addrs.len())
            .clamp(1, self.topo.client_addrs.len());
        let sport0 = c.sport.unwrap_or(20000 + 400 * index as u16);
        (0..c.count)
            .map(|i| {
                SocketAddrV4::new(
                    self.topo.client_addrs[(c.first_client + i) % n],
                    sport0.wrapping_add(i as u16),
                )
            })
            .collect()
    }

    /// One connection (or UDP request): the name of the server that
    /// answered, or FAIL(why).
    fn connect_one(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        proto: Proto,
        hold: bool,
    ) -> Result<String> {
        let http = self.http_ports.contains(&remote.port());
        let (name, stream) = self.topo.client.run(|| {
            Ok(match proto {
                Proto::Tcp if http => (traffic::http_get(local, remote), None),
                Proto::Tcp => traffic::tcp_connect(local, remote, hold),
                Proto::Udp => (traffic::udp_request(local, remote), None),
            })
        })?;
        self.held.extend(stream);
        Ok(name)
    }

    fn release(&mut self, count: Option<usize>) -> Result<Vec<String>> {
        let n = count.unwrap_or(self.held.len()).min(self.held.len());
        let mut failed = 0;
        for s in self.held.drain(..n) {
            if traffic::close(s).is_err() {
                failed += 1;
            }
        }
        self.barrier()?;
        Ok(vec![format!(
            "release {n}: {failed} failed to close cleanly"
        )])
    }

    fn transfer(&mut self, index: usize, x: &Transfer) -> Result<String> {
        let remote = SocketAddrV4::new(self.vip(&x.vip)?, x.port);
        let local = SocketAddrV4::new(
            self.topo.client_addrs[x.client % self.topo.client_addrs.len()],
            x.sport.unwrap_or(30000 + index as u16),
        );
        let bytes = x.bytes;
        let res = self
            .topo
            .client
            .run(|| Ok(traffic::transfer(local, remote, bytes)))?;
        Ok(format!("transfer {bytes} bytes to {remote}: {res}"))
    }

    /// Waits until the director has handled what the hosts sent so far (see
    /// [`traffic::ping`]).
    fn barrier(&mut self) -> Result<()> {
        self.pings = self.pings.wrapping_add(1);
        traffic::ping(&self.topo.client, DIRECTOR.parse()?, self.pings)
            .context("barrier ping from the client side")?;
        if self.topo.server_port() == 1 && !self.topo.silent {
            let to: Ipv4Addr = DIRECTOR_SERVER_SIDE.parse()?;
            traffic::ping(&self.topo.servers[0], to, self.pings)
                .context("barrier ping from the servers' side")?;
        }
        Ok(())
    }

    fn tap(&mut self, host: &str) -> Result<&mut Tap> {
        if !self.taps.contains_key(host) {
            let ns = if host == "client" {
                &self.topo.client
            } else {
                let i: usize = host.trim_start_matches("rs").parse()?;
                &self.topo.servers[i - 1]
            };
            let tap = Tap::open(ns, host, "eth0")?;
            self.taps.insert(host.to_string(), tap);
        }
        Ok(self.taps.get_mut(host).expect("inserted"))
    }

    fn packet(&mut self, p: &PacketSpec) -> Result<String> {
        let v = &self.topo.vars;
        let s = Scripted {
            proto: p.proto,
            src: socket_addr(&v.expand(&p.src))?,
            dst: socket_addr(&v.expand(&p.dst))?,
            flags: packets::flags_from_letters(&p.flags),
            seq: p.seq,
            ack: p.ack,
            payload: p.payload,
        };
        let server_port = self.topo.server_port();
        let (from, watch, dir_mac): (String, Vec<String>, String) = match p.from {
            Side::Client => (
                "client".into(),
                (1..=self.topo.servers.len())
                    .map(|i| format!("rs{i}"))
                    .collect(),
                self.topo.director_mac(0),
            ),
            Side::Server => {
                let i = self
                    .topo
                    .server_addrs
                    .iter()
                    .position(|a| a == s.src.ip())
                    .unwrap_or(0);
                (
                    format!("rs{}", i + 1),
                    vec!["client".into()],
                    self.topo.director_mac(server_port),
                )
            }
        };
        let dir_mac = packets::parse_mac(&dir_mac)?;
        for w in &watch {
            self.tap(w)?.drain();
        }
        let src_mac = self.tap(&from)?.mac;
        self.ident = self.ident.wrapping_add(1);
        let frame = s.frame(src_mac, dir_mac, self.ident);
        self.tap(&from)?.send(&frame)?;
        // What the director sent on: from its MAC, of the same flow (the
        // client's endpoint stays the same through DR and NAT).
        let until = Instant::now() + Duration::from_millis(1500);
        let want_proto = packets::ip_proto(s.proto);
        let director_macs = [
            packets::parse_mac(&self.topo.director_mac(0))?,
            packets::parse_mac(&self.topo.director_mac(1))?,
        ];
        let mut verdict = "dropped".to_string();
        'outer: while Instant::now() < until {
            for w in &watch {
                let tap = self.tap(w)?;
                let host = tap.host.clone();
                let slice = Instant::now() + Duration::from_millis(60);
                let found = tap.wait_for(slice.min(until), |f| {
                    let seen = packets::parse_seen(f)?;
                    let ours = director_macs.contains(&seen.src_mac)
                        && seen.proto == want_proto
                        && match p.from {
                            Side::Client => seen.src == s.src,
                            Side::Server => seen.dst == s.dst,
                        };
                    ours.then_some(seen)
                });
                if let Some(seen) = found {
                    verdict = format!(
                        "to {host} {} > {} {}",
                        seen.src,
                        seen.dst,
                        packets::flags_to_letters(seen.flags)
                    );
                    break 'outer;
                }
            }
        }
        Ok(format!(
            "{from} {} {} > {} {}: {verdict}",
            p.proto.name(),
            s.src,
            s.dst,
            packets::flags_to_letters(s.flags)
        ))
    }

    /// Starts the health checker on `k.conf` and waits until the table holds
    /// the real servers the checks let in.
    fn keepalived(&mut self, k: &Keepalived) -> Result<Vec<String>> {
        let conf = std::fs::canonicalize(&k.conf).with_context(|| format!("conf {}", k.conf))?;
        let dir = self.bins.work.join(self.topo.prefix.as_str());
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("checker.log"))?;
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec");
        match &self.director {
            Director::Kernel => {
                // keepalived's checker process only (no VRRP), programming
                // the director namespace's IPVS.
                cmd.arg(&self.topo.director.name)
                    .arg("keepalived")
                    .args(["--check", "--dont-fork", "--log-console", "--log-detail"])
                    .arg("-f")
                    .arg(&conf);
                for (flag, f) in [
                    ("-p", "ka.pid"),
                    ("-c", "ka-check.pid"),
                    ("-r", "ka-vrrp.pid"),
                ] {
                    cmd.arg(flag).arg(dir.join(f));
                }
            }
            Director::Rvs { socket, .. } => {
                // Checks go out from a kernel that reaches the real servers:
                // the client's namespace, on the same LAN (rvsd's own
                // namespace gives its kernel no address here).
                cmd.arg(&self.topo.client.name)
                    .arg(&self.bins.rvs_keepalived)
                    .args(["-n", "-l", "-f"])
                    .arg(&conf)
                    .arg("--socket")
                    .arg(socket)
                    .arg("--status-file")
                    .arg(dir.join("keepalived.status"));
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the health checker")?;
        self.checker = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = 0;
        while Instant::now() < deadline {
            let listing = self.admin("-Ln", None)?;
            last = listing
                .iter()
                .filter(|l| l.starts_with("  -> ") && !l.contains("RemoteAddress"))
                .count();
            if last == k.servers_up {
                break;
            }
            if let Some(Ok(Some(st))) = self.checker.as_mut().map(|c| c.try_wait()) {
                bail!(
                    "the health checker exited ({st}):\n{}",
                    tail(&dir.join("checker.log"))
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(vec![format!("keepalived {}: {last} real servers", k.conf)])
    }

    fn stop_checker(&mut self) {
        if let Some(mut c) = self.checker.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Fails the run when rvsd died (its log tells why).
    fn check_director(&mut self) -> Result<()> {
        if let Director::Rvs { child, log, .. } = &mut self.director {
            if let Some(st) = child.try_wait()? {
                bail!("rvsd exited ({st}):\n{}", tail(log));
            }
        }
        Ok(())
    }

    fn stop_director(&mut self) {
        self.stop_checker();
        if let Director::Rvs { child, .. } = &mut self.director {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
