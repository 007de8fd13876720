//! The Ingress listener on loopback, driven with curl as the SOP's smoke command is: routing by
//! Host and path to the Service's ready endpoints, 404 without a rule, 503 without endpoints.

use std::net::SocketAddr;
use tokio::process::Command;

use axum::extract::Request;
use kube_emulator::network::IngressListen;
use serde_json::json;

use super::network_support::{Cluster, endpoints, service};
use super::support::eventually;

/// An HTTP backend answering `<name> <path> host=<Host> xff=<X-Forwarded-For>`.
async fn http_backend(name: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |req: Request| async move {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string()
        };
        format!(
            "{name} {} host={} xff={}",
            req.uri(),
            h("host"),
            h("x-forwarded-for")
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// (status, body) of `curl -H "Host: <host>" http://<addr><path>` (async: the proxy under test
/// runs on this test's runtime).
async fn curl(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Host: {host}"),
        ])
        .arg(format!("http://{addr}{path}"))
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.trim().to_string())
}

#[tokio::test]
async fn ingress_routes_by_host_and_path_to_ready_endpoints() {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let c = Cluster::start(0, IngressListen::At(any_port)).await;
    let ingress = c.net.ingress_addr().expect("the Ingress listener is on");
    let (bff, docs) = (http_backend("bff").await, http_backend("docs").await);
    c.create(
        "Namespace",
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fluo"}}),
    )
    .await;
    for (name, last, backend) in [("fluo-bff", 60, bff), ("docs", 61, docs)] {
        let ports = json!([{"name": "http", "port": 80, "targetPort": backend.port()}]);
        c.create(
            "Service",
            "fluo",
            service(name, "fluo", &c.ip(last).to_string(), ports),
        )
        .await;
        c.create(
            "Endpoints",
            "fluo",
            endpoints(name, "fluo", &[(true, backend)]),
        )
        .await;
    }
    c.create(
        "Service",
        "fluo",
        service("idle", "fluo", &c.ip(62).to_string(), json!([{"port": 80}])),
    )
    .await;
    let path = |p: &str, kind: &str, svc: &str, port: serde_json::Value| json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": port}}});
    c.create("Ingress", "fluo", json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "fluo-api", "namespace": "fluo"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "fluo-api.localhost", "http": {"paths": [
            path("/", "Prefix", "fluo-bff", json!({"number": 80})),
            path("/docs", "Prefix", "docs", json!({"name": "http"})),
            path("/idle", "Exact", "idle", json!({"number": 80})),
        ]}}]}}))
        .await;

    let (status, body) = eventually("the Ingress rule to route", || async {
        let r = curl(ingress, "fluo-api.localhost", "/health?deep=1").await;
        if r.0 != 200 {
            eprintln!("not yet: {r:?}");
        }
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "bff /health?deep=1 host=fluo-api.localhost xff=127.0.0.1"
    );
    assert!(
        curl(ingress, "FLUO-API.localhost:80", "/docs/intro")
            .await
            .1
            .starts_with("docs /docs/intro")
    );
    assert!(
        curl(ingress, "fluo-api.localhost", "/docsx")
            .await
            .1
            .starts_with("bff /docsx"),
        "element-wise prefix"
    );
    assert_eq!(
        curl(ingress, "other.localhost", "/health").await.0,
        404,
        "no rule for this host"
    );
    let (code, msg) = curl(ingress, "fluo-api.localhost", "/idle").await;
    assert_eq!(code, 503, "a Service without ready endpoints: {msg}");
    assert!(msg.contains("fluo/idle"), "503 names the Service: {msg}");

    c.replace(
        "Endpoints",
        "fluo",
        "fluo-bff",
        endpoints("fluo-bff", "fluo", &[(false, bff)]),
    )
    .await;
    eventually("the not-ready endpoint to leave the route", || async {
        (curl(ingress, "fluo-api.localhost", "/health").await.0 == 503).then_some(())
    })
    .await;
    c.delete("Ingress", "fluo", "fluo-api").await;
    eventually("a deleted Ingress to stop routing", || async {
        (curl(ingress, "fluo-api.localhost", "/docs").await.0 == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_ingress_address_that_cannot_be_bound_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let emu = super::support::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        kube_emulator::network::NetworkConfig::loopback(127, 254, 0, dir.path().into());
    config.ingress = IngressListen::At(addr);
    let err = kube_emulator::network::Network::start(emu.store().clone(), emu.addr(), config)
        .await
        .err()
        .expect("a taken Ingress address fails the start");
    assert!(
        err.to_string().contains(&addr.to_string()),
        "the error names the address: {err}"
    );
    let svcs: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::all(emu.client().await);
    let listed = svcs.list(&Default::default()).await.expect("list services");
    assert!(
        listed.items.is_empty(),
        "a failed start registers no kubernetes Service"
    );
}
