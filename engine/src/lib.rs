//! Where audit events are *queried*, and the server's path from a batch to the lake.
//!
//! The engine answers read-only SQL over the lake that `auditlake-storage` writes, through
//! DataFusion, pruning partitions by `event_time`, and runs the pipeline: every new event is
//! checked by the rules and the alerts stored in the `alerts` table. For a server, [`Service`]
//! adds group commit over the write-ahead log (acknowledge after fsync), the live buffer (rows
//! queryable before their file is complete), and runs compaction and retention.
//!
//! # Layout
//! - [`service`]: [`Service`], group commit, the pipeline thread, flushing, backpressure.
//! - [`pipeline`]: [`Pipeline`], events stored, rules run on the new ones, alerts stored.
//! - `dictionary`: filters on low-cardinality columns evaluated once per distinct value.
//! - [`table`]: [`LakeTable`], a DataFusion table that prunes partitions by time filters.
//! - [`query`]: [`QueryEngine`], read-only SQL with limits.
//! - [`triage`]: [`TriageStore`], investigators' verdicts on alerts, and its tables.
//!
//! # Example
//! ```no_run
//! # async fn demo(batch: arrow::record_batch::RecordBatch) -> auditlake_engine::Result<()> {
//! use auditlake_engine::{LakeWriter, QueryEngine, QueryLimits};
//! let dir = std::path::Path::new("auditlake-data");
//! let mut lake = LakeWriter::open(dir)?;
//! lake.append(&batch)?;
//! lake.flush()?;
//! let result = QueryEngine::open(dir, QueryLimits::default())?
//!     .query("SELECT verb, count(*) FROM events GROUP BY verb")
//!     .await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod access;
mod dictionary;
mod error;
mod filter_order;
mod footers;
mod local_reads;
pub mod pipeline;
pub mod query;
mod retype;
mod scoped;
pub mod service;
mod short_eq;
pub mod table;
pub mod triage;
mod wrapped;

// Storage is its own crate; its modules are named here too, as they were before it was.
pub use auditlake_storage::{
    Lake, delta, instance, lake, live, maintenance, partition, quarantine, store, wal,
};

pub use access::{Access, AccessLog, AccessTable};
pub use error::{Error, Result};
pub use instance::Instance;
pub use lake::{AppendStats, Appended, LakeWriter, TableWriter};
pub use live::SharedLake;
pub use pipeline::{Ingested, Pipeline};
pub use query::{BatchStream, Planned, QueryEngine, QueryLimits, QueryResult, stored_types};
pub use service::{AlertHook, Readiness, Reservation, Service, ServiceConfig};
pub use table::LakeTable;
pub use triage::{Status, TriageChange, TriageStore, TriageUpdate};
