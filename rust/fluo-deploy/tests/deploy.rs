//! Integration tests of fluo-deploy against kube-emulator (one test binary; modules below).

#[path = "deploy/backup.rs"]
mod backup;
#[path = "deploy/change.rs"]
mod change;
#[path = "deploy/cli.rs"]
mod cli;
#[path = "deploy/diagnose.rs"]
mod diagnose;
#[path = "deploy/digest.rs"]
mod digest;
#[path = "deploy/drill.rs"]
mod drill;
#[path = "deploy/dry_run.rs"]
mod dry_run;
#[path = "deploy/fault_mix.rs"]
mod fault_mix;
#[path = "deploy/follow.rs"]
mod follow;
#[path = "deploy/gate.rs"]
mod gate;
#[path = "deploy/harness.rs"]
mod harness;
#[path = "deploy/history_store.rs"]
mod history_store;
#[path = "deploy/interrupts.rs"]
mod interrupts;
#[path = "deploy/lock_and_timeouts.rs"]
mod lock_and_timeouts;
#[path = "deploy/metrics_stand_in.rs"]
mod metrics_stand_in;
#[path = "deploy/monitor.rs"]
mod monitor;
#[path = "deploy/ops.rs"]
mod ops;
#[path = "deploy/output.rs"]
mod output;
#[path = "deploy/pipeline.rs"]
mod pipeline;
#[path = "deploy/post_checks.rs"]
mod post_checks;
#[path = "deploy/preflight.rs"]
mod preflight;
#[path = "deploy/progressive.rs"]
mod progressive;
#[path = "deploy/progressive_traffic.rs"]
mod progressive_traffic;
#[path = "deploy/rotate.rs"]
mod rotate;
#[path = "deploy/safety.rs"]
mod safety;
#[path = "deploy/throttling.rs"]
mod throttling;
#[path = "deploy/trust.rs"]
mod trust;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

/// Image of the first container of Deployment `name` in namespace fluo.
pub async fn image_of(client: &kube::Client, name: &str) -> Option<String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "fluo");
    let d = api.get_opt(name).await.expect("get deployment")?;
    d.spec.template.spec?.containers.first()?.image.clone()
}

/// The images of the default install (what rollback-to-previous restores in these tests).
pub const DEFAULT_IMAGES: [(&str, &str); 4] = [
    ("nats", "fluo/nats:2.10"),
    ("prometheus", "fluo/prometheus:2.53"),
    ("bff", "fluo/fluo-bff:dev"),
    ("workers", "fluo/fluo-worker:dev"),
];

/// Asserts each Deployment (by name) runs the given image.
pub async fn assert_images(client: &kube::Client, expected: &[(&str, &str)]) {
    for (name, image) in expected {
        assert_eq!(
            image_of(client, name).await.as_deref(),
            Some(*image),
            "{name}"
        );
    }
}

/// Names of the release records in fluo-system (fails loudly if listing fails: a "nothing
/// changed" check must never pass because it could not look).
pub async fn records(client: &kube::Client) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), "fluo-system");
    let list = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing release records in fluo-system: {e}"));
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|s| s.type_.as_deref() == Some("fluo.dev/release.v1"))
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names
}

/// Every kind a component of the fixtures or of infra/ declares in the app namespace, plus what
/// controllers make from them (ReplicaSets, Pods, claims): (apiVersion, kind).
pub const APP_KINDS: [(&str, &str); 16] = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "Job"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("networking.k8s.io/v1", "Ingress"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
];

/// Every object in namespace fluo of `APP_KINDS`, as `Kind/name` (the namespace's own
/// `default` ServiceAccount left out), failing loudly if a list call fails.
pub async fn app_objects(client: &kube::Client) -> Vec<String> {
    let mut out = Vec::new();
    for (api_version, kind) in APP_KINDS {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("discovering {api_version} {kind}: {e}"));
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(client.clone(), "fluo", &resource);
        let list = api
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing {kind} in namespace fluo: {e}"));
        out.extend(
            list.items
                .into_iter()
                .filter_map(|o| o.metadata.name)
                .filter(|n| !(kind == "ServiceAccount" && n == "default"))
                .map(|n| format!("{kind}/{n}")),
        );
    }
    out.sort();
    out
}

/// Nothing was changed: neither namespace exists, no app object, no release record.
pub async fn assert_untouched(client: &kube::Client) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["fluo", "fluo-system"] {
        assert!(
            namespaces
                .get_opt(ns)
                .await
                .unwrap_or_else(|e| panic!("reading namespace {ns}: {e}"))
                .is_none(),
            "namespace {ns} was created"
        );
    }
    assert_eq!(app_objects(client).await, Vec::<String>::new());
    assert_eq!(records(client).await, Vec::<String>::new());
}
