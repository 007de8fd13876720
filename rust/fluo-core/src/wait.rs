//! Waiting for a component's objects to become ready: one watch per relevant kind (filtered by
//! the component's label) feeds a local view; after every event the `readiness` rules are
//! evaluated for every awaited object. No sleep-polling: the next step starts as soon as the
//! event that makes the last object ready arrives. A fatal verdict ends the wait at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec, Service};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::apply::ObjectRef;
use crate::readiness::{self, Readiness};
use crate::render::component_selector;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{object} failed: {message}")]
    Failed { object: String, message: String },
    #[error("timed out after {}: {waiting}", humantime::format_duration(*after))]
    Timeout { after: Duration, waiting: String },
    #[error("watch ended unexpectedly")]
    WatchEnded,
}

/// Kinds whose readiness we judge; others are ready once applied.
pub fn is_awaited(kind: &str) -> bool {
    matches!(
        kind,
        "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "Pod"
            | "PersistentVolumeClaim"
            | "Service"
    )
}

// Objects are moved once from the watch into the view; boxing them would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Seen {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    Job(Job),
    Pod(Pod),
    Pvc(PersistentVolumeClaim),
    Service(Service),
    ReplicaSet(ReplicaSet),
}

impl Seen {
    fn kind(&self) -> &'static str {
        match self {
            Seen::Deployment(_) => "Deployment",
            Seen::StatefulSet(_) => "StatefulSet",
            Seen::DaemonSet(_) => "DaemonSet",
            Seen::Job(_) => "Job",
            Seen::Pod(_) => "Pod",
            Seen::Pvc(_) => "PersistentVolumeClaim",
            Seen::Service(_) => "Service",
            Seen::ReplicaSet(_) => "ReplicaSet",
        }
    }
}

#[allow(clippy::large_enum_variant)]
enum Update {
    Apply(Seen),
    Delete(&'static str, String),
    Relist(&'static str),
}

/// What the watches have seen so far, by (kind, name).
#[derive(Default)]
struct View {
    objects: HashMap<(&'static str, String), Seen>,
}

impl View {
    fn apply(&mut self, update: Update) {
        match update {
            Update::Apply(seen) => {
                let name = match &seen {
                    Seen::Deployment(o) => o.name_any(),
                    Seen::StatefulSet(o) => o.name_any(),
                    Seen::DaemonSet(o) => o.name_any(),
                    Seen::Job(o) => o.name_any(),
                    Seen::Pod(o) => o.name_any(),
                    Seen::Pvc(o) => o.name_any(),
                    Seen::Service(o) => o.name_any(),
                    Seen::ReplicaSet(o) => o.name_any(),
                };
                self.objects.insert((seen.kind(), name), seen);
            }
            Update::Delete(kind, name) => {
                self.objects.remove(&(kind, name));
            }
            // A restarted watch re-lists everything of its kind; drop what it may have missed.
            Update::Relist(kind) => self.objects.retain(|(k, _), _| *k != kind),
        }
    }

    fn pods_owned_by(&self, uid: &str) -> Vec<Pod> {
        self.objects
            .values()
            .filter_map(|s| match s {
                Seen::Pod(p) if owned_by(p.meta(), uid) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Pods of the Deployment's new ReplicaSet: the one whose pod template is the Deployment's
    /// (ignoring `pod-template-hash`), as the deployment controller finds it. Not the highest
    /// revision: right after a rollback reuses an older ReplicaSet, the watch may still show the
    /// failed one as newest, and its crash-looping pods would fail the rollback.
    fn new_deployment_pods(&self, d: &Deployment) -> Vec<Pod> {
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        let current = &d.spec.template;
        let new = self.objects.values().find_map(|s| match s {
            Seen::ReplicaSet(rs) if owned_by(rs.meta(), uid) && same_template(rs, current) => {
                Some(rs)
            }
            _ => None,
        });
        match new.and_then(|rs| rs.metadata.uid.as_deref()) {
            Some(rs_uid) => self.pods_owned_by(rs_uid),
            None => Vec::new(),
        }
    }

    fn verdict(&self, object: &ObjectRef) -> Readiness {
        let kind = match object.kind.as_str() {
            "Deployment" => "Deployment",
            "StatefulSet" => "StatefulSet",
            "DaemonSet" => "DaemonSet",
            "Job" => "Job",
            "Pod" => "Pod",
            "PersistentVolumeClaim" => "PersistentVolumeClaim",
            "Service" => "Service",
            _ => return Readiness::Ready,
        };
        let Some(seen) = self.objects.get(&(kind, object.name.clone())) else {
            return Readiness::Waiting("not observed yet".into());
        };
        match seen {
            Seen::Deployment(d) => readiness::deployment(d, &self.new_deployment_pods(d)),
            Seen::StatefulSet(s) => {
                let uid = s.metadata.uid.as_deref().unwrap_or_default();
                let update_revision = s
                    .status
                    .as_ref()
                    .and_then(|st| st.update_revision.as_deref());
                let pods: Vec<Pod> = self
                    .pods_owned_by(uid)
                    .into_iter()
                    .filter(|p| match update_revision {
                        Some(rev) => {
                            p.labels()
                                .get("controller-revision-hash")
                                .map(String::as_str)
                                == Some(rev)
                        }
                        None => true,
                    })
                    .collect();
                readiness::stateful_set(s, &pods)
            }
            Seen::DaemonSet(d) => readiness::daemon_set(
                d,
                &self.pods_owned_by(d.metadata.uid.as_deref().unwrap_or_default()),
            ),
            Seen::Job(j) => readiness::job(
                j,
                &self.pods_owned_by(j.metadata.uid.as_deref().unwrap_or_default()),
            ),
            Seen::Pod(p) => readiness::pod(p),
            Seen::Pvc(p) => readiness::persistent_volume_claim(p),
            Seen::Service(s) => readiness::service(s),
            Seen::ReplicaSet(_) => Readiness::Ready,
        }
    }
}

/// Whether the ReplicaSet runs `template`, ignoring the `pod-template-hash` label the
/// controller adds to its copy.
fn same_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    let Some(mut theirs) = rs.spec.template.clone() else {
        return false;
    };
    if let Some(labels) = theirs.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove("pod-template-hash");
    }
    &theirs == template
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == uid)
}

/// Re-watch delays after a watch error: from 50 ms doubling to 2 s, reset once events flow
/// again. A rollout waits on a few watches for seconds, so kube's controller back-off (from
/// 800 ms up to 30 s) would turn every watch the server closes early into a visible stall.
#[derive(Debug, Clone)]
pub struct QuickBackoff {
    next: Duration,
}

impl QuickBackoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);
}

impl Default for QuickBackoff {
    fn default() -> Self {
        QuickBackoff { next: Self::FIRST }
    }
}

impl Iterator for QuickBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay)
    }
}

impl kube::runtime::utils::Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

fn watch_kind<K>(
    client: &Client,
    namespace: &str,
    selector: &str,
    wrap: fn(K) -> Seen,
    kind: &'static str,
) -> impl Stream<Item = Update> + Send + 'static
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    watcher::watcher(api, watcher::Config::default().labels(selector))
        .backoff(QuickBackoff::default())
        .filter_map(move |event| async move {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    Some(Update::Apply(wrap(o)))
                }
                Ok(watcher::Event::Delete(o)) => Some(Update::Delete(kind, o.name_any())),
                Ok(watcher::Event::Init) => Some(Update::Relist(kind)),
                Ok(watcher::Event::InitDone) => None,
                Err(e) => {
                    tracing::debug!(error = %e, kind, "watch error (retrying with backoff)");
                    None
                }
            }
        })
}

/// The last observed state of every awaited object that is not ready, for a timeout message.
fn last_observed(awaited: &[&ObjectRef], last: &BTreeMap<ObjectRef, Readiness>) -> String {
    awaited
        .iter()
        .filter_map(|o| match last.get(*o) {
            Some(Readiness::Ready) => None,
            Some(Readiness::Waiting(m) | Readiness::Failed(m)) => Some(format!("{o}: {m}")),
            None => Some(format!("{o}: no state observed")),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Progress callback: called when an object's verdict changes.
pub type OnChange<'a> = dyn FnMut(&ObjectRef, &Readiness) + Send + 'a;

/// Waits until every object in `objects` is ready (others than awaited kinds count as ready),
/// failing fast on a fatal verdict, or at `timeout`.
pub async fn until_ready(
    client: &Client,
    namespace: &str,
    component: &str,
    objects: &[ObjectRef],
    timeout: Duration,
    on_change: &mut OnChange<'_>,
) -> Result<()> {
    let awaited: Vec<&ObjectRef> = objects.iter().filter(|o| is_awaited(&o.kind)).collect();
    if awaited.is_empty() {
        return Ok(());
    }
    let selector = component_selector(component);
    let has = |k: &str| awaited.iter().any(|o| o.kind == k);
    let mut streams: Vec<std::pin::Pin<Box<dyn Stream<Item = Update> + Send>>> = Vec::new();
    // One watch per awaited kind; each is another resource type, hence a macro, not a loop.
    macro_rules! watch {
        ($seen:ident, $kind:literal) => {
            streams.push(Box::pin(watch_kind(
                client,
                namespace,
                &selector,
                Seen::$seen,
                $kind,
            )))
        };
    }
    if has("Deployment") {
        watch!(Deployment, "Deployment");
        watch!(ReplicaSet, "ReplicaSet");
    }
    if has("StatefulSet") {
        watch!(StatefulSet, "StatefulSet");
    }
    if has("DaemonSet") {
        watch!(DaemonSet, "DaemonSet");
    }
    if has("Job") {
        watch!(Job, "Job");
    }
    if has("PersistentVolumeClaim") {
        watch!(Pvc, "PersistentVolumeClaim");
    }
    if has("Service") {
        watch!(Service, "Service");
    }
    if ["Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"]
        .iter()
        .any(|k| has(k))
    {
        watch!(Pod, "Pod");
    }
    let mut updates = stream::select_all(streams);
    let mut view = View::default();
    let mut last: BTreeMap<ObjectRef, Readiness> = BTreeMap::new();
    let wait = async {
        while let Some(update) = updates.next().await {
            view.apply(update);
            let mut all_ready = true;
            for object in &awaited {
                let verdict = view.verdict(object);
                if last.get(*object) != Some(&verdict) {
                    on_change(object, &verdict);
                    last.insert((*object).clone(), verdict.clone());
                }
                match verdict {
                    Readiness::Ready => {}
                    Readiness::Waiting(_) => all_ready = false,
                    Readiness::Failed(message) => {
                        return Err(Error::Failed {
                            object: object.to_string(),
                            message,
                        });
                    }
                }
            }
            if all_ready {
                return Ok(());
            }
        }
        Err(Error::WatchEnded)
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout {
            after: timeout,
            waiting: last_observed(&awaited, &last),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            namespace: Some("fluo".into()),
        }
    }

    #[test]
    fn re_watch_delays_double_up_to_two_seconds_and_reset() {
        use kube::runtime::utils::Backoff;
        let mut b = QuickBackoff::default();
        let first: Vec<u128> = b.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(first, [50, 100, 200, 400, 800, 1600, 2000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(50)));
    }

    #[test]
    fn a_timeout_names_the_last_state_of_every_object_not_ready() {
        let (bff, svc, nats) = (
            object("Deployment", "bff"),
            object("Service", "bff"),
            object("StatefulSet", "nats"),
        );
        let last = BTreeMap::from([
            (
                bff.clone(),
                Readiness::Waiting("0 of 1 updated replicas are available".into()),
            ),
            (svc.clone(), Readiness::Ready),
        ]);
        assert_eq!(
            last_observed(&[&bff, &svc, &nats], &last),
            "Deployment/bff: 0 of 1 updated replicas are available; StatefulSet/nats: no state observed"
        );
    }

    #[test]
    fn the_new_replica_set_is_the_one_running_the_deployments_template() {
        let template: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "nats"}},
            "spec": {"containers": [{"name": "main", "image": "fluo/nats:dev"}]}
        }))
        .unwrap();
        let rs = |image: &str| -> ReplicaSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "nats-1"},
                "spec": {"selector": {}, "template": {
                    "metadata": {"labels": {"app": "nats", "pod-template-hash": "abc"}},
                    "spec": {"containers": [{"name": "main", "image": image}]}
                }}
            }))
            .unwrap()
        };
        assert!(same_template(&rs("fluo/nats:dev"), &template));
        assert!(!same_template(&rs("fluo/nats:crashloop"), &template));
    }
}
