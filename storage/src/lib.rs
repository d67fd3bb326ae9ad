//! Where audit events are *kept*.
//!
//! The lake is a directory of zstd Parquet files, one table per subdirectory (`events`,
//! `alerts`), hive-partitioned by event date and hour. This crate writes it (each exact
//! redelivery stored once, files that appear whole), keeps it (compaction, retention, recovery of
//! half-done work), holds the rows of files still open so they can be read before they are
//! complete, and keeps the write-ahead log a server acknowledges from. Reading the lake with SQL
//! is `auditlake-engine`'s job.
//!
//! # Layout
//! - [`lake`]: [`LakeWriter`], the write side (dedup, partitioning, atomic Parquet files).
//! - [`partition`]: the `date=/hour=` layout.
//! - `dedup`: the per-partition index of stored events.
//! - `durable`: making renames outlive a crash.
//! - [`live`]: rows of still-open files, shared with queries.
//! - [`maintenance`]: compaction, retention, crash recovery of half-done work.
//! - [`wal`]: the write-ahead log.
//! - [`instance`]: [`Instance`], which server wrote a file of a shared lake.
//! - [`error`]: the [`Error`] type.
//!
//! # Example
//! ```no_run
//! # fn demo(batch: arrow::record_batch::RecordBatch) -> auditlake_storage::Result<()> {
//! use auditlake_storage::LakeWriter;
//! let mut lake = LakeWriter::open(std::path::Path::new("auditlake-data"))?;
//! lake.append(&batch)?;
//! lake.flush()?; // the rows are in complete Parquet files now
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod dedup;
pub mod delta;
mod durable;
mod encoding;
pub mod error;
pub mod instance;
pub mod lake;
pub mod live;
pub mod maintenance;
mod open_file;
pub mod partition;
pub mod quarantine;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod wal;

pub use error::{Error, Result};
pub use instance::Instance;
pub use lake::{AppendStats, Appended, LakeWriter, TableWriter};
pub use live::SharedLake;
pub use store::Lake;
