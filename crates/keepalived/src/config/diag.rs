//! Configuration messages, with the file and line they are about, written
//! the way keepalived writes them: `(FILE: Line N) message`.

use std::fmt;
use std::sync::Arc;

/// Where a word of the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: Line {}", self.file, self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// What keepalived reports as a configuration error (`-t` fails), and
    /// what rvs refuses. The daemon still starts, skipping or defaulting the
    /// item as keepalived does, and logs the message.
    Error,
    /// Valid keepalived configuration that rvs-keepalived does not act on
    /// (VRRP, SMTP alerts, ...): said once at load, `-t` still passes.
    Notice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub pos: Option<Pos>,
    pub severity: Severity,
    pub msg: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "({p}) {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

/// Every message one load produced, in order.
#[derive(Debug, Default, Clone)]
pub struct Diags(Vec<Diag>);

impl Diags {
    pub fn error(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.push(Some(pos), Severity::Error, msg.into());
    }

    pub fn notice(&mut self, pos: &Pos, msg: impl Into<String>) {
        self.push(Some(pos), Severity::Notice, msg.into());
    }

    /// An error about the configuration as a whole (after parsing, where
    /// keepalived names the virtual server instead of a line).
    pub fn error_at(&mut self, pos: Option<&Pos>, msg: impl Into<String>) {
        self.push(pos, Severity::Error, msg.into());
    }

    fn push(&mut self, pos: Option<&Pos>, severity: Severity, msg: String) {
        self.0.push(Diag {
            pos: pos.cloned(),
            severity,
            msg,
        });
    }

    pub fn all(&self) -> &[Diag] {
        &self.0
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diag> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn notices(&self) -> impl Iterator<Item = &Diag> {
        self.0.iter().filter(|d| d.severity == Severity::Notice)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}
