//! Planned and emergency rollbacks: a new revision that re-applies an earlier revision's
//! manifests (like `helm rollback`), recorded with its justification.

use std::collections::BTreeMap;

use crate::deploy::{self, ComponentResult, Ctx, Error, Planned, Result, RunInfo, RunReport};
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
    let planned = vec![planned_from(target)];
    run(ctx, planned, reason, force_unlock).await
}

/// Rolls every component touched by the latest deploy back to its revision before that deploy.
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
            Some(target) => planned.push(planned_from(target)),
            None => ctx.reporter.progress(
                component,
                Level::Warn,
                &format!("no revision before deploy {latest_deploy}; left as is"),
            ),
        }
    }
    if planned.is_empty() {
        return Err(Error::Refused(format!(
            "deploy {latest_deploy} installed every component for the first time; nothing to roll back to"
        )));
    }
    ctx.reporter.progress(
        "",
        Level::Info,
        &format!("rolling back deploy {latest_deploy}"),
    );
    run(ctx, planned, reason, force_unlock).await
}

fn planned_from(target: &crate::release::Stored) -> Planned {
    Planned {
        component: target.release.component.clone(),
        action: Action::Rollback {
            to: target.release.revision,
            automatic: false,
        },
        manifests: target.release.manifests.clone(),
        images: target.release.images.clone(),
    }
}

async fn run(
    ctx: &Ctx,
    planned: Vec<Planned>,
    reason: &str,
    force_unlock: bool,
) -> Result<RunReport> {
    if reason.trim().is_empty() {
        return Err(Error::Refused(
            "a rollback needs --reason (it is recorded)".into(),
        ));
    }
    deploy::ensure_namespaces(ctx).await?;
    let deploy_id = deploy::new_deploy_id();
    let lock = deploy::take_lock(ctx, &deploy_id, force_unlock).await?;
    let info = RunInfo {
        deploy_id: deploy_id.clone(),
        reason: Some(reason.to_string()),
        approval: Default::default(),
        skipped_checks: vec![],
        forced_unlock: if force_unlock {
            lock.replaced.clone()
        } else {
            None
        },
    };
    let started = std::time::Instant::now();
    let components: BTreeMap<String, ComponentResult> =
        deploy::run_graph(ctx, planned, ctx.config.environment.strategy.order, &info).await;
    lock.release().await;
    Ok(RunReport {
        deploy_id,
        components,
        post_checks: None,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
