//! The post-deploy monitor against real Prometheus scraping a real BFF: a BFF made to answer
//! 5xx crosses the error-ratio threshold and the rollback runs once; a healthy BFF does not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluo_health::endpoint::Endpoint;
use fluo_health::monitor::{self, Breach, Verdict};
use fluo_teststack::{Stack, eventually};

/// Requests to the BFF in the background, so the ratio has traffic to measure.
fn traffic(bff_url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = fluo_health::endpoint::http_client(Duration::from_secs(5));
        loop {
            let _ = http.get(format!("{bff_url}/health")).send().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

async fn stack(fault_ratio: &str) -> Stack {
    let stack = Stack::builder()
        .nats()
        .bff()
        .prometheus()
        .bff_env("FLUO_BFF_FAULT_5XX_RATIO", fault_ratio)
        .scrape_interval(Duration::from_millis(500))
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting nats, the BFF and prometheus: {e}"));
    eventually(
        "prometheus to scrape the BFF",
        Duration::from_secs(60),
        || async {
            let up = stack.query_prometheus("up{job=\"fluo-bff\"} == 1").await?;
            Ok::<_, fluo_teststack::Error>((!up.is_empty()).then_some(()))
        },
    )
    .await
    .unwrap();
    stack
}

fn config(duration: Duration) -> monitor::Config {
    monitor::Config {
        duration,
        interval: Duration::from_millis(500),
        max_error_ratio: 0.05,
        max_restarts: 3,
        max_backlog: 1000,
        queries: monitor::Queries::fluo(Duration::from_secs(5)),
    }
}

#[tokio::test]
async fn error_ratio_over_the_threshold_triggers_the_rollback_once() {
    let stack = stack("0.5").await;
    let _traffic = traffic(stack.bff_url());
    let prometheus = Endpoint::direct(&stack.prometheus_url());
    let calls: Arc<Mutex<Vec<Breach>>> = Arc::default();
    let recorded = Arc::clone(&calls);

    let report = monitor::run_with_rollback(
        &config(Duration::from_secs(120)),
        &prometheus,
        None,
        |_| {},
        |breach| async move {
            recorded.lock().unwrap().push(breach);
            Ok("rolled back bff to revision 1".to_owned())
        },
    )
    .await;

    let Verdict::Breached {
        breach: Breach::ErrorRatio { value, max },
    } = &report.verdict
    else {
        panic!("expected an error-ratio breach, got {:?}", report.verdict);
    };
    assert!(*value > 0.05 && *max == 0.05, "ratio {value}");
    assert_eq!(calls.lock().unwrap().len(), 1, "rollback ran exactly once");
    assert_eq!(
        report.rollback.as_ref().map(|r| (r.ok, r.message.as_str())),
        Some((true, "rolled back bff to revision 1"))
    );
    assert_eq!(report.exit(), fluo_core::exit::Exit::Failed);
    assert!(report.samples.last().unwrap().error_ratio.unwrap() > 0.05);
}

#[tokio::test]
async fn healthy_bff_passes_the_watch_without_a_rollback() {
    let stack = stack("0").await;
    let _traffic = traffic(stack.bff_url());
    let prometheus = Endpoint::direct(&stack.prometheus_url());
    let mut samples = 0;

    let report = monitor::run_with_rollback(
        &config(Duration::from_secs(3)),
        &prometheus,
        None,
        |_| samples += 1,
        |breach| async move { Err(format!("no rollback expected, got {breach}")) },
    )
    .await;

    assert_eq!(report.verdict, Verdict::Healthy, "{:?}", report.samples);
    assert!(report.rollback.is_none());
    assert!(samples >= 2, "sampled every interval, got {samples}");
    assert_eq!(report.exit(), fluo_core::exit::Exit::Ok);
}

#[tokio::test]
async fn unreachable_prometheus_ends_the_watch_blind_not_breached() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prometheus = Endpoint::direct(&format!("http://127.0.0.1:{port}"));
    let report = monitor::run(&config(Duration::from_secs(60)), &prometheus, None, |_| {}).await;
    let Verdict::Blind { reason } = &report.verdict else {
        panic!("expected blind, got {:?}", report.verdict);
    };
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    assert_eq!(report.samples.len(), monitor::MAX_BLIND_SAMPLES as usize);
    assert_eq!(report.exit(), fluo_core::exit::Exit::Failed);
}
