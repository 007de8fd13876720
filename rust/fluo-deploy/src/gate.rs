//! The checks around a deploy that live in other crates. `Checks` implements fluo-core's
//! `deploy::Hooks`: the pre-deployment gate and the post-deploy checks.
//!
//! Seam: fluo-validate (gate) and fluo-health/fluo-smoke (post checks) depend on fluo-core, so
//! they are wired in here, in the binary. Not wired yet: `fluo_validate::gate::Gate` (its
//! checklist runs the test suite and builds, so it needs a deploy-time step selection first) and
//! the fluo-health checks. Until then the gate enforces the environment's skip rules and no post
//! checks run.

use fluo_core::config::Config;
use fluo_core::deploy::Hooks;
use fluo_core::exit::Exit;
use futures::future::BoxFuture;

pub struct Checks {
    /// `--skip` steps (each with the run's --reason).
    pub skipped: Vec<String>,
    pub reason: Option<String>,
}

impl Hooks for Checks {
    fn gate<'a>(
        &'a self,
        config: &'a Config,
        _components: &'a [String],
    ) -> BoxFuture<'a, Result<(), (Exit, String)>> {
        Box::pin(async move { run(config, &self.skipped, self.reason.as_deref()) })
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
pub fn run(
    config: &Config,
    skipped: &[String],
    reason: Option<&str>,
) -> Result<(), (Exit, String)> {
    if skipped.is_empty() {
        return Ok(());
    }
    let env = &config.environment;
    if !env.validation.allow_skip {
        return Err((
            Exit::Policy,
            format!(
                "environment `{}` does not allow skipping checks (validation.allow_skip = false): --skip {}",
                env.environment.name,
                skipped.join(", ")
            ),
        ));
    }
    if reason.is_none_or(|r| r.trim().is_empty()) {
        return Err((Exit::Usage, "--skip needs --reason (it is recorded)".into()));
    }
    Ok(())
}
