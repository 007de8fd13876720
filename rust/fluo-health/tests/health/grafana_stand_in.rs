//! Grafana stand-in: Grafana has no Debian package, so tests (and the benchmark, which includes
//! this file) use a tiny HTTP server answering `/api/health` and `/api/search` like Grafana's API.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use fluo_teststack::StandIn;

/// Grafana stand-in: a tiny HTTP server answering `/api/health` and `/api/search` like Grafana's
/// API does (Grafana has no Debian package). `database` is what `/api/health` reports.
pub struct GrafanaStandIn(StandIn);

impl GrafanaStandIn {
    pub async fn start(database: &'static str) -> Self {
        let health = move || async move {
            let status = if database == "ok" {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                status,
                format!(r#"{{"commit":"stand-in","database":"{database}","version":"11.3.0"}}"#),
            )
        };
        let search = || async {
            r#"[{"id":1,"uid":"fluo-overview","title":"FLUO Overview","type":"dash-db","url":"/d/fluo-overview"}]"#
        };
        let app = Router::new()
            .route("/api/health", get(health))
            .route("/api/search", get(search));
        Self(StandIn::serve(app).await)
    }

    pub fn url(&self) -> String {
        self.0.url().to_owned()
    }
}
