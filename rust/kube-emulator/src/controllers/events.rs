//! core/v1 Events as kube-controller-manager, the scheduler and the kubelet record them, with
//! the client-go event correlator's de-duplication: an event for the same object, source, type,
//! reason and message increments `count` and `lastTimestamp` of the existing Event instead of
//! creating another, so a crash-looping pod keeps a bounded number of Events.
//!
//! The Event's name is `<object>.<unix nanos hex>` like the recorder's, so a list (sorted by name)
//! returns an object's events in the order they happened, which `kubectl describe` relies on for
//! events within the same second. Events are not reconciled by any controller (the work queue
//! ignores them), so writing one never wakes a loop.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{def, now_str};
use crate::apiserver::store::{State, meta_str};
use crate::controllers::NODE_NAME;

/// Who records an event: `source.component` (and `source.host` for the kubelet).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub component: &'static str,
    pub host: Option<&'static str>,
}

pub const DEPLOYMENT_CONTROLLER: Source = Source::controller("deployment-controller");
pub const REPLICASET_CONTROLLER: Source = Source::controller("replicaset-controller");
pub const STATEFULSET_CONTROLLER: Source = Source::controller("statefulset-controller");
pub const JOB_CONTROLLER: Source = Source::controller("job-controller");
pub const SCHEDULER: Source = Source::controller("default-scheduler");
pub const KUBELET: Source = Source {
    component: "kubelet",
    host: Some(NODE_NAME),
};

impl Source {
    const fn controller(component: &'static str) -> Self {
        Self {
            component,
            host: None,
        }
    }
}

/// `Normal` or `Warning`, the two event types the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        }
    }
}

/// One event about `object` (a stored object with kind and apiVersion).
pub struct Record<'a> {
    pub source: Source,
    pub object: &'a Value,
    /// `spec.containers{name}` for container events, as the kubelet's container references.
    pub field_path: Option<String>,
    pub kind: Type,
    pub reason: &'a str,
    pub message: String,
}

/// Records a Normal event about the object itself.
pub fn normal(state: &mut State, source: Source, object: &Value, reason: &str, message: String) {
    record(
        state,
        Record {
            source,
            object,
            field_path: None,
            kind: Type::Normal,
            reason,
            message,
        },
    );
}

/// Records a Warning event about the object itself.
pub fn warning(state: &mut State, source: Source, object: &Value, reason: &str, message: String) {
    record(
        state,
        Record {
            source,
            object,
            field_path: None,
            kind: Type::Warning,
            reason,
            message,
        },
    );
}

/// Writes the event, or counts it on the existing Event with the same correlation key.
pub fn record(state: &mut State, r: Record<'_>) {
    let event_def = def("", "Event");
    let ns = meta_str(r.object, "namespace");
    let ns = if ns.is_empty() { "default" } else { ns };
    // Like the apiserver, no new objects in a namespace that is gone or terminating.
    let live = state
        .get(def("", "Namespace"), "", ns)
        .is_some_and(|n| !super::is_deleting(n));
    if !live {
        return;
    }
    let object_name = meta_str(r.object, "name");
    let field_path = r.field_path.as_deref().unwrap_or("");
    let now = now_str();
    let prefix = format!("{object_name}.");
    let existing = state
        .list_prefixed(event_def, ns, &prefix)
        .find(|e| correlates(e, &r, field_path));
    if let Some(existing) = existing {
        let mut next = existing.clone();
        next["count"] = json!(existing["count"].as_i64().unwrap_or(1) + 1);
        next["lastTimestamp"] = json!(now);
        state.replace(event_def, next);
        return;
    }
    // `<name>.<unix nanos hex>` as the recorder names them, so names sort chronologically.
    let mut nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let name = loop {
        let name = format!("{object_name}.{nanos:x}");
        if state.get(event_def, ns, &name).is_none() {
            break name;
        }
        nanos += 1;
    };
    let mut involved = json!({
        "kind": r.object["kind"], "namespace": meta_str(r.object, "namespace"),
        "name": object_name, "uid": meta_str(r.object, "uid"),
        "apiVersion": r.object["apiVersion"],
        "resourceVersion": meta_str(r.object, "resourceVersion"),
    });
    if !field_path.is_empty() {
        involved["fieldPath"] = json!(field_path);
    }
    let mut source = json!({"component": r.source.component});
    if let Some(host) = r.source.host {
        source["host"] = json!(host);
    }
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": now},
        "involvedObject": involved,
        "reason": r.reason, "message": r.message, "type": r.kind.as_str(),
        "source": source, "count": 1, "firstTimestamp": now, "lastTimestamp": now,
        "eventTime": null, "reportingComponent": r.source.component,
        "reportingInstance": r.source.host.unwrap_or(""),
    });
    state.insert(event_def, event);
}

/// How long an Event is kept after its last occurrence, the apiserver's default `--event-ttl`.
const EVENT_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Deletes Events neither created nor seen again within the TTL before `now`, as the
/// apiserver's lease on Event objects does, so a long-running emulator with pod churn keeps a
/// bounded number of them. (Creation counts so that a client's Event with an old
/// `lastTimestamp` is kept for the TTL, as the apiserver keeps it from the write.)
pub fn expire(state: &mut State, now: DateTime<Utc>) {
    let event_def = def("", "Event");
    let time = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let expired: Vec<(String, String)> = state
        .list(event_def, None)
        .filter(|e| {
            let created = time(&e["metadata"]["creationTimestamp"]);
            time(&e["lastTimestamp"])
                .max(created)
                .is_some_and(|seen| now - seen > EVENT_TTL)
        })
        .map(|e| {
            let ns = meta_str(e, "namespace").to_string();
            (ns, meta_str(e, "name").to_string())
        })
        .collect();
    for (ns, name) in expired {
        state.remove(event_def, &ns, &name);
    }
}

/// Whether `event` is an earlier occurrence of `r`: same object (uid and container), source,
/// type, reason and message, the key of client-go's EventLogger.
fn correlates(event: &Value, r: &Record<'_>, field_path: &str) -> bool {
    let involved = &event["involvedObject"];
    involved["uid"] == meta_str(r.object, "uid")
        && involved["fieldPath"].as_str().unwrap_or("") == field_path
        && event["source"]["component"] == r.source.component
        && event["source"]["host"].as_str() == r.source.host
        && event["type"] == r.kind.as_str()
        && event["reason"] == r.reason
        && event["message"] == r.message.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::by_kind;
    use crate::apiserver::store::Store;

    fn pod(uid: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "prod", "uid": uid, "resourceVersion": "7"}})
    }

    fn events(state: &State) -> Vec<Value> {
        state
            .list(by_kind("", "Event").unwrap(), Some("prod"))
            .cloned()
            .collect()
    }

    #[test]
    fn repeated_events_count_on_one_object() {
        let store = Store::new(64);
        let mut state = store.lock();
        state.insert(
            by_kind("", "Namespace").unwrap(),
            json!({"metadata": {"name": "prod"}}),
        );
        let p = pod("u1");
        for _ in 0..3 {
            warning(&mut state, KUBELET, &p, "BackOff", "Back-off".into());
        }
        normal(
            &mut state,
            KUBELET,
            &p,
            "Started",
            "Started container app".into(),
        );
        let all = events(&state);
        assert_eq!(all.len(), 2);
        let backoff = all.iter().find(|e| e["reason"] == "BackOff").unwrap();
        assert_eq!(backoff["count"], 3);
        assert_eq!(backoff["type"], "Warning");
        assert_eq!(
            backoff["source"],
            json!({"component": "kubelet", "host": NODE_NAME})
        );
        assert_eq!(
            backoff["involvedObject"],
            json!({"kind": "Pod", "namespace": "prod", "name": "web-0", "uid": "u1",
                "apiVersion": "v1", "resourceVersion": "7"})
        );
        assert!(meta_str(backoff, "name").starts_with("web-0."));
        assert_eq!(meta_str(backoff, "namespace"), "prod");
        // Names sort in the order the events first happened.
        let reasons: Vec<&Value> = all.iter().map(|e| &e["reason"]).collect();
        assert_eq!(reasons, [&json!("BackOff"), &json!("Started")]);
    }

    #[test]
    fn events_expire_an_hour_after_they_were_last_seen() {
        let store = Store::new(64);
        let mut state = store.lock();
        state.insert(
            by_kind("", "Namespace").unwrap(),
            json!({"metadata": {"name": "prod"}}),
        );
        normal(&mut state, KUBELET, &pod("u1"), "Started", "Started".into());
        normal(&mut state, KUBELET, &pod("u1"), "Created", "Created".into());
        let started = events(&state)
            .into_iter()
            .find(|e| e["reason"] == "Started")
            .unwrap();
        let last = DateTime::parse_from_rfc3339(started["lastTimestamp"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        expire(&mut state, last + chrono::TimeDelta::minutes(59));
        assert_eq!(events(&state).len(), 2);
        // A repeat refreshes lastTimestamp; only Events not seen for an hour go.
        let mut old = started.clone();
        old["lastTimestamp"] = json!("2000-01-01T00:00:00Z");
        state.replace(by_kind("", "Event").unwrap(), old.clone());
        expire(&mut state, last + chrono::TimeDelta::minutes(59));
        assert_eq!(events(&state).len(), 2, "created within the hour");
        old["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
        state.replace(by_kind("", "Event").unwrap(), old);
        expire(&mut state, last + chrono::TimeDelta::minutes(59));
        let left: Vec<Value> = events(&state);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["reason"], "Created");
        expire(&mut state, last + chrono::TimeDelta::minutes(61));
        assert!(events(&state).is_empty());
    }

    #[test]
    fn no_events_in_a_missing_namespace() {
        let store = Store::new(64);
        let mut state = store.lock();
        normal(&mut state, KUBELET, &pod("u1"), "Started", "Started".into());
        assert_eq!(state.list(by_kind("", "Event").unwrap(), None).count(), 0);
    }

    #[test]
    fn a_new_object_with_the_same_name_gets_its_own_events() {
        let store = Store::new(64);
        let mut state = store.lock();
        state.insert(
            by_kind("", "Namespace").unwrap(),
            json!({"metadata": {"name": "prod"}}),
        );
        for uid in ["u1", "u2"] {
            record(
                &mut state,
                Record {
                    source: KUBELET,
                    object: &pod(uid),
                    field_path: Some("spec.containers{app}".into()),
                    kind: Type::Normal,
                    reason: "Created",
                    message: "Created container app".into(),
                },
            );
        }
        let all = events(&state);
        assert_eq!(all.len(), 2);
        assert_eq!(
            all[0]["involvedObject"]["fieldPath"],
            "spec.containers{app}"
        );
        assert_eq!(all[0]["count"], 1);
    }
}
