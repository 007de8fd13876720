//! Benchmark: wall time of a full `fluo-health` run (every check the direct access mode allows,
//! in parallel, the worker job included) and of a `fluo-smoke` run against the healthy local
//! stack (real nats-server, prometheus, fluo-bff, fluo-worker, and the Grafana stand-in).
//!
//!     cargo build -p fluo-health -p fluo-smoke && cargo run -p fluo-health --example bench_health [-- RUNS]
//!
//! Runs each binary (built next to this example's directory, same profile) RUNS times (default
//! 20) as a fresh process, as an operator would, and prints min / median / max wall time.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[path = "../tests/health/grafana_stand_in.rs"]
mod grafana_stand_in;

use fluo_teststack::{Stack, TestInfra, eventually};
use grafana_stand_in::GrafanaStandIn;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).map_or(Ok(20), |n| n.parse())?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("no target profile dir"))?;
    let (health, smoke) = (bin_dir.join("fluo-health"), bin_dir.join("fluo-smoke"));
    for bin in [&health, &smoke] {
        anyhow::ensure!(
            bin.is_file(),
            "{} missing: cargo build -p fluo-health -p fluo-smoke first",
            bin.display()
        );
    }

    let stack = Stack::start().await?;
    eventually(
        "prometheus to scrape the stack",
        Duration::from_secs(60),
        || async {
            let up = stack.query_prometheus("up == 1").await?;
            let bff = stack.query_prometheus("fluo_bff_build_info").await?;
            Ok::<_, fluo_teststack::Error>((up.len() >= 2 && !bff.is_empty()).then_some(()))
        },
    )
    .await?;
    let grafana = GrafanaStandIn::start("ok").await;
    let infra = TestInfra::direct(&[
        ("bff", stack.bff_url()),
        ("nats-monitor", stack.nats_monitor_url()),
        ("prometheus", stack.prometheus_url()),
        ("grafana", grafana.url()),
        ("worker", stack.worker_url()),
    ]);

    for (name, bin) in [("fluo-health", &health), ("fluo-smoke", &smoke)] {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            times.push(run_once(bin, &infra).await?);
        }
        times.sort();
        println!(
            "{name}: {runs} runs, min {:.0} ms, median {:.0} ms, max {:.0} ms",
            ms(times[0]),
            ms(times[runs / 2]),
            ms(times[runs - 1])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run_once(bin: &Path, infra: &TestInfra) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = tokio::process::Command::new(bin)
        .env("FLUO_INFRA_DIR", infra.path())
        .env("FLUO_ENV", infra.env())
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "{} failed:\n{}{}",
        bin.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(elapsed)
}
