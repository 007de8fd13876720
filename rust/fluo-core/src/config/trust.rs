//! Load-time checks of the environment fields that guard trust: image rules, approvers and
//! signing keys. Each error names the key, the value and why it is refused.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Environment;
use crate::image_ref::ImageRef;
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
        && !env.images.allowed_registries.iter().any(|p| {
            let p = p.trim_end_matches('/');
            registry == p || registry.starts_with(&format!("{p}/"))
        })
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
