//! The real kubectl 1.32 `port-forward` against the emulator, over both of its transports: SPDY
//! tunnelled in a WebSocket (kubectl's default) and the plain `Upgrade: SPDY/3.1`
//! (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, also kubectl's fallback).

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use kube_emulator::Emulator;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::kubectl_cli::{INSTALL, require_kubectl};
use super::support::*;

const GREETING: &[u8] = b"hello from the target\n";

#[derive(Debug, Clone, Copy)]
enum Transport {
    /// SPDY inside a WebSocket (`SPDY/3.1+portforward.k8s.io`), kubectl's default.
    Tunnel,
    /// A plain HTTP/1.1 `Upgrade: SPDY/3.1`.
    Spdy,
}

impl Transport {
    fn websockets_env(self) -> &'static str {
        match self {
            Transport::Tunnel => "true",
            Transport::Spdy => "false",
        }
    }

    /// The method of the upgrade request, as kubectl -v=6 logs it.
    fn upgrade_method(self) -> &'static str {
        match self {
            Transport::Tunnel => "GET",
            Transport::Spdy => "POST",
        }
    }
}

/// A running `kubectl port-forward`, killed on drop.
struct PortForward {
    child: tokio::process::Child,
    local: SocketAddr,
    stderr: Arc<Mutex<String>>,
    _cache: tempfile::TempDir,
}

impl PortForward {
    /// Starts `kubectl port-forward <resource> :<port>` and waits for its
    /// "Forwarding from 127.0.0.1:NNNN -> <remote>" line (remote: the pod port kubectl resolved).
    async fn start(
        emu: &Emulator,
        transport: Transport,
        resource: &str,
        port: u16,
        remote: u16,
    ) -> Self {
        require_kubectl();
        let cache = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", emu.kubeconfig_path())
            .env(
                "KUBECTL_PORT_FORWARD_WEBSOCKETS",
                transport.websockets_env(),
            )
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["-v=6", "port-forward", resource, &format!(":{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL} ({e})"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out_lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (found_tx, found_rx) = tokio::sync::oneshot::channel();
        let want = format!(" -> {remote}");
        tokio::spawn(async move {
            let mut found_tx = Some(found_tx);
            // Keep draining stdout ("Handling connection for ...") so kubectl never blocks.
            while let Ok(Some(line)) = out_lines.next_line().await {
                if let Some(addr) = line
                    .strip_prefix("Forwarding from ")
                    .and_then(|rest| rest.strip_suffix(want.as_str()))
                    .filter(|addr| addr.starts_with("127.0.0.1:"))
                    && let Some(tx) = found_tx.take()
                {
                    let _ = tx.send(addr.parse::<SocketAddr>().expect("a socket address"));
                }
            }
        });
        let local = within(
            WAIT,
            &format!("kubectl port-forward {resource} to listen"),
            found_rx,
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "kubectl port-forward {resource} ended without \"Forwarding from 127.0.0.1:... -> {remote}\"; stderr:\n{}",
                stderr.lock().unwrap()
            )
        });
        let pf = Self {
            child,
            local,
            stderr,
            _cache: cache,
        };
        // The transport really used: kubectl falls back to SPDY silently if the tunnel fails.
        let upgraded = "/portforward 101 Switching Protocols";
        let log = pf.stderr_eventually(upgraded).await;
        let line = log.lines().find(|l| l.contains(upgraded)).unwrap();
        let request = format!(
            "{} {}/api/v1/namespaces/default/pods/",
            transport.upgrade_method(),
            emu.url()
        );
        assert!(
            line.contains(&request),
            "{transport:?} expected {request:?}: {line}"
        );
        pf
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn stderr_eventually(&self, text: &str) -> String {
        eventually(&format!("kubectl stderr to contain {text:?}"), || async {
            let s = self.stderr();
            s.contains(text).then_some(s)
        })
        .await
    }

    async fn exit(&mut self) -> ExitStatus {
        within(WAIT, "kubectl port-forward to exit", self.child.wait())
            .await
            .expect("wait for kubectl")
    }
}

/// A local "pod process": greets each connection, echoes until EOF, then closes.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut rd, mut wr) = s.into_split();
                if wr.write_all(GREETING).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    addr
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `payload` through the forwarded port while reading, then half-closes and reads to
/// EOF: returns everything the target sent back.
async fn exchange(local: SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    within(WAIT, "a round trip through kubectl port-forward", async {
        let conn = TcpStream::connect(local).await.expect("connect to kubectl");
        let (mut rd, mut wr) = conn.into_split();
        let write = async move {
            wr.write_all(&payload).await.expect("write to kubectl");
            wr.shutdown().await.expect("half-close");
        };
        let read = async move {
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.expect("read from kubectl");
            got
        };
        tokio::join!(write, read).1
    })
    .await
}

fn expected(payload: &[u8]) -> Vec<u8> {
    [GREETING, payload].concat()
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

async fn running_pod(emu: &Emulator, name: &str, annotations: serde_json::Value) -> Pod {
    let pods: Api<Pod> = Api::default_namespaced(emu.client().await);
    pods.create(
        &PostParams::default(),
        &from_json(
            json!({"metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}}),
        ),
    )
    .await
    .unwrap();
    wait_for(&pods, name, "pod running", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.phase.as_deref() == Some("Running"))
    })
    .await
}

async fn forwards_a_pod_port(transport: Transport) {
    let emu = emulator().await;
    let target = echo_server().await;
    running_pod(
        &emu,
        "fwd",
        json!({"kube-emulator.fluo.dev/port-forward": format!("8222={target}")}),
    )
    .await;
    let pf = PortForward::start(&emu, transport, "pod/fwd", 8222, 8222).await;
    // Two connections in sequence, one large enough to span many DATA frames each way.
    for payload in [b"ping".to_vec(), pattern(1, 1 << 20)] {
        let got = exchange(pf.local, payload.clone()).await;
        assert!(
            got == expected(&payload),
            "echo of {} bytes differs",
            payload.len()
        );
    }
    // Two at once, each getting its own bytes back.
    let (a, b) = (pattern(7, 300_000), pattern(99, 200_000));
    let (got_a, got_b) = tokio::join!(exchange(pf.local, a.clone()), exchange(pf.local, b.clone()));
    assert!(got_a == expected(&a), "first concurrent echo differs");
    assert!(got_b == expected(&b), "second concurrent echo differs");
    let stderr = pf.stderr();
    assert!(!stderr.contains("an error occurred forwarding"), "{stderr}");
}

#[tokio::test]
async fn pod_port_over_the_websocket_tunnel() {
    forwards_a_pod_port(Transport::Tunnel).await;
}

#[tokio::test]
async fn pod_port_over_plain_spdy() {
    forwards_a_pod_port(Transport::Spdy).await;
}

/// kubectl prints the error-stream message, closes the local connection and then, as kubectl
/// 1.32 does after any forwarding error, ends the whole session ("lost connection to pod").
async fn unreachable_target_is_reported(transport: Transport) {
    let emu = emulator().await;
    let port = closed_port();
    let pod = running_pod(
        &emu,
        "down",
        json!({"kube-emulator.fluo.dev/port-forward": format!("8222=127.0.0.1:{port}")}),
    )
    .await;
    let uid = pod.metadata.uid.unwrap();
    let mut pf = PortForward::start(&emu, transport, "pod/down", 8222, 8222).await;
    let got = within(WAIT, "the forwarded connection to close", async {
        let mut conn = TcpStream::connect(pf.local).await.expect("connect");
        let _ = conn.write_all(b"anyone there?").await;
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got).await;
        got
    })
    .await;
    assert!(got.is_empty(), "bytes from an unreachable target: {got:?}");
    pf.stderr_eventually(&format!(
        "an error occurred forwarding {} -> 8222: error forwarding port 8222 to pod default/down, uid {uid}: dial tcp 127.0.0.1:{port}: Connection refused",
        pf.local.port()
    ))
    .await;
    let status = pf.exit().await;
    assert_eq!(status.code(), Some(1), "stderr:\n{}", pf.stderr());
    // The stderr reader task may still be draining the pipe when the exit is observed.
    pf.stderr_eventually("error: lost connection to pod").await;
}

#[tokio::test]
async fn unreachable_target_over_the_websocket_tunnel() {
    unreachable_target_is_reported(Transport::Tunnel).await;
}

#[tokio::test]
async fn unreachable_target_over_plain_spdy() {
    unreachable_target_is_reported(Transport::Spdy).await;
}

/// `deploy/<d>` and `svc/<s>` resolve a pod through the API (selector, named targetPort).
async fn workload_forms_resolve_a_pod(transport: Transport) {
    let emu = emulator().await;
    let client = emu.client().await;
    let target = echo_server().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    deployments
        .create(
            &PostParams::default(),
            &from_json(json!({
                "metadata": {"name": "web"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}, "annotations":
                            {"kube-emulator.fluo.dev/port-forward": format!("8080={target}")}},
                        "spec": {"containers": [{"name": "app", "image": "web:1",
                            "ports": [{"name": "http", "containerPort": 8080}]}]}}}
            })),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    services
        .create(
            &PostParams::default(),
            &from_json(
                json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": "http"}]}}),
            ),
        )
        .await
        .unwrap();
    wait_for(
        &deployments,
        "web",
        "deployment available",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .is_some_and(|s| s.available_replicas == Some(1))
        },
    )
    .await;
    let deploy = PortForward::start(&emu, transport, "deploy/web", 8080, 8080).await;
    let payload = b"via the deployment".to_vec();
    assert_eq!(
        exchange(deploy.local, payload.clone()).await,
        expected(&payload)
    );
    // Service port 80 -> targetPort "http" -> containerPort 8080 of the selected pod.
    let svc = PortForward::start(&emu, transport, "svc/web", 80, 8080).await;
    let payload = b"via the service".to_vec();
    assert_eq!(
        exchange(svc.local, payload.clone()).await,
        expected(&payload)
    );
}

#[tokio::test]
async fn deployment_and_service_forms_over_the_websocket_tunnel() {
    workload_forms_resolve_a_pod(Transport::Tunnel).await;
}

#[tokio::test]
async fn deployment_and_service_forms_over_plain_spdy() {
    workload_forms_resolve_a_pod(Transport::Spdy).await;
}

/// nats-server's monitoring endpoint reached through kubectl, as an operator would.
#[tokio::test]
async fn nats_monitoring_through_kubectl_port_forward() {
    let nats = super::pods::which("nats-server")
        .unwrap_or_else(|| panic!("nats-server is required: apt-get install nats-server"));
    let monitor = closed_port();
    let child = std::process::Command::new(nats)
        .args(["-a", "127.0.0.1", "-p", &closed_port().to_string()])
        .args(["-m", &monitor.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    let _nats = KillOnDrop(child);
    // Only forward once it listens: a refused dial would end kubectl's session.
    eventually("nats-server monitoring to listen", || async {
        TcpStream::connect(("127.0.0.1", monitor)).await.ok()
    })
    .await;
    let emu = emulator().await;
    running_pod(
        &emu,
        "nats-0",
        json!({"kube-emulator.fluo.dev/port-forward": format!("8222=127.0.0.1:{monitor}")}),
    )
    .await;
    let pf = PortForward::start(&emu, Transport::Tunnel, "pod/nats-0", 8222, 8222).await;
    let response = within(WAIT, "GET /varz through kubectl", async {
        let mut conn = TcpStream::connect(pf.local).await.expect("connect");
        conn.write_all(b"GET /varz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        conn.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    })
    .await;
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("\"server_id\""), "{response}");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
