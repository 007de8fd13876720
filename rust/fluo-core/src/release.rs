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
    /// A progressive rollout's steps with their analysis evidence (empty for rolling updates,
    /// and then not serialized, so older records keep their digests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

/// Canonical JSON of the payload (serde_json with struct field order is deterministic).
fn canonical_json(release: &Release) -> Result<Vec<u8>> {
    serde_json::to_vec(release).map_err(|e| Error::Encode(e.to_string()))
}

/// Hex SHA-256 of the canonical payload.
pub fn digest(release: &Release) -> Result<String> {
    Ok(hex::encode(Sha256::digest(canonical_json(release)?)))
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
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| Error::Decode(e.to_string()))?;
    serde_json::from_slice(&json).map_err(|e| Error::Decode(e.to_string()))
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
    /// Set when `rollback-to-previous` left this revision in place because it was the first
    /// install (annotation `fluo.dev/left-in-place`): which rollback, when and why.
    pub left_in_place: Option<String>,
    pub release: Release,
}

/// Checks one component's records (any order): each payload matches its recorded digest and
/// its name/labels, each record points at the digest of the record before it, and no revision
/// is missing between the oldest kept and the newest. Returns one line per problem.
pub fn verify_chain(records: &[Stored]) -> Vec<String> {
    let mut sorted: Vec<&Stored> = records.iter().collect();
    sorted.sort_by_key(|r| r.release.revision);
    let mut problems = Vec::new();
    let mut previous: Option<&Stored> = None;
    for record in sorted {
        let r = &record.release;
        let expected_name = record_name(&r.component, r.revision);
        if record.name != expected_name || record.label_revision != Some(r.revision) {
            problems.push(format!(
                "{}: payload says {} revision {}, which does not match its name or revision label",
                record.name, r.component, r.revision
            ));
        }
        match digest(r) {
            Ok(actual) if actual == record.recorded_digest => {}
            Ok(_) => problems.push(format!(
                "{}: payload does not match its recorded digest (modified after it was written)",
                record.name
            )),
            Err(e) => problems.push(format!("{}: {e}", record.name)),
        }
        if let Some(prev) = previous {
            if prev.release.revision + 1 != r.revision {
                problems.push(format!(
                    "{}: revisions {}..{} are missing (deleted from the middle of the history)",
                    record.name,
                    prev.release.revision + 1,
                    r.revision - 1
                ));
            } else if r.prev_digest.as_deref() != Some(prev.recorded_digest.as_str()) {
                problems.push(format!(
                    "{}: previous-record digest does not match {} (the chain is broken)",
                    record.name, prev.name
                ));
            }
        }
        previous = Some(record);
    }
    problems
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
            steps: vec![],
        }
    }

    fn stored(release: Release) -> Stored {
        Stored {
            name: record_name(&release.component, release.revision),
            status: Status::Deployed,
            label_revision: Some(release.revision),
            recorded_digest: digest(&release).unwrap(),
            left_in_place: None,
            release,
        }
    }

    fn chain(n: u32) -> Vec<Stored> {
        let mut out: Vec<Stored> = Vec::new();
        for rev in 1..=n {
            let prev = out.last().map(|s| s.recorded_digest.clone());
            out.push(stored(release("bff", rev, prev)));
        }
        out
    }

    #[test]
    fn encode_decode_round_trip_is_gzip() {
        let r = release("bff", 1, None);
        let bytes = encode(&r).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(decode(&bytes).unwrap(), r);
        assert!(decode(b"not gzip").is_err());
    }

    #[test]
    fn intact_chain_verifies_in_any_order() {
        let mut records = chain(3);
        records.reverse();
        assert_eq!(verify_chain(&records), Vec::<String>::new());
    }

    #[test]
    fn a_chain_starting_after_retention_is_fine() {
        let records = chain(5).split_off(2);
        assert_eq!(verify_chain(&records), Vec::<String>::new());
    }

    #[test]
    fn modified_payload_is_detected() {
        let mut records = chain(3);
        records[1]
            .release
            .images
            .insert("fluo-bff".into(), "evil:1".into());
        let problems = verify_chain(&records);
        assert_eq!(
            problems,
            [
                "fluo.release.bff.v2: payload does not match its recorded digest (modified after it was written)"
            ]
        );
    }

    #[test]
    fn rewritten_record_with_fresh_digest_breaks_the_chain() {
        let mut records = chain(3);
        records[1].release.reason = Some("covering tracks".into());
        records[1].recorded_digest = digest(&records[1].release).unwrap();
        assert_eq!(
            verify_chain(&records),
            [
                "fluo.release.bff.v3: previous-record digest does not match fluo.release.bff.v2 (the chain is broken)"
            ]
        );
    }

    #[test]
    fn deleted_middle_record_and_renamed_record_are_detected() {
        let mut records = chain(4);
        records.remove(1);
        assert_eq!(
            verify_chain(&records),
            [
                "fluo.release.bff.v3: revisions 2..2 are missing (deleted from the middle of the history)"
            ]
        );
        let mut records = chain(2);
        records[1].label_revision = Some(7);
        assert_eq!(verify_chain(&records).len(), 1);
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
        ] {
            assert_eq!(Status::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(Status::parse("bogus"), None);
    }
}
