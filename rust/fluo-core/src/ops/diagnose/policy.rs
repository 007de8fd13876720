//! NetworkPolicies that deny a flow the components need. The flows are those of the platform:
//! the BFF and the workers connect to NATS on its client port (4222), Prometheus scrapes NATS,
//! the BFF and the workers (any declared container port is enough), Grafana queries Prometheus (9090).
//! Policies are evaluated like the API defines them: a pod selected by no policy of a direction
//! is open in that direction; otherwise some rule of a selecting policy must match both the
//! peer (podSelector in this namespace, namespaceSelector) and the port (number or name).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ContainerPort;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::snapshot::{Snapshot, Template, name_of, selector_matches};
use super::{Family, Finding};

/// (client, server, server port; None = any declared container port of the server).
/// Prometheus scrapes itself on loopback and does not scrape Grafana, so neither is a flow.
pub const FLOWS: [(&str, &str, Option<i32>); 6] = [
    ("bff", "nats", Some(4222)),
    ("workers", "nats", Some(4222)),
    ("grafana", "prometheus", Some(9090)),
    ("prometheus", "nats", None),
    ("prometheus", "bff", None),
    ("prometheus", "workers", None),
];

/// A rule's peers and ports (ingress `from` or egress `to`).
type Rule = (
    Option<Vec<NetworkPolicyPeer>>,
    Option<Vec<NetworkPolicyPort>>,
);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

pub fn findings(snapshot: &Snapshot) -> Vec<Finding> {
    let templates = snapshot.templates();
    let by_component: BTreeMap<&str, &Template> = templates
        .iter()
        .filter_map(|t| Some((t.component.as_deref()?, t)))
        .collect();
    let mut out = Vec::new();
    for (client, server, port) in FLOWS {
        let (Some(from), Some(to)) = (by_component.get(client), by_component.get(server)) else {
            continue; // a component that is not deployed has no flow to check
        };
        let ports = server_ports(to, port);
        if ports.is_empty() {
            continue; // nothing declared to reach; target-port findings cover a Service mismatch
        }
        let from_labels = labels(from);
        let to_labels = labels(to);
        let denial = [Direction::Egress, Direction::Ingress]
            .into_iter()
            .find_map(|d| {
                let (own, peer) = match d {
                    Direction::Egress => (&from_labels, &to_labels),
                    Direction::Ingress => (&to_labels, &from_labels),
                };
                let selecting = selecting(snapshot, own, d);
                let open = selecting.is_empty()
                    || ports
                        .iter()
                        .any(|p| selecting.iter().any(|np| allows(np, d, peer, p, snapshot)));
                (!open).then_some((d, selecting))
            });
        if let Some((d, policies)) = denial {
            let names: Vec<String> = policies.iter().map(|p| name_of(&p.metadata)).collect();
            let port_text = match port {
                Some(p) => p.to_string(),
                None => "any of its ports".into(),
            };
            let (side, component) = match d {
                Direction::Egress => ("egress of", client),
                Direction::Ingress => ("ingress to", server),
            };
            out.push(Finding {
                family: Family::Connectivity,
                pattern: "network-policy-denies",
                component: Some(component.to_string()),
                object: format!("NetworkPolicy/{}", names.join(",")),
                evidence: vec![format!(
                    "{client} -> {server} ({port_text}) is denied at the {side} {component}: \
                     policies selecting it ({}) have no rule allowing it",
                    names.join(", ")
                )],
                hint: format!(
                    "add a rule to {} allowing {client} -> {server} on {port_text} (podSelector of \
                     the peer's labels and the port)",
                    names.join(" or ")
                ),
            });
        }
    }
    out
}

fn labels(t: &Template) -> BTreeMap<String, String> {
    t.template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn server_ports(t: &Template, wanted: Option<i32>) -> Vec<ContainerPort> {
    let declared: Vec<ContainerPort> = t
        .template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.clone().unwrap_or_default())
        .collect();
    match wanted {
        None => declared,
        Some(n) => vec![
            declared
                .into_iter()
                .find(|p| p.container_port == n)
                .unwrap_or(ContainerPort {
                    container_port: n,
                    ..Default::default()
                }),
        ],
    }
}

fn policy_types(np: &NetworkPolicy) -> Vec<String> {
    let spec = np.spec.clone().unwrap_or_default();
    spec.policy_types.unwrap_or_else(|| {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.is_some() {
            types.push("Egress".into());
        }
        types
    })
}

fn selecting<'a>(
    snapshot: &'a Snapshot,
    labels: &BTreeMap<String, String>,
    d: Direction,
) -> Vec<&'a NetworkPolicy> {
    let wanted = match d {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    snapshot
        .policies
        .iter()
        .filter(|np| {
            let spec = np.spec.clone().unwrap_or_default();
            selector_matches(&spec.pod_selector.unwrap_or_default(), labels)
                && policy_types(np).iter().any(|t| t == wanted)
        })
        .collect()
}

fn allows(
    np: &NetworkPolicy,
    d: Direction,
    peer: &BTreeMap<String, String>,
    port: &ContainerPort,
    snapshot: &Snapshot,
) -> bool {
    let spec = np.spec.clone().unwrap_or_default();
    let rules: Vec<Rule> = match d {
        Direction::Ingress => spec
            .ingress
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.from, r.ports))
            .collect(),
        Direction::Egress => spec
            .egress
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.to, r.ports))
            .collect(),
    };
    rules.into_iter().any(|(peers, ports)| {
        let peer_ok = peers.filter(|p| !p.is_empty()).is_none_or(|ps| {
            ps.iter()
                .any(|p| peer_matches(p, peer, &snapshot.namespace))
        });
        let port_ok = ports
            .filter(|p| !p.is_empty())
            .is_none_or(|ps| ps.iter().any(|p| port_matches(p, port)));
        peer_ok && port_ok
    })
}

/// A peer in this namespace: a namespaceSelector must select it (by its well-known name label).
fn peer_matches(p: &NetworkPolicyPeer, labels: &BTreeMap<String, String>, namespace: &str) -> bool {
    if p.ip_block.is_some() {
        return false; // pod IPs are not known statically
    }
    let ns_labels = BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        namespace.to_string(),
    )]);
    let ns_ok = p
        .namespace_selector
        .as_ref()
        .is_none_or(|s| selector_matches(s, &ns_labels));
    let pod_ok = p
        .pod_selector
        .as_ref()
        .is_none_or(|s| selector_matches(s, labels));
    ns_ok && pod_ok
}

fn port_matches(p: &NetworkPolicyPort, port: &ContainerPort) -> bool {
    let protocol = p.protocol.as_deref().unwrap_or("TCP");
    if protocol != port.protocol.as_deref().unwrap_or("TCP") {
        return false;
    }
    match &p.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let end = p.end_port.unwrap_or(*n);
            (*n..=end).contains(&port.container_port)
        }
        Some(IntOrString::String(name)) => port.name.as_deref() == Some(name.as_str()),
    }
}
