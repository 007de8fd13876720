//! Pod outcomes chosen from the spec, logs and port-forward.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;

fn pod(name: &str, image: &str, annotations: serde_json::Value) -> Pod {
    from_json(
        json!({"metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": image}]}}),
    )
}

fn waiting_reason(p: Option<&Pod>) -> Option<String> {
    p?.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn is_ready(p: Option<&Pod>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn image_pull_failures_progress_to_backoff() {
    let emu = emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    pods.create(
        &PostParams::default(),
        &pod("pull", "ghcr.io/acme/does-not-exist:1", json!({})),
    )
    .await
    .unwrap();
    wait_for(&pods, "pull", "ErrImagePull", |p: Option<&Pod>| {
        waiting_reason(p).as_deref() == Some("ErrImagePull")
    })
    .await;
    wait_for(&pods, "pull", "ImagePullBackOff", |p: Option<&Pod>| {
        waiting_reason(p).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    assert!(!is_ready(pods.get("pull").await.ok().as_ref()));
}

#[tokio::test]
async fn missing_config_key_blocks_until_created() {
    let emu = emulator().await;
    let client = emu.client().await;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let p: Pod = from_json(
        json!({"metadata": {"name": "cfg"}, "spec": {"containers": [{"name": "app", "image": "app:1",
        "env": [{"name": "URL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "url"}}}]}]}}),
    );
    pods.create(&PostParams::default(), &p).await.unwrap();
    let stuck = wait_for(
        &pods,
        "cfg",
        "CreateContainerConfigError",
        |p: Option<&Pod>| waiting_reason(p).as_deref() == Some("CreateContainerConfigError"),
    )
    .await;
    let msg = stuck.status.unwrap().container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .waiting
        .unwrap()
        .message
        .unwrap();
    assert_eq!(msg, "configmap \"settings\" not found");
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.create(
        &PostParams::default(),
        &from_json(json!({"metadata": {"name": "settings"}, "data": {"url": "x"}})),
    )
    .await
    .unwrap();
    wait_for(&pods, "cfg", "pod ready once the key exists", is_ready).await;
}

#[tokio::test]
async fn annotations_control_readiness() {
    let emu = emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    pods.create(
        &PostParams::default(),
        &pod(
            "never",
            "app:1",
            json!({"kube-emulator.fluo.dev/never-ready": "true"}),
        ),
    )
    .await
    .unwrap();
    pods.create(
        &PostParams::default(),
        &pod(
            "slow",
            "app:1",
            json!({"kube-emulator.fluo.dev/ready-after": "1s"}),
        ),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("fast", "app:1", json!({})))
        .await
        .unwrap();
    wait_for(&pods, "fast", "default pod ready", is_ready).await;
    let never = wait_for(
        &pods,
        "never",
        "never-ready pod running",
        |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Running")
        },
    )
    .await;
    assert!(!is_ready(Some(&never)));
    wait_for(&pods, "slow", "slow pod ready", is_ready).await;
    let pod_ip = pods
        .get("slow")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    assert!(pod_ip.starts_with("10.244."));
    // Still not ready after the slow one made it.
    assert!(!is_ready(pods.get("never").await.ok().as_ref()));
}

#[tokio::test]
async fn logs_are_deterministic_and_extend_with_annotations() {
    let emu = emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    let p: Pod = from_json(json!({"metadata": {"name": "talk", "annotations": {
            "kube-emulator.fluo.dev/log": "ready to serve\nERROR lost connection to nats"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:1"}]}}));
    pods.create(&PostParams::default(), &p).await.unwrap();
    wait_for(&pods, "talk", "pod ready", is_ready).await;
    let text = pods
        .logs(
            "talk",
            &LogParams {
                container: Some("app".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        text,
        "kube-emulator: container app of pod default/talk started (image app:1)\nready to serve\nERROR lost connection to nats\n"
    );
    let tail = pods
        .logs(
            "talk",
            &LogParams {
                container: Some("side".into()),
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "ERROR lost connection to nats\n");
    let e = pods.logs("talk", &LogParams::default()).await.unwrap_err();
    match e {
        kube::Error::Api(s) => assert!(
            s.message.contains(
                "a container name must be specified for pod talk, choose one of: [app side]"
            ),
            "{}",
            s.message
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn port_forward_relays_to_the_annotated_address() {
    let emu = emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    // A local "pod process": answers each connection with a greeting, then echoes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let _ = s.write_all(&[b"echo:", &buf[..n]].concat()).await;
            });
        }
    });
    pods.create(
        &PostParams::default(),
        &pod(
            "fwd",
            "app:1",
            json!({"kube-emulator.fluo.dev/port-forward": format!("8222={target}")}),
        ),
    )
    .await
    .unwrap();
    wait_for(&pods, "fwd", "pod ready", is_ready).await;
    let mut pf = pods
        .portforward("fwd", &[8222])
        .await
        .expect("port-forward upgrades");
    let mut stream = pf.take_stream(8222).expect("stream for port");
    stream.write_all(b"ping").await.unwrap();
    let mut got = Vec::new();
    within(WAIT, "echo through the port-forward", async {
        let mut buf = [0u8; 64];
        while got.len() < 9 {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert_eq!(&got, b"echo:ping");
    drop(stream);
    within(WAIT, "port-forward to close", pf.join()).await.ok();
}

#[tokio::test]
async fn port_forward_reaches_a_real_nats_server() {
    let nats = which("nats-server")
        .unwrap_or_else(|| panic!("nats-server is required: apt-get install nats-server"));
    let port = free_port();
    let mut child = KillOnDrop(
        std::process::Command::new(nats)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-m",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts"),
    );
    let _ = &mut child;
    let emu = emulator().await;
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    pods.create(
        &PostParams::default(),
        &pod(
            "nats-0",
            "nats:2.10",
            json!({"kube-emulator.fluo.dev/port-forward": format!("8222=127.0.0.1:{port}")}),
        ),
    )
    .await
    .unwrap();
    wait_for(&pods, "nats-0", "pod ready", is_ready).await;
    let body = eventually("nats /varz through the port-forward", || async {
        let mut pf = pods.portforward("nats-0", &[8222]).await.ok()?;
        let mut s = pf.take_stream(8222)?;
        s.write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        text.contains("server_id").then_some(text)
    })
    .await;
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/usr/bin".into()])
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}
