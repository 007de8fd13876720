//! Pure transforms of a component's rendered objects for the progressive strategies: the
//! canary Deployment beside the stable one, the blue/green slots with their Service selectors
//! and preview Services, and the PromQL matcher of a set of pods.

use serde_json::{Value, json};

/// Pod label of the canary's pods (the stable pods do not carry it).
pub const TRACK_LABEL: &str = "fluo.dev/track";
/// Pod label of a blue-green slot; the component's Services select one slot.
pub const SLOT_LABEL: &str = "fluo.dev/slot";
pub const SLOTS: [&str; 2] = ["blue", "green"];

/// The one Deployment among `objects` (config checks that a progressive component has one).
pub fn deployment(objects: &[Value]) -> Option<&Value> {
    objects.iter().find(|o| o["kind"] == "Deployment")
}

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

/// Whether `service` routes to the Deployment's pods (a selector the pod labels satisfy) and
/// has a virtual IP (headless Services, e.g. for scraping, keep selecting every pod).
fn routes_to(service: &Value, pod_labels: &Value) -> bool {
    if service["kind"] != "Service" || service["spec"]["clusterIP"] == "None" {
        return false;
    }
    service["spec"]["selector"]
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels[k] == *v))
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

/// The Services of `objects` that route to its Deployment's pods.
fn services_of_deployment(objects: &[Value]) -> impl Iterator<Item = &Value> {
    let pod_labels = deployment(objects)
        .map(|d| d["spec"]["template"]["metadata"]["labels"].clone())
        .unwrap_or(Value::Null);
    objects.iter().filter(move |o| routes_to(o, &pod_labels))
}

/// Preview Services of slotted `objects`: `<service>-preview` for each Service routing to the
/// Deployment, selecting the same slot (so green is reachable before the switch).
pub fn previews(objects: &[Value]) -> Vec<Value> {
    services_of_deployment(objects)
        .map(|s| {
            let mut p = s.clone();
            p["metadata"]["name"] = json!(format!("{}-preview", name_of(s)));
            if let Some(spec) = p["spec"].as_object_mut() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
            p
        })
        .collect()
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
    fn instance_matcher_lists_each_pod() {
        assert_eq!(
            instance_matcher(&["10.0.0.1".into(), "10.0.0.2".into()]),
            r#"instance=~"10.0.0.1:.*|10.0.0.2:.*""#
        );
    }
}
