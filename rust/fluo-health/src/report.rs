//! Rendering a set of outcomes: a text table for people, JSON for machines (`-o json`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::check::{Outcome, Verdict};

/// Everything one run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What ran: "health" or "smoke".
    pub kind: String,
    pub environment: String,
    pub passed: bool,
    pub checks: Vec<Outcome>,
    /// Checks left out, with why (never silently).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub not_run: std::collections::BTreeMap<String, String>,
}

impl Report {
    pub fn new(kind: &str, environment: &str, checks: Vec<Outcome>) -> Self {
        Self {
            kind: kind.to_owned(),
            environment: environment.to_owned(),
            passed: checks.iter().all(|c| c.verdict == Verdict::Pass),
            checks,
            not_run: std::collections::BTreeMap::new(),
        }
    }

    /// Ok when every check passed, Failed otherwise (the shared exit-code table).
    pub fn exit(&self) -> fluo_core::exit::Exit {
        fluo_core::exit::Exit::passed(self.passed)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// A table: CHECK, RESULT, TIME, EVIDENCE; then a summary line. `color` adds ANSI colours to
    /// the verdict (print it through anstream, which strips them for NO_COLOR and non-TTY
    /// output, or pass false).
    pub fn to_text(&self, color: bool) -> String {
        let name_width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .chain(["CHECK".len()])
            .max()
            .unwrap_or(5);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<name_width$}  RESULT  {:>7}  EVIDENCE",
            "CHECK", "TIME"
        );
        for check in &self.checks {
            let verdict = check.verdict.as_str().to_uppercase();
            let verdict = match (color, check.verdict) {
                (false, _) => format!("{verdict:<6}"),
                (true, Verdict::Pass) => format!("\x1b[32m{verdict:<6}\x1b[0m"),
                (true, Verdict::Fail) => format!("\x1b[31m{verdict:<6}\x1b[0m"),
            };
            let time = format!("{}ms", check.duration.as_millis());
            let _ = writeln!(
                out,
                "{:<name_width$}  {verdict}  {time:>7}  {}",
                check.name, check.evidence
            );
        }
        for (name, why) in &self.not_run {
            let _ = writeln!(out, "{name:<name_width$}  NOT RUN          {why}");
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .count();
        let _ = writeln!(
            out,
            "{} {}: {} of {} checks passed{}",
            self.kind,
            self.environment,
            self.checks.len() - failed,
            self.checks.len(),
            if failed == 0 { "" } else { " - FAILED" }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn outcome(name: &str, verdict: Verdict, evidence: &str) -> Outcome {
        Outcome {
            name: name.into(),
            verdict,
            evidence: evidence.into(),
            duration: Duration::from_millis(12),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn text_table_lists_every_check_and_the_summary() {
        let report = Report::new(
            "health",
            "local",
            vec![
                outcome("bff", Verdict::Pass, "GET /health 200"),
                outcome("nats", Verdict::Fail, "connection refused"),
            ],
        );
        assert_eq!(
            report.to_text(false),
            "CHECK  RESULT     TIME  EVIDENCE\n\
             bff    PASS       12ms  GET /health 200\n\
             nats   FAIL       12ms  connection refused\n\
             health local: 1 of 2 checks passed - FAILED\n"
        );
        assert_eq!(report.exit(), fluo_core::exit::Exit::Failed);
    }

    #[test]
    fn json_carries_verdicts_and_durations_in_millis() {
        let report = Report::new("smoke", "ci", vec![outcome("bff", Verdict::Pass, "ok")]);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["passed"], true);
        assert_eq!(json["checks"][0]["verdict"], "pass");
        assert_eq!(json["checks"][0]["duration_ms"], 12);
        assert_eq!(json["checks"][0]["timeout_ms"], 10_000);
        assert_eq!(report.exit(), fluo_core::exit::Exit::Ok);
    }
}
