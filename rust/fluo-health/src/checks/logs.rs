//! Log scan: no pod in the environment's namespace writes secrets to its logs, whether they
//! match a secret pattern or are the value of one of the platform's Secrets. Findings name the
//! pod, container and line, with the secret redacted.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use crate::access::Cluster;
use crate::check::ProbeResult;
use crate::secret_values;
use crate::secrets;

/// How much of each container's log is read (the most recent part).
pub const TAIL_LINES: i64 = 5000;

pub async fn probe(cluster: &Cluster) -> ProbeResult {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing pods in {}: {e}", cluster.namespace))?;
    let (known, _) = secret_values::read(cluster, &secret_values::referenced(&list.items)).await?;
    let mut scanned = 0usize;
    let mut findings = Vec::new();
    for pod in &list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let containers = pod
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        for container in containers {
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(TAIL_LINES),
                ..LogParams::default()
            };
            let text = match pods.logs(&name, &params).await {
                Ok(text) => text,
                // A container that has not started has no log yet; that is not a leak.
                Err(kube::Error::Api(status)) if status.code == 400 => continue,
                Err(e) => return Err(format!("reading logs of {name}/{container}: {e}")),
            };
            scanned += 1;
            findings.extend(secrets::scan_with(&text, &known).into_iter().map(|f| {
                format!(
                    "{name}/{container} line {}: {}: {}",
                    f.line, f.kind, f.excerpt
                )
            }));
        }
    }
    if findings.is_empty() {
        Ok(format!(
            "no secrets in the logs of {scanned} container(s) in {} pod(s)",
            list.items.len()
        ))
    } else {
        Err(format!(
            "{} secret(s) in logs: {}",
            findings.len(),
            findings.join("; ")
        ))
    }
}
