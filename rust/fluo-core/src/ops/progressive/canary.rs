//! Canary: the new revision runs as `<deployment>-canary` beside the stable Deployment (the
//! same Service selector, so traffic splits by replica count); per step the canary is scaled
//! to its share, paused, analysed, and gated where configured. A failed step deletes the
//! canary and leaves the stable Deployment untouched; after the last step the converge updates
//! the stable Deployment to the new revision and prunes the canary (promotion).

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;

use super::{Run, aborted, workload};
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
        let total = workload::replicas_of(stable);
        let count = run.strategy.steps.len();
        let mut steps = Vec::new();
        for (i, percent) in run.strategy.steps.iter().enumerate() {
            let replicas = workload::canary_replicas(total, *percent);
            let canary = workload::canary_deployment(stable, replicas);
            let share = replicas * 100 / (replicas + total.max(1));
            let step = format!("step {}/{count} ({percent}%)", i + 1);
            run.phase(&format!(
                "{step}: {replicas} canary pod(s) beside {total} stable (~{share}% of traffic)"
            ))
            .await;
            if let Err(e) = run.apply_and_wait(std::slice::from_ref(&canary)).await {
                return Err(self
                    .abort(&canary, format!("{step}: canary not ready: {e}"), steps)
                    .await);
            }
            if let Some(reason) = run.pause(run.strategy.pause).await {
                return Err(self.abort(&canary, reason, steps).await);
            }
            let new = run.pods_of(&canary, None).await.unwrap_or_default();
            let baseline = run.pods_of(stable, Some(workload::TRACK_LABEL)).await;
            match run.analyse(&step, new, baseline).await {
                Ok(summary) => steps.push(format!("{step}: {replicas} canary pod(s): {summary}")),
                Err(evidence) => {
                    let reason = format!(
                        "{step}: analysis failed: {}",
                        evidence.last().cloned().unwrap_or_default()
                    );
                    steps.extend(evidence.into_iter().map(|e| format!("{step}: {e}")));
                    return Err(self.abort(&canary, reason, steps).await);
                }
            }
            if run.strategy.gates.contains(percent)
                && let Some(reason) = run.gate(&step).await
            {
                return Err(self.abort(&canary, reason, steps).await);
            }
        }
        run.phase("promoting: the stable Deployment takes the new revision")
            .await;
        Ok(steps)
    }

    /// Deletes the canary and returns the abort error (the stable Deployment is not touched).
    async fn abort(&self, canary: &Value, reason: String, steps: Vec<String>) -> rollout::Error {
        let run = self.run;
        run.say(Level::Error, &format!("canary aborted: {reason}"));
        if let Err(e) = run.remove(std::slice::from_ref(canary)).await {
            run.say(Level::Error, &format!("removing the canary: {e}"));
        }
        run.set(|l| {
            l.phase = format!("aborted: {reason}");
            l.active = false;
        })
        .await;
        aborted(reason, steps)
    }
}
