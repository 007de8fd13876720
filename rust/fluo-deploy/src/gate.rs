//! The checks around a deploy that live in other crates. `Checks` implements fluo-core's
//! `deploy::Hooks`: the pre-deployment gate and the post-deploy checks.
//!
//! Seam: fluo-validate (gate) and fluo-health/fluo-smoke (post checks) depend on fluo-core, so
//! they are wired in here, in the binary. Until their library entry points land, the gate only
//! enforces the environment's skip rules and no post checks run (the report says so).

use fluo_core::config::Config;
use fluo_core::deploy::Hooks;
use futures::future::BoxFuture;

pub struct Checks {
    /// `--skip` steps (each with the run's --reason).
    pub skipped: Vec<String>,
    pub reason: Option<String>,
}

impl Hooks for Checks {
    fn gate(&self, config: &Config, _components: &[String]) -> Result<(), String> {
        run(config, &self.skipped, self.reason.as_deref())
    }

    fn post_checks<'a>(
        &'a self,
        _config: &'a Config,
        _namespace: &'a str,
        _components: &'a [String],
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        None
    }
}

/// The gate's rules that need no other crate: skipping a step needs a reason and an environment
/// that allows skipping.
pub fn run(config: &Config, skipped: &[String], reason: Option<&str>) -> Result<(), String> {
    if skipped.is_empty() {
        return Ok(());
    }
    let env = &config.environment;
    if !env.validation.allow_skip {
        return Err(format!(
            "environment `{}` does not allow skipping checks (validation.allow_skip = false): --skip {}",
            env.environment.name,
            skipped.join(", ")
        ));
    }
    if reason.is_none_or(|r| r.trim().is_empty()) {
        return Err("--skip needs --reason (it is recorded)".into());
    }
    Ok(())
}
