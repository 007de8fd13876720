//! How a component's rendered objects route traffic to its Deployment: the Services selecting
//! its pods, and the Ingresses in front of those Services that can weigh a canary (ingress-nginx,
//! whose canary annotations do it). Pure; shared by the configuration checks (`config`) and the
//! progressive strategies (`ops::progressive`).

use serde_json::Value;

/// The ingress class whose controller honours `nginx.ingress.kubernetes.io/canary-weight`.
pub const WEIGHING_CLASS: &str = "nginx";

/// The one Deployment among `objects` (config checks that a progressive component has one).
pub fn deployment(objects: &[Value]) -> Option<&Value> {
    objects.iter().find(|o| o["kind"] == "Deployment")
}

/// Whether `service` routes to pods with `pod_labels` (a selector they satisfy) and has a
/// virtual IP (headless Services, e.g. for scraping, keep selecting every pod).
pub fn routes_to(service: &Value, pod_labels: &Value) -> bool {
    if service["kind"] != "Service" || service["spec"]["clusterIP"] == "None" {
        return false;
    }
    service["spec"]["selector"]
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels[k] == *v))
}

/// The Services of `objects` that route to its Deployment's pods.
pub fn services_of_deployment(objects: &[Value]) -> impl Iterator<Item = &Value> {
    let pod_labels = deployment(objects)
        .map(|d| d["spec"]["template"]["metadata"]["labels"].clone())
        .unwrap_or(Value::Null);
    objects.iter().filter(move |o| routes_to(o, &pod_labels))
}

/// The names of the Services routing to the Deployment of `objects`.
pub fn routed_service_names(objects: &[Value]) -> Vec<String> {
    services_of_deployment(objects)
        .filter_map(|s| s["metadata"]["name"].as_str().map(String::from))
        .collect()
}

/// The Service an Ingress path's backend names.
pub fn backend_service(path: &Value) -> Option<&str> {
    path["backend"]["service"]["name"].as_str()
}

/// The Ingresses of `objects` that can weigh a canary of its Deployment: of class `nginx` (or
/// without class: the cluster's default) with a path to a Service routing to the Deployment.
pub fn weighable_ingresses(objects: &[Value]) -> Vec<&Value> {
    let routed = routed_service_names(objects);
    objects
        .iter()
        .filter(|o| o["kind"] == "Ingress")
        .filter(|i| {
            i["spec"]["ingressClassName"]
                .as_str()
                .is_none_or(|c| c == WEIGHING_CLASS)
        })
        .filter(|i| {
            paths(i).any(|p| backend_service(p).is_some_and(|s| routed.iter().any(|r| r == s)))
        })
        .collect()
}

/// Every HTTP path of an Ingress's rules.
pub fn paths(ingress: &Value) -> impl Iterator<Item = &Value> {
    ingress["spec"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(class: Option<&str>, backend: &str) -> Vec<Value> {
        let mut ing = json!({"kind": "Ingress", "metadata": {"name": "api"},
            "spec": {"rules": [{"host": "h", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": backend, "port": {"name": "http"}}}}]}}]}});
        if let Some(c) = class {
            ing["spec"]["ingressClassName"] = json!(c);
        }
        vec![
            json!({"kind": "Deployment", "metadata": {"name": "bff"},
                "spec": {"template": {"metadata": {"labels": {"app": "bff", "tier": "api"}}}}}),
            json!({"kind": "Service", "metadata": {"name": "bff"}, "spec": {"selector": {"app": "bff"}}}),
            json!({"kind": "Service", "metadata": {"name": "bff-headless"},
                "spec": {"clusterIP": "None", "selector": {"app": "bff"}}}),
            ing,
        ]
    }

    #[test]
    fn only_nginx_or_classless_ingresses_to_a_routed_service_can_weigh() {
        assert_eq!(routed_service_names(&objects(None, "bff")), ["bff"]);
        assert_eq!(weighable_ingresses(&objects(None, "bff")).len(), 1);
        assert_eq!(weighable_ingresses(&objects(Some("nginx"), "bff")).len(), 1);
        assert!(weighable_ingresses(&objects(Some("traefik"), "bff")).is_empty());
        assert!(
            weighable_ingresses(&objects(None, "bff-headless")).is_empty(),
            "a headless Service is not routed"
        );
    }
}
