//! Rules files: one rvsadm command per line, as `rvsadm -S` writes them and
//! `rvsadm -R` reads them (Debian's ipvsadm keeps `/etc/ipvsadm.rules` the
//! same way). rvsd reads its `[control] rules` file with [`parse_file`].

use rvs_ipvs::Command;

use crate::parse::{self, Action, ParseError};

/// The words of one line: `#` starts a comment, and a leading `ipvsadm` or
/// `rvsadm` (files written as shell scripts) is dropped. None for a line
/// that says nothing.
pub fn words(line: &str) -> Option<Vec<String>> {
    let line = line.split('#').next().unwrap_or("");
    let mut words: Vec<String> = line.split_whitespace().map(String::from).collect();
    if words
        .first()
        .is_some_and(|w| w == "ipvsadm" || w == "rvsadm")
    {
        words.remove(0);
    }
    (!words.is_empty()).then_some(words)
}

/// One command of a rules file and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// 1-based.
    pub line: usize,
    /// The line as written (without its end of line).
    pub text: String,
    pub command: Command,
}

/// Why a rules file was refused: the line, and ipvsadm's message for it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct RuleError {
    pub line: usize,
    pub text: String,
    pub msg: String,
}

/// Every command of a rules file, in order. The first line that does not
/// parse, or that is not a table command, is the error.
pub fn parse_file(text: &str) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(words) = words(line) else { continue };
        let err = |msg: String| RuleError {
            line: i + 1,
            text: line.to_string(),
            msg,
        };
        match parse::parse(&words, "rvsadm") {
            Ok(Action::Apply(command)) => rules.push(Rule {
                line: i + 1,
                text: line.to_string(),
                command,
            }),
            Ok(Action::SetTimeouts { .. }) => {
                return Err(err(
                    "--set does not belong in a rules file: put the timeouts in rvsd.toml \
([connections] tcp_timeout_s, tcp_fin_timeout_s, udp_timeout_s)"
                        .into(),
                ))
            }
            Ok(_) => {
                return Err(err(
                    "only table commands (-A -E -D -C -a -e -d) belong in a rules file".into(),
                ))
            }
            Err(e) if e == ParseError::try_help("rvsadm") => return Err(err(
                "not an rvsadm command line (the first option must be a command, such as -A or -a)"
                    .into(),
            )),
            Err(ParseError { msg, .. }) => return Err(err(msg.trim_end().to_string())),
        }
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_prefixes() {
        let text = "# saved by rvsadm -S -n\n\n-A -t 10.0.0.1:80 -s rr\n\
ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 2   # web 1\n\
rvsadm -a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1\n";
        let rules = parse_file(text).unwrap();
        assert_eq!(rules.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 4, 5]);
        assert!(matches!(rules[0].command, Command::AddService(ref s) if s.scheduler == "rr"));
        assert!(matches!(rules[1].command, Command::AddDest(_, d) if d.weight == 2));
        assert_eq!(
            rules[2].text,
            "rvsadm -a -t 10.0.0.1:80 -r 10.0.0.3:80 -m -w 1"
        );
        assert_eq!(parse_file("").unwrap(), []);
        assert_eq!(parse_file("# nothing\n   \n").unwrap(), []);
    }

    #[test]
    fn errors_name_the_line_with_ipvsadms_message() {
        let e = parse_file("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.0.2 -w x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.msg, "illegal weight specified");
        assert_eq!(e.to_string(), "line 2: illegal weight specified");
        let e = parse_file("-A -t 10.0.0.1:80\n\n-Ln\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("table commands"), "{}", e.msg);
        let e = parse_file("--set 10 10 10\n").unwrap_err();
        assert!(e.msg.contains("rvsd.toml"), "{}", e.msg);
        let e = parse_file("garbage\n").unwrap_err();
        assert!(e.msg.starts_with("not an rvsadm command line"), "{}", e.msg);
    }
}
