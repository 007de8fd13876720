//! Prometheus: ready, every active scrape target up (and every expected job present), and the
//! FLUO metrics present in the TSDB.
//!
//! A target whose address is no live pod's (the pod is terminating or gone) is stale, not a
//! failure: the headless Services publish not-ready addresses, so Prometheus keeps scraping a
//! replaced pod until its next DNS refresh, and a check right after a rollout would see it down.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::access::Cluster;
use crate::check::ProbeResult;
use crate::endpoint::Endpoint;
use crate::promapi;

/// How often a Prometheus that has not yet found or scraped every expected target is asked again:
/// the check passes within this of the scrape it waits for (each ask is a few small reads:
/// Prometheus' ready, targets and counts, the namespace's pod list).
const ASK_AGAIN_EVERY: Duration = Duration::from_millis(250);

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
    cluster: Option<&Cluster>,
) -> ProbeResult {
    promapi::ready(http, endpoint).await?;
    let targets = promapi::targets(http, endpoint).await?;
    let live = match cluster {
        Some(cluster) => Some(live_pod_ips(cluster).await?),
        None => None,
    };
    let summary = judge_targets(&targets.active, &expect.jobs, live.as_ref())?;
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
    cluster: Option<&Cluster>,
    patience: Duration,
) -> ProbeResult {
    let deadline = Instant::now() + patience;
    loop {
        let answer = probe(http, endpoint, expect, cluster).await;
        if answer.is_ok() || Instant::now() + ASK_AGAIN_EVERY >= deadline {
            return answer;
        }
        tokio::time::sleep(ASK_AGAIN_EVERY).await;
    }
}

/// The IPs of the namespace's pods that are not terminating.
async fn live_pod_ips(cluster: &Cluster) -> Result<BTreeSet<String>, String> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing pods in {}: {e}", cluster.namespace))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.status?.pod_ip)
        .collect())
}

/// A target that is not up and whose address is an IP no live pod has (`live`: the live pods'
/// IPs, when the cluster could be asked). Named targets are never stale.
fn is_stale(target: &promapi::Target, live: Option<&BTreeSet<String>>) -> bool {
    let Some(live) = live else { return false };
    let host = reqwest::Url::parse(&target.scrape_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    target.health != "up"
        && host.is_some_and(|h| h.parse::<std::net::IpAddr>().is_ok() && !live.contains(&h))
}

/// All current targets up, at least one, and every expected job among them; stale targets (see
/// [`is_stale`]) are left out and counted in the summary.
pub fn judge_targets(
    targets: &[promapi::Target],
    jobs: &[String],
    live: Option<&BTreeSet<String>>,
) -> Result<String, String> {
    let (stale, current): (Vec<&promapi::Target>, Vec<&promapi::Target>) =
        targets.iter().partition(|t| is_stale(t, live));
    if current.is_empty() {
        return Err("Prometheus has no active scrape targets".to_owned());
    }
    if let Some(missing) = jobs.iter().find(|j| !current.iter().any(|t| t.job() == *j)) {
        return Err(format!("no scrape target for job {missing}"));
    }
    let not_up: Vec<String> = current
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
    let stale_note = match stale.len() {
        0 => String::new(),
        n => format!(" ({n} stale target(s) of pods no longer live left out)"),
    };
    Ok(format!("{} target(s) up{stale_note}", current.len()))
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
            judge_targets(&t, &["fluo-bff".into()], None),
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
            judge_targets(&t, &[], None),
            Err(
                "target(s) not up: fluo-bff http://fluo-bff/metrics is down (connection refused)"
                    .into()
            )
        );
    }

    #[test]
    fn missing_expected_job_or_no_targets_fails() {
        assert_eq!(
            judge_targets(&[target("nats", "up", "")], &["fluo-bff".into()], None),
            Err("no scrape target for job fluo-bff".into())
        );
        assert!(judge_targets(&[], &[], None).is_err());
    }

    fn pod_target(job: &str, ip: &str, health: &str) -> promapi::Target {
        serde_json::from_value(serde_json::json!({
            "labels": {"job": job}, "scrapeUrl": format!("http://{ip}:9091/metrics"),
            "health": health, "lastError": "i/o timeout"
        }))
        .unwrap()
    }

    #[test]
    fn a_down_target_of_a_pod_no_longer_live_is_left_out() {
        let live: BTreeSet<String> = ["10.0.0.2".to_owned()].into();
        let t = [
            pod_target("fluo-bff", "10.0.0.1", "down"),
            pod_target("fluo-bff", "10.0.0.2", "up"),
        ];
        assert_eq!(
            judge_targets(&t, &["fluo-bff".into()], Some(&live)),
            Ok("1 target(s) up (1 stale target(s) of pods no longer live left out)".into())
        );
        // Without the cluster's view, or when the pod is live, the down target fails.
        assert!(judge_targets(&t, &[], None).is_err());
        let both: BTreeSet<String> = ["10.0.0.1".to_owned(), "10.0.0.2".to_owned()].into();
        let err = judge_targets(&t, &[], Some(&both)).unwrap_err();
        assert!(err.contains("10.0.0.1:9091"), "{err}");
    }

    #[test]
    fn a_job_whose_only_target_is_stale_has_no_target() {
        let live = BTreeSet::new();
        let t = [
            pod_target("fluo-bff", "10.0.0.1", "down"),
            target("nats", "up", ""),
        ];
        assert_eq!(
            judge_targets(&t, &["fluo-bff".into()], Some(&live)),
            Err("no scrape target for job fluo-bff".into())
        );
    }
}
