//! Endpoints controller: one Endpoints object per Service with a selector, listing ready pod
//! addresses (and not-ready ones separately) with the target ports resolved.

use serde_json::{Value, json};

use super::{Requeue, def, is_deleting, pod_is_ready};
use crate::apiserver::selectors::LabelSelector;
use crate::apiserver::store::{State, meta_str};

pub fn reconcile(state: &mut State, svc: &Value) -> Requeue {
    if svc["spec"]["selector"]
        .as_object()
        .is_some_and(|s| !s.is_empty())
    {
        reconcile_one(state, svc);
    }
    None
}

fn target_port(svc_port: &Value, pod: &Value) -> Option<i64> {
    match &svc_port["targetPort"] {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => pod["spec"]["containers"]
            .as_array()?
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_i64()),
        _ => svc_port["port"].as_i64(),
    }
}

fn reconcile_one(state: &mut State, svc: &Value) {
    let ns = meta_str(svc, "namespace").to_string();
    let name = meta_str(svc, "name").to_string();
    let selector = LabelSelector::from_object(&json!({"matchLabels": svc["spec"]["selector"]}));
    let pods: Vec<Value> = state
        .list(def("", "Pod"), Some(&ns))
        .filter(|p| {
            selector.matches_object(p) && !is_deleting(p) && p["status"]["podIP"].is_string()
        })
        .cloned()
        .collect();
    let address = |p: &Value| {
        json!({"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
            "targetRef": {"kind": "Pod", "namespace": ns, "name": meta_str(p, "name"), "uid": meta_str(p, "uid")}})
    };
    let ready: Vec<Value> = pods
        .iter()
        .filter(|p| pod_is_ready(p))
        .map(address)
        .collect();
    let not_ready: Vec<Value> = pods
        .iter()
        .filter(|p| !pod_is_ready(p))
        .map(address)
        .collect();
    let ports: Vec<Value> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let port = pods
                .first()
                .and_then(|pod| target_port(p, pod))
                .or_else(|| p["targetPort"].as_i64())
                .unwrap_or(0);
            let mut e = json!({"port": port, "protocol": p["protocol"]});
            if let Some(n) = p["name"].as_str() {
                e["name"] = json!(n);
            }
            e
        })
        .collect();
    let mut endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": svc["metadata"]["labels"].clone()}});
    if !pods.is_empty() {
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        endpoints["subsets"] = json!([subset]);
    }
    if endpoints["metadata"]["labels"].is_null() {
        endpoints["metadata"]
            .as_object_mut()
            .expect("metadata object")
            .remove("labels");
    }
    let ep_def = def("", "Endpoints");
    match state.get(ep_def, &ns, &name).cloned() {
        None => {
            super::create(state, ep_def, endpoints).ok();
        }
        Some(existing) => {
            let mut next = existing.clone();
            next["subsets"] = endpoints["subsets"].clone();
            if next["subsets"].is_null() {
                next.as_object_mut()
                    .expect("endpoints object")
                    .remove("subsets");
            }
            state.replace(ep_def, next);
        }
    }
}
