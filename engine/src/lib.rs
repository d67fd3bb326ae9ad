//! Where audit events *live*.
//!
//! The engine stores decoded `events` batches in a Parquet lake under the data directory
//! (zstd, hive-partitioned by event date and hour), stores each exact redelivery only once, and
//! answers read-only SQL over the lake through DataFusion, pruning partitions by `event_time`.
//! Every new event is checked by the rules and the alerts stored in the `alerts` table. For a
//! server, [`Service`] adds the write-ahead log (acknowledge after fsync), the live buffer (rows
//! queryable before their file is complete), compaction and retention.
//!
//! # Layout
//! - [`lake`]: [`LakeWriter`], the write side (dedup, partitioning, atomic Parquet files).
//! - [`live`]: rows of still-open files, shared with queries.
//! - [`wal`]: the write-ahead log.
//! - [`instance`]: [`Instance`], which server wrote a file of a shared lake.
//! - [`service`]: [`Service`], group commit, the pipeline thread, flushing, backpressure.
//! - [`maintenance`]: compaction, retention, crash recovery of half-done work.
//! - `dedup`: the per-partition index of stored events.
//! - `dictionary`: filters on low-cardinality columns evaluated once per distinct value.
//! - [`partition`]: the `date=/hour=` layout.
//! - [`pipeline`]: [`Pipeline`], events stored, rules run on the new ones, alerts stored.
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

mod dedup;
mod dictionary;
mod error;
mod filter_order;
mod footers;
pub mod instance;
pub mod lake;
pub mod live;
mod local_reads;
pub mod maintenance;
pub mod partition;
pub mod pipeline;
pub mod query;
pub mod service;
mod short_eq;
pub mod table;
pub mod triage;
pub mod wal;
mod wrapped;

pub use error::{Error, Result};
pub use instance::Instance;
pub use lake::{AppendStats, Appended, LakeWriter, TableWriter};
pub use live::SharedLake;
pub use pipeline::{Ingested, Pipeline};
pub use query::{QueryEngine, QueryLimits, QueryResult};
pub use service::{AlertHook, Readiness, Reservation, Service, ServiceConfig};
pub use table::LakeTable;
pub use triage::{Status, TriageChange, TriageStore, TriageUpdate};
