//! Announcements of planned deploys (`fluo-deploy announce`) and the notice rule: a deploy is
//! covered by an announcement of its environment, not cancelled, whose window contains the
//! deploy time, that names every component deployed (or none, meaning all) and that was made
//! at least the notice period before.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use super::store::{Error, Result};

pub const KIND: &str = "announcement";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub id: String,
    pub environment: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Components announced; empty means all.
    pub components: Vec<String>,
    pub ticket: Option<String>,
    pub reason: String,
    pub who: String,
    pub created_at: DateTime<Utc>,
    pub cancelled: Option<Cancellation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: Option<String>,
}

impl Announcement {
    fn names_all(&self, components: &[String]) -> bool {
        self.components.is_empty() || components.iter().all(|c| self.components.contains(c))
    }

    /// When deploys under this announcement may start: the window's start, or the end of the
    /// notice period if that comes later.
    pub fn usable_from(&self, notice: chrono::Duration) -> DateTime<Utc> {
        self.window_start.max(self.created_at + notice)
    }
}

/// Why the notice rule refuses a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    /// The earliest time a deploy of these components could start.
    pub earliest: DateTime<Utc>,
    /// What the operator should know (which announcement is too recent, or none exists).
    pub detail: String,
}

/// The announcement that covers deploying `components` in `environment` at `now`, or why none
/// does and when the earliest possible deploy is.
pub fn covering<'a>(
    announcements: &'a [Announcement],
    environment: &str,
    components: &[String],
    now: DateTime<Utc>,
    notice: chrono::Duration,
) -> std::result::Result<&'a Announcement, Uncovered> {
    let candidates: Vec<&Announcement> = announcements
        .iter()
        .filter(|a| a.environment == environment && a.cancelled.is_none())
        .filter(|a| a.names_all(components) && now < a.window_end)
        .collect();
    if let Some(a) = candidates.iter().find(|a| a.usable_from(notice) <= now) {
        return Ok(a);
    }
    let later = candidates
        .iter()
        .filter(|a| a.usable_from(notice) < a.window_end)
        .min_by_key(|a| a.usable_from(notice));
    Err(match later {
        Some(a) => Uncovered {
            earliest: a.usable_from(notice),
            detail: format!(
                "announcement {} (made {}, window {} - {}) becomes usable at {}",
                a.id,
                stamp(a.created_at),
                stamp(a.window_start),
                stamp(a.window_end),
                stamp(a.usable_from(notice))
            ),
        },
        None => Uncovered {
            earliest: now + notice,
            detail: format!(
                "no announcement covers {} now; announce first (fluo-deploy --env {environment} announce ...)",
                if components.is_empty() {
                    "this deploy".to_string()
                } else {
                    components.join(", ")
                }
            ),
        },
    })
}

pub fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn announcement(
        id: &str,
        created: &str,
        start: &str,
        end: &str,
        components: &[&str],
    ) -> Announcement {
        Announcement {
            id: id.into(),
            environment: "production".into(),
            window_start: at(start),
            window_end: at(end),
            components: components.iter().map(|c| c.to_string()).collect(),
            ticket: Some("CHG-1".into()),
            reason: "release 1.2".into(),
            who: "alice".into(),
            created_at: at(created),
            cancelled: None,
        }
    }

    const H48: chrono::Duration = chrono::Duration::hours(48);

    fn bff() -> Vec<String> {
        vec!["bff".into()]
    }

    #[test]
    fn without_an_announcement_the_earliest_time_is_now_plus_notice() {
        let now = at("2026-12-01T10:00:00Z");
        let err = covering(&[], "production", &bff(), now, H48).unwrap_err();
        assert_eq!(err.earliest, at("2026-12-03T10:00:00Z"));
        assert!(
            err.detail.contains("no announcement covers bff"),
            "{}",
            err.detail
        );
    }

    #[test]
    fn too_recent_names_when_it_becomes_usable() {
        let a = announcement(
            "a1",
            "2026-12-01T09:00:00Z",
            "2026-12-01T09:00:00Z",
            "2026-12-05T00:00:00Z",
            &[],
        );
        let now = at("2026-12-02T10:00:00Z");
        let err = covering(std::slice::from_ref(&a), "production", &bff(), now, H48).unwrap_err();
        assert_eq!(err.earliest, at("2026-12-03T09:00:00Z"));
        assert!(err.detail.contains("a1"), "{}", err.detail);
        // One second after the notice period it covers the deploy.
        let later = at("2026-12-03T09:00:01Z");
        assert_eq!(
            covering(std::slice::from_ref(&a), "production", &bff(), later, H48)
                .unwrap()
                .id,
            "a1"
        );
    }

    #[test]
    fn window_components_environment_and_cancellation_all_count() {
        let now = at("2026-12-04T10:00:00Z");
        let old = "2026-11-30T00:00:00Z";
        let ok = announcement(
            "ok",
            old,
            "2026-12-04T09:00:00Z",
            "2026-12-04T12:00:00Z",
            &["bff", "workers"],
        );
        assert!(covering(std::slice::from_ref(&ok), "production", &bff(), now, H48).is_ok());
        let outside = announcement(
            "w",
            old,
            "2026-12-04T11:00:00Z",
            "2026-12-04T12:00:00Z",
            &[],
        );
        let err = covering(
            std::slice::from_ref(&outside),
            "production",
            &bff(),
            now,
            H48,
        )
        .unwrap_err();
        assert_eq!(
            err.earliest,
            at("2026-12-04T11:00:00Z"),
            "waits for the window"
        );
        let other = announcement(
            "c",
            old,
            "2026-12-04T09:00:00Z",
            "2026-12-04T12:00:00Z",
            &["nats"],
        );
        assert!(covering(&[other], "production", &bff(), now, H48).is_err());
        let mut cancelled = ok.clone();
        cancelled.cancelled = Some(Cancellation {
            at: now,
            by: "bob".into(),
            reason: None,
        });
        assert!(covering(&[cancelled], "production", &bff(), now, H48).is_err());
        assert!(covering(&[ok], "staging", &bff(), now, H48).is_err());
        let ended = announcement(
            "e",
            old,
            "2026-12-03T09:00:00Z",
            "2026-12-04T10:00:00Z",
            &[],
        );
        assert!(
            covering(&[ended], "production", &bff(), now, H48).is_err(),
            "end is exclusive"
        );
    }
}
