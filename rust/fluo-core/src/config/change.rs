//! Change-management settings of an environment file: who is notified of which events
//! (`[notifications]`), how long before a planned deploy it must be announced (`[notice]`), and
//! the escalation ladder of an incident (`[[escalation]]`).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::parse::duration;
use super::{Error, Result};

/// `[notifications]`: webhook receivers and which events go to each.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    #[serde(default)]
    pub receivers: Vec<Receiver>,
    /// How long one message may take to deliver, retries included (default 5s). A deploy
    /// waits at most this long for its last messages.
    #[serde(default = "default_delivery_timeout", deserialize_with = "duration")]
    pub delivery_timeout: Duration,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            receivers: Vec::new(),
            delivery_timeout: default_delivery_timeout(),
        }
    }
}

fn default_delivery_timeout() -> Duration {
    Duration::from_secs(5)
}

/// One webhook receiver (a channel).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    /// Shown in warnings and records (e.g. `team`, `on-call`).
    pub name: String,
    /// Name of the environment variable holding the webhook URL: the URL is a secret and is
    /// never printed, logged or recorded.
    pub webhook_env: String,
    #[serde(default)]
    pub format: PayloadFormat,
    /// Events sent to this receiver; `["*"]` (the default) is every event.
    #[serde(default = "every_event")]
    pub events: Vec<EventSelector>,
}

impl Receiver {
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events
            .iter()
            .any(|s| matches!(s, EventSelector::All) || *s == EventSelector::Kind(kind))
    }
}

fn every_event() -> Vec<EventSelector> {
    vec![EventSelector::All]
}

/// Payload shape a receiver accepts.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PayloadFormat {
    /// Slack-compatible incoming webhook: `text` plus Block Kit `blocks`.
    #[default]
    Slack,
    /// The event as one JSON object (for other receivers).
    Json,
}

/// An entry of `events`: one kind, or `*` for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSelector {
    All,
    Kind(EventKind),
}

/// What happened. The kebab-case names are what `events` lists.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Announcement,
    AnnouncementCancelled,
    DeployStarted,
    /// The start of a deploy with `--emergency` (notice and windows waived).
    EmergencyDeploy,
    DeploySucceeded,
    DeployFailed,
    /// A rollback finished: automatic (after a failed deploy, failed checks or a monitor
    /// breach) or manual (`rollback`).
    RolledBack,
    /// `rollback-to-previous`: the SOP's emergency rollback.
    EmergencyRollback,
    Shutdown,
    Delete,
    /// The post-deploy watch ended (the status update).
    MonitoringFinished,
    IncidentOpened,
    Escalation,
    IncidentResolved,
    /// `drill` started (it redeploys and rolls back the deployed release).
    DrillStarted,
    /// `drill` ended: passed, or the stage that failed; the time to roll back.
    DrillFinished,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Announcement => "announcement",
            EventKind::AnnouncementCancelled => "announcement-cancelled",
            EventKind::DeployStarted => "deploy-started",
            EventKind::EmergencyDeploy => "emergency-deploy",
            EventKind::DeploySucceeded => "deploy-succeeded",
            EventKind::DeployFailed => "deploy-failed",
            EventKind::RolledBack => "rolled-back",
            EventKind::EmergencyRollback => "emergency-rollback",
            EventKind::Shutdown => "shutdown",
            EventKind::Delete => "delete",
            EventKind::MonitoringFinished => "monitoring-finished",
            EventKind::IncidentOpened => "incident-opened",
            EventKind::Escalation => "escalation",
            EventKind::IncidentResolved => "incident-resolved",
            EventKind::DrillStarted => "drill-started",
            EventKind::DrillFinished => "drill-finished",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventSelector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "*" {
            return Ok(EventSelector::All);
        }
        EventKind::deserialize(serde::de::value::StrDeserializer::<D::Error>::new(&text))
            .map(EventSelector::Kind)
    }
}

/// `[notice]`: planned deploys must be announced (`fluo-deploy announce`) this long before.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    #[serde(deserialize_with = "duration")]
    pub period: Duration,
}

/// `[drill]`: how often the rollback drill must succeed, and whether a stale drill is a gate
/// finding (deploys refused, exit 5) rather than a `status` warning.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    #[serde(default = "default_drill_period", deserialize_with = "duration")]
    pub period: Duration,
    #[serde(default)]
    pub gate: bool,
}

fn default_drill_period() -> Duration {
    Duration::from_secs(31 * 24 * 3600)
}

impl Default for Drill {
    fn default() -> Drill {
        Drill {
            period: default_drill_period(),
            gate: false,
        }
    }
}

/// One rung of `[[escalation]]`: `after` the incident opened, `role` (reached at `contact`) is
/// asked to `action`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EscalationStep {
    #[serde(deserialize_with = "duration", serialize_with = "serialize_duration")]
    pub after: Duration,
    pub role: String,
    /// Who to reach (a handle, a channel or a pager alias); empty means the receivers only.
    #[serde(default)]
    pub contact: String,
    pub action: String,
}

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Checks the change-management sections of environment file `path`.
pub(super) fn check(
    path: &Path,
    notifications: &Notifications,
    notice: Option<&Notice>,
    escalation: &[EscalationStep],
) -> Result<()> {
    let invalid = |key: &str, value: &dyn std::fmt::Debug, reason: &str| Error::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        value: format!("{value:?}"),
        reason: reason.to_string(),
    };
    let mut names = std::collections::BTreeSet::new();
    for r in &notifications.receivers {
        if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
            return Err(invalid(
                "notifications.receivers.name",
                &r.name,
                "must be non-empty and unique",
            ));
        }
        let var = &r.webhook_env;
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                "notifications.receivers.webhook_env",
                var,
                "must be an environment variable name (the URL itself is a secret)",
            ));
        }
        if r.events.is_empty() {
            return Err(invalid(
                "notifications.receivers.events",
                &r.name,
                "must list at least one event (or \"*\")",
            ));
        }
    }
    if notifications.delivery_timeout.is_zero()
        || notifications.delivery_timeout > Duration::from_secs(60)
    {
        return Err(invalid(
            "notifications.delivery_timeout",
            &humantime::format_duration(notifications.delivery_timeout).to_string(),
            "must be between 1ms and 60s (a notification never blocks a deploy for long)",
        ));
    }
    if let Some(n) = notice
        && n.period.is_zero()
    {
        return Err(invalid(
            "notice.period",
            &"0s",
            "must be greater than zero (leave [notice] out for no notice)",
        ));
    }
    let mut previous = Duration::ZERO;
    for step in escalation {
        if step.after <= previous {
            return Err(invalid(
                "escalation.after",
                &humantime::format_duration(step.after).to_string(),
                "steps must come later than the one before (and after 0s)",
            ));
        }
        previous = step.after;
        if step.role.trim().is_empty() || step.action.trim().is_empty() {
            return Err(invalid(
                "escalation.role",
                &step.role,
                "every step needs a role and an action",
            ));
        }
    }
    Ok(())
}
