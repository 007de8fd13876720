//! The rehearsal's report: one row per SOP-002 step with its verdict, time and evidence, as a
//! terminal table, JSON, or Markdown for a change record.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run, with the reason as evidence (a step after a failed one, or Nix where absent).
    Skipped,
}

impl Verdict {
    fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "SKIPPED",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    /// The step's name in the report (`deploy-all`).
    pub step: String,
    /// The SOP-002 section it rehearses.
    pub sop: String,
    pub verdict: Verdict,
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub took: Duration,
    /// What was observed (commands and their results), one or a few sentences.
    pub evidence: String,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: String,
    pub passed: bool,
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub took: Duration,
    pub steps: Vec<StepOutcome>,
}

impl Report {
    pub fn new(environment: &str, steps: Vec<StepOutcome>, took: Duration) -> Report {
        Report {
            environment: environment.to_owned(),
            passed: steps.iter().all(|s| s.verdict == Verdict::Pass),
            took,
            steps,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    pub fn to_text(&self) -> String {
        let width = self.steps.iter().map(|s| s.step.len()).max().unwrap_or(4);
        let mut out = format!(
            "{:<3} {:<width$}  {:<7}  {:>6}  EVIDENCE\n",
            "#", "STEP", "RESULT", "TIME"
        );
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<3} {:<width$}  {:<7}  {:>5.1}s  {}",
                i + 1,
                s.step,
                s.verdict.as_str(),
                s.took.as_secs_f64(),
                one_line(&s.evidence)
            );
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// A change-record section: a table of the steps, then the evidence of every failed one.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "## SOP-002 rehearsal ({})\n\n| # | SOP-002 section | step | result | time | evidence |\n| --- | --- | --- | --- | --- | --- |\n",
            self.environment
        );
        for (i, s) in self.steps.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {:.1} s | {} |",
                i + 1,
                s.sop,
                s.step,
                s.verdict.as_str(),
                s.took.as_secs_f64(),
                one_line(&s.evidence).replace('|', "\\|")
            );
        }
        let _ = writeln!(out, "\n{}", self.summary());
        for s in self.steps.iter().filter(|s| s.verdict == Verdict::Fail) {
            let _ = write!(
                out,
                "\n### `{}` failed\n\n```\n{}\n```\n",
                s.step, s.evidence
            );
        }
        out
    }

    fn summary(&self) -> String {
        let passed = self
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Pass)
            .count();
        format!(
            "rehearsal {}: {} of {} steps passed in {:.1}s",
            if self.passed { "passed" } else { "FAILED" },
            passed,
            self.steps.len(),
            self.took.as_secs_f64()
        )
    }
}

/// The first line of evidence, shortened for a table cell (the full text is in JSON).
fn one_line(evidence: &str) -> String {
    let line = evidence.lines().next().unwrap_or_default();
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, verdict: Verdict) -> StepOutcome {
        StepOutcome {
            step: name.into(),
            sop: "Smoke tests".into(),
            verdict,
            took: Duration::from_millis(1234),
            evidence: "first | line\nsecond line".into(),
        }
    }

    #[test]
    fn passes_only_when_every_step_passed() {
        let ok = Report::new("r", vec![step("a", Verdict::Pass)], Duration::ZERO);
        assert!(ok.passed);
        let skipped = Report::new(
            "r",
            vec![step("a", Verdict::Pass), step("b", Verdict::Skipped)],
            Duration::ZERO,
        );
        assert!(!skipped.passed);
    }

    #[test]
    fn markdown_escapes_cells_and_lists_failures_in_full() {
        let r = Report::new("r", vec![step("smoke", Verdict::Fail)], Duration::ZERO);
        let md = r.to_markdown();
        assert!(
            md.contains("| 1 | Smoke tests | `smoke` | FAIL | 1.2 s | first \\| line |"),
            "{md}"
        );
        assert!(
            md.contains("### `smoke` failed\n\n```\nfirst | line\nsecond line\n```"),
            "{md}"
        );
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["steps"][0]["verdict"], "fail");
        assert_eq!(json["steps"][0]["seconds"], 1.2);
        assert_eq!(json["passed"], false);
    }
}
