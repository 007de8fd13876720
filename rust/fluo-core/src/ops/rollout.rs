//! One component revision: record it (deploying), apply, prune what is no longer declared,
//! wait until ready, record the outcome. No automatic rollback here (that is `rollback`'s):
//! a failure returns what was attempted so the caller can restore the previous revision.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::{Value, json};

use super::context::{Ctx, RunInfo};
use super::stop::Reason;
use crate::apply::{self, ObjectRef};
use crate::history;
use crate::readiness::Readiness;
use crate::release::{Action, Outcome, Release, Status, Stored};
use crate::report::Level;
use crate::{durable, render, wait};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a revision did not become ready (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    History(#[from] history::Error),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    Wait(#[from] wait::Error),
    /// A signal or the loss of the deploy lock stopped the rollout.
    #[error("{0}")]
    Stopped(Reason),
    /// A second signal aborted a rollback.
    #[error("aborted by a second signal")]
    Aborted,
    /// A progressive rollout's analysis failed or an operator aborted it; its new pods are
    /// gone and the stable revision untouched. `steps` is the evidence for the record.
    #[error("{reason}")]
    Analysis { reason: String, steps: Vec<String> },
}

impl Error {
    /// Whether the rollout ran into its timeout (history says `timed out`).
    pub fn timed_out(&self) -> bool {
        matches!(self, Error::Wait(wait::Error::Timeout { .. }))
    }
}

/// What a progressive strategy does between writing a revision's `deploying` record and
/// converging on the revision (canary steps, green beside blue, their analysis).
pub trait Phase: Send + Sync {
    /// Runs the strategy for revision `revision`, whose objects are `manifests`; Ok: the steps
    /// with their evidence (kept in the record). Errors must leave the stable revision as it
    /// was; `Error::Analysis` records the revision `aborted`.
    fn run<'a>(
        &'a self,
        revision: u32,
        manifests: &'a [Value],
    ) -> futures::future::BoxFuture<'a, Result<Vec<String>>>;
    /// The converge keeps what the previous revision declared and this one does not (blue
    /// stays scaled after a blue-green switch; it is pruned when its window ends).
    fn keeps_previous(&self) -> bool {
        false
    }
}

/// One component revision to roll out.
#[derive(Debug, Clone)]
pub struct Planned {
    pub component: String,
    pub action: Action,
    pub manifests: Vec<Value>,
    pub images: BTreeMap<String, String>,
    /// Images deployed by tag, their digest unresolved (recorded).
    pub unresolved_digests: Vec<String>,
}

impl Planned {
    /// Re-applies `target`'s manifests as a new revision.
    pub fn rollback_to(target: &Stored, automatic: bool) -> Planned {
        Planned {
            component: target.release.component.clone(),
            action: Action::Rollback {
                to: target.release.revision,
                automatic,
            },
            manifests: target.release.manifests.clone(),
            images: target.release.images.clone(),
            unresolved_digests: target.release.unresolved_digests.clone(),
        }
    }

    fn is_rollback(&self) -> bool {
        matches!(self.action, Action::Rollback { .. })
    }
}

/// A revision that was recorded (and possibly partly applied).
#[derive(Debug, Clone)]
pub struct Attempt {
    pub revision: u32,
    /// The revision in effect before this one (what an automatic rollback restores).
    pub previous: Option<Stored>,
    /// What this revision applied (a failed first install removes these kinds).
    pub manifests: Vec<Value>,
    pub duration_ms: u64,
    /// This run's id (to tell our records from another run's).
    pub deploy_id: String,
}

/// A rollout that did not become ready; `attempt` is None when nothing was recorded or applied.
#[derive(Debug)]
pub struct Failure {
    pub attempt: Option<Attempt>,
    pub error: Error,
}

/// The record of one revision: the one place a `Release` is built.
pub fn build_release(
    ctx: &Ctx,
    planned: &Planned,
    info: &RunInfo,
    revision: u32,
    manifests: Vec<Value>,
    prev_digest: Option<String>,
) -> Release {
    Release {
        component: planned.component.clone(),
        revision,
        action: planned.action.clone(),
        environment: ctx.environment().to_string(),
        namespace: ctx.namespace.clone(),
        manifests,
        images: planned.images.clone(),
        commit: ctx.identity.commit.clone(),
        dirty: ctx.identity.dirty,
        started_at: chrono::Utc::now(),
        user: ctx.identity.user.clone(),
        reason: info.reason.clone(),
        deploy_id: info.deploy_id.clone(),
        outcome: Outcome::InProgress,
        message: None,
        duration_ms: 0,
        change_ticket: info.approval.change_ticket.clone(),
        approved_by: info.approval.approved_by.clone(),
        forced_unlock: info.forced_unlock.clone(),
        skipped_checks: info.skipped_checks.clone(),
        prev_digest,
        overrides: [
            ctx.identity.overrides.clone(),
            ctx.history.recorded_overrides(),
        ]
        .concat(),
        emergency: info.emergency,
        drill: info.drill,
        steps: vec![],
        unresolved_digests: planned.unresolved_digests.clone(),
    }
}

/// Rolls out one revision of `planned`. A deploy stops at `ctx.stop`; a rollback runs on until
/// it is done or the run is aborted (second signal).
pub async fn roll_out_once(
    ctx: &Ctx,
    planned: &Planned,
    info: &RunInfo,
) -> std::result::Result<Attempt, Failure> {
    roll_out_phased(ctx, planned, info, None).await
}

/// [`roll_out_once`] with a progressive strategy's `phase` before the converge.
pub async fn roll_out_phased(
    ctx: &Ctx,
    planned: &Planned,
    info: &RunInfo,
    phase: Option<&dyn Phase>,
) -> std::result::Result<Attempt, Failure> {
    let c = planned.component.as_str();
    let started = Instant::now();
    let before_start = |error: Error| Failure {
        attempt: None,
        error,
    };
    let mut records = prepare_records(ctx, c).await.map_err(before_start)?;
    let previous = history::current(&records).cloned();
    let revision = history::latest(&records).map_or(1, |r| r.release.revision + 1);
    // What an earlier revision declared and this one does not is pruned.
    let prior: Vec<Value> = records
        .iter_mut()
        .max_by_key(|r| r.release.revision)
        .map(|latest| std::mem::take(&mut latest.release.manifests))
        .unwrap_or_default();
    // From here on the records serve retention (revisions and digests): their manifests are
    // dropped, so a level of components rolling out together holds one copy each, not one per
    // stored revision.
    for r in &mut records {
        r.release.manifests = Vec::new();
    }
    let mut manifests = planned.manifests.clone();
    if let Some(prev) = &previous {
        restore_replicas_after_shutdown(ctx, prev, &mut manifests)
            .await
            .map_err(before_start)?;
    }
    let prev_digest = history::latest(&records).map(|r| r.recorded_digest.clone());
    let mut release = build_release(ctx, planned, info, revision, manifests, prev_digest);
    let verb = match &planned.action {
        Action::Deploy => "deploying".to_string(),
        Action::Rollback { to, .. } => format!("rolling back to v{to} as"),
        other => format!("{other}:"),
    };
    ctx.reporter
        .progress(c, Level::Info, &format!("{verb} revision {revision}"));
    create_record(ctx, &release)
        .await
        .map_err(|e| before_start(e.into()))?;
    let prunes = phase.is_none_or(|p| !p.keeps_previous());
    let phased = async {
        if let Some(phase) = phase {
            release.steps = phase.run(revision, &release.manifests).await?;
        }
        converge(ctx, c, &release.manifests, &prior, prunes).await
    };
    let result = if planned.is_rollback() {
        tokio::select! {
            biased;
            () = ctx.stop.aborted() => Err(Error::Aborted),
            r = phased => r,
        }
    } else {
        tokio::select! {
            biased;
            () = ctx.stop.stopped() => Err(stopped(ctx)),
            r = phased => r,
        }
    };
    release.duration_ms = started.elapsed().as_millis() as u64;
    let attempt = Attempt {
        revision,
        previous: previous.clone(),
        manifests: release.manifests.clone(),
        duration_ms: release.duration_ms,
        deploy_id: info.deploy_id.clone(),
    };
    match result {
        Ok(()) => {
            release.outcome = Outcome::Succeeded;
            let supersede = async {
                match &previous {
                    Some(prev) => {
                        set_record_status(ctx, c, prev.release.revision, Status::Superseded).await
                    }
                    None => Ok(()),
                }
            };
            // Independent writes, issued together (dependents wait for them); each runs to its
            // end, so a failure of one never cuts another short.
            let retention =
                durable::retry(transient, |_| ctx.history.enforce_retention(&records, 1));
            let (finished, superseded, retained) = futures::join!(
                finish_record(ctx, &release, Status::Deployed),
                supersede,
                retention
            );
            for e in [finished, superseded, retained]
                .into_iter()
                .filter_map(Result::err)
            {
                ctx.reporter.progress(
                    c,
                    Level::Error,
                    &format!("recording the release failed: {e}"),
                );
            }
            ctx.reporter.progress(
                c,
                Level::Ok,
                &format!(
                    "revision {revision} ready in {:.1}s",
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(attempt)
        }
        Err(error) => {
            release.outcome = Outcome::Failed;
            release.message = Some(error.to_string());
            ctx.reporter.progress(
                c,
                Level::Error,
                &format!("revision {revision} failed: {error}"),
            );
            // Stopped before it finished: `interrupted` until a rollback restores the component.
            let status = match &error {
                Error::Stopped(_) | Error::Aborted => Status::Interrupted,
                Error::Analysis { steps, .. } => {
                    release.steps = steps.clone();
                    Status::Aborted
                }
                _ => Status::Failed,
            };
            if let Err(e) = finish_record(ctx, &release, status).await {
                ctx.reporter.progress(
                    c,
                    Level::Error,
                    &format!("recording the failure failed: {e}"),
                );
            }
            Err(Failure {
                attempt: Some(attempt),
                error,
            })
        }
    }
}

/// Record errors worth repeating (see `durable`), the anchor's included: a record write also
/// moves the anchored tip, and a 5xx there must not leave the record `deploying`.
fn transient(e: &history::Error) -> bool {
    match e {
        history::Error::Kube { source, .. } | history::Error::Anchor { source, .. } => {
            durable::is_transient(source)
        }
        _ => false,
    }
}

/// Writes the `deploying` record; a create that landed before its answer was lost (or whose
/// anchor update failed) is found as AlreadyExists on the retry (we hold the lock: nobody else
/// writes this revision), and the anchor is moved to it then.
async fn create_record(ctx: &Ctx, release: &Release) -> std::result::Result<(), history::Error> {
    durable::retry(transient, |attempt| async move {
        match ctx.history.create(release, Status::Deploying).await {
            Err(history::Error::Kube {
                source: kube::Error::Api(s),
                ..
            }) if attempt > 1 && s.code == 409 => ctx.history.anchor_tip(release).await,
            result => result,
        }
    })
    .await
}

/// Writes a record's final payload and status.
async fn finish_record(
    ctx: &Ctx,
    release: &Release,
    status: Status,
) -> std::result::Result<(), history::Error> {
    durable::retry(transient, |_| ctx.history.finish(release, status)).await
}

/// Changes a record's status label.
pub async fn set_record_status(
    ctx: &Ctx,
    c: &str,
    revision: u32,
    status: Status,
) -> std::result::Result<(), history::Error> {
    durable::retry(transient, |_| ctx.history.set_status(c, revision, status)).await
}

fn stopped(ctx: &Ctx) -> Error {
    Error::Stopped(ctx.stop.reason().cloned().unwrap_or(Reason::Interrupted {
        signal: "a stop request".into(),
    }))
}

/// Lists the records, marking revisions left `deploying` by a killed run (we hold the lock, so
/// nobody else is deploying) as failed.
async fn prepare_records(ctx: &Ctx, c: &str) -> Result<Vec<Stored>> {
    let mut records = ctx.history.list(Some(c)).await?;
    for r in records.iter_mut().filter(|r| r.status == Status::Deploying) {
        set_record_status(ctx, c, r.release.revision, Status::Failed).await?;
        r.status = Status::Failed;
        ctx.reporter.progress(
            c,
            Level::Warn,
            &format!(
                "revision {} was interrupted; marked failed",
                r.release.revision
            ),
        );
    }
    Ok(records)
}

/// After `shutdown`, workloads whose manifests leave replicas unset get their pre-shutdown
/// replicas back (the others get theirs from the manifests or the environment anyway).
async fn restore_replicas_after_shutdown(
    ctx: &Ctx,
    current: &Stored,
    manifests: &mut [Value],
) -> Result<()> {
    let Some(marker) = ctx
        .history
        .shutdown_marker(&current.release.component, current.release.revision)
        .await?
    else {
        return Ok(());
    };
    let saved: Value = serde_json::from_str(&marker).unwrap_or(Value::Null);
    restore_replicas(&saved, manifests);
    Ok(())
}

/// Sets `spec.replicas` from the shutdown marker `saved` where the manifests leave it unset.
fn restore_replicas(saved: &Value, manifests: &mut [Value]) {
    for object in manifests.iter_mut() {
        let key = format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        if object["spec"].get("replicas").is_none()
            && let Some(n) = saved["replicas"][&key].as_i64()
        {
            object["spec"]["replicas"] = json!(n);
        }
    }
}

/// Apply, prune what is no longer declared (unless `prunes` is false: blue is kept), wait until
/// ready.
async fn converge(
    ctx: &Ctx,
    c: &str,
    manifests: &[Value],
    prior_manifests: &[Value],
    prunes: bool,
) -> Result<()> {
    let applied = apply::apply_all(&ctx.cluster, manifests, &ctx.namespace, |o| {
        ctx.reporter
            .progress(c, Level::Info, &format!("applied {o}"));
    })
    .await?;
    if prunes {
        prune(ctx, c, manifests, prior_manifests, &applied).await?;
    }
    let mut on_change = |o: &ObjectRef, v: &Readiness| match v {
        Readiness::Ready => ctx.reporter.progress(c, Level::Info, &format!("{o} ready")),
        Readiness::Waiting(m) => ctx.reporter.progress(c, Level::Info, &format!("{o}: {m}")),
        Readiness::Failed(_) => {}
    };
    wait::until_ready(
        &ctx.cluster.client,
        &ctx.namespace,
        c,
        &applied,
        ctx.timeout_of(c),
        &mut on_change,
    )
    .await?;
    Ok(())
}

/// Deletes the objects of `c` that `manifests` do not declare (of the kinds they declare):
/// what a blue-green revision kept of the revision before it, once its window ends.
pub async fn prune_undeclared(ctx: &Ctx, c: &str, manifests: &[Value]) -> Result<()> {
    let mut keep = Vec::with_capacity(manifests.len());
    for o in manifests {
        let (_, ns) = ctx
            .cluster
            .api_for(o, &ctx.namespace)
            .await
            .map_err(apply::Error::from)?;
        keep.push(ObjectRef::of(o, ns));
    }
    prune(ctx, c, manifests, &[], &keep).await
}

/// Deletes objects labelled for `c` of the kinds it declares now or declared before that are
/// not among `keep`.
async fn prune(
    ctx: &Ctx,
    c: &str,
    manifests: &[Value],
    prior_manifests: &[Value],
    keep: &[ObjectRef],
) -> Result<()> {
    let kinds = kinds_of(manifests.iter().chain(prior_manifests));
    let stale = apply::undeclared(&ctx.cluster, c, &ctx.namespace, &kinds, keep).await?;
    for o in &stale {
        ctx.reporter
            .progress(c, Level::Info, &format!("pruning {o}"));
    }
    apply::delete_and_wait(&ctx.cluster, &stale, ctx.timeout_of(c)).await?;
    Ok(())
}

/// The (apiVersion, kind) pairs of `objects`.
pub fn kinds_of<'a>(objects: impl Iterator<Item = &'a Value>) -> BTreeSet<(String, String)> {
    objects
        .map(|o| {
            (
                o["apiVersion"].as_str().unwrap_or_default().to_string(),
                o["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Deletes everything of component `c` (declared in `manifests` or labelled for it) and waits
/// until it is gone, within `timeout`.
pub async fn remove_component(
    ctx: &Ctx,
    c: &str,
    manifests: &[Value],
    timeout: std::time::Duration,
) -> Result<()> {
    let kinds = kinds_of(manifests.iter());
    let mut objects = apply::undeclared(&ctx.cluster, c, &ctx.namespace, &kinds, &[]).await?;
    // Dependents first: workloads before their config, reverse of the install order.
    objects.sort_by_key(|o| std::cmp::Reverse(render::kind_rank(&o.kind)));
    for o in &objects {
        ctx.reporter
            .progress(c, Level::Info, &format!("deleting {o}"));
    }
    apply::delete_and_wait(&ctx.cluster, &objects, timeout).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_collects_distinct_api_version_and_kind() {
        let objects = [
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
            json!({"apiVersion": "v1", "kind": "Service"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
        ];
        let kinds = kinds_of(objects.iter());
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                ("apps/v1".to_string(), "Deployment".to_string()),
                ("v1".to_string(), "Service".to_string())
            ]
        );
    }

    #[test]
    fn shutdown_replicas_come_back_only_where_the_manifests_leave_them_unset() {
        let saved = json!({"replicas": {"Deployment/bff": 3, "StatefulSet/nats": 2}});
        let mut manifests = vec![
            json!({"kind": "Deployment", "metadata": {"name": "bff"}, "spec": {}}),
            json!({"kind": "StatefulSet", "metadata": {"name": "nats"}, "spec": {"replicas": 1}}),
            json!({"kind": "Deployment", "metadata": {"name": "other"}, "spec": {}}),
        ];
        restore_replicas(&saved, &mut manifests);
        assert_eq!(manifests[0]["spec"]["replicas"], 3);
        assert_eq!(manifests[1]["spec"]["replicas"], 1, "declared replicas win");
        assert!(manifests[2]["spec"].get("replicas").is_none());
    }

    #[test]
    fn only_a_wait_timeout_counts_as_timed_out() {
        let timeout = Error::Wait(wait::Error::Timeout {
            after: std::time::Duration::from_secs(5),
            waiting: "Deployment/bff: 0 of 1 updated replicas available".into(),
        });
        assert!(timeout.timed_out());
        assert!(
            timeout
                .to_string()
                .starts_with("timed out after 5s: Deployment/bff")
        );
        let stopped = Error::Stopped(Reason::Interrupted {
            signal: "SIGINT".into(),
        });
        assert!(!stopped.timed_out());
        assert_eq!(stopped.to_string(), "interrupted by SIGINT");
    }
}
