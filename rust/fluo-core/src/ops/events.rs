//! The change-management events of each command, built from what it did and sent through the
//! context's notifier; at the end of the command, the deliveries are awaited (bounded), a
//! failed one is printed as a warning, and all are recorded in the notification log.

use std::collections::BTreeMap;

pub use super::context::event;
use super::{ComponentResult, Ctx, Error, RunReport};
use crate::exit::Exit;
use crate::notify::{Change, DeliveryStatus, EventKind};
use crate::release::Stored;
use crate::report::Level;
use crate::state::notifications::{self, Log};
use crate::state::store::{self, Store};

fn cli(ctx: &Ctx) -> String {
    format!(
        "fluo-deploy --env {}",
        ctx.config.environment.environment.name
    )
}

/// "v3 (fluo/nats:2.10)".
fn version(record: &Stored) -> String {
    let images: Vec<&str> = record.release.images.values().map(String::as_str).collect();
    format!("v{} ({})", record.release.revision, images.join(", "))
}

/// Per component, its records (oldest first, without manifests: messages name versions);
/// empty on a read error (the message then lacks versions, the command goes on).
async fn records(ctx: &Ctx) -> BTreeMap<String, Vec<Stored>> {
    ctx.history
        .versions_by_component()
        .await
        .unwrap_or_default()
}

/// Deploy started (or, with `--emergency`, the immediate emergency notice): the components
/// with their current and planned versions.
pub async fn deploy_started(
    ctx: &Ctx,
    deploy_id: &str,
    prepared: &super::deploy::Prepared,
    request: &super::deploy::Request,
) {
    let emergency = request.emergency;
    let planned: BTreeMap<&String, &BTreeMap<String, String>> = prepared
        .rendered
        .iter()
        .map(|(c, r)| (c, &r.images))
        .collect();
    let all = records(ctx).await;
    let kind = if emergency {
        EventKind::EmergencyDeploy
    } else {
        EventKind::DeployStarted
    };
    let names: Vec<&str> = planned.keys().map(|c| c.as_str()).collect();
    let mut e = event(
        ctx,
        kind,
        format!("deploy {deploy_id} started: {}", names.join(", ")),
        deploy_id,
    );
    e.components = planned
        .iter()
        .map(|(c, images)| Change {
            component: c.to_string(),
            from: all
                .get(*c)
                .and_then(|r| crate::history::current(r))
                .map(version),
            to: Some(images.values().cloned().collect::<Vec<_>>().join(", ")),
        })
        .collect();
    e.reason = request.reason.clone();
    e.ticket = request.approval.change_ticket.clone();
    e.emergency = emergency;
    e.result = "in progress".into();
    e.next = format!("{} status; {} logs <component>", cli(ctx), cli(ctx));
    ctx.notifier.emit(&e);
}

/// What a finished run did to `component`, in words, and its versions (from -> to).
fn outcome(records: &[Stored], result: &ComponentResult) -> (String, Change) {
    let by_revision = |n: u32| records.iter().find(|r| r.release.revision == n);
    let before = |n: u32| crate::history::previous_good(records, n).map(version);
    let (text, from, to) = match result {
        ComponentResult::Deployed {
            revision, restores, ..
        } => (
            super::outcome::deployed_text(*revision, *restores),
            before(*revision),
            by_revision(*revision).map(version),
        ),
        ComponentResult::RolledBack {
            failed_revision,
            message,
            restored,
        } => (
            format!(
                "v{failed_revision} failed ({message}); {}",
                super::outcome::restored_text(*restored)
            ),
            before(*failed_revision),
            by_revision(*failed_revision).map(version),
        ),
        ComponentResult::RollbackFailed {
            failed_revision,
            message,
            rollback_error,
        } => (
            format!(
                "v{failed_revision} failed ({message}); AUTOMATIC ROLLBACK FAILED: {rollback_error}"
            ),
            before(*failed_revision),
            by_revision(*failed_revision).map(version),
        ),
        ComponentResult::TakenOver {
            failed_revision,
            message,
            by,
        } => (
            format!("v{failed_revision} stopped ({message}); left to the new lock holder {by}"),
            before(*failed_revision),
            by_revision(*failed_revision).map(version),
        ),
        ComponentResult::Skipped { because } => (format!("skipped: {because}"), None, None),
        ComponentResult::NoPrevious { revision, .. } => (
            "no previous release; left in place".into(),
            None,
            revision.and_then(by_revision).map(version),
        ),
    };
    (
        text,
        Change {
            component: String::new(),
            from,
            to,
        },
    )
}

/// How a command run ended, for [`finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Deploy {
        emergency: bool,
    },
    /// `rollback <component>`.
    Rollback,
    /// `rollback-to-previous`.
    EmergencyRollback,
}

/// The end of a deploy or rollback command: its result, then one `rolled-back` message per
/// component the deploy rolled back automatically.
pub async fn finished(
    ctx: &Ctx,
    run: Run,
    report: &RunReport,
    reason: Option<&str>,
    ticket: Option<&str>,
) {
    let all = records(ctx).await;
    let exit = report.exit();
    let id = &report.deploy_id;
    let (kind, what) = match run {
        Run::Deploy { .. } if exit == Exit::Ok => {
            (EventKind::DeploySucceeded, format!("deploy {id} succeeded"))
        }
        Run::Deploy { .. } => (EventKind::DeployFailed, format!("deploy {id} failed")),
        Run::Rollback => (EventKind::RolledBack, format!("manual rollback {id}")),
        Run::EmergencyRollback => (
            EventKind::EmergencyRollback,
            format!("emergency rollback {id}"),
        ),
    };
    let verdict = match exit {
        Exit::Ok => "succeeded",
        Exit::RollbackFailed => "FAILED, and the automatic rollback failed: escalate",
        _ => "failed",
    };
    let mut results = Vec::new();
    let mut changes = Vec::new();
    for (c, result) in &report.components {
        let (text, mut change) = outcome(all.get(c).map(Vec::as_slice).unwrap_or(&[]), result);
        results.push(format!("{c}: {text}"));
        change.component = c.clone();
        changes.push(change);
    }
    if let Some(Err(e)) = &report.post_checks {
        results.push(format!("post-deploy checks failed: {e}"));
    }
    let mut e = event(ctx, kind, format!("{what}: {verdict}"), id);
    e.components = changes.clone();
    e.reason = reason.map(str::to_string);
    e.ticket = ticket.map(str::to_string);
    e.emergency = matches!(run, Run::Deploy { emergency: true });
    e.result = results.join("; ");
    e.next = match exit {
        Exit::Ok => format!(
            "{} status; the post-deploy watch: {} monitor",
            cli(ctx),
            cli(ctx)
        ),
        Exit::RollbackFailed => {
            format!("{} incident (the escalation ladder has started)", cli(ctx))
        }
        _ => format!(
            "{} history; {} logs <component> --since 15m",
            cli(ctx),
            cli(ctx)
        ),
    };
    ctx.notifier.emit(&e);
    if !matches!(run, Run::Deploy { .. }) {
        return;
    }
    for (c, result) in &report.components {
        if let ComponentResult::RolledBack { restored, .. } = result {
            let (text, mut change) = outcome(all.get(c).map(Vec::as_slice).unwrap_or(&[]), result);
            change.component = c.clone();
            let to = restored.map_or("removed (first install)".into(), |r| format!("v{r}"));
            let mut e = event(
                ctx,
                EventKind::RolledBack,
                format!("{c} rolled back automatically to {to}"),
                id,
            );
            e.components = vec![change];
            e.reason = reason.map(str::to_string);
            e.result = text;
            e.next = format!(
                "{} history {c}; {} logs {c} --since 15m",
                cli(ctx),
                cli(ctx)
            );
            ctx.notifier.emit(&e);
        }
    }
}

/// `shutdown` or `delete` done, or failed after it started (a refusal changed nothing and is
/// not announced).
pub fn teardown(ctx: &Ctx, kind: EventKind, components: &[String], error: Option<&Error>) {
    if error.is_some_and(|e| e.exit() != Exit::Failed) {
        return;
    }
    let verb = if kind == EventKind::Shutdown {
        "shutdown"
    } else {
        "delete"
    };
    let id = crate::state::store::new_id(chrono::Utc::now());
    let mut e = event(
        ctx,
        kind,
        format!("{verb} of {}", components.join(", ")),
        &id,
    );
    e.components = components
        .iter()
        .map(|c| Change {
            component: c.clone(),
            from: None,
            to: None,
        })
        .collect();
    e.result = error.map_or("done".to_string(), |err| format!("failed: {err}"));
    e.next = format!("{} status", cli(ctx));
    ctx.notifier.emit(&e);
}

/// After a deploy or rollback command: the finishing messages, and an incident when the
/// automatic rollback failed. A deploy error after its start was announced (e.g. the
/// cluster-wide objects failed to apply) is announced as a failure; an error before that
/// changed nothing and is not announced.
pub async fn after(
    ctx: &Ctx,
    run: Run,
    result: super::Result<RunReport>,
    request: &super::deploy::Request,
) -> super::Result<RunReport> {
    let reason = request.reason.as_deref();
    let ticket = request.approval.change_ticket.as_deref();
    match &result {
        Ok(report) => {
            finished(ctx, run, report, reason, ticket).await;
            crate::ops::incident::open_if_rollback_failed(ctx, report).await;
        }
        Err(e)
            if ctx.notifier.emitted(EventKind::DeployStarted)
                || ctx.notifier.emitted(EventKind::EmergencyDeploy) =>
        {
            let id = crate::state::store::new_id(chrono::Utc::now());
            let mut event = event(
                ctx,
                EventKind::DeployFailed,
                "deploy failed".to_string(),
                &id,
            );
            event.reason = reason.map(str::to_string);
            event.ticket = ticket.map(str::to_string);
            event.emergency = matches!(run, Run::Deploy { emergency: true });
            event.result = format!("failed: {e}");
            event.next = format!("{} status; {} history", cli(ctx), cli(ctx));
            ctx.notifier.emit(&event);
        }
        Err(_) => {}
    }
    result
}

/// The post-deploy watch ended: the status update. `rollback` is the automatic rollback after
/// a breach (Ok: rolled back; Err: it failed).
pub fn monitoring_finished(
    ctx: &Ctx,
    verdict: &str,
    healthy: bool,
    rollback: Option<Result<(), String>>,
) {
    let id = crate::state::store::new_id(chrono::Utc::now());
    let mut e = event(
        ctx,
        EventKind::MonitoringFinished,
        format!(
            "post-deploy monitoring: {}",
            if healthy { "healthy" } else { "NOT healthy" }
        ),
        &id,
    );
    e.result = verdict.to_string();
    e.next = if healthy {
        format!("{} status", cli(ctx))
    } else {
        format!("{} history; {} logs --since 15m", cli(ctx), cli(ctx))
    };
    ctx.notifier.emit(&e);
    if let Some(result) = rollback {
        let mut e = event(
            ctx,
            EventKind::RolledBack,
            "automatic rollback after the monitoring breach".into(),
            &id,
        );
        e.reason = Some(verdict.to_string());
        e.result = match result {
            Ok(()) => "rolled back to the state before the latest deploy".into(),
            Err(err) => format!("AUTOMATIC ROLLBACK FAILED: {err}"),
        };
        e.next = format!("{} history", cli(ctx));
        ctx.notifier.emit(&e);
    }
}

/// Waits for this command's deliveries (bounded by the delivery timeout), prints each failed
/// one as a warning and records them all in the notification log. Never fails.
pub async fn flush(ctx: &Ctx) {
    let deliveries = ctx.notifier.finish().await;
    if deliveries.is_empty() {
        return;
    }
    let reference = deliveries[0].reference.clone();
    let store = Store::new(&ctx.cluster.client, notifications::KIND);
    let log_name = store.name(&reference);
    for d in deliveries
        .iter()
        .filter(|d| d.status == DeliveryStatus::Failed)
    {
        ctx.reporter.progress(
            "",
            Level::Warn,
            &format!(
                "notification `{}` to receiver `{}` failed: {} (the command's outcome is unchanged; recorded in {}/{log_name})",
                d.event,
                d.receiver,
                d.error.as_deref().unwrap_or("unknown error"),
                crate::SYSTEM_NAMESPACE
            ),
        );
    }
    let log = Log::new(
        &reference,
        &ctx.config.environment.environment.name,
        &deliveries,
    );
    let recorded = match store.create(&reference, &log).await {
        Err(store::Error::Kube {
            source: kube::Error::Api(e),
            ..
        }) if e.code == 409 => {
            // A second flush of the same run (e.g. `incident watch` rounds): a new entry.
            store
                .create(
                    &format!(
                        "{reference}-{}",
                        crate::state::store::new_id(chrono::Utc::now())
                    ),
                    &log,
                )
                .await
        }
        other => other,
    };
    if let Err(e) = recorded {
        ctx.reporter.progress(
            "",
            Level::Warn,
            &format!("recording the notification log: {e}"),
        );
    }
    let _ = store.retain(notifications::RETENTION).await;
}
