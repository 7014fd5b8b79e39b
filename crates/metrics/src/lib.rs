//! rvsd's HTTP endpoint (`[metrics] listen`):
//!
//! - `/metrics`: Prometheus text, with node_exporter's IPVS names for the
//!   kernel's figures and `rvs_` ones for the rest ([`exposition`]);
//! - `/status.json`: the same [`Status`] as JSON;
//! - `/`: a status page, one HTML file with no external assets, which polls
//!   `/status.json` every second.
//!
//! The server is tiny_http: synchronous, no async runtime, a handful of
//! small dependencies. rvsd starts it from its control thread, so its
//! threads inherit the main lcore's CPU affinity and never run on a
//! worker's core. It never touches the dataplane: every answer comes from
//! the control thread through `source`.

#![forbid(unsafe_code)]

pub mod exposition;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use rvs_control_proto::proto::Status;
use tiny_http::{Header, Method, Response, Server};

/// Where a request's figures come from: the control thread's state now, or
/// why it cannot be had.
pub type StatusSource = Arc<dyn Fn() -> Result<Status, String> + Send + Sync>;

/// The status page.
pub const PAGE: &str = include_str!("page.html");

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen on {0} for metrics: {1} (check [metrics] listen)")]
    Bind(SocketAddr, String),
    #[error("cannot start the metrics thread: {0}")]
    Thread(std::io::Error),
}

/// The running endpoint; dropping it stops it.
pub struct MetricsServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `listen` and serves from a thread of the caller's (which
    /// inherits its CPU affinity).
    pub fn start(listen: SocketAddr, source: StatusSource) -> Result<MetricsServer, MetricsError> {
        let server =
            Arc::new(Server::http(listen).map_err(|e| MetricsError::Bind(listen, e.to_string()))?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| MetricsError::Bind(listen, "not an IP listener".into()))?;
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("rvs-metrics".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    respond(req, &source);
                }
            })
            .map_err(MetricsError::Thread)?;
        Ok(MetricsServer {
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// The address it listens on (the port, when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("valid header")
}

/// What a path answers: status code, content type and body.
pub fn answer(method: &str, url: &str, source: &StatusSource) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != "GET" && method != "HEAD" {
        return (405, TEXT, "only GET and HEAD\n".into());
    }
    let path = url.split(['?', '#']).next().unwrap_or("");
    match path {
        "/" | "/index.html" => (200, "text/html; charset=utf-8", PAGE.to_string()),
        "/metrics" => match source() {
            Ok(s) => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                exposition::encode(s),
            ),
            Err(e) => (503, TEXT, format!("{e}\n")),
        },
        "/status.json" => match source() {
            Ok(s) => (
                200,
                "application/json",
                serde_json::to_string(&s).expect("the status serialises"),
            ),
            Err(e) => (503, TEXT, format!("{e}\n")),
        },
        _ => (
            404,
            TEXT,
            "not found: try /, /metrics or /status.json\n".into(),
        ),
    }
}

fn respond(req: tiny_http::Request, source: &StatusSource) {
    let method = match req.method() {
        Method::Get => "GET",
        Method::Head => "HEAD",
        _ => "OTHER",
    };
    let (code, ctype, body) = answer(method, req.url(), source);
    let resp = Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", ctype))
        .with_header(header("Cache-Control", "no-store"));
    if let Err(e) = req.respond(resp) {
        log::debug!("metrics client went away: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_json_and_the_page_over_http() {
        let source: StatusSource = Arc::new(|| Ok(exposition::tests::status()));
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), source).unwrap();
        let m = get(srv.addr(), "/metrics");
        assert!(m.starts_with("HTTP/1.1 200"), "{m}");
        assert!(m.contains("text/plain; version=0.0.4"), "{m}");
        assert!(m.contains("\nnode_ipvs_connections_total 9\n"), "{m}");
        let j = get(srv.addr(), "/status.json");
        let body = j.split("\r\n\r\n").nth(1).unwrap();
        let s: Status = serde_json::from_str(body).unwrap();
        assert_eq!(s.totals.stats.conns, 9);
        let page = get(srv.addr(), "/");
        assert!(page.contains("text/html"), "{page}");
        assert!(page.contains("/status.json"), "the page polls the JSON");
        assert!(get(srv.addr(), "/nope").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn a_failing_source_is_a_503_and_other_methods_405() {
        let source: StatusSource = Arc::new(|| Err("rvsd is stopping".into()));
        assert_eq!(answer("GET", "/metrics", &source).0, 503);
        assert_eq!(answer("GET", "/status.json?x=1", &source).0, 503);
        assert_eq!(answer("POST", "/metrics", &source).0, 405);
        assert_eq!(answer("GET", "/?t=1", &source).0, 200);
    }

    #[test]
    fn a_taken_address_is_a_clear_error() {
        let source: StatusSource = Arc::new(|| Err("unused".into()));
        let first = MetricsServer::start("127.0.0.1:0".parse().unwrap(), source.clone()).unwrap();
        let e = MetricsServer::start(first.addr(), source).err().unwrap();
        assert!(e.to_string().contains("[metrics] listen"), "{e}");
    }

    #[test]
    fn the_page_has_no_external_assets() {
        for bad in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
            "url(",
        ] {
            assert!(!PAGE.contains(bad), "{bad}");
        }
    }
}
