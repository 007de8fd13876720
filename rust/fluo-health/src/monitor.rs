//! The post-deploy watch (SOP-002 "monitor error rates for 30 minutes"): every interval, ask
//! Prometheus for the BFF 5xx ratio, firing FLUO alerts and the job backlog, and the cluster
//! for container restarts since the watch began; stop at the first sample past a threshold of the
//! environment's `[monitoring]`.
//!
//! Callers:
//! - `fluo-deploy monitor` (and the deploy's post-deploy step) call [`run`] and roll back on
//!   [`Verdict::Breached`], or call [`run_with_rollback`] with their rollback as a closure, which
//!   is invoked exactly once, on the first breach, and its outcome recorded in the report.
//! - Each sample is passed to `progress` as it is taken (for live output).
//!
//! A metric that cannot be measured (no traffic, no exporter, no cluster) is `None` and never a
//! breach; Prometheus itself unreachable for [`MAX_BLIND_SAMPLES`] samples in a row ends the watch
//! with [`Verdict::Blind`], which callers must treat as a failure to verify, not as a breach.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use fluo_core::config::Monitoring;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde::Serialize;

use fluo_core::exit::Exit;

use crate::access::Cluster;
use crate::endpoint::Endpoint;
use crate::promapi;

/// Consecutive failed samples (Prometheus unreachable) before the watch gives up.
pub const MAX_BLIND_SAMPLES: u32 = 3;

/// The PromQL the watch evaluates. Defaults match the FLUO metrics and alert rules.
#[derive(Debug, Clone)]
pub struct Queries {
    /// Share of BFF responses that were 5xx (one sample, or none without traffic).
    pub error_ratio: String,
    /// Jobs waiting in the FLUO_JOBS stream (NATS exporter).
    pub backlog: String,
    /// Alerts whose name starts with this are FLUO's.
    pub alert_prefix: String,
}

impl Queries {
    /// The defaults, with rates over `window`.
    pub fn fluo(window: Duration) -> Self {
        let w = format!("{}s", window.as_secs().max(1));
        Self {
            error_ratio: format!(
                "sum(rate(fluo_bff_http_requests_total{{status=~\"5..\"}}[{w}])) / sum(rate(fluo_bff_http_requests_total[{w}]))"
            ),
            backlog: "max(jetstream_stream_total_messages{stream_name=\"FLUO_JOBS\"})".to_owned(),
            alert_prefix: "Fluo".to_owned(),
        }
    }
}

/// Duration, interval and thresholds of one watch.
#[derive(Debug, Clone)]
pub struct Config {
    pub duration: Duration,
    pub interval: Duration,
    pub max_error_ratio: f64,
    pub max_restarts: u32,
    pub max_backlog: u64,
    pub queries: Queries,
}

impl Config {
    /// From the environment's `[monitoring]`; rates are taken over 4 intervals (at least 1 m),
    /// so one slow scrape does not make the ratio jump.
    pub fn from_environment(monitoring: &Monitoring) -> Self {
        let window = (monitoring.interval * 4).max(Duration::from_secs(60));
        Self {
            duration: monitoring.duration,
            interval: monitoring.interval,
            max_error_ratio: monitoring.max_error_ratio,
            max_restarts: monitoring.max_restarts,
            max_backlog: monitoring.max_backlog,
            queries: Queries::fluo(window),
        }
    }
}

/// One look at the system.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    /// Milliseconds since the watch began.
    pub at_ms: u64,
    pub error_ratio: Option<f64>,
    pub firing_alerts: Vec<String>,
    /// Container restarts since the watch began (None without a cluster).
    pub restarts: Option<u32>,
    pub backlog: Option<f64>,
    /// Why the sample could not be taken (Prometheus unreachable), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The first threshold a sample crossed.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Breach {
    ErrorRatio { value: f64, max: f64 },
    FiringAlerts { alerts: Vec<String> },
    Restarts { value: u32, max: u32 },
    Backlog { value: f64, max: u64 },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::ErrorRatio { value, max } => write!(
                f,
                "BFF 5xx ratio {:.1}% is over the {:.1}% threshold",
                value * 100.0,
                max * 100.0
            ),
            Breach::FiringAlerts { alerts } => {
                write!(f, "FLUO alert(s) firing: {}", alerts.join(", "))
            }
            Breach::Restarts { value, max } => {
                write!(
                    f,
                    "{value} container restart(s) since the deploy, threshold {max}"
                )
            }
            Breach::Backlog { value, max } => {
                write!(f, "job backlog {value} is over the threshold {max}")
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// The whole duration passed without a breach.
    Healthy,
    Breached {
        breach: Breach,
    },
    /// Prometheus could not be queried; nothing can be said.
    Blind {
        reason: String,
    },
}

/// What the rollback did (when [`run_with_rollback`] ran one).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RollbackOutcome {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub samples: Vec<Sample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackOutcome>,
}

impl Report {
    /// Ok healthy; Failed when breached and rolled back (or no rollback was asked for) or
    /// blind; RollbackFailed when breached and the rollback failed.
    pub fn exit(&self) -> Exit {
        match (&self.verdict, &self.rollback) {
            (Verdict::Healthy, _) => Exit::Ok,
            (Verdict::Breached { .. }, Some(r)) if !r.ok => Exit::RollbackFailed,
            _ => Exit::Failed,
        }
    }

    /// The verdict, and what the rollback did, for people.
    pub fn text(&self) -> String {
        let verdict = match &self.verdict {
            Verdict::Healthy => format!("healthy: {} samples, no breach\n", self.samples.len()),
            Verdict::Breached { breach } => format!("BREACH: {breach}\n"),
            Verdict::Blind { reason } => format!("monitor blind (counts as failed): {reason}\n"),
        };
        match &self.rollback {
            Some(r) if r.ok => format!("{verdict}rolled back:\n{}", r.message),
            Some(r) => format!("{verdict}ROLLBACK FAILED (escalate):\n{}", r.message),
            None => verdict,
        }
    }
}

impl Config {
    /// What the watch evaluates and against which thresholds, printed once before the first
    /// sample (the queries as written, not URL-encoded).
    pub fn describe(&self) -> Vec<String> {
        let q = &self.queries;
        vec![
            format!(
                "watching for {}, one sample every {}; the first breach ends the watch:",
                humantime::format_duration(self.duration),
                humantime::format_duration(self.interval)
            ),
            format!(
                "  5xx ratio   > {:.1}%  {}",
                self.max_error_ratio * 100.0,
                q.error_ratio
            ),
            format!("  job backlog > {}  {}", self.max_backlog, q.backlog),
            format!(
                "  restarts    > {}  container restarts since the watch began",
                self.max_restarts
            ),
            format!("  alerts      firing alerts named {}*", q.alert_prefix),
        ]
    }
}

impl Sample {
    /// One compact line: `sample 3 at 60s: 5xx 0.10%, backlog 3, restarts 0, alerts none`.
    pub fn summary(&self, number: usize) -> String {
        let head = format!("sample {number} at {}s", self.at_ms / 1000);
        if let Some(error) = &self.error {
            return format!("{head}: not taken: {error}");
        }
        let ratio = self
            .error_ratio
            .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
        let backlog = self.backlog.map_or("-".to_string(), |b| b.to_string());
        let restarts = self.restarts.map_or("-".to_string(), |r| r.to_string());
        let alerts = if self.firing_alerts.is_empty() {
            "none".to_string()
        } else {
            self.firing_alerts.join(",")
        };
        format!("{head}: 5xx {ratio}, backlog {backlog}, restarts {restarts}, alerts {alerts}")
    }
}

/// The first threshold `sample` crosses, in order of severity.
pub fn judge(sample: &Sample, config: &Config) -> Option<Breach> {
    if let Some(value) = sample.error_ratio
        && value > config.max_error_ratio
    {
        return Some(Breach::ErrorRatio {
            value,
            max: config.max_error_ratio,
        });
    }
    if !sample.firing_alerts.is_empty() {
        return Some(Breach::FiringAlerts {
            alerts: sample.firing_alerts.clone(),
        });
    }
    if let Some(value) = sample.restarts
        && value > config.max_restarts
    {
        return Some(Breach::Restarts {
            value,
            max: config.max_restarts,
        });
    }
    match sample.backlog {
        Some(value) if value > config.max_backlog as f64 => Some(Breach::Backlog {
            value,
            max: config.max_backlog,
        }),
        _ => None,
    }
}

/// Watch until `config.duration` has passed or a threshold is crossed.
pub async fn run(
    config: &Config,
    prometheus: &Endpoint,
    cluster: Option<&Cluster>,
    mut progress: impl FnMut(&Sample),
) -> Report {
    let http = crate::endpoint::http_client(config.interval.max(Duration::from_secs(5)));
    let started = Instant::now();
    let baseline = match cluster {
        Some(c) => restart_counts(c).await.ok(),
        None => None,
    };
    let mut samples = Vec::new();
    let mut blind = 0u32;
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sample = take_sample(
            config,
            &http,
            prometheus,
            cluster,
            baseline.as_ref(),
            started,
        )
        .await;
        progress(&sample);
        let breach = judge(&sample, config);
        blind = if sample.error.is_some() { blind + 1 } else { 0 };
        let reason = sample.error.clone();
        samples.push(sample);
        if let Some(breach) = breach {
            return report(Verdict::Breached { breach }, samples);
        }
        if blind >= MAX_BLIND_SAMPLES {
            let reason = reason.unwrap_or_default();
            return report(Verdict::Blind { reason }, samples);
        }
        if started.elapsed() + config.interval > config.duration {
            return report(Verdict::Healthy, samples);
        }
    }
}

fn report(verdict: Verdict, samples: Vec<Sample>) -> Report {
    Report {
        verdict,
        samples,
        rollback: None,
    }
}

/// [`run`], then on a breach call `rollback` once with it and record what it said.
pub async fn run_with_rollback(
    config: &Config,
    prometheus: &Endpoint,
    cluster: Option<&Cluster>,
    progress: impl FnMut(&Sample),
    rollback: impl AsyncFnOnce(Breach) -> Result<String, String>,
) -> Report {
    let mut report = run(config, prometheus, cluster, progress).await;
    if let Verdict::Breached { breach } = &report.verdict {
        let outcome = rollback(breach.clone()).await;
        report.rollback = Some(match outcome {
            Ok(message) => RollbackOutcome { ok: true, message },
            Err(message) => RollbackOutcome { ok: false, message },
        });
    }
    report
}

/// The watch for an environment as configured: `watch` (usually
/// [`Config::from_environment`] of its `[monitoring]`), Prometheus reached the way `[access]`
/// says. This is the entry point for `fluo-deploy monitor`: on a breach `rollback` runs once.
pub async fn run_for(
    config: &fluo_core::config::Config,
    cluster: Option<Cluster>,
    watch: &Config,
    progress: impl FnMut(&Sample),
    rollback: impl AsyncFnOnce(Breach) -> Result<String, String>,
) -> Report {
    let resolver = crate::access::Resolver::from_config(config, cluster.clone());
    match resolver.endpoint(crate::access::PROMETHEUS).await {
        Ok(prometheus) => {
            run_with_rollback(watch, &prometheus, cluster.as_ref(), progress, rollback).await
        }
        Err(e) => report(
            Verdict::Blind {
                reason: format!("reaching Prometheus: {e}"),
            },
            Vec::new(),
        ),
    }
}

async fn take_sample(
    config: &Config,
    http: &reqwest::Client,
    prometheus: &Endpoint,
    cluster: Option<&Cluster>,
    baseline: Option<&BTreeMap<String, u32>>,
    started: Instant,
) -> Sample {
    let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (ratio, alerts, backlog) = tokio::join!(
        promapi::evaluate(http, prometheus, &config.queries.error_ratio),
        promapi::alerts(http, prometheus),
        promapi::evaluate(http, prometheus, &config.queries.backlog),
    );
    let restarts = match (cluster, baseline) {
        (Some(c), Some(base)) => restart_counts(c)
            .await
            .ok()
            .map(|now| restarts_since(base, &now)),
        _ => None,
    };
    // The first failure, named by what it measures (the query itself was printed once).
    let error = [
        ("5xx ratio", ratio.as_ref().err()),
        ("alerts", alerts.as_ref().err()),
        ("job backlog", backlog.as_ref().err()),
    ]
    .into_iter()
    .find_map(|(what, e)| e.map(|e| format!("{what}: {e}")));
    Sample {
        at_ms,
        // NaN is 0/0: no requests in the window.
        error_ratio: ratio.ok().flatten().filter(|v| !v.is_nan()),
        firing_alerts: alerts
            .map(|a| {
                a.alerts
                    .iter()
                    .filter(|a| {
                        a.state == "firing" && a.name().starts_with(&config.queries.alert_prefix)
                    })
                    .map(|a| a.name().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        restarts,
        backlog: backlog.ok().flatten(),
        error,
    }
}

/// Restart counts per container (`pod/container`) in the namespace.
async fn restart_counts(cluster: &Cluster) -> Result<BTreeMap<String, u32>, kube::Error> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = pods.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .flat_map(|pod| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            pod.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
                .map(move |c| {
                    (
                        format!("{name}/{}", c.name),
                        u32::try_from(c.restart_count).unwrap_or(0),
                    )
                })
        })
        .collect())
}

/// Restarts since `baseline`; containers that appeared later count all their restarts.
pub fn restarts_since(baseline: &BTreeMap<String, u32>, now: &BTreeMap<String, u32>) -> u32 {
    now.iter()
        .map(|(container, count)| {
            count.saturating_sub(baseline.get(container).copied().unwrap_or(0))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let monitoring: Monitoring = toml::from_str(
            r#"
duration = "30m"
interval = "30s"
max_error_ratio = 0.02
max_restarts = 2
max_backlog = 500
"#,
        )
        .unwrap();
        Config::from_environment(&monitoring)
    }

    fn sample() -> Sample {
        Sample {
            at_ms: 0,
            error_ratio: Some(0.01),
            firing_alerts: vec![],
            restarts: Some(0),
            backlog: Some(3.0),
            error: None,
        }
    }

    #[test]
    fn thresholds_come_from_the_environment_and_rates_span_two_minutes() {
        let c = config();
        assert_eq!(
            (c.duration, c.interval),
            (Duration::from_secs(1800), Duration::from_secs(30))
        );
        assert!(
            c.queries.error_ratio.contains("[120s]"),
            "{}",
            c.queries.error_ratio
        );
    }

    #[test]
    fn a_sample_within_thresholds_is_no_breach() {
        assert_eq!(judge(&sample(), &config()), None);
        let unmeasured = Sample {
            error_ratio: None,
            restarts: None,
            backlog: None,
            ..sample()
        };
        assert_eq!(judge(&unmeasured, &config()), None);
    }

    #[test]
    fn each_threshold_is_a_breach() {
        let c = config();
        let ratio = Sample {
            error_ratio: Some(0.5),
            ..sample()
        };
        assert_eq!(
            judge(&ratio, &c).unwrap().to_string(),
            "BFF 5xx ratio 50.0% is over the 2.0% threshold"
        );
        let alerts = Sample {
            firing_alerts: vec!["FluoNatsDown".into()],
            ..sample()
        };
        assert!(matches!(
            judge(&alerts, &c),
            Some(Breach::FiringAlerts { .. })
        ));
        let restarts = Sample {
            restarts: Some(3),
            ..sample()
        };
        assert_eq!(
            judge(&restarts, &c),
            Some(Breach::Restarts { value: 3, max: 2 })
        );
        let backlog = Sample {
            backlog: Some(501.0),
            ..sample()
        };
        assert_eq!(
            judge(&backlog, &c),
            Some(Breach::Backlog {
                value: 501.0,
                max: 500
            })
        );
        let at_threshold = Sample {
            error_ratio: Some(0.02),
            restarts: Some(2),
            backlog: Some(500.0),
            ..sample()
        };
        assert_eq!(judge(&at_threshold, &c), None);
    }

    #[test]
    fn restarts_count_from_the_baseline() {
        let base = BTreeMap::from([("bff-1/bff".to_owned(), 4), ("nats-0/nats".to_owned(), 1)]);
        let now = BTreeMap::from([
            ("bff-1/bff".to_owned(), 6),
            ("nats-0/nats".to_owned(), 1),
            ("bff-2/bff".to_owned(), 1),
        ]);
        assert_eq!(restarts_since(&base, &now), 3);
    }

    #[test]
    fn exit_codes_follow_the_shared_table() {
        let mut r = report(Verdict::Healthy, vec![]);
        assert_eq!(r.exit(), Exit::Ok);
        r.verdict = Verdict::Breached {
            breach: Breach::Restarts { value: 3, max: 2 },
        };
        r.rollback = Some(RollbackOutcome {
            ok: true,
            message: "rolled back".into(),
        });
        assert_eq!(r.exit(), Exit::Failed);
        r.rollback = Some(RollbackOutcome {
            ok: false,
            message: "lock held".into(),
        });
        assert_eq!(r.exit(), Exit::RollbackFailed);
        assert!(
            r.text().starts_with("BREACH: 3 container restart(s)"),
            "{}",
            r.text()
        );
        assert!(r.text().contains("ROLLBACK FAILED (escalate):\nlock held"));
    }

    #[test]
    fn queries_are_described_once_decoded_and_samples_are_one_compact_line() {
        let lines = config().describe();
        let all = lines.join("\n");
        assert_eq!(lines.len(), 5, "{all}");
        assert!(
            all.contains(
                "5xx ratio   > 2.0%  sum(rate(fluo_bff_http_requests_total{status=~\"5..\"}[120s]))"
            ),
            "{all}"
        );
        assert!(
            !all.contains("%28") && !all.contains("%7B"),
            "encoded: {all}"
        );
        assert!(all.contains("jetstream_stream_total_messages{stream_name=\"FLUO_JOBS\"}"));
        assert_eq!(
            sample().summary(3),
            "sample 3 at 0s: 5xx 1.00%, backlog 3, restarts 0, alerts none"
        );
        let failed = Sample {
            error: Some("5xx ratio: GET http://p/api/v1/query (direct): connection refused".into()),
            ..sample()
        };
        let line = failed.summary(4);
        assert_eq!(
            line,
            "sample 4 at 0s: not taken: 5xx ratio: GET http://p/api/v1/query (direct): connection refused"
        );
        assert!(!line.contains("fluo_bff_http_requests_total"), "{line}");
    }
}
