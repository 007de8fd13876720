//! Canary: the new revision runs as `<deployment>-canary` beside the stable Deployment; per step
//! the canary is scaled to its share, paused, analysed, and gated where configured. Requests
//! split by replica count (the canary's pods join the stable Services' selector), or with
//! `traffic = "ingress"` by the weight of an ingress-nginx canary Ingress (`split`). A failed
//! step deletes the canary (and its Services and Ingresses) and leaves the stable Deployment
//! untouched; after the last step the converge updates the stable Deployment to the new
//! revision and prunes the canary's objects (promotion).

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;

use super::split::IngressSplit;
use super::{Run, aborted, workload};
use crate::config::strategy::Traffic;
use crate::history;
use crate::ops::rollout::{self, Phase};
use crate::report::Level;

pub struct Canary<'a> {
    pub run: &'a Run<'a>,
}

impl Phase for Canary<'_> {
    fn run<'a>(
        &'a self,
        revision: u32,
        manifests: &'a [Value],
    ) -> BoxFuture<'a, rollout::Result<Vec<String>>> {
        Box::pin(self.steps(revision, manifests))
    }
}

impl Canary<'_> {
    async fn steps(&self, revision: u32, manifests: &[Value]) -> rollout::Result<Vec<String>> {
        let run = self.run;
        let Some(stable) = workload::deployment(manifests) else {
            return Err(aborted("no Deployment to run a canary of".into(), vec![]));
        };
        let api: Api<Deployment> =
            Api::namespaced(run.ctx.cluster.client.clone(), &run.ctx.namespace);
        if !matches!(api.get_opt(workload::name_of(stable)).await, Ok(Some(_))) {
            run.say(
                Level::Info,
                "no stable Deployment yet: the first revision is rolled out directly",
            );
            return Ok(vec![
                "first install: no stable revision, rolled out directly".into(),
            ]);
        }
        run.begin(revision, None).await;
        let split = match run.strategy.traffic {
            Traffic::Replicas => None,
            Traffic::Ingress => match self.split(manifests, stable).await {
                Ok(split) => Some(split),
                Err(e) => {
                    let canary = workload::canary_deployment(stable, 0);
                    let reason = format!("canary Ingress: {e}");
                    return Err(self.abort(&canary, None, reason, vec![]).await);
                }
            },
        };
        let split = split.as_ref();
        let total = workload::replicas_of(stable);
        let count = run.strategy.steps.len();
        let mut steps = Vec::new();
        for (i, percent) in run.strategy.steps.iter().enumerate() {
            let replicas = workload::canary_replicas(total, *percent);
            let canary = workload::canary_deployment(stable, replicas);
            let share = replicas * 100 / (replicas + total.max(1));
            let step = format!("step {}/{count} ({percent}%)", i + 1);
            let routed = match split {
                None => format!("~{share}% of traffic"),
                Some(_) => format!("{percent}% of the Ingress's requests"),
            };
            run.phase(&format!(
                "{step}: {replicas} canary pod(s) beside {total} stable ({routed})"
            ))
            .await;
            let abort =
                |reason: String, steps: Vec<String>| self.abort(&canary, split, reason, steps);
            if let Err(e) = run.apply_and_wait(std::slice::from_ref(&canary)).await {
                return Err(abort(format!("{step}: canary not ready: {e}"), steps).await);
            }
            if let Some(split) = split {
                match split.weigh(run, *percent).await {
                    Ok(weighed) => run.say(Level::Info, &format!("{step}: {weighed}")),
                    Err(e) => {
                        return Err(abort(format!("{step}: weighing the canary: {e}"), steps).await);
                    }
                }
            }
            if let Some(reason) = run.pause(run.strategy.pause).await {
                return Err(abort(reason, steps).await);
            }
            let new = run.pods_of(&canary, None).await;
            let baseline = run.pods_of(stable, Some(workload::TRACK_LABEL)).await;
            match run.analyse(&step, new, baseline).await {
                Ok(summary) => steps.push(format!("{step}: {replicas} canary pod(s): {summary}")),
                Err(evidence) => {
                    let reason = format!(
                        "{step}: analysis failed: {}",
                        evidence.last().cloned().unwrap_or_default()
                    );
                    steps.extend(evidence.into_iter().map(|e| format!("{step}: {e}")));
                    return Err(abort(reason, steps).await);
                }
            }
            if run.strategy.gates.contains(percent)
                && let Some(reason) = run.gate(&step).await
            {
                return Err(abort(reason, steps).await);
            }
        }
        run.phase("promoting: the stable Deployment takes the new revision")
            .await;
        Ok(steps)
    }

    /// The Ingress split of the new revision `manifests`, pinning the Services the stable
    /// revision's record declares.
    async fn split(&self, manifests: &[Value], stable: &Value) -> Result<IngressSplit, String> {
        let run = self.run;
        let records = run
            .ctx
            .history
            .list(Some(&run.component))
            .await
            .map_err(|e| e.to_string())?;
        let current = history::current(&records)
            .ok_or_else(|| "no current revision to pin the Services of".to_string())?;
        IngressSplit::start(run, &current.release.manifests, manifests, stable).await
    }

    /// Deletes the canary (its Ingresses first, its Services last, the stable Services unpinned
    /// once no canary pod is left) and returns the abort error (the stable Deployment is not
    /// touched).
    async fn abort(
        &self,
        canary: &Value,
        split: Option<&IngressSplit>,
        reason: String,
        steps: Vec<String>,
    ) -> rollout::Error {
        let run = self.run;
        run.say(Level::Error, &format!("canary aborted: {reason}"));
        if let Some(split) = split {
            split.stop_weighing(run).await;
        }
        if let Err(e) = run.remove(std::slice::from_ref(canary)).await {
            run.say(Level::Error, &format!("removing the canary: {e}"));
        }
        if let Some(split) = split {
            split.end(run).await;
        }
        run.set(|l| {
            l.phase = format!("aborted: {reason}");
            l.active = false;
        })
        .await;
        aborted(reason, steps)
    }
}
