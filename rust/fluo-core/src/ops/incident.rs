//! Incidents and the escalation ladder. An incident opens when an automatic rollback fails
//! (exit 3) or a monitor breach cannot be rolled back; it copies the environment's
//! `[[escalation]]` steps. Watching commands ([`watch_until`]: `monitor`, a running deploy,
//! `incident watch`) send each step once when it falls due: the step is claimed by writing
//! its `sent_at` with the record's resourceVersion, so two watchers never both send it.
//! `resolve` closes the incident; no step is sent after that.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::context::event;
use super::{ComponentResult, Ctx, RunReport};
use crate::exit::Exit;
use crate::notify::{Change, EventKind};
use crate::report::Level;
use crate::state::incidents::{Incident, KIND, Resolution, Step};
use crate::state::store::{self, Store, Versioned};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("incident {id} is already resolved")]
    AlreadyResolved { id: String },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Store(store::Error::NotFound { .. })
            | Error::AlreadyResolved { .. }
            | Error::Invalid(_) => Exit::Usage,
            Error::Store(_) => Exit::Failed,
        }
    }
}

/// Longest pause between two looks at the incidents (new ones, resolutions by others).
const POLL: Duration = Duration::from_secs(5);

fn store(ctx: &Ctx) -> Store {
    Store::new(&ctx.cluster.client, KIND)
}

fn cli(ctx: &Ctx) -> String {
    format!(
        "fluo-deploy --env {}",
        ctx.config.environment.environment.name
    )
}

/// Opens an incident when `report` says the automatic rollback failed; prints its id and ladder.
pub async fn open_if_rollback_failed(ctx: &Ctx, report: &RunReport) -> Option<Incident> {
    if report.exit() != Exit::RollbackFailed {
        return None;
    }
    let failed: Vec<(String, String)> = report
        .components
        .iter()
        .filter_map(|(c, r)| match r {
            ComponentResult::RollbackFailed {
                message,
                rollback_error,
                ..
            } => Some((
                c.clone(),
                format!("{c}: {message}; rollback: {rollback_error}"),
            )),
            _ => None,
        })
        .collect();
    let components = failed.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>();
    let cause = failed
        .into_iter()
        .map(|(_, m)| m)
        .collect::<Vec<_>>()
        .join("; ");
    open(ctx, &report.deploy_id, &components, &cause, Utc::now()).await
}

/// Records a new incident with the environment's ladder and notifies; a failure to record is
/// printed (the command's exit code already says escalate).
pub async fn open(
    ctx: &Ctx,
    reference: &str,
    components: &[String],
    cause: &str,
    now: DateTime<Utc>,
) -> Option<Incident> {
    let incident = Incident {
        id: store::new_id(now),
        environment: ctx.config.environment.environment.name.clone(),
        opened_at: now,
        cause: cause.to_string(),
        components: components.to_vec(),
        deployer: ctx.identity.user.clone(),
        reference: reference.to_string(),
        steps: ctx
            .config
            .environment
            .escalation
            .iter()
            .map(Step::from_config)
            .collect(),
        resolved: None,
    };
    if let Err(e) = store(ctx).create(&incident.id, &incident).await {
        ctx.reporter.progress(
            "",
            Level::Error,
            &format!("recording the incident failed: {e}; escalate by hand"),
        );
        return None;
    }
    let ladder = incident
        .steps
        .iter()
        .map(|s| {
            format!(
                "{}: {}",
                humantime::format_duration(Duration::from_secs(s.after_s)),
                s.role
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    ctx.reporter.progress(
        "",
        Level::Error,
        &format!(
            "incident {} opened (escalation: {}); close it with: {} incident resolve {} --reason ...",
            incident.id,
            if ladder.is_empty() { "no ladder configured".into() } else { ladder },
            cli(ctx),
            incident.id
        ),
    );
    let mut e = event(
        ctx,
        EventKind::IncidentOpened,
        format!("incident {}: automatic rollback failed", incident.id),
        &incident.id,
    );
    e.components = changes(&incident);
    e.reason = Some(incident.cause.clone());
    e.result = format!("opened; escalation ladder started (run {reference})");
    e.next = format!(
        "{} incident; roll back by hand: {} rollback-to-previous --reason ...",
        cli(ctx),
        cli(ctx)
    );
    ctx.notifier.emit(&e);
    Some(incident)
}

fn changes(incident: &Incident) -> Vec<Change> {
    incident
        .components
        .iter()
        .map(|c| Change {
            component: c.clone(),
            from: None,
            to: None,
        })
        .collect()
}

/// Incidents of this environment, oldest first; `open_only` leaves out resolved ones.
pub async fn list(ctx: &Ctx, open_only: bool) -> Result<Vec<Incident>> {
    let env = &ctx.config.environment.environment.name;
    Ok(store(ctx)
        .list::<Incident>()
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|i| &i.environment == env && !(open_only && i.resolved.is_some()))
        .collect())
}

pub fn list_text(incidents: &[Incident], now: DateTime<Utc>) -> String {
    if incidents.is_empty() {
        return "no open incidents\n".into();
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            let sent = i.steps.iter().filter(|s| s.sent_at.is_some()).count();
            let next = i
                .steps
                .iter()
                .find(|s| s.sent_at.is_none())
                .map(|s| format!("{} at {}", s.role, i.due_at(s).format("%H:%M:%SZ")))
                .unwrap_or_else(|| "-".into());
            vec![
                i.id.clone(),
                match &i.resolved {
                    Some(r) => format!("resolved by {}", r.by),
                    None => "open".into(),
                },
                i.opened_at.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                format!("{}m", (now - i.opened_at).num_minutes()),
                format!("{sent}/{}", i.steps.len()),
                next,
                i.components.join(","),
                i.cause.clone(),
            ]
        })
        .collect();
    crate::report::table(
        &[
            "ID",
            "STATE",
            "OPENED",
            "AGE",
            "ESCALATED",
            "NEXT",
            "COMPONENTS",
            "CAUSE",
        ],
        &rows,
    )
}

/// Closes incident `id` (recorded, notified): no further escalation.
pub async fn resolve(ctx: &Ctx, id: &str, reason: &str, now: DateTime<Utc>) -> Result<Incident> {
    if reason.trim().is_empty() {
        return Err(Error::Invalid(
            "resolving an incident needs --reason (it is recorded); nothing changed".into(),
        ));
    }
    let store = store(ctx);
    loop {
        let current = store.get::<Incident>(id).await?;
        if current.value.resolved.is_some() {
            return Err(Error::AlreadyResolved { id: id.to_string() });
        }
        let mut updated = current.value.clone();
        updated.resolved = Some(Resolution {
            at: now,
            by: ctx.identity.user.clone(),
            reason: reason.to_string(),
        });
        // A watcher may have marked a step sent in between: read again and retry.
        if store.replace(id, &updated, &current).await? {
            let mut e = event(
                ctx,
                EventKind::IncidentResolved,
                format!("incident {id} resolved"),
                id,
            );
            e.components = changes(&updated);
            e.reason = Some(reason.to_string());
            e.result = format!(
                "resolved after {} min",
                (now - updated.opened_at).num_minutes()
            );
            e.next = format!("{} history", cli(ctx));
            ctx.notifier.emit(&e);
            return Ok(updated);
        }
    }
}

/// One round: claims and sends every due step of every open incident. Returns how long until
/// the next step falls due (None: no open incident has steps left).
pub async fn escalate_due(ctx: &Ctx, now: DateTime<Utc>) -> Result<Option<Duration>> {
    let store = store(ctx);
    let env = &ctx.config.environment.environment.name;
    let mut next: Option<Duration> = None;
    for current in store.list::<Incident>().await? {
        if &current.value.environment != env {
            continue;
        }
        let incident = claim(ctx, &store, current, now).await?;
        if let Some(wait) = incident.next_due_in(now) {
            next = Some(next.map_or(wait, |n| n.min(wait)));
        }
    }
    Ok(next)
}

/// Marks the due steps of `current` sent (if nobody else did first) and sends them.
async fn claim(
    ctx: &Ctx,
    store: &Store,
    current: Versioned<Incident>,
    now: DateTime<Utc>,
) -> Result<Incident> {
    let due = current.value.due(now);
    if due.is_empty() {
        return Ok(current.value);
    }
    let mut updated = current.value.clone();
    for &i in &due {
        updated.steps[i].sent_at = Some(now);
    }
    if !store.replace(&updated.id, &updated, &current).await? {
        // Another watcher claimed them (or the incident was resolved): it sends, not us.
        return Ok(store.get::<Incident>(&updated.id).await?.value);
    }
    let total = updated.steps.len();
    for &i in &due {
        let step = &updated.steps[i];
        let who = if step.contact.is_empty() && step.role == "deployer" {
            updated.deployer.clone()
        } else {
            step.contact.clone()
        };
        let after = humantime::format_duration(Duration::from_secs(step.after_s));
        let mut e = event(
            ctx,
            EventKind::Escalation,
            format!(
                "incident {} escalation {}/{total} ({after}): {}",
                updated.id,
                i + 1,
                step.role
            ),
            &updated.id,
        );
        e.who = format!(
            "{} ({})",
            if who.is_empty() { "-".into() } else { who },
            step.role
        );
        e.components = changes(&updated);
        e.reason = Some(updated.cause.clone());
        e.result = format!("{} for {after}: {}", "open", step.action);
        e.next = format!("{} incident resolve {} --reason ...", cli(ctx), updated.id);
        ctx.notifier.emit(&e);
        ctx.reporter.progress(
            "",
            Level::Warn,
            &format!(
                "incident {}: escalation {}/{total} to {} sent",
                updated.id,
                i + 1,
                step.role
            ),
        );
    }
    Ok(updated)
}

/// Sends due escalations until `stop` resolves (checked between rounds, so a claimed step is
/// always queued for sending). Errors reading the incidents are printed and retried.
pub async fn watch_until(ctx: &Ctx, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let wait = match escalate_due(ctx, Utc::now()).await {
            Ok(next) => next.map_or(POLL, |n| n.min(POLL)),
            Err(e) => {
                ctx.reporter.progress(
                    "",
                    Level::Warn,
                    &format!("checking incidents for due escalations: {e}"),
                );
                POLL
            }
        };
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Runs `work` while sending due escalations (a waiting deploy or `monitor` is a watcher).
pub async fn while_watching<T>(ctx: &Ctx, work: impl std::future::Future<Output = T>) -> T {
    let (done, stop) = tokio::sync::oneshot::channel::<()>();
    let work = async {
        let out = work.await;
        let _ = done.send(());
        out
    };
    let stop = async {
        let _ = stop.await;
    };
    tokio::join!(work, watch_until(ctx, stop)).0
}

/// `incident watch`: escalates until no open incident has steps left.
pub async fn watch(ctx: &Ctx) -> Result<()> {
    loop {
        match escalate_due(ctx, Utc::now()).await? {
            None => return Ok(()),
            Some(wait) => tokio::time::sleep(wait.min(POLL)).await,
        }
    }
}
