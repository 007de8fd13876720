//! Test support: a temp infra dir whose environment reaches the BFF through an ingress stand-in,
//! the ingress stand-in itself, and a fluent CLI runner.

use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use fluo_teststack::StandIn;
pub use fluo_teststack::TestInfra;

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

/// Runs fluo-smoke against a test infra and captures what it printed.
pub async fn smoke(infra: &TestInfra, args: &[&str]) -> Ran {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_fluo-smoke"))
        .args(args)
        .env("FLUO_INFRA_DIR", infra.path())
        .env("FLUO_ENV", infra.env())
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("fluo-smoke finishes within 120 s")
        .expect("fluo-smoke runs");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "fluo-smoke exited {} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Verdict and evidence of one step in the JSON report.
    pub fn step(&self, name: &str) -> (String, String) {
        let json: serde_json::Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{}", self.stdout));
        let step = json["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name))
            .unwrap_or_else(|| panic!("no step {name} in:\n{}", self.stdout))
            .clone();
        (
            step["verdict"].as_str().unwrap_or_default().to_owned(),
            step["evidence"].as_str().unwrap_or_default().to_owned(),
        )
    }
}
