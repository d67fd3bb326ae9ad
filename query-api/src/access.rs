//! The access log's HTTP side: every call to `/v1/` but the webhook is recorded with its token's
//! name, the client's address, the method, path and query string, the SQL it ran, its status and
//! outcome. Bodies are never recorded (a triage note, an exception's values), nor credentials.

use std::net::SocketAddr;
use std::sync::Arc;

use auditlake_engine::{Access, AccessLog};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Principal;

/// The SQL a route ran, put in its response's extensions for the access log.
#[derive(Debug, Clone)]
pub struct RanSql(pub String);

/// Why a route failed, put in its response's extensions by [`crate::ApiError`].
#[derive(Debug, Clone)]
pub struct Failure(pub String);

/// The table only `admin` tokens may read.
pub const ACCESS_TABLE: &str = "access_log";

/// Middleware recording each call (`axum::middleware::from_fn_with_state(log, record)`), outside
/// authentication so that refused calls are recorded too.
pub async fn record(State(log): State<Arc<AccessLog>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if !path.starts_with("/v1/") || path.starts_with("/v1/webhook") {
        return next.run(request).await;
    }
    let action = format!(
        "{} {}",
        request.method(),
        request.uri().path_and_query().map_or(path, |p| p.as_str())
    );
    let source = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_string(), |c| c.0.to_string());
    let response = next.run(request).await;
    let token = response
        .extensions()
        .get::<Principal>()
        .map_or("-", |p| p.name.as_str());
    let sql = response.extensions().get::<RanSql>().map(|s| s.0.as_str());
    let status = response.status();
    let outcome = match response.extensions().get::<Failure>() {
        Some(failure) => failure.0.clone(),
        None if status.is_success() => "ok".to_string(),
        None => status.canonical_reason().unwrap_or("failed").to_string(),
    };
    log.record(&Access::new(
        token,
        &source,
        "http",
        &action,
        sql,
        i32::from(status.as_u16()),
        &outcome,
    ));
    response
}
