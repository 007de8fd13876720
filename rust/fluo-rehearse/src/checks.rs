//! The runs several steps (and the end-to-end tests in `tests/`) share: deploy everything, the
//! status rows, fluo-health and fluo-smoke passing. Each returns its evidence, or why it did not
//! do what the SOP says.

use serde_json::Value;

use crate::stack::Stack;

/// A step's evidence, or why it failed.
pub type StepResult = Result<String, String>;

/// Why the Nix steps of the checklist are skipped here (recorded in every release record).
pub const NIX_SKIP_REASON: &str =
    "rehearsal: the Nix steps need a full Nix with flakes and network (docs/nix.md)";

/// `--skip` of the checklist's Nix steps, for fluo-deploy (one `--reason` for all).
pub const DEPLOY_SKIPS: [&str; 8] = [
    "--skip",
    "tests",
    "--skip",
    "flake-check",
    "--skip",
    "build",
    "--reason",
    NIX_SKIP_REASON,
];

/// Deploys everything (post-deploy health and smoke checks on, as the environment says).
pub async fn deploy_everything(stack: &Stack) -> StepResult {
    let mut args = vec!["deploy", "--all"];
    args.extend(DEPLOY_SKIPS);
    let run = stack.run("fluo-deploy", &args).await;
    run.expect(0)?;
    if !run.stderr.contains("post-deploy checks passed") {
        return Err(format!("no post-deploy checks ran: {run}"));
    }
    let order: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("deploying revision"))
        .filter_map(|l| l.split("] ").nth(1)?.split(':').next())
        .collect();
    Ok(format!(
        "deployed in {:.1}s, started in order {}, post-deploy checks passed",
        run.took.as_secs_f64(),
        order.join(" -> ")
    ))
}

/// `fluo-deploy status -o json`: one row per component.
pub async fn status(stack: &Stack) -> Result<Vec<Value>, String> {
    let run = stack.run("fluo-deploy", &["status", "-o", "json"]).await;
    let rows = run.expect(0)?.json()?;
    rows.as_array()
        .cloned()
        .ok_or_else(|| format!("status is not a list: {run}"))
}

/// fluo-health's checks (patient enough for a Prometheus that has not scraped yet).
pub async fn health_passes(stack: &Stack) -> StepResult {
    let run = stack
        .run("fluo-health", &["--timeout", "30s", "-o", "json"])
        .await;
    let report = run.expect(0)?.json()?;
    let checks = report["checks"].as_array().map_or(0, Vec::len);
    Ok(format!("fluo-health: {checks} of {checks} checks passed"))
}

/// fluo-smoke through the Ingress with the SOP's Host header.
pub async fn smoke_passes(stack: &Stack) -> StepResult {
    let run = stack.run("fluo-smoke", &["-o", "json"]).await;
    let report = run.expect(0)?.json()?;
    let via = format!("ingress Host {}", crate::stack::INGRESS_HOST);
    if !run.stdout.contains(&via) {
        return Err(format!(
            "the smoke test did not go through the Ingress ({via}): {run}"
        ));
    }
    let evidence: Vec<String> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap_or("?"),
                c["evidence"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Ok(format!(
        "fluo-smoke passed ({via}): {}",
        evidence.join("; ")
    ))
}
