//! Request metrics and fault injection around every route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Counts every request and observes its latency, labelled by route template (so
/// `/api/jobs/{id}` is one series, not one per job). Allocates nothing per request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .metrics
        .requests
        .with_label_values(&[route, method.as_str(), response.status().as_str()])
        .inc();
    state
        .metrics
        .latency
        .with_label_values(&[route, method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// FLUO_BFF_FAULT_5XX_RATIO: answer a share of requests (except /metrics) with 500.
pub async fn inject_faults(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/metrics" && state.fault.should_fail() {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "injected fault (FLUO_BFF_FAULT_5XX_RATIO={})",
                state.fault.ratio()
            ),
        )
        .into_response();
    }
    next.run(request).await
}
