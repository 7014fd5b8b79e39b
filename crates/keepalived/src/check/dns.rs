//! DNS_CHECK: one query over UDP (recursion desired, `type`, `name`, class
//! IN); the server is up if an answer with the query's id and rcode 0
//! comes back within `connect_timeout`.

use std::io;
use std::time::Instant;

use crate::config::{ConnOpts, DnsCheck};
use crate::state::Outcome;

/// keepalived's query: a random id, RD set, one question.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    q.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // AN, NS, AR counts
    for label in name.split('.').filter(|l| !l.is_empty()) {
        // Labels are at most 63 bytes; longer ones are cut, as the name
        // would be invalid anyway.
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

pub fn check(d: &DnsCheck, c: &ConnOpts) -> Outcome {
    let deadline = Instant::now() + c.timeout;
    let sock = match super::connect_udp(c) {
        Ok(s) => s,
        Err(e) => return Outcome::Down(format!("network unreachable for {} ({e})", c.dst)),
    };
    let id = fastrand::u16(..);
    let q = query(id, &d.name, d.qtype);
    match sock.send(&q) {
        Ok(n) if n == q.len() => {}
        Ok(_) => return Outcome::Down("failed to write all of the datagram.".into()),
        Err(_) => return Outcome::Down("failed to write socket.".into()),
    }
    let mut buf = [0u8; 1500];
    loop {
        let left = match super::remaining(deadline) {
            Ok(l) => l,
            Err(_) => return Outcome::Down("read timeout from socket".into()),
        };
        if let Err(e) = sock.set_read_timeout(Some(left)) {
            return Outcome::Down(format!("failed to read socket; {e}"));
        }
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if super::is_timeout(&e) => {
                return Outcome::Down("read timeout from socket".into())
            }
            Err(e) => {
                return Outcome::Down(format!(
                    "failed to read socket; errno {} ({})",
                    errno(&e),
                    e
                ))
            }
        };
        // Too short, another id, or not a response: keep waiting.
        if n < 12 || buf[0..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
            continue;
        }
        let rcode = buf[3] & 0x0f;
        if rcode != 0 {
            return Outcome::Down(format!("read error occurred. (rcode = {rcode})"));
        }
        return Outcome::Up(None);
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    /// A DNS server on loopback answering `rcode` to one query, after a
    /// stray datagram with the wrong id.
    fn server(rcode: u8) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let mut b = [0u8; 512];
            let (n, from) = s.recv_from(&mut b).unwrap();
            let q = b[..n].to_vec();
            let mut wrong = q.clone();
            wrong[0] ^= 0xff;
            wrong[2] |= 0x80;
            s.send_to(&wrong, from).unwrap();
            let mut resp = q.clone();
            resp[2] |= 0x80;
            resp[3] = (resp[3] & 0xf0) | rcode;
            s.send_to(&resp, from).unwrap();
            q
        });
        (addr, h)
    }

    fn opts(dst: std::net::SocketAddr) -> ConnOpts {
        ConnOpts {
            dst,
            bindto: None,
            timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn query_layout() {
        let q = query(0x1234, "www.example.com", 1);
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        // The root: just the empty name.
        assert_eq!(&query(1, "", 6)[12..], &[0, 0, 6, 0, 1]);
    }

    #[test]
    fn answer_is_up_error_is_down() {
        let (addr, srv) = server(0);
        let d = DnsCheck {
            qtype: 6,
            name: "example.com".into(),
        };
        assert_eq!(check(&d, &opts(addr)), Outcome::Up(None));
        let q = srv.join().unwrap();
        assert_eq!(&q[q.len() - 4..], &[0, 6, 0, 1]);
        let (addr, srv) = server(2);
        assert_eq!(
            check(&d, &opts(addr)),
            Outcome::Down("read error occurred. (rcode = 2)".into())
        );
        srv.join().unwrap();
    }

    #[test]
    fn no_server_is_down() {
        // A port nobody listens on: ICMP port unreachable on loopback.
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        drop(s);
        let d = DnsCheck {
            qtype: 6,
            name: String::new(),
        };
        match check(&d, &opts(addr)) {
            Outcome::Down(e) => assert!(e.contains("refused") || e.contains("timeout"), "{e}"),
            o => panic!("{o:?}"),
        }
    }
}
