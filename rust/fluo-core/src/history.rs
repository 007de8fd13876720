//! Release records in the cluster: one Secret per component revision in fluo-system (type
//! `fluo.dev/release.v1`), labelled with component, revision and status; the gzip JSON payload
//! under `release`, its digest in the `fluo.dev/digest` annotation. Keeps the last
//! `RETENTION` revisions per component.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SYSTEM_NAMESPACE;
use crate::release::{self, Release, Status, Stored};
use crate::render::{COMPONENT_LABEL, MANAGED_BY_LABEL, PART_OF_LABEL};

pub const SECRET_TYPE: &str = "fluo.dev/release.v1";
pub const REVISION_LABEL: &str = "fluo.dev/revision";
pub const STATUS_LABEL: &str = "fluo.dev/status";
pub const DIGEST_ANNOTATION: &str = "fluo.dev/digest";
/// Set on the current record by `shutdown` (RFC 3339 time); cleared by the next revision.
pub const SHUTDOWN_ANNOTATION: &str = "fluo.dev/shutdown-at";
/// Set by `rollback-to-previous` on a first install it left in place (it had nothing earlier to
/// restore): the rollback's deploy id, time and reason. Outside the payload, like the status.
pub const LEFT_IN_PLACE_ANNOTATION: &str = "fluo.dev/left-in-place";
const PAYLOAD_KEY: &str = "release";
pub const RETENTION: usize = 20;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} release record {name}: {source}")]
    Kube {
        action: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("release record {name}: {source}")]
    Payload {
        name: String,
        source: release::Error,
    },
}

/// Access to the release records.
#[derive(Clone)]
pub struct History {
    api: Api<Secret>,
}

impl History {
    pub fn new(client: &Client) -> History {
        History {
            api: Api::namespaced(client.clone(), SYSTEM_NAMESPACE),
        }
    }

    /// All records of `component` (or of every component), oldest first per component.
    /// Records whose payload cannot be decoded are returned as errors by `verify` instead.
    pub async fn list(&self, component: Option<&str>) -> Result<Vec<Stored>> {
        let mut selector = format!("{MANAGED_BY_LABEL}=fluo,{REVISION_LABEL}");
        if let Some(c) = component {
            selector.push_str(&format!(",{COMPONENT_LABEL}={c}"));
        }
        let secrets = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| Error::Kube {
                action: "listing",
                name: "(all)".into(),
                source,
            })?;
        let mut records = Vec::new();
        for secret in secrets.items {
            if secret.type_.as_deref() != Some(SECRET_TYPE) {
                continue;
            }
            records.push(stored(&secret)?);
        }
        records.sort_by(|a, b| {
            (&a.release.component, a.release.revision)
                .cmp(&(&b.release.component, b.release.revision))
        });
        Ok(records)
    }

    /// Records grouped by component.
    pub async fn by_component(&self) -> Result<BTreeMap<String, Vec<Stored>>> {
        let mut map: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        for r in self.list(None).await? {
            map.entry(r.release.component.clone()).or_default().push(r);
        }
        Ok(map)
    }

    /// Writes a new record (fails if the revision already exists: two writers never share one).
    pub async fn create(&self, release: &Release, status: Status) -> Result<()> {
        let secret = to_secret(release, status)?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        self.api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|source| Error::Kube {
                action: "creating",
                name,
                source,
            })?;
        Ok(())
    }

    /// Rewrites a record's payload (at the end of its revision) and status.
    pub async fn finish(&self, release: &Release, status: Status) -> Result<()> {
        let secret = to_secret(release, status)?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {
                "labels": secret.metadata.labels,
                "annotations": secret.metadata.annotations,
            },
            "data": secret.data,
        });
        self.patch(&name, &patch).await
    }

    /// Changes only the status label (payload and chain untouched).
    pub async fn set_status(&self, component: &str, revision: u32, status: Status) -> Result<()> {
        let name = release::record_name(component, revision);
        self.patch(
            &name,
            &json!({"metadata": {"labels": {STATUS_LABEL: status.as_str()}}}),
        )
        .await
    }

    /// Marks (or with `None` unmarks) a record as shut down.
    pub async fn set_shutdown(
        &self,
        component: &str,
        revision: u32,
        at: Option<&str>,
    ) -> Result<()> {
        let name = release::record_name(component, revision);
        self.patch(
            &name,
            &json!({"metadata": {"annotations": {SHUTDOWN_ANNOTATION: at}}}),
        )
        .await
    }

    /// Notes on a record that a rollback left it in place (see `LEFT_IN_PLACE_ANNOTATION`).
    pub async fn set_left_in_place(
        &self,
        component: &str,
        revision: u32,
        note: &str,
    ) -> Result<()> {
        let name = release::record_name(component, revision);
        self.patch(
            &name,
            &json!({"metadata": {"annotations": {LEFT_IN_PLACE_ANNOTATION: note}}}),
        )
        .await
    }

    async fn patch(&self, name: &str, patch: &serde_json::Value) -> Result<()> {
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| Error::Kube {
                action: "updating",
                name: name.to_string(),
                source,
            })?;
        Ok(())
    }

    /// Keeps the newest `RETENTION` records of a component: `records` are the ones listed before
    /// `added` new revisions were written (no extra list call on the hot path).
    pub async fn enforce_retention(&self, records: &[Stored], added: usize) -> Result<()> {
        let excess = (records.len() + added).saturating_sub(RETENTION);
        let mut oldest: Vec<&Stored> = records.iter().collect();
        oldest.sort_by_key(|r| r.release.revision);
        for r in oldest.into_iter().take(excess) {
            self.delete(&r.name).await?;
        }
        Ok(())
    }

    /// Deletes every record of `component` (`delete --purge-history`).
    pub async fn purge(&self, component: &str) -> Result<()> {
        for r in self.list(Some(component)).await? {
            self.delete(&r.name).await?;
        }
        Ok(())
    }

    async fn delete(&self, name: &str) -> Result<()> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(Error::Kube {
                action: "deleting",
                name: name.to_string(),
                source,
            }),
        }
    }

    /// Annotation value set by `shutdown` on a record, if any.
    pub async fn shutdown_marker(&self, component: &str, revision: u32) -> Result<Option<String>> {
        let name = release::record_name(component, revision);
        let secret = self
            .api
            .get_opt(&name)
            .await
            .map_err(|source| Error::Kube {
                action: "reading",
                name: name.clone(),
                source,
            })?;
        Ok(secret.and_then(|s| {
            s.metadata
                .annotations
                .and_then(|a| a.get(SHUTDOWN_ANNOTATION).cloned())
        }))
    }
}

/// The newest record of a component.
pub fn latest(records: &[Stored]) -> Option<&Stored> {
    records.iter().max_by_key(|r| r.release.revision)
}

/// The newest record whose revision succeeded and is still in effect (status deployed).
pub fn current(records: &[Stored]) -> Option<&Stored> {
    records
        .iter()
        .filter(|r| r.status == Status::Deployed)
        .max_by_key(|r| r.release.revision)
}

/// The newest successful revision before `revision` (the target of a rollback).
pub fn previous_good(records: &[Stored], revision: u32) -> Option<&Stored> {
    records
        .iter()
        .filter(|r| {
            r.release.revision < revision && r.release.outcome == release::Outcome::Succeeded
        })
        .max_by_key(|r| r.release.revision)
}

fn to_secret(release: &Release, status: Status) -> Result<Secret> {
    let name = release::record_name(&release.component, release.revision);
    let payload_err = |source| Error::Payload {
        name: name.clone(),
        source,
    };
    let bytes = release::encode(release).map_err(payload_err)?;
    let digest = release::digest(release).map_err(payload_err)?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(SYSTEM_NAMESPACE.to_string()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_string(), "fluo".to_string()),
                (PART_OF_LABEL.to_string(), "fluo".to_string()),
                (COMPONENT_LABEL.to_string(), release.component.clone()),
                (REVISION_LABEL.to_string(), release.revision.to_string()),
                (STATUS_LABEL.to_string(), status.as_str().to_string()),
            ])),
            annotations: Some(BTreeMap::from([(DIGEST_ANNOTATION.to_string(), digest)])),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([(
            PAYLOAD_KEY.to_string(),
            ByteString(bytes),
        )])),
        ..Default::default()
    })
}

fn stored(secret: &Secret) -> Result<Stored> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(PAYLOAD_KEY))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let release = release::decode(&bytes).map_err(|source| Error::Payload {
        name: name.clone(),
        source,
    })?;
    Ok(Stored {
        status: labels
            .get(STATUS_LABEL)
            .and_then(|s| Status::parse(s))
            .unwrap_or(Status::Failed),
        label_revision: labels.get(REVISION_LABEL).and_then(|r| r.parse().ok()),
        recorded_digest: annotations
            .get(DIGEST_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        left_in_place: annotations.get(LEFT_IN_PLACE_ANNOTATION).cloned(),
        name,
        release,
    })
}
