//! Read-only views: `status` (per component: revision, status, ready/desired, images, when,
//! commit), `history` (records, and `--verify` of the hash chain) and `diff` (server-side
//! dry-run against the live objects).

use std::collections::BTreeMap;

use kube::api::{Api, DynamicObject, ListParams};
use serde::Serialize;
use serde_json::Value;

use crate::apply;
use crate::history::{self, SHUTDOWN_ANNOTATION};
use crate::ops::rollout::kinds_of;
use crate::ops::{Ctx, Result};
use crate::release::{self, Action, Stored};
use crate::render::{self, ImageOverrides, component_selector};
use crate::report::table;

#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub component: String,
    pub revision: Option<u32>,
    pub status: String,
    pub ready: i64,
    pub desired: i64,
    /// Recorded: logical image name -> ref, as the shown record says.
    pub images: BTreeMap<String, String>,
    /// Live: the images the component's workloads run now (from the cluster), sorted.
    pub live_images: Vec<String>,
    /// The live images differ from the recorded ones (changed outside fluo, or a half-done
    /// change).
    pub drift: bool,
    pub deployed_at: Option<String>,
    pub commit: Option<String>,
    pub dirty: bool,
}

/// Status of `components` (all if empty).
pub async fn status(ctx: &Ctx, components: &[String]) -> Result<Vec<ComponentStatus>> {
    let names = selection(ctx, components)?;
    let all = ctx.history.by_component().await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.cluster.client.clone(), crate::SYSTEM_NAMESPACE);
    let mut out = Vec::new();
    for c in names {
        let records = all.get(&c).map(Vec::as_slice).unwrap_or(&[]);
        let shown = history::current(records).or_else(|| history::latest(records));
        let (ready, desired, live_images) = workloads(ctx, &c).await?;
        let recorded = shown.map(|r| r.release.images.clone()).unwrap_or_default();
        let mut status = shown.map_or("not deployed".to_string(), |r| r.status.to_string());
        if let Some(r) = shown
            && let Ok(Some(secret)) = secrets.get_opt(&r.name).await
            && secret
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(SHUTDOWN_ANNOTATION))
        {
            status = "shut down".into();
        }
        out.push(ComponentStatus {
            component: c.clone(),
            revision: shown.map(|r| r.release.revision),
            status,
            ready,
            desired,
            drift: drifted(&recorded, &live_images),
            images: recorded,
            live_images,
            deployed_at: shown.map(|r| {
                r.release
                    .started_at
                    .format("%Y-%m-%d %H:%M:%SZ")
                    .to_string()
            }),
            commit: shown.map(|r| r.release.commit.clone()),
            dirty: shown.is_some_and(|r| r.release.dirty),
        });
    }
    Ok(out)
}

pub fn status_text(rows: &[ComponentStatus]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.component.clone(),
                s.revision.map_or("-".into(), |r| format!("v{r}")),
                s.status.clone(),
                format!("{}/{}", s.ready, s.desired),
                s.images.values().cloned().collect::<Vec<_>>().join(","),
                live_cell(s),
                s.deployed_at.clone().unwrap_or_else(|| "-".into()),
                s.commit.as_ref().map_or("-".into(), |c| {
                    format!(
                        "{}{}",
                        &c[..c.len().min(12)],
                        if s.dirty { "-dirty" } else { "" }
                    )
                }),
            ]
        })
        .collect();
    table(
        &[
            "COMPONENT",
            "REVISION",
            "STATUS",
            "READY",
            "IMAGES",
            "LIVE",
            "DEPLOYED AT",
            "COMMIT",
        ],
        &rows,
    )
}

/// The LIVE cell: `=` when the live images are the recorded ones, else them and DRIFT.
fn live_cell(s: &ComponentStatus) -> String {
    match (s.drift, s.live_images.is_empty()) {
        (false, false) => "=".into(),
        (false, true) => "-".into(),
        (true, true) => "(none) DRIFT".into(),
        (true, false) => format!("{} DRIFT", s.live_images.join(",")),
    }
}

/// Whether the live images differ from the recorded ones (as sets of references). Nothing
/// recorded and nothing running is no drift.
fn drifted(recorded: &BTreeMap<String, String>, live: &[String]) -> bool {
    let recorded: std::collections::BTreeSet<&str> =
        recorded.values().map(String::as_str).collect();
    let live: std::collections::BTreeSet<&str> = live.iter().map(String::as_str).collect();
    recorded != live
}

/// Ready and desired replicas over the component's Deployments and StatefulSets, and the
/// images their pod templates run (sorted, distinct).
async fn workloads(ctx: &Ctx, component: &str) -> Result<(i64, i64, Vec<String>)> {
    let lp = ListParams::default().labels(&component_selector(component));
    let mut ready = 0;
    let mut desired = 0;
    let mut images = std::collections::BTreeSet::new();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let sets: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let kube_err = |source| crate::apply::Error::List {
        kind: "workloads".into(),
        component: component.to_string(),
        source,
    };
    let mut templates = Vec::new();
    for d in deployments.list(&lp).await.map_err(kube_err)? {
        desired += i64::from(d.spec.replicas.unwrap_or(1));
        ready += i64::from(d.status.and_then(|s| s.ready_replicas).unwrap_or(0));
        templates.extend(d.spec.template.spec);
    }
    for s in sets.list(&lp).await.map_err(kube_err)? {
        desired += i64::from(s.spec.replicas.unwrap_or(1));
        ready += i64::from(s.status.and_then(|s| s.ready_replicas).unwrap_or(0));
        templates.extend(s.spec.template.spec);
    }
    for pod in templates {
        images.extend(pod.containers.into_iter().filter_map(|c| c.image));
    }
    Ok((ready, desired, images.into_iter().collect()))
}

fn selection(ctx: &Ctx, components: &[String]) -> Result<Vec<String>> {
    Ok(if components.is_empty() {
        ctx.config.graph.sequential_order()
    } else {
        ctx.config.graph.select(components)?
    })
}

/// One history line.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub component: String,
    pub revision: u32,
    pub status: String,
    pub action: Action,
    pub outcome: release::Outcome,
    pub started_at: String,
    pub duration_ms: u64,
    pub user: String,
    pub commit: String,
    pub dirty: bool,
    pub images: BTreeMap<String, String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub deploy_id: String,
    pub change_ticket: Option<String>,
    pub approved_by: Option<String>,
    pub forced_unlock: Option<String>,
    /// Written by `deploy --emergency`.
    pub emergency: bool,
    /// The drill release of `fluo-deploy drill`.
    pub drill: bool,
    /// A `rollback-to-previous` left this first install in place (no previous release).
    pub left_in_place: Option<String>,
    /// A progressive rollout's steps with their analysis evidence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

pub async fn history(ctx: &Ctx, component: Option<&str>) -> Result<Vec<HistoryEntry>> {
    if let Some(c) = component {
        ctx.config.graph.select(&[c])?;
    }
    Ok(ctx
        .history
        .list(component)
        .await?
        .into_iter()
        .map(|s: Stored| HistoryEntry {
            left_in_place: s.left_in_place,
            component: s.release.component,
            revision: s.release.revision,
            status: s.status.to_string(),
            action: s.release.action,
            outcome: s.release.outcome,
            started_at: s
                .release
                .started_at
                .format("%Y-%m-%d %H:%M:%SZ")
                .to_string(),
            duration_ms: s.release.duration_ms,
            user: s.release.user,
            commit: s.release.commit,
            dirty: s.release.dirty,
            images: s.release.images,
            reason: s.release.reason,
            message: s.release.message,
            deploy_id: s.release.deploy_id,
            change_ticket: s.release.change_ticket,
            approved_by: s.release.approved_by,
            forced_unlock: s.release.forced_unlock,
            emergency: s.release.emergency,
            drill: s.release.drill,
            steps: s.release.steps,
        })
        .collect())
}

pub fn history_text(entries: &[HistoryEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let action = e.action.to_string();
            let outcome = match e.outcome {
                release::Outcome::InProgress => "in-progress",
                release::Outcome::Succeeded => "succeeded",
                release::Outcome::Failed => "failed",
            };
            vec![
                e.component.clone(),
                format!("v{}", e.revision),
                e.status.clone(),
                action,
                outcome.to_string(),
                e.started_at.clone(),
                format!("{:.1}s", e.duration_ms as f64 / 1000.0),
                e.user.clone(),
                format!(
                    "{}{}",
                    &e.commit[..e.commit.len().min(12)],
                    if e.dirty { "-dirty" } else { "" }
                ),
                {
                    let text = e
                        .message
                        .clone()
                        .or_else(|| e.reason.clone())
                        .unwrap_or_default();
                    let text = match (e.emergency, e.drill) {
                        (true, _) => format!("EMERGENCY: {text}"),
                        (false, true) => format!("DRILL: {text}"),
                        (false, false) => text,
                    };
                    match &e.left_in_place {
                        Some(note) => format!("{text} [{note}]"),
                        None => text,
                    }
                },
            ]
        })
        .collect();
    table(
        &[
            "COMPONENT",
            "REVISION",
            "STATUS",
            "ACTION",
            "OUTCOME",
            "STARTED",
            "DURATION",
            "USER",
            "COMMIT",
            "REASON/MESSAGE",
        ],
        &rows,
    ) + &steps_text(entries)
}

/// The steps of progressive rollouts, under the table (one block per revision that has them).
fn steps_text(entries: &[HistoryEntry]) -> String {
    entries
        .iter()
        .filter(|e| !e.steps.is_empty())
        .map(|e| {
            let lines: String = e.steps.iter().map(|s| format!("  {s}\n")).collect();
            format!("\n{} v{} steps:\n{lines}", e.component, e.revision)
        })
        .collect()
}

/// Verification of the records of `component` (or all): digests, signatures, chain, anchor.
pub async fn verify(
    ctx: &Ctx,
    component: Option<&str>,
) -> Result<Vec<crate::state::verify::Verdict>> {
    Ok(ctx.history.verify(component).await?)
}

/// One object's difference between what a deploy would store and what is live.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectDiff {
    pub component: String,
    pub object: String,
    /// "create", "change", "unchanged" or "prune".
    pub change: String,
    /// JSON pointer paths that would change.
    pub paths: Vec<String>,
}

/// Server-side dry-run of the rendered objects compared with the live ones.
pub async fn diff(ctx: &Ctx, components: &[String], images: &[String]) -> Result<Vec<ObjectDiff>> {
    let names = selection(ctx, components)?;
    let overrides = ImageOverrides::parse(images)?;
    let selected: Vec<_> = names
        .iter()
        .filter_map(|c| ctx.config.component(c))
        .collect();
    overrides.check_against(&selected)?;
    let mut components = BTreeMap::new();
    for component in &selected {
        let rendered = render::render(component, &ctx.config.environment, &overrides)?;
        components.insert(component.name().to_string(), rendered);
    }
    // The references a deploy would apply (digest-pinned where the environment resolves tags).
    crate::ops::pin::pin_images(&ctx.config, &mut components, &ctx.reporter).await?;
    let mut out = Vec::new();
    for component in selected {
        let c = component.name();
        let rendered = &components[c];
        let mut keep = Vec::new();
        for object in rendered.objects() {
            let (reference, dry) =
                apply::apply_one(&ctx.cluster, object, &ctx.namespace, true).await?;
            let (api, _) = ctx.cluster.api_for(object, &ctx.namespace).await?;
            let live: Option<DynamicObject> =
                api.get_opt(&reference.name)
                    .await
                    .map_err(|source| apply::Error::Apply {
                        object: reference.to_string(),
                        source,
                    })?;
            let (change, paths) = match live {
                None => ("create", vec![]),
                Some(live) => {
                    let paths = changed_paths(&comparable(&live), &comparable(&dry));
                    (
                        if paths.is_empty() {
                            "unchanged"
                        } else {
                            "change"
                        },
                        paths,
                    )
                }
            };
            out.push(ObjectDiff {
                component: c.to_string(),
                object: reference.to_string(),
                change: change.into(),
                paths,
            });
            keep.push(reference);
        }
        let records = ctx.history.list(Some(c)).await?;
        let prior = history::current(&records)
            .map(|r| r.release.manifests.clone())
            .unwrap_or_default();
        let kinds = kinds_of(rendered.objects().chain(prior.iter()));
        for stale in apply::undeclared(&ctx.cluster, c, &ctx.namespace, &kinds, &keep).await? {
            out.push(ObjectDiff {
                component: c.to_string(),
                object: stale.to_string(),
                change: "prune".into(),
                paths: vec![],
            });
        }
    }
    Ok(out)
}

pub fn diff_text(diffs: &[ObjectDiff]) -> String {
    let mut out = String::new();
    for d in diffs {
        let mark = match d.change.as_str() {
            "create" => "+",
            "prune" => "-",
            "change" => "~",
            _ => "=",
        };
        out.push_str(&format!(
            "{mark} {}: {} ({})\n",
            d.component, d.object, d.change
        ));
        for p in &d.paths {
            out.push_str(&format!("    {p}\n"));
        }
    }
    out
}

/// The parts of an object a deploy controls: no status, no server-managed metadata.
fn comparable(object: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = v["metadata"].as_object_mut() {
        for key in [
            "managedFields",
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "annotations",
        ] {
            meta.remove(key);
        }
    }
    v
}

/// Paths that differ (JSON pointers; Secret values are never shown, only their paths).
fn changed_paths(live: &Value, desired: &Value) -> Vec<String> {
    json_patch::diff(live, desired)
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(o) => format!("+ {}", o.path),
            json_patch::PatchOperation::Remove(o) => format!("- {}", o.path),
            json_patch::PatchOperation::Replace(o) => format!("~ {}", o.path),
            json_patch::PatchOperation::Move(o) => format!("~ {}", o.path),
            json_patch::PatchOperation::Copy(o) => format!("~ {}", o.path),
            json_patch::PatchOperation::Test(o) => format!("? {}", o.path),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_a_difference_between_recorded_and_live_image_sets() {
        let recorded = BTreeMap::from([("fluo-bff".to_string(), "fluo/fluo-bff:2".to_string())]);
        assert!(!drifted(&recorded, &["fluo/fluo-bff:2".to_string()]));
        assert!(drifted(&recorded, &["evil/fluo-bff:latest".to_string()]));
        assert!(drifted(&recorded, &[]), "recorded but nothing runs");
        assert!(!drifted(&BTreeMap::new(), &[]));
    }

    #[test]
    fn changed_paths_lists_pointers_without_values() {
        let live = serde_json::json!({"data": {"password": "old"}, "spec": {"replicas": 1}});
        let desired = serde_json::json!({"data": {"password": "new"}, "spec": {"replicas": 2}});
        let paths = changed_paths(&live, &desired);
        assert_eq!(paths, ["~ /data/password", "~ /spec/replicas"]);
        assert!(!paths.join("").contains("new"));
    }
}
