//! Through kube-emulator: port-forward mode reaching a real nats-server's /varz, pod readiness,
//! and the log scan finding a planted secret and redacting it.

use std::time::Duration;

use fluo_teststack::{Stack, eventually};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{Api, PostParams};
use kube_emulator::{Emulator, Options};
use serde_json::json;

use super::support::{TestInfra, fluo_health};

pub async fn emulator() -> (Emulator, kube::Client) {
    fluo_core::tls::install_crypto_provider();
    let emulator = Emulator::start(Options::default())
        .await
        .expect("kube-emulator starts");
    let client = emulator.client().await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "fluo"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace fluo");
    (emulator, client)
}

pub fn port_forward_env() -> TestInfra {
    TestInfra::new("pf", "kube-emulator", "[access]\nmode = \"port-forward\"\n")
}

/// A Service `name` selecting `app=<name>` on `port` -> the container port named `main`.
async fn service(client: &kube::Client, name: &str, port: u16) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": "main"}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), "fluo")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap_or_else(|e| panic!("create service {name}: {e}"));
}

/// A pod behind Service `app`, with extra annotations.
async fn pod(
    client: &kube::Client,
    name: &str,
    app: &str,
    image: &str,
    annotations: serde_json::Value,
) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}, "annotations": annotations},
        "spec": {"containers": [{"name": "main", "image": image, "ports": [{"name": "main", "containerPort": 18222}]}]}
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), "fluo")
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
}

pub async fn wait_ready(client: &kube::Client, name: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fluo");
    eventually(
        &format!("pod {name} ready"),
        Duration::from_secs(30),
        || async {
            let pod = pods.get(name).await?;
            Ok::<_, kube::Error>(fluo_core::portforward::is_ready(&pod).then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn port_forward_mode_reaches_a_real_nats_server_varz() {
    let stack = Stack::builder()
        .nats()
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting nats-server: {e}"));
    let (emulator, client) = emulator().await;
    service(&client, "nats", 8222).await;
    let monitor = stack.nats_monitor_url();
    let addr = monitor.trim_start_matches("http://");
    pod(
        &client,
        "nats-0",
        "nats",
        "fluo/nats:2.10",
        json!({"kube-emulator.fluo.dev/port-forward": format!("18222={addr}")}),
    )
    .await;
    wait_ready(&client, "nats-0").await;
    let infra = port_forward_env();

    let ran = fluo_health(&infra)
        .args([
            "--kubeconfig",
            &emulator.kubeconfig_path().display().to_string(),
        ])
        .args(["--check", "nats", "-o", "json"])
        .run()
        .await;
    ran.code(0);
    let (_, evidence) = ran.check("nats");
    assert!(
        evidence.starts_with("nats-server 2.") && evidence.contains("JetStream enabled"),
        "{evidence}"
    );
    assert!(
        evidence.ends_with("(port-forward pod/nats-0:18222)"),
        "{evidence}"
    );
}

#[tokio::test]
async fn pod_readiness_passes_when_every_component_is_ready_and_names_the_one_that_is_not() {
    let (emulator, client) = emulator().await;
    for (svc, port) in [
        ("nats", 8222),
        ("prometheus", 9090),
        ("grafana", 3000),
        ("fluo-bff", 8080),
        ("fluo-worker", 8081),
    ] {
        service(&client, svc, port).await;
        pod(&client, &format!("{svc}-0"), svc, "fluo/app:1", json!({})).await;
        wait_ready(&client, &format!("{svc}-0")).await;
    }
    let infra = port_forward_env();
    let kubeconfig = emulator.kubeconfig_path().display().to_string();

    let ran = fluo_health(&infra)
        .args(["--kubeconfig", &kubeconfig, "--check", "pods"])
        .run()
        .await;
    ran.code(0).stdout_has(
        "nats 1/1 ready, prometheus 1/1 ready, grafana 1/1 ready, bff 1/1 ready, workers 1/1 ready",
    );

    pod(
        &client,
        "fluo-bff-1",
        "fluo-bff",
        "fluo/fluo-bff:crashloop",
        json!({}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fluo");
    eventually(
        "the crashlooping pod to report its container",
        Duration::from_secs(30),
        || async {
            let pod = pods.get("fluo-bff-1").await?;
            let waiting = pod
                .status
                .and_then(|s| s.container_statuses)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.state.as_ref().and_then(|s| s.waiting.as_ref()).is_some())
                });
            Ok::<_, kube::Error>(waiting.then_some(()))
        },
    )
    .await
    .unwrap();
    let ran = fluo_health(&infra)
        .args(["--kubeconfig", &kubeconfig, "--check", "pods"])
        .run()
        .await;
    ran.code(1)
        .stdout_has("bff 1/2 ready, not ready: fluo-bff-1 (");
}

#[tokio::test]
async fn log_scan_finds_a_planted_secret_and_redacts_it() {
    let (emulator, client) = emulator().await;
    service(&client, "fluo-bff", 8080).await;
    pod(
        &client,
        "fluo-bff-0",
        "fluo-bff",
        "fluo/fluo-bff:dev",
        json!({"kube-emulator.fluo.dev/log": "INFO listening on 0.0.0.0:8080\nDEBUG connecting to nats://fluo:n4ts-s3cret@nats:4222"}),
    )
    .await;
    pod(
        &client,
        "fluo-worker-0",
        "fluo-worker",
        "fluo/fluo-worker:dev",
        json!({"kube-emulator.fluo.dev/log": "INFO job done"}),
    )
    .await;
    wait_ready(&client, "fluo-bff-0").await;
    wait_ready(&client, "fluo-worker-0").await;
    let infra = port_forward_env();

    let ran = fluo_health(&infra)
        .args([
            "--kubeconfig",
            &emulator.kubeconfig_path().display().to_string(),
        ])
        .args(["--check", "logs", "-o", "json"])
        .run()
        .await;
    ran.code(1).stdout_lacks("n4ts-s3cret");
    let evidence = ran.failed_check("logs");
    assert_eq!(
        evidence,
        "1 secret(s) in logs: fluo-bff-0/main line 3: url credentials: \
         DEBUG connecting to nats://fluo:[REDACTED]@nats:4222"
    );
}
