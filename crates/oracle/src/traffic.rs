//! The scenario's traffic: greeting servers, clients that record who
//! answered, bulk transfers, scripted packets and the barrier that tells
//! the runner the director has handled everything sent before it.
//!
//! Everything runs in the runner's process: sockets are created on a thread
//! inside the host's namespace ([`Netns::run`]) and used from anywhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol as SockProto, SockAddr, Socket, Type};

use crate::netns::Netns;

/// How long a client waits for a connection, a greeting or a reply. TCG is
/// slow, and a director that drops must not hang the run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(4);

/// A real server: answers every TCP connection with its name and a line,
/// reads until the client half-closes and, if the client sent data, replies
/// with its length and SHA-256 (transfers); answers UDP datagrams with its
/// name.
pub struct GreetingServer {
    stop: Arc<AtomicBool>,
    listeners: Vec<TcpListener>,
    threads: Vec<JoinHandle<()>>,
}

impl GreetingServer {
    /// Greets on `ports` (TCP and UDP) and speaks HTTP on `http_ports`.
    pub fn start(
        ns: &Netns,
        name: &str,
        ports: &[u16],
        http_ports: &[u16],
    ) -> Result<GreetingServer> {
        let (listeners, udps) = ns.run(|| {
            let mut ls = Vec::new();
            let mut us = Vec::new();
            for &p in ports {
                let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, p));
                ls.push((
                    TcpListener::bind(any).with_context(|| format!("tcp port {p}"))?,
                    false,
                ));
                let u = UdpSocket::bind(any).with_context(|| format!("udp port {p}"))?;
                u.set_read_timeout(Some(Duration::from_millis(200)))?;
                us.push(u);
            }
            for &p in http_ports {
                let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, p));
                ls.push((
                    TcpListener::bind(any).with_context(|| format!("http port {p}"))?,
                    true,
                ));
            }
            Ok((ls, us))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (l, http) in &listeners {
            let (l, http) = (l.try_clone()?, *http);
            let name = name.to_string();
            threads.push(std::thread::spawn(move || {
                for c in l.incoming() {
                    let Ok(c) = c else { break };
                    let name = name.clone();
                    std::thread::spawn(move || {
                        let _ = if http {
                            serve_http(c, &name)
                        } else {
                            serve_tcp(c, &name)
                        };
                    });
                }
            }));
        }
        let listeners = listeners.into_iter().map(|(l, _)| l).collect();
        for u in udps {
            let (name, stop) = (name.to_string(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, peer)) = u.recv_from(&mut buf) {
                        let _ = u.send_to(format!("{name}\n").as_bytes(), peer);
                    }
                }
            }));
        }
        Ok(GreetingServer {
            stop,
            listeners,
            threads,
        })
    }
}

fn serve_tcp(mut c: TcpStream, name: &str) -> Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(60)))?;
    c.write_all(format!("{name}\n").as_bytes())?;
    let mut hash = Sha256::new();
    let mut n = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let k = c.read(&mut buf)?;
        if k == 0 {
            break;
        }
        hash.update(&buf[..k]);
        n += k;
    }
    if n > 0 {
        c.write_all(format!("RECV {n} {:x}\n", hash.finalize()).as_bytes())?;
    }
    Ok(())
}

/// HTTP/1.0: `/healthz` says "ok" (what health checkers ask for), anything
/// else the server's name; then the server closes.
fn serve_http(mut c: TcpStream, name: &str) -> Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        let k = c.read(&mut buf)?;
        if k == 0 {
            break;
        }
        head.extend_from_slice(&buf[..k]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let body = if path == "/healthz" {
        "ok\n".to_string()
    } else {
        format!("{name}\n")
    };
    c.write_all(
        format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )?;
    Ok(())
}

/// One HTTP GET from `local`: the first line of the body, or FAIL(why).
pub fn http_get(local: SocketAddrV4, remote: SocketAddrV4) -> String {
    let attempt = || -> Result<String> {
        let s = bound_tcp(local)?;
        s.connect_timeout(&SockAddr::from(remote), IO_TIMEOUT)?;
        let mut s: TcpStream = s.into();
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.write_all(format!("GET / HTTP/1.0\r\nHost: {}\r\n\r\n", remote.ip()).as_bytes())?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let (status, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        if !status.starts_with("HTTP/1.0 200") {
            bail!("status {}", status.lines().next().unwrap_or(""));
        }
        Ok(body.trim().to_string())
    };
    attempt().unwrap_or_else(|e| format!("FAIL({})", short_error(&e)))
}

impl Drop for GreetingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A listening socket shut down for reading wakes its accept().
        for l in &self.listeners {
            let _ = socket2::SockRef::from(l).shutdown(Shutdown::Read);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The first line a connection's server sent, trimmed; or why none came.
fn read_line(s: &TcpStream) -> Result<String> {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    if line.is_empty() {
        bail!("closed");
    }
    Ok(line.trim().to_string())
}

fn bound_tcp(local: SocketAddrV4) -> Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(SockProto::TCP))?;
    // Runs of earlier steps may leave the same port in TIME_WAIT.
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(local))?;
    Ok(s)
}

fn short_error(e: &anyhow::Error) -> String {
    let s = e.root_cause().to_string();
    if s.contains("timed out") || s.contains("would block") || s.contains("Resource temporarily") {
        "timeout".into()
    } else if s.contains("refused") {
        "refused".into()
    } else if s.contains("reset") {
        "reset".into()
    } else {
        s
    }
}

/// One TCP connection from `local` to `remote`: the greeting's server name,
/// and the stream if it is to stay open. A closed connection is closed the
/// orderly way (FIN both ways) and fully, before this returns.
pub fn tcp_connect(
    local: SocketAddrV4,
    remote: SocketAddrV4,
    hold: bool,
) -> (String, Option<TcpStream>) {
    let attempt = || -> Result<(String, Option<TcpStream>)> {
        let s = bound_tcp(local)?;
        s.connect_timeout(&SockAddr::from(remote), IO_TIMEOUT)?;
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let name = read_line(&s)?;
        if hold {
            return Ok((name, Some(s)));
        }
        close(s)?;
        Ok((name, None))
    };
    match attempt() {
        Ok(r) => r,
        Err(e) => (format!("FAIL({})", short_error(&e)), None),
    }
}

/// Half-closes, waits for the server's FIN, then closes.
pub fn close(s: TcpStream) -> Result<()> {
    s.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    (&s).read_to_end(&mut rest)?;
    Ok(())
}

/// One UDP request from `local`: the name in the reply.
pub fn udp_request(local: SocketAddrV4, remote: SocketAddrV4) -> String {
    let attempt = || -> Result<String> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProto::UDP))?;
        s.set_reuse_address(true)?;
        s.bind(&SockAddr::from(local))?;
        let u: UdpSocket = s.into();
        u.set_read_timeout(Some(IO_TIMEOUT))?;
        // Connected, as resolvers and most clients are: a reply must come
        // from the VIP and port asked, not from a real server's address.
        u.connect(remote)?;
        u.send(b"ping")?;
        let mut buf = [0u8; 256];
        let n = u.recv(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    };
    attempt().unwrap_or_else(|e| format!("FAIL({})", short_error(&e)))
}

/// Deterministic bytes for transfers.
fn pattern(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends `bytes` through one connection and checks the server's count and
/// hash. Returns "via RSn: ok" or what went wrong.
pub fn transfer(local: SocketAddrV4, remote: SocketAddrV4, bytes: usize) -> String {
    let attempt = || -> Result<String> {
        let s = bound_tcp(local)?;
        s.connect_timeout(&SockAddr::from(remote), IO_TIMEOUT)?;
        let mut s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut name = String::new();
        r.read_line(&mut name)?;
        let data = pattern(bytes);
        s.write_all(&data)?;
        s.shutdown(Shutdown::Write)?;
        let mut answer = String::new();
        r.read_line(&mut answer)?;
        let want = format!("RECV {bytes} {:x}", Sha256::digest(&data));
        let name = name.trim();
        if answer.trim() == want {
            Ok(format!("via {name}: ok"))
        } else {
            Ok(format!("via {name}: MISMATCH ({})", answer.trim()))
        }
    };
    attempt().unwrap_or_else(|e| format!("FAIL({})", short_error(&e)))
}

/// ICMP echo to `to` from inside the namespace, answered or not within the
/// timeout. The director handles its own packets in arrival order, so its
/// answer means it has handled everything the host sent before.
pub fn ping(ns: &Netns, to: Ipv4Addr, seq: u16) -> Result<()> {
    let sock = ns.run(|| {
        Ok(Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(SockProto::ICMPV4),
        )?)
    })?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let id: u16 = (std::process::id() & 0xffff) as u16;
    let mut req = [0u8; 16];
    req[0] = 8;
    req[4..6].copy_from_slice(&id.to_be_bytes());
    req[6..8].copy_from_slice(&seq.to_be_bytes());
    req[8..16].copy_from_slice(b"rvsbarr\0");
    let c = !rvs_packet::checksum::sum(&req);
    req[2..4].copy_from_slice(&c.to_be_bytes());
    let dst = SockAddr::from(SocketAddrV4::new(to, 0));
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        sock.send_to(&req, &dst)?;
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            // A raw ICMP socket gets every ICMP packet of the namespace,
            // IPv4 header first: keep only our reply.
            let Ok(n) = (&sock).read(&mut buf) else {
                continue;
            };
            let got = &buf[..n];
            let hl = ((got.first().copied().unwrap_or(0x45) & 0x0f) as usize) * 4;
            if got.len() >= hl + 8
                && got[hl] == 0
                && got[hl + 4..hl + 6] == id.to_be_bytes()
                && got[hl + 6..hl + 8] == seq.to_be_bytes()
            {
                return Ok(());
            }
        }
    }
    Err(anyhow!("no echo reply from {to} within {IO_TIMEOUT:?}"))
}
