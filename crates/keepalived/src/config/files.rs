//! Where the lexer's files come from: the file system ([`Disk`]), or a set
//! of files held in memory ([`InMemory`]) for tests and the fuzz target.
//!
//! Why a trait: the fuzz target reads a configuration and its includes
//! hundreds of times a second, and spent half its time in file-system
//! calls (writing the input's files, `glob`'s walk, `canonicalize`). In
//! memory it also cannot read the machine's files, so inputs with
//! absolute `include`s need no special case.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The file operations `include` needs.
pub trait Files {
    fn read(&self, path: &Path) -> io::Result<String>;
    /// The files and directories `pattern` matches, in glob's order
    /// (sorted), each with the error met reading it if any; `Err` with
    /// glob's message when the pattern is invalid.
    fn glob(&self, pattern: &str) -> Result<Vec<GlobEntry>, String>;
    fn is_dir(&self, path: &Path) -> bool;
    /// The path that names the same file however it was spelled (include
    /// loops are found by it).
    fn canonical(&self, path: &Path) -> PathBuf;
}

/// One path a pattern matched, or the path it could not look into.
pub type GlobEntry = Result<PathBuf, (PathBuf, io::Error)>;

/// The machine's file system.
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn glob(&self, pattern: &str) -> Result<Vec<GlobEntry>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
        Ok(paths
            .map(|e| e.map_err(|e| (e.path().to_path_buf(), io::Error::from(e))))
            .collect())
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Files held in memory, by absolute path; their directories exist
/// implicitly.
#[derive(Debug, Default, Clone)]
pub struct InMemory {
    files: BTreeMap<PathBuf, String>,
}

impl InMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file at `path`, which should be absolute.
    pub fn insert(&mut self, path: impl AsRef<Path>, text: impl Into<String>) {
        self.files.insert(normal(path.as_ref()), text.into());
    }
}

impl Files for InMemory {
    fn read(&self, path: &Path) -> io::Result<String> {
        let path = normal(path);
        match self.files.get(&path) {
            Some(text) => Ok(text.clone()),
            None if self.is_dir(&path) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "Is a directory",
            )),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "No such file or directory",
            )),
        }
    }

    fn glob(&self, pattern: &str) -> Result<Vec<GlobEntry>, String> {
        let pat = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
        // As glob's walk: a wildcard matches within one path component.
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..glob::MatchOptions::new()
        };
        // A pattern without wildcards names one path, spelled as given.
        if !pattern.contains(['*', '?', '[']) {
            let p = PathBuf::from(pattern);
            let exists = self.files.contains_key(&normal(&p)) || self.is_dir(&p);
            return Ok(if exists { vec![Ok(p)] } else { vec![] });
        }
        let depth = Path::new(pattern).components().count();
        let mut out: Vec<PathBuf> = Vec::new();
        for path in self.files.keys() {
            // The file itself, and each directory above it.
            for p in path.ancestors() {
                if p.components().count() == depth
                    && pat.matches_path_with(p, opts)
                    && !out.iter().any(|o| o == p)
                {
                    out.push(p.to_path_buf());
                }
            }
        }
        out.sort();
        Ok(out.into_iter().map(Ok).collect())
    }

    fn is_dir(&self, path: &Path) -> bool {
        let path = normal(path);
        self.files
            .keys()
            .any(|f| f != &path && f.starts_with(&path))
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        normal(path)
    }
}

/// `path` without `.` and with each `..` taking away the component
/// before it (no symbolic links in memory, so this is what canonicalize
/// would give).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> InMemory {
        let mut f = InMemory::new();
        f.insert("/etc/k/keepalived.conf", "a");
        f.insert("/etc/k/conf.d/2.conf", "two");
        f.insert("/etc/k/conf.d/1.conf", "one");
        f.insert("/etc/k/conf.d/sub/3.conf", "three");
        f
    }

    fn matched(f: &InMemory, pattern: &str) -> Vec<String> {
        f.glob(pattern)
            .unwrap()
            .into_iter()
            .map(|e| e.unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn wildcards_match_within_one_component_in_sorted_order() {
        let f = files();
        assert_eq!(
            matched(&f, "/etc/k/conf.d/*"),
            [
                "/etc/k/conf.d/1.conf",
                "/etc/k/conf.d/2.conf",
                "/etc/k/conf.d/sub"
            ]
        );
        assert_eq!(matched(&f, "/etc/k/*.conf"), ["/etc/k/keepalived.conf"]);
        assert!(matched(&f, "/etc/*.conf").is_empty());
    }

    #[test]
    fn a_plain_path_is_returned_as_spelled() {
        let f = files();
        assert_eq!(
            matched(&f, "/etc/k/conf.d/../keepalived.conf"),
            ["/etc/k/conf.d/../keepalived.conf"]
        );
        assert!(matched(&f, "/etc/k/none.conf").is_empty());
        assert_eq!(f.read(Path::new("/etc/k/./conf.d/1.conf")).unwrap(), "one");
    }

    #[test]
    fn directories_are_known_but_not_readable() {
        let f = files();
        assert!(f.is_dir(Path::new("/etc/k/conf.d")));
        assert!(!f.is_dir(Path::new("/etc/k/conf.d/1.conf")));
        assert!(f.read(Path::new("/etc/k/conf.d")).is_err());
        assert!(f.glob("/etc/[k").is_err());
    }
}
