//! Secrets leaked into log text, line by line: what the log scan reports. Detection and
//! redaction are `fluo_core::secrets`; a finding keeps the line number and the kind of the first
//! secret on the line, and shows the line with every secret on it redacted.

use fluo_core::secrets;
use serde::Serialize;

/// One line of a log that holds a secret; `excerpt` is the line with its secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub line: usize,
    pub kind: &'static str,
    pub excerpt: String,
}

/// Every line of `text` that holds a secret, line numbers starting at 1.
pub fn scan(text: &str) -> Vec<Finding> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let first = secrets::find(line).into_iter().next()?;
            Some(Finding {
                line: i + 1,
                kind: first.kind,
                excerpt: secrets::redact(line),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_carry_line_numbers_and_never_the_secret() {
        let log = "start\nuser=admin password=topsecret1\nend\n";
        assert_eq!(
            scan(log),
            [Finding {
                line: 2,
                kind: "credential assignment",
                excerpt: "user=admin password=[REDACTED]".into()
            }]
        );
    }

    #[test]
    fn one_finding_per_line_named_by_its_first_secret() {
        let log = "INFO ready\nkey AKIAIOSFODNN7EXAMPLE dsn nats://fluo:natspass@nats:4222\n";
        assert_eq!(
            scan(log),
            [Finding {
                line: 2,
                kind: "aws access key",
                excerpt: "key [REDACTED] dsn nats://fluo:[REDACTED]@nats:4222".into()
            }]
        );
    }

    #[test]
    fn ordinary_log_lines_are_not_findings() {
        let log = "INFO listening on 0.0.0.0:8080\nDEBUG token refreshed\npassword=[REDACTED]\n";
        assert_eq!(scan(log), []);
    }
}
