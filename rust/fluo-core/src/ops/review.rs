//! `report`: the weekly deployment review (SOP-002) from the release records: deploys,
//! failures, automatic and manual rollbacks, emergency deploys, change failure rate, time to
//! restore, deployment frequency and lead time, per component and overall.
//!
//! Definitions (also in docs/operations.md):
//! - a record is in the period when it started in `[now - since, now]`; records still in
//!   progress are left out;
//! - deploys: `deploy` records (attempts, succeeded or failed); emergency deploys: those with
//!   the signed `emergency` flag of `deploy --emergency` (records written before the flag:
//!   whose reason starts with `EMERGENCY:`);
//! - a change failure is a failed deploy, or a succeeded deploy that a later manual rollback of
//!   its component undid (the latest succeeded deploy before that rollback);
//!   change failure rate = change failures / deploys;
//! - time to restore: from the start of a change failure to the end of the rollback that
//!   restored it (for a failed deploy the first succeeded rollback of its component after it,
//!   for an undone deploy the manual rollback that undid it);
//! - deployment frequency: succeeded deploys per day of the period;
//! - lead time: commit time (from git, where the commit is known to the checkout) to the end of
//!   a succeeded deploy. Records carry no commit time, so it is looked up by SHA.
//!
//! `figures` is pure; `report` reads the records and git.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::release::{Action, Outcome, Release};

/// Prefix of the reason of emergency deploy records written before the `emergency` flag.
pub const EMERGENCY_PREFIX: &str = "EMERGENCY:";

/// The figures of one component (or of all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub deploys: usize,
    pub succeeded_deploys: usize,
    pub failed_deploys: usize,
    pub automatic_rollbacks: usize,
    pub manual_rollbacks: usize,
    pub emergency_deploys: usize,
    pub change_failures: usize,
    /// change failures / deploys; None without deploys.
    pub change_failure_rate: Option<f64>,
    /// Succeeded deploys per day.
    pub deployment_frequency_per_day: f64,
    /// Restores found (a change failure without a later successful rollback is not restored).
    pub restores: usize,
    pub mean_time_to_restore_s: Option<f64>,
    /// Succeeded deploys whose commit time is known.
    pub lead_time_samples: usize,
    pub median_lead_time_s: Option<f64>,
    pub mean_lead_time_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub overall: Figures,
    pub components: BTreeMap<String, Figures>,
    /// Where lead time came from and what it could not cover.
    pub notes: Vec<String>,
}

fn end_of(r: &Release) -> DateTime<Utc> {
    r.started_at + Duration::milliseconds(r.duration_ms as i64)
}

/// The record's flag; records written before the flag existed say so in the reason.
fn is_emergency(r: &Release) -> bool {
    r.emergency
        || r.reason
            .as_deref()
            .is_some_and(|s| s.starts_with(EMERGENCY_PREFIX))
}

/// The figures over `records` (any order, any components) in `[since, until]`;
/// `commit_time` gives a commit's time where known.
pub fn figures(
    records: &[Release],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    commit_time: &dyn Fn(&str) -> Option<DateTime<Utc>>,
) -> Figures {
    let mut by_component: BTreeMap<&str, Vec<&Release>> = BTreeMap::new();
    for r in records {
        by_component.entry(&r.component).or_default().push(r);
    }
    let mut f = Figures::default();
    let mut restore_s = Vec::new();
    let mut lead_s = Vec::new();
    for list in by_component.values_mut() {
        list.sort_by_key(|r| (r.started_at, r.revision));
        // Change failures as (index into `list`, index of the rollback that restored it).
        let mut failures: Vec<(usize, Option<usize>)> = Vec::new();
        for (i, r) in list.iter().enumerate() {
            if r.outcome == Outcome::InProgress {
                continue;
            }
            let in_period = r.started_at >= since && r.started_at <= until;
            match &r.action {
                Action::Deploy => {
                    if !in_period {
                        continue;
                    }
                    f.deploys += 1;
                    f.emergency_deploys += usize::from(is_emergency(r));
                    if r.outcome == Outcome::Failed {
                        f.failed_deploys += 1;
                        let restore = list[i + 1..].iter().position(|r| {
                            matches!(r.action, Action::Rollback { .. })
                                && r.outcome == Outcome::Succeeded
                        });
                        failures.push((i, restore.map(|p| i + 1 + p)));
                    } else {
                        f.succeeded_deploys += 1;
                        let sha = r.commit.trim_end_matches("-dirty");
                        if let Some(t) = commit_time(sha) {
                            lead_s.push((end_of(r) - t).num_milliseconds() as f64 / 1000.0);
                        }
                    }
                }
                Action::Rollback { automatic, .. } => {
                    if in_period {
                        if *automatic {
                            f.automatic_rollbacks += 1;
                        } else {
                            f.manual_rollbacks += 1;
                        }
                    }
                    // A manual rollback undoes the latest succeeded deploy before it.
                    if !*automatic && r.outcome == Outcome::Succeeded {
                        let undone = list[..i].iter().rposition(|p| {
                            p.action == Action::Deploy && p.outcome == Outcome::Succeeded
                        });
                        if let Some(u) = undone {
                            let u_in = list[u].started_at >= since && list[u].started_at <= until;
                            if u_in && !failures.iter().any(|(f, _)| *f == u) {
                                failures.push((u, Some(i)));
                            }
                        }
                    }
                }
                // Teardown, restore and rotation records change no revision's outcome and are
                // not deploys.
                Action::Delete
                | Action::Purge { .. }
                | Action::Shutdown
                | Action::Restore { .. }
                | Action::Rotate { .. } => {}
            }
        }
        f.change_failures += failures.len();
        for &(i, restore) in &failures {
            if let Some(r) = restore {
                let seconds = (end_of(list[r]) - list[i].started_at).num_milliseconds();
                restore_s.push(seconds as f64 / 1000.0);
            }
        }
    }
    let days = ((until - since).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
    f.change_failure_rate = (f.deploys > 0).then(|| f.change_failures as f64 / f.deploys as f64);
    f.deployment_frequency_per_day = f.succeeded_deploys as f64 / days;
    f.restores = restore_s.len();
    f.mean_time_to_restore_s = mean(&restore_s);
    f.lead_time_samples = lead_s.len();
    f.mean_lead_time_s = mean(&lead_s);
    f.median_lead_time_s = median(&mut lead_s);
    f
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if !n.is_multiple_of(2) {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Overall and per-component figures.
pub fn review(
    records: &[Release],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    commit_time: &dyn Fn(&str) -> Option<DateTime<Utc>>,
) -> Review {
    let mut components: BTreeMap<String, Vec<Release>> = BTreeMap::new();
    for r in records {
        components
            .entry(r.component.clone())
            .or_default()
            .push(r.clone());
    }
    let overall = figures(records, since, until, commit_time);
    let mut notes = vec![
        "lead time: commit time read from git by the record's commit SHA (records carry no commit \
         time); deploys of commits unknown to this checkout are not counted"
            .to_string(),
    ];
    if overall.succeeded_deploys > overall.lead_time_samples {
        notes.push(format!(
            "lead time covers {} of {} succeeded deploys",
            overall.lead_time_samples, overall.succeeded_deploys
        ));
    }
    Review {
        since,
        until,
        overall,
        components: components
            .into_iter()
            .map(|(c, list)| {
                let f = figures(&list, since, until, commit_time);
                (c, f)
            })
            .collect(),
        notes,
    }
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}{unit}"))
}

/// Markdown for the review meeting.
pub fn markdown(r: &Review) -> String {
    let mut out = format!(
        "# Deployment review {} .. {}\n\n| scope | deploys | failed | auto rollbacks | manual rollbacks | emergency | change failure rate | deploys/day | mean time to restore | median lead time |\n|---|---|---|---|---|---|---|---|---|---|\n",
        r.since.format("%Y-%m-%d %H:%M"),
        r.until.format("%Y-%m-%d %H:%M")
    );
    let rows = std::iter::once(("overall", &r.overall))
        .chain(r.components.iter().map(|(c, f)| (c.as_str(), f)));
    for (scope, f) in rows {
        out.push_str(&format!(
            "| {scope} | {} | {} | {} | {} | {} | {} | {:.2} | {} | {} |\n",
            f.deploys,
            f.failed_deploys,
            f.automatic_rollbacks,
            f.manual_rollbacks,
            f.emergency_deploys,
            f.change_failure_rate
                .map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
            f.deployment_frequency_per_day,
            opt(f.mean_time_to_restore_s, "s"),
            opt(f.median_lead_time_s, "s"),
        ));
    }
    for n in &r.notes {
        out.push_str(&format!("\n- {n}"));
    }
    out.push('\n');
    out
}

/// A commit's committer time from the git checkout at `dir` (None when git or the commit is
/// not there, e.g. a commit made elsewhere).
pub fn git_commit_time(dir: &std::path::Path, sha: &str) -> Option<DateTime<Utc>> {
    if sha.is_empty() || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let out = std::process::Command::new("git")
        .args(["show", "-s", "--format=%cI", sha])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let text = String::from_utf8_lossy(&out.stdout);
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The review of the release records in the cluster over `[now - since, now]`.
pub async fn report(
    ctx: &crate::ops::Ctx,
    since: std::time::Duration,
) -> crate::ops::Result<Review> {
    let now = Utc::now();
    let records: Vec<Release> = ctx
        .history
        .list(None)
        .await?
        .into_iter()
        .map(|s| s.release)
        .collect();
    let since = now
        - Duration::from_std(since)
            .map_err(|e| crate::ops::Error::Refused(format!("--since {since:?}: {e}")))?;
    let dir = ctx.config.infra_dir.clone();
    let mut cache: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
    for r in &records {
        let sha = r.commit.trim_end_matches("-dirty").to_string();
        cache
            .entry(sha)
            .or_insert_with_key(|sha| git_commit_time(&dir, sha));
    }
    let lookup = |sha: &str| cache.get(sha).copied().flatten();
    Ok(review(&records, since, now, &lookup))
}
