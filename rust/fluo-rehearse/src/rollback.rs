//! SOP-002's rollbacks on the running stack: emergency (`rollback-to-previous`), one component
//! (`rollback bff`), and tear-down with a redeploy that keeps the history.

use crate::checks::{self, StepResult};
use crate::failure::bff_image;
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
