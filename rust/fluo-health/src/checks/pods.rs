//! Pod readiness: every component has pods behind its Services, and all of them are Ready.
//! A component's pods are found the way traffic finds them: through the selector of each Service
//! named by its `[[health]]` entries.

use std::collections::BTreeSet;

use fluo_core::portforward::is_ready;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

use crate::access::Cluster;
use crate::check::ProbeResult;

/// A component and the Services its pods sit behind.
#[derive(Debug, Clone)]
pub struct ComponentServices {
    pub component: String,
    pub services: BTreeSet<String>,
}

pub async fn probe(cluster: &Cluster, components: &[ComponentServices]) -> ProbeResult {
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for component in components {
        let mut found: Vec<Pod> = Vec::new();
        for service in &component.services {
            let svc = services
                .get_opt(service)
                .await
                .map_err(|e| format!("reading service {}/{service}: {e}", cluster.namespace))?;
            let Some(svc) = svc else {
                problems.push(format!(
                    "{}: service {service} not found",
                    component.component
                ));
                continue;
            };
            let Some(selector) = selector(&svc) else {
                problems.push(format!(
                    "{}: service {service} has no selector",
                    component.component
                ));
                continue;
            };
            let list = pods
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| format!("listing pods of service {service}: {e}"))?;
            for pod in list.items {
                if !found.iter().any(|p| p.metadata.name == pod.metadata.name) {
                    found.push(pod);
                }
            }
        }
        match judge(&component.component, &found) {
            Ok(line) => ok.push(line),
            Err(line) => problems.push(line),
        }
    }
    if problems.is_empty() {
        Ok(ok.join(", "))
    } else {
        Err(problems.join("; "))
    }
}

fn selector(svc: &Service) -> Option<String> {
    let selector = svc.spec.as_ref()?.selector.as_ref()?;
    (!selector.is_empty()).then(|| {
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// `component: N/N ready`, or what is wrong with the pods that are not.
pub fn judge(component: &str, pods: &[Pod]) -> Result<String, String> {
    if pods.is_empty() {
        return Err(format!("{component}: no pods"));
    }
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    if ready == pods.len() {
        return Ok(format!("{component} {ready}/{} ready", pods.len()));
    }
    let not_ready: Vec<String> = pods
        .iter()
        .filter(|p| !is_ready(p))
        .map(|p| {
            format!(
                "{} {}",
                p.metadata.name.as_deref().unwrap_or("?"),
                why_not_ready(p)
            )
        })
        .collect();
    Err(format!(
        "{component} {ready}/{} ready, not ready: {}",
        pods.len(),
        not_ready.join(", ")
    ))
}

/// The most telling reason: a waiting container's reason, else the pod phase.
fn why_not_ready(pod: &Pod) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "(terminating)".to_owned();
    }
    let status = pod.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".to_owned());
    match waiting {
        Some(reason) => format!("({phase}, {reason})"),
        None => format!("({phase})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(yaml: &str) -> Vec<Pod> {
        serde_yaml::Deserializer::from_str(yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    }

    #[test]
    fn all_ready_passes() {
        let p = pods(
            "metadata: {name: bff-1}\nstatus: {phase: Running, conditions: [{type: Ready, status: 'True'}]}",
        );
        assert_eq!(judge("bff", &p), Ok("bff 1/1 ready".into()));
    }

    #[test]
    fn not_ready_pod_names_its_waiting_reason() {
        let p = pods(
            r#"
metadata: {name: bff-1}
status: {phase: Running, conditions: [{type: Ready, status: "True"}]}
---
metadata: {name: bff-2}
status:
  phase: Running
  conditions: [{type: Ready, status: "False"}]
  containerStatuses:
    - {name: bff, ready: false, restartCount: 4, image: x, imageID: "", state: {waiting: {reason: CrashLoopBackOff}}}
"#,
        );
        assert_eq!(
            judge("bff", &p),
            Err("bff 1/2 ready, not ready: bff-2 (Running, CrashLoopBackOff)".into())
        );
    }

    #[test]
    fn no_pods_fails() {
        assert_eq!(judge("nats", &[]), Err("nats: no pods".into()));
    }
}
