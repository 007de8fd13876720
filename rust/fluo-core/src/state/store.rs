//! JSON records in ConfigMaps of fluo-system: `fluo.<kind>.<id>`, labelled
//! `fluo.dev/record=<kind>`, the document under `record.json`. Updates carry the
//! resourceVersion they read, so two commands never both win the same change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::SYSTEM_NAMESPACE;
use crate::render::{MANAGED_BY_LABEL, PART_OF_LABEL};

pub const RECORD_LABEL: &str = "fluo.dev/record";
const DOCUMENT_KEY: &str = "record.json";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {name} in {SYSTEM_NAMESPACE}: {source}")]
    Kube {
        action: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("{name} in {SYSTEM_NAMESPACE}: `{DOCUMENT_KEY}` is not a valid record: {message}")]
    Document { name: String, message: String },
    #[error("no {kind} `{id}` in {SYSTEM_NAMESPACE}")]
    NotFound { kind: &'static str, id: String },
}

/// A record with the resourceVersion it was read at.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub resource_version: Option<String>,
}

/// The records of one kind.
#[derive(Clone)]
pub struct Store {
    api: Api<ConfigMap>,
    kind: &'static str,
}

impl Store {
    pub fn new(client: &Client, kind: &'static str) -> Store {
        Store {
            api: Api::namespaced(client.clone(), SYSTEM_NAMESPACE),
            kind,
        }
    }

    pub fn name(&self, id: &str) -> String {
        // Object names are lowercase (deploy ids carry `T`/`Z`).
        format!("fluo.{}.{}", self.kind, id.to_lowercase())
    }

    fn object<T: Serialize>(
        &self,
        id: &str,
        value: &T,
        version: Option<String>,
    ) -> Result<ConfigMap> {
        let name = self.name(id);
        let json = serde_json::to_string_pretty(value).map_err(|e| Error::Document {
            name: name.clone(),
            message: e.to_string(),
        })?;
        let labels = BTreeMap::from([
            (MANAGED_BY_LABEL.to_string(), "fluo".to_string()),
            (PART_OF_LABEL.to_string(), "fluo".to_string()),
            (RECORD_LABEL.to_string(), self.kind.to_string()),
        ]);
        Ok(ConfigMap {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(SYSTEM_NAMESPACE.to_string()),
                labels: Some(labels),
                resource_version: version,
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(DOCUMENT_KEY.to_string(), json)])),
            ..ConfigMap::default()
        })
    }

    pub async fn create<T: Serialize>(&self, id: &str, value: &T) -> Result<()> {
        let object = self.object(id, value, None)?;
        self.api
            .create(&PostParams::default(), &object)
            .await
            .map_err(|source| Error::Kube {
                action: "creating",
                name: self.name(id),
                source,
            })?;
        Ok(())
    }

    /// Replaces record `id` if it is still at `current`'s resourceVersion; Ok(false) when
    /// someone changed it in between (read it again).
    pub async fn replace<T: Serialize>(
        &self,
        id: &str,
        value: &T,
        current: &Versioned<T>,
    ) -> Result<bool> {
        let object = self.object(id, value, current.resource_version.clone())?;
        match self
            .api
            .replace(&self.name(id), &PostParams::default(), &object)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(source) => Err(Error::Kube {
                action: "updating",
                name: self.name(id),
                source,
            }),
        }
    }

    /// Every record of this kind, oldest first (by creation time, then name).
    pub async fn list<T: DeserializeOwned>(&self) -> Result<Vec<Versioned<T>>> {
        self.objects().await?.iter().map(decode).collect()
    }

    /// The ConfigMaps of this kind, oldest first (by creation time, then name).
    async fn objects(&self) -> Result<Vec<ConfigMap>> {
        let params = ListParams::default().labels(&format!("{RECORD_LABEL}={}", self.kind));
        let mut items = self
            .api
            .list(&params)
            .await
            .map_err(|source| Error::Kube {
                action: "listing",
                name: format!("{} records", self.kind),
                source,
            })?
            .items;
        items.sort_by(|a, b| {
            (
                &a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &a.metadata.name,
            )
                .cmp(&(
                    &b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    &b.metadata.name,
                ))
        });
        Ok(items)
    }

    pub async fn get<T: DeserializeOwned>(&self, id: &str) -> Result<Versioned<T>> {
        match self.api.get_opt(&self.name(id)).await {
            Ok(Some(object)) => decode(&object),
            Ok(None) => Err(Error::NotFound {
                kind: self.kind,
                id: id.to_string(),
            }),
            Err(source) => Err(Error::Kube {
                action: "reading",
                name: self.name(id),
                source,
            }),
        }
    }

    /// Deletes the oldest records beyond the newest `keep`.
    pub async fn retain(&self, keep: usize) -> Result<()> {
        let items = self.objects().await?;
        let excess = items.len().saturating_sub(keep);
        for object in items.iter().take(excess) {
            let name = object.metadata.name.clone().unwrap_or_default();
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        action: "deleting",
                        name,
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(object: &ConfigMap) -> Result<Versioned<T>> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let text = object
        .data
        .as_ref()
        .and_then(|d| d.get(DOCUMENT_KEY))
        .ok_or_else(|| Error::Document {
            name: name.clone(),
            message: "missing".into(),
        })?;
    let value = serde_json::from_str(text).map_err(|e| Error::Document {
        name,
        message: e.to_string(),
    })?;
    Ok(Versioned {
        value,
        resource_version: object.metadata.resource_version.clone(),
    })
}

/// A short, sortable, DNS-safe id: `20261204-170301-1a2b3c`.
pub fn new_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}-{}",
        now.format("%Y%m%d-%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}
