//! The error answer every handler and middleware gives: `{"error": "<what is wrong>"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::backend;

/// An error answer: `{"error": "<what is wrong>"}` with its status.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<backend::Error> for ApiError {
    fn from(err: backend::Error) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
    }
}
