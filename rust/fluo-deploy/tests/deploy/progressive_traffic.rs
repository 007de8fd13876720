//! Where requests go during progressive rollouts (issue 17), on the emulator: a blue-green green
//! is checked through its preview Service before the switch and, failing, is removed with blue
//! serving and never in the Service's endpoints (also when blue came from a rolling revision, so
//! its Service has no slot); an Ingress-weighted canary (`traffic = "ingress"`) gets a canary
//! Service and an ingress-nginx canary Ingress weighted per step, the stable Service pinned to
//! the stable pods, all removed on promotion and on abort with the stable pods untouched.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{BFF, LOCAL_ENV, World, workload};
use crate::image_of;
use crate::metrics_stand_in::Stand;
use crate::progressive::{bff_pods, deployment_exists, environment};

/// An HTTP server answering every request with 500; counts the requests.
async fn failing_bff() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::Relaxed);
                let body = "green is broken";
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, hits)
}

/// The bff manifest whose pods port-forward to `addr` (kube-emulator's simulated kubelet).
fn bff_forwarding_to(addr: SocketAddr) -> String {
    workload("bff", "fluo/fluo-bff:dev").replace(
        "    metadata:\n      labels: {app: bff}\n",
        &format!(
            "    metadata:\n      labels: {{app: bff}}\n      annotations: {{kube-emulator.fluo.dev/port-forward: \"{addr}\"}}\n"
        ),
    )
}

async fn selector(client: &kube::Client) -> BTreeMap<String, String> {
    let api: Api<Service> = Api::namespaced(client.clone(), "fluo");
    let svc = api.get("bff").await.expect("get service bff");
    svc.spec.and_then(|s| s.selector).unwrap_or_default()
}

/// The pods behind the bff Service's endpoints.
async fn endpoint_pods(client: &kube::Client) -> Vec<String> {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "fluo");
    let Ok(Some(eps)) = api.get_opt("bff").await else {
        return vec![];
    };
    eps.subsets
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.addresses.unwrap_or_default())
        .filter_map(|a| a.target_ref?.name)
        .collect()
}

/// Watches the bff Service's endpoints (every 20 ms) until stopped: every pod seen there.
struct EndpointWatch {
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl EndpointWatch {
    fn start(client: kube::Client) -> EndpointWatch {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            // Bounded: 180 s at most.
            for _ in 0..9000 {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                for pod in endpoint_pods(&client).await {
                    let mut s = s.lock().unwrap();
                    if !s.contains(&pod) {
                        s.push(pod);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        EndpointWatch { seen, stop, task }
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("watch ends");
        self.seen.lock().unwrap().clone()
    }
}

const BLUE_GREEN: &str = r#"
[strategy.components.bff]
kind = "blue-green"
pause = "0s"
keep_blue = "60s"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_green_failing_its_checks_through_the_preview_never_serves_and_blue_keeps_serving() {
    let w = World::start().await;
    // Blue comes from a rolling revision: its Service selects no slot.
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let blue = bff_pods(&w.client).await;
    assert_eq!(selector(&w.client).await.len(), 1, "app=bff only");

    let (addr, hits) = failing_bff().await;
    w.infra.write(
        "components/bff/manifests/bff.yaml",
        &bff_forwarding_to(addr),
    );
    // The checks know the BFF's Service from its [[health]] entry.
    let health =
        "\n[[health]]\nname = \"bff-health\"\nservice = \"bff\"\nport = 8080\npath = \"/health\"\n";
    w.infra
        .write("components/bff/component.toml", &format!("{BFF}{health}"));
    let checks_on = LOCAL_ENV.replace("post_deploy_checks = false", "post_deploy_checks = true");
    w.infra.write(
        "environments/local.toml",
        &format!("{checks_on}{BLUE_GREEN}"),
    );
    let watch = EndpointWatch::start(w.client.clone());
    let run = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await;
    let served = watch.stop().await;
    run.code(1)
        .stderr_has("pinned to the stable pods (pod-template-hash=")
        .stderr_has("green: health and smoke checks through bff-preview")
        .stderr_has("checks through the preview failed")
        .stderr_has("smoke bff-health: GET /health answered 500")
        .stderr_has("green aborted")
        .stderr_has("stable Services unpinned");
    assert!(hits.load(Ordering::Relaxed) > 0, "green's server was asked");
    assert!(
        served.iter().all(|p| blue.contains_key(p)),
        "only blue's pods were ever behind the Service: {served:?} (blue {blue:?})"
    );
    assert_eq!(bff_pods(&w.client).await, blue, "blue's pods untouched");
    assert_eq!(
        selector(&w.client).await,
        BTreeMap::from([("app".to_string(), "bff".to_string())]),
        "the selector is blue's again (unpinned)"
    );
    assert!(
        !deployment_exists(&w.client, "bff-blue").await,
        "green removed"
    );
    let services: Api<Service> = Api::namespaced(w.client.clone(), "fluo");
    assert!(services.get_opt("bff-preview").await.unwrap().is_none());
    let history = w.cmd(["history", "bff", "-o", "json"]).run().await;
    let entries = history.code(0).json();
    let v2 = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["revision"] == 2)
        .cloned()
        .expect("v2 recorded");
    assert_eq!(v2["status"], "aborted", "{v2}");
    assert!(
        v2["steps"].to_string().contains("smoke bff-health"),
        "the evidence is recorded: {v2}"
    );

    // Without the checks green goes ahead: the switch leaves the selector on its slot, unpinned.
    w.infra.write(
        "environments/local.toml",
        &format!("{LOCAL_ENV}{BLUE_GREEN}"),
    );
    let _deploy = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:3"])
        .command()
        .spawn()
        .expect("deploy starts");
    let client = w.client.clone();
    crate::progressive::eventually(60, "the Service selects slot blue", || {
        let client = client.clone();
        async move {
            selector(&client)
                .await
                .get("fluo.dev/slot")
                .map(String::as_str)
                == Some("blue")
        }
    })
    .await;
    assert_eq!(
        selector(&w.client).await,
        BTreeMap::from([
            ("app".to_string(), "bff".to_string()),
            ("fluo.dev/slot".to_string(), "blue".to_string())
        ])
    );
}

const CANARY_INGRESS: &str = r#"
[strategy.components.bff]
kind = "canary"
traffic = "ingress"
steps = [50, 100]
pause = "1s"
[strategy.components.bff.analysis]
interval = "1s"
samples = 1
window = "2s"
[[strategy.components.bff.analysis.checks]]
metric = "http-5xx-ratio"
max = 0.05
"#;

const INGRESS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bff
spec:
  ingressClassName: nginx
  rules:
  - host: fluo-api.localhost
    http:
      paths:
      - path: /api
        pathType: Prefix
        backend:
          service: {name: bff, port: {number: 8080}}
"#;

/// Watches the canary Ingress's weight until stopped: each weight seen, in order, and the
/// canary pods seen behind the stable Service while the weight was below 100 (at 100 the
/// promotion's converge unpins the Service while the canary still runs).
fn watch_weights(
    client: kube::Client,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<String>, Vec<String>)> {
    tokio::spawn(async move {
        let api: Api<Ingress> = Api::namespaced(client.clone(), "fluo");
        let (mut weights, mut leaked): (Vec<String>, Vec<String>) = (vec![], vec![]);
        for _ in 0..9000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(Some(i)) = api.get_opt("bff-canary").await {
                let w = i.metadata.annotations.unwrap_or_default()
                    ["nginx.ingress.kubernetes.io/canary-weight"]
                    .clone();
                if w != "100" {
                    leaked.extend(
                        endpoint_pods(&client)
                            .await
                            .into_iter()
                            .filter(|p| p.starts_with("bff-canary-")),
                    );
                }
                if weights.last() != Some(&w) {
                    weights.push(w);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (weights, leaked)
    })
}

async fn canary_objects_exist(client: &kube::Client) -> (bool, bool) {
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "fluo");
    let services: Api<Service> = Api::namespaced(client.clone(), "fluo");
    (
        ingresses.get_opt("bff-canary").await.unwrap().is_some(),
        services.get_opt("bff-canary").await.unwrap().is_some(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ingress_weighted_canary_sets_the_weight_per_step_and_its_abort_removes_it() {
    let w = World::start().await;
    let stand = Stand::start(w.client.clone()).await;
    w.infra
        .write("components/bff/manifests/ingress.yaml", INGRESS);
    w.infra.write(
        "environments/local.toml",
        &environment(&stand, CANARY_INGRESS),
    );
    w.cmd(["deploy", "--all"]).run().await.code(0);
    let stable = bff_pods(&w.client).await;
    let unpinned = selector(&w.client).await;

    let stop = Arc::new(AtomicBool::new(false));
    let weights = watch_weights(w.client.clone(), stop.clone());
    let good = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:2"])
        .run()
        .await;
    stop.store(true, Ordering::Relaxed);
    let (weights, leaked) = weights.await.unwrap();
    good.code(0)
        .stderr_has("pinned to the stable pods")
        .stderr_has(
            "step 1/2 (50%): 1 canary pod(s) beside 2 stable (50% of the Ingress's requests)",
        )
        .stderr_has("step 1/2 (50%): canary-weight 50 on Ingress bff-canary")
        .stderr_has("step 2/2 (100%): canary-weight 100 on Ingress bff-canary")
        .stderr_has("promoting");
    assert_eq!(weights, ["50", "100"], "the weight per step");
    assert!(
        leaked.is_empty(),
        "the stable Service selected canary pods at weight 50: {leaked:?}"
    );
    assert_eq!(canary_objects_exist(&w.client).await, (false, false));
    assert!(!deployment_exists(&w.client, "bff-canary").await);
    assert_eq!(selector(&w.client).await, unpinned, "unpinned at promotion");
    assert_eq!(
        image_of(&w.client, "bff").await.as_deref(),
        Some("fluo/fluo-bff:2")
    );
    assert_ne!(bff_pods(&w.client).await, stable);

    // A failing canary: aborted at its first weight, everything of it removed, stable untouched.
    let stable = bff_pods(&w.client).await;
    stand.fault("fluo/fluo-bff:bad");
    let watch = EndpointWatch::start(w.client.clone());
    let bad = w
        .cmd(["deploy", "bff", "--image", "fluo-bff=fluo/fluo-bff:bad"])
        .run()
        .await;
    let served = watch.stop().await;
    assert!(
        served.iter().all(|p| stable.contains_key(p)),
        "only the stable pods were ever behind the stable Service: {served:?}"
    );
    bad.code(1)
        .stderr_has("canary-weight 50 on Ingress bff-canary")
        .stderr_has("http-5xx-ratio 0.5000 (max 0.0500) FAILS")
        .stderr_has("canary aborted")
        .stderr_has("stable Services unpinned");
    assert_eq!(canary_objects_exist(&w.client).await, (false, false));
    assert!(!deployment_exists(&w.client, "bff-canary").await);
    assert_eq!(bff_pods(&w.client).await, stable, "stable pods untouched");
    assert_eq!(
        selector(&w.client).await,
        unpinned,
        "unpinned after the abort"
    );
}
