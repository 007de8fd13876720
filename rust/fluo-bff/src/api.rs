//! HTTP handlers: health, readiness, metrics and the jobs API.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fluo_jobs::{JobId, MAX_BODY_BYTES, SubmissionError, submission};
use serde_json::json;

use crate::backend;
pub use crate::error::ApiError;
use crate::state::AppState;

/// The status for each way a submission can be wrong: malformed -> 400, too big -> 413,
/// well-formed but not a job we can run -> 422.
fn submission_status(err: &SubmissionError) -> StatusCode {
    match err {
        SubmissionError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        SubmissionError::UnknownType(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SubmissionError::InvalidJson(_)
        | SubmissionError::NotAnObject(_)
        | SubmissionError::MissingType
        | SubmissionError::TypeNotAString(_)
        | SubmissionError::DataNotAnObject(_)
        | SubmissionError::UnknownField(_) => StatusCode::BAD_REQUEST,
    }
}

/// GET /health: liveness, no dependencies.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": state.config.version,
        "commit": state.config.commit,
    }))
}

/// GET /ready: NATS connected and the job stream present.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.shutting_down.load(Ordering::Relaxed) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match state.backend.readiness().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response(),
    }
}

/// GET /metrics: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .nats_connected
        .set(i64::from(state.backend.is_connected()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
}

/// POST /api/jobs `{"type", "data"}` -> 202 `{"id", "status": "queued"}`.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or("");
        let essence = text.split(';').next().unwrap_or("").trim();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type must be application/json, got {text:?}"),
            ));
        }
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {MAX_BODY_BYTES} bytes"),
        ),
        status => ApiError::new(status, rejection.body_text()),
    })?;
    let job = submission::parse(&body)
        .map_err(|err| ApiError::new(submission_status(&err), err.to_string()))?;
    let job_type = job.job_type;
    // Run the submission in its own task: if the client disconnects, axum drops this handler,
    // and a submission cut between "record created" and "message published" would leave a
    // queued record with no message.
    let submitting = state.clone();
    let submitted = tokio::spawn(async move { submitting.backend.submit(job).await })
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("submission task failed: {err}"),
            )
        })?;
    let record = submitted.inspect_err(|err| {
        let reason = match err {
            backend::Error::Disconnected { .. } | backend::Error::NotProvisioned => {
                "nats_unavailable"
            }
            backend::Error::Record { .. } => "record",
            _ => "enqueue",
        };
        state
            .metrics
            .submit_failures
            .with_label_values(&[reason])
            .inc();
    })?;
    state
        .metrics
        .jobs_submitted
        .with_label_values(&[job_type.as_str()])
        .inc();
    tracing::debug!(job = %record.id, r#type = %job_type, "job queued");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/jobs/{}", record.id))],
        Json(json!({ "id": record.id, "status": record.status })),
    )
        .into_response())
}

/// GET /api/jobs/{id} -> the job record.
pub async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: JobId = id
        .parse()
        .map_err(|reason: String| ApiError::new(StatusCode::BAD_REQUEST, reason))?;
    match state.backend.get(id).await? {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("job {id} not found"),
        )),
    }
}

/// Anything else: a JSON 404 naming the path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}
