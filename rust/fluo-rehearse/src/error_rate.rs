//! The rehearsal's error-rate release: a BFF revision with its fault switch on starts and passes
//! its probes, but answers a share of real requests with 500. Real traffic through the Ingress
//! makes real 5xx, the real Prometheus scrapes them, and `fluo-deploy monitor` (SOP-002's
//! post-deploy monitoring) sees the ratio cross the environment's threshold and rolls the
//! release back by itself; then health and smoke are green again.

use std::time::Duration;

use fluo_core::exit::Exit;

use crate::checks::{self, StepResult};
use crate::failure::{Edited, bff_deployment, bff_image};
use crate::load::Traffic;
use crate::stack::Stack;

/// The share of requests the bad revision fails: far over the rehearsal's 5% threshold, and low
/// enough that the deterministic switch never fails two probes in a row (readiness holds, so
/// only the monitor can notice).
pub const FAULT_RATIO: &str = "0.25";

/// The longest the monitor may watch before it must have rolled back.
const WATCH: &str = "90s";

/// The revision's env as the cluster has it (`kubectl get deployment fluo-bff`).
async fn bff_env(stack: &Stack) -> Result<String, String> {
    let run = stack
        .run(
            "kubectl",
            &[
                "get",
                "deployment",
                "fluo-bff",
                "-n",
                "fluo",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].env}",
            ],
        )
        .await;
    Ok(run.expect(0)?.stdout.clone())
}

pub async fn error_rate_release(stack: &Stack) -> StepResult {
    let before = bff_image(stack).await?;
    let deployed = {
        let _bad = Edited::with_env(
            bff_deployment(stack),
            "FLUO_BFF_FAULT_5XX_RATIO",
            FAULT_RATIO,
        )?;
        // Without the post-deploy checks: their smoke test would catch a 25% failure rate
        // itself; this step shows the monitor catching what gets past a deploy.
        let mut args = vec!["deploy", "bff", "--no-post-checks"];
        args.extend(checks::DEPLOY_SKIPS);
        stack.run("fluo-deploy", &args).await
    };
    deployed.expect(0)?;
    if !bff_env(stack).await?.contains("FLUO_BFF_FAULT_5XX_RATIO") {
        return Err("the fault switch is not in the deployed revision".into());
    }
    let traffic = Traffic::start(stack.api(), Duration::from_millis(20));
    let watched = stack
        .run("fluo-deploy", &["monitor", "--duration", WATCH])
        .await;
    let answers = traffic.stop().await;
    watched.expect(Exit::Failed)?;
    let output = format!("{}{}", watched.stdout, watched.stderr);
    let breach = output
        .lines()
        .find(|l| l.contains("BREACH: BFF 5xx ratio"))
        .ok_or_else(|| format!("the monitor did not name a 5xx breach: {watched}"))?
        .trim()
        .to_owned();
    if !output.contains("rolled back") {
        return Err(format!("the monitor did not roll back: {watched}"));
    }
    if answers.get("500").copied().unwrap_or(0) == 0 {
        return Err(format!("the traffic saw no 500s: {answers:?}"));
    }
    let after = bff_image(stack).await?;
    if after != before || bff_env(stack).await?.contains("FLUO_BFF_FAULT_5XX_RATIO") {
        return Err(format!(
            "after the monitor's rollback bff runs {after} (before {before}), env {}",
            bff_env(stack).await?
        ));
    }
    let health = checks::health_passes(stack).await?;
    let smoke = checks::smoke_passes(stack).await?;
    Ok(format!(
        "FLUO_BFF_FAULT_5XX_RATIO={FAULT_RATIO} deployed; traffic through the Ingress answered {answers:?}; fluo-deploy monitor exited 1 after {:.1}s: {breach}, rolled back automatically (fault switch gone); green again: {health}; {}",
        watched.took.as_secs_f64(),
        smoke.split(':').next().unwrap_or_default()
    ))
}
