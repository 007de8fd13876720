//! What `diagnose` needs from NATS for its JetStream checks: `/healthz` and
//! `/jsz?streams=true&config=true` from the monitoring endpoint, reached as the environment's
//! `[access]` says (`nats-monitor`), within a bounded time.

use std::time::Duration;

use fluo_core::ops::Ctx;
use fluo_core::ops::diagnose::jetstream::Observed;
use fluo_health::access::{Cluster, NATS_MONITOR, Resolver};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn observe(ctx: &Ctx) -> Result<Observed, String> {
    tokio::time::timeout(TIMEOUT * 3, fetch(ctx))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", TIMEOUT.as_secs() * 3)))
}

async fn fetch(ctx: &Ctx) -> Result<Observed, String> {
    let cluster = Cluster {
        client: ctx.cluster.client.clone(),
        namespace: ctx.namespace.clone(),
    };
    let resolver = Resolver::from_config(&ctx.config, Some(cluster));
    let endpoint = resolver
        .endpoint(NATS_MONITOR)
        .await
        .map_err(|e| e.to_string())?;
    let http = fluo_health::endpoint::http_client(TIMEOUT);
    let (status, healthz) = endpoint.get(&http, "/healthz").await?;
    let (jsz_status, jsz) = endpoint
        .get_with_query(&http, "/jsz", "streams=true&config=true")
        .await?;
    if !jsz_status.is_success() {
        return Err(format!("/jsz answered {jsz_status}"));
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.cluster.client.clone(), &ctx.namespace);
    let expect_streams = deployments
        .get_opt("bff")
        .await
        .map_err(|e| format!("reading Deployment bff: {e}"))?
        .is_some();
    Ok(Observed {
        healthz: (status.as_u16(), healthz),
        jsz,
        expect_streams,
    })
}
