//! The investigator's HTTP surface of auditlake.
//!
//! [`router`] serves the investigator console at `/`, `POST /v1/query` (read-only SQL through
//! [`auditlake_engine::QueryEngine`], answered as JSON, CSV or an Arrow IPC stream),
//! `GET /v1/alerts` (and `/summary`, `/{id}`, triage with `PATCH /v1/alerts/{id}`),
//! `GET /v1/events`, `GET /v1/rules`, `GET /v1/status`, `GET /healthz`, `/readyz` and
//! `/metrics`. Every failure is an [`ApiError`], a JSON `{"error": ...}` with a fitting status.
//! [`auth`] checks bearer tokens (and client certificates the server has verified) against the
//! scope each route needs. The crate starts no server, parses no flags and reads no environment:
//! the binary does that.
//!
//! # Layout
//! - [`state`]: [`ApiState`], what every handler shares.
//! - [`auth`]: tokens, scopes and the middleware that checks them.
//! - `query`: `POST /v1/query`.
//! - `alerts`: `GET /v1/alerts`, `/v1/alerts/summary` and `GET /v1/rules`.
//! - `alert`: one alert with its event and context, its triage, exceptions from it.
//! - `events`: `GET /v1/events`, events with facets and a histogram.
//! - `params`: query-string filters, filter expressions and histograms the routes share.
//! - `console`: the console's embedded files.
//! - `health`: `GET /healthz`, `/readyz`, `/metrics`, `/v1/status`.
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

pub mod access;
mod alert;
mod alerts;
pub mod auth;
pub mod connection;
mod console;
pub mod error;
mod events;
pub mod flight;
pub mod format;
mod health;
pub mod log;
mod params;
pub mod pg;
mod query;
mod read_only;
pub mod state;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};

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
        .route("/v1/alerts/summary", get(alerts::summary))
        .route("/v1/alerts/{id}", get(alert::detail))
        .route("/v1/alerts/{id}/exception", get(alert::exception_preview))
        .route("/v1/events", get(events::list))
        .route("/v1/rules", get(alerts::rules))
        .route("/v1/status", get(health::status))
        .route_layer(from_fn_with_state(
            (auth.clone(), Scope::Query),
            auth::require,
        ));
    let triage = Router::new()
        .route("/v1/alerts/{id}", patch(alert::triage))
        .route("/v1/alerts/{id}/exception", post(alert::exception_append))
        .route_layer(from_fn_with_state(
            (auth.clone(), Scope::Triage),
            auth::require,
        ));
    let admin = Router::new()
        .route("/metrics", get(health::metrics))
        .route_layer(from_fn_with_state((auth, Scope::Admin), auth::require));
    Router::new()
        .route("/", get(console::index))
        .route("/console/{name}", get(console::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(query)
        .merge(triage)
        .merge(admin)
        .with_state(state)
}
