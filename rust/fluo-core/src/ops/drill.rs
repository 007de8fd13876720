//! The monthly rollback drill (`fluo-deploy drill`): deploy the deployed revisions again as a
//! release marked `drill`, verify, roll it back with `rollback-to-previous`'s own code path,
//! verify again, and record the drill (figures, result, who, when) in the cluster. `status`
//! warns when the last successful drill is older than `[drill] period`; with `[drill] gate`
//! a stale drill refuses deploys (exit 5).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;

use super::context::{self, Ctx, Hooks, RunInfo};
pub use super::drill_records::{check_gate, list, overdue};
use super::drill_records::{failed, store};
use super::error::{Error, Result};
use super::events;
use super::recover::run_post_checks;
use super::rollback;
use super::rollout::Planned;
use super::schedule::{self, Halt};
use crate::durable;
use crate::exit::Exit;
use crate::history;
use crate::notify::EventKind;
use crate::release::Action;
use crate::report::Level;
use crate::state::drills::Drill;
use crate::state::store;

/// A drill's record and the exit it means: 0 passed; 1 the drill release or a verification
/// failed (rolled back where it got that far); 3 its rollback failed (escalate: the drill
/// release is still deployed).
pub struct Outcome {
    pub drill: Drill,
    pub exit: Exit,
}

/// Runs one drill and records it. Err only when it could not start (nothing changed) or its
/// record could not be written.
pub async fn drill(ctx: &Ctx, hooks: &dyn Hooks, force_unlock: bool) -> Result<Outcome> {
    ctx.check_durations()?;
    let planned = drill_release(ctx).await?;
    let started_at = Utc::now();
    let started = Instant::now();
    let mut record = Drill {
        id: store::new_id(started_at),
        environment: ctx.environment().to_string(),
        started_at,
        by: ctx.identity.user.clone(),
        succeeded: false,
        failed_stage: None,
        message: None,
        rollback_ms: None,
        total_ms: 0,
        components: planned.keys().cloned().collect(),
        drill_deploy_id: None,
        rollback_deploy_id: None,
    };
    notify_started(ctx, &record);
    let exit = stages(ctx, hooks, planned, force_unlock, &mut record).await;
    record.succeeded = exit == Exit::Ok;
    record.total_ms = started.elapsed().as_millis() as u64;
    save(ctx, &record).await?;
    notify_finished(ctx, &record, exit);
    Ok(Outcome {
        drill: record,
        exit,
    })
}

/// Tells the receivers a drill starts: it redeploys and rolls back what runs.
fn notify_started(ctx: &Ctx, record: &Drill) {
    let mut e = events::event(
        ctx,
        EventKind::DrillStarted,
        format!(
            "rollback drill {} started: {}",
            record.id,
            record.components.join(", ")
        ),
        &record.id,
    );
    e.reason = Some("monthly rollback drill (SOP-002)".into());
    e.result = "in progress".into();
    e.next = format!("fluo-deploy --env {} drill --list", ctx.environment());
    ctx.notifier.emit(&e);
}

/// Tells the receivers how the drill ended, with the time to roll back.
fn notify_finished(ctx: &Ctx, record: &Drill, exit: Exit) {
    let verdict = match &record.failed_stage {
        None => "passed".to_string(),
        Some(stage) => format!("FAILED at {stage}"),
    };
    let mut e = events::event(
        ctx,
        EventKind::DrillFinished,
        format!("rollback drill {} {verdict}", record.id),
        &record.id,
    );
    let rollback = record
        .rollback_ms
        .map_or("-".to_string(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
    e.result = match &record.message {
        None => format!("{verdict}; rolled back in {rollback}"),
        Some(m) => format!("{verdict} (exit {}): {m}", exit.code()),
    };
    e.next = format!(
        "fluo-deploy --env {} drill --list; fluo-deploy --env {} status",
        ctx.environment(),
        ctx.environment()
    );
    ctx.notifier.emit(&e);
}

/// The drill release: each deployed component's current manifests and images, as a deploy.
async fn drill_release(ctx: &Ctx) -> Result<BTreeMap<String, Planned>> {
    let mut planned = BTreeMap::new();
    for (component, records) in ctx.history.by_component().await? {
        if ctx.config.graph.select(&[component.as_str()]).is_err() {
            continue;
        }
        rollback::verified(ctx, &component, &records).await?;
        if let Some(current) = history::current(&records) {
            let mut p = Planned::rollback_to(current, false);
            p.action = Action::Deploy;
            planned.insert(component, p);
        }
    }
    if planned.is_empty() {
        return Err(Error::Refused(
            "nothing is deployed: a drill redeploys and rolls back the deployed release (nothing changed)"
                .into(),
        ));
    }
    Ok(planned)
}

/// Deploy, verify, roll back, verify; fills in `record` and returns the drill's exit.
async fn stages(
    ctx: &Ctx,
    hooks: &dyn Hooks,
    planned: BTreeMap<String, Planned>,
    force_unlock: bool,
    record: &mut Drill,
) -> Exit {
    let mut exit = match deploy_drill_release(ctx, &planned, force_unlock, record).await {
        Ok(()) => Exit::Ok,
        Err(e) => fail(ctx, record, "deploy", e, Exit::Failed),
    };
    if exit == Exit::Ok
        && let Err(e) = verify(ctx, hooks, record).await
    {
        exit = fail(ctx, record, "verify", e, Exit::Failed);
    }
    // A drill release that failed was rolled back by its own rollout: nothing to roll back.
    if record.failed_stage.as_deref() == Some("deploy") {
        return exit;
    }
    let rolled_back = Instant::now();
    let reason = format!("rollback drill {}", record.id);
    match rollback::rollback_to_previous(ctx, &reason, false).await {
        Ok(report) => {
            record.rollback_ms = Some(rolled_back.elapsed().as_millis() as u64);
            record.rollback_deploy_id = Some(report.deploy_id.clone());
            if report.exit() != Exit::Ok {
                let text = report.text(ctx);
                return fail(
                    ctx,
                    record,
                    "rollback",
                    text.trim().to_string(),
                    Exit::RollbackFailed,
                );
            }
        }
        Err(e) => return fail(ctx, record, "rollback", e.to_string(), Exit::RollbackFailed),
    }
    if let Err(e) = verify(ctx, hooks, record).await {
        exit = fail(ctx, record, "verify after rollback", e, Exit::Failed);
    }
    exit
}

/// Reports and records the first failure; returns `exit`.
fn fail(ctx: &Ctx, record: &mut Drill, stage: &str, message: String, exit: Exit) -> Exit {
    ctx.reporter
        .progress("", Level::Error, &format!("drill {stage}: {message}"));
    if record.failed_stage.is_none() {
        record.failed_stage = Some(stage.to_string());
        record.message = Some(message);
    }
    exit
}

/// Applies the drill release under the deploy lock, along the graph.
async fn deploy_drill_release(
    ctx: &Ctx,
    planned: &BTreeMap<String, Planned>,
    force_unlock: bool,
    record: &mut Drill,
) -> std::result::Result<(), String> {
    let deploy_id = context::new_deploy_id();
    let lock = context::take_lock(ctx, &deploy_id, force_unlock)
        .await
        .map_err(|e| e.to_string())?;
    record.drill_deploy_id = Some(deploy_id.clone());
    let mut info = RunInfo::new(&deploy_id, Some(format!("rollback drill {}", record.id)));
    info.drill = true;
    if force_unlock {
        info.forced_unlock = lock.replaced.clone();
    }
    ctx.reporter.progress(
        "",
        Level::Info,
        &format!("deploying drill release {deploy_id}"),
    );
    let names: Vec<String> = planned.keys().cloned().collect();
    let order = ctx.config.environment.strategy.order;
    let graph = schedule::run_graph(ctx, &names, order, Halt::OnStop, |c| {
        let info = &info;
        async move { super::recover::roll_out_or_back(ctx, &planned[&c], info).await }
    });
    let results = context::announcing_stops(ctx, graph).await;
    lock.release().await;
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, r)| !r.succeeded())
        .map(|(c, r)| format!("{c}: {r:?}"))
        .collect();
    match failed.is_empty() {
        true => Ok(()),
        false => Err(failed.join("; ")),
    }
}

/// The post-deploy checks, where the environment runs them.
async fn verify(ctx: &Ctx, hooks: &dyn Hooks, record: &Drill) -> std::result::Result<(), String> {
    if !ctx.config.environment.strategy.post_deploy_checks {
        return Ok(());
    }
    match hooks.post_checks(&ctx.config, &ctx.namespace, &record.components) {
        Some(checks) => run_post_checks(ctx, checks)
            .await
            .unwrap_or_else(|| Err("stopped during the post-deploy checks".into())),
        None => Ok(()),
    }
}

/// Writes the record, repeating transient failures (a create that landed is a 409 later).
async fn save(ctx: &Ctx, record: &Drill) -> Result<()> {
    let store = store(ctx);
    let transient = |e: &store::Error| matches!(e, store::Error::Kube { source, .. } if durable::is_transient(source));
    durable::retry(transient, |attempt| {
        let store = store.clone();
        async move {
            match store.create(&record.id, record).await {
                Err(store::Error::Kube {
                    source: kube::Error::Api(e),
                    ..
                }) if attempt > 0 && e.code == 409 => Ok(()),
                other => other,
            }
        }
    })
    .await
    .map_err(failed)
}
