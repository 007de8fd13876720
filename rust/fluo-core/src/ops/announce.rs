//! Notice for planned deploys: `announce` records a planned deploy (window, components, ticket,
//! reason, who) in fluo-system and notifies; `announce --list` and `--cancel`. Before a deploy
//! changes anything, [`check_notice`] refuses it (exit 5) unless an announcement made at least
//! `[notice].period` earlier covers it; `--emergency` waives notice and windows (never
//! approvals) and is marked in the records.

use chrono::{DateTime, Utc};

use super::Ctx;
use crate::config::Environment;
use crate::exit::Exit;
use crate::notify::{Change, EventKind};
use crate::ops::events;
use crate::state::announcements::{self, Announcement, Cancellation, KIND, stamp};
use crate::state::store::{self, Store};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "refused by policy: environment `{env}` requires {notice} notice for planned deploys; {detail}. Earliest possible deploy: {earliest} (or --emergency --reason ... for an emergency)"
    )]
    NoNotice {
        env: String,
        notice: String,
        detail: String,
        earliest: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("announcement {id} is already cancelled")]
    AlreadyCancelled { id: String },
    #[error("checking the notice period: {0}")]
    Store(#[from] store::Error),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::NoNotice { .. } => Exit::Policy,
            Error::Invalid(_) | Error::AlreadyCancelled { .. } => Exit::Usage,
            Error::Store(store::Error::NotFound { .. }) => Exit::Usage,
            Error::Store(_) => Exit::Failed,
        }
    }
}

/// What `announce` asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Empty: all components.
    pub components: Vec<String>,
    pub ticket: Option<String>,
    pub reason: String,
}

/// Records and notifies a planned deploy.
pub async fn announce(ctx: &Ctx, request: &Request, now: DateTime<Utc>) -> Result<Announcement> {
    if request.window_end <= request.window_start {
        return Err(Error::Invalid(format!(
            "the window must end after it starts ({} - {}); nothing changed",
            stamp(request.window_start),
            stamp(request.window_end)
        )));
    }
    if request.window_end <= now {
        return Err(Error::Invalid(format!(
            "the window ends in the past ({}); nothing changed",
            stamp(request.window_end)
        )));
    }
    if request.reason.trim().is_empty() {
        return Err(Error::Invalid(
            "an announcement needs --reason; nothing changed".into(),
        ));
    }
    if !request.components.is_empty() {
        ctx.config
            .graph
            .select(&request.components)
            .map_err(|e| Error::Invalid(format!("{e}; nothing changed")))?;
    }
    super::context::ensure_namespaces(ctx)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let announcement = Announcement {
        id: store::new_id(now),
        environment: ctx.config.environment.environment.name.clone(),
        window_start: request.window_start,
        window_end: request.window_end,
        components: request.components.clone(),
        ticket: request.ticket.clone(),
        reason: request.reason.clone(),
        who: ctx.identity.user.clone(),
        created_at: now,
        cancelled: None,
    };
    Store::new(&ctx.cluster.client, KIND)
        .create(&announcement.id, &announcement)
        .await?;
    let usable = notice(&ctx.config.environment).map(|n| announcement.usable_from(n));
    let mut e = events::event(
        ctx,
        EventKind::Announcement,
        format!(
            "planned deploy announced for {} - {}",
            stamp(announcement.window_start),
            stamp(announcement.window_end)
        ),
        &announcement.id,
    );
    e.components = components_of(ctx, &announcement.components);
    e.reason = Some(announcement.reason.clone());
    e.ticket = announcement.ticket.clone();
    e.result = match usable {
        Some(t) => format!("deploys covered from {}", stamp(t)),
        None => "recorded (this environment requires no notice)".into(),
    };
    e.next = format!(
        "fluo-deploy --env {} announce --list; --cancel {}",
        announcement.environment, announcement.id
    );
    ctx.notifier.emit(&e);
    Ok(announcement)
}

fn components_of(ctx: &Ctx, names: &[String]) -> Vec<Change> {
    let names = if names.is_empty() {
        ctx.config.graph.sequential_order()
    } else {
        names.to_vec()
    };
    names
        .into_iter()
        .map(|component| Change {
            component,
            from: None,
            to: None,
        })
        .collect()
}

/// Announcements of this environment, oldest first (cancelled ones included).
pub async fn list(ctx: &Ctx) -> Result<Vec<Announcement>> {
    let env = &ctx.config.environment.environment.name;
    Ok(Store::new(&ctx.cluster.client, KIND)
        .list::<Announcement>()
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|a| &a.environment == env)
        .collect())
}

pub fn list_text(announcements: &[Announcement], now: DateTime<Utc>) -> String {
    let rows: Vec<Vec<String>> = announcements
        .iter()
        .map(|a| {
            let state = match &a.cancelled {
                Some(c) => format!("cancelled by {}", c.by),
                None if a.window_end <= now => "past".into(),
                None => "planned".into(),
            };
            vec![
                a.id.clone(),
                state,
                stamp(a.window_start),
                stamp(a.window_end),
                if a.components.is_empty() {
                    "all".into()
                } else {
                    a.components.join(",")
                },
                a.ticket.clone().unwrap_or_default(),
                a.who.clone(),
                stamp(a.created_at),
                a.reason.clone(),
            ]
        })
        .collect();
    crate::report::table(
        &[
            "ID",
            "STATE",
            "FROM",
            "UNTIL",
            "COMPONENTS",
            "TICKET",
            "WHO",
            "ANNOUNCED",
            "REASON",
        ],
        &rows,
    )
}

/// Cancels announcement `id` (recorded, notified).
pub async fn cancel(
    ctx: &Ctx,
    id: &str,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Announcement> {
    let store = Store::new(&ctx.cluster.client, KIND);
    let current = store.get::<Announcement>(id).await?;
    if current.value.cancelled.is_some() {
        return Err(Error::AlreadyCancelled { id: id.to_string() });
    }
    let mut updated = current.value.clone();
    updated.cancelled = Some(Cancellation {
        at: now,
        by: ctx.identity.user.clone(),
        reason: reason.map(str::to_string),
    });
    if !store.replace(id, &updated, &current).await? {
        return Err(Error::Invalid(format!(
            "announcement {id} changed while cancelling it; try again"
        )));
    }
    let mut e = events::event(
        ctx,
        EventKind::AnnouncementCancelled,
        format!(
            "announced deploy for {} - {} cancelled",
            stamp(updated.window_start),
            stamp(updated.window_end)
        ),
        id,
    );
    e.components = components_of(ctx, &updated.components);
    e.reason = reason.map(str::to_string);
    e.ticket = updated.ticket.clone();
    e.result = "cancelled".into();
    ctx.notifier.emit(&e);
    Ok(updated)
}

fn notice(env: &Environment) -> Option<chrono::Duration> {
    env.notice
        .as_ref()
        .and_then(|n| chrono::Duration::from_std(n.period).ok())
}

/// Refuses (exit 5) a deploy of `components` at `now` that no announcement covers, in an
/// environment with a notice period. An emergency deploy is not checked.
pub async fn check_notice(
    ctx: &Ctx,
    components: &[String],
    emergency: bool,
    now: DateTime<Utc>,
) -> Result<Option<String>> {
    let Some(period) = notice(&ctx.config.environment) else {
        return Ok(None);
    };
    if emergency {
        return Ok(None);
    }
    let all = list(ctx).await?;
    let env = &ctx.config.environment.environment.name;
    match announcements::covering(&all, env, components, now, period) {
        Ok(a) => Ok(Some(a.id.clone())),
        Err(uncovered) => Err(Error::NoNotice {
            env: env.clone(),
            notice: hours(period),
            detail: uncovered.detail,
            earliest: stamp(uncovered.earliest),
        }),
    }
}

/// The environment the window check sees: an emergency waives the windows (approvals stay).
pub fn policy_environment(env: &Environment, emergency: bool) -> std::borrow::Cow<'_, Environment> {
    if !emergency || env.windows.is_empty() {
        return std::borrow::Cow::Borrowed(env);
    }
    let mut waived = env.clone();
    waived.windows.clear();
    std::borrow::Cow::Owned(waived)
}

/// What an emergency waives, listed with the skipped checks of every record of the run (the
/// records also carry the signed `emergency` flag).
pub fn waived_by_emergency(reason: Option<&str>) -> Vec<String> {
    let reason = reason.unwrap_or_default();
    vec![
        format!("notice: waived (emergency: {reason})"),
        format!("windows: waived (emergency: {reason})"),
    ]
}

/// "48h" rather than humantime's "2days" (notice periods are set in hours).
fn hours(period: chrono::Duration) -> String {
    match period.num_seconds() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
