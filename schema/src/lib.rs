//! What a Kubernetes audit event *is* to auditlake.
//!
//! This crate turns the bytes of audit logs, in every shape they arrive in, into rows of the
//! `events` Arrow table: the serde model of `audit.k8s.io` `Event` (v1, v1beta1, unversioned), the
//! `EventList` webhook body, the AKS, EKS (CloudWatch) and GKE wrappers, normalization into the
//! `events` schema with its derived columns, and redaction of secret values before anything is
//! stored. It also owns the `alerts` schema. It does no I/O and knows nothing of Tokio, DataFusion
//! or Kafka: callers hand it documents and take record batches.
//!
//! # Layout
//! - [`columns`]: the `events` and `alerts` schemas and their column names.
//! - [`decode`]: [`Decoder`], shape detection and the Event → row mapping.
//! - `gke`: the GKE Cloud Audit Logs mapping.
//! - [`derive`]: derived columns (pod security facts, bindings, roles, exec commands).
//! - `redact`: what never reaches storage.
//! - `model`: the serde structs, borrowing from the input.
//! - `scan`: the fast path that reads a plain Event into those structs without serde.
//! - [`time`]: RFC 3339 parsing.
//!
//! # Example
//! ```
//! use auditlake_schema::Decoder;
//!
//! let line = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a1","stage":"ResponseComplete",
//!   "verb":"get","requestURI":"/api/v1/namespaces/default/pods","user":{"username":"alice"},
//!   "requestReceivedTimestamp":"2025-03-04T06:22:18.819232Z","responseStatus":{"code":200}}"#;
//! let mut decoder = Decoder::new(None);
//! let mut rejected = Vec::new();
//! assert_eq!(decoder.decode(line, &mut rejected), 1);
//! assert_eq!(decoder.decode(br#"{"kind": 0}"#, &mut rejected), 0);
//! assert_eq!(rejected.len(), 1);
//! let batch = decoder.finish();
//! assert_eq!(batch.num_rows(), 1);
//! ```
#![warn(missing_docs)]

mod builder;
pub mod columns;
pub mod decode;
pub mod derive;
mod error;
mod gke;
#[allow(missing_docs)]
mod model;
mod redact;
mod scan;
pub mod time;

pub use columns::{alerts_schema, events_schema};
pub use decode::{DEFAULT_CLUSTER, Decoder, Rejection, valid_cluster_name};
pub use error::{Error, Result};
pub use redact::REDACTED;
pub use time::TimeWindow;

/// The directory of the package being run by cargo (`cargo test`, `cargo bench`), else
/// `built_in`, the caller's `env!("CARGO_MANIFEST_DIR")`: where tests and benchmarks find
/// `sample-logs/`. Asked at run time because a build shared by several checkouts (one target
/// directory) keeps the path of whichever checkout compiled it, which may be gone.
pub fn package_dir(built_in: &'static str) -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| built_in.into(), Into::into)
}
