//! SOP-002's steps as the rehearsal runs them, in the SOP's order. Each step runs the real
//! binaries against the stack and returns its evidence, or why it did not do what the SOP says.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

pub use crate::checks::{
    DEPLOY_SKIPS, NIX_SKIP_REASON, StepResult, deploy_everything, health_passes, smoke_passes,
    status,
};
use crate::stack::Stack;

type StepFuture<'a> = Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>;

/// One step: its report name, the SOP-002 section it rehearses, and what it runs.
pub struct Step {
    pub name: &'static str,
    pub sop: &'static str,
    pub run: for<'a> fn(&'a Stack) -> StepFuture<'a>,
}

/// The steps, in SOP order (docs/sop-mapping.md lists them).
pub fn all() -> Vec<Step> {
    vec![
        Step {
            name: "gate",
            sop: "Pre-deployment checklist",
            run: |s| Box::pin(gate(s)),
        },
        Step {
            name: "deploy-all",
            sop: "Deploy in dependency order",
            run: |s| Box::pin(deploy_all(s)),
        },
        Step {
            name: "health",
            sop: "Mandatory health checks, automated health verification",
            run: |s| Box::pin(health(s)),
        },
        Step {
            name: "smoke",
            sop: "Smoke tests",
            run: |s| Box::pin(smoke(s)),
        },
        Step {
            name: "monitor",
            sop: "Post-deployment validation",
            run: |s| Box::pin(monitor(s)),
        },
        Step {
            name: "bad-release",
            sop: "Failure handling (automatic rollback)",
            run: |s| Box::pin(crate::failure::bad_release(s)),
        },
        Step {
            name: "error-rate-release",
            sop: "Post-deployment monitoring (automatic rollback on error rate)",
            run: |s| Box::pin(crate::error_rate::error_rate_release(s)),
        },
        Step {
            name: "emergency-rollback",
            sop: "Emergency rollback",
            run: |s| Box::pin(crate::rollback::emergency(s)),
        },
        Step {
            name: "component-rollback",
            sop: "Component-specific rollback",
            run: |s| Box::pin(crate::rollback::component(s)),
        },
        Step {
            name: "planned-rollback",
            sop: "Planned rollback (graceful shutdown under job load, redeploy)",
            run: |s| Box::pin(crate::rollback::planned(s)),
        },
        Step {
            name: "delete-all-redeploy",
            sop: "Tear down and redeploy (history kept)",
            run: |s| Box::pin(crate::rollback::delete_and_redeploy(s)),
        },
        Step {
            name: "history-verify",
            sop: "Audit trail",
            run: |s| Box::pin(history_verify(s)),
        },
    ]
}

async fn gate(stack: &Stack) -> StepResult {
    let mut args = Vec::new();
    for step in ["tests", "flake-check", "build"] {
        args.extend(["--skip", step, "--reason", NIX_SKIP_REASON]);
    }
    args.extend(["-o", "json"]);
    let run = stack.run("fluo-validate", &args).await;
    let report = run.expect(0)?.json()?;
    if report["passed"] != true {
        return Err(format!("the gate did not pass: {run}"));
    }
    Ok(format!(
        "fluo-validate passed: {}; Nix steps skipped ({NIX_SKIP_REASON})",
        step_summary(&report)
    ))
}

/// "name verdict" of each step of a fluo-validate report.
fn step_summary(report: &Value) -> String {
    report["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s["step"].as_str().unwrap_or("?"),
                        s["status"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

async fn deploy_all(stack: &Stack) -> StepResult {
    let deployed = deploy_everything(stack).await?;
    let rows = status(stack).await?;
    let summary: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} v{} {}",
                r["component"].as_str().unwrap_or("?"),
                r["revision"],
                r["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if rows.len() != 5 || rows.iter().any(|r| r["status"] != "deployed") {
        return Err(format!(
            "status-all after the deploy: {}",
            summary.join(", ")
        ));
    }
    Ok(format!("{deployed}; status: {}", summary.join(", ")))
}

async fn health(stack: &Stack) -> StepResult {
    let health = health_passes(stack).await?;
    let script = stack
        .run(
            "scripts/verify-deployment-health.sh",
            &[crate::stack::ENVIRONMENT],
        )
        .await;
    script.expect(0)?;
    Ok(format!(
        "{health}; scripts/verify-deployment-health.sh exited 0"
    ))
}

async fn smoke(stack: &Stack) -> StepResult {
    smoke_passes(stack).await
}

/// A short window of the post-deploy monitor against the real Prometheus.
async fn monitor(stack: &Stack) -> StepResult {
    let run = stack
        .run("fluo-deploy", &["monitor", "--duration", "5s"])
        .await;
    run.expect(0)?;
    Ok(format!(
        "fluo-deploy monitor --duration 5s against the real Prometheus: {}",
        run.stdout.lines().last().unwrap_or_default()
    ))
}

async fn history_verify(stack: &Stack) -> StepResult {
    let run = stack.run("fluo-deploy", &["history", "--verify"]).await;
    run.expect(0)?;
    Ok(format!(
        "history --verify: {}",
        run.stdout
            .lines()
            .chain(run.stderr.lines())
            .find(|l| l.contains("verified"))
            .unwrap_or_default()
    ))
}
