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

/// How deep blocks may nest. keepalived's own configurations go five
/// deep (`virtual_server`, `real_server`, `HTTP_GET`, `url`); a deeper
/// block is ignored with an error. Without a limit, a file included over
/// and over could nest blocks without bound and overflow the stack (found
/// by fuzzing: fuzz/regressions/keepalived_conf/blocks-nested-through-includes).
pub const MAX_DEPTH: usize = 32;

type Lines = std::iter::Peekable<std::vec::IntoIter<Line>>;

pub fn build(lines: Vec<Line>, diags: &mut Diags) -> Vec<Node> {
    let mut it = lines.into_iter().peekable();
    seq(&mut it, None, 0, diags)
}

/// The lines up to the `}` that closes `opened` (all of them when it is
/// `None`), as nodes; `depth`: how many blocks are open around them.
fn seq(it: &mut Lines, opened: Option<&Node>, depth: usize, diags: &mut Diags) -> Vec<Node> {
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
            block(it, &stray, depth, diags);
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
            match block(it, &node, depth, diags) {
                Some(b) => node.block = Some(b),
                // Too deep: the keyword goes with its block.
                None => continue,
            }
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

/// The block `opened` owns (its `{` just read, `depth` blocks around
/// it), or `None` when it is nested too deep: then its lines up to the
/// matching `}` are skipped, one error for them all.
fn block(it: &mut Lines, opened: &Node, depth: usize, diags: &mut Diags) -> Option<Vec<Node>> {
    if depth < MAX_DEPTH {
        return Some(seq(it, Some(opened), depth + 1, diags));
    }
    diags.error(
        &opened.pos,
        format!(
            "'{}' block nested more than {MAX_DEPTH} deep - ignoring it",
            opened.raw
        ),
    );
    // Skipped without recursion: by counting.
    let mut open = 1usize;
    for line in it.by_ref() {
        if line.is_open() {
            open += 1;
        } else if line.is_close() {
            open -= 1;
            if open == 0 {
                return None;
            }
        }
    }
    diags.error(
        &opened.pos,
        format!(
            "'{}' block has no closing '}}' before the end of the configuration",
            opened.raw
        ),
    );
    None
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

    /// Blocks nested past `MAX_DEPTH` are skipped with one error, and the
    /// lines after them are read as usual; 100 000 levels (what files
    /// included over and over can make) do not overflow the stack.
    #[test]
    fn blocks_nested_too_deep_are_ignored() {
        for levels in [MAX_DEPTH + 3, 100_000] {
            let mut lines = Vec::new();
            for i in 0..levels {
                lines.push(line(i + 1, &format!("k{i}")));
                lines.push(line(i + 1, "{"));
            }
            lines.extend((0..levels).map(|i| line(levels + i + 1, "}")));
            lines.push(line(2 * levels + 1, "after"));
            let mut d = Diags::default();
            let t = build(lines, &mut d);
            let errors: Vec<String> = d.errors().map(|e| e.to_string()).collect();
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0].contains(&format!("'k{MAX_DEPTH}' block nested more than")),
                "{errors:?}"
            );
            assert_eq!(t.len(), 2, "the outermost block and the line after it");
            assert_eq!(t[1].keyword(), "after");
            let mut depth = 0;
            let mut n = &t[0];
            while let Some(c) = n.children().first() {
                n = c;
                depth += 1;
            }
            assert_eq!(depth, MAX_DEPTH - 1, "kept down to the limit");
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
