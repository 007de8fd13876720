//! Test support: a temp infra dir with a test environment, the Grafana stand-in, the local
//! stack with Prometheus having scraped, and a fluent CLI runner.

use std::time::Duration;

pub use fluo_teststack::TestInfra;
use fluo_teststack::{Cli, Ran, Stack, eventually};

pub use super::grafana_stand_in::GrafanaStandIn;

/// The full local stack, once Prometheus has scraped the BFF and the worker successfully.
pub async fn healthy_stack() -> Stack {
    let stack = Stack::start()
        .await
        .unwrap_or_else(|e| panic!("starting the local stack: {e}"));
    wait_targets_up(&stack, 2).await;
    stack
}

/// The full local stack secured as deployed (NATS users and TLS, BFF API tokens), once
/// Prometheus has scraped it.
pub async fn secured_healthy_stack() -> Stack {
    let stack = Stack::builder()
        .all()
        .secured()
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting the secured local stack: {e}"));
    wait_targets_up(&stack, 2).await;
    stack
}

/// The flags giving fluo-health a secured stack's tokens and CA.
pub fn secured_flags(stack: &Stack) -> Vec<String> {
    let dir = &stack.secured().expect("a secured stack").dir;
    let file = |name: &str| dir.join(name).display().to_string();
    vec![
        "--api-token-file".into(),
        file("tests.token"),
        "--api-read-token-file".into(),
        file("reader.token"),
        "--nats-ca-file".into(),
        file("ca.crt"),
    ]
}

/// Until Prometheus reports `n` targets up and has FLUO BFF series.
pub async fn wait_targets_up(stack: &Stack, n: usize) {
    eventually("prometheus targets up", Duration::from_secs(60), || async {
        let up = stack.query_prometheus("up == 1").await?;
        let bff = stack.query_prometheus("fluo_bff_build_info").await?;
        Ok::<_, fluo_teststack::Error>((up.len() >= n && !bff.is_empty()).then_some(()))
    })
    .await
    .expect("prometheus scrapes the stack");
}

/// The direct-access URLs of a stack plus a Grafana stand-in.
pub fn stack_urls(stack: &Stack, grafana: &GrafanaStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("bff", stack.bff_url()),
        ("nats-monitor", stack.nats_monitor_url()),
        ("prometheus", stack.prometheus_url()),
        ("grafana", grafana.url()),
        ("worker", stack.worker_url()),
    ]
}

/// fluo-health pointed at `infra`.
pub fn fluo_health(infra: &TestInfra) -> Cli {
    Cli::new(env!("CARGO_BIN_EXE_fluo-health")).infra(infra)
}

/// fluo-health running only `checks` (comma-separated) against `infra`, reporting JSON.
pub async fn run_checks(infra: &TestInfra, checks: &str) -> Ran {
    let args = ["--check", checks, "-o", "json"];
    fluo_health(infra).args(args).run().await
}
