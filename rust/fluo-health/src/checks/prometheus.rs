//! Prometheus: ready, every active scrape target up (and every expected job present), and the
//! FLUO metrics present in the TSDB.

use std::time::{Duration, Instant};

use crate::check::ProbeResult;
use crate::endpoint::Endpoint;
use crate::promapi;

/// How often a Prometheus that has not yet found or scraped every expected target is asked again.
const ASK_AGAIN_EVERY: Duration = Duration::from_secs(1);

/// What a healthy FLUO Prometheus has.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// Scrape jobs that must have at least one target (e.g. the BFF's).
    pub jobs: Vec<String>,
    /// Metric name prefixes that must have at least one series (e.g. `fluo_bff_`).
    pub metric_prefixes: Vec<String>,
}

pub async fn probe(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    expect: &Expectations,
) -> ProbeResult {
    promapi::ready(http, endpoint).await?;
    let targets = promapi::targets(http, endpoint).await?;
    let summary = judge_targets(&targets.active, &expect.jobs)?;
    for prefix in &expect.metric_prefixes {
        let query = format!("count({{__name__=~\"{prefix}.+\"}})");
        match promapi::query_value(http, endpoint, &query).await? {
            Some(n) if n > 0.0 => {}
            _ => return Err(format!("no {prefix}* series in Prometheus ({summary})")),
        }
    }
    Ok(format!(
        "ready, {summary}, metrics present: {} ({})",
        expect
            .metric_prefixes
            .iter()
            .map(|p| format!("{p}*"))
            .collect::<Vec<_>>()
            .join(", "),
        endpoint.via()
    ))
}

/// [`probe`], asked again until it passes or `patience` is over (then its last answer): right
/// after a deploy, Prometheus finds new pods only at its next DNS refresh and has their metrics
/// only after the next scrape, which a check run at once would report as a failure.
pub async fn probe_patiently(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    expect: &Expectations,
    patience: Duration,
) -> ProbeResult {
    let deadline = Instant::now() + patience;
    loop {
        let answer = probe(http, endpoint, expect).await;
        if answer.is_ok() || Instant::now() + ASK_AGAIN_EVERY >= deadline {
            return answer;
        }
        tokio::time::sleep(ASK_AGAIN_EVERY).await;
    }
}

/// All active targets up, at least one, and every expected job among them.
pub fn judge_targets(targets: &[promapi::Target], jobs: &[String]) -> Result<String, String> {
    if targets.is_empty() {
        return Err("Prometheus has no active scrape targets".to_owned());
    }
    if let Some(missing) = jobs.iter().find(|j| !targets.iter().any(|t| t.job() == *j)) {
        return Err(format!("no scrape target for job {missing}"));
    }
    let not_up: Vec<String> = targets
        .iter()
        .filter(|t| t.health != "up")
        .map(|t| {
            let why = if t.last_error.is_empty() {
                "not scraped yet".to_owned()
            } else {
                t.last_error.clone()
            };
            format!("{} {} is {} ({why})", t.job(), t.scrape_url, t.health)
        })
        .collect();
    if !not_up.is_empty() {
        return Err(format!("target(s) not up: {}", not_up.join("; ")));
    }
    Ok(format!("{} target(s) up", targets.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(job: &str, health: &str, err: &str) -> promapi::Target {
        serde_json::from_value(serde_json::json!({
            "labels": {"job": job}, "scrapeUrl": format!("http://{job}/metrics"),
            "health": health, "lastError": err
        }))
        .unwrap()
    }

    #[test]
    fn all_up_passes() {
        let t = [target("fluo-bff", "up", ""), target("nats", "up", "")];
        assert_eq!(
            judge_targets(&t, &["fluo-bff".into()]),
            Ok("2 target(s) up".into())
        );
    }

    #[test]
    fn a_down_target_fails_with_its_error() {
        let t = [
            target("fluo-bff", "down", "connection refused"),
            target("nats", "up", ""),
        ];
        assert_eq!(
            judge_targets(&t, &[]),
            Err(
                "target(s) not up: fluo-bff http://fluo-bff/metrics is down (connection refused)"
                    .into()
            )
        );
    }

    #[test]
    fn missing_expected_job_or_no_targets_fails() {
        assert_eq!(
            judge_targets(&[target("nats", "up", "")], &["fluo-bff".into()]),
            Err("no scrape target for job fluo-bff".into())
        );
        assert!(judge_targets(&[], &[]).is_err());
    }
}
