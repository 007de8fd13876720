//! Release records in the cluster: one Secret per component revision in fluo-system (type
//! `fluo.dev/release.v1`), labelled with component, revision and status; the gzip JSON payload
//! under `release`, its digest in the `fluo.dev/digest` annotation and, where the deployer holds
//! a key, its signature in `fluo.dev/signature`. Every write also moves the component's anchor
//! (`state::anchor`) on the fluo-system namespace. Retention follows the environment's
//! `[retention]` (`state::retention`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::SYSTEM_NAMESPACE;
use crate::config::{Environment, Retention};
use crate::release::{self, Release, Status, Stored};
use crate::render::{COMPONENT_LABEL, MANAGED_BY_LABEL, PART_OF_LABEL};
use crate::state::anchor::{self, Anchor, Pruned};
use crate::state::signing::{Signer, Trust};
use crate::state::verify::{self, RECORD_DOMAIN, Verdict};

pub const SECRET_TYPE: &str = "fluo.dev/release.v1";
pub const REVISION_LABEL: &str = "fluo.dev/revision";
pub const STATUS_LABEL: &str = "fluo.dev/status";
pub const DIGEST_ANNOTATION: &str = "fluo.dev/digest";
pub const SIGNATURE_ANNOTATION: &str = "fluo.dev/signature";
/// Set on the current record by `shutdown` (RFC 3339 time); cleared by the next revision.
pub const SHUTDOWN_ANNOTATION: &str = "fluo.dev/shutdown-at";
/// Set by `rollback-to-previous` on a first install it left in place (it had nothing earlier to
/// restore): the rollback's deploy id, time and reason. Outside the payload, like the status.
pub const LEFT_IN_PLACE_ANNOTATION: &str = "fluo.dev/left-in-place";
const PAYLOAD_KEY: &str = "release";

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
    #[error("{action} the anchor on namespace {SYSTEM_NAMESPACE}: {source}")]
    Anchor {
        action: &'static str,
        source: kube::Error,
    },
    #[error(
        "listing release records in {SYSTEM_NAMESPACE}: the API server still had more after {pages} pages"
    )]
    Unpaged { pages: usize },
    /// A record a rollback would use failed verification (exit 1, nothing changed).
    #[error(
        "refused (nothing changed): the release records of {component} failed verification:\n  {}\nTo use them anyway, pass --accept-unverified REASON (recorded in the new record)",
        problems.join("\n  ")
    )]
    Unverified {
        component: String,
        problems: Vec<String>,
    },
}

/// Access to the release records.
#[derive(Clone)]
pub struct History {
    api: Api<Secret>,
    namespaces: Api<Namespace>,
    trust: Trust,
    signer: Option<Arc<Signer>>,
    retention: Retention,
    /// `--accept-unverified REASON`: use records that fail verification (recorded).
    accept_unverified: Option<String>,
    /// Serialises this process's read-modify-write of anchors (a component's writes run
    /// concurrently: finish, supersede, retention) and keeps the namespace's annotations as
    /// last read or written, so an update is one patch, not a read and a patch.
    anchor_view: Arc<tokio::sync::Mutex<Option<AnchorView>>>,
    /// Anchors written by this process, for the end-of-run lines.
    written: Arc<Mutex<BTreeMap<String, Anchor>>>,
}

/// The fluo-system namespace's annotations at one resourceVersion (None: no namespace yet).
struct AnchorView {
    annotations: BTreeMap<String, String>,
    resource_version: Option<String>,
}

impl AnchorView {
    fn of(ns: Option<Namespace>) -> AnchorView {
        let metadata = ns.map(|n| n.metadata).unwrap_or_default();
        AnchorView {
            annotations: metadata.annotations.unwrap_or_default(),
            resource_version: metadata.resource_version,
        }
    }
}

/// Records per list request.
const LIST_PAGE: u32 = 100;
/// A server that keeps answering with a continue token is not followed past this.
const MAX_LIST_PAGES: usize = 10_000;

/// How often an anchor update reads again after another writer changed the namespace.
const ANCHOR_ATTEMPTS: usize = 5;

/// Records grouped by component (order kept).
fn group(records: Vec<Stored>) -> BTreeMap<String, Vec<Stored>> {
    let mut map: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for r in records {
        map.entry(r.release.component.clone()).or_default().push(r);
    }
    map
}

impl History {
    /// Records of an environment that accepts unsigned records, written unsigned.
    pub fn new(client: &Client) -> History {
        History {
            api: Api::namespaced(client.clone(), SYSTEM_NAMESPACE),
            namespaces: Api::all(client.clone()),
            trust: Trust::with_keys([], true),
            signer: None,
            retention: Retention::default(),
            accept_unverified: None,
            anchor_view: Arc::default(),
            written: Arc::default(),
        }
    }

    /// Records as `env` wants them: its trusted keys, its retention, signed by `signer`.
    pub fn for_environment(client: &Client, env: &Environment, signer: Option<Signer>) -> History {
        History {
            trust: Trust::of(env),
            signer: signer.map(Arc::new),
            retention: env.retention,
            ..History::new(client)
        }
    }

    /// Without an environment file: no trusted keys (signatures reported unchecked).
    pub fn with_trust(mut self, trust: Trust) -> History {
        self.trust = trust;
        self
    }

    /// Lets rollbacks use records that fail verification; `reason` is recorded.
    pub fn accepting_unverified(mut self, reason: Option<String>) -> History {
        self.accept_unverified = reason.filter(|r| !r.trim().is_empty());
        self
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The id of the key records are signed with.
    pub fn signer_id(&self) -> Option<&str> {
        self.signer.as_deref().map(Signer::key_id)
    }

    /// Overrides to record on every record this run writes (besides the identity's).
    pub fn recorded_overrides(&self) -> Vec<String> {
        self.accept_unverified
            .iter()
            .map(|reason| format!("records that failed verification were used: {reason}"))
            .collect()
    }

    /// `anchor <component> v<N> sha256:<digest>` for every anchor this process wrote.
    pub fn anchor_lines(&self) -> Vec<String> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.iter().map(|(c, a)| a.line(c)).collect()
    }

    /// All records of `component` (or of every component), oldest first per component.
    /// Records whose payload cannot be decoded are returned as errors by `verify` instead.
    pub async fn list(&self, component: Option<&str>) -> Result<Vec<Stored>> {
        self.list_records(component, true).await
    }

    /// [`History::by_component`] without the records' manifests, each dropped as soon as its
    /// record is decoded: for what needs only versions and outcomes (every record's manifests
    /// at once were a copy of every deployed object, 11 MB at 200 components).
    pub async fn versions_by_component(&self) -> Result<BTreeMap<String, Vec<Stored>>> {
        Ok(group(self.list_records(None, false).await?))
    }

    /// Reads the records a page at a time, so a cluster holding many revisions never has its
    /// whole raw list in memory next to the decoded records.
    async fn list_records(&self, component: Option<&str>, manifests: bool) -> Result<Vec<Stored>> {
        let mut selector = format!("{MANAGED_BY_LABEL}=fluo,{REVISION_LABEL}");
        if let Some(c) = component {
            selector.push_str(&format!(",{COMPONENT_LABEL}={c}"));
        }
        let failed = |source| Error::Kube {
            action: "listing",
            name: "(all)".into(),
            source,
        };
        let mut params = ListParams::default().labels(&selector).limit(LIST_PAGE);
        let mut records = Vec::new();
        for _ in 0..MAX_LIST_PAGES {
            let page = self.api.list(&params).await.map_err(failed)?;
            for secret in page.items {
                if secret.type_.as_deref() != Some(SECRET_TYPE) {
                    continue;
                }
                let mut record = stored(&secret)?;
                if !manifests {
                    record.release.manifests = Vec::new();
                }
                records.push(record);
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => {
                    records.sort_by(|a, b| {
                        (&a.release.component, a.release.revision)
                            .cmp(&(&b.release.component, b.release.revision))
                    });
                    return Ok(records);
                }
            }
        }
        Err(Error::Unpaged {
            pages: MAX_LIST_PAGES,
        })
    }

    /// Records grouped by component.
    pub async fn by_component(&self) -> Result<BTreeMap<String, Vec<Stored>>> {
        Ok(group(self.list(None).await?))
    }

    /// Writes a new record (fails if the revision already exists: two writers never share one).
    pub async fn create(&self, release: &Release, status: Status) -> Result<()> {
        let secret = self.to_secret(release, status)?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        self.api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(|source| Error::Kube {
                action: "creating",
                name,
                source,
            })?;
        self.anchor_tip(release).await
    }

    /// Rewrites a record's payload (at the end of its revision) and status.
    pub async fn finish(&self, release: &Release, status: Status) -> Result<()> {
        let secret = self.to_secret(release, status)?;
        let name = secret.metadata.name.clone().unwrap_or_default();
        let patch = json!({
            "metadata": {
                "labels": secret.metadata.labels,
                "annotations": secret.metadata.annotations,
            },
            "data": secret.data,
        });
        self.patch(&name, &patch).await?;
        self.anchor_tip(release).await
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

    /// Applies the environment's retention to a component: `records` are the ones listed before
    /// the revision(s) this run added (no extra list call on the hot path; the new ones are the
    /// newest and kept anyway). Removed records are noted in the anchor first, so the chain
    /// still verifies across them.
    pub async fn enforce_retention(&self, records: &[Stored], _added: usize) -> Result<()> {
        let prune = crate::state::retention::to_prune(records, &self.retention);
        let Some(component) = prune.first().map(|r| r.release.component.clone()) else {
            return Ok(());
        };
        let oldest_kept = records
            .iter()
            .map(|r| r.release.revision)
            .filter(|rev| !prune.iter().any(|p| p.release.revision == *rev))
            .min()
            .unwrap_or(u32::MAX);
        self.update_anchor(&component, |anchor| {
            if let Some(anchor) = anchor {
                anchor.pruned.extend(prune.iter().map(|r| Pruned {
                    revision: r.release.revision,
                    digest: r.recorded_digest.clone(),
                    prev_digest: r.release.prev_digest.clone(),
                }));
                anchor.forget_below(oldest_kept);
            }
        })
        .await?;
        for r in prune {
            self.delete(&r.name).await?;
        }
        Ok(())
    }

    /// Deletes every record of `component` (`delete --purge-history`); the caller writes the
    /// purge record next, which becomes the anchored start of a new chain.
    pub async fn purge(&self, component: &str) -> Result<()> {
        for r in self.list(Some(component)).await? {
            self.delete(&r.name).await?;
        }
        Ok(())
    }

    /// The annotations of the system namespace, where the anchors live (none before the first).
    async fn anchor_annotations(&self) -> Result<BTreeMap<String, String>> {
        Ok(self.read_anchor_view().await?.annotations)
    }

    async fn read_anchor_view(&self) -> Result<AnchorView> {
        let ns = self
            .namespaces
            .get_opt(SYSTEM_NAMESPACE)
            .await
            .map_err(|source| Error::Anchor {
                action: "reading",
                source,
            })?;
        Ok(AnchorView::of(ns))
    }

    /// Every component's anchor, plus one problem line per anchor that cannot be read.
    pub async fn anchors(&self) -> Result<(BTreeMap<String, Anchor>, Vec<(String, String)>)> {
        let annotations = self.anchor_annotations().await?;
        let mut anchors = BTreeMap::new();
        let mut unreadable = Vec::new();
        for (key, value) in annotations {
            let Some(component) = key.strip_prefix(anchor::ANNOTATION_PREFIX) else {
                continue;
            };
            match Anchor::parse(&value) {
                Ok(a) => {
                    anchors.insert(component.to_string(), a);
                }
                Err(e) => unreadable.push((component.to_string(), format!("{component}: {e}"))),
            }
        }
        Ok((anchors, unreadable))
    }

    /// Verifies the records of `component` (or all) against their anchors and signatures.
    pub async fn verify(&self, component: Option<&str>) -> Result<Vec<Verdict>> {
        let records = self.by_component().await?;
        let (anchors, unreadable) = self.anchors().await?;
        let mut verdicts = verify::verify_all(&records, &anchors, &self.trust);
        for (c, problem) in unreadable {
            match verdicts.iter_mut().find(|v| v.component == c) {
                Some(v) => v.problems.push(problem),
                None => verdicts.push(Verdict {
                    component: c,
                    problems: vec![problem],
                    ..Default::default()
                }),
            }
        }
        verdicts.retain(|v| component.is_none_or(|want| want == v.component));
        Ok(verdicts)
    }

    /// Before a rollback uses `records` of `component`: they must verify, unless
    /// `--accept-unverified` was given (then the problems are reported and recorded).
    pub async fn check_usable(&self, component: &str, records: &[Stored]) -> Result<Vec<String>> {
        let (anchors, unreadable) = self.anchors().await?;
        let mut verdict =
            verify::verify_component(component, records, anchors.get(component), &self.trust);
        verdict.problems.extend(
            unreadable
                .into_iter()
                .filter(|(c, _)| c == component)
                .map(|(_, p)| p),
        );
        if verdict.ok() || self.accept_unverified.is_some() {
            return Ok(verdict.problems);
        }
        Err(Error::Unverified {
            component: component.to_string(),
            problems: verdict.problems,
        })
    }

    /// Moves `release`'s component anchor to it (after every write of a record; idempotent, so a
    /// retry after a lost answer may repeat it).
    pub async fn anchor_tip(&self, release: &Release) -> Result<()> {
        let digest = release::digest(release).map_err(|source| Error::Payload {
            name: release::record_name(&release.component, release.revision),
            source,
        })?;
        let purge = matches!(release.action, release::Action::Purge { .. });
        self.update_anchor(&release.component, |anchor| {
            let mut next = match anchor.take() {
                Some(a) if !purge => a,
                _ => Anchor::new(release.revision, &digest),
            };
            next.revision = release.revision;
            next.digest = digest.clone();
            *anchor = Some(next);
        })
        .await
    }

    /// Changes `component`'s anchor and signs it. The patch carries the resourceVersion the
    /// namespace was seen at, so a write by anyone else in between is never overwritten: the
    /// update then reads the namespace again and redoes the change (bounded).
    async fn update_anchor(
        &self,
        component: &str,
        change: impl Fn(&mut Option<Anchor>),
    ) -> Result<()> {
        let mut view = self.anchor_view.lock().await;
        let key = anchor::annotation_key(component);
        let mut attempt = 1;
        loop {
            let seen = match view.take() {
                Some(v) => v,
                None => self.read_anchor_view().await?,
            };
            let mut current = seen
                .annotations
                .get(&key)
                .and_then(|text| Anchor::parse(text).ok());
            change(&mut current);
            let Some(mut next) = current else {
                *view = Some(seen);
                return Ok(());
            };
            next.sign(component, self.signer.as_deref());
            let mut metadata = json!({"annotations": {&key: next.to_text()}});
            if let Some(rv) = &seen.resource_version {
                metadata["resourceVersion"] = json!(rv);
            }
            let patched = self
                .namespaces
                .patch(
                    SYSTEM_NAMESPACE,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "metadata": metadata })),
                )
                .await;
            match patched {
                Ok(ns) => {
                    *view = Some(AnchorView::of(Some(ns)));
                    self.written
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(component.to_string(), next);
                    return Ok(());
                }
                Err(kube::Error::Api(e)) if e.code == 409 && attempt < ANCHOR_ATTEMPTS => {
                    attempt += 1;
                }
                Err(source) => {
                    return Err(Error::Anchor {
                        action: "updating",
                        source,
                    });
                }
            }
        }
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
            r.release.revision < revision
                && r.release.outcome == release::Outcome::Succeeded
                && r.release.action.applies_manifests()
        })
        .max_by_key(|r| r.release.revision)
}

impl History {
    fn to_secret(&self, release: &Release, status: Status) -> Result<Secret> {
        let mut secret = to_secret(release, status)?;
        if let (Some(signer), Some(annotations)) =
            (self.signer.as_deref(), secret.metadata.annotations.as_mut())
        {
            let digest = annotations[DIGEST_ANNOTATION].clone();
            annotations.insert(
                SIGNATURE_ANNOTATION.to_string(),
                signer.sign(RECORD_DOMAIN, &digest),
            );
        }
        Ok(secret)
    }
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
    let (release, payload_digest) =
        release::decode_with_digest(&bytes).map_err(|source| Error::Payload {
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
        payload_digest,
        signature: annotations.get(SIGNATURE_ANNOTATION).cloned(),
        left_in_place: annotations.get(LEFT_IN_PLACE_ANNOTATION).cloned(),
        name,
        release,
    })
}
