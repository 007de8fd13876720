//! The Prometheus analysis of a step: once Prometheus has scraped every new pod twice, `samples`
//! samples `interval` apart, each evaluating every check over the new pods (and, for
//! `max_over_baseline`, over the stable pods); the first failing sample decides (so a crossed
//! threshold is seen within one interval).

use std::time::Duration;

use super::workload::instance_matcher;
use crate::config::strategy::{Analysis, Check};
pub use crate::ops::context::Metrics;

/// Which pods a sample looks at: their IPs (Prometheus' `instance` is `<pod IP>:<port>`).
pub struct Pods {
    pub new: Vec<String>,
    /// The stable/blue pods (empty when there are none to compare against).
    pub baseline: Vec<String>,
}

/// The verdict of one check in one sample: passed, and the evidence line.
pub fn judge(
    check: &Check,
    value: Option<f64>,
    baseline: Option<f64>,
    pass_without_data: bool,
) -> (bool, String) {
    let name = check.name();
    let Some(v) = value else {
        let verdict = if pass_without_data {
            "passes (pass_without_data)"
        } else {
            "FAILS"
        };
        return (pass_without_data, format!("{name}: no data {verdict}"));
    };
    let mut limits = Vec::new();
    let mut ok = true;
    if let Some(max) = check.max {
        ok &= v <= max;
        limits.push(format!("max {}", show(max)));
    }
    if let Some(factor) = check.max_over_baseline {
        match baseline {
            Some(b) => {
                ok &= v <= factor * b;
                limits.push(format!(
                    "{factor} x baseline {} = {}",
                    show(b),
                    show(factor * b)
                ));
            }
            None => limits.push("baseline: no data".into()),
        }
    }
    let verdict = if ok { "ok" } else { "FAILS" };
    (
        ok,
        format!("{name} {} ({}) {verdict}", show(v), limits.join(", ")),
    )
}

fn show(v: f64) -> String {
    format!("{v:.4}")
}

/// Runs one analysis. Ok: the evidence of every sample; Err: the evidence up to and including
/// the failing sample. `interrupted` is asked between samples: Some(reason) ends the analysis
/// as failed (an operator's `abort`).
pub async fn run<F>(
    analysis: &Analysis,
    metrics: &dyn Metrics,
    pods: &Pods,
    mut on_sample: impl FnMut(&str),
    interrupted: impl Fn() -> F,
) -> Result<Vec<String>, Vec<String>>
where
    F: std::future::Future<Output = Option<String>>,
{
    let mut evidence = Vec::new();
    match await_scrapes(analysis, metrics, &pods.new, &interrupted).await {
        Ok(line) => {
            on_sample(&line);
            evidence.push(line);
        }
        Err(line) => {
            on_sample(&line);
            evidence.push(line);
            return Err(evidence);
        }
    }
    for n in 1..=analysis.samples {
        if let Some(reason) = sleep_or_interrupt(analysis.interval, &interrupted).await {
            evidence.push(reason);
            return Err(evidence);
        }
        let (ok, line) = sample(analysis, metrics, pods).await;
        let line = format!("sample {n}/{}: {line}", analysis.samples);
        on_sample(&line);
        evidence.push(line);
        if !ok {
            return Err(evidence);
        }
    }
    Ok(evidence)
}

/// Waits until Prometheus has scraped every target of every new pod successfully at least twice
/// within the window (its own `up` series), so that the first sample's rates have data: a pod's
/// targets are found by DNS and scraped on Prometheus' own clock, which can lag the pod's
/// readiness by several intervals. Ok/Err: the evidence line. Bounded by `scrape_wait`; polled every second at most.
async fn await_scrapes<F>(
    analysis: &Analysis,
    metrics: &dyn Metrics,
    ips: &[String],
    interrupted: &impl Fn() -> F,
) -> Result<String, String>
where
    F: std::future::Future<Output = Option<String>>,
{
    if ips.is_empty() {
        return Err("scrapes: FAILS: no new pod has an address to analyse".into());
    }
    let window = format!("{}s", analysis.window.as_secs().max(1));
    let started = tokio::time::Instant::now();
    let poll = analysis.interval.min(Duration::from_secs(1));
    loop {
        let mut short = Vec::new();
        for ip in ips {
            // The fewest successful scrapes of the pod's targets; None: not discovered yet.
            let query = format!(
                "min(sum_over_time(up{{{}}}[{window}]))",
                instance_matcher(std::slice::from_ref(ip))
            );
            match metrics.query(&query).await {
                Ok(Some(n)) if n >= 2.0 => {}
                Ok(n) => short.push(format!("{ip}: {} scrape(s)", n.unwrap_or(0.0))),
                Err(e) => short.push(format!("{ip}: query failed: {e}")),
            }
        }
        let waited = started.elapsed();
        if short.is_empty() {
            return Ok(format!(
                "scrapes: Prometheus has scraped the {} new pod(s) twice (waited {:.1}s)",
                ips.len(),
                waited.as_secs_f64()
            ));
        }
        if waited >= analysis.scrape_wait {
            return Err(format!(
                "scrapes: FAILS: Prometheus has not scraped every new pod twice within {window} \
                 after waiting {}s ({}); is the window at least two scrape intervals long?",
                analysis.scrape_wait.as_secs(),
                short.join(", ")
            ));
        }
        if let Some(reason) = sleep_or_interrupt(poll, interrupted).await {
            return Err(reason);
        }
    }
}

/// Sleeps `interval`, asking `interrupted` every 100 ms.
async fn sleep_or_interrupt<F>(interval: Duration, interrupted: &impl Fn() -> F) -> Option<String>
where
    F: std::future::Future<Output = Option<String>>,
{
    let until = tokio::time::Instant::now() + interval;
    loop {
        if let Some(reason) = interrupted().await {
            return Some(reason);
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return None;
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
    }
}

/// One sample over every check: passed, and one evidence line.
async fn sample(analysis: &Analysis, metrics: &dyn Metrics, pods: &Pods) -> (bool, String) {
    let new = instance_matcher(&pods.new);
    let baseline_pods = (!pods.baseline.is_empty()).then(|| instance_matcher(&pods.baseline));
    let mut ok = true;
    let mut parts = Vec::new();
    for check in &analysis.checks {
        let value = metrics.query(&check.promql(&new, analysis.window)).await;
        let baseline = match (&baseline_pods, check.max_over_baseline) {
            (Some(b), Some(_)) => metrics
                .query(&check.promql(b, analysis.window))
                .await
                .ok()
                .flatten(),
            _ => None,
        };
        match value {
            Ok(value) => {
                let (passed, line) = judge(check, value, baseline, analysis.pass_without_data);
                ok &= passed;
                parts.push(line);
            }
            Err(e) => {
                ok = false;
                parts.push(format!("{}: query failed: {e}", check.name()));
            }
        }
    }
    (ok, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;
    use crate::config::strategy::Metric;

    /// Answers the checks' queries with the listed values in turn; every pod has been scraped
    /// twice.
    struct Fixed(Mutex<Vec<Option<f64>>>);

    impl Metrics for Fixed {
        fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
            assert!(promql.contains("instance=~"), "{promql}");
            let v = if promql.contains("sum_over_time(up") {
                Some(2.0)
            } else {
                self.0.lock().unwrap().remove(0)
            };
            Box::pin(async move { Ok(v) })
        }
    }

    /// Scrape counts that grow by one per poll (from none), per pod; the checks pass.
    struct Scraping(Mutex<BTreeMap<String, f64>>);

    impl Metrics for Scraping {
        fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
            let v = if promql.contains("sum_over_time(up") {
                let mut seen = self.0.lock().unwrap();
                let n = seen.entry(promql.to_string()).or_insert(-1.0);
                *n += 1.0;
                (*n > 0.0).then_some(*n)
            } else {
                assert!(promql.contains("10.0.0.1:.*|10.0.0.2:.*"), "{promql}");
                Some(0.0)
            };
            Box::pin(async move { Ok(v) })
        }
    }

    fn check(max: Option<f64>, factor: Option<f64>) -> Check {
        Check {
            metric: Some(Metric::Http5xxRatio),
            max,
            max_over_baseline: factor,
            ..Default::default()
        }
    }

    #[test]
    fn judge_applies_absolute_and_baseline_limits() {
        assert!(judge(&check(Some(0.01), None), Some(0.005), None, false).0);
        let (ok, line) = judge(&check(Some(0.01), None), Some(0.2), None, false);
        assert!(!ok);
        assert_eq!(line, "http-5xx-ratio 0.2000 (max 0.0100) FAILS");
        assert!(judge(&check(None, Some(2.0)), Some(0.03), Some(0.02), false).0);
        let (ok, line) = judge(&check(None, Some(2.0)), Some(0.05), Some(0.02), false);
        assert!(!ok, "{line}");
        assert!(judge(&check(None, Some(2.0)), Some(0.05), None, false).0);
        assert!(!judge(&check(Some(1.0), None), None, None, false).0);
        assert!(judge(&check(Some(1.0), None), None, None, true).0);
    }

    fn analysis(samples: u32) -> Analysis {
        Analysis {
            interval: Duration::from_millis(10),
            samples,
            window: Duration::from_secs(60),
            pass_without_data: false,
            scrape_wait: Duration::from_secs(5),
            checks: vec![check(Some(0.1), None)],
        }
    }

    fn pods() -> Pods {
        Pods {
            new: vec!["10.0.0.1".into()],
            baseline: Vec::new(),
        }
    }

    #[tokio::test]
    async fn the_first_sample_waits_until_every_new_pod_was_scraped_twice() {
        let metrics = Scraping(Mutex::new(BTreeMap::new()));
        let pods = Pods {
            new: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            baseline: Vec::new(),
        };
        let evidence = run(&analysis(1), &metrics, &pods, |_| {}, || async { None })
            .await
            .unwrap();
        assert!(
            evidence[0].starts_with("scrapes: Prometheus has scraped the 2 new pod(s) twice"),
            "{evidence:?}"
        );
        assert!(evidence[1].starts_with("sample 1/1: http-5xx-ratio 0.0000"));
        let polls = metrics.0.lock().unwrap().clone();
        assert_eq!(
            polls.keys().collect::<Vec<_>>(),
            [
                "min(sum_over_time(up{instance=~\"10.0.0.1:.*\"}[60s]))",
                "min(sum_over_time(up{instance=~\"10.0.0.2:.*\"}[60s]))"
            ]
        );
        // Polled at none, 1 and 2 scrapes: the sample came after the second scrape.
        assert!(polls.values().all(|n| *n == 2.0), "{polls:?}");
    }

    #[tokio::test]
    async fn a_pod_prometheus_never_scrapes_fails_the_analysis_after_the_scrape_wait() {
        let metrics = Recording(Mutex::new(vec![]), None);
        let mut a = analysis(2);
        a.scrape_wait = Duration::from_millis(50);
        let evidence = run(&a, &metrics, &pods(), |_| {}, || async { None })
            .await
            .unwrap_err();
        assert_eq!(evidence.len(), 1, "{evidence:?}");
        assert!(
            evidence[0].starts_with(
                "scrapes: FAILS: Prometheus has not scraped every new pod twice within 60s"
            ) && evidence[0].contains("10.0.0.1: 0 scrape(s)"),
            "{evidence:?}"
        );
        let asked = metrics.0.lock().unwrap().clone();
        assert!(
            asked.iter().all(|q| q.contains("sum_over_time(up")),
            "no check sampled: {asked:?}"
        );
        let none = Pods {
            new: Vec::new(),
            baseline: Vec::new(),
        };
        let evidence = run(&a, &metrics, &none, |_| {}, || async { None })
            .await
            .unwrap_err();
        assert_eq!(
            evidence,
            ["scrapes: FAILS: no new pod has an address to analyse"]
        );
    }

    #[tokio::test]
    async fn the_first_failing_sample_decides() {
        let metrics = Fixed(Mutex::new(vec![Some(0.0), Some(0.5), Some(0.0)]));
        let result = run(&analysis(3), &metrics, &pods(), |_| {}, || async { None }).await;
        let evidence = result.unwrap_err();
        assert_eq!(evidence.len(), 3, "{evidence:?}");
        assert!(evidence[2].starts_with("sample 2/3: http-5xx-ratio 0.5000"));
        assert_eq!(metrics.0.lock().unwrap().len(), 1, "third sample not taken");
    }

    /// Records the queries it is asked and answers every one with the same value.
    struct Recording(Mutex<Vec<String>>, Option<f64>);

    impl Metrics for Recording {
        fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
            self.0.lock().unwrap().push(promql.to_string());
            let v = self.1;
            Box::pin(async move { Ok(v) })
        }
    }

    #[tokio::test]
    async fn a_custom_query_runs_over_the_sampled_pods_and_is_judged_by_its_name() {
        let mut a = analysis(1);
        a.checks = vec![Check {
            name: Some("queue-depth".into()),
            query: Some(
                "max(fluo_queue_depth{{pods}}) + 0 * rate(x_total{{pods}}[{window}])".into(),
            ),
            max: Some(2.0),
            ..Default::default()
        }];
        let metrics = Recording(Mutex::new(vec![]), Some(3.0));
        let evidence = run(&a, &metrics, &pods(), |_| {}, || async { None })
            .await
            .unwrap_err();
        assert_eq!(
            metrics.0.lock().unwrap().as_slice(),
            [
                "min(sum_over_time(up{instance=~\"10.0.0.1:.*\"}[60s]))",
                "max(fluo_queue_depth{instance=~\"10.0.0.1:.*\"}) + 0 * rate(x_total{instance=~\"10.0.0.1:.*\"}[60s])"
            ]
        );
        assert_eq!(
            evidence[1..],
            ["sample 1/1: queue-depth 3.0000 (max 2.0000) FAILS"]
        );
    }

    #[tokio::test]
    async fn all_samples_pass_and_an_abort_request_ends_it() {
        let metrics = Fixed(Mutex::new(vec![Some(0.0), Some(0.01)]));
        let ok = run(&analysis(2), &metrics, &pods(), |_| {}, || async { None }).await;
        assert_eq!(ok.unwrap().len(), 3, "the scrapes' line and two samples");
        let metrics = Fixed(Mutex::new(vec![]));
        let aborted = run(
            &analysis(2),
            &metrics,
            &pods(),
            |_| {},
            || async { Some("aborted by tester".to_string()) },
        )
        .await;
        let evidence = aborted.unwrap_err();
        assert_eq!(evidence.len(), 2, "{evidence:?}");
        assert_eq!(evidence[1], "aborted by tester");
    }
}
