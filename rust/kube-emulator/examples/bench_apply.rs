//! Benchmark: server-side apply N Deployments (default 100) to an in-process emulator with
//! ready-after 0 and wait until every one reports all replicas available.
//!
//!     cargo run --release -p kube-emulator --example bench_apply -- [N]
//!
//! Prints wall time for apply and for apply+ready and the process's peak RSS; then writes five
//! times the watch-history capacity of changes to show that memory stays bounded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, WatchEvent, WatchParams};
use kube_emulator::{Emulator, Options};
use serde_json::json;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Whether a Deployment reports all its replicas updated and available for its generation.
fn is_ready(d: &Deployment) -> bool {
    let want = d.spec.replicas.unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    st.observed_generation == d.metadata.generation
        && st.available_replicas == Some(want)
        && st.updated_replicas == Some(want)
}

/// Waits until `n` Deployments are ready: list, then watch from the list's version; a watch the
/// server closes (a slow watcher is dropped, as the real apiserver does) is resumed the same way.
async fn wait_all_ready(api: &Api<Deployment>, n: usize) -> anyhow::Result<()> {
    let mut ready = HashSet::new();
    loop {
        let list = api.list(&Default::default()).await?;
        for d in &list.items {
            if is_ready(d) {
                ready.insert(d.metadata.name.clone().unwrap_or_default());
            }
        }
        if ready.len() >= n {
            return Ok(());
        }
        let rv = list.metadata.resource_version.unwrap_or_default();
        let mut events = api
            .watch(&WatchParams::default().disable_bookmarks(), &rv)
            .await?
            .boxed();
        while let Some(ev) = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .context("no progress for 120s")?
        {
            if let WatchEvent::Modified(d) | WatchEvent::Added(d) = ev?
                && is_ready(&d)
            {
                ready.insert(d.metadata.name.unwrap_or_default());
                if ready.len() >= n {
                    return Ok(());
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(100);
    let opts = Options {
        ready_after: Duration::ZERO,
        ..Options::default()
    };
    let ring = opts.watch_history;
    let emu = Emulator::start(opts).await?;
    let client = emu.client().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    // Warm the schema cache (first strict decode builds it) outside the measurement.
    api.list(&Default::default()).await?;

    let start = Instant::now();
    let pp = PatchParams::apply("bench");
    for i in 0..n {
        let name = format!("bench-{i}");
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "registry.local/app:1"}]}}}});
        api.patch(&name, &pp, &Patch::Apply(d)).await?;
    }
    let applied = start.elapsed();
    wait_all_ready(&api, n).await?;
    let total = start.elapsed();
    println!("deployments: {n}");
    println!(
        "apply (server-side, sequential requests): {:.3}s",
        applied.as_secs_f64()
    );
    println!("apply + all ready: {:.3}s", total.as_secs_f64());
    println!("peak RSS: {} KiB", peak_rss_kib().unwrap_or(0));

    // Memory stays bounded under churn: the watch history is a ring of `ring` events, so
    // writing many times that number of changes must not grow the process much further.
    let churn = ring * 5;
    let configs: Api<ConfigMap> = Api::default_namespaced(client);
    for i in 0..churn {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "churn"},
            "data": {"i": i.to_string(), "pad": "x".repeat(1024)}});
        configs.patch("churn", &pp, &Patch::Apply(cm)).await?;
    }
    println!(
        "peak RSS after {churn} more writes (watch ring holds {ring}): {} KiB",
        peak_rss_kib().unwrap_or(0)
    );
    emu.shutdown().await;
    Ok(())
}
