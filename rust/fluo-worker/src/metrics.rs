//! Prometheus metrics of the worker, all prefixed `fluo_worker_`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `fluo_worker_jobs_processed_total{type,outcome}`; outcome is one of
    /// the labels of `process::Outcome`.
    pub processed: IntCounterVec,
    /// `fluo_worker_jobs_in_flight`
    pub in_flight: IntGauge,
    /// `fluo_worker_failures_total{stage}`: infrastructure failures (fetch, read_state,
    /// write_state, ack); the job is redelivered.
    pub failures: IntCounterVec,
    /// `fluo_worker_job_duration_seconds{type}`: time running the job itself.
    pub duration: HistogramVec,
    /// `fluo_worker_redeliveries_total`: deliveries after the first (crashes, timeouts, naks).
    pub redeliveries: IntCounter,
}

impl Metrics {
    pub fn new(version: &str, commit: &str, worker_id: &str) -> Self {
        let processed = IntCounterVec::new(
            Opts::new(
                "fluo_worker_jobs_processed_total",
                "Job deliveries handled, by type and outcome",
            ),
            &["type", "outcome"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("fluo_worker_jobs_in_flight", "Jobs being run right now")
            .expect("valid metric");
        let failures = IntCounterVec::new(
            Opts::new(
                "fluo_worker_failures_total",
                "Infrastructure failures while handling a job, by stage; the job is redelivered",
            ),
            &["stage"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "fluo_worker_job_duration_seconds",
                "Time spent running a job, by type",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["type"],
        )
        .expect("valid metric");
        let redeliveries = IntCounter::new(
            "fluo_worker_redeliveries_total",
            "Job deliveries after the first one",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "fluo_worker_build_info",
                "Version, commit and id of the running worker",
            ),
            &["version", "commit", "worker"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[version, commit, worker_id])
            .set(1);
        Metrics {
            registry: fluo_jobs::metrics::registry(vec![
                Box::new(processed.clone()),
                Box::new(in_flight.clone()),
                Box::new(failures.clone()),
                Box::new(duration.clone()),
                Box::new(redeliveries.clone()),
                Box::new(build_info),
            ]),
            processed,
            in_flight,
            failures,
            duration,
            redeliveries,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        fluo_jobs::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics() {
        let metrics = Metrics::new("0.1.0", "abc", "w1");
        metrics
            .processed
            .with_label_values(&["test", "completed"])
            .inc();
        metrics.in_flight.set(3);
        let text = metrics.render();
        assert!(
            text.contains(
                "fluo_worker_jobs_processed_total{outcome=\"completed\",type=\"test\"} 1"
            )
        );
        assert!(text.contains("fluo_worker_jobs_in_flight 3"));
        assert!(
            text.contains(
                "fluo_worker_build_info{commit=\"abc\",version=\"0.1.0\",worker=\"w1\"} 1"
            )
        );
    }
}
