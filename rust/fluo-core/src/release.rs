//! Release records: what was applied for one component revision, by whom, why and with what
//! outcome. Pure: the payload, its encoding (gzip JSON), its digest and the hash-chain check.
//! `history` stores records as Secrets in fluo-system.
//!
//! The payload is written when a revision starts and once more when it ends; after that it is
//! immutable. The lifecycle status (deployed -> superseded, failed -> rolled-back) lives in a
//! label, outside the payload, so it can change without breaking the chain.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("release record payload is not gzip JSON: {0}")]
    Decode(String),
    #[error("encoding release record: {0}")]
    Encode(String),
}

/// Lifecycle status, kept in the record's `fluo.dev/status` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Deploying,
    Deployed,
    Failed,
    Superseded,
    RolledBack,
    /// Stopped before it finished (a signal, the loss of the deploy lock) and not restored.
    Interrupted,
    /// A record of an operation that is not a revision of the workload (delete, purge,
    /// shutdown): never current, never a rollback target.
    Recorded,
    /// A progressive rollout (canary, blue-green) stopped by its analysis or by `abort`: the
    /// new pods were removed, the stable revision was never touched.
    Aborted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Deploying => "deploying",
            Status::Deployed => "deployed",
            Status::Failed => "failed",
            Status::Superseded => "superseded",
            Status::RolledBack => "rolled-back",
            Status::Interrupted => "interrupted",
            Status::Recorded => "recorded",
            Status::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Deploying,
            Status::Deployed,
            Status::Failed,
            Status::Superseded,
            Status::RolledBack,
            Status::Interrupted,
            Status::Recorded,
            Status::Aborted,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a revision did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Action {
    Deploy,
    /// Re-applied the manifests of revision `to` (manual `rollback`, `rollback-to-previous` or
    /// the automatic rollback after a failed deploy).
    Rollback {
        to: u32,
        automatic: bool,
    },
    /// `delete`: the component's objects were removed (history kept).
    Delete,
    /// `delete --purge-history`: the component was removed and revisions up to `removed_through`
    /// deleted; `tip_digest` was the digest of the newest one.
    Purge {
        removed_through: u32,
        tip_digest: Option<String>,
    },
    /// `shutdown`: the component's workloads were scaled to zero.
    Shutdown,
    /// `restore`: the JetStream state (component nats) was put back from `backup` (its id).
    Restore {
        backup: String,
    },
    /// `rotate nats`: the NATS users were replaced by `users` (names only, never a password).
    Rotate {
        users: Vec<String>,
    },
}

impl Action {
    /// Whether the revision applied manifests (a deploy or rollback): only those can be current
    /// or the target of a rollback.
    pub fn applies_manifests(&self) -> bool {
        matches!(self, Action::Deploy | Action::Rollback { .. })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Deploy => f.write_str("deploy"),
            Action::Rollback {
                to,
                automatic: true,
            } => write!(f, "auto-rollback to v{to}"),
            Action::Rollback {
                to,
                automatic: false,
            } => write!(f, "rollback to v{to}"),
            Action::Delete => f.write_str("delete"),
            Action::Purge {
                removed_through, ..
            } => write!(f, "purge v1..v{removed_through}"),
            Action::Shutdown => f.write_str("shutdown"),
            Action::Restore { backup } => write!(f, "restore from backup {backup}"),
            Action::Rotate { users } => write!(f, "rotate NATS users to {}", users.join(", ")),
        }
    }
}

/// Final (or, while running, current) outcome, part of the immutable payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    InProgress,
    Succeeded,
    Failed,
}

/// The payload of one release record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub component: String,
    pub revision: u32,
    pub action: Action,
    pub environment: String,
    pub namespace: String,
    /// The objects as applied (rendered, before namespacing).
    pub manifests: Vec<Value>,
    /// Logical image name -> ref.
    pub images: BTreeMap<String, String>,
    pub commit: String,
    pub dirty: bool,
    pub started_at: DateTime<Utc>,
    pub user: String,
    pub reason: Option<String>,
    /// One id per `deploy`/`rollback-to-previous` invocation, shared by its components.
    pub deploy_id: String,
    pub outcome: Outcome,
    /// Why it failed (pod, reason, message), if it did.
    pub message: Option<String>,
    pub duration_ms: u64,
    pub change_ticket: Option<String>,
    pub approved_by: Option<String>,
    /// Holder of the lock this deploy removed with `--force-unlock`.
    pub forced_unlock: Option<String>,
    /// Gate steps skipped with `--skip STEP --reason R`, as "STEP: reason".
    pub skipped_checks: Vec<String>,
    /// Digest of this component's previous record (hash chain); None for the first.
    pub prev_digest: Option<String>,
    /// Rules this revision was let past, each with who/why (e.g. a commit taken from
    /// `FLUO_COMMIT`, a rollback to a record that failed verification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// Written by `deploy --emergency` (notice and windows waived). Signed with the rest; left
    /// out of the payload when false, so records written before the field keep their digest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emergency: bool,
    /// Written by `fluo-deploy drill` on its drill release (the deployed revision again, to
    /// be rolled back). Left out of the payload when false, like `emergency`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
    /// A progressive rollout's steps with their analysis evidence (empty for rolling updates,
    /// and then not serialized, so older records keep their digests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Images deployed by tag because their registry could not be reached to resolve the
    /// digest (`[images.resolve]`), each with why. Not serialized when empty, like `steps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved_digests: Vec<String>,
}

/// Canonical JSON of the payload (serde_json with struct field order is deterministic).
fn canonical_json(release: &Release) -> Result<Vec<u8>> {
    serde_json::to_vec(release).map_err(|e| Error::Encode(e.to_string()))
}

/// Hex SHA-256 of the canonical payload.
pub fn digest(release: &Release) -> Result<String> {
    Ok(digest_of_json(&canonical_json(release)?))
}

/// Hex SHA-256 of payload bytes as stored (what verification hashes, so that a record keeps
/// verifying when later versions add fields).
pub fn digest_of_json(json: &[u8]) -> String {
    hex::encode(Sha256::digest(json))
}

/// Gzip JSON, as stored in the Secret.
pub fn encode(release: &Release) -> Result<Vec<u8>> {
    let json = canonical_json(release)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)
        .and_then(|()| gz.finish())
        .map_err(|e| Error::Encode(e.to_string()))
}

pub fn decode(bytes: &[u8]) -> Result<Release> {
    decode_with_digest(bytes).map(|(release, _)| release)
}

/// The payload and the digest of its JSON bytes as stored.
pub fn decode_with_digest(bytes: &[u8]) -> Result<(Release, String)> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| Error::Decode(e.to_string()))?;
    let release = serde_json::from_slice(&json).map_err(|e| Error::Decode(e.to_string()))?;
    Ok((release, digest_of_json(&json)))
}

/// A record as read back from the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Secret name.
    pub name: String,
    pub status: Status,
    /// The `fluo.dev/revision` label.
    pub label_revision: Option<u32>,
    /// The digest written next to the payload (annotation `fluo.dev/digest`).
    pub recorded_digest: String,
    /// SHA-256 of the payload bytes as read back.
    pub payload_digest: String,
    /// The signature annotation (`ed25519:<key id>:<base64>`), if signed.
    pub signature: Option<String>,
    /// Set when `rollback-to-previous` left this revision in place because it was the first
    /// install (annotation `fluo.dev/left-in-place`): which rollback, when and why.
    pub left_in_place: Option<String>,
    pub release: Release,
}

/// `fluo.release.<component>.v<N>`.
pub fn record_name(component: &str, revision: u32) -> String {
    format!("fluo.release.{component}.v{revision}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn release(component: &str, revision: u32, prev: Option<String>) -> Release {
        Release {
            component: component.into(),
            revision,
            action: Action::Deploy,
            environment: "local".into(),
            namespace: "fluo".into(),
            manifests: vec![serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "x"}})],
            images: BTreeMap::from([("fluo-bff".into(), "fluo/fluo-bff:dev".into())]),
            commit: "abc123".into(),
            dirty: false,
            started_at: "2026-11-26T05:00:00Z".parse().unwrap(),
            user: "alice".into(),
            reason: Some("release 1.2".into()),
            deploy_id: "d-1".into(),
            outcome: Outcome::Succeeded,
            message: None,
            duration_ms: 1200,
            change_ticket: None,
            approved_by: None,
            forced_unlock: None,
            skipped_checks: vec![],
            prev_digest: prev,
            overrides: vec![],
            emergency: false,
            drill: false,
            steps: vec![],
            unresolved_digests: vec![],
        }
    }

    #[test]
    fn encode_decode_round_trip_is_gzip() {
        let r = release("bff", 1, None);
        let bytes = encode(&r).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(decode(&bytes).unwrap(), r);
        assert!(decode(b"not gzip").is_err());
        let (_, digest) = decode_with_digest(&bytes).unwrap();
        assert_eq!(
            digest,
            super::digest(&r).unwrap(),
            "stored bytes hash like the payload"
        );
    }

    #[test]
    fn records_without_overrides_keep_their_old_encoding() {
        let r = release("bff", 1, None);
        let json = String::from_utf8(canonical_json(&r).unwrap()).unwrap();
        assert!(!json.contains("overrides"), "{json}");
    }

    #[test]
    fn the_emergency_flag_is_signed_payload_and_absent_when_false() {
        let plain = release("bff", 1, None);
        let json = String::from_utf8(canonical_json(&plain).unwrap()).unwrap();
        assert!(!json.contains("emergency"), "{json}");
        let flagged = Release {
            emergency: true,
            drill: false,
            ..plain.clone()
        };
        assert_ne!(
            super::digest(&flagged).unwrap(),
            super::digest(&plain).unwrap()
        );
        assert_eq!(decode(&encode(&flagged).unwrap()).unwrap(), flagged);
    }

    #[test]
    fn status_round_trips() {
        for s in [
            "deploying",
            "deployed",
            "failed",
            "superseded",
            "rolled-back",
            "interrupted",
            "recorded",
        ] {
            assert_eq!(Status::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Status::parse("bogus"), None);
    }
}
