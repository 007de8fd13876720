//! Keeping requests off new pods that carry the stable pods' labels. The stable Services are
//! pinned to the stable ReplicaSet's pods (their `pod-template-hash`, as Argo Rollouts does),
//! so only what we route on purpose reaches the new pods:
//! - a blue-green green beside an unslotted blue (the first blue-green revision after rolling
//!   ones): nothing, until the switch;
//! - an Ingress-weighted canary (`traffic = "ingress"`): the canary Ingress's weight, through
//!   the canary Services (`IngressSplit`).
//!
//! Pinning and unpinning are server-side applies of the Services as the stable revision
//! declares them (with and without the hash), so the converge of a promotion unpins too.

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::{Run, workload};
use crate::report::Level;

/// The `pod-template-hash` of the running pods of `deployment` that are not a canary's.
async fn stable_hash(run: &Run<'_>, deployment: &Value) -> Result<String, String> {
    let pods: Vec<Pod> = run
        .live_pods(deployment, Some(workload::TRACK_LABEL))
        .await?;
    let mut hashes: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(workload::HASH_LABEL))
        .map(String::as_str)
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    match hashes.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "no running pod of {} to pin its Services to",
            workload::name_of(deployment)
        )),
        many => Err(format!(
            "{} runs pods of {} templates ({}): let its rollout finish first",
            workload::name_of(deployment),
            many.len(),
            many.join(", ")
        )),
    }
}

/// Pins the Services routing to `stable_manifests`' Deployment (as the stable revision declares
/// them) to the pods `deployment` runs now. Ok: the Services to re-apply to unpin them.
pub async fn pin(
    run: &Run<'_>,
    stable_manifests: &[Value],
    deployment: &Value,
) -> Result<Vec<Value>, String> {
    let hash = stable_hash(run, deployment).await?;
    let pinned = workload::pinned_services(stable_manifests, &hash);
    run.apply(&pinned).await.map_err(|e| e.to_string())?;
    let names: Vec<&str> = pinned.iter().map(workload::name_of).collect();
    run.say(
        Level::Info,
        &format!(
            "Service {} pinned to the stable pods ({}={hash})",
            names.join(", "),
            workload::HASH_LABEL
        ),
    );
    Ok(workload::routing_services(stable_manifests))
}

/// Re-applies the Services `pin` returned (a failure is reported: the next deploy re-applies
/// them anyway).
pub async fn unpin(run: &Run<'_>, services: &[Value]) {
    match run.apply(services).await {
        Ok(()) => run.say(Level::Info, "stable Services unpinned"),
        Err(e) => run.say(
            Level::Error,
            &format!("unpinning the stable Services: {e} (the next deploy of the component re-applies them)"),
        ),
    }
}

/// An Ingress-weighted canary's routing: the stable Services pinned, the canary Services, and
/// the canary Ingresses weighed per step.
pub struct IngressSplit {
    unpinned: Vec<Value>,
    services: Vec<Value>,
    /// The new revision as rendered (the canary Ingresses are made from it).
    manifests: Vec<Value>,
}

impl IngressSplit {
    /// Pins the stable Services and creates the canary Services (no Ingress weighs yet).
    pub async fn start(
        run: &Run<'_>,
        stable_manifests: &[Value],
        manifests: &[Value],
        stable: &Value,
    ) -> Result<IngressSplit, String> {
        let unpinned = pin(run, stable_manifests, stable).await?;
        let split = IngressSplit {
            unpinned,
            services: workload::canary_services(manifests),
            manifests: manifests.to_vec(),
        };
        if let Err(e) = run.apply(&split.services).await {
            split.end(run).await;
            return Err(e.to_string());
        }
        Ok(split)
    }

    /// Sends `percent`% of the Ingress's requests to the canary.
    pub async fn weigh(&self, run: &Run<'_>, percent: u32) -> Result<String, String> {
        let ingresses = workload::canary_ingresses(&self.manifests, percent);
        run.apply(&ingresses).await.map_err(|e| e.to_string())?;
        let names: Vec<&str> = ingresses.iter().map(workload::name_of).collect();
        Ok(format!(
            "canary-weight {percent} on Ingress {}",
            names.join(", ")
        ))
    }

    /// Takes the canary Ingresses away (requests go to the stable pods only).
    pub async fn stop_weighing(&self, run: &Run<'_>) {
        if let Err(e) = run
            .remove(&workload::canary_ingresses(&self.manifests, 0))
            .await
        {
            run.say(Level::Error, &format!("removing the canary Ingress: {e}"));
        }
    }

    /// Unpins the stable Services and deletes the canary Services and Ingresses.
    pub async fn end(&self, run: &Run<'_>) {
        self.stop_weighing(run).await;
        unpin(run, &self.unpinned).await;
        if let Err(e) = run.remove(&self.services).await {
            run.say(Level::Error, &format!("removing the canary Services: {e}"));
        }
    }
}
