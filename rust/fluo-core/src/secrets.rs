//! Finding secrets in text: known credential formats (private keys, cloud, chat and code-host
//! tokens, JWTs, credentials in URLs, bearer tokens) and `password=...`-style assignments.
//!
//! The detector returns byte spans covering only the secret part of a match (capture group
//! `secret`, or the whole match), so a log line can be redacted while still showing what kind
//! of secret leaked and where, and a manifest value can be flagged for holding one. Text is
//! scanned line by line: no secret spans a line break.

use std::sync::LazyLock;

use regex::Regex;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// One secret in a text: bytes `start..end`, and the kind of secret (`"url credentials"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
}

struct Pattern {
    kind: &'static str,
    regex: Regex,
}

/// In order of precedence: where two patterns match the same bytes, the earlier one names it.
static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind, re: &str| Pattern {
        kind,
        regex: Regex::new(re).expect("secret patterns are valid regexes"),
    };
    vec![
        p("private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        p(
            "aws access key",
            r"\b(?P<secret>(?:AKIA|ASIA)[0-9A-Z]{16})\b",
        ),
        p("github token", r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,})"),
        p("slack token", r"\b(?P<secret>xox[abprs]-[A-Za-z0-9-]{10,})"),
        p(
            "jwt",
            r"\b(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})",
        ),
        p("google api key", r"\b(?P<secret>AIza[0-9A-Za-z_-]{35})"),
        p(
            "stripe secret key",
            r"\b(?P<secret>[sr]k_live_[0-9A-Za-z]{16,})",
        ),
        p(
            "url credentials",
            r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:(?P<secret>[^/\s@]+)@",
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

/// Values that are already masked (`****`, `[REDACTED]`) or name where the secret comes from
/// (`${API_KEY}`, `$(ADMIN_PASSWORD)`) are not secrets.
fn is_masked_or_reference(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '[' || c == ']' || c == '<' || c == '>');
    v.chars().all(|c| c == '*' || c == 'x' || c == 'X')
        || v.eq_ignore_ascii_case("redacted")
        || v.starts_with("${")
        || v.starts_with("$(")
}

/// The secrets on one line, offsets relative to `offset`.
fn find_in_line(line: &str, offset: usize, spans: &mut Vec<Span>) {
    let first = spans.len();
    for pattern in PATTERNS.iter() {
        for caps in pattern.regex.captures_iter(line) {
            let secret = caps.name("secret");
            let m = secret.unwrap_or_else(|| caps.get(0).expect("group 0 always matches"));
            if secret.is_some() && is_masked_or_reference(m.as_str()) {
                continue;
            }
            let (start, end) = (offset + m.start(), offset + m.end());
            if spans[first..]
                .iter()
                .any(|s| start < s.end && s.start < end)
            {
                continue;
            }
            spans.push(Span {
                start,
                end,
                kind: pattern.kind,
            });
        }
    }
    spans[first..].sort_by_key(|s| s.start);
}

/// Every secret in `text`, in order, not overlapping.
pub fn find(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        find_in_line(line, offset, &mut spans);
        offset += line.len();
    }
    spans
}

/// `text` with every secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in find(text) {
        out.push_str(&text[at..span.start]);
        out.push_str(REDACTED);
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<&'static str> {
        find(text).into_iter().map(|s| s.kind).collect()
    }

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
                "dsn postgres://app:hunter2@db:5432/app",
                "dsn postgres://app:[REDACTED]@db:5432/app",
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
                "ci ghp_abcdefghijklmnopqrstuvwxyz0123456789AB_x",
                "ci [REDACTED]_x",
                "github token",
            ),
            (
                "hook xoxb-1234567890-abcdefghij",
                "hook [REDACTED]",
                "slack token",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----",
                "[REDACTED]",
                "private key",
            ),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                "[REDACTED]",
                "private key",
            ),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMTIz",
                "jwt [REDACTED]",
                "jwt",
            ),
            (
                "maps AIzaSyA1234567890abcdefghijklmnopqrstuv",
                "maps [REDACTED]",
                "google api key",
            ),
            (
                "billing sk_live_0123456789abcdefXYZ",
                "billing [REDACTED]",
                "stripe secret key",
            ),
        ];
        for (line, redacted, kind) in cases {
            assert_eq!(kinds(line), [kind], "{line}");
            assert_eq!(redact(line), redacted, "{line}");
        }
    }

    #[test]
    fn ordinary_lines_and_placeholders_hold_no_secret() {
        let log = "\
INFO listening on 0.0.0.0:8080
INFO job 3f2a completed in 12ms
password=[REDACTED]
token: ********
DEBUG token refreshed
api_key=${API_KEY}
GF_SECURITY_ADMIN_PASSWORD=$(ADMIN_PASSWORD)
nats://fluo:${NATS_PASSWORD}@nats:4222
http://prometheus.fluo.svc.cluster.local:9090/api/v1/query
GET /health 200";
        assert_eq!(find(log), []);
        assert_eq!(redact(log), log);
    }

    #[test]
    fn spans_are_byte_offsets_into_the_whole_text_and_stay_on_their_line() {
        let text = "start\nuser=admin password=topsecret1\ntoken:\n  enabled: true\n";
        let spans = find(text);
        assert_eq!(
            spans,
            [Span {
                start: 26,
                end: 36,
                kind: "credential assignment"
            }]
        );
        assert_eq!(&text[spans[0].start..spans[0].end], "topsecret1");
        assert_eq!(
            redact(text),
            "start\nuser=admin password=[REDACTED]\ntoken:\n  enabled: true\n"
        );
    }

    #[test]
    fn several_secrets_on_a_line_are_all_redacted_in_order() {
        let line = "AKIAIOSFODNN7EXAMPLE then https://u:pa55word@host and secret=abcdef123";
        assert_eq!(
            kinds(line),
            ["aws access key", "url credentials", "credential assignment"]
        );
        let redacted = redact(line);
        assert_eq!(
            redacted,
            "[REDACTED] then https://u:[REDACTED]@host and secret=[REDACTED]"
        );
    }
}
