//! Pure transforms of a component's rendered objects for the progressive strategies: the
//! canary Deployment beside the stable one, the blue/green slots with their Service selectors
//! and preview Services, and the PromQL matcher of a set of pods.

use serde_json::{Value, json};

pub use crate::routing::deployment;
use crate::routing::{self, routes_to, services_of_deployment};

/// Pod label of the canary's pods (the stable pods do not carry it).
pub const TRACK_LABEL: &str = "fluo.dev/track";
/// Pod label of a blue-green slot; the component's Services select one slot.
pub const SLOT_LABEL: &str = "fluo.dev/slot";
pub const SLOTS: [&str; 2] = ["blue", "green"];

pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `spec.replicas` (1 when unset, as the API server defaults it).
pub fn replicas_of(deployment: &Value) -> i32 {
    deployment["spec"]["replicas"].as_i64().unwrap_or(1) as i32
}

/// Canary replicas for `percent` of the stable's `total`: at least one (the stable keeps all of
/// its replicas, so the canary's share of traffic is canary / (canary + stable)).
pub fn canary_replicas(total: i32, percent: u32) -> i32 {
    ((total.max(1) as u32 * percent).div_ceil(100)).max(1) as i32
}

/// The canary Deployment: `deployment` (the new revision as rendered) named `<name>-canary`,
/// its pods labelled `fluo.dev/track=canary`, with `replicas` replicas.
pub fn canary_deployment(deployment: &Value, replicas: i32) -> Value {
    let mut canary = deployment.clone();
    canary["metadata"]["name"] = json!(format!("{}-canary", name_of(deployment)));
    add_pod_label(&mut canary, TRACK_LABEL, "canary");
    canary["spec"]["replicas"] = json!(replicas);
    canary
}

/// Adds `key=value` to the Deployment's labels, selector and pod template.
fn add_pod_label(deployment: &mut Value, key: &str, value: &str) {
    for path in [
        &["metadata", "labels"][..],
        &["spec", "selector", "matchLabels"],
        &["spec", "template", "metadata", "labels"],
    ] {
        let mut at = &mut *deployment;
        for p in path {
            if at.get(*p).is_none() {
                at[*p] = json!({});
            }
            at = &mut at[*p];
        }
        at[key] = json!(value);
    }
}

/// The slot the live objects serve from (None: no slotted Deployment yet).
pub fn live_slot(objects: &[Value]) -> Option<&'static str> {
    let d = deployment(objects)?;
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    SLOTS.into_iter().find(|s| labels[SLOT_LABEL] == *s)
}

/// The slot a new revision goes to: the one not serving.
pub fn next_slot(live: Option<&str>) -> &'static str {
    match live {
        Some("blue") => "green",
        _ => "blue",
    }
}

/// `objects` (the new revision as rendered) for slot `slot`: the Deployment named
/// `<name>-<slot>` with pods labelled `fluo.dev/slot=<slot>`, and every Service routing to it
/// selecting that slot only. What the revision's record holds.
pub fn slotted(objects: &[Value], slot: &str) -> Vec<Value> {
    let pod_labels = deployment(objects)
        .map(|d| d["spec"]["template"]["metadata"]["labels"].clone())
        .unwrap_or(Value::Null);
    objects
        .iter()
        .map(|o| {
            let mut o = o.clone();
            if o["kind"] == "Deployment" {
                o["metadata"]["name"] = json!(format!("{}-{slot}", name_of(&o)));
                add_pod_label(&mut o, SLOT_LABEL, slot);
            } else if routes_to(&o, &pod_labels) {
                o["spec"]["selector"][SLOT_LABEL] = json!(slot);
            }
            o
        })
        .collect()
}

/// `service` renamed `<name>-<suffix>`, without its cluster IP (the copy gets its own).
fn service_copy(service: &Value, suffix: &str) -> Value {
    let mut p = service.clone();
    p["metadata"]["name"] = json!(format!("{}-{suffix}", name_of(service)));
    if let Some(spec) = p["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    p
}

/// Preview Services of slotted `objects`: `<service>-preview` for each Service routing to the
/// Deployment, selecting the same slot (so green is reachable before the switch).
pub fn previews(objects: &[Value]) -> Vec<Value> {
    services_of_deployment(objects)
        .map(|s| service_copy(s, "preview"))
        .collect()
}

/// (Service, its preview) for each preview of [`previews`].
pub fn preview_pairs(objects: &[Value]) -> Vec<(String, String)> {
    services_of_deployment(objects)
        .map(|s| (name_of(s).to_string(), format!("{}-preview", name_of(s))))
        .collect()
}

/// The Services routing to the Deployment of `objects`, each also selecting `pod-template-hash
/// = hash`: what pins them to one ReplicaSet's pods (the stable ones) while a canary or green
/// carries the same labels.
pub fn pinned_services(objects: &[Value], hash: &str) -> Vec<Value> {
    services_of_deployment(objects)
        .map(|s| {
            let mut s = s.clone();
            s["spec"]["selector"][HASH_LABEL] = json!(hash);
            s
        })
        .collect()
}

/// The Services routing to the Deployment of `objects`, as declared (what unpins them).
pub fn routing_services(objects: &[Value]) -> Vec<Value> {
    services_of_deployment(objects).cloned().collect()
}

/// Label the deployment controller puts on a ReplicaSet's pods.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Annotations of ingress-nginx's canary Ingress.
const CANARY_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary";
const WEIGHT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/canary-weight";

/// The canary Services of `objects` (the new revision as rendered): `<service>-canary` for each
/// Service routing to the Deployment, selecting the canary's pods only.
pub fn canary_services(objects: &[Value]) -> Vec<Value> {
    services_of_deployment(objects)
        .map(|s| {
            let mut c = service_copy(s, "canary");
            c["spec"]["selector"][TRACK_LABEL] = json!("canary");
            c
        })
        .collect()
}

/// The canary Ingresses of `objects`: `<ingress>-canary` for each Ingress that can weigh
/// ([`routing::weighable_ingresses`]), with only its paths to routed Services, each pointing at
/// that Service's canary, and ingress-nginx's canary annotations sending `percent`% of the
/// requests there.
pub fn canary_ingresses(objects: &[Value], percent: u32) -> Vec<Value> {
    let routed = routing::routed_service_names(objects);
    routing::weighable_ingresses(objects)
        .into_iter()
        .map(|i| {
            let mut c = i.clone();
            c["metadata"]["name"] = json!(format!("{}-canary", name_of(i)));
            // ingress-nginx takes every other setting from the main Ingress.
            c["metadata"]["annotations"] = json!({
                CANARY_ANNOTATION: "true",
                WEIGHT_ANNOTATION: percent.to_string(),
            });
            if let Some(spec) = c["spec"].as_object_mut() {
                spec.remove("defaultBackend");
            }
            for rule in c["spec"]["rules"].as_array_mut().into_iter().flatten() {
                if let Some(paths) = rule["http"]["paths"].as_array_mut() {
                    paths.retain(|p| {
                        routing::backend_service(p).is_some_and(|s| routed.iter().any(|r| r == s))
                    });
                    for p in paths {
                        let name = format!("{}-canary", routing::backend_service(p).unwrap_or(""));
                        p["backend"]["service"]["name"] = json!(name);
                    }
                }
            }
            c
        })
        .collect()
}

/// The canary weight an Ingress's annotations set (None: not a canary Ingress of ours).
pub fn canary_weight(ingress: &Value) -> Option<u32> {
    ingress["metadata"]["annotations"][WEIGHT_ANNOTATION]
        .as_str()?
        .parse()
        .ok()
}

/// The Services of `objects` that route to its Deployment, as (name, slot selected).
pub fn routed_services(objects: &[Value]) -> Vec<(String, Option<String>)> {
    services_of_deployment(objects)
        .map(|s| {
            let slot = s["spec"]["selector"][SLOT_LABEL].as_str().map(String::from);
            (name_of(s).to_string(), slot)
        })
        .collect()
}

/// The PromQL label matcher of the series scraped from pods with these IPs (Prometheus' `instance`
/// is `<pod IP>:<port>`; regex matches are anchored, so `10.0.0.1` never matches `10.0.0.12`).
pub fn instance_matcher(ips: &[String]) -> String {
    let alternatives: Vec<String> = ips.iter().map(|ip| format!("{ip}:.*")).collect();
    format!("instance=~\"{}\"", alternatives.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "fluo-bff", "labels": {"app": "bff"}},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "bff"}},
                    "template": {"metadata": {"labels": {"app": "bff"}}, "spec": {}}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fluo-bff"},
                "spec": {"selector": {"app": "bff"}, "ports": [{"port": 8080}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fluo-bff-headless"},
                "spec": {"clusterIP": "None", "selector": {"app": "bff"}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other"},
                "spec": {"selector": {"app": "nats"}}}),
        ]
    }

    #[test]
    fn canary_gets_its_own_name_track_label_and_replicas() {
        let canary = canary_deployment(&objects()[0], 1);
        assert_eq!(canary["metadata"]["name"], "fluo-bff-canary");
        assert_eq!(canary["spec"]["replicas"], 1);
        for labels in [
            &canary["spec"]["selector"]["matchLabels"],
            &canary["spec"]["template"]["metadata"]["labels"],
        ] {
            assert_eq!(labels, &json!({"app": "bff", TRACK_LABEL: "canary"}));
        }
    }

    #[test]
    fn canary_replicas_round_up_and_never_reach_zero() {
        assert_eq!(canary_replicas(3, 10), 1);
        assert_eq!(canary_replicas(3, 50), 2);
        assert_eq!(canary_replicas(3, 100), 3);
        assert_eq!(canary_replicas(20, 10), 2);
        assert_eq!(canary_replicas(0, 10), 1);
    }

    #[test]
    fn slots_rename_the_deployment_and_switch_only_routing_services() {
        let green = slotted(&objects(), "green");
        assert_eq!(green[0]["metadata"]["name"], "fluo-bff-green");
        assert_eq!(
            green[0]["spec"]["template"]["metadata"]["labels"][SLOT_LABEL],
            "green"
        );
        assert_eq!(green[1]["spec"]["selector"][SLOT_LABEL], "green");
        assert!(
            green[2]["spec"]["selector"].get(SLOT_LABEL).is_none(),
            "headless"
        );
        assert!(
            green[3]["spec"]["selector"].get(SLOT_LABEL).is_none(),
            "other app"
        );
        assert_eq!(live_slot(&green), Some("green"));
        assert_eq!(next_slot(live_slot(&green)), "blue");
        assert_eq!(next_slot(live_slot(&objects())), "blue");
        assert_eq!(
            routed_services(&green),
            [("fluo-bff".to_string(), Some("green".to_string()))]
        );
        let previews = previews(&green);
        assert_eq!(previews.len(), 1);
        assert_eq!(previews[0]["metadata"]["name"], "fluo-bff-preview");
        assert_eq!(previews[0]["spec"]["selector"][SLOT_LABEL], "green");
    }

    #[test]
    fn ingress_canary_objects_select_the_canary_and_carry_the_weight() {
        let mut objects = objects();
        objects.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "api", "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}},
            "spec": {"ingressClassName": "nginx", "defaultBackend": {"service": {"name": "fluo-bff", "port": {"number": 8080}}},
                "rules": [{"host": "h", "http": {"paths": [
                    {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "fluo-bff", "port": {"number": 8080}}}},
                    {"path": "/docs", "pathType": "Prefix", "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}}));
        let services = canary_services(&objects);
        assert_eq!(services.len(), 1);
        assert_eq!(services[0]["metadata"]["name"], "fluo-bff-canary");
        assert_eq!(
            services[0]["spec"]["selector"],
            json!({"app": "bff", TRACK_LABEL: "canary"})
        );
        let ingresses = canary_ingresses(&objects, 10);
        assert_eq!(ingresses.len(), 1);
        let c = &ingresses[0];
        assert_eq!(c["metadata"]["name"], "api-canary");
        assert_eq!(
            c["metadata"]["annotations"],
            json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "10"})
        );
        assert_eq!(canary_weight(c), Some(10));
        assert!(c["spec"].get("defaultBackend").is_none());
        let paths = &c["spec"]["rules"][0]["http"]["paths"];
        assert_eq!(
            paths.as_array().unwrap().len(),
            1,
            "only the routed path: {paths}"
        );
        assert_eq!(paths[0]["backend"]["service"]["name"], "fluo-bff-canary");
        let pinned = pinned_services(&objects, "abc");
        assert_eq!(pinned.len(), 1);
        assert_eq!(
            pinned[0]["spec"]["selector"],
            json!({"app": "bff", HASH_LABEL: "abc"})
        );
        assert_eq!(
            routing_services(&objects)[0]["spec"]["selector"],
            json!({"app": "bff"})
        );
    }

    #[test]
    fn instance_matcher_lists_each_pod() {
        assert_eq!(
            instance_matcher(&["10.0.0.1".into(), "10.0.0.2".into()]),
            r#"instance=~"10.0.0.1:.*|10.0.0.2:.*""#
        );
    }
}
