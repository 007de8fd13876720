//! What every cluster operation shares: the context (`Ctx`), the checks that live in other
//! crates (`Hooks`, with `Metrics` for progressive rollouts' analyses), the facts common to every
//! record (`RunInfo`) and every notification (`event`) of one run, and the first steps of every
//! changing run (namespaces, the deploy lock).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use super::error::{Error, Result};
use super::stop::{Reason, Stop};
use crate::SYSTEM_NAMESPACE;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::exit::Exit;
use crate::history::History;
use crate::identity::Identity;
use crate::lock::DeployLock;
use crate::notify::{Event, EventKind};
use crate::policy::Approval;
use crate::report::{Level, Reporter};
use crate::{apply, render};

/// Checks run around a deploy that live in other crates (fluo-validate, fluo-health/fluo-smoke).
pub trait Hooks: Send + Sync {
    /// The pre-deployment gate over the selected components. Err carries the exit code to use
    /// (1 checks failed, 2 usage, 5 policy) and the findings.
    /// It checks the objects as this deploy renders them (`cluster` and `rendered`): the bytes
    /// that are applied.
    fn gate<'a>(
        &'a self,
        config: &'a Config,
        components: &'a [String],
        cluster: &'a render::Rendered,
        rendered: &'a std::collections::BTreeMap<String, render::Rendered>,
    ) -> BoxFuture<'a, std::result::Result<(), (Exit, String)>>;
    /// Checks, without running them, that the post-deploy checks of `components` can run as
    /// configured (every endpoint they reach is resolvable): called before the first apply.
    /// Err names each problem.
    fn post_checks_usable(
        &self,
        config: &Config,
        components: &[String],
    ) -> std::result::Result<(), String>;
    /// Checks, without connecting, that the canary or blue-green analysis can reach its
    /// metrics source (Prometheus) as configured: called before the first apply when the
    /// post-deploy checks, which cover it, are off. Err names the problem.
    fn analysis_usable(&self, _config: &Config) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Post-deploy checks of the deployed components (None: no checks available); Err carries
    /// what failed.
    fn post_checks<'a>(
        &'a self,
        config: &'a Config,
        namespace: &'a str,
        components: &'a [String],
    ) -> Option<BoxFuture<'a, std::result::Result<(), String>>>;
    /// The checks of a blue-green green before its switch: those of the post-deploy checks that
    /// reach `component`'s endpoints, each Service of `previews` (service, preview Service)
    /// reached through its preview. None: no such checks here. Ok: what passed; Err: what
    /// failed.
    fn preview_checks<'a>(
        &'a self,
        _config: &'a Config,
        _namespace: &'a str,
        _component: &'a str,
        _previews: &'a [(String, String)],
    ) -> Option<BoxFuture<'a, std::result::Result<String, String>>> {
        None
    }
    /// The Prometheus queries of progressive rollouts' analyses (None: no analysis possible;
    /// a rollout whose strategy configures one then aborts).
    fn metrics<'a>(&'a self, _config: &'a Config) -> Option<Box<dyn Metrics + 'a>> {
        None
    }
    /// Backs up the JetStream state as `[backup]` says (None: no backup possible); Ok carries
    /// where the backup is, for `restore`.
    fn backup<'a>(
        &'a self,
        _config: &'a Config,
        _namespace: &'a str,
    ) -> Option<BoxFuture<'a, std::result::Result<String, String>>> {
        None
    }
}

/// Evaluates instant PromQL queries (Prometheus reached as the environment's `[access]` says;
/// the implementation lives in the wiring crate). `None`: the query yielded no series.
pub trait Metrics: Send + Sync {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>>;
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
    /// Stops the run on a signal or when the deploy lock is lost (see `stop`).
    pub stop: Stop,
    /// Change-management notifications of this command (sent while it runs).
    pub notifier: crate::notify::Notifier,
}

impl Ctx {
    /// The rollout timeout of `component`: `--timeout`, else its `[rollout] timeout`.
    pub fn timeout_of(&self, component: &str) -> Duration {
        self.timeout.unwrap_or_else(|| {
            self.config
                .component(component)
                .map_or(Duration::from_secs(300), |c| c.spec.rollout.timeout)
        })
    }

    pub fn environment(&self) -> &str {
        &self.config.environment.environment.name
    }

    /// Durations a changing run depends on, checked before it changes anything (exit 2): a
    /// zero rollout timeout would fail every rollout and then every rollback.
    pub fn check_durations(&self) -> Result<()> {
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::Refused(
                "--timeout must be greater than zero (nothing changed)".into(),
            ));
        }
        if self.lock_ttl < Duration::from_secs(1) {
            return Err(Error::Refused(format!(
                "the deploy lock's lifetime must be at least 1s, got {} (nothing changed)",
                humantime::format_duration(self.lock_ttl)
            )));
        }
        Ok(())
    }
}

/// An event of this run with the facts every message carries.
pub fn event(ctx: &Ctx, kind: EventKind, summary: String, reference: &str) -> Event {
    let mut e = Event::new(kind, &ctx.config.environment.environment.name, summary);
    e.commit = format!(
        "{}{}",
        ctx.identity.commit,
        if ctx.identity.dirty { "-dirty" } else { "" }
    );
    e.who = ctx.identity.user.clone();
    e.reference = reference.to_string();
    e
}

/// Common facts of every record written by one run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub deploy_id: String,
    pub reason: Option<String>,
    pub approval: Approval,
    pub skipped_checks: Vec<String>,
    pub forced_unlock: Option<String>,
    /// `deploy --emergency`: every record of the run says so.
    pub emergency: bool,
    /// `drill`: the drill release's records say so.
    pub drill: bool,
}

impl RunInfo {
    /// A run with only an id and a reason (rollbacks, teardown).
    pub fn new(deploy_id: &str, reason: Option<String>) -> RunInfo {
        RunInfo {
            deploy_id: deploy_id.to_string(),
            reason,
            approval: Approval::default(),
            skipped_checks: vec![],
            forced_unlock: None,
            emergency: false,
            drill: false,
        }
    }
}

/// One id per deploy/rollback run, shared by its records: time-sortable and unique.
pub fn new_deploy_id() -> String {
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
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

/// Takes the deploy lock, reporting a forced removal or a takeover. Losing it later stops the
/// run (`ctx.stop`).
pub async fn take_lock(ctx: &Ctx, deploy_id: &str, force: bool) -> Result<DeployLock> {
    let holder = format!("{}@{} ({deploy_id})", ctx.identity.user, hostname());
    let stop = ctx.stop.clone();
    let lock = DeployLock::acquire(
        &ctx.cluster.client,
        &holder,
        ctx.lock_ttl,
        force,
        move |detail| stop.lock_lost(&detail),
    )
    .await?;
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

/// Runs `work`, saying once what a stop request means when it arrives, and again on abort.
pub async fn announcing_stops<F: Future>(ctx: &Ctx, work: F) -> F::Output {
    let announce = async {
        ctx.stop.stopped().await;
        let then = match ctx.stop.reason() {
            Some(Reason::LockLost { .. }) => {
                "no new applies; rolling back what this run applied (the new holder's lease is not touched)"
            }
            _ => {
                "no new applies; rolling back what this run applied (a second signal aborts at once)"
            }
        };
        let reason = ctx
            .stop
            .reason()
            .map(ToString::to_string)
            .unwrap_or_default();
        ctx.reporter
            .progress("", Level::Warn, &format!("{reason}: {then}"));
        ctx.stop.aborted().await;
        ctx.reporter.progress(
            "",
            Level::Error,
            "aborted: no more waiting; marking the records and releasing the lock",
        );
        std::future::pending::<F::Output>().await
    };
    tokio::select! {
        output = work => output,
        output = announce => output,
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_ids_sort_by_time_and_differ() {
        let a = new_deploy_id();
        let b = new_deploy_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "20261204T163619Z-".len() + 8, "{a}");
        assert!(a.as_bytes()[8] == b'T' && a.contains("Z-"), "{a}");
    }
}
