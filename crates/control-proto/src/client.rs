//! rvsadm's side of the socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::proto::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("rvsd is not running (no daemon listening on {0})")]
    NotRunning(String),
    #[error(
        "Permission denied (you must be root, or in the group of {0}): \
         rvsd's socket does not let this user in"
    )]
    PermissionDenied(String),
    #[error("talking to rvsd on {0}: {1}")]
    Io(String, std::io::Error),
    #[error("rvsd sent a reply rvsadm does not understand: {0}")]
    BadReply(String),
}

/// How long rvsadm waits for each line of rvsd's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one request and waits for its response. A `ListConns` answer,
/// which comes in chunks, is put together into one `Conns` (or `Error`).
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    request_within(socket, req, READ_TIMEOUT)
}

/// [`request`], waiting at most `timeout` for each line of the answer (a
/// supervisor that polls rvsd must not hang on a stopped one).
pub fn request_within(
    socket: &Path,
    req: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let name = socket.display().to_string();
    let io = |e| ClientError::Io(name.clone(), e);
    let mut s = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(name.clone())
        }
        std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied(name.clone()),
        _ => ClientError::Io(name.clone(), e),
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(req).expect("requests serialise");
    line.push('\n');
    // rvsd may refuse a request before it has read all of it (one too
    // long): its answer then says why, better than the broken pipe.
    let sent = s.write_all(line.as_bytes());
    let mut lines = BufReader::new(&s);
    let mut next = || -> Result<Response, ClientError> {
        let mut reply = String::new();
        let n = lines.read_line(&mut reply).map_err(io)?;
        if n == 0 {
            return Err(ClientError::BadReply(
                "rvsd closed the connection without an answer".into(),
            ));
        }
        serde_json::from_str(&reply).map_err(|e| ClientError::BadReply(e.to_string()))
    };
    let first = match (next(), sent) {
        (Ok(r), _) => r,
        (Err(_), Err(e)) => return Err(io(e)),
        (Err(e), Ok(())) => return Err(e),
    };
    if !matches!(req, Request::ListConns { .. }) {
        return Ok(first);
    }
    let mut rows = Vec::new();
    let mut r = first;
    loop {
        match r {
            Response::ConnRows(chunk) => rows.extend(chunk),
            Response::Conns(last, truncated) => {
                rows.extend(last);
                return Ok(Response::Conns(rows, truncated));
            }
            other => return Ok(other),
        }
        r = next()?;
    }
}
