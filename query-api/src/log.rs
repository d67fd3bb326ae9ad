//! One structured log line per request: method, path, status, latency and sizes; never bodies,
//! query strings or credentials.

use std::time::Instant;

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Principal;

/// Middleware logging every request at info level (`axum::middleware::from_fn(log_requests)`).
pub async fn log_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let request_bytes = content_length(request.headers());
    let response = next.run(request).await;
    let principal = response
        .extensions()
        .get::<Principal>()
        .map(|p| p.name.clone());
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_bytes,
        response_bytes = axum::body::HttpBody::size_hint(response.body())
            .exact()
            .unwrap_or_else(|| content_length(response.headers())),
        principal = principal.as_deref().unwrap_or("-"),
        "request"
    );
    response
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
