//! SOP-002's rollbacks on the running stack: emergency (`rollback-to-previous`), one component
//! (`rollback bff`), planned (graceful shutdown and redeploy under job load), and tear-down
//! with a redeploy that keeps the history.

use std::time::Duration;

use crate::checks::{self, StepResult};
use crate::failure::bff_image;
use crate::load::{Load, LoadSpec, Submitted, account};
use crate::stack::Stack;

/// The image of the second BFF release (the image map runs the same binary for every tag).
const SECOND_BFF: &str = "fluo/fluo-bff:rehearsal-2";

pub async fn emergency(stack: &Stack) -> StepResult {
    let first = bff_image(stack).await?;
    let mut args = vec!["deploy", "bff", "--image"];
    let image = format!("fluo-bff={SECOND_BFF}");
    args.push(&image);
    args.extend(checks::DEPLOY_SKIPS);
    stack.run("fluo-deploy", &args).await.expect(0)?;
    let second = bff_image(stack).await?;
    if !second.contains(SECOND_BFF) {
        return Err(format!(
            "after deploying {SECOND_BFF} status shows {second}"
        ));
    }
    let back = stack
        .run(
            "fluo-deploy",
            &[
                "rollback-to-previous",
                "--reason",
                "rehearsal: emergency rollback",
            ],
        )
        .await;
    back.expect(0)?;
    let now = bff_image(stack).await?;
    if now != first {
        return Err(format!(
            "after rollback-to-previous bff runs {now}, wanted {first}"
        ));
    }
    let smoke = checks::smoke_passes(stack).await?;
    Ok(format!(
        "deployed {SECOND_BFF}, rollback-to-previous in {:.1}s restored {first}; {}",
        back.took.as_secs_f64(),
        smoke.split(':').next().unwrap_or_default()
    ))
}

pub async fn component(stack: &Stack) -> StepResult {
    let before = bff_image(stack).await?;
    let back = stack
        .run(
            "fluo-deploy",
            &[
                "rollback",
                "bff",
                "--reason",
                "rehearsal: component rollback",
            ],
        )
        .await;
    back.expect(0)?;
    let now = bff_image(stack).await?;
    // The last successful revision before the current one is the second release.
    if !now.contains(SECOND_BFF) {
        return Err(format!(
            "rollback bff went from {before} to {now}, wanted {SECOND_BFF}"
        ));
    }
    let smoke = checks::smoke_passes(stack).await?;
    Ok(format!(
        "rollback bff in {:.1}s: {before} -> {now}; {}",
        back.took.as_secs_f64(),
        smoke.split(':').next().unwrap_or_default()
    ))
}

/// Release records of every component (`history -o json`).
async fn records(stack: &Stack) -> Result<usize, String> {
    let run = stack.run("fluo-deploy", &["history", "-o", "json"]).await;
    let all = run.expect(0)?.json()?;
    all.as_array()
        .map(Vec::len)
        .ok_or_else(|| format!("history is not a list: {run}"))
}

pub async fn delete_and_redeploy(stack: &Stack) -> StepResult {
    let kept = records(stack).await?;
    let deleted = stack
        .run(
            "fluo-deploy",
            &[
                "delete",
                "--all",
                "--yes",
                "--reason",
                "rehearsal: tear down and redeploy",
            ],
        )
        .await;
    deleted.expect(0)?;
    let pods = stack
        .run("kubectl", &["get", "pods", "-n", "fluo", "-o", "name"])
        .await;
    if !pods.expect(0)?.stdout.trim().is_empty() {
        return Err(format!("pods left after delete --all: {pods}"));
    }
    // delete is recorded too (one record per component): nothing may be lost.
    let after_delete = records(stack).await?;
    if after_delete < kept {
        return Err(format!(
            "delete --all kept {after_delete} of {kept} release records"
        ));
    }
    let redeployed = checks::deploy_everything(stack).await?;
    let now = records(stack).await?;
    if now != after_delete + 5 {
        return Err(format!(
            "{after_delete} records before the redeploy, {now} after (wanted 5 more)"
        ));
    }
    Ok(format!(
        "delete --all in {:.1}s (no pods left, all {kept} records kept, {after_delete} with the delete's); redeploy: {redeployed}; {now} records",
        deleted.took.as_secs_f64()
    ))
}

/// Jobs submitted before the planned rollback, and as many from the start of its shutdown to
/// after the redeploy.
const PLANNED_JOBS: usize = 50;

/// A load of [`PLANNED_JOBS`], one submission (or retry of a refused one) per `every`.
fn planned_load(stack: &Stack, every: Duration) -> Load {
    Load::start(
        stack.api(),
        LoadSpec {
            jobs: PLANNED_JOBS,
            every,
            work_ms: 200,
            limit: Duration::from_secs(180),
        },
    )
}

/// Every job of `submitted` completed; the error names the load.
async fn all_done(stack: &Stack, which: &str, submitted: &Submitted) -> StepResult {
    if submitted.accepted.len() != PLANNED_JOBS {
        return Err(format!(
            "the load {which} got {} of {PLANNED_JOBS} jobs accepted",
            submitted.summary()
        ));
    }
    // Bounded by 90 s: a job a worker pulled as it stopped, whose hand-back NATS did not get,
    // comes back after the workers' ack wait (`stack::ACK_WAIT_SECS` in the rehearsal).
    let tally = account(&stack.api(), &submitted.accepted, Duration::from_secs(90)).await;
    let completed = tally
        .all_completed(PLANNED_JOBS)
        .map_err(|e| format!("jobs {which}: {e}; {}", submitted.summary()))?;
    Ok(format!("{which}: {}; {completed}", submitted.summary()))
}

/// SOP-002's planned rollback with jobs flowing: jobs submitted and completed before it; the
/// graceful shutdown (dependents first, in-flight work finished) with no pods left; a load
/// submitting from the shutdown's end through the redeploy of the previous (the checkout's)
/// version, its refusals counted and retried; every accepted job completed, none lost.
///
/// The second load starts before the shutdown, so jobs are accepted while the workers stop
/// (they hand them back) and wait in NATS through the redeploy.
pub async fn planned(stack: &Stack) -> StepResult {
    let before = bff_image(stack).await?;
    // Jobs of 200 ms every 50 ms: two workers have several in flight at any time.
    let earlier = planned_load(stack, Duration::from_millis(50))
        .finish()
        .await?;
    let earlier = all_done(stack, "before the shutdown", &earlier).await?;
    let load = planned_load(stack, Duration::from_millis(100));
    let shutdown = stack
        .run(
            "fluo-deploy",
            &[
                "shutdown",
                "--yes",
                "--reason",
                "rehearsal: planned rollback",
            ],
        )
        .await;
    shutdown.expect(0)?;
    let pods = stack
        .run("kubectl", &["get", "pods", "-n", "fluo", "-o", "name"])
        .await;
    if !pods.expect(0)?.stdout.trim().is_empty() {
        return Err(format!("pods left after the graceful shutdown: {pods}"));
    }
    let redeployed = checks::deploy_everything(stack).await?;
    let across = all_done(
        stack,
        "across the shutdown and redeploy",
        &load.finish().await?,
    )
    .await?;
    let now = bff_image(stack).await?;
    if now == before || now.contains(SECOND_BFF) {
        return Err(format!(
            "bff runs {now} after the planned rollback, {before} before"
        ));
    }
    Ok(format!(
        "jobs {earlier}; shutdown --yes in {:.1}s, no pods left; redeploy of the checkout's version: {redeployed}; bff {before} -> {now}; jobs {across}; none lost or failed",
        shutdown.took.as_secs_f64()
    ))
}
