//! SOP-002 rehearsed on real processes: kube-emulator's process runtime runs the real `infra/`
//! (nats-server, prometheus, fluo-bff, fluo-worker, the documented stand-ins), and each SOP step
//! runs the real binaries against it, recording its verdict, time and evidence.
//!
//! `stack` starts the emulator and runs binaries (also used by the end-to-end tests in
//! `tests/`), `steps` holds the SOP's steps (with `failure`, `error_rate` and `rollback`, over
//! the runs they share in `checks`), `load` puts jobs through the stack and accounts for them,
//! `report` renders the result.

pub mod checks;
pub mod error_rate;
pub mod failure;
pub mod load;
pub mod manifest_env;
pub mod report;
pub mod rollback;
pub mod run;
pub mod stack;
pub mod steps;

use std::time::Instant;

pub use report::{Report, StepOutcome, Verdict};
pub use run::Run;
pub use stack::{Stack, StackOptions};

/// The binaries a stack runs (built together, so cargo reuses one build for all of them).
pub const BINARIES: [&str; 7] = [
    "kube-emulator",
    "fluo-validate",
    "fluo-deploy",
    "fluo-health",
    "fluo-smoke",
    "fluo-bff",
    "fluo-worker",
];

/// Runs `steps` in order on `stack`, printing each outcome as it comes (`progress`). After a
/// failed step the rest are reported as skipped: they build on the state it should have left.
pub async fn rehearse(
    stack: &Stack,
    steps: Vec<steps::Step>,
    progress: impl Fn(&StepOutcome),
) -> Report {
    let started = Instant::now();
    let mut outcomes = Vec::new();
    let mut failed: Option<&'static str> = None;
    for step in steps {
        let begun = Instant::now();
        let (verdict, evidence) = match failed {
            Some(earlier) => (
                Verdict::Skipped,
                format!("not run: step `{earlier}` failed"),
            ),
            None => match (step.run)(stack).await {
                Ok(evidence) => (Verdict::Pass, evidence),
                Err(why) => {
                    failed = Some(step.name);
                    (Verdict::Fail, why)
                }
            },
        };
        let outcome = StepOutcome {
            step: step.name.to_owned(),
            sop: step.sop.to_owned(),
            verdict,
            took: begun.elapsed(),
            evidence,
        };
        progress(&outcome);
        outcomes.push(outcome);
    }
    Report::new(stack::ENVIRONMENT, outcomes, started.elapsed())
}

/// The directory of the running executable (where cargo put its sibling binaries).
pub fn own_dir() -> Option<std::path::PathBuf> {
    std::env::current_exe()
        .ok()?
        .parent()
        .map(std::path::Path::to_path_buf)
}

/// [`main`] as an exit status: 0 every step passed, 1 a step failed, 2 the stack could not start
/// (a missing prerequisite; nothing was rehearsed) or a report could not be written.
pub async fn run(options: StackOptions, output: Output) -> fluo_core::exit::Exit {
    match main(options, output).await {
        Ok(passed) => fluo_core::exit::Exit::passed(passed),
        Err(e) => {
            eprintln!("fluo-rehearse: {e:#}");
            fluo_core::exit::Exit::Usage
        }
    }
}

/// Where the report goes besides stdout, and whether each command's timeline is shown.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub json: Option<std::path::PathBuf>,
    pub markdown: Option<std::path::PathBuf>,
    /// Each command's time and stderr on stderr as it finishes (where a step's time goes).
    pub trace: bool,
}

/// The whole rehearsal: start the stack, run every step, print the report (and write it where
/// asked). Ok(passed); Err when the stack could not start or a report could not be written.
pub async fn main(options: StackOptions, output: Output) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    rustls::crypto::ring::default_provider()
        .install_default()
        .ok();
    let mut stack = Stack::start(&options).await?;
    stack.runner.trace = output.trace;
    eprintln!(
        "fluo-rehearse: kube-emulator (process runtime) up, Ingress {}",
        stack.ingress_url
    );
    let report = rehearse(&stack, steps::all(), |o| {
        eprintln!(
            "==> {} {:?} in {:.1}s",
            o.step,
            o.verdict,
            o.took.as_secs_f64()
        );
    })
    .await;
    if !report.passed {
        for failed in report.steps.iter().filter(|s| s.verdict == Verdict::Fail) {
            eprintln!("--- step `{}` failed\n{}", failed.step, failed.evidence);
        }
        eprintln!(
            "--- kube-emulator log (tail)\n{}",
            tail(&stack.emulator_log(), 40)
        );
    }
    drop(stack);
    print!("\n{}", report.to_text());
    if let Some(path) = output.json {
        std::fs::write(&path, report.to_json())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = output.markdown {
        std::fs::write(&path, report.to_markdown())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.passed)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
