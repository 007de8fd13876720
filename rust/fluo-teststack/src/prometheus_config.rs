//! The Prometheus configuration of the local stack: scrape the BFF and the worker like the
//! cluster's Prometheus does, on a short interval so tests see samples quickly.

use std::time::Duration;

/// The scrape job names, as in the Prometheus manifests; query e.g. `up{job="fluo-bff"}`.
pub const BFF_JOB: &str = "fluo-bff";
pub const WORKER_JOB: &str = "fluo-worker";

/// Renders prometheus.yml for a BFF and a worker listening on loopback.
pub fn render(scrape_interval: Duration, bff_port: u16, worker_port: u16) -> String {
    let interval = format!("{}ms", scrape_interval.as_millis());
    format!(
        "global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: {BFF_JOB}
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:{bff_port}']
        labels:
          fluo_component: bff
  - job_name: {WORKER_JOB}
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:{worker_port}']
        labels:
          fluo_component: workers
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_the_bff_and_the_worker_on_their_ports() {
        let yaml = render(Duration::from_secs(1), 18080, 18081);
        assert!(yaml.contains("scrape_interval: 1000ms"));
        assert!(yaml.contains("- job_name: fluo-bff\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['127.0.0.1:18080']"));
        assert!(yaml.contains("- job_name: fluo-worker\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['127.0.0.1:18081']"));
    }
}
