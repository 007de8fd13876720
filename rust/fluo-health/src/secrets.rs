//! Secrets leaked into log text, line by line: what the log scan reports. Detection and
//! redaction are `fluo_core::secrets` (patterns) plus the known values of the platform's Secrets
//! (a bare random password matches no pattern); a finding keeps the line number and the kind of
//! the first secret on the line, and shows the line with every secret on it redacted.

use fluo_core::secrets;
use serde::Serialize;

use crate::secret_values::Known;

/// One line of a log that holds a secret; `excerpt` is the line with its secrets redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub line: usize,
    pub kind: String,
    pub excerpt: String,
}

/// Every line of `text` that holds a secret, line numbers starting at 1.
pub fn scan(text: &str) -> Vec<Finding> {
    scan_with(text, &[])
}

/// [`scan`], also finding the values in `known` (named by their Secret and key).
pub fn scan_with(text: &str, known: &[Known]) -> Vec<Finding> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let holding: Vec<&Known> = known.iter().filter(|k| k.is_in(line)).collect();
            let kind = match secrets::find(line).into_iter().next() {
                Some(first) => first.kind.to_owned(),
                None => format!("value of {}", holding.first()?.describe()),
            };
            let excerpt = holding
                .iter()
                .fold(line.to_owned(), |text, k| k.redact(&text));
            Some(Finding {
                line: i + 1,
                kind,
                excerpt: secrets::redact(&excerpt),
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
                kind: "credential assignment".into(),
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
                kind: "aws access key".into(),
                excerpt: "key [REDACTED] dsn nats://fluo:[REDACTED]@nats:4222".into()
            }]
        );
    }

    #[test]
    fn a_bare_secret_value_is_found_by_its_secret_and_redacted() {
        let known = [Known::new(
            "nats-credentials",
            "worker.password",
            "a1b2c3d4e5f6a7b8c9d0",
        )
        .unwrap()];
        let log = "INFO ready\nDEBUG retrying with a1b2c3d4e5f6a7b8c9d0 now\n";
        assert_eq!(
            scan_with(log, &known),
            [Finding {
                line: 2,
                kind: "value of Secret nats-credentials key worker.password".into(),
                excerpt: "DEBUG retrying with [REDACTED] now".into()
            }]
        );
        assert_eq!(scan(log), []);
    }

    #[test]
    fn ordinary_log_lines_are_not_findings() {
        let log = "INFO listening on 0.0.0.0:8080\nDEBUG token refreshed\npassword=[REDACTED]\n";
        assert_eq!(scan(log), []);
    }
}
