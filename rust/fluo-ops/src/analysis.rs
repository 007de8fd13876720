//! The Prometheus behind progressive rollouts' analyses (`fluo_core::ops::progressive`):
//! reached as the environment's `[access]` says (fluo-health's resolver, port-forwards kept for
//! the whole deploy), queried with fluo-health's Prometheus API client.

use std::time::Duration;

use fluo_core::config::{AccessMode, Config};
use fluo_core::ops::progressive::analysis::Metrics;
use fluo_health::access::{self, Resolver};
use futures::future::BoxFuture;

pub struct Prometheus {
    resolver: Resolver,
    http: reqwest::Client,
}

impl Prometheus {
    pub fn new(config: &Config, client: &kube::Client, namespace: &str) -> Prometheus {
        let cluster =
            (config.environment.access.mode != AccessMode::Direct).then(|| access::Cluster {
                client: client.clone(),
                namespace: namespace.to_string(),
            });
        Prometheus {
            resolver: Resolver::from_config(config, cluster),
            http: fluo_health::endpoint::http_client(Duration::from_secs(10)),
        }
    }
}

impl Metrics for Prometheus {
    fn query<'a>(&'a self, promql: &'a str) -> BoxFuture<'a, Result<Option<f64>, String>> {
        Box::pin(async move {
            let endpoint = self
                .resolver
                .endpoint(access::PROMETHEUS)
                .await
                .map_err(|e| e.to_string())?;
            fluo_health::promapi::evaluate(&self.http, &endpoint, promql).await
        })
    }
}
