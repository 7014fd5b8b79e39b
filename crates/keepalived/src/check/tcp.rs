//! TCP_CHECK: the server is up if a TCP connection opens within
//! `connect_timeout`.

use crate::config::ConnOpts;
use crate::state::Outcome;

pub fn check(c: &ConnOpts) -> Outcome {
    match super::connect_tcp(c) {
        Ok(_) => Outcome::Up(None),
        Err(e) if super::is_timeout(&e) => Outcome::Down("connection timeout".into()),
        Err(e) => Outcome::Down(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    fn opts(dst: SocketAddr) -> ConnOpts {
        ConnOpts {
            dst,
            bindto: None,
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn open_port_is_up_closed_port_is_down() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(check(&opts(addr)), Outcome::Up(None));
        drop(l);
        match check(&opts(addr)) {
            Outcome::Down(e) => assert!(e.contains("refused"), "{e}"),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn bindto_sets_the_source() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut o = opts(l.local_addr().unwrap());
        o.bindto = Some("127.0.0.2:0".parse().unwrap());
        assert_eq!(check(&o), Outcome::Up(None));
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "127.0.0.2");
    }
}
