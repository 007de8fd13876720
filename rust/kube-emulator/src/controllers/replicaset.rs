//! ReplicaSet controller: keeps `spec.replicas` pods and reports ready/available counts.

use std::time::Duration;

use serde_json::{Value, json};

use super::events::{self, REPLICASET_CONTROLLER};
use super::{
    Requeue, def, is_deleting, owned, owner_ref, pod_from_template, pod_is_ready, write_status,
};
use crate::apiserver::store::{State, meta_str};

/// Available = ready for at least minReadySeconds.
pub fn is_available(pod: &Value, min_ready_seconds: i64) -> bool {
    available_in(pod, min_ready_seconds) == Some(Duration::ZERO)
}

/// How long until a pod counts as available: zero if it is, None while it is not ready.
fn available_in(pod: &Value, min_ready_seconds: i64) -> Option<Duration> {
    if !pod_is_ready(pod) {
        return None;
    }
    if min_ready_seconds <= 0 {
        return Some(Duration::ZERO);
    }
    let ready_since = pod["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())?;
    let available_at =
        ready_since.with_timezone(&chrono::Utc) + chrono::Duration::seconds(min_ready_seconds);
    Some(
        (available_at - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

pub fn reconcile(state: &mut State, rs: &Value) -> Requeue {
    let pod_def = def("", "Pod");
    let ns = meta_str(rs, "namespace").to_string();
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1);
    let mut pods: Vec<Value> = owned(state, pod_def, rs)
        .into_iter()
        .filter(|p| !is_deleting(p))
        .collect();
    let have = pods.len() as i64;
    let mut create_error = None;
    if have < want {
        for _ in have..want {
            let pod = pod_from_template(
                &rs["spec"]["template"],
                &ns,
                None,
                &format!("{}-", meta_str(rs, "name")),
                owner_ref(rs, "ReplicaSet", "apps/v1"),
            );
            match super::create(state, pod_def, pod) {
                Ok(p) => {
                    let message = format!("Created pod: {}", meta_str(&p, "name"));
                    events::normal(
                        state,
                        REPLICASET_CONTROLLER,
                        rs,
                        "SuccessfulCreate",
                        message,
                    );
                    pods.push(p);
                }
                // Admission refused the pod: stop this batch, report, and retry later.
                Err(e) => {
                    let message = format!("Error creating: {}", e.message);
                    events::warning(state, REPLICASET_CONTROLLER, rs, "FailedCreate", message);
                    create_error = Some(e.message);
                    break;
                }
            }
        }
    } else if have > want {
        // Delete not-ready pods first, then the newest.
        pods.sort_by_key(|p| {
            (
                pod_is_ready(p),
                std::cmp::Reverse(meta_str(p, "creationTimestamp").to_string()),
            )
        });
        for p in pods.drain(..(have - want) as usize) {
            if state.remove(pod_def, &ns, meta_str(&p, "name")).is_some() {
                let message = format!("Deleted pod: {}", meta_str(&p, "name"));
                events::normal(
                    state,
                    REPLICASET_CONTROLLER,
                    rs,
                    "SuccessfulDelete",
                    message,
                );
            }
        }
    }
    let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
    let ready = pods.iter().filter(|p| pod_is_ready(p)).count();
    let available = pods.iter().filter(|p| is_available(p, min_ready)).count();
    let mut status = json!({"replicas": pods.len(), "fullyLabeledReplicas": pods.len(), "readyReplicas": ready,
        "availableReplicas": available, "observedGeneration": rs["metadata"]["generation"].clone()});
    for f in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
        if status[f] == 0 {
            status.as_object_mut().expect("status object").remove(f);
        }
    }
    let conditions = replica_failure(rs, create_error.as_deref());
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    write_status(state, def("apps", "ReplicaSet"), rs, status);
    if create_error.is_some() {
        // The real controller requeues with rate-limited back-off; the refusal may go away
        // (the ServiceAccount gets created) without any change to this ReplicaSet.
        return Some(CREATE_RETRY);
    }
    // Come back when the next ready pod has been ready for minReadySeconds.
    pods.iter()
        .filter_map(|p| available_in(p, min_ready))
        .filter(|d| !d.is_zero())
        .min()
}

/// How soon a ReplicaSet whose pods were refused tries again.
const CREATE_RETRY: Duration = Duration::from_secs(1);

/// The ReplicaSet's conditions: ReplicaFailure (reason FailedCreate) while pods are refused,
/// removed once creation works again, as the controller's calculateStatus does.
fn replica_failure(rs: &Value, create_error: Option<&str>) -> Vec<Value> {
    let mut conditions: Vec<Value> = rs["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match create_error {
        Some(message) => {
            super::set_condition(
                &mut conditions,
                "ReplicaFailure",
                "True",
                "FailedCreate",
                message,
                false,
            );
        }
        None => conditions.retain(|c| c["type"] != "ReplicaFailure"),
    }
    conditions
}
