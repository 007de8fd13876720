//! The controllers' work queue: which objects to reconcile now, which later, and how a store
//! change maps to the objects it can affect.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::Value;

use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::store::{Event, EventType, ObjRef, State, meta_str};

/// One unit of controller work.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Work {
    /// Run the controller for this object's kind on it.
    Reconcile(ObjRef),
    /// Check this object's owner references against the objects that still exist.
    CollectGarbage(ObjRef),
}

/// Resources some controller reconciles; changes to others only fan out to these.
const RECONCILED: &[(&str, &str)] = &[
    ("", "namespaces"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("", "pods"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
];

#[derive(Default)]
pub struct WorkQueue {
    ready: BTreeSet<Work>,
    timers: BTreeSet<(Instant, Work)>,
}

impl WorkQueue {
    pub fn enqueue(&mut self, work: Work) {
        self.ready.insert(work);
    }

    pub fn enqueue_after(&mut self, work: Work, at: Instant) {
        self.timers.insert((at, work));
    }

    /// Everything: at start and on resync (or when change events were missed).
    pub fn enqueue_all(&mut self, state: &State) {
        for (group, plural) in RECONCILED {
            let def = crate::apiserver::resources::RESOURCES
                .iter()
                .find(|r| r.group == *group && r.plural == *plural)
                .expect("reconciled resources are served");
            for obj in state.list(def, None) {
                self.ready.insert(Work::Reconcile(ObjRef::of(def, obj)));
            }
        }
        for def in crate::apiserver::resources::RESOURCES {
            for obj in state.list(def, None) {
                if obj["metadata"]["ownerReferences"].is_array() {
                    self.ready
                        .insert(Work::CollectGarbage(ObjRef::of(def, obj)));
                }
            }
        }
    }

    /// Moves timers that are due into the ready set.
    pub fn promote_due(&mut self, now: Instant) {
        while let Some(first) = self.timers.first() {
            if first.0 > now {
                break;
            }
            let (_, work) = self.timers.pop_first().expect("first exists");
            self.ready.insert(work);
        }
    }

    pub fn take_ready(&mut self) -> Vec<Work> {
        std::mem::take(&mut self.ready).into_iter().collect()
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Enqueues what a change can affect, as the controllers' event handlers do.
    pub fn enqueue_affected(&mut self, state: &State, event: &Event) {
        let obj = &event.object;
        let at = ObjRef::of(event.def, obj);
        let deleted = event.kind == EventType::Deleted;
        if !deleted && RECONCILED.contains(&at.res) {
            self.enqueue(Work::Reconcile(at.clone()));
        }
        // The controlling owner recounts its children (a pod went away, a ReplicaSet got ready).
        for version in std::iter::once(&**obj).chain(event.previous.as_deref()) {
            if let Some(owner) = controller_of(state, version) {
                self.enqueue(Work::Reconcile(owner));
            }
        }
        if deleted {
            let dependents: Vec<ObjRef> =
                state.dependents_of(meta_str(obj, "uid")).cloned().collect();
            for d in dependents {
                self.enqueue(Work::CollectGarbage(d));
            }
        } else if obj["metadata"]["ownerReferences"].is_array() {
            self.enqueue(Work::CollectGarbage(at.clone()));
        }
        match at.res {
            ("", "pods") => self.enqueue_services_selecting(state, event),
            ("", "configmaps" | "secrets" | "persistentvolumeclaims") => {
                // Pods waiting for a missing ConfigMap, Secret or claim may start now.
                self.enqueue_pods_referencing(state, &at)
            }
            ("", "endpoints") if deleted => self.enqueue(Work::Reconcile(ObjRef {
                res: ("", "services"),
                ..at
            })),
            ("", "serviceaccounts") if deleted => self.enqueue(Work::Reconcile(ObjRef {
                res: ("", "namespaces"),
                ns: String::new(),
                name: at.ns,
            })),
            _ => {}
        }
    }

    /// Pods of the namespace whose spec names the changed ConfigMap, Secret or claim (only
    /// those can be affected; a namespace-wide enqueue made every ConfigMap write cost O(pods)).
    fn enqueue_pods_referencing(&mut self, state: &State, at: &ObjRef) {
        let pod_def = super::def("", "Pod");
        for pod in state.list(pod_def, Some(&at.ns)) {
            if references(&pod["spec"], at.res.1, &at.name) {
                self.ready.insert(Work::Reconcile(ObjRef::of(pod_def, pod)));
            }
        }
    }

    /// Services whose selector matches the pod before or after the change.
    fn enqueue_services_selecting(&mut self, state: &State, event: &Event) {
        let svc_def = super::def("", "Service");
        let ns = meta_str(&event.object, "namespace");
        for svc in state.list(svc_def, Some(ns)) {
            let Some(sel) = svc["spec"]["selector"]
                .as_object()
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let selector = LabelSelector::from_object(&serde_json::json!({ "matchLabels": sel }));
            let selects = |pod: &Value| selector.matches_object(pod);
            if selects(&event.object) || event.previous.as_deref().is_some_and(selects) {
                self.ready.insert(Work::Reconcile(ObjRef::of(svc_def, svc)));
            }
        }
    }
}

/// Whether a pod spec names `name` of `plural` (configmaps, secrets, persistentvolumeclaims) in
/// its volumes or in a container's env/envFrom.
fn references(spec: &Value, plural: &str, name: &str) -> bool {
    let is = |v: &Value| v.as_str() == Some(name);
    let volume = |v: &Value| match plural {
        "configmaps" => is(&v["configMap"]["name"]),
        "secrets" => is(&v["secret"]["secretName"]),
        _ => is(&v["persistentVolumeClaim"]["claimName"]),
    };
    let (key_ref, from_ref) = match plural {
        "configmaps" => ("configMapKeyRef", "configMapRef"),
        "secrets" => ("secretKeyRef", "secretRef"),
        _ => return spec["volumes"].as_array().into_iter().flatten().any(volume),
    };
    let container = |c: &Value| {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| is(&e["valueFrom"][key_ref]["name"]))
            || c["envFrom"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| is(&e[from_ref]["name"]))
    };
    spec["volumes"].as_array().into_iter().flatten().any(volume)
        || ["containers", "initContainers"]
            .iter()
            .flat_map(|k| spec[*k].as_array().into_iter().flatten())
            .any(container)
}

/// The object named by `obj`'s controller owner reference, if it still exists.
fn controller_of(state: &State, obj: &Value) -> Option<ObjRef> {
    let owner = obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?;
    state.find_uid(owner["uid"].as_str()?).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::by_kind;
    use crate::apiserver::store::Store;
    use serde_json::json;

    fn obj(kind: &str, name: &str, uid: &str, extra: Value) -> Value {
        let mut o =
            json!({"kind": kind, "metadata": {"name": name, "namespace": "default", "uid": uid}});
        if let (Some(o), Some(extra)) = (o.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if k == "metadata" {
                    for (mk, mv) in v.as_object().expect("metadata object") {
                        o["metadata"][mk] = mv.clone();
                    }
                } else {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        o
    }

    fn reconcile(res: (&'static str, &'static str), name: &str) -> Work {
        Work::Reconcile(ObjRef {
            res,
            ns: "default".into(),
            name: name.into(),
        })
    }

    #[test]
    fn a_pod_change_wakes_its_owner_and_the_services_selecting_it() {
        let store = Store::new(64);
        let mut state = store.lock();
        let rs_def = by_kind("apps", "ReplicaSet").unwrap();
        let pod_def = by_kind("", "Pod").unwrap();
        let svc_def = by_kind("", "Service").unwrap();
        state.insert(rs_def, obj("ReplicaSet", "web-1", "rs-uid", json!({})));
        state.insert(
            svc_def,
            obj(
                "Service",
                "web",
                "s1",
                json!({"spec": {"selector": {"app": "web"}}}),
            ),
        );
        state.insert(
            svc_def,
            obj(
                "Service",
                "db",
                "s2",
                json!({"spec": {"selector": {"app": "db"}}}),
            ),
        );
        let mut events = state.subscribe();
        state.insert(pod_def, obj("Pod", "web-1-a", "p1", json!({"metadata": {
            "labels": {"app": "web"},
            "ownerReferences": [{"uid": "rs-uid", "controller": true, "kind": "ReplicaSet", "name": "web-1"}]}})));
        let mut queue = WorkQueue::default();
        queue.enqueue_affected(&state, &events.try_recv().unwrap());
        let work = queue.take_ready();
        assert!(work.contains(&reconcile(("", "pods"), "web-1-a")));
        assert!(work.contains(&reconcile(("apps", "replicasets"), "web-1")));
        assert!(work.contains(&reconcile(("", "services"), "web")));
        assert!(!work.contains(&reconcile(("", "services"), "db")));
    }

    #[test]
    fn a_deletion_queues_garbage_collection_of_the_dependents_only() {
        let store = Store::new(64);
        let mut state = store.lock();
        let dep_def = by_kind("apps", "Deployment").unwrap();
        let rs_def = by_kind("apps", "ReplicaSet").unwrap();
        state.insert(dep_def, obj("Deployment", "web", "d-uid", json!({})));
        let owned =
            json!({"metadata": {"ownerReferences": [{"uid": "d-uid", "controller": true}]}});
        state.insert(rs_def, obj("ReplicaSet", "web-1", "r1", owned));
        state.insert(rs_def, obj("ReplicaSet", "other", "r2", json!({})));
        assert_eq!(state.dependents_of("d-uid").count(), 1);
        let mut events = state.subscribe();
        state.remove(dep_def, "default", "web");
        let mut queue = WorkQueue::default();
        queue.enqueue_affected(&state, &events.try_recv().unwrap());
        assert_eq!(
            queue.take_ready(),
            vec![Work::CollectGarbage(ObjRef {
                res: ("apps", "replicasets"),
                ns: "default".into(),
                name: "web-1".into()
            })]
        );
    }

    #[test]
    fn recording_an_event_enqueues_nothing() {
        let store = Store::new(64);
        let mut state = store.lock();
        let ns_def = by_kind("", "Namespace").unwrap();
        state.insert(
            ns_def,
            json!({"metadata": {"name": "default", "uid": "ns"}}),
        );
        let pod = obj("Pod", "web-1-a", "p1", json!({"apiVersion": "v1"}));
        let mut events = state.subscribe();
        for _ in 0..2 {
            crate::controllers::events::normal(
                &mut state,
                crate::controllers::events::KUBELET,
                &pod,
                "Started",
                "Started container app".into(),
            );
        }
        let mut queue = WorkQueue::default();
        for _ in 0..2 {
            queue.enqueue_affected(&state, &events.try_recv().unwrap());
        }
        assert!(!queue.has_ready());
    }

    #[test]
    fn only_pods_naming_a_changed_config_map_secret_or_claim_are_woken() {
        let spec = json!({
            "volumes": [{"name": "v", "configMap": {"name": "settings"}},
                        {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-creds"}}]}],
            "containers": [{"name": "c", "env": [
                {"name": "P", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "p"}}}]}]
        });
        assert!(references(&spec, "configmaps", "settings"));
        assert!(references(&spec, "persistentvolumeclaims", "data"));
        assert!(references(&spec, "secrets", "creds"));
        assert!(references(&spec, "secrets", "init-creds"));
        assert!(!references(&spec, "configmaps", "creds"));
        assert!(!references(&spec, "secrets", "settings"));
        assert!(!references(&spec, "configmaps", "other"));
    }

    #[test]
    fn timers_become_ready_only_when_due() {
        let mut queue = WorkQueue::default();
        let now = Instant::now();
        let later = now + std::time::Duration::from_secs(1);
        queue.enqueue_after(reconcile(("", "pods"), "p"), later);
        queue.promote_due(now);
        assert!(!queue.has_ready());
        assert_eq!(queue.next_due(), Some(later));
        queue.promote_due(later);
        assert_eq!(queue.take_ready(), vec![reconcile(("", "pods"), "p")]);
        assert_eq!(queue.next_due(), None);
    }
}
