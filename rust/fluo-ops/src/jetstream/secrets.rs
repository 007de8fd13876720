//! `[backup] credentials_from_secrets`: the backup user's name and password from the Secret
//! `nats-credentials` and the CA from `nats-tls`, read with the deployer's credentials (its
//! Role may `get` exactly these external Secrets). Values stay in memory; errors name the
//! Secret and key only.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

pub const CREDENTIALS: &str = "nats-credentials";
pub const TLS: &str = "nats-tls";

/// What the backup connects with.
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub ca_pem: String,
}

async fn key(api: &Api<Secret>, namespace: &str, name: &str, key: &str) -> Result<String, String> {
    let secret = api
        .get(name)
        .await
        .map_err(|e| format!("Secret {namespace}/{name}: {e}"))?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| {
            format!(
                "Secret {namespace}/{name} has no key {key} (make the backup user with fluo-secrets nats-users or nats-rotate and update the Secret: docs/security.md)"
            )
        })?;
    let text = String::from_utf8(value.0.clone())
        .map_err(|_| format!("Secret {namespace}/{name} key {key} is not UTF-8"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// The backup user and the CA of the NATS in `namespace`.
pub async fn read(client: &kube::Client, namespace: &str) -> Result<Credentials, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(Credentials {
        user: key(&api, namespace, CREDENTIALS, "backup.user").await?,
        password: key(&api, namespace, CREDENTIALS, "backup.password").await?,
        ca_pem: key(&api, namespace, TLS, "ca.crt").await?,
    })
}
