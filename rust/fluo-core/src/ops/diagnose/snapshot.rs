//! Everything a diagnosis looks at, read once from the namespace. Secret values are dropped
//! on read: only names and key names are kept, so they cannot reach a finding.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, PersistentVolumeClaim, Pod, PodTemplateSpec, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde::de::DeserializeOwned;

use crate::ops::{Error, Result};
use crate::render::COMPONENT_LABEL;
use crate::secrets::redact;

/// Lines of a crash-looping container's log kept as evidence.
pub const LOG_LINES: i64 = 5;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub namespace: String,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    /// ConfigMap name -> its keys (data and binaryData).
    pub config_maps: BTreeMap<String, BTreeSet<String>>,
    /// Secret name -> its key names (values never kept).
    pub secrets: BTreeMap<String, BTreeSet<String>>,
    pub events: Vec<Event>,
    pub policies: Vec<NetworkPolicy>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub stateful_sets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    /// (pod, container) -> last log lines of the previous (crashed) or current container.
    pub logs: BTreeMap<(String, String), Vec<String>>,
    /// Every ConfigMap value (ConfigMaps hold no secrets), for host names in configuration.
    pub config_values: Vec<ConfigValue>,
}

/// One configuration value and where it lives.
#[derive(Debug, Clone)]
pub struct ConfigValue {
    /// `Kind/name`.
    pub object: String,
    pub component: Option<String>,
    /// e.g. `data prometheus.yml` or `env NATS_URL`.
    pub key: String,
    pub value: String,
}

/// A workload's pod template with its object name and component.
pub struct Template<'a> {
    pub object: String,
    pub component: Option<String>,
    pub template: &'a PodTemplateSpec,
}

impl Snapshot {
    /// The pod templates of every Deployment and StatefulSet.
    pub fn templates(&self) -> Vec<Template<'_>> {
        let deployments = self.deployments.iter().map(|d| Template {
            object: format!("Deployment/{}", name_of(&d.metadata)),
            component: component_of(&d.metadata),
            template: &d.spec.template,
        });
        let stateful_sets = self.stateful_sets.iter().map(|s| Template {
            object: format!("StatefulSet/{}", name_of(&s.metadata)),
            component: component_of(&s.metadata),
            template: &s.spec.template,
        });
        deployments.chain(stateful_sets).collect()
    }

    /// Literal env values of the workloads plus every ConfigMap value.
    pub fn all_config_values(&self) -> Vec<ConfigValue> {
        let mut out = self.config_values.clone();
        for t in self.templates() {
            let containers = t.template.spec.as_ref().map(|s| s.containers.clone());
            for c in containers.unwrap_or_default() {
                for e in c.env.unwrap_or_default() {
                    if let Some(value) = e.value {
                        out.push(ConfigValue {
                            object: t.object.clone(),
                            component: t.component.clone(),
                            key: format!("env {} of container {}", e.name, c.name),
                            value,
                        });
                    }
                }
            }
        }
        out
    }
}

async fn list<K>(client: &Client, namespace: &str, what: &str) -> Result<Vec<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| Error::Failed(format!("listing {what} in namespace {namespace}: {e}")))
}

impl Snapshot {
    pub async fn collect(client: &Client, namespace: &str) -> Result<Snapshot> {
        let config_maps: Vec<ConfigMap> = list(client, namespace, "configmaps").await?;
        let secrets: Vec<Secret> = list(client, namespace, "secrets").await?;
        let mut snapshot = Snapshot {
            namespace: namespace.to_string(),
            pods: list(client, namespace, "pods").await?,
            services: list(client, namespace, "services").await?,
            endpoints: list(client, namespace, "endpoints").await?,
            config_values: config_maps
                .iter()
                .flat_map(|c| {
                    c.data
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| ConfigValue {
                            object: format!("ConfigMap/{}", name_of(&c.metadata)),
                            component: component_of(&c.metadata),
                            key: format!("data {k}"),
                            value: v,
                        })
                })
                .collect(),
            config_maps: config_maps
                .into_iter()
                .map(|c| {
                    let mut keys: BTreeSet<String> =
                        c.data.unwrap_or_default().into_keys().collect();
                    keys.extend(c.binary_data.unwrap_or_default().into_keys());
                    (c.metadata.name.unwrap_or_default(), keys)
                })
                .collect(),
            secrets: secrets
                .into_iter()
                .map(|s| {
                    let mut keys: BTreeSet<String> =
                        s.data.unwrap_or_default().into_keys().collect();
                    keys.extend(s.string_data.unwrap_or_default().into_keys());
                    (s.metadata.name.unwrap_or_default(), keys)
                })
                .collect(),
            events: list(client, namespace, "events").await?,
            policies: list(client, namespace, "networkpolicies").await?,
            claims: list(client, namespace, "persistentvolumeclaims").await?,
            stateful_sets: list(client, namespace, "statefulsets").await?,
            deployments: list(client, namespace, "deployments").await?,
            logs: BTreeMap::new(),
        };
        snapshot.logs = crash_logs(client, namespace, &snapshot.pods).await;
        Ok(snapshot)
    }
}

/// Last log lines of every container that has crashed (previous instance first, else current).
/// A log that cannot be read is left out: the crash is still reported from the status.
async fn crash_logs(
    client: &Client,
    namespace: &str,
    pods: &[Pod],
) -> BTreeMap<(String, String), Vec<String>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let statuses = crate::readiness::container_statuses(pod);
        for cs in statuses
            .iter()
            .filter(|cs| cs.restart_count > 0 || crashed(cs))
        {
            let mut params = LogParams {
                container: Some(cs.name.clone()),
                tail_lines: Some(LOG_LINES),
                previous: true,
                ..Default::default()
            };
            let text = match api.logs(&name, &params).await {
                Ok(t) => Some(t),
                Err(_) => {
                    params.previous = false;
                    api.logs(&name, &params).await.ok()
                }
            };
            if let Some(text) = text {
                let lines = text.lines().map(redact).collect();
                out.insert((name.clone(), cs.name.clone()), lines);
            }
        }
    }
    out
}

fn crashed(cs: &k8s_openapi::api::core::v1::ContainerStatus) -> bool {
    let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
    waiting.and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff")
}

/// The `fluo.dev/component` label of an object.
pub fn component_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    meta.labels.as_ref()?.get(COMPONENT_LABEL).cloned()
}

/// Whether `labels` satisfy a label selector (matchLabels and matchExpressions).
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = selector.match_expressions.as_ref().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let values = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

/// Whether a Service's plain map selector matches `labels`.
pub fn map_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn labels_of(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.labels.clone().unwrap_or_default()
}

pub fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Events about `kind/name`, oldest first.
pub fn events_for<'a>(snapshot: &'a Snapshot, kind: &str, name: &str) -> Vec<&'a Event> {
    let mut events: Vec<&Event> = snapshot
        .events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
        })
        .collect();
    events.sort_by_key(|e| e.last_timestamp.as_ref().map(|t| t.0));
    events
}
