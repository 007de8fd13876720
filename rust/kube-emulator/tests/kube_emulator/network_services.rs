//! Service virtual IPs on loopback: round robin over ready endpoints, following Endpoints and
//! Service changes, refusing when nothing is ready.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::SocketAddr;

use kube_emulator::network::IngressListen;
use serde_json::json;

use super::network_support::{Cluster, ask, ask_until, endpoints, named_backend, service};

#[tokio::test]
async fn a_service_ip_round_robins_over_ready_endpoints_and_follows_changes() {
    let c = Cluster::start(0, IngressListen::Off).await;
    let (a, b, c_) = (
        named_backend("a").await,
        named_backend("b").await,
        named_backend("c").await,
    );
    let vip = SocketAddr::from((c.ip(20), 8080));
    let ports = json!([{"name": "http", "port": 8080, "targetPort": 9999}]);
    c.create(
        "Service",
        "default",
        service("web", "default", &vip.ip().to_string(), ports.clone()),
    )
    .await;
    c.create(
        "Endpoints",
        "default",
        endpoints("web", "default", &[(true, a), (true, b), (false, c_)]),
    )
    .await;

    ask_until(vip, "the Service IP to answer", Result::is_ok)
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        seen.insert(ask(vip).await.expect("the Service IP answers"));
    }
    assert_eq!(
        seen,
        BTreeSet::from(["a".to_string(), "b".to_string()]),
        "both ready endpoints take turns; the not-ready one never answers"
    );

    c.replace(
        "Endpoints",
        "default",
        "web",
        endpoints("web", "default", &[(true, c_)]),
    )
    .await;
    ask_until(vip, "the new endpoint to take over", |r| {
        r.as_deref() == Ok("c")
    })
    .await
    .unwrap();
    for _ in 0..4 {
        assert_eq!(
            ask(vip).await.as_deref(),
            Ok("c"),
            "only the ready endpoint answers"
        );
    }

    c.replace(
        "Endpoints",
        "default",
        "web",
        endpoints("web", "default", &[(false, c_)]),
    )
    .await;
    // Connections caught while the listener closes end without a word; then it refuses.
    let refused = |r: &Result<String, ErrorKind>| *r == Err(ErrorKind::ConnectionRefused);
    ask_until(vip, "a Service without ready endpoints to refuse", refused)
        .await
        .unwrap_err();

    c.replace(
        "Endpoints",
        "default",
        "web",
        endpoints("web", "default", &[(true, a)]),
    )
    .await;
    ask_until(vip, "the Service IP to come back", |r| {
        r.as_deref() == Ok("a")
    })
    .await
    .unwrap();
    c.delete("Service", "default", "web").await;
    ask_until(vip, "a deleted Service to refuse", refused)
        .await
        .unwrap_err();
}

#[tokio::test]
async fn an_endpoint_that_refuses_is_skipped() {
    let c = Cluster::start(0, IngressListen::Off).await;
    let alive = named_backend("alive").await;
    // A port nobody listens on: bind, note, drop.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let vip = SocketAddr::from((c.ip(21), 80));
    c.create(
        "Service",
        "default",
        service(
            "mixed",
            "default",
            &vip.ip().to_string(),
            json!([{"port": 80}]),
        ),
    )
    .await;
    c.create(
        "Endpoints",
        "default",
        endpoints("mixed", "default", &[(true, dead), (true, alive)]),
    )
    .await;
    ask_until(vip, "the Service IP to answer", Result::is_ok)
        .await
        .unwrap();
    for _ in 0..4 {
        assert_eq!(
            ask(vip).await.as_deref(),
            Ok("alive"),
            "a refusing endpoint is passed over for the next one"
        );
    }
}

#[tokio::test]
async fn the_kubernetes_service_is_registered_with_the_apiserver_endpoint() {
    let c = Cluster::start(0, IngressListen::Off).await;
    let client = c.emu.client().await;
    let svcs: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::default_namespaced(client.clone());
    let svc = svcs
        .get("kubernetes")
        .await
        .expect("Service default/kubernetes exists");
    let spec = svc.spec.expect("spec");
    assert_eq!(
        spec.cluster_ip.as_deref(),
        Some(c.ip(1).to_string().as_str())
    );
    assert_eq!(spec.ports.unwrap()[0].port, 443);
    let eps: kube::Api<k8s_openapi::api::core::v1::Endpoints> =
        kube::Api::default_namespaced(client);
    let ep = eps
        .get("kubernetes")
        .await
        .expect("Endpoints default/kubernetes exists");
    let endpoint = c.net.apiserver_access().endpoint();
    let subset = &ep.subsets.expect("subsets")[0];
    assert_eq!(
        subset.addresses.as_ref().unwrap()[0].ip,
        endpoint.ip().to_string()
    );
    assert_eq!(
        subset.ports.as_ref().unwrap()[0].port,
        i32::from(endpoint.port())
    );
}
