//! Prometheus metrics of the BFF, all prefixed `fluo_bff_`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Latency buckets from 0.5 ms to 10 s: submissions take around a millisecond when healthy and
/// up to the NATS timeout when not.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `fluo_bff_http_requests_total{route,method,status}`
    pub requests: IntCounterVec,
    /// `fluo_bff_http_request_duration_seconds{route,method}`
    pub latency: HistogramVec,
    /// `fluo_bff_jobs_submitted_total{type}`: jobs accepted (202) and queued.
    pub jobs_submitted: IntCounterVec,
    /// `fluo_bff_job_submit_failures_total{reason}`: valid submissions not queued.
    pub submit_failures: IntCounterVec,
    /// `fluo_bff_nats_connected`: 1 while the NATS connection is up.
    pub nats_connected: IntGauge,
    /// `fluo_bff_auth_refusals_total{reason}`: missing, invalid, scope, limited.
    pub auth_refusals: IntCounterVec,
}

impl Metrics {
    pub fn new(version: &str, commit: &str) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "fluo_bff_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "fluo_bff_http_request_duration_seconds",
                "HTTP request latency by route and method",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        let jobs_submitted = IntCounterVec::new(
            Opts::new(
                "fluo_bff_jobs_submitted_total",
                "Jobs accepted and queued, by type",
            ),
            &["type"],
        )
        .expect("valid metric");
        let submit_failures = IntCounterVec::new(
            Opts::new(
                "fluo_bff_job_submit_failures_total",
                "Valid job submissions that could not be queued, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let nats_connected = IntGauge::new(
            "fluo_bff_nats_connected",
            "1 while the connection to NATS is up",
        )
        .expect("valid metric");
        let auth_refusals = IntCounterVec::new(
            Opts::new(
                "fluo_bff_auth_refusals_total",
                "Requests refused by authentication or authorization, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "fluo_bff_build_info",
                "Version and commit of the running BFF",
            ),
            &["version", "commit"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[version, commit]).set(1);
        Metrics {
            registry: fluo_jobs::metrics::registry(vec![
                Box::new(requests.clone()),
                Box::new(latency.clone()),
                Box::new(jobs_submitted.clone()),
                Box::new(submit_failures.clone()),
                Box::new(nats_connected.clone()),
                Box::new(auth_refusals.clone()),
                Box::new(build_info),
            ]),
            requests,
            latency,
            jobs_submitted,
            submit_failures,
            nats_connected,
            auth_refusals,
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
    fn renders_prefixed_metrics_with_labels() {
        let metrics = Metrics::new("0.1.0", "abc123");
        metrics
            .requests
            .with_label_values(&["/api/jobs", "POST", "202"])
            .inc();
        metrics
            .latency
            .with_label_values(&["/api/jobs", "POST"])
            .observe(0.002);
        metrics.jobs_submitted.with_label_values(&["test"]).inc();
        let text = metrics.render();
        assert!(text.contains(
            "fluo_bff_http_requests_total{method=\"POST\",route=\"/api/jobs\",status=\"202\"} 1"
        ));
        assert!(text.contains("fluo_bff_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/jobs\",le=\"0.0025\"} 1"));
        assert!(text.contains("fluo_bff_jobs_submitted_total{type=\"test\"} 1"));
        assert!(text.contains("fluo_bff_build_info{commit=\"abc123\",version=\"0.1.0\"} 1"));
    }
}
