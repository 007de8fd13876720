//! The rehearsal's bad release: a BFF configuration the real process refuses, so its pods crash,
//! the deploy fails fast and rolls itself back, and the stack is green again.

use std::path::PathBuf;

use fluo_core::exit::Exit;

use crate::checks::{self, StepResult};
use crate::manifest_env;
use crate::stack::Stack;

/// The BFF's Deployment in the scratch infra tree.
pub fn bff_deployment(stack: &Stack) -> PathBuf {
    stack
        .infra()
        .join("components/bff/manifests/deployment.yaml")
}

/// A manifest changed for one step and put back afterwards (also when the step fails).
pub struct Edited {
    path: PathBuf,
    original: String,
}

impl Edited {
    /// Sets `name=value` in the env of the first container of the Deployment at `path` (see
    /// `manifest_env::set_env`) until dropped.
    pub fn with_env(path: PathBuf, name: &str, value: &str) -> Result<Edited, String> {
        let original = manifest_env::set_env(&path, name, value)?;
        Ok(Edited { path, original })
    }
}

impl Drop for Edited {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.original);
    }
}

/// The typo of the bad release: a token file path beside the mounted one. The gate's
/// `service.config` rule checks values but not mounted files (they exist only in the pod), so
/// this passes the gate as such a typo would, and the real BFF exits at start naming the path.
/// (A malformed value such as a port of 80800 is refused by the gate, nothing applied.)
const BAD_TOKENS_FILE: &str = "/etc/fluo/api-tokens/token.toml";

pub async fn bad_release(stack: &Stack) -> StepResult {
    let before = bff_image(stack).await?;
    let failed = {
        let _bad = Edited::with_env(
            bff_deployment(stack),
            "FLUO_BFF_AUTH_TOKENS_FILE",
            BAD_TOKENS_FILE,
        )?;
        let mut args = vec!["deploy", "bff"];
        args.extend(checks::DEPLOY_SKIPS);
        stack.run("fluo-deploy", &args).await
    };
    failed.expect(Exit::Failed)?;
    let output = format!("{}{}", failed.stdout, failed.stderr);
    let why = ["CrashLoopBackOff", "Error", "exited"]
        .into_iter()
        .find(|w| output.contains(w))
        .ok_or_else(|| format!("the failed deploy does not say why the BFF failed: {failed}"))?;
    if !output.contains("rolled back") && !output.contains("rolling back") {
        return Err(format!(
            "the failed deploy does not say it rolled back: {failed}"
        ));
    }
    let after = bff_image(stack).await?;
    if after != before {
        return Err(format!(
            "bff runs {after} after the rollback, {before} before"
        ));
    }
    let health = checks::health_passes(stack).await?;
    let smoke = checks::smoke_passes(stack).await?;
    Ok(format!(
        "FLUO_BFF_AUTH_TOKENS_FILE={BAD_TOKENS_FILE}: deploy bff exited 1 after {:.1}s ({why}), rolled back automatically; green again: {health}; {}",
        failed.took.as_secs_f64(),
        smoke.split(':').next().unwrap_or_default()
    ))
}

/// The BFF's row of `status` (image and revision), to compare before and after.
pub async fn bff_image(stack: &Stack) -> Result<String, String> {
    let rows = checks::status(stack).await?;
    let row = rows
        .iter()
        .find(|r| r["component"] == "bff")
        .ok_or("status has no bff row")?;
    Ok(row["images"].to_string())
}
