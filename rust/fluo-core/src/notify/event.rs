//! One change-management event and what every message about it says: environment, components
//! with versions (from -> to), commit, who, reason, ticket, result and where to look next.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::config::EventKind;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    #[serde(rename = "event")]
    pub kind: EventKind,
    pub environment: String,
    /// One line: what happened (the message's headline).
    pub summary: String,
    pub components: Vec<Change>,
    pub commit: String,
    pub who: String,
    pub reason: Option<String>,
    pub ticket: Option<String>,
    /// The outcome in words (e.g. "succeeded", "failed, rolled back to v3").
    pub result: String,
    /// Where to look next (commands to run, the incident to follow).
    pub next: String,
    /// Deploy id, announcement id or incident id this event belongs to.
    pub reference: String,
    /// Notice and windows were waived (`--emergency`).
    pub emergency: bool,
    pub at: DateTime<Utc>,
}

/// One component's versions: what ran before and what runs (or was meant to run) after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub component: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Change {
    /// "nats v2 (fluo/nats:2.10) -> v3 (fluo/nats:2.11)"; "-" for an unknown side.
    pub fn describe(&self) -> String {
        format!(
            "{} {} -> {}",
            self.component,
            self.from.as_deref().unwrap_or("-"),
            self.to.as_deref().unwrap_or("-")
        )
    }
}

impl Event {
    /// A new event of `kind` in `environment` with empty details, stamped now.
    pub fn new(kind: EventKind, environment: &str, summary: impl Into<String>) -> Event {
        Event {
            kind,
            environment: environment.to_string(),
            summary: summary.into(),
            components: Vec::new(),
            commit: String::new(),
            who: String::new(),
            reason: None,
            ticket: None,
            result: String::new(),
            next: String::new(),
            reference: String::new(),
            emergency: false,
            at: Utc::now(),
        }
    }

    /// The message as plain text (Slack's `text` fallback and the generic receivers' `text`).
    pub fn text(&self) -> String {
        let mut lines = vec![format!(
            "{}[{}] {}",
            if self.emergency { "EMERGENCY " } else { "" },
            self.environment,
            self.summary
        )];
        for (label, value) in self.fields() {
            lines.push(format!("{label}: {value}"));
        }
        lines.join("\n")
    }

    /// Labelled details in display order; empty ones are left out.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let components = self
            .components
            .iter()
            .map(Change::describe)
            .collect::<Vec<_>>()
            .join("; ");
        [
            ("Environment", self.environment.clone()),
            ("Components", components),
            ("Commit", self.commit.clone()),
            ("Who", self.who.clone()),
            ("Reason", self.reason.clone().unwrap_or_default()),
            ("Ticket", self.ticket.clone().unwrap_or_default()),
            ("Result", self.result.clone()),
            ("Next", self.next.clone()),
            ("Reference", self.reference.clone()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_every_detail_and_marks_emergencies() {
        let mut e = Event::new(
            EventKind::DeploySucceeded,
            "production",
            "deploy d1 succeeded",
        );
        e.components = vec![Change {
            component: "bff".into(),
            from: Some("v2 (fluo-bff:1)".into()),
            to: Some("v3 (fluo-bff:2)".into()),
        }];
        e.commit = "abc123".into();
        e.who = "alice".into();
        e.reason = Some("hotfix".into());
        e.ticket = Some("CHG-1".into());
        e.result = "succeeded".into();
        e.next = "fluo-deploy --env production status".into();
        e.emergency = true;
        assert_eq!(
            e.text(),
            "EMERGENCY [production] deploy d1 succeeded\nEnvironment: production\n\
             Components: bff v2 (fluo-bff:1) -> v3 (fluo-bff:2)\nCommit: abc123\nWho: alice\n\
             Reason: hotfix\nTicket: CHG-1\nResult: succeeded\nNext: fluo-deploy --env production status"
        );
    }
}
