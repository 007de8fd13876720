//! Checks against the target cluster: it answers, every object passes a server-side dry-run
//! apply (admission, quota, immutable fields; field manager `fluo`, like the deploy), and the
//! Secrets that manifests declare external exist.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;

use crate::crossref;
use crate::finding::{Finding, Location};
use crate::manifests::{CLUSTER_COMPONENT, ManifestSet, Object};
use crate::rules;
use crate::secrets::redact_quoted;

/// The field manager the deployer applies with.
pub const FIELD_MANAGER: &str = "fluo";

/// `Ok(version)` when the API server answers.
pub async fn reachable(client: &kube::Client) -> Result<String, Finding> {
    client
        .apiserver_version()
        .await
        .map(|info| info.git_version)
        .map_err(|e| {
            rules::CLUSTER_REACHABLE
                .general(format!("the cluster does not answer: {}", describe(&e)))
        })
}

fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => redact_quoted(&status.message),
        other => redact_quoted(&other.to_string()),
    }
}

fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    match api_version.split_once('/') {
        Some((group, version)) => GroupVersionKind::gvk(group, version, kind),
        None => GroupVersionKind::gvk("", api_version, kind),
    }
}

async fn namespace_exists(client: &kube::Client, name: &str) -> Result<bool, kube::Error> {
    Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .map(|n| n.is_some())
}

/// Dry-run requests in flight at once: the objects are independent, and one after another
/// the gate's time grew with the whole tree (2,000 objects: seconds before the first apply).
const DRY_RUN_CONCURRENCY: usize = 16;

/// The objects a dry run covers: the cluster-wide ones and those of the `applied` components
/// (`None`: every component). Components a deploy leaves alone are not applied, so a dry run
/// of theirs would check nothing the deploy does.
pub fn dry_run_objects<'a, 'o>(
    set: &'a ManifestSet<'o>,
    applied: Option<&'a BTreeSet<String>>,
) -> impl Iterator<Item = &'a Object<'o>> + 'a {
    set.objects.iter().filter(move |o| is_dry_run(o, applied))
}

fn is_dry_run(object: &Object<'_>, applied: Option<&BTreeSet<String>>) -> bool {
    object.component == CLUSTER_COMPONENT || applied.is_none_or(|a| a.contains(&object.component))
}

/// Dry-run applies the objects of [`dry_run_objects`], [`DRY_RUN_CONCURRENCY`] at a time;
/// findings keep the order of the set. Objects in a namespace that does not exist yet (created
/// by the deploy itself) cannot be dry-run; they are listed in the returned notes.
pub async fn dry_run(
    client: &kube::Client,
    set: &ManifestSet<'_>,
    applied: Option<&BTreeSet<String>>,
) -> (Vec<Finding>, Vec<String>) {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let mut resources: HashMap<(String, String), Result<ApiResource, String>> = HashMap::new();
    let mut namespaces: HashMap<String, Result<bool, String>> = HashMap::new();
    let mut missing_namespaces: BTreeSet<String> = BTreeSet::new();
    let mut not_run = 0usize;
    let mut requests = Vec::new();
    for (index, object) in set
        .objects
        .iter()
        .enumerate()
        .filter(|(_, o)| is_dry_run(o, applied))
    {
        let doc = &object.doc;
        let location = Some(Location::field(doc, crate::path::FieldPath::root()));
        if let Some(namespace) = &object.namespace {
            if !namespaces.contains_key(namespace) {
                let exists = namespace_exists(client, namespace)
                    .await
                    .map_err(|e| describe(&e));
                namespaces.insert(namespace.clone(), exists);
            }
            match &namespaces[namespace] {
                Ok(true) => {}
                Ok(false) => {
                    missing_namespaces.insert(namespace.clone());
                    not_run += 1;
                    continue;
                }
                Err(message) => {
                    findings.push(rules::CLUSTER_DRY_RUN.located(
                        location,
                        format!("cannot look up namespace {namespace}: {message}"),
                    ));
                    continue;
                }
            }
        }
        let key = (doc.api_version().to_string(), doc.kind().to_string());
        if !resources.contains_key(&key) {
            let gvk = gvk_of(doc.api_version(), doc.kind());
            let resolved = kube::discovery::pinned_kind(client, &gvk)
                .await
                .map(|(resource, _)| resource)
                .map_err(|e| describe(&e));
            resources.insert(key.clone(), resolved);
        }
        let resource = match &resources[&key] {
            Ok(resource) => resource,
            Err(message) => {
                findings.push(rules::CLUSTER_DRY_RUN.located(
                    location,
                    format!("the cluster does not serve {} {}: {message}", key.0, key.1),
                ));
                continue;
            }
        };
        let api: Api<DynamicObject> = match &object.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
            None => Api::all_with(client.clone(), resource),
        };
        requests.push((location, index, api));
    }
    // Each body is copied when its request is sent, not all up front: a copy of every object
    // of a 2,000-object tree was the gate's largest allocation. Objects by index, futures that
    // own what they use: borrowed arguments or futures trip the `Send` inference of the
    // callers' boxed futures.
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let rejected = futures::stream::iter(requests.into_iter().map(
        |(location, index, api): (_, usize, Api<DynamicObject>)| {
            let object = &set.objects[index];
            let params = params.clone();
            let name = object.doc.name().to_string();
            let display = object.doc.display_name();
            let mut body = object.doc.object.clone();
            if let Some(namespace) = &object.namespace {
                body["metadata"]["namespace"] = serde_json::Value::String(namespace.clone());
            }
            async move {
                let result = api.patch(&name, &params, &Patch::Apply(&body)).await;
                result.err().map(|e| {
                    rules::CLUSTER_DRY_RUN.located(
                        location,
                        format!(
                            "server-side dry run of {display} rejected: {}",
                            describe(&e)
                        ),
                    )
                })
            }
        },
    ))
    .buffered(DRY_RUN_CONCURRENCY)
    .filter_map(|finding| async move { finding })
    .collect::<Vec<_>>()
    .await;
    findings.extend(rejected);
    if not_run > 0 {
        notes.push(format!(
            "{not_run} object(s) not dry-run: namespace(s) {} do not exist yet (the deploy creates them)",
            missing_namespaces.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    (findings, notes)
}

/// Every Secret that a workload declares external must exist in its namespace.
pub async fn external_secrets(client: &kube::Client, set: &ManifestSet<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (namespace, name) in crossref::external_secrets(set) {
        match Api::<Secret>::namespaced(client.clone(), &namespace)
            .get_opt(&name)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => findings.push(rules::CLUSTER_EXTERNAL_SECRET.general(format!(
                "external Secret {name} does not exist in namespace {namespace}"
            ))),
            Err(e) => findings.push(rules::CLUSTER_EXTERNAL_SECRET.general(format!(
                "cannot look up external Secret {name} in namespace {namespace}: {}",
                describe(&e)
            ))),
        }
    }
    findings
}
