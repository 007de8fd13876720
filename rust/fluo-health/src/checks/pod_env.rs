//! `pod-env`: no container in the namespace carries a credential as a literal environment
//! value. Credentials are files from Secrets (docs/security.md), or at least `secretKeyRef`
//! references; a literal value that equals a Secret's value, or that the secret patterns of
//! `fluo_core::secrets` recognise as `NAME=value` (PASSWORD=..., a URL with a password, a
//! token), fails the check naming the pod, container, variable and Secret, never the value.

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, ListParams};

use crate::access::Cluster;
use crate::check::ProbeResult;
use crate::secret_values::{self, Known};

/// Why a literal `name=value` is a credential, or None.
pub fn judge(name: &str, value: &str, known: &[Known]) -> Option<String> {
    if let Some(k) = known.iter().find(|k| k.is_in(value)) {
        return Some(format!("holds the value of {}", k.describe()));
    }
    let first = fluo_core::secrets::find(&format!("{name}={value}"))
        .into_iter()
        .next()?;
    Some(format!("holds a literal {}", first.kind))
}

/// Findings of one container: "pod/container env NAME: why".
fn container_findings(pod: &str, container: &Container, known: &[Known]) -> Vec<String> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|env| {
            let value = env.value.as_deref().filter(|v| !v.is_empty())?;
            let why = judge(&env.name, value, known)?;
            Some(format!(
                "{pod}/{} env {}: {why} (mount it as a file or use secretKeyRef)",
                container.name, env.name
            ))
        })
        .collect()
}

pub async fn probe(cluster: &Cluster) -> ProbeResult {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pods = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing pods in {}: {e}", cluster.namespace))?
        .items;
    let names = secret_values::referenced(&pods);
    let (known, unread) = secret_values::read(cluster, &names).await?;
    let mut containers = 0usize;
    let mut findings = Vec::new();
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let Some(spec) = &pod.spec else { continue };
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            containers += 1;
            findings.extend(container_findings(name, container, &known));
        }
    }
    let unread = if unread.is_empty() {
        String::new()
    } else {
        format!("; not readable by the deployer: {}", unread.join(", "))
    };
    if findings.is_empty() {
        Ok(format!(
            "no credential in the literal environment of {containers} container(s) in {} pod(s) \
             ({} Secret value(s) compared{unread})",
            pods.len(),
            known.len()
        ))
    } else {
        Err(format!(
            "{} credential(s) in container environments: {}",
            findings.len(),
            findings.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_value_or_a_credential_pattern_is_a_finding_and_file_paths_are_not() {
        let known =
            [Known::new("nats-credentials", "bff.password", "9f8e7d6c5b4a39281706").unwrap()];
        assert_eq!(
            judge("NATS_PASS", "9f8e7d6c5b4a39281706", &known).as_deref(),
            Some("holds the value of Secret nats-credentials key bff.password")
        );
        assert_eq!(
            judge("DB_PASSWORD", "hunter22x", &[]).as_deref(),
            Some("holds a literal credential assignment")
        );
        assert!(judge("NATS_URL", "nats://bff:s3cretpw@nats:4222", &[]).is_some());
        for (name, value) in [
            ("NATS_PASSWORD_FILE", "/etc/fluo/nats-credentials/password"),
            (
                "FLUO_BFF_AUTH_TOKENS_FILE",
                "/etc/fluo/api-tokens/tokens.toml",
            ),
            ("NATS_USER", "bff"),
            ("NATS_URL", "tls://nats:4222"),
        ] {
            assert_eq!(judge(name, value, &known), None, "{name}");
        }
    }
}
