//! Load-time checks of the environment fields that guard trust: image rules (also checked per
//! image at render time), approvers and signing keys (their id and public-key forms, which
//! `state::signing` uses too). Each error names the key, the value and why it is refused.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use serde::Deserialize;

use super::{Environment, ImagePolicy};
use crate::image_ref::{self, ImageRef};

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

/// `[images.resolve]`: whether tags are resolved to digests through the registry's
/// distribution API before a deploy, and how (the registry module).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    #[serde(default)]
    pub enabled: bool,
    /// Registries (`host[:port]`) spoken to over plain http; every other one over https.
    /// Loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) are plain http too, as
    /// docker treats them.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Budget of one registry's resolution (token and manifest requests).
    #[serde(default = "ten_seconds", deserialize_with = "super::parse::duration")]
    pub timeout: std::time::Duration,
}

impl Default for Resolve {
    fn default() -> Self {
        Self {
            enabled: false,
            insecure_registries: vec![],
            timeout: ten_seconds(),
        }
    }
}

fn ten_seconds() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

impl ImagePolicy {
    /// Checks one image reference against these rules of environment `environment`. Where
    /// tags are resolved (`[images.resolve]`), the digest rule waits for resolution: the ops
    /// pin step checks every final reference with [`ImagePolicy::check_pinned`].
    pub fn check(&self, reference: &str, environment: &str) -> image_ref::Result<ImageRef> {
        self.check_with(reference, environment, !self.resolve.enabled)
    }

    /// [`ImagePolicy::check`] with the digest rule applied in any case (after resolution).
    pub fn check_pinned(&self, reference: &str, environment: &str) -> image_ref::Result<ImageRef> {
        self.check_with(reference, environment, true)
    }

    fn check_with(
        &self,
        reference: &str,
        environment: &str,
        digest_rule: bool,
    ) -> image_ref::Result<ImageRef> {
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
        if digest_rule && self.require_digest && parsed.digest.is_none() {
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

/// A `[signing].keys` value that is not an ed25519 public key.
#[derive(Debug, thiserror::Error)]
#[error("not an ed25519 public key ({0}); expected base64 of 32 bytes or a PEM `PUBLIC KEY`")]
pub struct PublicKeyError(String);

/// A key id as used in `[signing].keys`.
pub fn is_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

/// A public key from the environment file.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, PublicKeyError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text).map_err(|e| PublicKeyError(e.to_string()));
    }
    let bytes = BASE64
        .decode(text)
        .map_err(|e| PublicKeyError(format!("base64: {e}")))?;
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| PublicKeyError(format!("{} bytes, not 32", b.len())))?;
    VerifyingKey::from_bytes(&raw).map_err(|e| PublicKeyError(e.to_string()))
}

/// Base64 of a public key's 32 raw bytes (the form `[signing].keys` takes).
pub fn public_key_text(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
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
    for host in &env.images.resolve.insecure_registries {
        let is_host = ImageRef::parse(&format!("{host}/x")).is_ok_and(|r| r.domain.is_some());
        if !is_host || host.contains('/') {
            return bad(
                "images.resolve.insecure_registries",
                host,
                "must be a registry host[:port] such as `registry.internal:5000` (no scheme or path)",
            );
        }
    }
    if env.images.resolve.timeout.is_zero() {
        return bad("images.resolve.timeout", "0s", "must be longer than 0s");
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
        if !is_key_id(id) {
            return bad(
                &format!("signing.keys.{id}"),
                id,
                "a key id is 1-63 of [A-Za-z0-9._@-]",
            );
        }
        if let Err(e) = parse_public_key(key) {
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
