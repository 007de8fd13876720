//! Where the smoke test and the security checks get the BFF API tokens they use, the way an
//! operator would: a token file (`--api-token-file` / `FLUO_API_TOKEN_FILE`), or else the Secret
//! `fluo-smoke-api-token` in the deploy's namespace, read with the deployer's credentials: key
//! `token` (jobs:submit, jobs:read) and key `read-token` (jobs:read only, for the wrong-scope
//! check; `--api-read-token-file`). The tokens themselves are never shown.

use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::access::Cluster;
use crate::endpoint::ApiToken;

pub const TOKEN_FILE_ENV: &str = "FLUO_API_TOKEN_FILE";
pub use fluo_secrets::bundle::SMOKE_TOKEN as SMOKE_TOKEN_SECRET;
pub use fluo_secrets::bundle::{READ_TOKEN_KEY, SMOKE_TOKEN_KEY};

/// The token from `file`, else from the cluster's Secret, else None (requests then go
/// without one, and a secured BFF answers 401, which the evidence explains).
pub async fn find(
    file: Option<&Path>,
    cluster: Option<&Cluster>,
) -> Result<Option<ApiToken>, String> {
    find_key(file, cluster, SMOKE_TOKEN_KEY).await
}

/// The jobs:read-only token: from `file`, else key `read-token` of the smoke token Secret.
pub async fn find_read_only(
    file: Option<&Path>,
    cluster: Option<&Cluster>,
) -> Result<Option<ApiToken>, String> {
    find_key(file, cluster, READ_TOKEN_KEY).await
}

async fn find_key(
    file: Option<&Path>,
    cluster: Option<&Cluster>,
    key: &str,
) -> Result<Option<ApiToken>, String> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("reading the API token file {}: {e}", file.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("the API token file {} is empty", file.display()));
        }
        return Ok(Some(ApiToken::new(token)));
    }
    let Some(cluster) = cluster else {
        return Ok(None);
    };
    let token = secret_key(cluster, SMOKE_TOKEN_SECRET, key).await?;
    Ok(token.map(|t| ApiToken::new(t.trim())))
}

/// Key `key` of Secret `secret` in the cluster's namespace, read with the deployer's
/// credentials; None when the Secret or the key is missing.
pub async fn secret_key(
    cluster: &Cluster,
    secret: &str,
    key: &str,
) -> Result<Option<String>, String> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let found = api
        .get_opt(secret)
        .await
        .map_err(|e| format!("reading Secret {}/{secret}: {e}", cluster.namespace))?;
    Ok(found
        .and_then(|s| s.data)
        .and_then(|mut data| data.remove(key))
        .and_then(|bytes| String::from_utf8(bytes.0).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_file_is_read_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("smoke.token");
        std::fs::write(&file, "fluo_abc\n").unwrap();
        assert_eq!(
            find(Some(&file), None).await.unwrap(),
            Some(ApiToken::new("fluo_abc"))
        );
        std::fs::write(&file, "\n").unwrap();
        let err = find(Some(&file), None).await.unwrap_err();
        assert!(err.ends_with("smoke.token is empty"), "{err}");
        assert_eq!(find(None, None).await.unwrap(), None);
        assert_eq!(format!("{:?}", ApiToken::new("fluo_abc")), "ApiToken(***)");
    }
}
