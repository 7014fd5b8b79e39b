//! UDP_CHECK: send `payload` (or a filler) and listen until
//! `connect_timeout`. An ICMP error (port unreachable, which Linux reports
//! on a connected socket) fails the check; silence passes unless
//! `require_reply`; a reply must have the right length and match the
//! `require_reply` bytes (`x` digits match anything).

use std::time::Instant;

use crate::config::{ConnOpts, UdpCheck};
use crate::state::Outcome;

/// What keepalived sends without `payload`: 32 bytes.
const FILLER: [u8; 32] = *b"rvs-keepalived UDP_CHECK probe..";

pub fn check(u: &UdpCheck, c: &ConnOpts) -> Outcome {
    let deadline = Instant::now() + c.timeout;
    let sock = match super::connect_udp(c) {
        Ok(s) => s,
        Err(e) => return Outcome::Down(format!("connect failed ({e})")),
    };
    let payload: &[u8] = u.payload.as_deref().unwrap_or(&FILLER);
    if let Err(e) = sock.send(payload) {
        return Outcome::Down(format!("send failed ({e})"));
    }
    let mut buf = vec![0u8; u.max_reply_len as usize + 1];
    let left = match super::remaining(deadline) {
        Ok(l) => l,
        Err(_) => return timeout(u),
    };
    if let Err(e) = sock.set_read_timeout(Some(left)) {
        return Outcome::Down(e.to_string());
    }
    match sock.recv(&mut buf) {
        Ok(n) => {
            if !u.require_reply {
                return Outcome::Up(None);
            }
            if n < u.min_reply_len as usize || n > u.max_reply_len as usize {
                return Outcome::Down(format!("reply data mismatch (length {n})"));
            }
            if let Some((data, mask)) = &u.reply {
                let ok = buf[..n]
                    .iter()
                    .zip(data.iter().zip(mask.iter()))
                    .all(|(got, (want, ignore))| (got ^ want) & !ignore == 0);
                if !ok {
                    return Outcome::Down("reply data mismatch".into());
                }
            }
            Outcome::Up(None)
        }
        Err(e) if super::is_timeout(&e) => timeout(u),
        Err(e) => Outcome::Down(e.to_string()),
    }
}

fn timeout(u: &UdpCheck) -> Outcome {
    if u.require_reply {
        Outcome::Down("no reply".into())
    } else {
        Outcome::Up(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn opts(dst: std::net::SocketAddr) -> ConnOpts {
        ConnOpts {
            dst,
            bindto: None,
            timeout: Duration::from_millis(300),
        }
    }

    fn echo(reply: &'static [u8]) -> (std::net::SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = s.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let mut b = [0u8; 512];
            let (n, from) = s.recv_from(&mut b).unwrap();
            s.send_to(reply, from).unwrap();
            b[..n].to_vec()
        });
        (a, h)
    }

    fn check_of(require_reply: bool, reply: Option<(Vec<u8>, Vec<u8>)>) -> UdpCheck {
        UdpCheck {
            payload: Some(b"ping".to_vec()),
            require_reply,
            reply,
            min_reply_len: 0,
            max_reply_len: 255,
        }
    }

    #[test]
    fn matching_reply_is_up() {
        let (a, h) = echo(b"\x12\x34\x56");
        let u = check_of(true, Some((vec![0x12, 0x30], vec![0, 0x0f])));
        assert_eq!(check(&u, &opts(a)), Outcome::Up(None));
        assert_eq!(h.join().unwrap(), b"ping");
        let (a, h) = echo(b"\x99");
        assert_eq!(
            check(&u, &opts(a)),
            Outcome::Down("reply data mismatch".into())
        );
        h.join().unwrap();
    }

    #[test]
    fn closed_port_is_down_silence_depends_on_require_reply() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = s.local_addr().unwrap();
        // Silent listener: passes without require_reply, fails with it.
        assert_eq!(check(&check_of(false, None), &opts(a)), Outcome::Up(None));
        assert_eq!(
            check(&check_of(true, None), &opts(a)),
            Outcome::Down("no reply".into())
        );
        drop(s);
        match check(&check_of(false, None), &opts(a)) {
            Outcome::Down(e) => assert!(e.contains("refused"), "{e}"),
            o => panic!("{o:?}"),
        }
    }
}
