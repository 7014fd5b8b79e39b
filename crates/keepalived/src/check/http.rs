//! HTTP_GET and SSL_GET: for each `url`, a GET over a new connection
//! (HTTP/1.0 unless `http_protocol` says otherwise, keepalived's request
//! line and headers), the status code checked against `status_code`
//! (200-299 by default) and the body's MD5 against `digest` (as genhash
//! prints it: the body after the headers, up to Content-Length).
//!
//! The request is written by hand rather than with an HTTP client crate:
//! keepalived's checks are one fixed request and a read to end of stream,
//! and what is checked (the exact bytes the MD5 covers, Content-Length
//! counted as keepalived counts it) is easier to keep exact without a
//! client that decodes bodies for us.
//!
//! SSL_GET uses rustls and, like keepalived, does not verify the server's
//! certificate (keepalived never sets SSL_VERIFY_PEER); it sends SNI only
//! with `enable_sni` and a `virtualhost`. rustls speaks TLS 1.2 and 1.3.

use std::io::{self, Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use md5::{Digest, Md5};

use crate::config::{ConnOpts, HttpCheck, HttpProtocol, Url};
use crate::state::Outcome;

/// What one GET returned.
#[derive(Debug)]
struct Response {
    status: u16,
    /// MD5 of the body (up to Content-Length).
    digest: [u8; 16],
}

pub fn check(h: &HttpCheck, c: &ConnOpts, rs_name: &str) -> Outcome {
    let mut last = None;
    for url in &h.urls {
        let resp = match get(h, c, url) {
            Ok(r) => r,
            Err(reason) => return Outcome::Down(reason),
        };
        if !url.status.contains(resp.status) {
            return Outcome::Down(format!("HTTP status code error to (got {})", resp.status));
        }
        let what = match url.digest {
            Some(d) if d != resp.digest => {
                return Outcome::Down(format!("MD5 digest error to (got {})", hex(&resp.digest)));
            }
            Some(_) => "MD5 digest",
            None => "HTTP status code",
        };
        last = Some(format!("{what} success to {rs_name} url({})", url.path));
    }
    Outcome::Up(last)
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// keepalived's request, byte for byte.
fn request(h: &HttpCheck, c: &ConnOpts, url: &Url) -> String {
    let host = match &url.virtualhost {
        Some(v) => v.clone(),
        None => rvs_ipvs::types::fmt_addr_port(c.dst.ip(), c.dst.port()),
    };
    let (minor, close) = match h.protocol {
        HttpProtocol::V1_0 => (0, ""),
        HttpProtocol::V1_0C => (0, "Connection: close\r\n"),
        HttpProtocol::V1_1 => (1, "Connection: close\r\n"),
    };
    format!(
        "GET {} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n",
        url.path
    )
}

/// One GET; the error is keepalived's phrase for what went wrong.
fn get(h: &HttpCheck, c: &ConnOpts, url: &Url) -> Result<Response, String> {
    // Connect, write and read each get connect_timeout, as in keepalived.
    let deadline = Instant::now() + c.timeout * 3;
    let tcp = super::connect_tcp(c).map_err(|e| {
        if super::is_timeout(&e) {
            "Timeout connecting".to_string()
        } else {
            format!("Error connecting ({e})")
        }
    })?;
    let req = request(h, c, url);
    if h.ssl {
        let server_name = match (&url.virtualhost, h.enable_sni) {
            (Some(v), true) => rustls::pki_types::ServerName::try_from(v.clone()).map_err(|e| {
                format!("SSL handshake/communication error connecting to (bad SNI name {v}: {e})")
            })?,
            // An IP address name makes rustls send no SNI.
            _ => rustls::pki_types::ServerName::IpAddress(c.dst.ip().into()),
        };
        let conn = rustls::ClientConnection::new(tls_config(), server_name)
            .map_err(|e| format!("SSL handshake/communication error connecting to ({e})"))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("SSL handshake/communication error connecting to ({e})"))?;
            if Instant::now() > deadline {
                return Err("Timeout connecting".into());
            }
        }
        exchange(&mut tls, &req, deadline, c)
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, &req, deadline, c)
    }
}

/// Lets [`exchange`] adjust the read timeout of plain and TLS streams.
trait Timed: Read + Write {
    fn set_read_timeout(&self, t: std::time::Duration) -> io::Result<()>;
}

impl Timed for std::net::TcpStream {
    fn set_read_timeout(&self, t: std::time::Duration) -> io::Result<()> {
        std::net::TcpStream::set_read_timeout(self, Some(t))
    }
}

impl Timed for rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    fn set_read_timeout(&self, t: std::time::Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(t))
    }
}

fn exchange<S: Timed>(
    s: &mut S,
    req: &str,
    deadline: Instant,
    c: &ConnOpts,
) -> Result<Response, String> {
    s.write_all(req.as_bytes())
        .and_then(|_| s.flush())
        .map_err(|e| format!("Cannot send get request to ({e})"))?;
    let mut head: Vec<u8> = Vec::new();
    let mut body_start: Option<usize> = None;
    let mut content_len: Option<usize> = None;
    let mut status = 0;
    let mut md5 = Md5::new();
    let mut hashed = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = super::remaining(deadline).map_err(|_| "Timeout WEB read".to_string())?;
        s.set_read_timeout(left.min(c.timeout))
            .map_err(|e| format!("Read error with ({e})"))?;
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            // A TLS server that closes without close_notify: end of body.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) if super::is_timeout(&e) => return Err("Timeout WEB read".into()),
            Err(e) => return Err(format!("Read error with ({e})")),
        };
        let chunk: &[u8] = match body_start {
            Some(_) => &buf[..n],
            None => {
                head.extend_from_slice(&buf[..n]);
                let Some(end) = find(&head, b"\r\n\r\n") else {
                    if head.len() > 64 * 1024 {
                        return Err(
                            "Read, no data received from  (no end of headers in 64 KiB)".into()
                        );
                    }
                    continue;
                };
                body_start = Some(end + 4);
                let headers = String::from_utf8_lossy(&head[..end]).into_owned();
                status = status_code(&headers);
                content_len = content_length(&headers);
                let rest = head.split_off(end + 4);
                md5_update(&mut md5, &mut hashed, &rest, content_len);
                continue;
            }
        };
        md5_update(&mut md5, &mut hashed, chunk, content_len);
    }
    if body_start.is_none() {
        return Err("Read, no data received from ".into());
    }
    Ok(Response {
        status,
        digest: md5.finalize().into(),
    })
}

/// Hashes body bytes, stopping at Content-Length when there is one.
fn md5_update(md5: &mut Md5, hashed: &mut usize, data: &[u8], content_len: Option<usize>) {
    let take = match content_len {
        Some(l) => data.len().min(l.saturating_sub(*hashed)),
        None => data.len(),
    };
    md5.update(&data[..take]);
    *hashed += take;
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The code of `HTTP/1.x NNN reason` (0 when there is none).
fn status_code(headers: &str) -> u16 {
    let line = headers.lines().next().unwrap_or("");
    let mut parts = line.splitn(3, ' ');
    parts.next();
    match parts.next() {
        Some(code) if code.len() == 3 => code.parse().unwrap_or(0),
        _ => 0,
    }
}

fn content_length(headers: &str) -> Option<usize> {
    headers.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    })
}

/// One TLS client configuration for every SSL_GET: no certificate checks.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

/// Accepts any certificate, as keepalived's SSL_GET does; the handshake
/// signatures are still checked against the certificate's key.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// genhash's digest of a body: what `digest` must say for it.
pub fn digest_of(body: &[u8]) -> String {
    hex(&Md5::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatusCodes;
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    /// A one-shot HTTP server on loopback that answers each connection with
    /// `response` and records what it was sent.
    fn server(
        response: &'static [u8],
        conns: usize,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let mut got = Vec::new();
            for _ in 0..conns {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while find(&req, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&b[..n]);
                }
                got.push(String::from_utf8_lossy(&req).into_owned());
                s.write_all(response).unwrap();
            }
            got
        });
        (addr, h)
    }

    fn http(urls: Vec<Url>) -> HttpCheck {
        HttpCheck {
            ssl: false,
            protocol: HttpProtocol::V1_0,
            urls,
            enable_sni: false,
            fast_recovery: false,
        }
    }

    fn url(path: &str, digest: Option<&str>) -> Url {
        Url {
            path: path.into(),
            digest: digest.map(|d| {
                let mut o = [0u8; 16];
                for (i, b) in o.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&d[2 * i..2 * i + 2], 16).unwrap();
                }
                o
            }),
            status: StatusCodes::range(200, 299),
            virtualhost: None,
        }
    }

    fn opts(dst: SocketAddr) -> ConnOpts {
        ConnOpts {
            dst,
            bindto: None,
            timeout: Duration::from_secs(2),
        }
    }

    const OK: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\nX: y\r\n\r\nRS1\nextra";

    #[test]
    fn sends_keepalived_s_request_and_checks_the_digest() {
        let (addr, srv) = server(OK, 2);
        // The digest covers Content-Length bytes: "RS1\n".
        let d = digest_of(b"RS1\n");
        let out = check(
            &http(vec![url("/", Some(&d)), url("/x", None)]),
            &opts(addr),
            "[rs]:tcp:80",
        );
        assert_eq!(
            out,
            Outcome::Up(Some(
                "HTTP status code success to [rs]:tcp:80 url(/x)".into()
            ))
        );
        let reqs = srv.join().unwrap();
        assert_eq!(
            reqs[0],
            format!("GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {addr}\r\n\r\n")
        );
        assert!(reqs[1].starts_with("GET /x HTTP/1.0\r\n"));
    }

    #[test]
    fn wrong_digest_and_wrong_status_fail() {
        let (addr, srv) = server(OK, 1);
        let out = check(
            &http(vec![url("/", Some("00000000000000000000000000000000"))]),
            &opts(addr),
            "rs",
        );
        assert_eq!(
            out,
            Outcome::Down(format!("MD5 digest error to (got {})", digest_of(b"RS1\n")))
        );
        srv.join().unwrap();
        let (addr, srv) = server(b"HTTP/1.1 503 Busy\r\n\r\n", 1);
        let out = check(&http(vec![url("/", None)]), &opts(addr), "rs");
        assert_eq!(
            out,
            Outcome::Down("HTTP status code error to (got 503)".into())
        );
        srv.join().unwrap();
        let (addr, srv) = server(b"garbage without headers", 1);
        let out = check(&http(vec![url("/", None)]), &opts(addr), "rs");
        assert_eq!(out, Outcome::Down("Read, no data received from ".into()));
        srv.join().unwrap();
    }

    #[test]
    fn virtualhost_and_http_1_1() {
        let (addr, srv) = server(OK, 1);
        let mut h = http(vec![url("/health", None)]);
        h.urls[0].virtualhost = Some("www.example.com".into());
        h.protocol = HttpProtocol::V1_1;
        assert!(matches!(check(&h, &opts(addr), "rs"), Outcome::Up(_)));
        assert_eq!(
            srv.join().unwrap()[0],
            "GET /health HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\nHost: www.example.com\r\n\r\n"
        );
    }

    #[test]
    fn silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut o = opts(l.local_addr().unwrap());
        o.timeout = Duration::from_millis(300);
        let t = Instant::now();
        let out = check(&http(vec![url("/", None)]), &o, "rs");
        assert_eq!(out, Outcome::Down("Timeout WEB read".into()));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn ssl_get_accepts_a_self_signed_certificate() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![der], key)
                .unwrap(),
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let srv = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let conn = rustls::ServerConnection::new(cfg).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while find(&req, b"\r\n\r\n").is_none() {
                let n = tls.read(&mut b).unwrap();
                req.extend_from_slice(&b[..n]);
            }
            tls.write_all(b"HTTP/1.0 200 OK\r\n\r\nsecure").unwrap();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        let mut h = http(vec![url("/", Some(&digest_of(b"secure")))]);
        h.ssl = true;
        let out = check(&h, &opts(addr), "rs");
        assert_eq!(
            out,
            Outcome::Up(Some("MD5 digest success to rs url(/)".into()))
        );
        srv.join().unwrap();
    }
}
