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
    #[error("talking to rvsd on {0}: {1}")]
    Io(String, std::io::Error),
    #[error("rvsd sent a reply rvsadm does not understand: {0}")]
    BadReply(String),
}

/// Sends one request and waits for its response.
pub fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let name = socket.display().to_string();
    let mut s = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning(name.clone())
        }
        _ => ClientError::Io(name.clone(), e),
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| ClientError::Io(name.clone(), e))?;
    let mut line = serde_json::to_string(req).expect("requests serialise");
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| ClientError::Io(name.clone(), e))?;
    let mut reply = String::new();
    BufReader::new(&s)
        .read_line(&mut reply)
        .map_err(|e| ClientError::Io(name.clone(), e))?;
    serde_json::from_str(&reply).map_err(|e| ClientError::BadReply(e.to_string()))
}
