//! Rollback drills (`fluo-deploy drill`): one record per drill, with its figures, and whether
//! the last successful one is older than the environment's period.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::store::{Error, Result};

pub const KIND: &str = "drill";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    pub id: String,
    pub environment: String,
    pub started_at: DateTime<Utc>,
    /// Who ran it.
    pub by: String,
    pub succeeded: bool,
    /// The stage that failed (`deploy`, `verify`, `rollback`, `verify after rollback`).
    pub failed_stage: Option<String>,
    pub message: Option<String>,
    /// Time to roll back: the `rollback-to-previous` run, lock to lock (None: not reached).
    pub rollback_ms: Option<u64>,
    /// The whole drill, first apply to the last check.
    pub total_ms: u64,
    pub components: Vec<String>,
    /// The drill release's run and the rollback's run (see `history`).
    pub drill_deploy_id: Option<String>,
    pub rollback_deploy_id: Option<String>,
}

/// The newest successful drill among `drills`.
pub fn last_success(drills: &[Drill]) -> Option<&Drill> {
    drills
        .iter()
        .filter(|d| d.succeeded)
        .max_by_key(|d| d.started_at)
}

/// Why the drill is overdue at `now` (no successful drill, or the last one older than
/// `period`); None when it is not.
pub fn overdue(drills: &[Drill], period: Duration, now: DateTime<Utc>) -> Option<String> {
    let period_text = match period.as_secs() % 86_400 {
        0 => format!("{}d", period.as_secs() / 86_400),
        _ => humantime::format_duration(period).to_string(),
    };
    let Some(last) = last_success(drills) else {
        return Some(format!(
            "no successful rollback drill recorded (period {period_text}); run `fluo-deploy drill`"
        ));
    };
    let age = (now - last.started_at).to_std().unwrap_or(Duration::ZERO);
    (age > period).then(|| {
        format!(
            "last successful rollback drill {} ({} days ago) is older than the period {period_text}; run `fluo-deploy drill`",
            last.started_at.format("%Y-%m-%d %H:%M:%SZ"),
            age.as_secs() / 86_400
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(at: &str, succeeded: bool) -> Drill {
        Drill {
            id: at.into(),
            environment: "local".into(),
            started_at: at.parse().unwrap(),
            by: "alice".into(),
            succeeded,
            failed_stage: None,
            message: None,
            rollback_ms: Some(10),
            total_ms: 20,
            components: vec!["nats".into()],
            drill_deploy_id: None,
            rollback_deploy_id: None,
        }
    }

    #[test]
    fn a_drill_ages_past_its_period_and_failures_do_not_count() {
        let day = Duration::from_secs(86_400);
        let now: DateTime<Utc> = "2026-12-04T10:00:00Z".parse().unwrap();
        assert!(
            overdue(&[], 31 * day, now)
                .unwrap()
                .contains("no successful")
        );
        let drills = [
            drill("2026-11-01T10:00:00Z", true),
            drill("2026-12-01T10:00:00Z", false),
        ];
        assert_eq!(overdue(&drills, 33 * day, now), None);
        let late = overdue(&drills, 31 * day, now).expect("33 days > 31 days");
        assert!(
            late.contains("2026-11-01 10:00:00Z (33 days ago)"),
            "{late}"
        );
    }
}
