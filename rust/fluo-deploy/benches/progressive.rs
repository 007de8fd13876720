//! Benchmarks of progressive delivery (docs/performance/progressive.md), on kube-emulator with a
//! real Prometheus scraping the tests' stand-in exporter:
//! - blue-green switch-back: from starting `fluo-deploy rollback bff` to the Service selecting
//!   blue again (target < 1 s), RUNS times;
//! - canary analysis decision latency: from the canary's 5xx ratio crossing the threshold in
//!   Prometheus to the deploy's failing sample (target: within one sample interval, 1 s).
//!
//!   cargo test -p fluo-deploy --bench progressive [--release]   (RUNS=5 by default)

#[allow(dead_code)]
#[path = "../tests/deploy/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../tests/deploy/metrics_stand_in.rs"]
mod metrics_stand_in;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use tokio::io::{AsyncBufReadExt, BufReader};

use harness::{LOCAL_ENV, World};
use metrics_stand_in::Stand;

const BLUE_GREEN: &str =
    "\n[strategy.components.bff]\nkind = \"blue-green\"\nkeep_blue = \"10m\"\n";
const CANARY: &str = "\n[strategy.components.bff]\nkind = \"canary\"\nsteps = [100]\n\
[strategy.components.bff.analysis]\ninterval = \"1s\"\nsamples = 60\nwindow = \"1s\"\n\
[[strategy.components.bff.analysis.checks]]\nmetric = \"http-5xx-ratio\"\nmax = 0.05\n";

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let switch = switch_back(runs).await;
        report(
            "blue-green switch-back (rollback command -> Service selects blue)",
            &switch,
        );
        let mut decisions = Vec::new();
        for _ in 0..runs {
            decisions.push(decision_latency().await);
        }
        report(
            "canary analysis decision (threshold crossed in Prometheus -> failing sample)",
            &decisions,
        );
    });
}

fn report(what: &str, samples: &[Duration]) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "{what}: n={} min {:.0} ms, median {:.0} ms, max {:.0} ms",
        ms.len(),
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

async fn world(strategy: &str) -> (World, Stand) {
    let w = World::start().await;
    let stand = Stand::start(w.client.clone()).await;
    let env = LOCAL_ENV.replace(
        r#"prometheus = "http://127.0.0.1:9""#,
        &format!(r#"prometheus = "{}""#, stand.prometheus_url),
    );
    w.infra
        .write("environments/local.toml", &format!("{env}{strategy}"));
    (w, stand)
}

async fn slot(client: &kube::Client) -> Option<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), "fluo");
    api.get("bff")
        .await
        .ok()?
        .spec?
        .selector?
        .get("fluo.dev/slot")
        .cloned()
}

async fn wait_slot(client: &kube::Client, want: &str) {
    for _ in 0..60_000 {
        if slot(client).await.as_deref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the Service never selected {want}");
}

async fn switch_back(runs: usize) -> Vec<Duration> {
    let (w, _stand) = world(BLUE_GREEN).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let mut times = Vec::new();
    for i in 0..runs {
        let blue = slot(&w.client).await.expect("a slot");
        let green = if blue == "blue" { "green" } else { "blue" };
        let image = format!("fluo-bff=fluo/fluo-bff:{i}");
        let deploy = w
            .cmd(["deploy", "bff", "--image", &image])
            .command()
            .spawn()
            .unwrap();
        wait_slot(&w.client, green).await;
        let started = Instant::now();
        let rollback = w
            .cmd(["rollback", "bff", "--reason", "bench"])
            .command()
            .spawn()
            .unwrap();
        wait_slot(&w.client, &blue).await;
        times.push(started.elapsed());
        assert!(rollback.wait_with_output().await.unwrap().status.success());
        assert!(deploy.wait_with_output().await.unwrap().status.success());
    }
    times
}

/// The canary's 5xx ratio as Prometheus sees it now.
async fn canary_ratio(w: &World, stand: &Stand) -> Option<f64> {
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), "fluo");
    let list = pods
        .list(&ListParams::default().labels("fluo.dev/track=canary"))
        .await
        .ok()?;
    let ips: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    if ips.is_empty() {
        return None;
    }
    let m = ips
        .iter()
        .map(|ip| format!("{ip}:.*"))
        .collect::<Vec<_>>()
        .join("|");
    let q = format!(
        "sum(rate(fluo_bff_http_requests_total{{status=~\"5..\",instance=~\"{m}\"}}[1s])) / sum(rate(fluo_bff_http_requests_total{{instance=~\"{m}\"}}[1s]))"
    );
    let out = tokio::process::Command::new("curl")
        .args([
            "-s",
            "--data-urlencode",
            &format!("query={q}"),
            &format!("{}/api/v1/query", stand.prometheus_url),
        ])
        .output()
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

async fn decision_latency() -> Duration {
    let (w, stand) = world(CANARY).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let mut deploy = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:next"])
        .command()
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(deploy.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("sample 2/60") {
            break;
        }
    }
    stand.fault("fluo/fluo-bff:next");
    // Watch Prometheus for the crossing while the deploy's stderr is read for the decision.
    let crossed = async {
        loop {
            if canary_ratio(&w, &stand).await.is_some_and(|r| r > 0.05) {
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let decided = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("FAILS") {
                return Instant::now();
            }
        }
        panic!("the deploy ended without a failing sample");
    };
    let (crossed, decided) = tokio::join!(crossed, decided);
    assert!(!deploy.wait().await.unwrap().success());
    decided.saturating_duration_since(crossed)
}
