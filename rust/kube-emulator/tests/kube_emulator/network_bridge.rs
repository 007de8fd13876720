//! The cluster network on the instance's real bridge, seen from inside pod network namespaces:
//! a Service VIP reaching a server in another pod, DNS through a pod resolv.conf, and the API
//! over TLS by its in-cluster name with the service-account CA and token.

use std::sync::Arc;
use std::time::Duration;

use kube_emulator::network::bridge::{ClusterNetwork, PodNetwork};
use kube_emulator::network::{IngressListen, Network, NetworkConfig};
use serde_json::json;
use tokio::process::Command;

use super::network_support::require_root;
use super::support::emulator;

/// Runs `script` with `sh -c` inside the pod's network namespace and a private mount namespace
/// whose /etc/resolv.conf is `resolv` (what the process kubelet gives a pod).
async fn in_pod(pod: &PodNetwork, resolv: &std::path::Path, script: &str) -> (bool, String) {
    let script = format!(
        "mount --bind {} /etc/resolv.conf && {script}",
        resolv.display()
    );
    let out = Command::new("nsenter")
        .arg(format!("--net={}", pod.netns_path.display()))
        .args([
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .await
        .expect("nsenter and unshare (util-linux) run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Retries `script` in the pod until it succeeds with output containing `want` (30 s at most).
async fn in_pod_until(
    pod: &PodNetwork,
    resolv: &std::path::Path,
    script: &str,
    want: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, text) = in_pod(pod, resolv, script).await;
        if ok && text.contains(want) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "in the pod, `{script}` did not print {want:?} within 30 s; last output:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn pods_reach_a_service_dns_and_the_api_through_the_bridge() {
    require_root("creates the bridge kemu<N> and pod network namespaces");
    let bridge =
        Arc::new(ClusterNetwork::create().expect("the bridge is created (root, iproute2)"));
    let slot = bridge.slot();
    let emu = emulator().await;
    let config = NetworkConfig::for_bridge(bridge.clone(), IngressListen::Off);
    let net = Network::start(emu.store().clone(), emu.addr(), config)
        .await
        .expect("the network services start on the bridge");
    let (server, client) = (bridge.add_pod().unwrap(), bridge.add_pod().unwrap());

    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello"), "hello from the server pod").unwrap();
    let _server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &server.netns,
            "python3",
            "-m",
            "http.server",
            "8080",
        ])
        .args(["--bind", &server.ip.to_string(), "--directory"])
        .arg(www.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");

    let vip = format!("10.96.{slot}.20");
    let client_api = emu.client().await;
    let create = |kind: &str, obj: serde_json::Value| {
        let (client, kind) = (client_api.clone(), kind.to_string());
        async move {
            let plural = if kind == "Service" {
                "services"
            } else {
                "endpoints"
            };
            let req = http::Request::post(format!("/api/v1/namespaces/default/{plural}"))
                .header("content-type", "application/json")
                .body(obj.to_string().into_bytes())
                .unwrap();
            let text = client.request_text(req).await.expect("create succeeds");
            assert!(text.contains(&kind), "created {kind}: {text}");
        }
    };
    create(
        "Service",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": vip, "ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .await;
    create(
        "Endpoints",
        json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": server.ip.to_string()}], "ports": [{"port": 8080}]}]}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        kube_emulator::network::dns::resolv_conf(
            bridge.dns_service_ip(),
            "default",
            "cluster.local",
        ),
    )
    .unwrap();

    let by_vip = format!("curl -s -m 3 http://{vip}/hello");
    in_pod_until(&client, &resolv, &by_vip, "hello from the server pod").await;

    let out = in_pod_until(
        &client,
        &resolv,
        "getent ahostsv4 web && curl -s -m 3 http://web/hello",
        "hello from",
    )
    .await;
    assert!(
        out.starts_with(&vip),
        "the short name resolves to the clusterIP: {out}"
    );

    let access = net.apiserver_access();
    let api = format!(
        "curl -s -m 5 --cacert {} -H \"Authorization: Bearer $(cat {})\" \
         https://kubernetes.default.svc/api/v1/namespaces/default/services/web",
        access.ca_file().display(),
        access.token_file().display()
    );
    let body = in_pod_until(&client, &resolv, &api, "\"name\":\"web\"").await;
    assert!(
        body.contains(&vip),
        "the API answers through the VIP over TLS: {body}"
    );

    let addrs = || {
        let out = std::process::Command::new("ip")
            .args(["-4", "addr", "show", "dev", &bridge.bridge_name()])
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(
        addrs().contains(&format!("{vip}/32")),
        "the Service IP is on the bridge"
    );
    net.shutdown().await;
    assert!(
        !addrs().contains(&format!("{vip}/32")),
        "the Service IP leaves the bridge when the network services stop: {}",
        addrs()
    );
    bridge.remove_pod(&server);
    bridge.remove_pod(&client);
    bridge.shutdown();
}
