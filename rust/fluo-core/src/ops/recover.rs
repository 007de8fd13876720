//! Automatic rollback: a failed (or stopped) revision is replaced by a new revision that
//! re-applies the revision in effect before, or a failed first install is removed; a deploy
//! whose post-deploy checks failed, or that was stopped, has the components it deployed rolled
//! back the same way. Each rollback has its own timeout (the component's), not what is left of
//! the failed revision's. After the deploy lock was lost, a component whose newest record is
//! another run's is left alone: it is that run's now.

use serde_json::Value;

use super::context::{Ctx, RunInfo};
use super::outcome::{ComponentResult, RunReport};
use super::rollout::{self, Attempt, Failure, Planned};
use crate::history;
use crate::release::{Action, Status, Stored};
use crate::report::Level;

/// What each component row of a deploy whose post-deploy checks failed says; the cause itself
/// is in `RunReport::post_checks` and printed once, under the table.
pub const POST_CHECKS_FAILED: &str = "post-deploy checks failed";

/// Rolls `planned` out; if it fails, rolls the component back automatically.
pub async fn roll_out_or_back(ctx: &Ctx, planned: &Planned, info: &RunInfo) -> ComponentResult {
    roll_out_or_back_phased(ctx, planned, info, None).await
}

/// [`roll_out_or_back`] with a progressive strategy's phase. An aborted progressive rollout
/// needs no rollback: the stable revision was never touched.
pub async fn roll_out_or_back_phased(
    ctx: &Ctx,
    planned: &Planned,
    info: &RunInfo,
    phase: Option<&dyn rollout::Phase>,
) -> ComponentResult {
    let c = planned.component.as_str();
    match rollout::roll_out_phased(ctx, planned, info, phase).await {
        Ok(attempt) => ComponentResult::Deployed {
            revision: attempt.revision,
            duration_ms: attempt.duration_ms,
            restores: match planned.action {
                Action::Rollback { to, .. } => Some(to),
                _ => None,
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
            error: rollout::Error::Analysis { reason, .. },
        }) => ComponentResult::RolledBack {
            failed_revision: attempt.revision,
            message: format!("aborted, stable untouched: {reason}"),
            restored: attempt.previous.map(|p| p.release.revision),
        },
        Err(Failure {
            attempt: Some(attempt),
            error,
        }) => auto_rollback(ctx, c, &attempt, error.to_string(), info).await,
    }
}

/// After a failed revision: restore the revision in effect before it.
async fn auto_rollback(
    ctx: &Ctx,
    c: &str,
    failed: &Attempt,
    message: String,
    info: &RunInfo,
) -> ComponentResult {
    let reason = format!(
        "automatic rollback: revision {} failed: {message}",
        failed.revision
    );
    let failed = Restore {
        revision: failed.revision,
        previous: failed.previous.as_ref(),
        manifests: &failed.manifests,
    };
    restore(ctx, c, &failed, message, info, reason).await
}

/// A revision of this run to undo.
struct Restore<'a> {
    revision: u32,
    /// The revision in effect before (None: a first install, removed).
    previous: Option<&'a Stored>,
    /// What the revision applied.
    manifests: &'a [Value],
}

/// Undoes `failed` (see `Restore`) and marks it rolled back; `message` is the row's detail,
/// `reason` the rollback record's.
async fn restore(
    ctx: &Ctx,
    c: &str,
    failed: &Restore<'_>,
    message: String,
    info: &RunInfo,
    reason: String,
) -> ComponentResult {
    let failed_revision = failed.revision;
    if let Some(by) = taken_over(ctx, c, &info.deploy_id).await {
        ctx.reporter.progress(
            c,
            Level::Warn,
            &format!("not rolled back: {by} owns it now"),
        );
        return ComponentResult::TakenOver {
            failed_revision,
            message,
            by,
        };
    }
    let Some(previous) = failed.previous else {
        ctx.reporter
            .progress(c, Level::Warn, "first install failed; removing it");
        return match rollout::remove_component(ctx, c, failed.manifests, ctx.timeout_of(c)).await {
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
    let info = RunInfo::new(&info.deploy_id, Some(reason));
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

/// After the lock was lost: the run that now owns `c` (its newest record is not ours).
async fn taken_over(ctx: &Ctx, c: &str, deploy_id: &str) -> Option<String> {
    if !matches!(
        ctx.stop.reason(),
        Some(super::stop::Reason::LockLost { .. })
    ) {
        return None;
    }
    let records = ctx.history.list(Some(c)).await.ok()?;
    let latest = history::latest(&records)?;
    (latest.release.deploy_id != deploy_id).then(|| {
        format!(
            "revision {} of deploy {}",
            latest.release.revision, latest.release.deploy_id
        )
    })
}

/// Sets a record's status label, reporting (not failing on) an error.
async fn mark(ctx: &Ctx, c: &str, revision: u32, status: Status) {
    if let Err(e) = rollout::set_record_status(ctx, c, revision, status).await {
        ctx.reporter.progress(
            c,
            Level::Warn,
            &format!("marking v{revision} {status}: {e}"),
        );
    }
}

/// Rolls every component this run deployed back to its revision before the run (a new,
/// recorded rollback revision with reason `automatic rollback of deploy <id>: <cause>`; a
/// first install is removed) and marks the deployed revision rolled back. Used when the
/// post-deploy checks failed (they judge the deploy as a whole) and when the run was stopped.
/// Each row then says `row` (the cause is printed once elsewhere).
pub async fn roll_back_run(
    ctx: &Ctx,
    report: &mut RunReport,
    info: &RunInfo,
    cause: &str,
    row: &str,
) {
    let deployed: Vec<(String, u32)> = report
        .components
        .iter()
        .filter_map(|(c, r)| match r {
            ComponentResult::Deployed { revision, .. } => Some((c.clone(), *revision)),
            _ => None,
        })
        .collect();
    if deployed.is_empty() {
        return;
    }
    ctx.reporter.progress(
        "",
        Level::Warn,
        &format!("{row}: rolling back deploy {}", info.deploy_id),
    );
    let reason = format!("automatic rollback of deploy {}: {cause}", info.deploy_id);
    // Independent of each other (each goes back to a state that worked), so all at once; a
    // failed one holds no other back.
    let results = futures::future::join_all(deployed.iter().map(|(c, revision)| {
        let reason = reason.clone();
        async move {
            let result = roll_back_revision(ctx, c, *revision, row, info, reason).await;
            (c.clone(), result)
        }
    }))
    .await;
    report.components.extend(results);
}

/// Undoes revision `revision` of `c` (deployed by this run).
async fn roll_back_revision(
    ctx: &Ctx,
    c: &str,
    revision: u32,
    row: &str,
    info: &RunInfo,
    reason: String,
) -> ComponentResult {
    let records = match ctx.history.list(Some(c)).await {
        Ok(r) => r,
        Err(e) => {
            return ComponentResult::RollbackFailed {
                failed_revision: revision,
                message: row.to_string(),
                rollback_error: e.to_string(),
            };
        }
    };
    let manifests = records
        .iter()
        .find(|r| r.release.revision == revision)
        .map(|r| r.release.manifests.clone())
        .unwrap_or_default();
    let failed = Restore {
        revision,
        previous: history::previous_good(&records, revision),
        manifests: &manifests,
    };
    restore(ctx, c, &failed, row.to_string(), info, reason).await
}

/// Runs the post-deploy checks; None when the run was stopped meanwhile (the stop decides).
pub(super) async fn run_post_checks(
    ctx: &Ctx,
    checks: futures::future::BoxFuture<'_, std::result::Result<(), String>>,
) -> Option<std::result::Result<(), String>> {
    ctx.reporter
        .progress("", Level::Info, "running post-deploy checks");
    let result = tokio::select! {
        biased;
        () = ctx.stop.stopped() => return None,
        result = checks => result,
    };
    match &result {
        Ok(()) => ctx
            .reporter
            .progress("", Level::Ok, "post-deploy checks passed"),
        Err(e) => ctx
            .reporter
            .progress("", Level::Error, &format!("{POST_CHECKS_FAILED}: {e}")),
    }
    Some(result)
}
