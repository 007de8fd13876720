//! Load-time checks of the environment fields that guard trust: image rules, approvers and
//! signing keys. Each error names the key, the value and why it is refused.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Environment, ImagePolicy};
use crate::image_ref::{self, ImageRef};
use crate::state::signing;

/// `[signing]`: ed25519 public keys of the people (or CI) allowed to write release records.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// Whether records without a valid signature are accepted (history, rollback, writes
    /// without a key).
    #[serde(default = "super::yes")]
    pub accept_unsigned: bool,
    /// Key id -> public key (base64 of the 32 raw bytes, or a PEM `PUBLIC KEY`).
    #[serde(default)]
    pub keys: BTreeMap<String, String>,
}

impl Default for Signing {
    fn default() -> Self {
        Self {
            accept_unsigned: true,
            keys: BTreeMap::new(),
        }
    }
}

/// `[retention]`: per component, the last `successful` revisions that deployed and the last
/// `others` records of any other kind (failed, rolled back, delete/shutdown records). The
/// revision currently deployed and the target of the latest rollback are always kept.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(default = "ten")]
    pub successful: usize,
    #[serde(default = "ten")]
    pub others: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            successful: 10,
            others: 10,
        }
    }
}

fn ten() -> usize {
    10
}

impl ImagePolicy {
    /// Checks one image reference against these rules of environment `environment`.
    pub fn check(&self, reference: &str, environment: &str) -> image_ref::Result<ImageRef> {
        let parsed = ImageRef::parse(reference)?;
        let name = parsed.name();
        if !self.allowed_registries.is_empty()
            && !self.allowed_registries.iter().any(|p| under(&name, p))
        {
            return Err(image_ref::Error::RegistryNotAllowed {
                reference: reference.to_string(),
                environment: environment.to_string(),
                allowed: self.allowed_registries.join(", "),
            });
        }
        if self.require_digest && parsed.digest.is_none() {
            return Err(image_ref::Error::DigestRequired {
                reference: reference.to_string(),
                environment: environment.to_string(),
            });
        }
        Ok(parsed)
    }
}

/// `name` is the registry/repository prefix or below it (whole path components only).
fn under(name: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    name == prefix || name.starts_with(&format!("{prefix}/"))
}

/// `(key, value, reason)` of the first bad field.
pub(super) fn check_trust_fields(env: &Environment) -> Result<(), (String, String, String)> {
    let bad = |key: &str, value: &str, reason: &str| {
        Err((key.to_string(), value.to_string(), reason.to_string()))
    };
    for prefix in &env.images.allowed_registries {
        let parsed = ImageRef::parse(prefix.trim_end_matches('/'));
        if prefix.contains("://") || !parsed.is_ok_and(|r| r.tag.is_none() && r.digest.is_none()) {
            return bad(
                "images.allowed_registries",
                prefix,
                "must be a registry/repository prefix such as `registry.example/team` (no scheme, tag or digest)",
            );
        }
    }
    let registry = env.images.registry.trim_end_matches('/');
    if !registry.is_empty()
        && !env.images.allowed_registries.is_empty()
        && !env
            .images
            .allowed_registries
            .iter()
            .any(|p| under(registry, p))
    {
        return bad(
            "images.registry",
            registry,
            "is not under any of images.allowed_registries (every FLUO image would be refused)",
        );
    }
    for approver in &env.approvals.approvers {
        if approver.trim().is_empty() {
            return bad("approvals.approvers", approver, "must not be empty");
        }
    }
    for (id, key) in &env.signing.keys {
        if !signing::is_key_id(id) {
            return bad(
                &format!("signing.keys.{id}"),
                id,
                "a key id is 1-63 of [A-Za-z0-9._@-]",
            );
        }
        if let Err(e) = signing::parse_public_key(key) {
            return bad(&format!("signing.keys.{id}"), key, &e.to_string());
        }
    }
    if env.retention.successful == 0 {
        return bad(
            "retention.successful",
            "0",
            "must keep at least one successful revision (the rollback target)",
        );
    }
    if !env.signing.accept_unsigned && env.signing.keys.is_empty() {
        return bad(
            "signing.keys",
            "(none)",
            "at least one public key is needed when signing.accept_unsigned = false",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn policy(allowed: &[&str], require_digest: bool) -> ImagePolicy {
        ImagePolicy {
            allowed_registries: allowed.iter().map(|s| s.to_string()).collect(),
            require_digest,
            ..Default::default()
        }
    }

    #[test]
    fn allow_list_matches_whole_path_prefixes() {
        let p = policy(&["registry.fluo.example/fluo"], false);
        assert!(
            p.check("registry.fluo.example/fluo/fluo-bff:1", "production")
                .is_ok()
        );
        let err = p.check("evil/fluo-bff:latest", "production").unwrap_err();
        assert!(
            matches!(err, image_ref::Error::RegistryNotAllowed { .. }),
            "{err}"
        );
        assert!(
            p.check("registry.fluo.example/fluoevil/x:1", "production")
                .is_err()
        );
        assert!(policy(&[], false).check("anything/goes:1", "local").is_ok());
    }

    #[test]
    fn digest_can_be_required() {
        let p = policy(&[], true);
        let err = p.check("fluo/bff:1", "production").unwrap_err().to_string();
        assert!(err.contains("requires one"), "{err}");
        assert!(
            p.check(&format!("fluo/bff:1@{DIGEST}"), "production")
                .is_ok()
        );
    }
}
