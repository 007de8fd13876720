//! Service connectivity: a Service whose selector matches nothing, one with no ready endpoints,
//! a targetPort that no selected container exposes, and a host name in configuration
//! (ConfigMap data, container env) that resolves to no Service of the namespace.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use regex::Regex;

use super::snapshot::{Snapshot, component_of, labels_of, map_matches, name_of};
use super::{Family, Finding};

pub fn findings(snapshot: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for service in &snapshot.services {
        out.extend(service_findings(snapshot, service));
    }
    out.extend(unresolved_hosts(snapshot));
    out
}

fn service_finding(
    service: &Service,
    pattern: &'static str,
    evidence: Vec<String>,
    hint: String,
) -> Finding {
    Finding {
        family: Family::Connectivity,
        pattern,
        component: component_of(&service.metadata),
        object: format!("Service/{}", name_of(&service.metadata)),
        evidence,
        hint,
    }
}

/// Pod specs a Service selector can reach: live pods, and the templates of Deployments and
/// StatefulSets (so a scaled-to-zero or not-yet-started workload still counts).
fn selected_specs<'a>(
    snapshot: &'a Snapshot,
    selector: &std::collections::BTreeMap<String, String>,
) -> Vec<&'a PodSpec> {
    let pods = snapshot
        .pods
        .iter()
        .filter(|p| map_matches(selector, &labels_of(p)))
        .filter_map(|p| p.spec.as_ref());
    let templates = snapshot
        .templates()
        .into_iter()
        .filter(|t| {
            let meta = t.template.metadata.as_ref();
            map_matches(
                selector,
                &meta.and_then(|m| m.labels.clone()).unwrap_or_default(),
            )
        })
        .filter_map(|t| t.template.spec.as_ref());
    pods.chain(templates).collect()
}

fn service_findings(snapshot: &Snapshot, service: &Service) -> Vec<Finding> {
    let name = name_of(&service.metadata);
    let Some(selector) = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
    else {
        return Vec::new(); // no selector: endpoints are managed by hand
    };
    let selector_text = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let matching: Vec<_> = snapshot
        .pods
        .iter()
        .filter(|p| map_matches(&selector, &labels_of(p)))
        .collect();
    let specs = selected_specs(snapshot, &selector);
    if specs.is_empty() {
        return vec![service_finding(
            service,
            "selector-matches-nothing",
            vec![format!(
                "selector {selector_text} matches no pod and no workload template"
            )],
            "fix the Service's selector (or the pod template's labels) so they agree".into(),
        )];
    }
    let mut out = Vec::new();
    let containers: Vec<&Container> = specs.iter().flat_map(|s| s.containers.iter()).collect();
    for port in service
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
    {
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        let exposed = containers.iter().any(|c| {
            c.ports.iter().flatten().any(|cp| match &target {
                IntOrString::Int(n) => cp.container_port == *n,
                IntOrString::String(s) => cp.name.as_deref() == Some(s.as_str()),
            })
        });
        if !exposed {
            let target_text = match &target {
                IntOrString::Int(n) => n.to_string(),
                IntOrString::String(s) => s.clone(),
            };
            out.push(service_finding(
                service,
                "target-port-not-exposed",
                vec![format!(
                    "port {} targets {target_text}, which no container selected by {selector_text} declares",
                    port.port
                )],
                "set the Service port's targetPort to a declared containerPort (number or name)".into(),
            ));
        }
    }
    let ready = snapshot
        .endpoints
        .iter()
        .find(|e| name_of(&e.metadata) == name)
        .map(|e| {
            e.subsets
                .iter()
                .flatten()
                .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .unwrap_or(0);
    if ready == 0 {
        let not_ready: Vec<String> = matching.iter().map(|p| name_of(&p.metadata)).collect();
        let evidence = if not_ready.is_empty() {
            vec![format!(
                "no ready endpoints; no pod matches {selector_text} (the workload has no running pods)"
            )]
        } else {
            vec![format!(
                "no ready endpoints; pods matching {selector_text} are not Ready: {}",
                not_ready.join(", ")
            )]
        };
        out.push(service_finding(
            service,
            "no-ready-endpoints",
            evidence,
            "the selected pods are not Ready: see the startup findings of those pods (or scale the \
             workload up)"
                .into(),
        ));
    }
    out
}

/// `scheme://host[:port]` or `host:port` in configuration text.
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:[a-z][a-z0-9+.-]*://([a-z0-9][a-z0-9.-]*)|\b([a-z][a-z0-9.-]*):[0-9]{2,5}\b)")
        .expect("host regex")
});

/// The Service name an in-cluster host name refers to, or None for an external/loopback host.
fn service_of<'a>(host: &'a str, namespace: &str) -> Option<&'a str> {
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => Some(name),
        [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"]
            if *ns == namespace =>
        {
            Some(name)
        }
        _ => None,
    }
}

fn unresolved_hosts(snapshot: &Snapshot) -> Vec<Finding> {
    let services: BTreeSet<String> = snapshot
        .services
        .iter()
        .map(|s| name_of(&s.metadata))
        .collect();
    let mut out = Vec::new();
    for source in snapshot.all_config_values() {
        let mut missing = BTreeSet::new();
        for cap in HOST.captures_iter(&source.value) {
            let host = cap.get(1).or_else(|| cap.get(2)).map_or("", |m| m.as_str());
            if let Some(name) = service_of(host, &snapshot.namespace)
                && !services.contains(name)
            {
                missing.insert(host.to_string());
            }
        }
        for host in missing {
            out.push(Finding {
                family: Family::Connectivity,
                pattern: "unresolved-host",
                component: source.component.clone(),
                object: source.object.clone(),
                evidence: vec![format!(
                    "{} names host {host}, which is no Service in namespace {}",
                    source.key, snapshot.namespace
                )],
                hint: format!(
                    "point {} at an existing Service (services: {}) or deploy the missing one",
                    source.key,
                    services.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_host_names_map_to_services() {
        assert_eq!(service_of("nats", "fluo"), Some("nats"));
        assert_eq!(
            service_of("nats.fluo.svc.cluster.local", "fluo"),
            Some("nats")
        );
        assert_eq!(service_of("nats.fluo.svc", "fluo"), Some("nats"));
        assert_eq!(service_of("nats.other", "fluo"), None);
        assert_eq!(service_of("example.com", "fluo"), None);
        assert_eq!(service_of("localhost", "fluo"), None);
        assert_eq!(service_of("127.0.0.1", "fluo"), None);
    }

    #[test]
    fn hosts_are_found_in_urls_and_host_port_pairs() {
        let text = "url: nats://nats:4222\ntargets: ['fluo-bff:8080']\ninterval: 15s";
        let hosts: Vec<&str> = HOST
            .captures_iter(text)
            .map(|c| c.get(1).or_else(|| c.get(2)).unwrap().as_str())
            .collect();
        assert_eq!(hosts, ["nats", "fluo-bff"]);
    }
}
