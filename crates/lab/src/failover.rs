//! Failover and rejoin, measured: long-lived connections spread by ECMP
//! over the cluster's directors keep every byte while one director's rvsd
//! is killed (`kill -9`) and while it comes back.
//!
//! Two cases:
//!
//! - `mh` with the port flag and no connection sync: every director builds
//!   the same table (same real servers, same order) and takes mid-flow
//!   packets (`sloppy_tcp`), so a flow that the router moves to another
//!   director reaches the same real server there;
//! - `wlc` with connection sync (`FailoverOptions::sync`): each director's
//!   choice depends on its own counts, so only the synced connection
//!   tells another director where a flow goes. Every director runs a
//!   master and a backup daemon on its LAN (active-active). A director
//!   that comes back starts its daemons before it announces the VIP, and
//!   announces once its backup has learnt every connection.
//!
//! `cargo xtask failover` runs them big (3 directors, 300 connections);
//! the lab tests run them small (2 directors, 50).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cluster::{Cluster, ClusterOptions, CLUSTER_VIP};

/// The port the streams use on the VIP and the real servers.
pub const STREAM_PORT: u16 = 9000;

#[derive(Debug, Clone)]
pub struct FailoverOptions {
    pub directors: usize,
    pub real_servers: usize,
    pub connections: usize,
    /// ipvsadm's words after `-s`.
    pub scheduler: String,
    /// The director whose rvsd is killed and started again.
    pub victim: usize,
    /// Connection sync between the directors (master and backup on each).
    pub sync: bool,
    /// The real servers behind the router, by IPIP tunnel, instead of DR.
    pub tunnel: bool,
}

impl FailoverOptions {
    pub fn new(directors: usize, connections: usize) -> FailoverOptions {
        FailoverOptions {
            directors,
            real_servers: 4,
            connections,
            scheduler: "mh -b mh-port".into(),
            victim: 1,
            sync: false,
            tunnel: false,
        }
    }

    /// `mh` to tunnelled real servers, routed through the router.
    pub fn tunnel(directors: usize, connections: usize) -> FailoverOptions {
        FailoverOptions {
            tunnel: true,
            ..FailoverOptions::new(directors, connections)
        }
    }

    /// `wlc` with connection sync.
    pub fn wlc_with_sync(directors: usize, connections: usize) -> FailoverOptions {
        FailoverOptions {
            scheduler: "wlc".into(),
            sync: true,
            ..FailoverOptions::new(directors, connections)
        }
    }
}

/// Director `i`'s sync daemons: master and backup on its LAN port.
fn start_sync(c: &Cluster, i: usize) -> Result<()> {
    c.rvsadm_ok(i, "--start-daemon backup --mcast-interface lan")?;
    c.rvsadm_ok(i, "--start-daemon master --mcast-interface lan")?;
    Ok(())
}

/// Connections in director `i`'s table (`-Lnc`).
fn table_size(c: &Cluster, i: usize) -> Result<usize> {
    Ok(c.rvsadm_ok(i, "-Lnc")?
        .lines()
        .filter(|l| l.starts_with("TCP"))
        .count())
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverReport {
    pub connections: usize,
    /// Connections the killed director carried when it died.
    pub on_victim: u64,
    /// From the kill to the router's route without the victim.
    pub converged_ms: u128,
    /// Connections lost between the kill and the end of the failover.
    pub broken_failover: u64,
    /// Connections the surviving directors took over mid-flow (entries
    /// made from packets that were not SYNs: sloppy_tcp at work).
    pub adopted: u64,
    /// The longest any chunk of data waited for its echo, from the kill
    /// until every connection moved again.
    pub longest_stall_ms: u64,
    /// New connections made once the router had converged, and how many
    /// of them succeeded.
    pub probes: u64,
    pub probes_ok: u64,
    /// From the restart to the router's route with the victim again.
    pub rejoined_ms: u128,
    /// Connections lost from the restart to the end, the final check of
    /// every echo included.
    pub broken_rejoin: u64,
    /// Bytes echoed and checked, over all connections.
    pub bytes: u64,
}

impl std::fmt::Display for FailoverReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "failover: {} connections, {} broken, longest stall {} ms, rejoin: {} broken",
            self.connections, self.broken_failover, self.longest_stall_ms, self.broken_rejoin
        )
    }
}

/// The client side of the streams (crates/lab/tools/stream-conns.py),
/// driven over its stdin and stdout.
struct Streams {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Streams {
    fn next(&self, limit: Duration) -> Result<Value> {
        let line = self
            .lines
            .recv_timeout(limit)
            .context("the stream client said nothing (did it exit?)")?;
        serde_json::from_str(&line).with_context(|| format!("the stream client said {line:?}"))
    }

    /// Sends a command, returns the answer (an object whose "event" is
    /// `event`).
    fn ask(&mut self, cmd: &str, event: &str, limit: Duration) -> Result<Value> {
        writeln!(self.stdin, "{cmd}").context("talking to the stream client")?;
        self.stdin.flush()?;
        let v = self.next(limit)?;
        if v["event"] != event {
            bail!("the stream client answered {cmd:?} with {v}");
        }
        Ok(v)
    }

    fn status(&mut self) -> Result<Value> {
        self.ask("status", "status", Duration::from_secs(10))
    }

    /// Polls until every open connection moved data since the last mark;
    /// the last status.
    fn wait_all_progressed(&mut self, limit: Duration) -> Result<Value> {
        let start = Instant::now();
        loop {
            let s = self.status()?;
            if s["all_progressed"] == true {
                return Ok(s);
            }
            if start.elapsed() > limit {
                bail!("connections still stalled {limit:?} later: {s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/stream-conns.py")
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Builds the cluster under `prefix` in `dir`, runs the scenario, tears it
/// down; `say` hears each step.
pub fn run(
    prefix: &str,
    dir: &Path,
    opts: &FailoverOptions,
    mut say: impl FnMut(&str),
) -> Result<FailoverReport> {
    let mut c = Cluster::create(
        prefix,
        dir,
        ClusterOptions {
            tunnel: opts.tunnel,
            ..ClusterOptions::new(opts.directors, opts.real_servers)
        },
    )?;
    let tool = tool().display().to_string();
    let port = STREAM_PORT.to_string();
    for r in 1..=opts.real_servers {
        let role = Cluster::real_server_role(r);
        c.lab.spawn_named(
            &format!("streams-{role}"),
            &role,
            &["python3", &tool, "server", &port],
        )?;
    }
    for r in 1..=opts.real_servers {
        c.lab
            .wait_listening(&Cluster::real_server_role(r), "tcp", STREAM_PORT)?;
    }
    for i in 1..=opts.directors {
        c.start_rvsd(i)?;
        c.start_announcer(i)?;
    }
    c.configure_service(&opts.scheduler, STREAM_PORT)?;
    if opts.sync {
        for i in 1..=opts.directors {
            start_sync(&c, i)?;
        }
    }
    let all: Vec<usize> = (1..=opts.directors).collect();
    let slow = Duration::from_secs(60);
    c.wait_next_hops(CLUSTER_VIP, &all, slow)?;
    say(&format!(
        "{} directors announce {CLUSTER_VIP}; {} real servers",
        opts.directors, opts.real_servers
    ));

    let mut child = c.lab.spawn_piped(
        "client",
        &[
            "python3",
            &tool,
            "client",
            CLUSTER_VIP,
            &port,
            &opts.connections.to_string(),
        ],
    )?;
    let stdin = child.stdin.take().context("the stream client's stdin")?;
    let stdout = child.stdout.take().context("the stream client's stdout")?;
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut s = Streams {
        child,
        stdin,
        lines,
    };
    let hello = s.next(slow)?;
    if hello["event"] != "connected" || count(&hello, "open") != opts.connections as u64 {
        bail!("the stream client could not open every connection: {hello}");
    }
    let per_director: Vec<u64> = all
        .iter()
        .map(|&i| c.new_connections(i))
        .collect::<Result<_>>()?;
    say(&format!(
        "{} connections streaming, per director {per_director:?}",
        opts.connections
    ));
    if per_director.contains(&0) {
        bail!("ECMP left a director without connections: {per_director:?}");
    }
    std::thread::sleep(Duration::from_secs(2));
    let before = s.status()?;
    if count(&before, "broken") != 0 {
        bail!("connections broke before the failover: {before}");
    }
    if opts.sync {
        // Every director knows every connection (each sends its own within
        // a flush, 2 s).
        let slow_sync = Instant::now();
        for &i in &all {
            c.lab
                .wait_for(&format!("director {i} to know every connection"), || {
                    Ok(table_size(&c, i)? >= opts.connections)
                })?;
        }
        say(&format!(
            "every director's table holds all {} connections after {} ms",
            opts.connections,
            slow_sync.elapsed().as_millis()
        ));
    }

    // Failover.
    let v = opts.victim;
    let on_victim = c.new_connections(v)?;
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != v).collect();
    let survivors =
        |c: &Cluster| -> Result<u64> { rest.iter().map(|&i| c.new_connections(i)).sum() };
    let survivors_before = survivors(&c)?;
    s.ask("mark", "marked", Duration::from_secs(10))?;
    let killed = Instant::now();
    c.kill_rvsd(v)?;
    c.wait_next_hops(CLUSTER_VIP, &rest, Duration::from_secs(10))?;
    let converged_ms = killed.elapsed().as_millis();
    say(&format!(
        "killed director {v}'s rvsd (it carried {on_victim}); the router dropped it after {converged_ms} ms"
    ));
    s.wait_all_progressed(slow)?;
    // A little longer, so that late retransmissions count.
    std::thread::sleep(Duration::from_secs(1));
    let after = s.status()?;
    let broken_failover = count(&after, "broken");
    let longest_stall_ms = count(&after, "max_stall_ms");
    let adopted = survivors(&c)? - survivors_before;
    let probes = 20;
    let probe = s.ask(&format!("probe {probes}"), "probe", slow)?;
    say(&format!(
        "every connection moves again: the others took over {adopted} mid-flow, \
{broken_failover} broken, longest stall {longest_stall_ms} ms; \
{} of {probes} new connections succeeded",
        count(&probe, "ok")
    ));

    // Rejoin.
    s.ask("mark", "marked", Duration::from_secs(10))?;
    let restarted = Instant::now();
    if opts.sync {
        // Its announcer waits until the backup has learnt every connection
        // the others carry (they send each again every 2 s of traffic).
        c.lab.stop_named(&Cluster::announcer_name(v))?;
        c.start_rvsd(v)?;
        start_sync(&c, v)?;
        c.lab
            .wait_for(&format!("director {v} to learn every connection"), || {
                Ok(table_size(&c, v)? >= opts.connections)
            })?;
        say(&format!(
            "director {v}'s backup knew every connection {} ms after the restart",
            restarted.elapsed().as_millis()
        ));
        c.start_announcer(v)?;
    } else {
        c.start_rvsd(v)?;
    }
    c.wait_next_hops(CLUSTER_VIP, &all, slow)?;
    let rejoined_ms = restarted.elapsed().as_millis();
    say(&format!(
        "restarted director {v}; back in the route after {rejoined_ms} ms"
    ));
    s.wait_all_progressed(slow)?;
    std::thread::sleep(Duration::from_secs(2));
    let done = s.ask("finish", "done", Duration::from_secs(30))?;
    let broken_total = count(&done, "broken");
    if broken_total > 0 {
        say(&format!("lost connections: {}", done["reasons"]));
    }
    Ok(FailoverReport {
        connections: opts.connections,
        on_victim,
        converged_ms,
        adopted,
        broken_failover,
        longest_stall_ms,
        probes,
        probes_ok: count(&probe, "ok"),
        rejoined_ms,
        broken_rejoin: broken_total.saturating_sub(broken_failover),
        bytes: count(&done, "bytes"),
    })
}
