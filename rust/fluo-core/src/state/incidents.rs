//! Incidents: opened when an automatic rollback fails (or a monitor breach cannot be rolled
//! back), with the environment's escalation ladder copied in. Each step is marked sent once,
//! by whichever watching command claims it first; `resolve` closes the incident.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::EscalationStep;

pub use super::store::{Error, Result};

pub const KIND: &str = "incident";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub environment: String,
    pub opened_at: DateTime<Utc>,
    /// What failed (the rollback's error).
    pub cause: String,
    pub components: Vec<String>,
    /// Who ran the command whose rollback failed (the ladder's first rung reminds them).
    pub deployer: String,
    /// The deploy or rollback run that failed.
    pub reference: String,
    pub steps: Vec<Step>,
    pub resolved: Option<Resolution>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Seconds after `opened_at`.
    pub after_s: u64,
    pub role: String,
    pub contact: String,
    pub action: String,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: String,
}

impl Step {
    pub fn from_config(step: &EscalationStep) -> Step {
        Step {
            after_s: step.after.as_secs(),
            role: step.role.clone(),
            contact: step.contact.clone(),
            action: step.action.clone(),
            sent_at: None,
        }
    }
}

impl Incident {
    pub fn due_at(&self, step: &Step) -> DateTime<Utc> {
        self.opened_at + chrono::Duration::seconds(step.after_s as i64)
    }

    /// Indices of the steps due at `now` and not sent yet (none once resolved).
    pub fn due(&self, now: DateTime<Utc>) -> Vec<usize> {
        if self.resolved.is_some() {
            return Vec::new();
        }
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sent_at.is_none() && self.due_at(s) <= now)
            .map(|(i, _)| i)
            .collect()
    }

    /// How long until the next unsent step is due (None: nothing left, or resolved).
    pub fn next_due_in(&self, now: DateTime<Utc>) -> Option<Duration> {
        if self.resolved.is_some() {
            return None;
        }
        self.steps
            .iter()
            .filter(|s| s.sent_at.is_none())
            .map(|s| (self.due_at(s) - now).to_std().unwrap_or(Duration::ZERO))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident() -> Incident {
        let step = |after_s: u64, role: &str| Step {
            after_s,
            role: role.into(),
            contact: String::new(),
            action: "act".into(),
            sent_at: None,
        };
        Incident {
            id: "i1".into(),
            environment: "production".into(),
            opened_at: "2026-12-04T10:00:00Z".parse().unwrap(),
            cause: "rollback failed".into(),
            components: vec!["bff".into()],
            deployer: "alice".into(),
            reference: "d1".into(),
            steps: vec![
                step(300, "deployer"),
                step(900, "senior"),
                step(1800, "leadership"),
            ],
            resolved: None,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn steps_fall_due_in_order_and_once() {
        let mut i = incident();
        assert!(i.due(at("2026-12-04T10:04:59Z")).is_empty());
        assert_eq!(
            i.next_due_in(at("2026-12-04T10:04:59Z")),
            Some(Duration::from_secs(1))
        );
        assert_eq!(i.due(at("2026-12-04T10:05:00Z")), [0]);
        i.steps[0].sent_at = Some(at("2026-12-04T10:05:00Z"));
        assert!(i.due(at("2026-12-04T10:10:00Z")).is_empty());
        assert_eq!(
            i.due(at("2026-12-04T10:31:00Z")),
            [1, 2],
            "a late watcher sends both"
        );
        i.resolved = Some(Resolution {
            at: at("2026-12-04T10:12:00Z"),
            by: "bob".into(),
            reason: "fixed".into(),
        });
        assert!(i.due(at("2026-12-04T10:31:00Z")).is_empty());
        assert_eq!(i.next_due_in(at("2026-12-04T10:31:00Z")), None);
    }
}
