//! Deployment controller: one ReplicaSet per pod template (reused on rollback), rolling or
//! recreate scaling, revision annotations, history cleanup, and status with the Available and
//! Progressing conditions as kube-controller-manager writes them.

use std::time::Duration;

use serde_json::{Value, json};

use super::events::{self, DEPLOYMENT_CONTROLLER};
use super::{
    Requeue, condition, def, now_str, owned, owner_ref, set_condition, template_hash, write_status,
};
use crate::apiserver::store::{State, meta_str};

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH_LABEL: &str = "pod-template-hash";

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Resolves an int-or-percent against `total`, rounding up or down like intstr.GetScaledValueFromIntOrPercent.
pub fn scaled(v: &Value, total: i64, round_up: bool) -> i64 {
    if let Some(n) = v.as_i64() {
        return n;
    }
    let pct: i64 = v
        .as_str()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let x = pct * total;
    if round_up { (x + 99) / 100 } else { x / 100 }
}

fn revision(rs: &Value) -> i64 {
    rs["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn template_without_hash(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove(HASH_LABEL);
    }
    t
}

/// Scales a ReplicaSet and records `ScalingReplicaSet` on the Deployment, as scaleReplicaSet does.
fn set_replicas(state: &mut State, d: &Value, rs: &mut Value, replicas: i64) {
    let from = int(&rs["spec"]["replicas"]);
    if from != replicas {
        rs["spec"]["replicas"] = json!(replicas);
        *rs = state.replace(def("apps", "ReplicaSet"), rs.clone());
        let direction = if from < replicas { "up" } else { "down" };
        let message = format!(
            "Scaled {direction} replica set {} from {from} to {replicas}",
            meta_str(rs, "name")
        );
        events::normal(
            state,
            DEPLOYMENT_CONTROLLER,
            d,
            "ScalingReplicaSet",
            message,
        );
    }
}

pub fn reconcile(state: &mut State, d: &Value) -> Requeue {
    let rs_def = def("apps", "ReplicaSet");
    let ns = meta_str(d, "namespace").to_string();
    let name = meta_str(d, "name").to_string();
    let replicas = int(&d["spec"]["replicas"]);
    let mut all = owned(state, rs_def, d);
    let template = d["spec"]["template"].clone();
    let max_rev = all.iter().map(revision).max().unwrap_or(0);
    let mut progressing_reason: Option<(&str, String)> = None;
    let paused = d["spec"]["paused"] == true;

    let new_idx = all
        .iter()
        .position(|rs| template_without_hash(rs) == template);
    let new_idx = match new_idx {
        Some(i) => {
            if revision(&all[i]) < max_rev && !paused {
                // Rolling back to an old template reuses its ReplicaSet under a new revision.
                let mut rs = all[i].clone();
                rs["metadata"]["annotations"][REVISION] = json!((max_rev + 1).to_string());
                all[i] = state.replace(rs_def, rs);
                progressing_reason = Some((
                    "FoundNewReplicaSet",
                    format!("Found new replica set \"{}\"", meta_str(&all[i], "name")),
                ));
            }
            Some(i)
        }
        None if paused => None,
        None => {
            let hash = template_hash(&template);
            let rs_name = format!("{name}-{hash}");
            let mut t = template.clone();
            t["metadata"]["labels"][HASH_LABEL] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"][HASH_LABEL] = json!(hash);
            let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": t["metadata"]["labels"].clone(),
                    "annotations": {REVISION: (max_rev + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                        "deployment.kubernetes.io/max-replicas": (replicas + scaled(&d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], replicas, true)).to_string()},
                    "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")]},
                "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
                    "selector": selector, "template": t}});
            match super::create(state, rs_def, rs) {
                Ok(created) => {
                    progressing_reason = Some((
                        "NewReplicaSetCreated",
                        format!("Created new replica set \"{rs_name}\""),
                    ));
                    all.push(created);
                    Some(all.len() - 1)
                }
                Err(_) => None,
            }
        }
    };

    if !paused && let Some(ni) = new_idx {
        if d["spec"]["strategy"]["type"] == "Recreate" {
            recreate(state, d, &mut all, ni, replicas);
        } else {
            rolling(state, d, &mut all, ni, replicas);
        }
        cleanup_history(state, d, &mut all, ni);
    }

    // The deployment's revision annotation follows its new ReplicaSet.
    if let Some(ni) = new_idx {
        let rev = revision(&all[ni]).to_string();
        if d["metadata"]["annotations"][REVISION].as_str() != Some(rev.as_str()) {
            let mut next = d.clone();
            next["metadata"]["annotations"][REVISION] = json!(rev);
            let stored = state.replace(def("apps", "Deployment"), next);
            return sync_status(state, &stored, &all, new_idx, replicas, progressing_reason);
        }
    }
    sync_status(state, d, &all, new_idx, replicas, progressing_reason)
}

fn recreate(state: &mut State, d: &Value, all: &mut [Value], ni: usize, replicas: i64) {
    let mut old_running = 0;
    for (i, rs) in all.iter_mut().enumerate() {
        if i != ni {
            set_replicas(state, d, rs, 0);
            old_running += int(&rs["status"]["replicas"]);
        }
    }
    if old_running == 0 {
        set_replicas(state, d, &mut all[ni], replicas);
    }
}

fn rolling(state: &mut State, d: &Value, all: &mut [Value], ni: usize, replicas: i64) {
    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let max_surge = scaled(&ru["maxSurge"], replicas, true);
    let mut max_unavailable = scaled(&ru["maxUnavailable"], replicas, false);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    // Scale up the new ReplicaSet within the surge budget.
    let new_spec = int(&all[ni]["spec"]["replicas"]);
    if new_spec > replicas {
        set_replicas(state, d, &mut all[ni], replicas);
    } else if new_spec < replicas {
        let current: i64 = all.iter().map(|rs| int(&rs["spec"]["replicas"])).sum();
        let allowed = replicas + max_surge;
        if current < allowed {
            let up = (allowed - current).min(replicas - new_spec);
            set_replicas(state, d, &mut all[ni], new_spec + up);
        }
    }
    // Scale down old ReplicaSets while keeping the minimum available.
    let old_pods: i64 = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != ni)
        .map(|(_, rs)| int(&rs["spec"]["replicas"]))
        .sum();
    if old_pods == 0 {
        return;
    }
    let all_pods: i64 = all.iter().map(|rs| int(&rs["spec"]["replicas"])).sum();
    let min_available = replicas - max_unavailable;
    let new_unavailable =
        int(&all[ni]["spec"]["replicas"]) - int(&all[ni]["status"]["availableReplicas"]);
    let mut budget = all_pods - min_available - new_unavailable;
    if budget <= 0 {
        return;
    }
    let mut order: Vec<usize> = (0..all.len()).filter(|i| *i != ni).collect();
    order.sort_by_key(|i| {
        (
            revision(&all[*i]),
            meta_str(&all[*i], "creationTimestamp").to_string(),
        )
    });
    // First remove unhealthy old replicas, then available ones above the minimum.
    for &i in &order {
        let spec = int(&all[i]["spec"]["replicas"]);
        let unhealthy = spec - int(&all[i]["status"]["availableReplicas"]);
        if spec == 0 || unhealthy <= 0 || budget <= 0 {
            continue;
        }
        let down = budget.min(unhealthy);
        set_replicas(state, d, &mut all[i], spec - down);
        budget -= down;
    }
    let available: i64 = all
        .iter()
        .map(|rs| int(&rs["status"]["availableReplicas"]))
        .sum();
    let mut remaining = (available - min_available).min(budget.max(0));
    for &i in &order {
        let spec = int(&all[i]["spec"]["replicas"]);
        if spec == 0 || remaining <= 0 {
            continue;
        }
        let down = spec.min(remaining);
        set_replicas(state, d, &mut all[i], spec - down);
        remaining -= down;
    }
}

fn cleanup_history(state: &mut State, d: &Value, all: &mut [Value], ni: usize) {
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let mut old: Vec<usize> = (0..all.len())
        .filter(|i| {
            *i != ni
                && int(&all[*i]["spec"]["replicas"]) == 0
                && int(&all[*i]["status"]["replicas"]) == 0
        })
        .collect();
    if old.len() <= limit {
        return;
    }
    old.sort_by_key(|i| revision(&all[*i]));
    let excess = old.len() - limit;
    for &i in old.iter().take(excess) {
        state.remove(
            def("apps", "ReplicaSet"),
            meta_str(&all[i], "namespace"),
            meta_str(&all[i], "name"),
        );
    }
}

fn sync_status(
    state: &mut State,
    d: &Value,
    all: &[Value],
    new_idx: Option<usize>,
    replicas: i64,
    reason: Option<(&str, String)>,
) -> Requeue {
    let sum = |f: &str| -> i64 { all.iter().map(|rs| int(&rs["status"][f])).sum() };
    let total_spec: i64 = all.iter().map(|rs| int(&rs["spec"]["replicas"])).sum();
    let status_replicas = sum("replicas");
    let updated = new_idx.map_or(0, |i| int(&all[i]["status"]["replicas"]));
    let ready = sum("readyReplicas");
    let available = sum("availableReplicas");
    let old = &d["status"];
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();

    let ru = &d["spec"]["strategy"]["rollingUpdate"];
    let max_unavailable = if d["spec"]["strategy"]["type"] == "Recreate" {
        0
    } else {
        scaled(&ru["maxUnavailable"], replicas, false)
    };
    if available >= replicas - max_unavailable {
        set_condition(
            &mut conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            true,
        );
    } else {
        set_condition(
            &mut conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            true,
        );
    }

    // ReplicaFailure follows the ReplicaSets' (the new one's first), as getReplicaFailures does.
    let failure = new_idx
        .map(|i| &all[i])
        .into_iter()
        .chain(all.iter())
        .find_map(|rs| {
            condition(rs["status"]["conditions"].as_array()?, "ReplicaFailure")
                .filter(|c| c["status"] == "True")
                .cloned()
        });
    match failure {
        Some(c) => set_condition(
            &mut conditions,
            "ReplicaFailure",
            "True",
            c["reason"].as_str().unwrap_or("FailedCreate"),
            c["message"].as_str().unwrap_or(""),
            true,
        ),
        None => conditions.retain(|c| c["type"] != "ReplicaFailure"),
    }

    let rs_name = new_idx
        .map(|i| meta_str(&all[i], "name").to_string())
        .unwrap_or_default();
    let generation = int(&d["metadata"]["generation"]);
    let complete = updated == replicas && status_replicas == replicas && available == replicas;
    let old_old = int(&old["replicas"]) - int(&old["updatedReplicas"]);
    let progressing = updated > int(&old["updatedReplicas"])
        || status_replicas - updated < old_old
        || ready > int(&old["readyReplicas"])
        || available > int(&old["availableReplicas"]);
    if let Some((r, msg)) = &reason {
        replace_progressing(&mut conditions, r, msg);
    } else if complete {
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            true,
        );
    } else if progressing {
        replace_progressing(
            &mut conditions,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs_name}\" is progressing."),
        );
    } else if timed_out(&conditions, d) {
        set_condition(
            &mut conditions,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
            true,
        );
    }

    let mut status = json!({"observedGeneration": generation, "replicas": status_replicas, "updatedReplicas": updated,
        "readyReplicas": ready, "availableReplicas": available, "conditions": conditions});
    let unavailable = (total_spec.max(replicas) - available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    for f in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        if status[f] == 0 {
            status.as_object_mut().expect("status object").remove(f);
        }
    }
    let recheck = deadline_in(&conditions, d);
    write_status(state, def("apps", "Deployment"), d, status);
    recheck
}

/// Progress refreshes lastUpdateTime and keeps lastTransitionTime while already True.
fn replace_progressing(conditions: &mut Vec<Value>, reason: &str, message: &str) {
    let now = now_str();
    let transition = condition(conditions, "Progressing")
        .filter(|c| c["status"] == "True")
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now));
    conditions.retain(|c| c["type"] != "Progressing");
    conditions.push(
        json!({"type": "Progressing", "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": transition}),
    );
}

fn timed_out(conditions: &[Value], d: &Value) -> bool {
    match condition(conditions, "Progressing").and_then(|c| c["reason"].as_str()) {
        Some("ProgressDeadlineExceeded") => true,
        _ => deadline_in(conditions, d).is_some_and(|left| left.is_zero()),
    }
}

/// Time left before a rollout in progress exceeds progressDeadlineSeconds (zero once past);
/// None when no deadline is running (complete, already timed out, or never started).
fn deadline_in(conditions: &[Value], d: &Value) -> Option<Duration> {
    let c = condition(conditions, "Progressing")?;
    if matches!(
        c["reason"].as_str(),
        Some("NewReplicaSetAvailable" | "ProgressDeadlineExceeded")
    ) {
        return None;
    }
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
    let updated = c["lastUpdateTime"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())?;
    let expires = updated.with_timezone(&chrono::Utc) + chrono::Duration::seconds(deadline);
    // The deadline is passed strictly after `expires`; a millisecond later it has.
    let left = expires - chrono::Utc::now() + chrono::Duration::milliseconds(1);
    Some(left.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounding() {
        assert_eq!(scaled(&json!("25%"), 1, true), 1);
        assert_eq!(scaled(&json!("25%"), 1, false), 0);
        assert_eq!(scaled(&json!("25%"), 10, false), 2);
        assert_eq!(scaled(&json!(3), 10, false), 3);
    }

    #[test]
    fn deadline_only_counts_while_not_complete() {
        let d = json!({"spec":{"progressDeadlineSeconds":1}});
        let old = vec![
            json!({"type":"Progressing","status":"True","reason":"ReplicaSetUpdated","lastUpdateTime":"2000-01-01T00:00:00Z"}),
        ];
        assert!(timed_out(&old, &d));
        let done = vec![
            json!({"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable","lastUpdateTime":"2000-01-01T00:00:00Z"}),
        ];
        assert!(!timed_out(&done, &d));
    }
}
