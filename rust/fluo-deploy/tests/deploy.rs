//! Integration tests of fluo-deploy against kube-emulator (one test binary; modules below).

#[path = "deploy/follow.rs"]
mod follow;
#[path = "deploy/gate.rs"]
mod gate;
#[path = "deploy/harness.rs"]
mod harness;
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
#[path = "deploy/safety.rs"]
mod safety;
#[path = "deploy/throttling.rs"]
mod throttling;

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

/// Names of the release records in fluo-system.
pub async fn records(client: &kube::Client) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), "fluo-system");
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let mut names: Vec<String> = list
                .items
                .into_iter()
                .filter(|s| s.type_.as_deref() == Some("fluo.dev/release.v1"))
                .filter_map(|s| s.metadata.name)
                .collect();
            names.sort();
            names
        }
        Err(_) => vec![],
    }
}

/// Every object name in namespace fluo of the kinds fluo applies in these fixtures.
pub async fn app_objects(client: &kube::Client) -> Vec<String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "fluo");
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "fluo");
    let mut out = Vec::new();
    if let Ok(l) = deployments.list(&ListParams::default()).await {
        out.extend(
            l.items
                .into_iter()
                .filter_map(|d| d.metadata.name)
                .map(|n| format!("Deployment/{n}")),
        );
    }
    if let Ok(l) = services.list(&ListParams::default()).await {
        out.extend(
            l.items
                .into_iter()
                .filter_map(|d| d.metadata.name)
                .map(|n| format!("Service/{n}")),
        );
    }
    out.sort();
    out
}
