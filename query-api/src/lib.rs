//! The investigator's HTTP surface of auditlake.
//!
//! This crate will own `fn router(state) -> axum::Router` with `POST /v1/query` (read-only SQL
//! through [`auditlake_engine::QueryEngine`], JSON, CSV or Arrow IPC), `GET /v1/alerts`,
//! `GET /v1/rules`, `GET /healthz`, `/readyz` and `/metrics`, and one `ApiError` that maps
//! failures to JSON error responses. It starts no server, parses no flags and reads no
//! environment: the binary does that.
//!
//! Nothing is implemented yet; `auditlake query` already offers the same read-only SQL on the
//! command line.
#![warn(missing_docs)]
