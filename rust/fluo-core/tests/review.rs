//! The weekly review over a generated history of 500 records: every figure is computed here
//! independently, while the history is generated (the generator knows which change failed and
//! what restored it), and compared with `review::review`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use fluo_core::ops::review::{Figures, review};
use fluo_core::release::{Action, Outcome, Release};

/// A small deterministic generator (no dependency, reproducible).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[derive(Default)]
struct Expected {
    deploys: usize,
    succeeded: usize,
    failed: usize,
    auto: usize,
    manual: usize,
    emergency: usize,
    change_failures: usize,
    restores: Vec<f64>,
    leads: Vec<f64>,
}

fn record(component: &str, revision: u32, at: DateTime<Utc>, action: Action) -> Release {
    Release {
        component: component.into(),
        revision,
        action,
        environment: "production".into(),
        namespace: "fluo".into(),
        manifests: vec![],
        images: BTreeMap::new(),
        commit: String::new(),
        dirty: false,
        started_at: at,
        user: "gen".into(),
        reason: None,
        deploy_id: format!("d-{revision}"),
        outcome: Outcome::Succeeded,
        message: None,
        duration_ms: 0,
        change_ticket: None,
        approved_by: None,
        forced_unlock: None,
        skipped_checks: vec![],
        prev_digest: None,
        overrides: vec![],
        emergency: false,
        drill: false,
        steps: vec![],
        unresolved_digests: vec![],
    }
}

type History = (
    Vec<Release>,
    BTreeMap<String, DateTime<Utc>>,
    BTreeMap<String, Expected>,
);

/// 100 records per component, one every 1-3 h, ending before `now`.
fn generate(now: DateTime<Utc>, since: DateTime<Utc>) -> History {
    let mut rng = Lcg(42);
    let mut records = Vec::new();
    let mut commits = BTreeMap::new();
    let mut expected: BTreeMap<String, Expected> = BTreeMap::new();
    for component in ["nats", "prometheus", "grafana", "bff", "workers"] {
        let e = expected.entry(component.to_string()).or_default();
        let mut t = now - Duration::hours(260);
        let mut revision = 0u32;
        // The latest succeeded deploy: (start, in period, already undone).
        let mut last_ok: Option<(DateTime<Utc>, bool, bool)> = None;
        let mut made = 0;
        while made < 100 {
            t += Duration::minutes(60 + rng.next(120) as i64);
            let in_period = t >= since;
            let roll = rng.next(100);
            revision += 1;
            if roll < 65 || made == 99 {
                // A succeeded deploy, some of them emergencies, most with a known commit.
                let mut r = record(component, revision, t, Action::Deploy);
                r.duration_ms = 1000 * (10 + rng.next(300));
                let sha = format!("{component}{revision:04}");
                r.commit = if revision.is_multiple_of(2) {
                    format!("{sha}-dirty")
                } else {
                    sha.clone()
                };
                let known = rng.next(7) != 0;
                let lead_minutes = 5 + rng.next(2000) as i64;
                if known {
                    commits.insert(sha, t - Duration::minutes(lead_minutes));
                }
                let emergency = rng.next(10) == 0;
                // The signed flag, or (records from before it) the reason's prefix.
                if emergency && rng.next(2) == 0 {
                    r.emergency = true;
                } else if emergency {
                    r.reason = Some("EMERGENCY: hotfix".into());
                }
                if in_period {
                    e.deploys += 1;
                    e.succeeded += 1;
                    e.emergency += usize::from(emergency);
                    if known {
                        e.leads
                            .push((lead_minutes * 60) as f64 + (r.duration_ms / 1000) as f64);
                    }
                }
                last_ok = Some((t, in_period, false));
                records.push(r);
                made += 1;
            } else if roll < 85 && made < 98 {
                // A failed deploy and its automatic rollback (which restores it).
                let mut r = record(component, revision, t, Action::Deploy);
                r.outcome = Outcome::Failed;
                r.duration_ms = 1000 * (30 + rng.next(100));
                let failed_at = t;
                t += Duration::milliseconds(r.duration_ms as i64);
                records.push(r);
                revision += 1;
                let to = revision - 2;
                let mut rb = record(
                    component,
                    revision,
                    t,
                    Action::Rollback {
                        to,
                        automatic: true,
                    },
                );
                rb.duration_ms = 1000 * (5 + rng.next(60));
                if in_period {
                    e.deploys += 1;
                    e.failed += 1;
                    e.change_failures += 1;
                    let restore = (t - failed_at).num_seconds() + (rb.duration_ms / 1000) as i64;
                    e.restores.push(restore as f64);
                }
                if t >= since {
                    e.auto += 1;
                }
                records.push(rb);
                made += 2;
            } else if made < 99 {
                // A manual rollback: undoes the latest succeeded deploy (once).
                let to = revision.saturating_sub(2);
                let mut rb = record(
                    component,
                    revision,
                    t,
                    Action::Rollback {
                        to,
                        automatic: false,
                    },
                );
                rb.duration_ms = 1000 * (5 + rng.next(60));
                if in_period {
                    e.manual += 1;
                }
                if let Some((deployed_at, deploy_in_period, undone)) = last_ok.as_mut() {
                    if !*undone && *deploy_in_period {
                        e.change_failures += 1;
                        let restore =
                            (t - *deployed_at).num_seconds() + (rb.duration_ms / 1000) as i64;
                        e.restores.push(restore as f64);
                    }
                    *undone = true;
                }
                records.push(rb);
                made += 1;
            } else {
                revision -= 1;
            }
        }
        assert!(t < now, "generated history runs past now");
    }
    (records, commits, expected)
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{what}: {a} != {b}"),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        None
    } else {
        Some(v.iter().sum::<f64>() / v.len() as f64)
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    match v.len() {
        0 => None,
        n if !n.is_multiple_of(2) => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn check(got: &Figures, e: &Expected, what: &str) {
    assert_eq!(got.deploys, e.deploys, "{what} deploys");
    assert_eq!(got.succeeded_deploys, e.succeeded, "{what} succeeded");
    assert_eq!(got.failed_deploys, e.failed, "{what} failed");
    assert_eq!(
        got.automatic_rollbacks, e.auto,
        "{what} automatic rollbacks"
    );
    assert_eq!(got.manual_rollbacks, e.manual, "{what} manual rollbacks");
    assert_eq!(got.emergency_deploys, e.emergency, "{what} emergency");
    assert_eq!(
        got.change_failures, e.change_failures,
        "{what} change failures"
    );
    close(
        got.change_failure_rate,
        (e.deploys > 0).then(|| e.change_failures as f64 / e.deploys as f64),
        &format!("{what} change failure rate"),
    );
    close(
        Some(got.deployment_frequency_per_day),
        Some(e.succeeded as f64 / 7.0),
        &format!("{what} frequency"),
    );
    assert_eq!(got.restores, e.restores.len(), "{what} restores");
    close(
        got.mean_time_to_restore_s,
        mean(&e.restores),
        &format!("{what} time to restore"),
    );
    assert_eq!(got.lead_time_samples, e.leads.len(), "{what} lead samples");
    close(
        got.mean_lead_time_s,
        mean(&e.leads),
        &format!("{what} mean lead"),
    );
    close(
        got.median_lead_time_s,
        median(&e.leads),
        &format!("{what} median lead"),
    );
}

#[test]
fn review_of_500_generated_records_matches_independently_computed_figures() {
    let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
    let since = now - Duration::days(7);
    let (records, commits, expected) = generate(now, since);
    assert_eq!(records.len(), 500);
    let lookup = |sha: &str| commits.get(sha).copied();
    let r = review(&records, since, now, &lookup);
    let mut all = Expected::default();
    for (component, e) in &expected {
        check(&r.components[component], e, component);
        all.deploys += e.deploys;
        all.succeeded += e.succeeded;
        all.failed += e.failed;
        all.auto += e.auto;
        all.manual += e.manual;
        all.emergency += e.emergency;
        all.change_failures += e.change_failures;
        all.restores.extend(&e.restores);
        all.leads.extend(&e.leads);
    }
    check(&r.overall, &all, "overall");
    // The history exercises every figure, and part of it lies before the period.
    assert!(
        all.failed > 5 && all.manual > 5 && all.emergency > 0,
        "weak history"
    );
    assert!(all.deploys < 400, "every record fell in the period");
    let md = fluo_core::ops::review::markdown(&r);
    assert!(md.contains("| overall | "), "{md}");
    assert!(md.contains("| workers | "), "{md}");
}
