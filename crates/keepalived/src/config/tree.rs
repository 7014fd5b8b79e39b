//! Nests the logical lines: a line followed by a `{` line owns the lines up
//! to the matching `}`.

use super::diag::{Diags, Pos};
use super::lexer::Line;

/// A keyword line and, if a `{` followed it, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub pos: Pos,
    pub words: Vec<String>,
    pub raw: String,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        &self.words[0]
    }

    /// The `i`th word after the keyword.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i + 1).map(String::as_str)
    }

    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }

    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

pub fn build(lines: Vec<Line>, diags: &mut Diags) -> Vec<Node> {
    let mut it = lines.into_iter().peekable();
    seq(&mut it, None, diags)
}

fn seq(
    it: &mut std::iter::Peekable<std::vec::IntoIter<Line>>,
    opened: Option<&Node>,
    diags: &mut Diags,
) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    while let Some(line) = it.next() {
        if line.is_close() {
            if opened.is_some() {
                return out;
            }
            diags.error(&line.pos, "Extra '}' found");
            continue;
        }
        if line.is_open() {
            // A `{` that follows nothing that could own it.
            diags.error(&line.pos, "Unexpected '{' - ignoring");
            let stray = Node {
                pos: line.pos.clone(),
                words: vec!["{".into()],
                raw: "{".into(),
                block: None,
            };
            seq(it, Some(&stray), diags);
            continue;
        }
        let mut node = Node {
            pos: line.pos,
            words: line.words,
            raw: line.raw,
            block: None,
        };
        if it.peek().is_some_and(Line::is_open) {
            it.next();
            let block = seq(it, Some(&node), diags);
            node.block = Some(block);
        }
        out.push(node);
    }
    if let Some(o) = opened {
        diags.error(
            &o.pos,
            format!(
                "'{}' block has no closing '}}' before the end of the configuration",
                o.raw
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn line(n: usize, raw: &str) -> Line {
        Line {
            pos: Pos {
                file: Arc::from("t.conf"),
                line: n,
            },
            words: super::super::lexer::words(raw).unwrap(),
            raw: raw.into(),
        }
    }

    #[test]
    fn nests_blocks() {
        let mut d = Diags::default();
        let t = build(
            vec![
                line(1, "a 1"),
                line(1, "{"),
                line(2, "b"),
                line(2, "{"),
                line(2, "c"),
                line(2, "}"),
                line(3, "}"),
                line(4, "d"),
            ],
            &mut d,
        );
        assert!(d.is_empty());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].args(), ["1"]);
        assert_eq!(t[0].children()[0].children()[0].keyword(), "c");
        assert!(t[1].block.is_none());
    }

    #[test]
    fn unbalanced_braces_are_reported_with_lines() {
        let mut d = Diags::default();
        build(
            vec![line(1, "}"), line(2, "a"), line(2, "{"), line(3, "b")],
            &mut d,
        );
        let e: Vec<String> = d.errors().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            [
                "(t.conf: Line 1) Extra '}' found",
                "(t.conf: Line 2) 'a' block has no closing '}' before the end of the configuration"
            ]
        );
    }
}
