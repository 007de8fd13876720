//! Rollbacks: the automatic one after a failed revision (re-apply the revision in effect
//! before, or remove a failed first install), the planned and emergency ones (`rollback`,
//! `rollback-to-previous`: a new revision that re-applies an earlier revision's manifests, like
//! `helm rollback`, recorded with its justification), and the rollback of a whole deploy whose
//! post-deploy checks failed.

use std::collections::BTreeMap;

use super::context::{self, Ctx, RunInfo};
use super::error::{Error, Result};
use super::outcome::{ComponentResult, RunReport};
use super::rollout::{self, Attempt, Failure, Planned};
use super::schedule::{self, Halt};
use crate::history;
use crate::release::{Action, Outcome, Status};
use crate::report::Level;

/// Rolls `planned` out; if it fails, rolls the component back automatically.
pub async fn roll_out_or_back(ctx: &Ctx, planned: &Planned, info: &RunInfo) -> ComponentResult {
    let c = planned.component.as_str();
    match rollout::roll_out_once(ctx, planned, info).await {
        Ok(attempt) => ComponentResult::Deployed {
            revision: attempt.revision,
            duration_ms: attempt.duration_ms,
            restores: match planned.action {
                Action::Rollback { to, .. } => Some(to),
                Action::Deploy => None,
            },
        },
        Err(Failure {
            attempt: None,
            error,
        }) => {
            ctx.reporter.progress(c, Level::Error, &error.to_string());
            ComponentResult::RolledBack {
                failed_revision: 0,
                message: format!("nothing applied: {error}"),
                restored: None,
            }
        }
        Err(Failure {
            attempt: Some(attempt),
            error,
        }) => auto_rollback(ctx, c, &attempt, error.to_string(), info).await,
    }
}

/// After a failed revision: re-apply the revision in effect before as a new revision, or remove
/// a failed first install. The rollback has its own timeout (the component's), not what is left
/// of the failed revision's.
async fn auto_rollback(
    ctx: &Ctx,
    c: &str,
    failed: &Attempt,
    message: String,
    info: &RunInfo,
) -> ComponentResult {
    let failed_revision = failed.revision;
    let Some(previous) = &failed.previous else {
        ctx.reporter
            .progress(c, Level::Warn, "first install failed; removing it");
        return match rollout::remove_component(ctx, c, &failed.manifests, ctx.timeout_of(c)).await {
            Ok(()) => {
                mark(ctx, c, failed_revision, Status::RolledBack).await;
                ComponentResult::RolledBack {
                    failed_revision,
                    message,
                    restored: None,
                }
            }
            Err(e) => ComponentResult::RollbackFailed {
                failed_revision,
                message,
                rollback_error: e.to_string(),
            },
        };
    };
    let to = previous.release.revision;
    let planned = Planned::rollback_to(previous, true);
    let mut info = RunInfo::new(
        &info.deploy_id,
        Some(format!(
            "automatic rollback: revision {failed_revision} failed: {message}"
        )),
    );
    info.approval = Default::default();
    match rollout::roll_out_once(ctx, &planned, &info).await {
        Ok(attempt) => {
            mark(ctx, c, failed_revision, Status::RolledBack).await;
            ctx.reporter.progress(
                c,
                Level::Warn,
                &format!("rolled back to v{to} (as revision {})", attempt.revision),
            );
            ComponentResult::RolledBack {
                failed_revision,
                message,
                restored: Some(to),
            }
        }
        Err(Failure { error, .. }) => {
            ctx.reporter.progress(
                c,
                Level::Error,
                &format!("automatic rollback failed: {error}"),
            );
            ComponentResult::RollbackFailed {
                failed_revision,
                message,
                rollback_error: error.to_string(),
            }
        }
    }
}

/// Sets a record's status label, reporting (not failing on) an error.
async fn mark(ctx: &Ctx, c: &str, revision: u32, status: Status) {
    if let Err(e) = ctx.history.set_status(c, revision, status).await {
        ctx.reporter.progress(
            c,
            Level::Warn,
            &format!("marking v{revision} {status}: {e}"),
        );
    }
}

/// Rolls `component` back to revision `to` (default: the last successful revision before the
/// current one).
pub async fn rollback(
    ctx: &Ctx,
    component: &str,
    to: Option<u32>,
    reason: &str,
    force_unlock: bool,
) -> Result<RunReport> {
    ctx.config.graph.select(&[component])?;
    let records = ctx.history.list(Some(component)).await?;
    let current = history::current(&records).ok_or_else(|| {
        Error::Refused(format!(
            "{component} has no deployed revision to roll back from"
        ))
    })?;
    let target = match to {
        Some(n) => records
            .iter()
            .find(|r| r.release.revision == n)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "{component} has no revision {n} (see `fluo-deploy history {component}`)"
                ))
            })?,
        None => history::previous_good(&records, current.release.revision).ok_or_else(|| {
            Error::Refused(format!(
                "{component} has no successful revision before v{}",
                current.release.revision
            ))
        })?,
    };
    if target.release.outcome != Outcome::Succeeded {
        return Err(Error::Refused(format!(
            "{component} revision {} did not succeed; roll back to a revision that did",
            target.release.revision
        )));
    }
    let planned = vec![Planned::rollback_to(target, false)];
    run(
        ctx,
        planned,
        &FirstInstalls::default(),
        reason,
        force_unlock,
    )
    .await
}

/// Rolls every component touched by the latest deploy back to its revision before that deploy.
///
/// A component that deploy installed for the first time has no earlier release: it is left at
/// its revision, reported as `NoPrevious` (exit 0 when everything else rolled back) and noted
/// on its record. Removing it is a separate, deliberate `delete`: an emergency rollback never
/// deletes a component. When every component is a first install, nothing is changed (exit 2).
pub async fn rollback_to_previous(
    ctx: &Ctx,
    reason: &str,
    force_unlock: bool,
) -> Result<RunReport> {
    let all = ctx.history.by_component().await?;
    let latest_deploy = all
        .values()
        .flatten()
        .filter(|r| r.release.action == Action::Deploy)
        .max_by_key(|r| r.release.started_at)
        .map(|r| r.release.deploy_id.clone())
        .ok_or_else(|| Error::Refused("no deploy recorded yet; nothing to roll back".into()))?;
    let mut planned = Vec::new();
    let mut first_installs: BTreeMap<String, Option<u32>> = BTreeMap::new();
    for (component, records) in &all {
        let Some(first_of_deploy) = records
            .iter()
            .filter(|r| r.release.deploy_id == latest_deploy)
            .map(|r| r.release.revision)
            .min()
        else {
            continue;
        };
        match history::previous_good(records, first_of_deploy) {
            Some(target) => planned.push(Planned::rollback_to(target, false)),
            None => {
                let current = history::current(records).map(|r| r.release.revision);
                first_installs.insert(component.clone(), current);
            }
        }
    }
    if planned.is_empty() {
        let kept: Vec<String> = first_installs
            .iter()
            .map(|(c, rev)| match rev {
                Some(n) => format!("{c} (left at v{n})"),
                None => format!("{c} (not installed)"),
            })
            .collect();
        return Err(Error::NothingToRollBack(format!(
            "nothing to roll back (nothing changed): deploy {latest_deploy} installed every component it touched for the first time: {}; to remove them: fluo-deploy delete <component>...",
            kept.join(", ")
        )));
    }
    ctx.reporter.progress(
        "",
        Level::Info,
        &format!("rolling back deploy {latest_deploy}"),
    );
    let first_installs = FirstInstalls {
        installed_by: latest_deploy,
        revisions: first_installs,
    };
    run(ctx, planned, &first_installs, reason, force_unlock).await
}

/// Components of the rolled-back deploy that it installed for the first time, with the
/// revision they stay at (None: not installed).
#[derive(Default)]
struct FirstInstalls {
    installed_by: String,
    revisions: BTreeMap<String, Option<u32>>,
}

/// Reports a first install the rollback leaves in place and notes it on its record, so
/// `history` shows that the rollback saw it and why it stayed.
async fn note_left_in_place(
    ctx: &Ctx,
    component: &str,
    revision: Option<u32>,
    installed_by: &str,
    rollback_id: &str,
    reason: &str,
) {
    let Some(revision) = revision else {
        ctx.reporter.progress(
            component,
            Level::Warn,
            &format!(
                "no previous release — not installed (its first install by deploy {installed_by} failed and was removed)"
            ),
        );
        return;
    };
    ctx.reporter.progress(
        component,
        Level::Warn,
        &format!(
            "no previous release — left at revision {revision} (first installed by deploy {installed_by}; to remove it: fluo-deploy delete {component})"
        ),
    );
    let note = format!(
        "left at v{revision} by rollback {rollback_id} at {}: no previous release (reason: {reason})",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ")
    );
    if let Err(e) = ctx
        .history
        .set_left_in_place(component, revision, &note)
        .await
    {
        ctx.reporter.progress(
            component,
            Level::Warn,
            &format!("noting the rollback on v{revision}: {e}"),
        );
    }
}

/// A rollback run: under the lock, every planned revision along the graph.
async fn run(
    ctx: &Ctx,
    planned: Vec<Planned>,
    first_installs: &FirstInstalls,
    reason: &str,
    force_unlock: bool,
) -> Result<RunReport> {
    if reason.trim().is_empty() {
        return Err(Error::Refused(
            "a rollback needs --reason (it is recorded)".into(),
        ));
    }
    context::ensure_namespaces(ctx).await?;
    let deploy_id = context::new_deploy_id();
    let lock = context::take_lock(ctx, &deploy_id, force_unlock).await?;
    let mut info = RunInfo::new(&deploy_id, Some(reason.to_string()));
    if force_unlock {
        info.forced_unlock = lock.replaced.clone();
    }
    let started = std::time::Instant::now();
    let names: Vec<String> = planned.iter().map(|p| p.component.clone()).collect();
    let by_name: BTreeMap<String, Planned> = planned
        .into_iter()
        .map(|p| (p.component.clone(), p))
        .collect();
    let order = ctx.config.environment.strategy.order;
    let mut components = schedule::run_graph(ctx, &names, order, Halt::OnAbort, |c| {
        let (by_name, info) = (&by_name, &info);
        async move { roll_out_or_back(ctx, &by_name[&c], info).await }
    })
    .await;
    for (component, revision) in &first_installs.revisions {
        note_left_in_place(
            ctx,
            component,
            *revision,
            &first_installs.installed_by,
            &deploy_id,
            reason,
        )
        .await;
        components.insert(
            component.clone(),
            ComponentResult::NoPrevious {
                revision: *revision,
                installed_by: first_installs.installed_by.clone(),
            },
        );
    }
    lock.release().await;
    Ok(RunReport {
        deploy_id,
        components,
        post_checks: None,
        duration_ms: started.elapsed().as_millis() as u64,
        stopped: ctx.stop.reason().cloned(),
    })
}

/// What each component row of a deploy whose post-deploy checks failed says; the cause itself
/// is in `RunReport::post_checks` and printed once, under the table.
pub const POST_CHECKS_FAILED: &str = "post-deploy checks failed";

/// Failed post-deploy checks count as a failed rollout: every component of this deploy goes
/// back to its revision before the deploy (a new, recorded rollback revision) and the checked
/// revision is marked rolled back. A component with no earlier revision cannot go back: that
/// is a failed rollback (exit 3, escalate).
pub async fn roll_back_after_failed_checks(ctx: &Ctx, report: &mut RunReport, failure: &str) {
    // The full cause is in the records' reason (audit) and printed once on each stream.
    let reason = format!(
        "automatic rollback of deploy {}: {POST_CHECKS_FAILED}: {failure}",
        report.deploy_id
    );
    ctx.reporter.progress(
        "",
        Level::Warn,
        &format!(
            "{POST_CHECKS_FAILED}: rolling back deploy {}",
            report.deploy_id
        ),
    );
    let rollback = rollback_to_previous(ctx, &reason, false).await;
    for (component, result) in report.components.iter_mut() {
        let ComponentResult::Deployed { revision, .. } = *result else {
            continue;
        };
        let restored = match &rollback {
            Ok(rb) => restored_by(rb.components.get(component)),
            Err(Error::NothingToRollBack(_)) => Err(NO_EARLIER.to_string()),
            Err(e) => Err(e.to_string()),
        };
        *result = match restored {
            Ok(restored) => {
                mark(ctx, component, revision, Status::RolledBack).await;
                ComponentResult::RolledBack {
                    failed_revision: revision,
                    message: POST_CHECKS_FAILED.to_string(),
                    restored: Some(restored),
                }
            }
            Err(rollback_error) => ComponentResult::RollbackFailed {
                failed_revision: revision,
                message: POST_CHECKS_FAILED.to_string(),
                rollback_error,
            },
        };
    }
}

const NO_EARLIER: &str = "no revision before this deploy to go back to";

/// The revision a rollback run restored for one component, or why it did not.
fn restored_by(result: Option<&ComponentResult>) -> std::result::Result<u32, String> {
    match result {
        Some(ComponentResult::Deployed {
            restores: Some(to), ..
        }) => Ok(*to),
        Some(ComponentResult::RolledBack { message, .. })
        | Some(ComponentResult::RollbackFailed { message, .. }) => Err(message.clone()),
        Some(ComponentResult::Skipped { because }) => Err(because.clone()),
        Some(ComponentResult::Deployed { restores: None, .. })
        | Some(ComponentResult::NoPrevious { .. })
        | None => Err(NO_EARLIER.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_run_restores_only_what_it_re_applied() {
        let restored = ComponentResult::Deployed {
            revision: 3,
            duration_ms: 1,
            restores: Some(1),
        };
        assert_eq!(restored_by(Some(&restored)), Ok(1));
        let fresh = ComponentResult::Deployed {
            revision: 1,
            duration_ms: 1,
            restores: None,
        };
        assert_eq!(restored_by(Some(&fresh)), Err(NO_EARLIER.to_string()));
        assert_eq!(restored_by(None), Err(NO_EARLIER.to_string()));
        let skipped = ComponentResult::Skipped {
            because: "dependency nats did not deploy".into(),
        };
        assert_eq!(
            restored_by(Some(&skipped)),
            Err("dependency nats did not deploy".into())
        );
    }
}
