//! Progressive delivery from the CLI (issue 17): canary and blue-green rollouts with a
//! Prometheus analysis, nothing installed in the cluster. A strategy is a `rollout::Phase`
//! run between a revision's `deploying` record and its converge, so records, locking,
//! readiness, fail-fast, stops and notifications are those of a rolling deploy.
//!
//! - `workload`: pure transforms (canary Deployment, slots, Service selectors, previews);
//! - `analysis`: the samples and their verdicts (`Metrics` is implemented by the wiring crate);
//! - `state`: the live state record `status` shows and `promote`/`abort` write;
//! - `canary`, `bluegreen`: the two phases; `gate`: promote, abort and blue's retirement;
//! - `split`: keeping requests off new pods (stable Services pinned, Ingress weights).

pub mod analysis;
pub mod bluegreen;
pub mod canary;
pub mod gate;
pub mod split;
pub mod state;
pub mod workload;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::context::{Ctx, Hooks, RunInfo};
use super::outcome::ComponentResult;
use super::recover;
use super::rollout::{self, Planned};
use crate::apply::{self, ObjectRef};
use crate::config::strategy::{ComponentStrategy, Kind};
use crate::report::Level;
use analysis::Metrics;
use state::{Live, Request};

/// Rolls `planned` out with its component's strategy; a failure is rolled back (rolling) or
/// aborted with the stable revision untouched (canary, blue-green). `checks`: the post-deploy
/// checks of this run (None when they are off), which also check a green before its switch.
pub async fn roll_out_or_back(
    ctx: &Ctx,
    planned: &Planned,
    info: &RunInfo,
    metrics: Option<&dyn Metrics>,
    checks: Option<&dyn Hooks>,
) -> ComponentResult {
    let strategy = ctx.config.environment.strategy.of(&planned.component);
    let run = Run {
        ctx,
        component: planned.component.clone(),
        strategy,
        metrics,
        checks,
        deploy_id: info.deploy_id.clone(),
    };
    let result = match run.strategy.kind {
        Kind::Rolling => return recover::roll_out_or_back(ctx, planned, info).await,
        Kind::Canary => {
            let phase = canary::Canary { run: &run };
            recover::roll_out_or_back_phased(ctx, planned, info, Some(&phase)).await
        }
        Kind::BlueGreen => bluegreen::roll_out_or_back(&run, planned, info).await,
    };
    let phase = match &result {
        ComponentResult::Deployed { revision, .. } => format!("promoted v{revision}"),
        ComponentResult::RolledBack { message, .. } => format!("ended: {message}"),
        other => format!(
            "ended: {}",
            serde_json::to_string(other).unwrap_or_default()
        ),
    };
    // A phase that ended itself (aborted, switched) already said how.
    run.set(|l| {
        if l.active {
            l.phase = phase.clone();
        }
        l.active = false;
    })
    .await;
    result
}

/// One component's progressive rollout: what the phases share.
pub struct Run<'a> {
    pub ctx: &'a Ctx,
    pub component: String,
    pub strategy: ComponentStrategy,
    pub metrics: Option<&'a dyn Metrics>,
    pub checks: Option<&'a dyn Hooks>,
    pub deploy_id: String,
}

impl Run<'_> {
    fn say(&self, level: Level, message: &str) {
        self.ctx.reporter.progress(&self.component, level, message);
    }

    /// Starts the live state of revision `revision` (a previous run's is replaced, its kept
    /// blue included: the new revision takes its slot or retires it).
    async fn begin(&self, revision: u32, keep_blue: Option<state::Blue>) {
        let fresh = Live {
            component: self.component.clone(),
            strategy: self.strategy.kind,
            revision,
            deploy_id: self.deploy_id.clone(),
            phase: "starting".into(),
            active: true,
            analysis: vec![],
            request: None,
            blue: keep_blue,
            updated_at: chrono::Utc::now(),
        };
        let store = state::store(&self.ctx.cluster.client);
        let result = state::update(
            &store,
            &self.component,
            || Some(fresh.clone()),
            |l| {
                *l = fresh.clone();
            },
        )
        .await;
        if let Err(e) = result {
            self.say(Level::Warn, &format!("writing the rollout state: {e}"));
        }
    }

    /// Changes the live state (a failed write is reported, never fatal: the record decides).
    async fn set(&self, change: impl Fn(&mut Live)) {
        let store = state::store(&self.ctx.cluster.client);
        if let Err(e) = state::update(&store, &self.component, || None, change).await {
            self.say(Level::Warn, &format!("writing the rollout state: {e}"));
        }
    }

    async fn phase(&self, phase: &str) {
        self.say(Level::Info, phase);
        self.set(|l| l.phase = phase.to_string()).await;
    }

    /// An operator's pending request, taken (cleared) when it is `take`.
    async fn request(&self, take: Request) -> Option<(Request, String)> {
        let store = state::store(&self.ctx.cluster.client);
        let live = state::get(&store, &self.component).await.ok().flatten()?;
        let request = live.value.request.clone()?;
        if request.0 == take {
            self.set(|l| l.request = None).await;
        }
        Some(request)
    }

    /// `Some(reason)` once an operator asked to abort.
    async fn abort_requested(&self) -> Option<String> {
        match self.request(Request::Abort).await {
            Some((Request::Abort, by)) => Some(format!("aborted by {by} (fluo-deploy abort)")),
            _ => None,
        }
    }

    /// Sleeps `pause`, ending early with the reason of an abort request.
    async fn pause(&self, pause: Duration) -> Option<String> {
        let until = tokio::time::Instant::now() + pause;
        loop {
            if let Some(reason) = self.abort_requested().await {
                return Some(reason);
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return None;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(200))).await;
        }
    }

    /// Waits at a manual gate until `promote` (None) or `abort` (Some(reason)).
    async fn gate(&self, what: &str) -> Option<String> {
        self.phase(&format!(
            "{what}: waiting for `fluo-deploy promote {c}` (or `fluo-deploy abort {c}`)",
            c = self.component
        ))
        .await;
        loop {
            match self.request(Request::Promote).await {
                Some((Request::Promote, by)) => {
                    self.say(Level::Info, &format!("promoted by {by}"));
                    return None;
                }
                Some((Request::Abort, by)) => {
                    self.set(|l| l.request = None).await;
                    return Some(format!("aborted by {by} (fluo-deploy abort)"));
                }
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Runs the analysis (if configured) of the pods matching `new` against `baseline`. Ok: a
    /// summary for the record; Err: the evidence.
    async fn analyse(
        &self,
        step: &str,
        new: Vec<String>,
        baseline: Vec<String>,
    ) -> Result<String, Vec<String>> {
        let Some(config) = &self.strategy.analysis else {
            return Ok("no analysis configured".into());
        };
        let Some(metrics) = self.metrics else {
            return Err(vec!["no Prometheus to analyse with".into()]);
        };
        self.phase(&format!("{step}: analysing ({} samples)", config.samples))
            .await;
        let pods = analysis::Pods { new, baseline };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let on_sample = |line: &str| {
            let _ = tx.send(line.to_string());
        };
        let running = analysis::run(config, metrics, &pods, on_sample, || self.abort_requested());
        tokio::pin!(running);
        let result = loop {
            tokio::select! {
                result = &mut running => break result,
                Some(line) = rx.recv() => self.record_sample(&line).await,
            }
        };
        while let Ok(line) = rx.try_recv() {
            self.record_sample(&line).await;
        }
        match result {
            Ok(evidence) => Ok(format!(
                "analysis passed: {}",
                evidence.last().cloned().unwrap_or_default()
            )),
            Err(evidence) => Err(evidence),
        }
    }

    async fn record_sample(&self, line: &str) {
        let failed = line.contains("FAILS") || line.contains("query failed");
        let level = if failed { Level::Warn } else { Level::Info };
        self.say(level, line);
        self.set(|l| l.analysis.push(line.to_string())).await;
    }

    /// Applies `objects` and waits until they are ready (the component's timeout).
    async fn apply_and_wait(&self, objects: &[Value]) -> rollout::Result<Vec<ObjectRef>> {
        let ctx = self.ctx;
        let c = self.component.as_str();
        let applied = apply::apply_all(&ctx.cluster, objects, &ctx.namespace, |o| {
            ctx.reporter
                .progress(c, Level::Info, &format!("applied {o}"));
        })
        .await?;
        crate::wait::until_ready(
            &ctx.cluster.client,
            &ctx.namespace,
            c,
            &applied,
            ctx.timeout_of(c),
            &mut |_, _| {},
        )
        .await?;
        Ok(applied)
    }

    /// Applies `objects` (Services, Ingresses: nothing to wait for).
    async fn apply(&self, objects: &[Value]) -> apply::Result<()> {
        let ctx = self.ctx;
        apply::apply_all(&ctx.cluster, objects, &ctx.namespace, |o| {
            ctx.reporter
                .progress(&self.component, Level::Info, &format!("applied {o}"));
        })
        .await?;
        Ok(())
    }

    /// Deletes `objects` (those that exist) and waits until they are gone.
    async fn remove(&self, objects: &[Value]) -> rollout::Result<()> {
        let mut refs = Vec::new();
        for o in objects {
            let (api, ns) = self
                .ctx
                .cluster
                .api_for(o, &self.ctx.namespace)
                .await
                .map_err(apply::Error::from)?;
            if let Ok(Some(_)) = api.get_opt(workload::name_of(o)).await {
                self.say(Level::Info, &format!("deleting {}", ObjectRef::of(o, None)));
                refs.push(ObjectRef::of(o, ns));
            }
        }
        apply::delete_and_wait(
            &self.ctx.cluster,
            &refs,
            self.ctx.timeout_of(&self.component),
        )
        .await?;
        Ok(())
    }

    /// The running pods of `deployment` (by its selector), leaving out pods that carry
    /// `exclude` (the stable Deployment's selector also matches the canary's).
    async fn live_pods(
        &self,
        deployment: &Value,
        exclude: Option<&str>,
    ) -> Result<Vec<Pod>, String> {
        let selector = deployment["spec"]["selector"]["matchLabels"]
            .as_object()
            .ok_or_else(|| format!("{} has no matchLabels", workload::name_of(deployment)))?
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        let api: Api<Pod> = Api::namespaced(self.ctx.cluster.client.clone(), &self.ctx.namespace);
        let pods = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| format!("listing the pods of {}: {e}", workload::name_of(deployment)))?;
        Ok(pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                exclude.is_none_or(|label| {
                    p.metadata
                        .labels
                        .as_ref()
                        .is_none_or(|l| !l.contains_key(label))
                })
            })
            .collect())
    }

    /// The IPs of the running pods of `deployment` (see `live_pods`); empty when none.
    async fn pods_of(&self, deployment: &Value, exclude: Option<&str>) -> Vec<String> {
        let Ok(pods) = self.live_pods(deployment, exclude).await else {
            return Vec::new();
        };
        pods.iter()
            .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
            .collect()
    }
}

/// The error of an aborted progressive rollout, with its evidence.
fn aborted(reason: String, mut steps: Vec<String>) -> rollout::Error {
    steps.push(format!("aborted: {reason}"));
    rollout::Error::Analysis { reason, steps }
}
