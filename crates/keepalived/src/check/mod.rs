//! The checkers, one file each, as keepalived's `check_*.c`. Each runs one
//! check to its end and returns an [`Outcome`]; every socket operation has
//! the checker's `connect_timeout`, and a whole check has a deadline, so a
//! check always ends.
//!
//! Checks are plain blocking code on their own thread (the daemon starts one
//! per check): a check is a handful of socket calls or one child process,
//! a director checks tens to hundreds of servers, and threads keep each
//! checker a straight-line function that reads like keepalived's state
//! machine unrolled, without an async runtime's weight.

pub mod dns;
pub mod http;
pub mod misc;
pub mod tcp;
pub mod udp;

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::{CheckKind, ConnOpts};
use crate::state::{Job, Outcome};

/// Runs the check `job` describes.
pub fn run(job: &Job) -> Outcome {
    let conn = job.checker.conn;
    match (&job.checker.kind, conn) {
        (CheckKind::Tcp, Some(c)) => tcp::check(&c),
        (CheckKind::Http(h), Some(c)) => http::check(h, &c, &job.rs_name),
        (CheckKind::Dns(d), Some(c)) => dns::check(d, &c),
        (CheckKind::Udp(u), Some(c)) => udp::check(u, &c),
        (CheckKind::Misc(m), _) => misc::check(m),
        (_, None) => Outcome::Down("checker has no address to connect to".into()),
    }
}

fn domain(a: &SocketAddr) -> Domain {
    if a.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    }
}

/// A socket bound as `bindto`/`bind_port` say.
fn bound_socket(c: &ConnOpts, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(domain(&c.dst), ty, Some(proto))?;
    s.set_cloexec(true)?;
    if let Some(b) = c.bindto {
        // A fixed source port is reused check after check.
        s.set_reuse_address(true)?;
        s.bind(&SockAddr::from(b))?;
    }
    Ok(s)
}

/// Connects over TCP from `bindto`, within `connect_timeout`; reads and
/// writes then time out after `connect_timeout` too.
pub fn connect_tcp(c: &ConnOpts) -> io::Result<TcpStream> {
    let s = bound_socket(c, Type::STREAM, Protocol::TCP)?;
    s.connect_timeout(&SockAddr::from(c.dst), c.timeout)?;
    let t: TcpStream = s.into();
    t.set_read_timeout(Some(c.timeout))?;
    t.set_write_timeout(Some(c.timeout))?;
    t.set_nodelay(true)?;
    Ok(t)
}

/// A UDP socket from `bindto`, connected to the destination, so that ICMP
/// errors come back as errors on receive.
pub fn connect_udp(c: &ConnOpts) -> io::Result<UdpSocket> {
    let s = bound_socket(c, Type::DGRAM, Protocol::UDP)?;
    s.connect(&SockAddr::from(c.dst))?;
    let u: UdpSocket = s.into();
    u.set_read_timeout(Some(c.timeout))?;
    u.set_write_timeout(Some(c.timeout))?;
    Ok(u)
}

/// Time left before `deadline`, or a timeout error.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let now = Instant::now();
    if now >= deadline {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "check deadline passed",
        ));
    }
    Ok(deadline - now)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
