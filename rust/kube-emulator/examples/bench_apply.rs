//! Benchmark: server-side apply N Deployments (default 100) to an in-process emulator with
//! ready-after 0 and wait until every one reports all replicas available.
//!
//!     cargo run --release -p kube-emulator --example bench_apply -- [N]
//!
//! Prints wall time for apply and for apply+ready, and the process's peak RSS.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(100);
    let emu = Emulator::start(Options {
        ready_after: Duration::ZERO,
        ..Options::default()
    })
    .await?;
    let api: Api<Deployment> = Api::default_namespaced(emu.client().await);
    // Warm the schema cache (first strict decode builds it) outside the measurement.
    api.list(&Default::default()).await?;
    let rv = api
        .list(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut events = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv)
        .await?
        .boxed();

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
    let mut ready = std::collections::HashSet::new();
    while ready.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .context("no progress for 120s")?
            .context("watch ended")??;
        if let WatchEvent::Modified(d) | WatchEvent::Added(d) = ev {
            let want = d.spec.replicas.unwrap_or(1);
            let st = d.status.unwrap_or_default();
            if st.observed_generation == d.metadata.generation
                && st.available_replicas == Some(want)
                && st.updated_replicas == Some(want)
            {
                ready.insert(d.metadata.name.unwrap_or_default());
            }
        }
    }
    let total = start.elapsed();
    println!("deployments: {n}");
    println!(
        "apply (server-side, sequential requests): {:.3}s",
        applied.as_secs_f64()
    );
    println!("apply + all ready: {:.3}s", total.as_secs_f64());
    println!("peak RSS: {} KiB", peak_rss_kib().unwrap_or(0));
    emu.shutdown().await;
    Ok(())
}
