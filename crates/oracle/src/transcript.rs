//! What a run saw, step by step: the text the two directors must agree on.
//!
//! ```text
//! @@ 3 admin exact
//! $ ipvsadm -Ln
//! [exit 0]
//! IP Virtual Server version 1.2.1 (size=4096)
//! ...
//! ```

use std::fmt::Write;

use crate::scenario::CompareMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// 1-based step number.
    pub step: usize,
    pub kind: String,
    pub mode: CompareMode,
    /// A deliberate difference that explains this step differing.
    pub explained_by: Option<String>,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub sections: Vec<Section>,
}

const MARK: &str = "@@ ";

impl Transcript {
    pub fn push(&mut self, step: usize, kind: &str, mode: CompareMode, lines: Vec<String>) {
        self.sections.push(Section {
            step,
            kind: kind.to_string(),
            mode,
            explained_by: None,
            lines,
        });
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.sections {
            let _ = write!(out, "{MARK}{} {} {}", s.step, s.kind, s.mode.tag());
            if let Some(e) = &s.explained_by {
                let _ = write!(out, " explained_by={e}");
            }
            out.push('\n');
            for l in &s.lines {
                // A captured line that looks like a section mark is indented.
                if l.starts_with(MARK) {
                    out.push(' ');
                }
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    pub fn parse(text: &str) -> Transcript {
        let mut t = Transcript::default();
        for line in text.lines() {
            if let Some(h) = line.strip_prefix(MARK) {
                let mut w = h.split_whitespace();
                let step = w.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let kind = w.next().unwrap_or("?").to_string();
                let mode = match w.next() {
                    Some("shape") => CompareMode::Shape,
                    Some("near") => CompareMode::Near,
                    _ => CompareMode::Exact,
                };
                let explained_by = w
                    .next()
                    .and_then(|x| x.strip_prefix("explained_by="))
                    .map(String::from);
                t.sections.push(Section {
                    step,
                    kind,
                    mode,
                    explained_by,
                    lines: Vec::new(),
                });
            } else if let Some(s) = t.sections.last_mut() {
                s.lines.push(line.to_string());
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let mut t = Transcript::default();
        t.push(
            1,
            "admin",
            CompareMode::Exact,
            vec!["$ ipvsadm -Ln".into(), "[exit 0]".into()],
        );
        t.push(
            2,
            "admin",
            CompareMode::Shape,
            vec!["@@ sneaky".into(), String::new()],
        );
        t.sections[1].explained_by = Some("routing".into());
        let back = Transcript::parse(&t.render());
        assert_eq!(back.sections.len(), 2);
        assert_eq!(back.sections[0], t.sections[0]);
        assert_eq!(back.sections[1].mode, CompareMode::Shape);
        assert_eq!(back.sections[1].explained_by.as_deref(), Some("routing"));
        assert_eq!(
            back.sections[1].lines,
            vec![" @@ sneaky".to_string(), String::new()]
        );
    }
}
