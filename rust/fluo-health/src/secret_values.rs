//! The values of the Secrets the platform's pods use, read with the deployer's credentials, so
//! the env and log checks can find a credential that matches no pattern (a random password or
//! token, bare). Values stay in memory; findings name the Secret and key, never the value.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;

use crate::access::Cluster;

/// Shorter values would match ordinary text by chance.
const MIN_LEN: usize = 8;

/// One Secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Known {
    pub secret: String,
    pub key: String,
    value: String,
}

impl std::fmt::Debug for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Known({}/{}, ***)", self.secret, self.key)
    }
}

impl Known {
    pub fn new(secret: &str, key: &str, value: &str) -> Option<Self> {
        let value = value.trim();
        // Certificates and NATS user names are public; short values are not distinctive.
        let public = key.ends_with(".crt") || key.ends_with(".user");
        (value.len() >= MIN_LEN && !public).then(|| Known {
            secret: secret.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Whether `text` holds this value.
    pub fn is_in(&self, text: &str) -> bool {
        text.contains(&self.value)
    }

    /// `text` with this value replaced by `[REDACTED]`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.value, "[REDACTED]")
    }

    /// "Secret nats-credentials key bff.password".
    pub fn describe(&self) -> String {
        format!("Secret {} key {}", self.secret, self.key)
    }
}

/// The Secrets the pods mount or reference, plus the platform's own (`fluo_secrets::bundle`).
pub fn referenced(pods: &[Pod]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = fluo_secrets::bundle::ALL
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for spec in pods.iter().filter_map(|p| p.spec.as_ref()) {
        for volume in spec.volumes.iter().flatten() {
            names.extend(volume.secret.as_ref().and_then(|s| s.secret_name.clone()));
            let projected = volume.projected.as_ref().and_then(|p| p.sources.as_ref());
            names.extend(
                projected
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.secret.as_ref().map(|s| s.name.clone())),
            );
        }
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for container in containers {
            for env in container.env.iter().flatten() {
                let by_ref = env
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref());
                names.extend(by_ref.map(|r| r.name.clone()));
            }
            for from in container.env_from.iter().flatten() {
                names.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
            }
        }
    }
    names
}

/// The values of `names` in the cluster's namespace. A Secret that is missing or that the
/// deployer may not read is left out (its name is returned in the second list).
pub async fn read(
    cluster: &Cluster,
    names: &BTreeSet<String>,
) -> Result<(Vec<Known>, Vec<String>), String> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let mut known = Vec::new();
    let mut unread = Vec::new();
    for name in names {
        let secret = match api.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => continue,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                unread.push(name.clone());
                continue;
            }
            Err(e) => return Err(format!("reading Secret {}/{name}: {e}", cluster.namespace)),
        };
        for (key, bytes) in secret.data.into_iter().flatten() {
            let Ok(text) = String::from_utf8(bytes.0) else {
                continue;
            };
            known.extend(Known::new(name, &key, &text));
        }
    }
    Ok((known, unread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_and_certificates_are_not_compared_and_debug_hides_the_value() {
        assert!(Known::new("s", "k", "short").is_none());
        assert!(Known::new("nats-tls", "ca.crt", "-----BEGIN CERTIFICATE-----").is_none());
        let known = Known::new("nats-credentials", "bff.password", "0123456789abcdef\n").unwrap();
        assert!(known.is_in("pw=0123456789abcdef;"));
        assert_eq!(known.redact("pw=0123456789abcdef;"), "pw=[REDACTED];");
        assert_eq!(
            format!("{known:?}"),
            "Known(nats-credentials/bff.password, ***)"
        );
    }

    #[test]
    fn referenced_secrets_come_from_volumes_env_and_the_platform() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "grafana"},
            "spec": {
                "volumes": [{"name": "a", "secret": {"secretName": "mounted"}}],
                "containers": [{"name": "c", "env": [
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "grafana-admin", "key": "pw"}}}
                ], "envFrom": [{"secretRef": {"name": "from-env"}}]}]
            }
        }))
        .unwrap();
        let names = referenced(&[pod]);
        for name in ["mounted", "grafana-admin", "from-env", "nats-credentials"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
    }
}
