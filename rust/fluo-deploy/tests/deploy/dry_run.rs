//! `deploy --dry-run`: the plan (graph order, versions from -> to, the diff against the live
//! cluster), exit 0, and nothing changed: no object, record, namespace or lock.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::harness::World;
use crate::image_of;

/// `Kind/name@resourceVersion` of every object of kind `K` (in `namespace`, or cluster-wide);
/// a failed list fails the test (an empty answer must mean no objects).
async fn versions<K>(client: &kube::Client, namespace: Option<&str>) -> Vec<String>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing {}: {e}", K::kind(&())));
    list.items
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{}@{}",
                K::kind(&()),
                o.namespace().unwrap_or_default(),
                o.name_any(),
                o.resource_version().unwrap_or_default()
            )
        })
        .collect()
}

/// Everything a deploy could touch: workloads, services, release records, the lock.
async fn snapshot(client: &kube::Client) -> Vec<String> {
    let mut all = versions::<Deployment>(client, None).await;
    all.extend(versions::<Service>(client, None).await);
    all.extend(versions::<Secret>(client, None).await);
    all.extend(versions::<Lease>(client, None).await);
    all.sort();
    all
}

async fn namespaces(client: &kube::Client) -> Vec<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing namespaces: {e}"));
    list.items.iter().map(|n| n.name_any()).collect()
}

/// The plan's table row of `component` holds every one of `cells`, in order.
fn assert_row(stdout: &str, component: &str, cells: &[&str]) {
    let row = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(component) && l.contains(" v"))
        .unwrap_or_else(|| panic!("no plan row for {component}:\n{stdout}"));
    let mut rest = row;
    for cell in cells {
        let at = rest
            .find(cell)
            .unwrap_or_else(|| panic!("row {row:?} lacks {cell:?} (in order)"));
        rest = &rest[at + cell.len()..];
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_of_an_update_prints_the_plan_and_changes_nothing() {
    let w = World::start().await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let before = snapshot(&w.client).await;
    assert!(
        before.iter().any(|o| o.contains("fluo.release.bff.v1")),
        "the install wrote records: {before:?}"
    );
    let run = w
        .cmd([
            "deploy",
            "bff",
            "workers",
            "--image",
            "fluo-bff=fluo/fluo-bff:2",
            "--dry-run",
        ])
        .run()
        .await;
    run.code(0)
        .stdout_has("plan for environment local (namespace fluo)")
        .stdout_has("  1. bff\n  2. workers\n")
        .stdout_has("~ bff: Deployment/bff (change)")
        .stdout_has("= workers: Deployment/workers (unchanged)")
        .stdout_has("dry run: nothing was changed");
    assert_eq!(
        snapshot(&w.client).await,
        before,
        "a dry run changed objects"
    );
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev")
    );
    // JSON carries the same plan.
    let json = w
        .cmd(["-o", "json", "deploy", "bff", "--dry-run"])
        .run()
        .await;
    json.code(0);
    let plan = json.json();
    assert_eq!(plan["components"][0]["from"]["revision"], 1, "{plan}");
    assert_eq!(plan["components"][0]["to"]["revision"], 2, "{plan}");
    assert_eq!(plan["order"], "parallel", "{plan}");
    assert_eq!(snapshot(&w.client).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_on_an_empty_cluster_creates_no_namespace_record_or_lock() {
    let w = World::start().await;
    let namespaces_before = namespaces(&w.client).await;
    let before = snapshot(&w.client).await;
    let run = w.cmd(["deploy", "--all", "--dry-run"]).run().await;
    run.code(0)
        .stdout_has("  1. nats, prometheus\n  2. bff\n  3. workers\n")
        .stdout_has("+ nats: Deployment/nats (create)")
        .stdout_has("+ workers: Service/workers (create)");
    assert_row(
        &run.stdout,
        "nats",
        &["(not installed)", "v1 nats=fluo/nats:2.10"],
    );
    assert_eq!(snapshot(&w.client).await, before);
    assert_eq!(namespaces(&w.client).await, namespaces_before);
    assert!(!namespaces_before.contains(&"fluo".to_string()));
}
