//! Moving the services onto the new NATS users: every Deployment whose pods mount the Secret
//! nats-credentials (the BFF and the workers, blue and green alike) gets the new user names
//! as a pod-template annotation, a rolling restart like `kubectl rollout restart` (new pods
//! read the Secret at start; the BFF drains in-flight requests, workers hand jobs back). A
//! Deployment that already carries the names is not restarted again, so a resumed rotation
//! only waits for it.

use std::collections::BTreeMap;

use fluo_core::apply::ObjectRef;
use fluo_core::ops::Ctx;
use fluo_core::readiness::{self, Readiness};
use fluo_core::report::Level;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams, Patch, PatchParams};

use super::state::CREDENTIALS;

/// The pod-template annotation holding the NATS users the pods were started for.
pub const USERS: &str = "fluo.dev/nats-users";
const FIELD_MANAGER: &str = "fluo-rotate";

/// The Deployments whose pods mount nats-credentials, with their component label.
pub async fn deployments(ctx: &Ctx) -> Result<Vec<Deployment>, String> {
    let api: Api<Deployment> = Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing the Deployments in {}: {e}", ctx.namespace))?;
    Ok(list
        .items
        .into_iter()
        .filter(|d| {
            d.spec
                .template
                .spec
                .as_ref()
                .and_then(|p| p.volumes.as_ref())
                .is_some_and(|vs| {
                    vs.iter().any(|v| {
                        v.secret.as_ref().and_then(|s| s.secret_name.as_deref())
                            == Some(CREDENTIALS)
                    })
                })
        })
        .collect())
}

fn name(d: &Deployment) -> String {
    d.metadata.name.clone().unwrap_or_default()
}

/// Refuses unless each Deployment is rolled out (kubectl's rules), naming the one that is not.
pub fn rolled_out(ctx: &Ctx, list: &[Deployment]) -> Result<(), String> {
    if list.is_empty() {
        return Err(format!(
            "no Deployment in {} mounts the Secret {CREDENTIALS}: deploy bff and workers first",
            ctx.namespace
        ));
    }
    for d in list {
        if let Readiness::Waiting(m) | Readiness::Failed(m) = readiness::deployment(d, &[]) {
            return Err(format!(
                "Deployment {}/{} is not rolled out ({m}); wait for it or roll it back first",
                ctx.namespace,
                name(d)
            ));
        }
    }
    Ok(())
}

fn annotation(d: &Deployment) -> Option<&str> {
    d.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(USERS))
        .map(String::as_str)
}

/// Restarts every Deployment of `list` not yet started for `users` and waits until all are
/// rolled out; returns the restarted names.
pub async fn roll(ctx: &Ctx, list: &[Deployment], users: &str) -> Result<Vec<String>, String> {
    let api: Api<Deployment> = Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let patch =
        serde_json::json!({"spec": {"template": {"metadata": {"annotations": {USERS: users}}}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let mut restarted = Vec::new();
    let mut by_component: BTreeMap<String, Vec<ObjectRef>> = BTreeMap::new();
    for d in list {
        let n = name(d);
        if annotation(d) != Some(users) {
            api.patch(&n, &params, &Patch::Merge(&patch))
                .await
                .map_err(|e| format!("restarting Deployment {}/{n}: {e}", ctx.namespace))?;
            ctx.reporter.progress(
                "nats",
                Level::Info,
                &format!("restarting Deployment {n} with the new users"),
            );
            restarted.push(n.clone());
        }
        let component = d
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(fluo_core::render::COMPONENT_LABEL))
            .cloned()
            .unwrap_or_default();
        by_component.entry(component).or_default().push(ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: n,
            namespace: Some(ctx.namespace.clone()),
        });
    }
    for (component, objects) in &by_component {
        let mut on_change = |o: &ObjectRef, r: &Readiness| {
            if let Readiness::Waiting(m) = r {
                ctx.reporter
                    .progress(component, Level::Info, &format!("{}: {m}", o.name));
            }
        };
        fluo_core::wait::until_ready(
            &ctx.cluster.client,
            &ctx.namespace,
            component,
            objects,
            ctx.timeout_of(component),
            &mut on_change,
        )
        .await
        .map_err(|e| format!("rolling out {component} with the new NATS users: {e}"))?;
    }
    Ok(restarted)
}
