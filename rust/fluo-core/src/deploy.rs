//! The deploy pipeline: check everything first (components, images, rendering, policy, gate),
//! then under the deploy lock roll out components along the dependency graph (concurrently or in
//! SOP order). Per component: record (deploying) -> apply -> prune -> wait -> record outcome.
//! A failure rolls the component back to its last deployed revision (a failed first install is
//! removed) and its dependents are skipped. Rollbacks use the same machinery with an earlier
//! revision's manifests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::apply::{self, ObjectRef};
use crate::cluster::{self, Cluster};
use crate::config::{Component, Config, Order};
use crate::exit::Exit;
use crate::history::{self, History};
use crate::identity::Identity;
use crate::lock::{self, DeployLock};
use crate::policy::{self, Approval};
use crate::readiness::Readiness;
use crate::release::{Action, Outcome, Release, Status};
use crate::render::{self, ImageOverrides, Rendered};
use crate::report::{Level, Reporter};
use crate::{SYSTEM_NAMESPACE, plan, wait};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Plan(#[from] plan::Error),
    #[error(transparent)]
    Render(#[from] render::Error),
    #[error(transparent)]
    Policy(#[from] policy::Error),
    /// The gate refused: its exit code (1 checks failed, 2 usage, 5 policy) and findings.
    #[error("pre-deployment gate failed (nothing changed):\n{1}")]
    Gate(Exit, String),
    #[error(transparent)]
    Lock(#[from] lock::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    History(#[from] history::Error),
    /// Usage error found before changing anything (exit 2).
    #[error("{0}")]
    Refused(String),
    /// An operation on the cluster failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// `rollback-to-previous` found only first installs: nothing earlier to restore (exit 2,
    /// nothing changed).
    #[error("{0}")]
    NothingToRollBack(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Plan(_) | Error::Render(_) | Error::Refused(_) | Error::NothingToRollBack(_) => {
                Exit::Usage
            }
            Error::Failed(_) => Exit::Failed,
            Error::Gate(exit, _) => *exit,
            Error::Cluster(
                cluster::Error::UnknownContext { .. } | cluster::Error::Kubeconfig { .. },
            ) => Exit::Usage,
            Error::Policy(_) => Exit::Policy,
            Error::Lock(lock::Error::Held { .. }) => Exit::Locked,
            _ => Exit::Failed,
        }
    }
}

/// Checks run around a deploy that live in other crates (fluo-validate, fluo-health/fluo-smoke).
pub trait Hooks: Send + Sync {
    /// The pre-deployment gate over the selected components; Err carries the findings.
    /// Err carries the exit code to use (1 checks failed, 2 usage, 5 policy) and the findings.
    fn gate<'a>(
        &'a self,
        config: &'a Config,
        components: &'a [String],
    ) -> BoxFuture<'a, std::result::Result<(), (Exit, String)>>;
    /// Post-deploy checks of the deployed components (None: no checks available); Err carries
    /// what failed.
    fn post_checks<'a>(
        &'a self,
        config: &'a Config,
        namespace: &'a str,
        components: &'a [String],
    ) -> Option<BoxFuture<'a, std::result::Result<(), String>>>;
}

/// Everything a cluster command needs.
pub struct Ctx {
    pub config: Config,
    pub cluster: Cluster,
    pub history: History,
    pub reporter: Reporter,
    pub identity: Identity,
    /// The app namespace (environment's, or -n).
    pub namespace: String,
    /// Overrides every component's rollout timeout.
    pub timeout: Option<Duration>,
    pub lock_ttl: Duration,
    pub kubeconfig: Option<PathBuf>,
}

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Selected components (unchecked names); empty with `all`.
    pub components: Vec<String>,
    pub all: bool,
    pub sequential: bool,
    pub images: Vec<String>,
    pub reason: Option<String>,
    pub approval: Approval,
    /// `STEP: reason` for gate steps skipped.
    pub skipped_checks: Vec<String>,
    pub post_checks: bool,
    pub force_unlock: bool,
}

/// Everything checked before the cluster is touched.
pub struct Prepared {
    pub components: Vec<String>,
    pub rendered: BTreeMap<String, Rendered>,
    pub cluster_objects: Rendered,
    pub order: Order,
}

/// Pure checks: selection, image flags, rendering, policy. Errors mean nothing was changed.
pub fn prepare(config: &Config, request: &Request) -> Result<Prepared> {
    let components = if request.all {
        config.graph.sequential_order()
    } else if request.components.is_empty() {
        return Err(Error::Refused(
            "name at least one component or pass --all".into(),
        ));
    } else {
        config.graph.select(&request.components)?
    };
    let images = ImageOverrides::parse(&request.images)?;
    let selected: Vec<&Component> = components
        .iter()
        .filter_map(|c| config.component(c))
        .collect();
    images.check_against(&selected)?;
    let mut rendered = BTreeMap::new();
    for c in &selected {
        rendered.insert(
            c.name().to_string(),
            render::render(c, &config.environment, &images)?,
        );
    }
    policy::check(&config.environment, &request.approval, chrono::Utc::now())?;
    let order = if request.sequential {
        Order::Sequential
    } else {
        config.environment.strategy.order
    };
    Ok(Prepared {
        components,
        rendered,
        cluster_objects: render::render_cluster(&config.cluster_manifests)?,
        order,
    })
}

/// One component's result.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum ComponentResult {
    Deployed {
        revision: u32,
        duration_ms: u64,
        /// For a rollback: the earlier revision whose manifests this revision re-applied.
        #[serde(skip_serializing_if = "Option::is_none")]
        restores: Option<u32>,
    },
    /// Failed and was rolled back to `restored` (None: a first install that was removed).
    RolledBack {
        failed_revision: u32,
        message: String,
        restored: Option<u32>,
    },
    RollbackFailed {
        failed_revision: u32,
        message: String,
        rollback_error: String,
    },
    Skipped {
        because: String,
    },
    /// `rollback-to-previous`: deploy `installed_by` installed the component for the first
    /// time, so there is no earlier release to restore; it stays at `revision` (None: it is not
    /// installed, its first install failed and was removed).
    NoPrevious {
        revision: Option<u32>,
        installed_by: String,
    },
}

impl ComponentResult {
    fn succeeded(&self) -> bool {
        matches!(self, ComponentResult::Deployed { .. })
    }

    fn exit(&self) -> Exit {
        match self {
            ComponentResult::Deployed { .. } | ComponentResult::NoPrevious { .. } => Exit::Ok,
            ComponentResult::RolledBack { .. } | ComponentResult::Skipped { .. } => Exit::Failed,
            ComponentResult::RollbackFailed { .. } => Exit::RollbackFailed,
        }
    }
}

/// The outcome of a deploy or rollback run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub deploy_id: String,
    pub components: BTreeMap<String, ComponentResult>,
    pub post_checks: Option<std::result::Result<(), String>>,
    pub duration_ms: u64,
}

impl RunReport {
    pub fn exit(&self) -> Exit {
        let worst = self
            .components
            .values()
            .map(ComponentResult::exit)
            .max()
            .unwrap_or(Exit::Ok);
        if worst == Exit::Ok && matches!(self.post_checks, Some(Err(_))) {
            return Exit::Failed;
        }
        worst
    }

    /// Text summary plus, after a failed rollback, the manual escalation steps.
    pub fn text(&self, ctx: &Ctx) -> String {
        let mut rows = Vec::new();
        for (c, r) in &self.components {
            let (result, detail) = match r {
                ComponentResult::Deployed {
                    revision,
                    duration_ms,
                    restores,
                } => (
                    match restores {
                        Some(to) => format!("rolled back to v{to} (as v{revision})"),
                        None => format!("deployed v{revision}"),
                    },
                    format!("{:.1}s", *duration_ms as f64 / 1000.0),
                ),
                ComponentResult::RolledBack {
                    failed_revision,
                    message,
                    restored,
                } => (
                    format!(
                        "failed v{failed_revision}, {}",
                        restored.map_or("first install removed".to_string(), |r| format!(
                            "rolled back to v{r}"
                        ))
                    ),
                    message.clone(),
                ),
                ComponentResult::RollbackFailed {
                    failed_revision,
                    message,
                    rollback_error,
                } => (
                    format!("failed v{failed_revision}, ROLLBACK FAILED"),
                    format!("{message}; rollback: {rollback_error}"),
                ),
                ComponentResult::Skipped { because } => ("skipped".into(), because.clone()),
                ComponentResult::NoPrevious {
                    revision,
                    installed_by,
                } => match revision {
                    Some(n) => (
                        format!("no previous release — left at v{n}"),
                        format!(
                            "first installed by deploy {installed_by}; to remove it: fluo-deploy delete {c}"
                        ),
                    ),
                    None => (
                        "no previous release — not installed".into(),
                        format!(
                            "its first install by deploy {installed_by} failed and was removed"
                        ),
                    ),
                },
            };
            rows.push(vec![c.clone(), result, detail]);
        }
        let mut out = crate::report::table(&["COMPONENT", "RESULT", "DETAIL"], &rows);
        if let Some(Err(e)) = &self.post_checks {
            out.push_str(&format!("post-deploy checks failed: {e}\n"));
        }
        for (c, r) in &self.components {
            if matches!(r, ComponentResult::RollbackFailed { .. }) {
                out.push_str(&escalation_steps(ctx, c));
            }
        }
        out
    }
}

/// SOP-002 escalation: what a human does when the automatic rollback failed.
pub fn escalation_steps(ctx: &Ctx, component: &str) -> String {
    let ns = &ctx.namespace;
    let env = &ctx.config.environment.environment.name;
    format!(
        "\nESCALATE: automatic rollback of {component} failed. Manual steps:\n\
         1. Inspect: kubectl -n {ns} get all -l fluo.dev/component={component}; kubectl -n {ns} describe pods -l fluo.dev/component={component}\n\
         2. Logs: fluo-deploy --env {env} logs {component} --since 15m\n\
         3. History: fluo-deploy --env {env} history {component}   (find the last revision with outcome succeeded)\n\
         4. Retry the rollback: fluo-deploy --env {env} rollback {component} --to <N> --reason \"manual after failed auto-rollback\"\n\
         5. If the lock is stuck: fluo-deploy --env {env} deploy {component} --force-unlock ... (recorded)\n\
         6. Notify the on-call lead and open an incident (SOP-002 failure handling).\n"
    )
}

/// Makes sure fluo-system and the app namespace exist (the app namespace enforces the
/// restricted Pod Security Standard).
pub async fn ensure_namespaces(ctx: &Ctx) -> Result<()> {
    let labels = render::labels(render::CLUSTER_COMPONENT);
    for (name, restricted) in [(SYSTEM_NAMESPACE, false), (ctx.namespace.as_str(), true)] {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        if restricted {
            ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = json!("restricted");
        }
        apply::apply_one(&ctx.cluster, &ns, &ctx.namespace, false).await?;
    }
    Ok(())
}

/// Takes the deploy lock, reporting a forced removal.
pub async fn take_lock(ctx: &Ctx, deploy_id: &str, force: bool) -> Result<DeployLock> {
    let holder = format!("{}@{} ({deploy_id})", ctx.identity.user, hostname());
    let lock = DeployLock::acquire(&ctx.cluster.client, &holder, ctx.lock_ttl, force).await?;
    if let Some(previous) = &lock.replaced {
        let how = if force {
            "removed with --force-unlock"
        } else {
            "expired, taken over"
        };
        ctx.reporter.progress(
            "",
            Level::Warn,
            &format!("deploy lock of `{previous}` {how}"),
        );
    }
    Ok(lock)
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown-host".into())
}

pub fn new_deploy_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Common facts of every record written by one run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub deploy_id: String,
    pub reason: Option<String>,
    pub approval: Approval,
    pub skipped_checks: Vec<String>,
    pub forced_unlock: Option<String>,
}

/// A full deploy: prepare (no changes), gate, lock, cluster objects, components, post checks.
pub async fn deploy(ctx: &Ctx, request: &Request, hooks: &dyn Hooks) -> Result<RunReport> {
    let prepared = prepare(&ctx.config, request)?;
    hooks
        .gate(&ctx.config, &prepared.components)
        .await
        .map_err(|(exit, findings)| Error::Gate(exit, findings))?;
    ensure_namespaces(ctx).await?;
    let deploy_id = new_deploy_id();
    let lock = take_lock(ctx, &deploy_id, request.force_unlock).await?;
    let info = RunInfo {
        deploy_id: deploy_id.clone(),
        reason: request.reason.clone(),
        approval: request.approval.clone(),
        skipped_checks: request.skipped_checks.clone(),
        forced_unlock: if request.force_unlock {
            lock.replaced.clone()
        } else {
            None
        },
    };
    let result = deploy_locked(ctx, &prepared, &info, request, hooks).await;
    lock.release().await;
    let mut report = result?;
    if let Some(Err(failure)) = report.post_checks.clone() {
        roll_back_after_failed_checks(ctx, &mut report, &failure).await;
    }
    Ok(report)
}

/// What each component row of a deploy whose post-deploy checks failed says; the cause itself
/// is in `RunReport::post_checks` and printed once, under the table.
pub const POST_CHECKS_FAILED: &str = "post-deploy checks failed";

/// Failed post-deploy checks count as a failed rollout: every component of this deploy goes
/// back to its revision before the deploy (a new, recorded rollback revision) and the checked
/// revision is marked rolled back. A component with no earlier revision cannot go back: that
/// is a failed rollback (exit 3, escalate).
async fn roll_back_after_failed_checks(ctx: &Ctx, report: &mut RunReport, failure: &str) {
    // The full cause is in the records' reason (audit) and printed once on each stream.
    let reason = format!(
        "automatic rollback of deploy {}: {POST_CHECKS_FAILED}: {failure}",
        report.deploy_id
    );
    ctx.reporter.progress(
        "",
        Level::Warn,
        &format!(
            "{POST_CHECKS_FAILED}: rolling back deploy {}",
            report.deploy_id
        ),
    );
    let rollback = crate::rollback::rollback_to_previous(ctx, &reason, false).await;
    for (component, result) in report.components.iter_mut() {
        let ComponentResult::Deployed { revision, .. } = *result else {
            continue;
        };
        let restored = match &rollback {
            Ok(rb) => match rb.components.get(component) {
                Some(ComponentResult::Deployed {
                    restores: Some(to), ..
                }) => Ok(*to),
                Some(ComponentResult::RolledBack { message, .. })
                | Some(ComponentResult::RollbackFailed { message, .. }) => Err(message.clone()),
                Some(ComponentResult::Skipped { because }) => Err(because.clone()),
                Some(ComponentResult::Deployed { restores: None, .. })
                | Some(ComponentResult::NoPrevious { .. })
                | None => Err("no revision before this deploy to go back to".to_string()),
            },
            Err(Error::NothingToRollBack(_)) => {
                Err("no revision before this deploy to go back to".to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        *result = match restored {
            Ok(restored) => {
                if let Err(e) = ctx
                    .history
                    .set_status(component, revision, Status::RolledBack)
                    .await
                {
                    ctx.reporter.progress(
                        component,
                        Level::Warn,
                        &format!("marking v{revision} rolled back: {e}"),
                    );
                }
                ComponentResult::RolledBack {
                    failed_revision: revision,
                    message: POST_CHECKS_FAILED.to_string(),
                    restored: Some(restored),
                }
            }
            Err(rollback_error) => ComponentResult::RollbackFailed {
                failed_revision: revision,
                message: POST_CHECKS_FAILED.to_string(),
                rollback_error,
            },
        };
    }
}

async fn deploy_locked(
    ctx: &Ctx,
    prepared: &Prepared,
    info: &RunInfo,
    request: &Request,
    hooks: &dyn Hooks,
) -> Result<RunReport> {
    let started = Instant::now();
    if !prepared.cluster_objects.objects.is_empty() {
        ctx.reporter
            .progress("cluster", Level::Info, "applying cluster-wide objects");
        apply::apply_all(
            &ctx.cluster,
            &prepared.cluster_objects.objects,
            &ctx.namespace,
            |o| {
                ctx.reporter
                    .progress("cluster", Level::Info, &format!("applied {o}"));
            },
        )
        .await?;
    }
    let planned: Vec<Planned> = prepared
        .components
        .iter()
        .map(|c| {
            let r = &prepared.rendered[c];
            Planned {
                component: c.clone(),
                action: Action::Deploy,
                manifests: r.objects.clone(),
                images: r.images.clone(),
            }
        })
        .collect();
    let components = run_graph(ctx, planned, prepared.order, info).await;
    let deployed: Vec<String> = components
        .iter()
        .filter(|(_, r)| r.succeeded())
        .map(|(c, _)| c.clone())
        .collect();
    let checks = (request.post_checks
        && ctx.config.environment.strategy.post_deploy_checks
        && deployed.len() == components.len())
    .then(|| hooks.post_checks(&ctx.config, &ctx.namespace, &deployed))
    .flatten();
    let post_checks = match checks {
        Some(checks) => {
            ctx.reporter
                .progress("", Level::Info, "running post-deploy checks");
            let result = checks.await;
            match &result {
                Ok(()) => ctx
                    .reporter
                    .progress("", Level::Ok, "post-deploy checks passed"),
                Err(e) => ctx.reporter.progress(
                    "",
                    Level::Error,
                    &format!("post-deploy checks failed: {e}"),
                ),
            }
            Some(result)
        }
        None => None,
    };
    Ok(RunReport {
        deploy_id: info.deploy_id.clone(),
        components,
        post_checks,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// One component revision to roll out.
#[derive(Debug, Clone)]
pub struct Planned {
    pub component: String,
    pub action: Action,
    pub manifests: Vec<Value>,
    pub images: BTreeMap<String, String>,
}

/// Rolls out `planned` along the dependency graph: a component starts when its selected
/// dependencies succeeded (all at once when parallel, one at a time in SOP order when
/// sequential); dependents of a failed component are skipped.
pub async fn run_graph(
    ctx: &Ctx,
    planned: Vec<Planned>,
    order: Order,
    info: &RunInfo,
) -> BTreeMap<String, ComponentResult> {
    let selected: BTreeSet<String> = planned.iter().map(|p| p.component.clone()).collect();
    let sop = ctx.config.graph.sequential_order();
    let mut pending: Vec<Planned> = sop
        .iter()
        .filter_map(|c| planned.iter().find(|p| &p.component == c).cloned())
        .collect();
    let mut results: BTreeMap<String, ComponentResult> = BTreeMap::new();
    let mut running = FuturesUnordered::new();
    loop {
        let mut still_pending = Vec::new();
        for p in pending {
            let deps: Vec<&String> = ctx
                .config
                .graph
                .dependencies(&p.component)
                .iter()
                .filter(|d| selected.contains(*d))
                .collect();
            if let Some(failed) = deps
                .iter()
                .find(|d| results.get(**d).is_some_and(|r| !r.succeeded()))
            {
                let because = format!("dependency {failed} did not deploy");
                ctx.reporter
                    .progress(&p.component, Level::Warn, &format!("skipped: {because}"));
                results.insert(p.component.clone(), ComponentResult::Skipped { because });
                continue;
            }
            let deps_done = deps.iter().all(|d| results.contains_key(*d));
            let slot_free = order == Order::Parallel || running.is_empty();
            if deps_done && slot_free {
                let component = p.component.clone();
                running.push(async move {
                    let result = roll_out(ctx, &p, info).await;
                    (component, result)
                });
            } else {
                still_pending.push(p);
            }
        }
        pending = still_pending;
        let Some((component, result)) = running.next().await else {
            break;
        };
        results.insert(component, result);
    }
    results
}

fn timeout_of(ctx: &Ctx, component: &str) -> Duration {
    ctx.timeout.unwrap_or_else(|| {
        ctx.config
            .component(component)
            .map_or(Duration::from_secs(300), |c| c.spec.rollout.timeout)
    })
}

/// One component: record, apply, prune, wait, record; on failure roll back automatically.
pub async fn roll_out(ctx: &Ctx, planned: &Planned, info: &RunInfo) -> ComponentResult {
    let c = planned.component.as_str();
    let started = Instant::now();
    let records = match prepare_records(ctx, c).await {
        Ok(r) => r,
        Err(e) => return failed_before_start(ctx, c, &e.to_string()),
    };
    let previous = history::current(&records).cloned();
    let revision = history::latest(&records).map_or(1, |r| r.release.revision + 1);
    let mut manifests = planned.manifests.clone();
    if let Some(prev) = &previous
        && let Err(e) = restore_replicas_after_shutdown(ctx, prev, &mut manifests).await
    {
        return failed_before_start(ctx, c, &e.to_string());
    }
    let mut release = Release {
        component: c.to_string(),
        revision,
        action: planned.action.clone(),
        environment: ctx.config.environment.environment.name.clone(),
        namespace: ctx.namespace.clone(),
        manifests,
        images: planned.images.clone(),
        commit: ctx.identity.commit.clone(),
        dirty: ctx.identity.dirty,
        started_at: chrono::Utc::now(),
        user: ctx.identity.user.clone(),
        reason: info.reason.clone(),
        deploy_id: info.deploy_id.clone(),
        outcome: Outcome::InProgress,
        message: None,
        duration_ms: 0,
        change_ticket: info.approval.change_ticket.clone(),
        approved_by: info.approval.approved_by.clone(),
        forced_unlock: info.forced_unlock.clone(),
        skipped_checks: info.skipped_checks.clone(),
        prev_digest: history::latest(&records).map(|r| r.recorded_digest.clone()),
    };
    let verb = match &planned.action {
        Action::Deploy => "deploying".to_string(),
        Action::Rollback { to, .. } => format!("rolling back to v{to} as"),
    };
    ctx.reporter
        .progress(c, Level::Info, &format!("{verb} revision {revision}"));
    if let Err(e) = ctx.history.create(&release, Status::Deploying).await {
        return failed_before_start(ctx, c, &e.to_string());
    }
    let prior_manifests = previous
        .as_ref()
        .map(|p| p.release.manifests.as_slice())
        .unwrap_or(&[]);
    let outcome = converge(ctx, c, &release.manifests, prior_manifests).await;
    release.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => {
            release.outcome = Outcome::Succeeded;
            // Independent writes, issued together: dependents wait for them.
            let finished = async {
                let supersede = async {
                    match &previous {
                        Some(prev) => {
                            ctx.history
                                .set_status(c, prev.release.revision, Status::Superseded)
                                .await
                        }
                        None => Ok(()),
                    }
                };
                futures::try_join!(
                    ctx.history.finish(&release, Status::Deployed),
                    supersede,
                    ctx.history.enforce_retention(&records, 1)
                )
            };
            if let Err(e) = finished.await {
                ctx.reporter.progress(
                    c,
                    Level::Error,
                    &format!("recording the release failed: {e}"),
                );
            }
            ctx.reporter.progress(
                c,
                Level::Ok,
                &format!(
                    "revision {revision} ready in {:.1}s",
                    started.elapsed().as_secs_f64()
                ),
            );
            ComponentResult::Deployed {
                revision,
                duration_ms: release.duration_ms,
                restores: match planned.action {
                    Action::Rollback { to, .. } => Some(to),
                    Action::Deploy => None,
                },
            }
        }
        Err(message) => {
            release.outcome = Outcome::Failed;
            release.message = Some(message.clone());
            ctx.reporter.progress(
                c,
                Level::Error,
                &format!("revision {revision} failed: {message}"),
            );
            if let Err(e) = ctx.history.finish(&release, Status::Failed).await {
                ctx.reporter.progress(
                    c,
                    Level::Error,
                    &format!("recording the failure failed: {e}"),
                );
            }
            auto_rollback(
                ctx,
                c,
                revision,
                message,
                previous.as_ref(),
                &release.manifests,
                info,
            )
            .await
        }
    }
}

fn failed_before_start(ctx: &Ctx, c: &str, message: &str) -> ComponentResult {
    ctx.reporter.progress(c, Level::Error, message);
    ComponentResult::RolledBack {
        failed_revision: 0,
        message: format!("nothing applied: {message}"),
        restored: None,
    }
}

/// Lists the records, marking revisions left `deploying` by a killed run (we hold the lock, so
/// nobody else is deploying) as failed.
async fn prepare_records(ctx: &Ctx, c: &str) -> Result<Vec<crate::release::Stored>> {
    let mut records = ctx.history.list(Some(c)).await?;
    for r in records.iter_mut().filter(|r| r.status == Status::Deploying) {
        ctx.history
            .set_status(c, r.release.revision, Status::Failed)
            .await?;
        r.status = Status::Failed;
        ctx.reporter.progress(
            c,
            Level::Warn,
            &format!(
                "revision {} was interrupted; marked failed",
                r.release.revision
            ),
        );
    }
    Ok(records)
}

/// After `shutdown`, workloads whose manifests leave replicas unset get their pre-shutdown
/// replicas back (the others get theirs from the manifests or the environment anyway).
async fn restore_replicas_after_shutdown(
    ctx: &Ctx,
    current: &crate::release::Stored,
    manifests: &mut [Value],
) -> Result<()> {
    let Some(marker) = ctx
        .history
        .shutdown_marker(&current.release.component, current.release.revision)
        .await?
    else {
        return Ok(());
    };
    let saved: Value = serde_json::from_str(&marker).unwrap_or(Value::Null);
    for object in manifests.iter_mut() {
        let key = format!(
            "{}/{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default()
        );
        if object["spec"].get("replicas").is_none()
            && let Some(n) = saved["replicas"][&key].as_i64()
        {
            object["spec"]["replicas"] = json!(n);
        }
    }
    Ok(())
}

/// Apply, prune what is no longer declared, wait until ready. Err carries a one-line cause.
async fn converge(
    ctx: &Ctx,
    c: &str,
    manifests: &[Value],
    prior_manifests: &[Value],
) -> std::result::Result<(), String> {
    let applied = apply::apply_all(&ctx.cluster, manifests, &ctx.namespace, |o| {
        ctx.reporter
            .progress(c, Level::Info, &format!("applied {o}"));
    })
    .await
    .map_err(|e| e.to_string())?;
    prune(ctx, c, manifests, prior_manifests, &applied).await?;
    let mut on_change = |o: &ObjectRef, v: &Readiness| match v {
        Readiness::Ready => ctx.reporter.progress(c, Level::Info, &format!("{o} ready")),
        Readiness::Waiting(m) => ctx.reporter.progress(c, Level::Info, &format!("{o}: {m}")),
        Readiness::Failed(_) => {}
    };
    wait::until_ready(
        &ctx.cluster.client,
        &ctx.namespace,
        c,
        &applied,
        timeout_of(ctx, c),
        &mut on_change,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Deletes objects labelled for `c` of the kinds it declares now or declared before that are
/// not among `keep`.
async fn prune(
    ctx: &Ctx,
    c: &str,
    manifests: &[Value],
    prior_manifests: &[Value],
    keep: &[ObjectRef],
) -> std::result::Result<(), String> {
    let kinds = kinds_of(manifests.iter().chain(prior_manifests));
    let stale = apply::undeclared(&ctx.cluster, c, &ctx.namespace, &kinds, keep)
        .await
        .map_err(|e| e.to_string())?;
    for o in &stale {
        ctx.reporter
            .progress(c, Level::Info, &format!("pruning {o}"));
    }
    apply::delete_and_wait(&ctx.cluster, &stale, timeout_of(ctx, c))
        .await
        .map_err(|e| e.to_string())
}

pub fn kinds_of<'a>(objects: impl Iterator<Item = &'a Value>) -> BTreeSet<(String, String)> {
    objects
        .map(|o| {
            (
                o["apiVersion"].as_str().unwrap_or_default().to_string(),
                o["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// After a failed revision: re-apply the last deployed revision as a new revision, or remove a
/// failed first install.
async fn auto_rollback(
    ctx: &Ctx,
    c: &str,
    failed_revision: u32,
    message: String,
    previous: Option<&crate::release::Stored>,
    failed_manifests: &[Value],
    info: &RunInfo,
) -> ComponentResult {
    let Some(previous) = previous else {
        ctx.reporter
            .progress(c, Level::Warn, "first install failed; removing it");
        return match remove_component(ctx, c, failed_manifests).await {
            Ok(()) => {
                let _ = ctx
                    .history
                    .set_status(c, failed_revision, Status::RolledBack)
                    .await;
                ComponentResult::RolledBack {
                    failed_revision,
                    message,
                    restored: None,
                }
            }
            Err(rollback_error) => ComponentResult::RollbackFailed {
                failed_revision,
                message,
                rollback_error,
            },
        };
    };
    let to = previous.release.revision;
    let planned = Planned {
        component: c.to_string(),
        action: Action::Rollback {
            to,
            automatic: true,
        },
        manifests: previous.release.manifests.clone(),
        images: previous.release.images.clone(),
    };
    let info = RunInfo {
        reason: Some(format!(
            "automatic rollback: revision {failed_revision} failed: {message}"
        )),
        ..info.clone()
    };
    match Box::pin(roll_out_once(ctx, &planned, &info)).await {
        Ok(revision) => {
            let _ = ctx
                .history
                .set_status(c, failed_revision, Status::RolledBack)
                .await;
            ctx.reporter.progress(
                c,
                Level::Warn,
                &format!("rolled back to v{to} (as revision {revision})"),
            );
            ComponentResult::RolledBack {
                failed_revision,
                message,
                restored: Some(to),
            }
        }
        Err(rollback_error) => {
            ctx.reporter.progress(
                c,
                Level::Error,
                &format!("automatic rollback failed: {rollback_error}"),
            );
            ComponentResult::RollbackFailed {
                failed_revision,
                message,
                rollback_error,
            }
        }
    }
}

/// A rollout without automatic rollback (used for the rollback itself).
async fn roll_out_once(
    ctx: &Ctx,
    planned: &Planned,
    info: &RunInfo,
) -> std::result::Result<u32, String> {
    let c = planned.component.as_str();
    let started = Instant::now();
    let records = ctx.history.list(Some(c)).await.map_err(|e| e.to_string())?;
    let current = history::current(&records).cloned();
    let revision = history::latest(&records).map_or(1, |r| r.release.revision + 1);
    let mut release = Release {
        component: c.to_string(),
        revision,
        action: planned.action.clone(),
        environment: ctx.config.environment.environment.name.clone(),
        namespace: ctx.namespace.clone(),
        manifests: planned.manifests.clone(),
        images: planned.images.clone(),
        commit: ctx.identity.commit.clone(),
        dirty: ctx.identity.dirty,
        started_at: chrono::Utc::now(),
        user: ctx.identity.user.clone(),
        reason: info.reason.clone(),
        deploy_id: info.deploy_id.clone(),
        outcome: Outcome::InProgress,
        message: None,
        duration_ms: 0,
        change_ticket: info.approval.change_ticket.clone(),
        approved_by: info.approval.approved_by.clone(),
        forced_unlock: None,
        skipped_checks: vec![],
        prev_digest: history::latest(&records).map(|r| r.recorded_digest.clone()),
    };
    ctx.history
        .create(&release, Status::Deploying)
        .await
        .map_err(|e| e.to_string())?;
    let latest_manifests = history::latest(&records)
        .map(|r| r.release.manifests.clone())
        .unwrap_or_default();
    let outcome = converge(ctx, c, &release.manifests, &latest_manifests).await;
    release.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(()) => {
            release.outcome = Outcome::Succeeded;
            ctx.history
                .finish(&release, Status::Deployed)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(cur) = current {
                ctx.history
                    .set_status(c, cur.release.revision, Status::Superseded)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let _ = ctx.history.enforce_retention(&records, 1).await;
            Ok(revision)
        }
        Err(message) => {
            release.outcome = Outcome::Failed;
            release.message = Some(message.clone());
            let _ = ctx.history.finish(&release, Status::Failed).await;
            Err(message)
        }
    }
}

/// Deletes everything of component `c` (declared in `manifests` or labelled for it) and waits
/// until it is gone.
pub async fn remove_component(
    ctx: &Ctx,
    c: &str,
    manifests: &[Value],
) -> std::result::Result<(), String> {
    let kinds = kinds_of(manifests.iter());
    let mut objects = apply::undeclared(&ctx.cluster, c, &ctx.namespace, &kinds, &[])
        .await
        .map_err(|e| e.to_string())?;
    // Dependents first: workloads before their config, reverse of the install order.
    objects.sort_by_key(|o| std::cmp::Reverse(render::kind_rank(&o.kind)));
    for o in &objects {
        ctx.reporter
            .progress(c, Level::Info, &format!("deleting {o}"));
    }
    apply::delete_and_wait(&ctx.cluster, &objects, timeout_of(ctx, c))
        .await
        .map_err(|e| e.to_string())
}
