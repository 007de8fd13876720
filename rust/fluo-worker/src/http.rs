//! The worker's HTTP endpoints: /health (liveness), /ready (NATS connected and consuming) and
//! /metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::config::Config;
use crate::metrics::Metrics;

pub struct HttpState {
    pub config: Config,
    pub metrics: Metrics,
    pub client: async_nats::Client,
    /// Set once the consumer is open; cleared on shutdown.
    pub consuming: AtomicBool,
}

pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": state.config.version,
        "commit": state.config.commit,
        "worker": state.config.worker_id,
    }))
}

async fn ready(State(state): State<Arc<HttpState>>) -> Response {
    let reason = if state.client.connection_state() != async_nats::connection::State::Connected {
        Some(format!(
            "NATS at {} is not connected",
            state.config.nats_url
        ))
    } else if !state.consuming.load(Ordering::Relaxed) {
        Some(format!("not consuming from {}", fluo_jobs::names::CONSUMER))
    } else {
        None
    };
    match reason {
        None => Json(json!({ "status": "ready" })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
}
