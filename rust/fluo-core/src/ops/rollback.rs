//! Planned and emergency rollbacks (`rollback`, `rollback-to-previous`): a new revision that
//! re-applies an earlier revision's manifests, like `helm rollback`, recorded with its
//! justification. The automatic rollbacks are `recover`'s.

use std::collections::BTreeMap;

use super::context::{self, Ctx, RunInfo};
use super::error::{Error, Result};
use super::outcome::{ComponentResult, RunReport};
use super::recover;
use super::rollout::Planned;
use super::schedule::{self, Halt};
use crate::history;
use crate::release::{Action, Outcome};
use crate::report::Level;

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
    verified(ctx, component, &records).await?;
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
    // Every component's history, including one deleted outright (only its anchor is left).
    for verdict in ctx.history.verify(None).await? {
        let records = all
            .get(&verdict.component)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        verified(ctx, &verdict.component, records).await?;
    }
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

/// A rollback uses only records that verify (digest, signature, chain, anchor): otherwise it
/// refuses (exit 1, naming the records, nothing changed) unless `--accept-unverified` was
/// given, which is reported here and recorded in the new records.
async fn verified(ctx: &Ctx, component: &str, records: &[crate::release::Stored]) -> Result<()> {
    for problem in ctx.history.check_usable(component, records).await? {
        ctx.reporter.progress(
            component,
            Level::Warn,
            &format!("used despite failed verification (--accept-unverified): {problem}"),
        );
    }
    Ok(())
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
    ctx.check_durations()?;
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
    let graph = schedule::run_graph(ctx, &names, order, Halt::OnAbort, |c| {
        let (by_name, info) = (&by_name, &info);
        async move { recover::roll_out_or_back(ctx, &by_name[&c], info).await }
    });
    let mut components = context::announcing_stops(ctx, graph).await;
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
