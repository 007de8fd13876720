//! Benchmark: how long the process runtime adds to a container's own start (needs root).
//!
//!     cargo run --release -p kube-emulator --example bench_pod_start -- [N [MEMORY_LIMIT]]
//!
//! For N pods (default 20), one after the other: the time from the create call to the first
//! instruction of the container's shell (it writes the clock into a host file), minus the
//! same command's own start when spawned directly from the host (measured N times the same
//! way). Also the time until the pod reports Running. With MEMORY_LIMIT (e.g. `64Mi`, as
//! infra/'s containers have) the container gets `resources.limits.memory`. Prints median, p90
//! and p99 in ms. `RUST_LOG=kube_emulator::kubelet=debug,bench_pod_start=debug` logs each
//! pod's phases (worker started, network taken, process spawned, first instruction).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube_emulator::kubelet::process::{ImageMap, ProcessOptions};
use kube_emulator::{Emulator, Options, Runtime};
use serde_json::json;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// Waits for `path` to hold a nanosecond timestamp.
async fn stamp(path: &Path) -> anyhow::Result<u128> {
    for _ in 0..2000 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(n) = text.trim().parse()
        {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    anyhow::bail!("no timestamp in {} after 2 s", path.display())
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<48} median {:>7.1} ms   p90 {:>7.1} ms   p99 {:>7.1} ms   n {}",
        p(0.5),
        p(0.9),
        p(0.99),
        ms.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let n: usize = std::env::args().nth(1).map_or(Ok(20), |a| a.parse())?;
    let resources = match std::env::args().nth(2) {
        Some(limit) => json!({"limits": {"memory": limit}}),
        None => json!({}),
    };
    let out = tempfile::tempdir()?;
    let script = "date +%s%N > \"$OUT/$(POD)\"; exec sleep 3600";
    // Baseline: the same shell started directly.
    let mut direct = Vec::new();
    for i in 0..n {
        let file = out.path().join(format!("direct-{i}"));
        let t0 = now_ns();
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("date +%s%N > {}", file.display())])
            .spawn()?;
        let t1 = stamp(&file).await?;
        child.wait()?;
        direct.push((t1 - t0) as f64 / 1e6);
    }
    let images = ImageMap::parse(
        "[images.\"bench/sh\"]\ncommand = \"/bin/sh\"\n",
        Path::new("bench.toml"),
    )?;
    let emu = Emulator::start(Options {
        ready_after: Duration::ZERO,
        runtime: Runtime::Process(ProcessOptions::new(images)),
        ..Options::default()
    })
    .await
    .context("starting a process-mode emulator (needs root)")?;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let (mut started, mut running) = (Vec::new(), Vec::new());
    for i in 0..n {
        let name = format!("bench-{i}");
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "bench/sh",
                "command": ["sh", "-c", script.replace("$(POD)", &name)], "resources": resources,
                "env": [{"name": "OUT", "value": out.path().display().to_string()}]}]}}))?;
        let t0 = now_ns();
        tracing::debug!(pod = %name, "creating");
        pods.create(&PostParams::default(), &pod).await?;
        tracing::debug!(pod = %name, "created");
        let t1 = stamp(&out.path().join(&name)).await?;
        started.push((t1 - t0) as f64 / 1e6);
        tracing::debug!(pod = %name, after_create_ms = (t1 - t0) as f64 / 1e6, "first instruction");
        loop {
            let p = pods.get(&name).await?;
            if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        running.push((now_ns() - t0) as f64 / 1e6);
    }
    let direct_median = {
        let mut d = direct.clone();
        d.sort_by(f64::total_cmp);
        d[d.len() / 2]
    };
    summary("direct spawn (the process's own start)", direct);
    summary("create -> container's first instruction", started.clone());
    summary(
        "overhead (create -> first instruction - direct)",
        started.iter().map(|s| s - direct_median).collect(),
    );
    summary("create -> pod Running (status written)", running);
    emu.shutdown().await;
    Ok(())
}
