//! Taking components down: `delete` (everything of a component, reverse dependency order, waits
//! until gone, history kept unless purged) and `shutdown` (graceful: scale workloads to zero in
//! reverse dependency order, wait for their pods to terminate, record it on the current
//! release so the next deploy restores the replicas).
//!
//! Both are gated like a deploy (windows, approvals, a `--reason`, typed confirmation on a
//! terminal or `--yes`), checked before anything changes, and each component they touch gets a
//! signed record (`delete`, `purge`, `shutdown`) in its chain. Purging history needs the
//! environment's permission; the purge record starts the new chain and names what it removed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;

use crate::history;
use crate::ops::{Ctx, Error, Result, context, rollout};
use crate::policy::{self, Approval};
use crate::release::{Action, Outcome, Release, Status, Stored};
use crate::render::component_selector;
use crate::report::Level;

mod confirm;
pub use confirm::confirm_with;

/// What the operator gave a destructive command.
#[derive(Debug, Clone, Default)]
pub struct Teardown {
    pub reason: Option<String>,
    pub approval: Approval,
    /// `--yes`: no typed confirmation.
    pub yes: bool,
    pub force_unlock: bool,
}

/// Reason, policy (windows, approvals, purge permission) and confirmation, in that order:
/// nothing has changed when one refuses. Also `restore`'s gate.
pub fn gate(ctx: &Ctx, request: &Teardown, what: &str, purge: bool) -> Result<()> {
    if request
        .reason
        .as_deref()
        .is_none_or(|r| r.trim().is_empty())
    {
        return Err(Error::Refused(format!(
            "{what} needs --reason (it is recorded); nothing changed"
        )));
    }
    let env = &ctx.config.environment;
    if purge {
        policy::check_purge(env)?;
    }
    policy::check(env, &request.approval, chrono::Utc::now())?;
    let name = &env.environment.name;
    confirm::confirm(
        name,
        &format!("{what} in environment `{name}`"),
        request.yes,
    )
}

/// A record of an operation on `component` (no manifests), chained after `records`.
pub fn operation_record(
    ctx: &Ctx,
    component: &str,
    action: Action,
    records: &[Stored],
    request: &Teardown,
    deploy_id: &str,
) -> Release {
    let latest = history::latest(records);
    Release {
        component: component.to_string(),
        revision: latest.map_or(1, |r| r.release.revision + 1),
        action,
        environment: ctx.config.environment.environment.name.clone(),
        namespace: ctx.namespace.clone(),
        manifests: Vec::new(),
        images: Default::default(),
        commit: ctx.identity.commit.clone(),
        dirty: ctx.identity.dirty,
        started_at: chrono::Utc::now(),
        user: ctx.identity.user.clone(),
        reason: request.reason.clone(),
        deploy_id: deploy_id.to_string(),
        outcome: Outcome::Succeeded,
        message: None,
        duration_ms: 0,
        change_ticket: request.approval.change_ticket.clone(),
        approved_by: request.approval.approved_by.clone(),
        forced_unlock: None,
        skipped_checks: Vec::new(),
        prev_digest: latest.map(|r| r.recorded_digest.clone()),
        overrides: [
            ctx.identity.overrides.clone(),
            ctx.history.recorded_overrides(),
        ]
        .concat(),
        emergency: false,
        drill: false,
        steps: Vec::new(),
        unresolved_digests: Vec::new(),
    }
}

/// Records a one-off operation on `component` (its outcome from `result`) after the component's
/// latest record, as `rotate` and `restore` do; its revision.
pub async fn record_operation<T>(
    ctx: &Ctx,
    component: &str,
    action: Action,
    request: &Teardown,
    deploy_id: &str,
    started: std::time::Instant,
    result: &std::result::Result<T, String>,
) -> Result<u32> {
    let records = ctx.history.list(Some(component)).await?;
    let mut record = operation_record(ctx, component, action, &records, request, deploy_id);
    record.duration_ms = started.elapsed().as_millis() as u64;
    if let Err(e) = result {
        record.outcome = Outcome::Failed;
        record.message = Some(e.clone());
    }
    ctx.history.create(&record, Status::Recorded).await?;
    Ok(record.revision)
}

/// Field manager for shutdown's replica changes: a separate owner, so the next deploy (manager
/// `fluo`, forced) takes `spec.replicas` back.
pub const SHUTDOWN_MANAGER: &str = "fluo-shutdown";

/// Deletes `components` (all if `all`) dependents first.
pub async fn delete(
    ctx: &Ctx,
    components: &[String],
    all: bool,
    purge_history: bool,
    request: &Teardown,
) -> Result<Vec<String>> {
    let names = selected_reverse(ctx, components, all)?;
    let what = if purge_history {
        format!("delete {} and purge their history", names.join(", "))
    } else {
        format!("delete {}", names.join(", "))
    };
    gate(ctx, request, &what, purge_history)?;
    context::ensure_namespaces(ctx).await?;
    let deploy_id = context::new_deploy_id();
    let lock = context::take_lock(ctx, &deploy_id, request.force_unlock).await?;
    let result = async {
        for c in &names {
            let records = ctx.history.list(Some(c)).await?;
            let mut manifests: Vec<serde_json::Value> = records
                .iter()
                .flat_map(|r| r.release.manifests.clone())
                .collect();
            if let Some(component) = ctx.config.component(c) {
                manifests.extend(component.manifests.iter().map(|d| d.object.clone()));
            }
            ctx.reporter.progress(c, Level::Info, "deleting");
            rollout::remove_component(ctx, c, &manifests, ctx.timeout_of(c))
                .await
                .map_err(|e| Error::Failed(e.to_string()))?;
            if purge_history {
                let tip = history::latest(&records);
                let action = Action::Purge {
                    removed_through: tip.map_or(0, |r| r.release.revision),
                    tip_digest: tip.map(|r| r.recorded_digest.clone()),
                };
                let record = operation_record(ctx, c, action, &records, request, &deploy_id);
                ctx.history.purge(c).await?;
                ctx.history.create(&record, Status::Recorded).await?;
                ctx.reporter.progress(
                    c,
                    Level::Ok,
                    &format!("deleted, history purged (recorded as v{})", record.revision),
                );
            } else {
                if let Some(current) = history::current(&records) {
                    ctx.history
                        .set_status(c, current.release.revision, Status::Superseded)
                        .await?;
                }
                let record =
                    operation_record(ctx, c, Action::Delete, &records, request, &deploy_id);
                ctx.history.create(&record, Status::Recorded).await?;
                ctx.reporter.progress(
                    c,
                    Level::Ok,
                    &format!("deleted (history kept, recorded as v{})", record.revision),
                );
            }
        }
        Ok(names.clone())
    }
    .await;
    lock.release().await;
    result
}

fn selected_reverse(ctx: &Ctx, components: &[String], all: bool) -> Result<Vec<String>> {
    let chosen = if all {
        ctx.config.graph.sequential_order()
    } else if components.is_empty() {
        return Err(Error::Refused(
            "name at least one component or pass --all".into(),
        ));
    } else {
        ctx.config.graph.select(components)?
    };
    Ok(ctx
        .config
        .graph
        .reverse_order()
        .into_iter()
        .filter(|c| chosen.contains(c))
        .collect())
}

/// Scales every deployed component to zero, dependents first, waiting for pods to go.
pub async fn shutdown(ctx: &Ctx, request: &Teardown) -> Result<Vec<String>> {
    let names = selected_reverse(ctx, &[], true)?;
    gate(ctx, request, "shut down every component", false)?;
    context::ensure_namespaces(ctx).await?;
    let deploy_id = context::new_deploy_id();
    let lock = context::take_lock(ctx, &deploy_id, request.force_unlock).await?;
    let result = async {
        let mut done = Vec::new();
        for c in &names {
            let records = ctx.history.list(Some(c)).await?;
            let Some(current) = history::current(&records) else {
                continue;
            };
            let mut saved = BTreeMap::new();
            for object in &current.release.manifests {
                let kind = object["kind"].as_str().unwrap_or_default();
                if !matches!(kind, "Deployment" | "StatefulSet") {
                    continue;
                }
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let (api, _) = ctx.cluster.api_for(object, &ctx.namespace).await?;
                if let Some(live) =
                    api.get_opt(name)
                        .await
                        .map_err(|source| crate::apply::Error::Apply {
                            object: format!("{kind}/{name}"),
                            source,
                        })?
                {
                    saved.insert(
                        format!("{kind}/{name}"),
                        live.data["spec"]["replicas"].as_i64().unwrap_or(1),
                    );
                }
                let patch = json!({
                    "apiVersion": object["apiVersion"], "kind": kind,
                    "metadata": {"name": name}, "spec": {"replicas": 0}
                });
                api.patch(
                    name,
                    &PatchParams::apply(SHUTDOWN_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(|source| crate::apply::Error::Apply {
                    object: format!("{kind}/{name}"),
                    source,
                })?;
                ctx.reporter
                    .progress(c, Level::Info, &format!("scaled {kind}/{name} to 0"));
            }
            let marker =
                json!({"at": chrono::Utc::now().to_rfc3339(), "replicas": saved}).to_string();
            ctx.history
                .set_shutdown(c, current.release.revision, Some(&marker))
                .await?;
            pods_gone(ctx, c, ctx.timeout_of(c)).await?;
            let record = operation_record(ctx, c, Action::Shutdown, &records, request, &deploy_id);
            ctx.history.create(&record, Status::Recorded).await?;
            ctx.reporter.progress(
                c,
                Level::Ok,
                &format!(
                    "shut down (pods terminated, recorded as v{})",
                    record.revision
                ),
            );
            done.push(c.clone());
        }
        Ok(done)
    }
    .await;
    lock.release().await;
    result
}

/// Watches the component's pods until none is left.
async fn pods_gone(ctx: &Ctx, component: &str, timeout: Duration) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let config = watcher::Config::default().labels(&component_selector(component));
    let mut stream = watcher::watcher(api, config).boxed();
    let mut pods = std::collections::BTreeSet::new();
    let mut listing = std::collections::BTreeSet::new();
    let mut listed = false;
    let wait = async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listing.clear(),
                Ok(watcher::Event::InitApply(p)) => {
                    listing.insert(p.metadata.name.unwrap_or_default());
                }
                Ok(watcher::Event::InitDone) => {
                    pods = std::mem::take(&mut listing);
                    listed = true;
                }
                Ok(watcher::Event::Apply(p)) => {
                    pods.insert(p.metadata.name.unwrap_or_default());
                }
                Ok(watcher::Event::Delete(p)) => {
                    pods.remove(&p.metadata.name.unwrap_or_default());
                }
                Err(e) => {
                    tracing::debug!(error = %e, "pod watch error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            if listed && pods.is_empty() {
                return;
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| Error::Failed(format!("{component}: pods still running after {timeout:?}")))
}
