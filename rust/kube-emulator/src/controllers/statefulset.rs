//! StatefulSet controller: ordinal pods created in order (OrderedReady) or together (Parallel),
//! rolling updates from the highest ordinal, claims from volumeClaimTemplates, and
//! currentRevision/updateRevision.

use serde_json::{Value, json};

use super::events::{self, STATEFULSET_CONTROLLER};
use super::{
    Requeue, def, is_deleting, owned, owner_ref, pod_from_template, pod_is_ready, template_hash,
    write_status,
};
use crate::apiserver::store::{State, meta_str};

const REVISION_LABEL: &str = "controller-revision-hash";

fn ordinal(pod: &Value, set: &str) -> Option<i64> {
    meta_str(pod, "name")
        .strip_prefix(&format!("{set}-"))?
        .parse()
        .ok()
}

pub fn reconcile(state: &mut State, sts: &Value) -> Requeue {
    let pod_def = def("", "Pod");
    let ns = meta_str(sts, "namespace").to_string();
    let name = meta_str(sts, "name").to_string();
    let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
    let update_revision = format!("{name}-{}", template_hash(&sts["spec"]["template"]));
    let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
    let mut pods: Vec<Value> = owned(state, pod_def, sts)
        .into_iter()
        .filter(|p| !is_deleting(p))
        .collect();
    pods.sort_by_key(|p| ordinal(p, &name).unwrap_or(i64::MAX));

    // Scale down from the highest ordinal.
    while let Some(last) = pods.last() {
        if ordinal(last, &name).is_some_and(|o| o >= replicas) {
            let pod_name = meta_str(last, "name").to_string();
            delete_pod(state, sts, &pod_name);
            pods.pop();
            if !parallel {
                break;
            }
        } else {
            break;
        }
    }
    // Create missing ordinals; OrderedReady waits for every lower ordinal to be ready.
    for i in 0..replicas {
        let pod_name = format!("{name}-{i}");
        if pods.iter().any(|p| meta_str(p, "name") == pod_name) {
            continue;
        }
        if !parallel
            && pods
                .iter()
                .any(|p| ordinal(p, &name).is_some_and(|o| o < i) && !pod_is_ready(p))
        {
            break;
        }
        if !parallel
            && (pods
                .iter()
                .filter(|p| ordinal(p, &name).is_some_and(|o| o < i))
                .count() as i64)
                < i
        {
            break;
        }
        let mut template = sts["spec"]["template"].clone();
        template["metadata"]["labels"][REVISION_LABEL] = json!(update_revision);
        template["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pod_name);
        template["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = json!(i.to_string());
        for claim in sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let claim_name = format!("{}-{pod_name}", meta_str(claim, "name"));
            ensure_claim(state, sts, claim, &pod_name, &claim_name);
            let volumes = template["spec"]["volumes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !volumes
                .iter()
                .any(|v| v["name"] == claim["metadata"]["name"])
            {
                let mut v = volumes;
                v.push(json!({"name": claim["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim_name}}));
                template["spec"]["volumes"] = json!(v);
            }
        }
        let mut pod = pod_from_template(
            &template,
            &ns,
            Some(&pod_name),
            &format!("{name}-"),
            owner_ref(sts, "StatefulSet", "apps/v1"),
        );
        pod["spec"]["hostname"] = json!(pod_name);
        if let Some(svc) = sts["spec"]["serviceName"]
            .as_str()
            .filter(|s| !s.is_empty())
        {
            pod["spec"]["subdomain"] = json!(svc);
        }
        if let Ok(p) = super::create(state, pod_def, pod) {
            let message = format!("create Pod {pod_name} in StatefulSet {name} successful");
            record(state, sts, "SuccessfulCreate", message);
            pods.push(p);
            pods.sort_by_key(|p| ordinal(p, &name).unwrap_or(i64::MAX));
        }
        if !parallel {
            break;
        }
    }
    // Rolling update: replace the highest outdated pod once everything is ready.
    let partition = sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0);
    let rolling = sts["spec"]["updateStrategy"]["type"] != "OnDelete";
    let all_ready = pods.len() as i64 == replicas && pods.iter().all(pod_is_ready);
    if rolling
        && all_ready
        && let Some(outdated) = pods.iter().rev().find(|p| {
            p["metadata"]["labels"][REVISION_LABEL] != update_revision.as_str()
                && ordinal(p, &name).is_some_and(|o| o >= partition)
        })
    {
        let n = meta_str(outdated, "name").to_string();
        delete_pod(state, sts, &n);
        pods.retain(|p| meta_str(p, "name") != n);
    }
    let updated = pods
        .iter()
        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == update_revision.as_str())
        .count() as i64;
    let ready = pods.iter().filter(|p| pod_is_ready(p)).count() as i64;
    let old_current = sts["status"]["currentRevision"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let current_revision = if old_current.is_empty() || (updated == replicas && ready == replicas) {
        update_revision.clone()
    } else {
        old_current
    };
    let current = pods
        .iter()
        .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == current_revision.as_str())
        .count();
    let status = json!({"observedGeneration": sts["metadata"]["generation"].clone(), "replicas": pods.len(),
        "readyReplicas": ready, "currentReplicas": current, "updatedReplicas": updated, "availableReplicas": ready,
        "currentRevision": current_revision, "updateRevision": update_revision, "collisionCount": 0});
    write_status(state, def("apps", "StatefulSet"), sts, status);
    None
}

/// A Normal event of the StatefulSet controller about `sts`.
fn record(state: &mut State, sts: &Value, reason: &str, message: String) {
    events::normal(state, STATEFULSET_CONTROLLER, sts, reason, message);
}

/// Deletes one of the set's pods and records it like the StatefulSet pod control does.
fn delete_pod(state: &mut State, sts: &Value, pod_name: &str) {
    let ns = meta_str(sts, "namespace");
    if state.remove(def("", "Pod"), ns, pod_name).is_some() {
        let message = format!(
            "delete Pod {pod_name} in StatefulSet {} successful",
            meta_str(sts, "name")
        );
        record(state, sts, "SuccessfulDelete", message);
    }
}

fn ensure_claim(state: &mut State, sts: &Value, claim: &Value, pod_name: &str, claim_name: &str) {
    let pvc_def = def("", "PersistentVolumeClaim");
    let ns = meta_str(sts, "namespace");
    if state.get(pvc_def, ns, claim_name).is_some() {
        return;
    }
    let mut meta = claim["metadata"].clone();
    meta["name"] = json!(claim_name);
    meta["namespace"] = json!(ns);
    let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": claim["spec"].clone()});
    if super::create(state, pvc_def, pvc).is_ok() {
        let message = format!(
            "create Claim {claim_name} Pod {pod_name} in StatefulSet {} success",
            meta_str(sts, "name")
        );
        record(state, sts, "SuccessfulCreate", message);
    }
}
