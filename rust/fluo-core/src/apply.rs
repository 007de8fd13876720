//! Changing the cluster: server-side apply (field manager `fluo`, forced: fluo owns what it
//! declares), pruning objects a component no longer declares, and deleting with a wait until
//! the objects are gone.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::Value;

use crate::cluster::{self, Cluster};
use crate::durable;
use crate::render::component_selector;

pub const FIELD_MANAGER: &str = "fluo";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error("applying {object}: {source}")]
    Apply { object: String, source: kube::Error },
    #[error("listing {kind} of component {component}: {source}")]
    List {
        kind: String,
        component: String,
        source: kube::Error,
    },
    #[error("deleting {object}: {source}")]
    Delete { object: String, source: kube::Error },
    #[error("timed out after {after:?} waiting for {objects} to be deleted")]
    DeleteTimeout { after: Duration, objects: String },
}

/// One object in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

impl ObjectRef {
    pub fn of(object: &Value, namespace: Option<String>) -> ObjectRef {
        ObjectRef {
            api_version: object["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            namespace,
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// Server-side applies `object` (into `namespace` if its kind is namespaced) and returns what
/// the server stored. With `dry_run` the server computes the result without persisting it.
pub async fn apply_one(
    cluster: &Cluster,
    object: &Value,
    namespace: &str,
    dry_run: bool,
) -> Result<(ObjectRef, DynamicObject)> {
    let (api, ns) = cluster.api_for(object, namespace).await?;
    let mut object = object.clone();
    if let Some(ns) = &ns {
        object["metadata"]["namespace"] = Value::String(ns.clone());
    }
    let reference = ObjectRef::of(&object, ns);
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let stored = api
        .patch(&reference.name, &params, &Patch::Apply(&object))
        .await
        .map_err(|source| Error::Apply {
            object: reference.to_string(),
            source,
        })?;
    Ok((reference, stored))
}

/// Applies `objects` in the given (kind) order, calling `applied` after each one.
pub async fn apply_all(
    cluster: &Cluster,
    objects: &[Value],
    namespace: &str,
    mut applied: impl FnMut(&ObjectRef),
) -> Result<Vec<ObjectRef>> {
    let mut refs = Vec::with_capacity(objects.len());
    for object in objects {
        let (reference, _) = apply_one(cluster, object, namespace, false).await?;
        applied(&reference);
        refs.push(reference);
    }
    Ok(refs)
}

/// Objects labelled for `component` of the kinds in `kinds` (apiVersion, kind) that are not in
/// `keep`: what a prune would delete.
pub async fn undeclared(
    cluster: &Cluster,
    component: &str,
    namespace: &str,
    kinds: &BTreeSet<(String, String)>,
    keep: &[ObjectRef],
) -> Result<Vec<ObjectRef>> {
    let keep: BTreeSet<&ObjectRef> = keep.iter().collect();
    let mut found = Vec::new();
    for (api_version, kind) in kinds {
        let probe = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {}});
        let (api, ns) = cluster.api_for(&probe, namespace).await?;
        let list = api
            .list_metadata(&ListParams::default().labels(&component_selector(component)))
            .await
            .map_err(|source| Error::List {
                kind: kind.clone(),
                component: component.to_string(),
                source,
            })?;
        for item in list.items {
            let reference = ObjectRef {
                api_version: api_version.clone(),
                kind: kind.clone(),
                name: item.metadata.name.unwrap_or_default(),
                namespace: ns.clone(),
            };
            if !keep.contains(&reference) {
                found.push(reference);
            }
        }
    }
    Ok(found)
}

/// Deletes `objects` (in the given order) and waits, by watching, until each is gone.
pub async fn delete_and_wait(
    cluster: &Cluster,
    objects: &[ObjectRef],
    timeout: Duration,
) -> Result<()> {
    let mut pending = Vec::new();
    let background = DeleteParams::background();
    for object in objects {
        let api = api_of(cluster, object).await?;
        let delete = durable::retry(durable::is_transient, |_| {
            api.delete(&object.name, &background)
        });
        match delete.await {
            Ok(_) => pending.push((api, object)),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(Error::Delete {
                    object: object.to_string(),
                    source,
                });
            }
        }
    }
    let wait_all = async {
        for (api, object) in &pending {
            wait_gone(api, &object.name).await;
        }
    };
    tokio::time::timeout(timeout, wait_all)
        .await
        .map_err(|_| Error::DeleteTimeout {
            after: timeout,
            objects: pending
                .iter()
                .map(|(_, o)| o.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

async fn api_of(cluster: &Cluster, object: &ObjectRef) -> Result<Api<DynamicObject>> {
    let kind = cluster.kind(&object.api_version, &object.kind).await?;
    Ok(match &object.namespace {
        Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, &kind.resource),
        None => Api::all_with(cluster.client.clone(), &kind.resource),
    })
}

/// Returns once no object named `name` exists (watch on the name, no polling).
async fn wait_gone(api: &Api<DynamicObject>, name: &str) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api.clone(), config).boxed();
    let mut present = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => present = false,
            Ok(watcher::Event::InitApply(_)) => present = true,
            Ok(watcher::Event::InitDone) if !present => return,
            Ok(watcher::Event::Delete(_)) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, name, "watch error while waiting for deletion");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
