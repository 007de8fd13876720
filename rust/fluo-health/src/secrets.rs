//! Finding secrets in text (pod logs) and redacting them.
//!
//! Each pattern marks the secret part of a match (capture group `secret`, or the whole match);
//! only that part is replaced by `[REDACTED]`, so a finding still shows where and what kind of
//! secret leaked without repeating it.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

pub const REDACTED: &str = "[REDACTED]";

struct Pattern {
    kind: &'static str,
    regex: Regex,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind, re: &str| Pattern {
        kind,
        regex: Regex::new(re).expect("secret patterns are valid regexes"),
    };
    vec![
        p("private key", r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
        p(
            "aws access key",
            r"\b(?P<secret>(?:AKIA|ASIA)[0-9A-Z]{16})\b",
        ),
        p(
            "github token",
            r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,})\b",
        ),
        p("slack token", r"\b(?P<secret>xox[abprs]-[A-Za-z0-9-]{10,})"),
        p(
            "jwt",
            r"\b(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
        ),
        p(
            "url credentials",
            r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:(?P<secret>[^/\s@]{3,})@",
        ),
        p(
            "bearer token",
            r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)",
        ),
        p(
            "credential assignment",
            r#"(?i)\b[a-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)["']?\s*[:=]\s*["']?(?P<secret>[^\s"',;}&]{6,})"#,
        ),
    ]
});

/// Values that are already masked or are placeholders are not leaks.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '[' || c == ']' || c == '<' || c == '>');
    v.chars().all(|c| c == '*' || c == 'x' || c == 'X')
        || v.eq_ignore_ascii_case("redacted")
        || v.starts_with("${")
        || v.starts_with("$(")
}

/// One secret found on one line; `excerpt` is the line with the secret redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub line: usize,
    pub kind: &'static str,
    pub excerpt: String,
}

/// Byte ranges of secrets on one line, with their kind, sorted and not overlapping.
fn secret_spans(line: &str) -> Vec<(usize, usize, &'static str)> {
    let mut spans: Vec<(usize, usize, &'static str)> = Vec::new();
    for pattern in PATTERNS.iter() {
        for caps in pattern.regex.captures_iter(line) {
            let m = caps
                .name("secret")
                .unwrap_or_else(|| caps.get(0).expect("group 0 always matches"));
            if caps.name("secret").is_some() && is_placeholder(m.as_str()) {
                continue;
            }
            if spans.iter().any(|(s, e, _)| m.start() < *e && *s < m.end()) {
                continue;
            }
            spans.push((m.start(), m.end(), pattern.kind));
        }
    }
    spans.sort_by_key(|(s, _, _)| *s);
    spans
}

fn redact_spans(line: &str, spans: &[(usize, usize, &'static str)]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    for (start, end, _) in spans {
        out.push_str(&line[at..*start]);
        out.push_str(REDACTED);
        at = *end;
    }
    out.push_str(&line[at..]);
    out
}

/// Every secret in `text`, line numbers starting at 1, one finding per line (the first kind).
pub fn scan(text: &str) -> Vec<Finding> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let spans = secret_spans(line);
            let kind = spans.first()?.2;
            Some(Finding {
                line: i + 1,
                kind,
                excerpt: redact_spans(line, &spans),
            })
        })
        .collect()
}

/// `text` with every secret replaced by `[REDACTED]`.
pub fn redact(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| redact_spans(line, &secret_spans(line)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_redacts_each_kind() {
        let cases = [
            (
                "password=hunter22x",
                "password=[REDACTED]",
                "credential assignment",
            ),
            (
                r#"{"api_key": "sk_live_0123456789"}"#,
                r#"{"api_key": "[REDACTED]"}"#,
                "credential assignment",
            ),
            (
                "DB_PASSWORD: 's3cr3t!!'",
                "DB_PASSWORD: '[REDACTED]'",
                "credential assignment",
            ),
            (
                "connecting to nats://fluo:natspass@nats:4222",
                "connecting to nats://fluo:[REDACTED]@nats:4222",
                "url credentials",
            ),
            (
                "key AKIAIOSFODNN7EXAMPLE used",
                "key [REDACTED] used",
                "aws access key",
            ),
            (
                "Authorization: Bearer abcdefghijklmnop0123",
                "Authorization: Bearer [REDACTED]",
                "bearer token",
            ),
            (
                "token ghp_0123456789abcdefghijABCDEFGHIJ012345",
                "token [REDACTED]",
                "github token",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----",
                "[REDACTED]",
                "private key",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz",
                "jwt [REDACTED]",
                "jwt",
            ),
        ];
        for (line, redacted, kind) in cases {
            let findings = scan(line);
            assert_eq!(findings.len(), 1, "{line}");
            assert_eq!(findings[0].kind, kind, "{line}");
            assert_eq!(findings[0].excerpt, redacted, "{line}");
            assert_eq!(redact(line), redacted);
        }
    }

    #[test]
    fn ordinary_log_lines_and_placeholders_are_not_findings() {
        let log = "\
INFO listening on 0.0.0.0:8080
INFO job 3f2a completed in 12ms
password=[REDACTED]
token: ********
DEBUG token refreshed
api_key=${API_KEY}
GET /health 200";
        assert_eq!(scan(log), []);
        assert_eq!(redact(log), log);
    }

    #[test]
    fn findings_carry_line_numbers_and_never_the_secret() {
        let log = "start\nuser=admin password=topsecret1\nend\n";
        let findings = scan(log);
        assert_eq!(
            findings,
            [Finding {
                line: 2,
                kind: "credential assignment",
                excerpt: "user=admin password=[REDACTED]".into()
            }]
        );
        assert!(!redact(log).contains("topsecret1"));
        assert!(redact(log).ends_with("end\n"));
    }
}
