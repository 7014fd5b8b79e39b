//! keepalived.conf's lexical layer: files, `include` globs, comments,
//! `@config-id` lines, `$NAME=value` definitions, and the splitting of lines
//! at braces, all with the file and line each word came from.
//!
//! Why this file is long (about 620 lines): the lexer is about 450 lines
//! (includes, definitions and positions need each other); the rest is its
//! tests.
//!
//! keepalived's grammar is line based: a keyword and its arguments fill one
//! line, and a `{` or `}` anywhere on a line (outside quotes) ends the line
//! before it and stands as a line of its own. So `url { path / }` reads as
//! the four lines `url`, `{`, `path /`, `}`. [`read`] produces those logical
//! lines; `tree` nests them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diags, Pos};
use super::files::Files;

/// One logical line: its words (quotes removed, escapes applied) and its
/// text as written, which script keywords parse again with their own rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub pos: Pos,
    pub words: Vec<String>,
    pub raw: String,
}

impl Line {
    pub fn is_open(&self) -> bool {
        self.words.len() == 1 && self.words[0] == "{" && self.raw == "{"
    }

    pub fn is_close(&self) -> bool {
        self.words.len() == 1 && self.words[0] == "}" && self.raw == "}"
    }
}

/// Why a configuration could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("Configuration file '{0}' could not be read: {1}")]
    Unreadable(String, std::io::Error),
}

/// How deep `include` may nest (files that include each other are
/// stopped sooner, see `Reader::reading`).
const MAX_INCLUDE_DEPTH: usize = 16;

struct Reader<'d> {
    files: &'d dyn Files,
    diags: &'d mut Diags,
    defs: HashMap<String, String>,
    config_id: Option<String>,
    lines: Vec<Line>,
    /// The files being read, the outermost first (canonical paths): a
    /// file that includes one of them is a loop. The depth limit alone
    /// let a file that includes itself twice be read 2^16 times.
    reading: Vec<PathBuf>,
}

/// Reads `path` and everything it includes, in order.
pub fn read(
    files: &dyn Files,
    path: &Path,
    config_id: Option<&str>,
    diags: &mut Diags,
) -> Result<Vec<Line>, ReadError> {
    let text = files
        .read(path)
        .map_err(|e| ReadError::Unreadable(path.display().to_string(), e))?;
    let mut r = Reader {
        files,
        diags,
        defs: HashMap::new(),
        config_id: config_id.map(String::from),
        lines: Vec::new(),
        reading: Vec::new(),
    };
    r.file(path, &text, 0);
    Ok(r.lines)
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, text: &str, depth: usize) {
        self.reading.push(self.files.canonical(path));
        self.lines_of(path, text, depth);
        self.reading.pop();
    }

    fn lines_of(&mut self, path: &Path, text: &str, depth: usize) {
        let name: Arc<str> = Arc::from(path.display().to_string());
        for (i, physical) in text.lines().enumerate() {
            let pos = Pos {
                file: name.clone(),
                line: i + 1,
            };
            self.physical_line(path, &pos, physical, depth);
        }
    }

    fn physical_line(&mut self, path: &Path, pos: &Pos, physical: &str, depth: usize) {
        let mut line = decomment(physical.trim_end_matches('\r'));
        if line.is_empty() {
            return;
        }
        if let Some(rest) = line.strip_prefix('@') {
            let (negate, rest) = match rest.strip_prefix('^') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let Some((id, body)) = rest.split_once([' ', '\t']) else {
                return;
            };
            let matches = self.config_id.as_deref() == Some(id);
            if matches == negate {
                return;
            }
            line = body.trim_start().to_string();
        }
        if let Some((name, value)) = definition(&line) {
            self.defs.insert(name, value);
            return;
        }
        if line.starts_with("~SEQ") || line.starts_with("~LST") {
            self.diags.error(
                pos,
                format!(
                    "{} is not supported by rvs-keepalived - ignoring '{line}'",
                    &line[..4]
                ),
            );
            return;
        }
        if !self.defs.is_empty() && line.contains('$') {
            line = substitute(&line, &self.defs);
            line = decomment(&line);
        }
        if let Some((kind, pattern)) = include(&line) {
            self.include(path, pos, kind, pattern, depth);
            return;
        }
        for segment in split_braces(&line) {
            match words(&segment) {
                Ok(words) if !words.is_empty() => self.lines.push(Line {
                    pos: pos.clone(),
                    words,
                    raw: segment,
                }),
                Ok(_) => {}
                Err(msg) => self.diags.error(pos, msg),
            }
        }
    }

    fn include(&mut self, from: &Path, pos: &Pos, kind: char, pattern: &str, depth: usize) {
        if depth >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                pos,
                format!("include '{pattern}' nested more than {MAX_INCLUDE_DEPTH} deep - is a file including itself? ignoring"),
            );
            return;
        }
        // keepalived changes into the directory of the file it reads, so a
        // relative include is relative to the including file.
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            from.parent().unwrap_or(Path::new(".")).join(pattern)
        };
        let paths = match self.files.glob(&full.to_string_lossy()) {
            Ok(paths) => paths,
            Err(e) => {
                self.diags
                    .error(pos, format!("Invalid include pattern '{pattern}': {e}"));
                return;
            }
        };
        let mut found = 0;
        for entry in paths {
            let p = match entry {
                Ok(p) => p,
                Err((path, e)) => {
                    self.diags.error(
                        pos,
                        format!(
                            "Configuration file '{}' open problem ({e}) - skipping",
                            path.display(),
                        ),
                    );
                    continue;
                }
            };
            if self.files.is_dir(&p) {
                continue;
            }
            let canonical = self.files.canonical(&p);
            if self.reading.contains(&canonical) {
                found += 1;
                self.diags.error(
                    pos,
                    format!(
                        "Configuration file '{}' is already being read (an include loop) - skipping",
                        p.display()
                    ),
                );
                continue;
            }
            match self.files.read(&p) {
                Ok(text) => {
                    found += 1;
                    self.file(&p, &text, depth + 1);
                }
                Err(e) => self.diags.error(
                    pos,
                    format!(
                        "Configuration file '{}' open problem ({e}) - skipping",
                        p.display()
                    ),
                ),
            }
        }
        if found == 0 {
            // Plain `include` tolerates a missing file, as keepalived does;
            // `includer` and friends require one.
            if kind == ' ' {
                self.diags
                    .notice(pos, format!("No config files matched '{pattern}'."));
            } else {
                self.diags
                    .error(pos, format!("{pattern} - no matching file"));
            }
        }
    }
}

/// Removes a `#` or `!` comment outside double quotes (`\#` and `\!` stay as
/// literal characters) and surrounding blanks.
fn decomment(line: &str) -> String {
    let line = line.trim_start_matches([' ', '\t']);
    let mut out = String::with_capacity(line.len());
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' => match chars.peek() {
                Some('#') | Some('!') if !quoted => {
                    out.push(chars.next().unwrap_or_default());
                }
                Some(_) => {
                    out.push(c);
                    out.push(chars.next().unwrap_or_default());
                }
                None => out.push(c),
            },
            '#' | '!' if !quoted => break,
            _ => out.push(c),
        }
    }
    out.trim_end_matches([' ', '\t']).to_string()
}

/// `$NAME=value`: a definition that later lines use as `$NAME` or `${NAME}`.
fn definition(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('$')?;
    let (name, value) = rest.split_once('=')?;
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    valid.then(|| (name.to_string(), value.trim().to_string()))
}

fn substitute(line: &str, defs: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match defs.get(name) {
            Some(v) if !name.is_empty() => {
                out.push_str(v);
                rest = tail;
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `include PATTERN` (kind ' ') or `includer`/`includem`/... (kind 'r', ...).
fn include(line: &str) -> Option<(char, &str)> {
    let rest = line.strip_prefix("include")?;
    let mut chars = rest.chars();
    match chars.next()? {
        ' ' | '\t' => Some((' ', rest.trim())),
        k @ ('r' | 'm' | 'w' | 'b' | 'a') => match chars.next()? {
            ' ' | '\t' => Some((k, rest[1..].trim())),
            _ => None,
        },
        _ => None,
    }
}

/// Splits a line at each `{` and `}` outside double quotes; each brace is a
/// segment of its own.
fn split_braces(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '{' | '}' if !quoted => {
                let t = cur.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
                cur.clear();
                out.push(c.to_string());
            }
            _ => cur.push(c),
        }
    }
    let t = cur.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
    out
}

/// Splits a segment into words as keepalived does for keywords: blanks
/// separate words and `"..."` keeps blanks inside one word.
pub fn words(segment: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = segment;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Ok(out);
        }
        if let Some(q) = rest.strip_prefix('"') {
            let end = q
                .find('"')
                .ok_or_else(|| format!("Unmatched quote: '{segment}'"))?;
            out.push(q[..end].to_string());
            rest = &q[end + 1..];
        } else {
            let end = rest.find([' ', '\t', '"']).unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
}

/// Splits a script's command line as keepalived does for `misc_path`,
/// `notify_up` and the quorum scripts: `"..."` and `'...'` quote, `\`
/// escapes (`\n`, `\t`, `\xHH`, octal, or the character itself).
pub fn script_words(segment: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = segment.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            }
            chars.next();
            match c {
                '\\' => word.push(
                    unescape(&mut chars)
                        .ok_or_else(|| format!("Missing escape char at end: '{segment}'"))?,
                ),
                '"' | '\'' if quote == Some(c) => quote = None,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                _ => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("String '{segment}': missing terminating {q}"));
        }
        out.push(word);
    }
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let c = chars.next()?;
    Some(match c {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'v' => '\x0b',
        'E' => '\x1b',
        'x' if chars.peek().is_some_and(|h| h.is_ascii_hexdigit()) => {
            let mut v: u32 = 0;
            while let Some(h) = chars.peek().and_then(|h| h.to_digit(16)) {
                chars.next();
                v = (v << 4 | h) & 0xff;
            }
            char::from_u32(v).unwrap_or('?')
        }
        '0'..='7' => {
            let mut v = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        chars.next();
                        v = v * 8 + d;
                    }
                    None => break,
                }
            }
            char::from_u32(v & 0xff).unwrap_or('?')
        }
        other => other,
    })
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) {}", self.pos, self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::files::{Disk, InMemory};

    fn lines_of(text: &str) -> (Vec<Vec<String>>, Diags) {
        let mut files = InMemory::new();
        files.insert("/k/k.conf", text);
        let mut d = Diags::default();
        let lines = read(&files, Path::new("/k/k.conf"), Some("main"), &mut d).unwrap();
        (lines.into_iter().map(|l| l.words).collect(), d)
    }

    #[test]
    fn braces_split_lines_and_comments_go() {
        let (l, d) = lines_of("url { path /x  # comment\n  status_code 200 } ! bang\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            l,
            vec![
                vec!["url".to_string()],
                vec!["{".into()],
                vec!["path".into(), "/x".into()],
                vec!["status_code".into(), "200".into()],
                vec!["}".into()],
            ]
        );
    }

    #[test]
    fn quotes_keep_blanks_and_braces() {
        let (l, _) = lines_of("misc_path \"/bin/check {a} b\" 'x\n");
        assert_eq!(l[0], ["misc_path", "/bin/check {a} b", "'x"]);
        assert_eq!(
            script_words("misc_path \"/bin/c 'a b' x\\ y\" u").unwrap(),
            ["misc_path", "/bin/c 'a b' x y", "u"]
        );
        assert_eq!(
            script_words("/bin/c 'a b' x\\ y \"q\\x41\"").unwrap(),
            ["/bin/c", "a b", "x y", "qA"]
        );
    }

    #[test]
    fn config_id_and_definitions() {
        let (l, _) =
            lines_of("@main weight 3\n@backup weight 4\n@^backup delay_loop 2\n$PORT=8080\nport $PORT ${PORT}x\n");
        assert_eq!(
            l,
            vec![
                vec!["weight".to_string(), "3".into()],
                vec!["delay_loop".into(), "2".into()],
                vec!["port".into(), "8080".into(), "8080x".into()]
            ]
        );
    }

    /// Reads `main` from `files` on the disk (in a temporary folder) and
    /// in memory (under `/mem`), and checks both with `check`, which is
    /// given the folder's path: the two sources must behave alike.
    fn on_disk_and_in_memory(
        files: &[(&str, &str)],
        main: &str,
        check: impl Fn(&[Line], &Diags, &str),
    ) {
        let dir = std::env::temp_dir().join(format!("rvs-ka-inc-{}", fastrand::u64(..)));
        for (name, text) in files {
            let f = dir.join(name);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        let mut d = Diags::default();
        let lines = read(&Disk, &dir.join(main), None, &mut d).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        check(&lines, &d, &dir.display().to_string());

        let mut mem = InMemory::new();
        for (name, text) in files {
            mem.insert(Path::new("/mem").join(name), *text);
        }
        let mut d = Diags::default();
        let lines = read(&mem, &Path::new("/mem").join(main), None, &mut d).unwrap();
        check(&lines, &d, "/mem");
    }

    #[test]
    fn include_glob_relative_to_the_including_file() {
        let files = [
            (
                "main.conf",
                "a 1\ninclude conf.d/*.conf\nb 2\ninclude none/*.conf\ninclude conf.d\n",
            ),
            ("conf.d/2.conf", "two\n"),
            ("conf.d/1.conf", "\n\none {\n"),
        ];
        on_disk_and_in_memory(&files, "main.conf", |lines, d, base| {
            let got: Vec<String> = lines
                .iter()
                .map(|l| format!("{}:{}", l.pos, l.raw))
                .collect();
            assert_eq!(
                got,
                [
                    format!("{base}/main.conf: Line 1:a 1"),
                    format!("{base}/conf.d/1.conf: Line 3:one"),
                    format!("{base}/conf.d/1.conf: Line 3:{{"),
                    format!("{base}/conf.d/2.conf: Line 1:two"),
                    format!("{base}/main.conf: Line 3:b 2"),
                ]
            );
            // A plain include that matches nothing (or only a folder) is
            // a notice, not an error.
            assert_eq!(d.errors().count(), 0, "{d:?}");
            assert_eq!(d.notices().count(), 2, "{d:?}");
        });
    }

    #[test]
    fn include_loop_is_stopped() {
        on_disk_and_in_memory(&[("a.conf", "include a.conf\n")], "a.conf", |_, d, _| {
            assert_eq!(d.errors().count(), 1, "{d:?}");
        });
    }

    /// Found by fuzzing (fuzz/: keepalived_conf): files that include each
    /// other twice were read 2^16 times (a minute and gigabytes) before the
    /// depth limit stopped them. A loop is now stopped where it closes.
    #[test]
    fn files_including_each_other_twice_are_read_once_each() {
        let files = [
            ("a.conf", "a\ninclude b.conf\ninclude ./b.conf\n"),
            ("b.conf", "b\ninclude a.conf\ninclude a.conf\n"),
        ];
        on_disk_and_in_memory(&files, "a.conf", |lines, d, _| {
            let words: Vec<&str> = lines.iter().map(|l| l.words[0].as_str()).collect();
            assert_eq!(
                words,
                ["a", "b", "b"],
                "b.conf twice (included twice), a.conf once"
            );
            let errors: Vec<String> = d.errors().map(|e| e.to_string()).collect();
            assert_eq!(errors.len(), 4, "{errors:?}");
            assert!(
                errors[0].contains("a.conf' is already being read (an include loop)"),
                "{errors:?}"
            );
        });
    }

    #[test]
    fn unterminated_quote_is_reported_with_its_line() {
        let (_, d) = lines_of("ok\nmisc_path \"/bin/x\n");
        let e: Vec<String> = d.errors().map(|e| e.to_string()).collect();
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("k.conf: Line 2)"), "{e:?}");
    }
}
