//! The gate's report: per-step results and every finding, as a text table or JSON. Findings
//! never carry secret values, so both forms are safe to print and to store.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::checklist::Step;
use crate::finding::Finding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Passed,
    Failed,
    /// Skipped with `--skip STEP --reason R` (the reason is in the report's `skipped`).
    Skipped,
    /// Left out by `--only`.
    NotSelected,
    /// Not reached: an earlier step failed.
    NotRun,
}

impl StepStatus {
    fn label(self) -> &'static str {
        match self {
            StepStatus::Passed => "passed",
            StepStatus::Failed => "FAILED",
            StepStatus::Skipped => "skipped",
            StepStatus::NotSelected => "not selected",
            StepStatus::NotRun => "not run",
        }
    }
}

/// A step skipped on purpose, with the reason the deployer records in the release record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub step: Step,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub step: Step,
    pub status: StepStatus,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    /// Why the step failed, when it is not (only) its findings (a command's exit status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub findings: Vec<Finding>,
    /// Informational: what was not checked and why, which scanner ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StepResult {
    pub fn new(step: Step, status: StepStatus) -> Self {
        Self {
            step,
            status,
            duration: Duration::ZERO,
            error: None,
            findings: Vec::new(),
            notes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: String,
    pub passed: bool,
    /// The step that stopped the gate.
    pub failed_step: Option<Step>,
    pub steps: Vec<StepResult>,
    pub skipped: Vec<Skip>,
    pub log: PathBuf,
}

impl Report {
    /// The report for manifests that could not even be loaded (broken YAML): the `manifests`
    /// step fails with that finding and nothing else runs.
    pub fn load_failure(environment: &str, finding: Finding, log: PathBuf) -> Self {
        let steps = Step::ALL
            .into_iter()
            .map(|step| {
                let mut result = StepResult::new(
                    step,
                    if step == Step::Manifests {
                        StepStatus::Failed
                    } else {
                        StepStatus::NotRun
                    },
                );
                if step == Step::Manifests {
                    result.findings.push(finding.clone());
                }
                result
            })
            .collect();
        Self {
            environment: environment.to_string(),
            passed: false,
            failed_step: Some(Step::Manifests),
            steps,
            skipped: Vec::new(),
            log,
        }
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.steps.iter().flat_map(|s| &s.findings)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// The summary table, then every finding, then the verdict.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{:<12} {:<13} {:>9} {:>9}\n",
            "STEP", "STATUS", "TIME", "FINDINGS"
        );
        for step in &self.steps {
            let time = match step.status {
                StepStatus::Passed | StepStatus::Failed => {
                    format!("{:.2}s", step.duration.as_secs_f64())
                }
                _ => "-".to_string(),
            };
            out.push_str(&format!(
                "{:<12} {:<13} {:>9} {:>9}\n",
                step.step.name(),
                step.status.label(),
                time,
                step.findings.len()
            ));
        }
        for step in &self.steps {
            if step.findings.is_empty() && step.error.is_none() && step.notes.is_empty() {
                continue;
            }
            out.push_str(&format!("\n{}:\n", step.step));
            if let Some(error) = &step.error {
                out.push_str(&format!("  error: {error}\n"));
            }
            for finding in &step.findings {
                out.push_str(&format!("  {finding}\n"));
            }
            for note in &step.notes {
                out.push_str(&format!("  note: {note}\n"));
            }
        }
        for skip in &self.skipped {
            out.push_str(&format!("\nskipped {}: {}\n", skip.step, skip.reason));
        }
        out.push('\n');
        match self.failed_step {
            Some(step) => out.push_str(&format!(
                "validation FAILED at step `{step}` ({} finding(s)); log: {}\n",
                self.findings().count(),
                self.log.display()
            )),
            None => out.push_str(&format!(
                "validation passed for {}; log: {}\n",
                self.environment,
                self.log.display()
            )),
        }
        out
    }
}
