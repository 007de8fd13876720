//! Canary and blue-green rollouts (issue 17) on the emulator, analysed by a real Prometheus
//! fed by a stand-in exporter (`metrics_stand_in`): step progression and promotion, abort on a
//! failed analysis with the stable pods untouched, manual gates, the blue-green switch, a
//! switch-back within the window without new pods, blue gone after its window, and bad
//! strategy configuration refused with nothing changed.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};

use crate::harness::{LOCAL_ENV, World};
use crate::metrics_stand_in::Stand;
use crate::{assert_untouched, image_of};

const CANARY: &str = r#"
[strategy.components.bff]
kind = "canary"
steps = [50, 100]
pause = "1s"
[strategy.components.bff.analysis]
interval = "1s"
samples = 2
window = "2s"
[[strategy.components.bff.analysis.checks]]
metric = "http-5xx-ratio"
max = 0.05
[[strategy.components.bff.analysis.checks]]
metric = "http-p99-seconds"
max = 0.5
[[strategy.components.bff.analysis.checks]]
name = "bff-errors"
query = 'sum(rate(fluo_bff_http_requests_total{status=~"5..",{pods}}[{window}])) / sum(rate(fluo_bff_http_requests_total{{pods}}[{window}]))'
max = 0.05
"#;

const BLUE_GREEN: &str = r#"
[strategy.components.bff]
kind = "blue-green"
pause = "1s"
keep_blue = "KEEP"
[strategy.components.bff.analysis]
interval = "1s"
samples = 2
window = "2s"
[[strategy.components.bff.analysis.checks]]
metric = "http-5xx-ratio"
max = 0.05
"#;

/// The local fixture environment with `strategy` and the stand's Prometheus.
pub fn environment(stand: &Stand, strategy: &str) -> String {
    let env = LOCAL_ENV.replace(
        r#"prometheus = "http://127.0.0.1:9""#,
        &format!(r#"prometheus = "{}""#, stand.prometheus_url),
    );
    format!("{env}{strategy}")
}

async fn world(strategy: &str) -> (World, Stand) {
    let w = World::start().await;
    let stand = Stand::start(w.client.clone()).await;
    w.infra
        .write("environments/local.toml", &environment(&stand, strategy));
    (w, stand)
}

/// BFF pods: name -> (uid, image).
pub async fn bff_pods(client: &kube::Client) -> BTreeMap<String, (String, String)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "fluo");
    let pods = api
        .list(&ListParams::default().labels("app=bff"))
        .await
        .expect("list pods");
    pods.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let image = p.spec.as_ref().unwrap().containers[0].image.clone();
            (
                p.metadata.name.unwrap(),
                (p.metadata.uid.unwrap(), image.unwrap_or_default()),
            )
        })
        .collect()
}

pub async fn deployment_exists(client: &kube::Client, name: &str) -> bool {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "fluo");
    api.get_opt(name).await.expect("get deployment").is_some()
}

/// The `fluo.dev/slot` the bff Service selects.
async fn selected_slot(client: &kube::Client) -> Option<String> {
    let api: Api<Service> = Api::namespaced(client.clone(), "fluo");
    let svc = api.get("bff").await.expect("get service bff");
    svc.spec?.selector?.get("fluo.dev/slot").cloned()
}

/// Polls `check` every 50 ms for up to `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 20 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {secs}s: {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_aborts_on_failed_analysis_with_stable_untouched_then_promotes_a_good_one() {
    let (w, stand) = world(CANARY).await;
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(0)
        .stderr_has("first revision is rolled out directly");
    let stable = bff_pods(&w.client).await;
    assert_eq!(stable.len(), 2, "{stable:?}");

    stand.fault("fluo/fluo-bff:bad");
    let bad = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:bad"])
        .run()
        .await;
    bad.code(1)
        .stderr_has("step 1/2 (50%): 1 canary pod(s) beside 2 stable")
        .stderr_has("http-5xx-ratio 0.5000 (max 0.0500) FAILS")
        // The custom PromQL check, on the same real Prometheus.
        .stderr_has("bff-errors 0.5000 (max 0.0500) FAILS")
        .stderr_has("canary aborted")
        .stdout_has("aborted, stable untouched");
    assert_eq!(bff_pods(&w.client).await, stable, "stable pods untouched");
    assert!(!deployment_exists(&w.client, "bff-canary").await);
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:dev")
    );
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    let entries = history.code(0).json();
    let aborted = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["revision"] == 2)
        .cloned()
        .unwrap();
    assert_eq!(aborted["status"], "aborted", "{aborted}");
    let steps = aborted["steps"].to_string();
    assert!(
        steps.contains("http-5xx-ratio 0.5000") && steps.contains("aborted: step 1/2"),
        "{steps}"
    );
    w.cmd(["status", "bff"])
        .run()
        .await
        .code(0)
        .stdout_has("PROGRESSIVE ROLLOUTS")
        .stdout_has("aborted: step 1/2 (50%): analysis failed");

    let good = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await;
    good.code(0)
        .stderr_has("step 1/2 (50%): 1 canary pod(s) beside 2 stable")
        .stderr_has("step 2/2 (100%): 2 canary pod(s) beside 2 stable")
        .stderr_has("sample 2/2: http-5xx-ratio 0.0000")
        .stderr_has("promoting");
    let first = good.line_of("step 1/2 (50%)");
    assert!(first < good.line_of("step 2/2 (100%)"));
    assert!(good.line_of("step 2/2 (100%)") < good.line_of("promoting"));
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:2")
    );
    assert!(!deployment_exists(&w.client, "bff-canary").await);
    let history = w.cmd(["history", "bff"]).run().await;
    history
        .code(0)
        .stdout_has("bff v3 steps:")
        .stdout_has("step 2/2 (100%)");
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_gate_waits_for_promote_and_abort_removes_the_canary() {
    let (w, _stand) =
        world(&CANARY.replace("pause = \"1s\"", "pause = \"0s\"\ngates = [50]")).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let stable = bff_pods(&w.client).await;
    w.cmd(["abort", "bff"])
        .run()
        .await
        .code(2)
        .stderr_has("bff has no progressive rollout (nothing changed)");

    let waiting = || async {
        let s = w.cmd(["status", "bff"]).run().await;
        s.stdout.contains("waiting for `fluo-deploy promote bff`")
    };
    let deploy = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .command()
        .spawn()
        .expect("deploy starts");
    eventually(60, "the canary waits at its gate", waiting).await;
    w.cmd(["promote", "bff"])
        .run()
        .await
        .code(0)
        .stdout_has("promote requested");
    let out = deploy.wait_with_output().await.expect("deploy ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("promoted by tester"), "{stderr}");

    let deploy = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:3"])
        .command()
        .spawn()
        .expect("deploy starts");
    eventually(60, "the canary waits at its gate", waiting).await;
    let promoted = bff_pods(&w.client).await;
    w.cmd(["abort", "bff"]).run().await.code(0);
    let out = deploy.wait_with_output().await.expect("deploy ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("aborted by tester"), "{stderr}");
    assert!(!deployment_exists(&w.client, "bff-canary").await);
    let after: BTreeMap<_, _> = bff_pods(&w.client).await;
    let stable_now: BTreeMap<_, _> = promoted
        .into_iter()
        .filter(|(_, (_, image))| image == "fluo/fluo-bff:2")
        .collect();
    assert_eq!(after, stable_now, "stable pods untouched");
    assert_ne!(stable, stable_now);
}

#[tokio::test(flavor = "multi_thread")]
async fn blue_green_switches_rolls_back_without_new_pods_and_retires_blue() {
    let (w, stand) = world(&BLUE_GREEN.replace("KEEP", "60s")).await;
    w.cmd(["deploy", "--all"]).run().await.code(0);
    assert_eq!(selected_slot(&w.client).await.as_deref(), Some("blue"));
    assert_eq!(
        image_of(&w.client, "bff-blue").await.as_deref(),
        Some("fluo/fluo-bff:dev")
    );

    // Green in the other slot; the switch happens after its analysis; blue stays.
    let deploy = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .command()
        .spawn()
        .expect("deploy starts");
    let client = w.client.clone();
    eventually(60, "the Service selects green", || {
        let client = client.clone();
        async move { selected_slot(&client).await.as_deref() == Some("green") }
    })
    .await;
    assert!(deployment_exists(&w.client, "bff-blue").await, "blue kept");
    assert!(!deployment_exists(&w.client, "bff-preview").await);
    let before = bff_pods(&w.client).await;
    assert_eq!(before.len(), 4, "blue and green both scaled: {before:?}");

    // Rollback within the window: the selector switches back, no pod is created.
    w.cmd(["rollback", "bff", "--reason", "green misbehaves"])
        .run()
        .await
        .code(0);
    assert_eq!(selected_slot(&w.client).await.as_deref(), Some("blue"));
    let after = bff_pods(&w.client).await;
    assert!(
        after.keys().all(|p| before.contains_key(p)),
        "no new pods: before {before:?}, after {after:?}"
    );
    assert!(!deployment_exists(&w.client, "bff-green").await);
    let out = deploy.wait_with_output().await.expect("deploy ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no longer kept: v3 is current"), "{stderr}");

    // A faulty green is aborted: blue keeps serving, green is removed.
    stand.fault("fluo/fluo-bff:bad");
    w.cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:bad"])
        .run()
        .await
        .code(1)
        .stderr_has("green aborted");
    assert_eq!(selected_slot(&w.client).await.as_deref(), Some("blue"));
    assert!(!deployment_exists(&w.client, "bff-green").await);

    // With a 1s window the deploy retires blue itself.
    w.infra.write(
        "environments/local.toml",
        &environment(&stand, &BLUE_GREEN.replace("KEEP", "1s")),
    );
    w.cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:3"])
        .run()
        .await
        .code(0)
        .stderr_has("retired");
    assert_eq!(selected_slot(&w.client).await.as_deref(), Some("green"));
    assert!(!deployment_exists(&w.client, "bff-blue").await, "blue gone");
    let pods = bff_pods(&w.client).await;
    assert!(
        pods.values().all(|(_, image)| image == "fluo/fluo-bff:3"),
        "{pods:?}"
    );
    w.cmd(["status", "bff"])
        .run()
        .await
        .code(0)
        .stdout_has("blue bff-blue (v3) retired");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_strategy_config_is_refused_and_nothing_changes() {
    let w = World::start().await;
    w.infra.write(
        "environments/local.toml",
        &format!("{LOCAL_ENV}\n[strategy.components.bff]\nkind = \"canary\"\nsteps = [10, 50]\n"),
    );
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(2)
        .stderr_has("environments/local.toml: `strategy.components.bff.steps` = [10, 50]: must list canary percentages ending at 100");
    assert_untouched(&w.client).await;
    // A custom query that cannot tell the canary's pods from the stable ones.
    w.infra.write(
        "environments/local.toml",
        &format!(
            "{LOCAL_ENV}{}",
            CANARY.replace("{pods}", "job=\"fluo-bff\"")
        ),
    );
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(2)
        .stderr_has(
            "environments/local.toml: `strategy.components.bff.analysis.checks[2].query` = ",
        )
        .stderr_has("must select the sampled pods with {pods}");
    assert_untouched(&w.client).await;
    // An unknown traffic mode, and Ingress weights for a component without an Ingress.
    let with_traffic = |traffic: &str| {
        format!(
            "{LOCAL_ENV}{}",
            CANARY.replace(
                "kind = \"canary\"",
                &format!("kind = \"canary\"\ntraffic = \"{traffic}\"")
            )
        )
    };
    w.infra
        .write("environments/local.toml", &with_traffic("weights"));
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(2)
        .stderr_has("environments/local.toml")
        .stderr_has("traffic")
        .stderr_has("unknown variant `weights`");
    assert_untouched(&w.client).await;
    w.infra
        .write("environments/local.toml", &with_traffic("ingress"));
    w.cmd(["deploy", "--all"])
        .run()
        .await
        .code(2)
        .stderr_has("environments/local.toml: `strategy.components.bff.traffic` = \"ingress\": component bff needs an Ingress of class \"nginx\"")
        .stderr_has("it declares no Ingress");
    assert_untouched(&w.client).await;
}
