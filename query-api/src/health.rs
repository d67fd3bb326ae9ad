//! `GET /healthz` (the process answers), `/readyz` (the write-ahead log is replayed, writes
//! work and every source is connected) and `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use auditlake_engine::Readiness;

use crate::error::ApiError;
use crate::state::ApiState;

pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// 200 once the writer takes traffic and every source (the Kafka consumer) works; else 503
/// saying what is not ready.
pub(crate) async fn readyz(State(state): State<ApiState>) -> Response {
    let (mut status, mut text) = match state.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready".to_string()),
        Readiness::Replaying => (
            StatusCode::SERVICE_UNAVAILABLE,
            "replaying write-ahead log".to_string(),
        ),
        Readiness::Failed => (
            StatusCode::SERVICE_UNAVAILABLE,
            "a write to the lake failed".to_string(),
        ),
    };
    let mut body = serde_json::Map::new();
    for source in &state.sources {
        let (ready, detail) = source.check();
        if !ready && status == StatusCode::OK {
            status = StatusCode::SERVICE_UNAVAILABLE;
            text = format!("{} is not ready", source.name());
        }
        body.insert(source.name().to_string(), detail);
    }
    body.insert("status".into(), text.into());
    (status, axum::Json(serde_json::Value::Object(body))).into_response()
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
