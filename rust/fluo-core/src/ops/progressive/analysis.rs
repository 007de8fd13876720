//! The Prometheus analysis of a step: `samples` samples `interval` apart, each evaluating every
//! check over the new pods (and, for `max_over_baseline`, over the stable pods); the first
//! failing sample decides (so a crossed threshold is seen within one interval).

use std::time::Duration;

use crate::config::strategy::{Analysis, Check};
pub use crate::ops::context::Metrics;

/// Which pods a sample looks at, as PromQL label matchers.
pub struct Pods {
    pub new: String,
    /// The stable/blue pods (None when there are none to compare against).
    pub baseline: Option<String>,
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
    let mut ok = true;
    let mut parts = Vec::new();
    for check in &analysis.checks {
        let value = metrics
            .query(&check.promql(&pods.new, analysis.window))
            .await;
        let baseline = match (&pods.baseline, check.max_over_baseline) {
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
    use std::sync::Mutex;

    use futures::future::BoxFuture;

    use super::*;
    use crate::config::strategy::Metric;

    struct Fixed(Mutex<Vec<Option<f64>>>);

    impl Metrics for Fixed {
        fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
            assert!(promql.contains("instance=~"), "{promql}");
            let v = self.0.lock().unwrap().remove(0);
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
            checks: vec![check(Some(0.1), None)],
        }
    }

    fn pods() -> Pods {
        Pods {
            new: "instance=~\"10.0.0.1:.*\"".into(),
            baseline: None,
        }
    }

    #[tokio::test]
    async fn the_first_failing_sample_decides() {
        let metrics = Fixed(Mutex::new(vec![Some(0.0), Some(0.5), Some(0.0)]));
        let result = run(&analysis(3), &metrics, &pods(), |_| {}, || async { None }).await;
        let evidence = result.unwrap_err();
        assert_eq!(evidence.len(), 2);
        assert!(evidence[1].starts_with("sample 2/3: http-5xx-ratio 0.5000"));
        assert_eq!(metrics.0.lock().unwrap().len(), 1, "third sample not taken");
    }

    /// Records the queries it is asked.
    struct Recording(Mutex<Vec<String>>);

    impl Metrics for Recording {
        fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
            self.0.lock().unwrap().push(promql.to_string());
            Box::pin(async { Ok(Some(3.0)) })
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
        let metrics = Recording(Mutex::new(vec![]));
        let evidence = run(&a, &metrics, &pods(), |_| {}, || async { None })
            .await
            .unwrap_err();
        assert_eq!(
            metrics.0.lock().unwrap().as_slice(),
            [
                "max(fluo_queue_depth{instance=~\"10.0.0.1:.*\"}) + 0 * rate(x_total{instance=~\"10.0.0.1:.*\"}[60s])"
            ]
        );
        assert_eq!(
            evidence,
            ["sample 1/1: queue-depth 3.0000 (max 2.0000) FAILS"]
        );
    }

    #[tokio::test]
    async fn all_samples_pass_and_an_abort_request_ends_it() {
        let metrics = Fixed(Mutex::new(vec![Some(0.0), Some(0.01)]));
        let ok = run(&analysis(2), &metrics, &pods(), |_| {}, || async { None }).await;
        assert_eq!(ok.unwrap().len(), 2);
        let metrics = Fixed(Mutex::new(vec![]));
        let aborted = run(
            &analysis(2),
            &metrics,
            &pods(),
            |_| {},
            || async { Some("aborted by tester".to_string()) },
        )
        .await;
        assert_eq!(aborted.unwrap_err(), ["aborted by tester"]);
    }
}
