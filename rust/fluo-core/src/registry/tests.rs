//! The client's rules (scheme, Docker Hub names) and the token flow and GET fallback against a
//! loopback HTTP server playing a token-protected registry (the real distribution registry,
//! which needs a signing token service for this flow, is used by fluo-deploy's tests).

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::*;

fn resolver(insecure: &[&str]) -> Resolver {
    Resolver::new(&Resolve {
        enabled: true,
        insecure_registries: insecure.iter().map(|s| s.to_string()).collect(),
        timeout: Duration::from_secs(5),
    })
    .expect("client")
}

fn target(r: &Resolver, reference: &str) -> Target {
    r.target(reference, &ImageRef::parse(reference).expect("parses"))
}

#[test]
fn https_unless_insecure_or_loopback_and_docker_hub_names() {
    let r = resolver(&["registry.internal:5000"]);
    let t = target(&r, "registry.fluo.example/fluo/bff:1");
    assert_eq!(
        (t.base.as_str(), t.repository.as_str(), t.tag.as_str()),
        ("https://registry.fluo.example", "fluo/bff", "1")
    );
    assert_eq!(
        target(&r, "registry.internal:5000/a:1").base,
        "http://registry.internal:5000"
    );
    for loopback in ["localhost:5000/a", "127.0.0.1:5000/a", "[::1]:5000/a"] {
        assert!(
            target(&r, loopback).base.starts_with("http://"),
            "{loopback}"
        );
    }
    let hub = target(&r, "nats");
    assert_eq!(
        (hub.base.as_str(), hub.repository.as_str(), hub.tag.as_str()),
        ("https://registry-1.docker.io", "library/nats", "latest")
    );
    assert_eq!(hub.registry, "docker.io");
    assert_eq!(target(&r, "fluo/nats:dev").repository, "fluo/nats");
}

const MANIFEST: &[u8] = br#"{"schemaVersion":2}"#;

/// A registry that wants a bearer token from its own `/token`, and answers HEAD without a
/// digest header; `lie` makes its GET header disagree with the bytes.
async fn registry(lie: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let manifest = move |method: Method, headers: HeaderMap| async move {
        let authorized = headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer t0k");
        if !authorized {
            let challenge = format!(
                r#"Bearer realm="http://{addr}/token",service="test",scope="repository:team/app:pull""#
            );
            return (StatusCode::UNAUTHORIZED, [("www-authenticate", challenge)]).into_response();
        }
        if method == Method::HEAD {
            return StatusCode::OK.into_response();
        }
        let digest = match lie {
            true => format!("sha256:{}", "0".repeat(64)),
            false => format!("sha256:{}", hex::encode(Sha256::digest(MANIFEST))),
        };
        Response::builder()
            .header("docker-content-digest", digest)
            .body(axum::body::Body::from(MANIFEST))
            .expect("response")
    };
    let token = |q: axum::extract::RawQuery| async move {
        let q = q.0.unwrap_or_default();
        match q.contains("service=test") && q.contains("scope=repository%3Ateam%2Fapp%3Apull") {
            true => r#"{"token":"t0k"}"#.into_response(),
            false => StatusCode::BAD_REQUEST.into_response(),
        }
    };
    let app = Router::new()
        .route("/v2/team/app/manifests/1", get(manifest).head(manifest))
        .route("/token", get(token));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

#[tokio::test]
async fn the_token_flow_and_the_digest_of_the_manifest_bytes() {
    let addr = registry(false).await;
    let pinned = resolver(&[])
        .pin(&format!("{addr}/team/app:1"))
        .await
        .expect("resolves");
    let digest = hex::encode(Sha256::digest(MANIFEST));
    assert_eq!(pinned, format!("{addr}/team/app@sha256:{digest}"));
}

#[tokio::test]
async fn a_digest_header_that_is_not_the_bytes_digest_is_refused() {
    let addr = registry(true).await;
    let err = resolver(&[])
        .pin(&format!("{addr}/team/app:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadAnswer { .. }), "{err}");
    assert!(err.to_string().contains("is not the digest"), "{err}");
}

#[tokio::test]
async fn unknown_tags_and_closed_ports_are_told_apart() {
    let addr = registry(false).await;
    let err = resolver(&[])
        .pin(&format!("{addr}/team/app:2"))
        .await
        .unwrap_err();
    // The route is missing: 404 before any challenge.
    assert!(matches!(err, Error::UnknownTag { .. }), "{err}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let err = resolver(&[])
        .pin(&format!("127.0.0.1:{port}/team/app:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
