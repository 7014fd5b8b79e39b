//! Compares the kernel's transcript with rvs's.
//!
//! Why this file is long (about 560 lines): the comparison is about 400
//! lines; the rest is its tests.
//!
//! Lines must be equal, with three allowances, each visible in the result:
//! - deliberate differences (`oracle/deliberate.toml`, each with its
//!   reason, also listed in docs/ipvsadm-behaviour.md) are normalised away
//!   on both sides and counted as explained;
//! - connection entries' expiry (`-Lc`) may differ by [`EXPIRY_SLACK_S`]: the
//!   two runs read them at slightly different moments;
//! - steps marked `compare = "shape"` compare lines with numbers masked.

use std::path::Path;

use anyhow::{Context, Result};
use regex::Regex;
use serde::Deserialize;
use similar::{capture_diff_slices, Algorithm, DiffOp};

use crate::scenario::CompareMode;
use crate::transcript::Transcript;

pub const EXPIRY_SLACK_S: i64 = 2;
/// `near` steps: numbers may differ by this much...
pub const NEAR_ABS: u64 = 2;
/// ...or by this share of the larger one, or by the share a count on the
/// same line differs by (see [`numbers_near`]).
pub const NEAR_REL: f64 = 0.05;

/// Whether the numbers of two lines agree within the `near` tolerance:
/// each within [`NEAR_ABS`], or within a share of the larger number, that
/// share being [`NEAR_REL`] or, if larger, the share by which a number on
/// the line that is within `NEAR_ABS` differs from the smaller of its two
/// values. Counters move together: two delayed ACKs more are 2 of 25
/// packets and 104 of 1340 bytes (kernel-vm CI, listing/stats-dr, 3
/// December), while a byte count off with its packets equal stays a
/// difference.
fn numbers_near(a: &str, b: &str, digits: &Regex) -> bool {
    let nums = |s: &str| -> Vec<u64> {
        digits
            .find_iter(s)
            .map(|m| m.as_str().parse().unwrap_or(u64::MAX))
            .collect()
    };
    let (x, y) = (nums(a), nums(b));
    let pairs = || x.iter().zip(&y).map(|(&p, &q)| (p, q, p.abs_diff(q)));
    let share = pairs()
        .filter(|&(p, q, d)| d <= NEAR_ABS && p.min(q) > 0)
        .map(|(p, q, d)| d as f64 / p.min(q) as f64)
        .fold(NEAR_REL, f64::max);
    x.len() == y.len()
        && pairs().all(|(p, q, d)| d <= NEAR_ABS || (d as f64) <= share * p.max(q) as f64)
}

/// A difference between rvs and the kernel that rvs keeps on purpose.
#[derive(Debug, Clone)]
pub struct Deliberate {
    pub what: String,
    pub why: String,
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    /// Whole steps that name it (`explained_by`) may differ.
    Step { name: String },
    /// Lines matching `pattern` are rewritten with `replace`.
    Rewrite { pattern: Regex, replace: String },
    /// The run of lines matching `rows` right after a line matching `after`
    /// is compared as a set (sorted).
    Unordered { after: Regex, rows: Regex },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliberateFile {
    #[serde(rename = "difference")]
    differences: Vec<DeliberateEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliberateEntry {
    what: String,
    why: String,
    /// A regex over one line; lines it matches, on either side, are
    /// rewritten with `replace` before comparing.
    pattern: Option<String>,
    replace: Option<String>,
    /// Or: the lines matching `rows` that follow a line matching `after`
    /// are sorted on both sides before comparing.
    after: Option<String>,
    rows: Option<String>,
    /// Or: steps with `explained_by = NAME` may differ (for what no line
    /// rewrite can express).
    name: Option<String>,
}

pub fn load_deliberate(path: &Path) -> Result<Vec<Deliberate>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: DeliberateFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    f.differences
        .into_iter()
        .map(|d| {
            let re = |s: &str| Regex::new(s).with_context(|| format!("a regex of {:?}", d.what));
            let rule = match (&d.pattern, &d.replace, &d.after, &d.rows, &d.name) {
                (Some(p), Some(r), None, None, None) => Rule::Rewrite {
                    pattern: re(p)?,
                    replace: r.clone(),
                },
                (None, None, Some(a), Some(r), None) => Rule::Unordered {
                    after: re(a)?,
                    rows: re(r)?,
                },
                (None, None, None, None, Some(n)) => Rule::Step { name: n.clone() },
                _ => anyhow::bail!(
                    "{:?}: give pattern and replace, or after and rows, or name",
                    d.what
                ),
            };
            Ok(Deliberate {
                what: d.what,
                why: d.why,
                rule,
            })
        })
        .collect()
}

impl Deliberate {
    /// The name steps use to point at it (`explained_by`), if it is a
    /// step-level difference.
    pub fn step_name(&self) -> Option<&str> {
        match &self.rule {
            Rule::Step { name } => Some(name),
            _ => None,
        }
    }
}

/// The verdict on one scenario.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rendered differences, empty when the runs agree.
    pub diff: Vec<String>,
    /// Which deliberate differences showed up, and how often.
    pub explained: Vec<(String, usize)>,
    pub lines: usize,
}

impl Outcome {
    pub fn agrees(&self) -> bool {
        self.diff.is_empty()
    }

    pub fn explained_count(&self) -> usize {
        self.explained.iter().map(|(_, n)| n).sum()
    }
}

fn expiry_re() -> Regex {
    // A -Lc row: protocol, then mm:ss.
    Regex::new(r"^(TCP|UDP|SCTP|IP) +(\d\d):(\d\d) ").expect("literal")
}

struct Line<'a> {
    raw: &'a str,
    /// After deliberate normalisation.
    norm: String,
    /// What the diff matches on (expiry or numbers masked).
    key: String,
    expiry_s: Option<i64>,
    /// Indexes of the deliberate rules that changed it.
    rules: Vec<usize>,
}

/// Sorts the unordered blocks of a section; returns the lines and which
/// rules reordered something.
fn reorder(lines: &[String], rules: &[Deliberate]) -> (Vec<String>, Vec<usize>) {
    let mut out = lines.to_vec();
    let mut used = Vec::new();
    let clock = Regex::new(r"\d\d:\d\d").expect("literal");
    for (ri, r) in rules.iter().enumerate() {
        let Rule::Unordered { after, rows } = &r.rule else {
            continue;
        };
        let mut i = 0;
        while i < out.len() {
            if after.is_match(&out[i]) {
                let start = i + 1;
                let mut end = start;
                while end < out.len() && rows.is_match(&out[end]) {
                    end += 1;
                }
                let before = out[start..end].to_vec();
                // By everything but the expiry time, which may differ by the
                // slack and must not decide the order.
                out[start..end].sort_by_key(|l| clock.replace(l, "").into_owned());
                if out[start..end] != before[..] {
                    used.push(ri);
                }
                i = end;
            } else {
                i += 1;
            }
        }
    }
    (out, used)
}

fn prepare<'a>(
    raw: &'a str,
    mode: CompareMode,
    rules: &[Deliberate],
    exp: &Regex,
    digits: &Regex,
) -> Line<'a> {
    let mut norm = raw.to_string();
    let mut used = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let Rule::Rewrite { pattern, replace } = &r.rule else {
            continue;
        };
        if pattern.is_match(&norm) {
            let n = pattern.replace_all(&norm, replace.as_str()).into_owned();
            if n != norm {
                used.push(i);
                norm = n;
            }
        }
    }
    let (key, expiry_s) = match mode {
        // Numbers masked, and runs of spaces taken as one: a column pads a
        // value to its width (ipvsadm's %8llu), so a value one digit wider
        // has one space less before it. Words and their order are compared;
        // values and widths are not (exact steps check widths).
        CompareMode::Shape | CompareMode::Near => (
            digits
                .replace_all(&norm, "#")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            None,
        ),
        CompareMode::Exact => match exp.captures(&norm) {
            Some(c) => {
                let s = c[2].parse::<i64>().unwrap_or(0) * 60 + c[3].parse::<i64>().unwrap_or(0);
                let masked = format!(
                    "{} ~~:~~ {}",
                    &c[1],
                    &norm[c.get(0).expect("whole").end()..]
                );
                (masked, Some(s))
            }
            None => (norm.clone(), None),
        },
    };
    Line {
        raw,
        norm,
        key,
        expiry_s,
        rules: used,
    }
}

/// Compares two transcripts of one scenario. A run that failed (an `error`
/// section) is a difference even when both failed alike.
pub fn compare(kernel: &Transcript, rvs: &Transcript, rules: &[Deliberate]) -> Outcome {
    let failed: Vec<&str> = [("kernel", kernel), ("rvs", rvs)]
        .iter()
        .filter(|(_, t)| t.sections.iter().any(|s| s.kind == "error"))
        .map(|(n, _)| *n)
        .collect();
    if !failed.is_empty() {
        let mut out = Outcome::default();
        for (n, t) in [("kernel", kernel), ("rvs", rvs)] {
            for s in t.sections.iter().filter(|s| s.kind == "error") {
                out.diff
                    .push(format!("the {n} run failed: {}", s.lines.join(" / ")));
            }
        }
        return out;
    }
    let exp = expiry_re();
    let digits = Regex::new(r"\d+").expect("literal");
    let mut out = Outcome::default();
    let mut counts = vec![0usize; rules.len()];
    let n = kernel.sections.len().max(rvs.sections.len());
    for i in 0..n {
        let (Some(k), Some(r)) = (kernel.sections.get(i), rvs.sections.get(i)) else {
            out.diff.push(format!(
                "step {}: only one run got this far (kernel {} steps, rvs {})",
                i + 1,
                kernel.sections.len(),
                rvs.sections.len()
            ));
            break;
        };
        let (ko, k_reordered) = reorder(&k.lines, rules);
        let (ro, r_reordered) = reorder(&r.lines, rules);
        if ko != k.lines || ro != r.lines {
            // Count a reordering once per section, when the raw orders differ.
            if k.lines != r.lines {
                let mut used: Vec<usize> = k_reordered.into_iter().chain(r_reordered).collect();
                used.sort_unstable();
                used.dedup();
                for u in used {
                    counts[u] += 1;
                }
            }
        }
        let kl: Vec<Line> = ko
            .iter()
            .map(|l| prepare(l, k.mode, rules, &exp, &digits))
            .collect();
        let rl: Vec<Line> = ro
            .iter()
            .map(|l| prepare(l, k.mode, rules, &exp, &digits))
            .collect();
        out.lines += kl.len().max(rl.len());
        let kk: Vec<&str> = kl.iter().map(|l| l.key.as_str()).collect();
        let rk: Vec<&str> = rl.iter().map(|l| l.key.as_str()).collect();
        let mut hunk: Vec<String> = Vec::new();
        for op in capture_diff_slices(Algorithm::Myers, &kk, &rk) {
            match op {
                DiffOp::Equal {
                    old_index,
                    new_index,
                    len,
                } => {
                    for j in 0..len {
                        let (a, b) = (&kl[old_index + j], &rl[new_index + j]);
                        let within = match (a.expiry_s, b.expiry_s) {
                            (Some(x), Some(y)) => (x - y).abs() <= EXPIRY_SLACK_S,
                            _ if k.mode == CompareMode::Near => {
                                numbers_near(&a.norm, &b.norm, &digits)
                            }
                            _ => true,
                        };
                        if !within {
                            hunk.push(format!("-{}", a.raw));
                            hunk.push(format!("+{}", b.raw));
                        } else if a.raw != b.raw && a.norm == b.norm {
                            let mut used: Vec<usize> =
                                a.rules.iter().chain(&b.rules).copied().collect();
                            used.sort_unstable();
                            used.dedup();
                            for u in used {
                                counts[u] += 1;
                            }
                        }
                    }
                }
                DiffOp::Delete {
                    old_index, old_len, ..
                } => {
                    for l in &kl[old_index..old_index + old_len] {
                        hunk.push(format!("-{}", l.raw));
                    }
                }
                DiffOp::Insert {
                    new_index, new_len, ..
                } => {
                    for l in &rl[new_index..new_index + new_len] {
                        hunk.push(format!("+{}", l.raw));
                    }
                }
                DiffOp::Replace {
                    old_index,
                    old_len,
                    new_index,
                    new_len,
                } => {
                    for l in &kl[old_index..old_index + old_len] {
                        hunk.push(format!("-{}", l.raw));
                    }
                    for l in &rl[new_index..new_index + new_len] {
                        hunk.push(format!("+{}", l.raw));
                    }
                }
            }
        }
        let excused = k.explained_by.as_ref().and_then(|n| {
            rules
                .iter()
                .position(|r| matches!(&r.rule, Rule::Step { name } if name == n))
        });
        if let (false, Some(u)) = (hunk.is_empty(), excused) {
            counts[u] += 1;
            hunk.clear();
        }
        if !hunk.is_empty() {
            // The command that produced it, for context.
            let cmd = k.lines.iter().find(|l| l.starts_with("$ ")).cloned();
            out.diff.push(format!(
                "step {} ({}{}): -kernel +rvs",
                k.step,
                k.kind,
                cmd.map(|c| format!(", first command {c}"))
                    .unwrap_or_default()
            ));
            out.diff.extend(hunk.into_iter().map(|h| format!("  {h}")));
        }
    }
    out.explained = rules
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|(r, c)| (r.what.clone(), c))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(lines: &[&str]) -> Transcript {
        let mut t = Transcript::default();
        t.push(
            1,
            "admin",
            CompareMode::Exact,
            lines.iter().map(|s| s.to_string()).collect(),
        );
        t
    }

    fn size_rule() -> Vec<Deliberate> {
        vec![Deliberate {
            what: "table size".into(),
            why: "ours".into(),
            rule: Rule::Rewrite {
                pattern: Regex::new(r"\(size=\d+\)").unwrap(),
                replace: "(size=N)".into(),
            },
        }]
    }

    #[test]
    fn unordered_blocks_compare_as_sets() {
        let rules = vec![Deliberate {
            what: "row order".into(),
            why: "hash order".into(),
            rule: Rule::Unordered {
                after: Regex::new("^pro expire").unwrap(),
                rows: Regex::new("^TCP ").unwrap(),
            },
        }];
        let a = t(&["pro expire", "TCP 00:10 a", "TCP 00:10 b", "[exit 0]"]);
        let b = t(&["pro expire", "TCP 00:10 b", "TCP 00:10 a", "[exit 0]"]);
        let o = compare(&a, &b, &rules);
        assert!(o.agrees(), "{:?}", o.diff);
        assert_eq!(o.explained, vec![("row order".to_string(), 1)]);
        let c = t(&["pro expire", "TCP 00:10 b", "TCP 00:10 c", "[exit 0]"]);
        assert!(!compare(&a, &c, &rules).agrees());
    }

    #[test]
    fn equal_transcripts_agree() {
        let a = t(&["$ ipvsadm -Ln", "[exit 0]", "x"]);
        let o = compare(&a, &a, &[]);
        assert!(o.agrees());
        assert_eq!(o.explained_count(), 0);
    }

    #[test]
    fn a_deliberate_difference_is_explained_and_counted() {
        let a = t(&["IP Virtual Server version 1.2.1 (size=4096)"]);
        let b = t(&["IP Virtual Server version 1.2.1 (size=65536)"]);
        let o = compare(&a, &b, &size_rule());
        assert!(o.agrees(), "{:?}", o.diff);
        assert_eq!(o.explained, vec![("table size".to_string(), 1)]);
        let o = compare(&a, &b, &[]);
        assert!(!o.agrees());
        assert!(o.diff.iter().any(|l| l.contains("-IP Virtual Server")));
    }

    #[test]
    fn expiry_may_differ_by_the_slack_only() {
        let row = |e: &str| {
            format!("TCP {e}  ESTABLISHED 192.168.1.100:20000 192.168.1.10:80    192.168.1.220:80")
        };
        let a = t(&[&row("14:59")]);
        assert!(compare(&a, &t(&[&row("14:58")]), &[]).agrees());
        assert!(compare(&a, &t(&[&row("15:01")]), &[]).agrees());
        let o = compare(&a, &t(&[&row("14:50")]), &[]);
        assert!(!o.agrees());
        let other_state = row("14:59").replace("ESTABLISHED", "SYN_RECV   ");
        assert!(!compare(&a, &t(&[&other_state]), &[]).agrees());
    }

    #[test]
    fn shape_mode_masks_numbers_but_not_words() {
        let mut a = Transcript::default();
        a.push(
            1,
            "admin",
            CompareMode::Shape,
            vec!["TCP 192.168.1.10:80  12  3K".into()],
        );
        let mut b = Transcript::default();
        b.push(
            1,
            "admin",
            CompareMode::Shape,
            vec!["TCP 192.168.1.10:80  9  1K".into()],
        );
        assert!(compare(&a, &b, &[]).agrees());
        b.sections[0].lines[0] = "UDP 192.168.1.10:80  9  1K".into();
        assert!(!compare(&a, &b, &[]).agrees());
        // Right-aligned columns: the value's width moves into its padding.
        let rate = |v: &str| format!("  -> 192.168.1.193:80     0 {v:>8}        0");
        let mut a = Transcript::default();
        a.push(1, "admin", CompareMode::Shape, vec![rate("11")]);
        let mut b = Transcript::default();
        b.push(1, "admin", CompareMode::Shape, vec![rate("9")]);
        assert!(compare(&a, &b, &[]).agrees());
        b.sections[0].lines[0] = rate("9").replace("->", "=>");
        assert!(!compare(&a, &b, &[]).agrees());
    }

    #[test]
    fn a_step_may_name_the_difference_that_explains_it() {
        let rules = vec![Deliberate {
            what: "routing".into(),
            why: "not a router".into(),
            rule: Rule::Step {
                name: "routing".into(),
            },
        }];
        let mut a = t(&["to client"]);
        let mut b = t(&["dropped"]);
        assert!(!compare(&a, &b, &rules).agrees());
        a.sections[0].explained_by = Some("routing".into());
        b.sections[0].explained_by = Some("routing".into());
        let o = compare(&a, &b, &rules);
        assert!(o.agrees());
        assert_eq!(o.explained, vec![("routing".to_string(), 1)]);
    }

    #[test]
    fn near_mode_allows_a_packet_more_but_not_a_connection_split() {
        let mut a = Transcript::default();
        let row = |c: &str, p: &str| {
            format!("TCP  192.168.1.10:80 {c:>9} {p:>8}        0     2680        0")
        };
        a.push(1, "admin", CompareMode::Near, vec![row("10", "50")]);
        let mut b = Transcript::default();
        b.push(1, "admin", CompareMode::Near, vec![row("10", "51")]);
        assert!(compare(&a, &b, &[]).agrees());
        b.sections[0].lines[0] = row("10", "60");
        assert!(!compare(&a, &b, &[]).agrees());
        b.sections[0].lines[0] = row("14", "50");
        assert!(!compare(&a, &b, &[]).agrees());
    }

    /// Bytes move with packets: two ACKs more are near (as CI saw), the
    /// same bytes more with the packets equal are not.
    #[test]
    fn near_mode_lets_bytes_follow_the_packets() {
        let row = |p: &str, bytes: &str| {
            format!(
                "  -> 192.168.1.220:80 {:>18} {p:>8}        0 {bytes:>8}        0",
                5
            )
        };
        let mut a = Transcript::default();
        a.push(1, "admin", CompareMode::Near, vec![row("25", "1340")]);
        let mut b = Transcript::default();
        b.push(1, "admin", CompareMode::Near, vec![row("27", "1444")]);
        assert!(compare(&a, &b, &[]).agrees());
        b.sections[0].lines[0] = row("25", "1444");
        assert!(!compare(&a, &b, &[]).agrees());
        b.sections[0].lines[0] = row("27", "1800");
        assert!(!compare(&a, &b, &[]).agrees());
    }

    #[test]
    fn failed_runs_never_agree() {
        let mut a = Transcript::default();
        a.push(0, "error", CompareMode::Exact, vec!["run failed: x".into()]);
        let o = compare(&a, &a.clone(), &[]);
        assert!(!o.agrees());
        assert_eq!(o.diff.len(), 2);
    }

    #[test]
    fn a_run_that_stopped_early_is_a_difference() {
        let a = t(&["x"]);
        let b = Transcript::default();
        assert!(!compare(&a, &b, &[]).agrees());
    }
}
