//! Test support: a temp infra dir whose environment reaches the BFF through an ingress stand-in,
//! the ingress stand-in itself, and a fluent CLI runner.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

pub use fluo_teststack::TestInfra;
use fluo_teststack::{Cli, Ran, StandIn};

pub const INGRESS_HOST: &str = "fluo-api.localhost";

/// Ingress stand-in: routes requests whose Host is `fluo-api.localhost` to the backend and
/// answers 404 to anything else, like the cluster's ingress rule.
pub struct IngressStandIn(StandIn);

#[derive(Clone)]
struct Route {
    backend: String,
    http: reqwest::Client,
}

async fn proxy(State(route): State<Route>, headers: HeaderMap, request: Request) -> Response {
    if headers.get("host").and_then(|h| h.to_str().ok()) != Some(INGRESS_HOST) {
        return (StatusCode::NOT_FOUND, "default backend - 404").into_response();
    }
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), ToString::to_string);
    let content_type = headers.get("content-type").cloned();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let mut upstream = route
        .http
        .request(method, format!("{}{path}", route.backend))
        .body(body);
    if let Some(ct) = content_type {
        upstream = upstream.header("content-type", ct);
    }
    match upstream.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).expect("valid status");
            (status, answer.bytes().await.unwrap_or_default()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("502 bad gateway: {e}")).into_response(),
    }
}

impl IngressStandIn {
    pub async fn start(backend: &str) -> Self {
        let app = Router::new().fallback(proxy).with_state(Route {
            backend: backend.to_owned(),
            http: fluo_health::endpoint::http_client(Duration::from_secs(30)),
        });
        Self(StandIn::serve(app).await)
    }

    pub fn url(&self) -> &str {
        self.0.url()
    }
}

/// Runs fluo-smoke against `infra` and captures what it printed.
pub async fn smoke(infra: &TestInfra, args: &[&str]) -> Ran {
    let cli = Cli::new(env!("CARGO_BIN_EXE_fluo-smoke")).infra(infra);
    cli.args(args).run().await
}
