//! `GET /healthz` (the process answers), `/readyz` (the write-ahead log is replayed and writes
//! work) and `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use auditlake_engine::Readiness;

use crate::error::ApiError;
use crate::state::ApiState;

pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

pub(crate) async fn readyz(State(state): State<ApiState>) -> Response {
    let (status, text) = match state.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready"),
        Readiness::Replaying => (StatusCode::SERVICE_UNAVAILABLE, "replaying write-ahead log"),
        Readiness::Failed => (
            StatusCode::SERVICE_UNAVAILABLE,
            "a write to the lake failed",
        ),
    };
    (status, axum::Json(serde_json::json!({"status": text}))).into_response()
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("metrics are not enabled".into()))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}
