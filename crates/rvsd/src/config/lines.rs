//! Where a key is in a TOML text, so that errors found after parsing can
//! name the line as toml's own errors do.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// The 1-based line of a byte offset.
pub fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of a dotted key (`workers.lcores`, `port.1.address`,
/// `neighbours.static.0.mac`; numbers index arrays). A key the text leaves
/// out (a default) gives the line of the nearest part it has; None when it
/// has none of it or does not parse.
pub fn line_of(text: &str, key: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut found: Option<Range<usize>> = None;
    let mut node = Node::Table(doc.as_table());
    for seg in key.split('.') {
        let (next, span) = match (node, seg.parse::<usize>()) {
            (Node::Table(t), _) => match t.get(seg) {
                Some(item) => (item_node(item), t.key(seg).and_then(|k| k.span())),
                None => break,
            },
            (Node::Tables(ts), Ok(i)) => match ts.get(i) {
                Some(t) => (Node::Table(t), t.span()),
                None => break,
            },
            (Node::Value(Value::Array(a)), Ok(i)) => match a.get(i) {
                Some(v) => (Node::Value(v), v.span()),
                None => break,
            },
            (Node::Value(Value::InlineTable(t)), _) => match t.get(seg) {
                Some(v) => (Node::Value(v), t.key(seg).and_then(|k| k.span())),
                None => break,
            },
            _ => break,
        };
        if span.is_some() {
            found = span;
        }
        node = next;
    }
    found.map(|r| line_at(text, r.start))
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Tables(&'a toml_edit::ArrayOfTables),
    Value(&'a Value),
    Other,
}

fn item_node(item: &Item) -> Node<'_> {
    match item {
        Item::Table(t) => Node::Table(t),
        Item::ArrayOfTables(a) => Node::Tables(a),
        Item::Value(v) => Node::Value(v),
        Item::None => Node::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# a comment
[dpdk]
memory_mb = 256

[[port]]
name = \"a\"
address = \"10.0.0.1/24\"

[[port]]
name = \"b\"
address = \"10.0.1.1\"

[workers]
lcores = [1]

[neighbours]
static = [
  { address = \"10.0.0.2\", mac = \"02:00:00:00:00:02\" },
  { address = \"10.0.0.3\", mac = \"zz\" },
]
";

    #[test]
    fn keys_tables_and_arrays() {
        assert_eq!(line_of(TEXT, "dpdk.memory_mb"), Some(3));
        assert_eq!(line_of(TEXT, "port.1.address"), Some(11));
        assert_eq!(line_of(TEXT, "port.0.address"), Some(7));
        assert_eq!(line_of(TEXT, "workers.lcores"), Some(14));
        assert_eq!(line_of(TEXT, "neighbours.static.1.mac"), Some(19));
        // Left out: the nearest part that is there.
        assert_eq!(line_of(TEXT, "port.1.address6"), Some(9));
        assert_eq!(line_of(TEXT, "workers.idle_sleep_us"), Some(13));
        assert_eq!(line_of(TEXT, "control.socket"), None);
        assert_eq!(line_of("not toml [", "a"), None);
        assert_eq!(line_at("a\nb\nc", 2), 2);
    }
}
