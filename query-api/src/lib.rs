//! The investigator's HTTP surface of auditlake.
//!
//! [`router`] serves `POST /v1/query` (read-only SQL through
//! [`auditlake_engine::QueryEngine`], answered as JSON, CSV or an Arrow IPC stream),
//! `GET /v1/alerts`, `GET /v1/rules`, `GET /healthz`, `/readyz` and `/metrics`. Every failure is an
//! [`ApiError`], a JSON `{"error": ...}` with a fitting status. [`auth`] checks bearer tokens (and
//! client certificates the server has verified) against the scope each route needs. The crate
//! starts no server, parses no flags and reads no environment: the binary does that.
//!
//! # Layout
//! - [`state`]: [`ApiState`], what every handler shares.
//! - [`auth`]: tokens, scopes and the middleware that checks them.
//! - `query`: `POST /v1/query`.
//! - `alerts`: `GET /v1/alerts` and `GET /v1/rules`.
//! - `health`: `GET /healthz`, `/readyz`, `/metrics`.
//! - [`format`]: query results as JSON rows, CSV or Arrow IPC (shared with the CLI).
//! - [`error`]: the [`ApiError`] type.
//! - [`log`]: one structured log line per request.
//!
//! # Example
//! ```no_run
//! # fn demo(state: auditlake_query_api::ApiState) {
//! let app: axum::Router = auditlake_query_api::router(state);
//! # }
//! ```
#![warn(missing_docs)]

mod alerts;
pub mod auth;
pub mod error;
pub mod format;
mod health;
pub mod log;
mod query;
pub mod state;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};

pub use auth::{Auth, ClientIdentity, Scope};
pub use error::ApiError;
pub use state::{ApiState, SourceHealth};

/// The investigator's routes, each behind the scope it needs (`/healthz` and `/readyz` are open,
/// so probes need no token).
pub fn router(state: ApiState) -> Router {
    let auth = state.auth.clone();
    let query = Router::new()
        .route("/v1/query", post(query::run))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/rules", get(alerts::rules))
        .route_layer(from_fn_with_state(
            (auth.clone(), Scope::Query),
            auth::require,
        ));
    let admin = Router::new()
        .route("/metrics", get(health::metrics))
        .route_layer(from_fn_with_state((auth, Scope::Admin), auth::require));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(query)
        .merge(admin)
        .with_state(state)
}
