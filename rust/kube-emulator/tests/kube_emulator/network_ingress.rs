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

/// Bodies of `n` requests to `http://<addr><path>` with `Host: fluo-api.localhost` (one curl,
/// one line per answer), with extra curl arguments.
async fn curl_many(addr: SocketAddr, path: &str, n: usize, extra: &[&str]) -> Vec<String> {
    let url = format!("http://{addr}{path}");
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "60",
            "-w",
            "\n",
            "-H",
            "Host: fluo-api.localhost",
        ])
        .args(extra)
        .args(std::iter::repeat_n(&url, n))
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// How many of `answers` came from the backend called `name`.
fn from(answers: &[String], name: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.starts_with(&format!("{name} ")))
        .count()
}

#[tokio::test]
async fn a_canary_ingress_takes_its_weight_of_the_requests() {
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let c = Cluster::start(0, IngressListen::At(any_port)).await;
    let ingress = c.net.ingress_addr().expect("the Ingress listener is on");
    c.create(
        "Namespace",
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fluo"}}),
    )
    .await;
    let (stable, canary) = (http_backend("stable").await, http_backend("canary").await);
    for (name, last, backend) in [("fluo-bff", 70, stable), ("fluo-bff-canary", 71, canary)] {
        let ports = json!([{"name": "http", "port": 8080, "targetPort": backend.port()}]);
        let svc = service(name, "fluo", &c.ip(last).to_string(), ports);
        c.create("Service", "fluo", svc).await;
        let eps = endpoints(name, "fluo", &[(true, backend)]);
        c.create("Endpoints", "fluo", eps).await;
    }
    let ingress_of = |name: &str, svc: &str, annotations: serde_json::Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "fluo", "annotations": annotations},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "fluo-api.localhost",
                "http": {"paths": [{"path": "/api", "pathType": "Prefix",
                    "backend": {"service": {"name": svc, "port": {"name": "http"}}}}]}}]}})
    };
    let weighted = |weight: &str| {
        json!({"nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": weight,
            "nginx.ingress.kubernetes.io/canary-by-header": "x-canary"})
    };
    c.create(
        "Ingress",
        "fluo",
        ingress_of("fluo-bff", "fluo-bff", json!({})),
    )
    .await;
    c.create(
        "Ingress",
        "fluo",
        ingress_of("fluo-bff-canary", "fluo-bff-canary", weighted("25")),
    )
    .await;
    eventually("the canary to take requests", || async {
        let answers = curl_many(ingress, "/api/x", 20, &[]).await;
        (from(&answers, "canary") > 0).then_some(())
    })
    .await;

    // 25 of 100: over 800 requests the canary's count is Binomial(800, 0.25), mean 200 and
    // standard deviation 12.2; 140..260 is +-4.9 sd (a false failure about once in a million).
    let answers = curl_many(ingress, "/api/x", 800, &[]).await;
    assert_eq!(answers.len(), 800, "every request answered: {answers:?}");
    let (to_canary, to_stable) = (from(&answers, "canary"), from(&answers, "stable"));
    assert_eq!(to_canary + to_stable, 800, "{answers:?}");
    assert!(
        (140..=260).contains(&to_canary),
        "canary-weight 25 sent {to_canary} of 800 requests to the canary"
    );
    // canary-by-header overrides the weight both ways.
    let always = curl_many(ingress, "/api/x", 50, &["-H", "x-canary: always"]).await;
    assert_eq!(from(&always, "canary"), 50, "{always:?}");
    let never = curl_many(ingress, "/api/x", 50, &["-H", "x-canary: never"]).await;
    assert_eq!(from(&never, "stable"), 50, "{never:?}");

    // Weight 100 of a canary-weight-total 1000 is 10%.
    let mut tenth = weighted("100");
    tenth["nginx.ingress.kubernetes.io/canary-weight-total"] = json!("1000");
    c.replace(
        "Ingress",
        "fluo",
        "fluo-bff-canary",
        ingress_of("fluo-bff-canary", "fluo-bff-canary", tenth),
    )
    .await;
    eventually("weight 100 of 1000", || async {
        let answers = curl_many(ingress, "/api/x", 800, &[]).await;
        // Binomial(800, 0.1): mean 80, sd 8.5; 40..125 is about +-5 sd.
        (40..=125).contains(&from(&answers, "canary")).then_some(())
    })
    .await;

    // A canary Service without ready endpoints takes nothing; neither does a deleted canary.
    c.replace(
        "Endpoints",
        "fluo",
        "fluo-bff-canary",
        endpoints("fluo-bff-canary", "fluo", &[(false, canary)]),
    )
    .await;
    eventually("an unready canary to take nothing", || async {
        let answers = curl_many(ingress, "/api/x", 100, &["-H", "x-canary: always"]).await;
        (from(&answers, "stable") == 100).then_some(())
    })
    .await;
    c.delete("Ingress", "fluo", "fluo-bff").await;
    eventually("the canary alone to route nothing", || async {
        (curl(ingress, "fluo-api.localhost", "/api/x").await.0 == 404).then_some(())
    })
    .await;
}
