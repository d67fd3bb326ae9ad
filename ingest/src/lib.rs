//! Where audit events come *from*.
//!
//! Sources read bytes, hand them to [`auditlake_schema::Decoder`], and pass the decoded batches to a
//! [`Sink`] (the engine), acknowledging their sender only once the sink has taken them. Sources:
//! file replay (plain or gzip files and stdin, NDJSON or whole JSON documents, every rejected line
//! named by file and line) and the audit webhook ([`webhook::router`], answering 200 only once a
//! [`webhook::DurableSink`] has the events durable) and the Kafka consumer ([`kafka::KafkaSource`],
//! committing offsets only once the same sink has the events durable).
//!
//! # Layout
//! - [`kafka`]: the Kafka consumer, and the alert publisher.
//! - [`file`]: inputs (files, stdin), gzip detection, read-progress counting.
//! - [`lines`]: splitting an input into JSON documents with line numbers.
//! - [`replay`]: the replay loop and its summary.
//! - [`sink`]: the [`Sink`] trait the engine implements.
//! - [`webhook`]: the audit webhook routes.
//!
//! # Example
//! ```
//! use auditlake_ingest::{Input, Replay, Sink, Summary};
//! use arrow::record_batch::RecordBatch;
//!
//! struct Count(usize);
//! impl Sink for Count {
//!     type Error = std::convert::Infallible;
//!     fn write(&mut self, batch: RecordBatch) -> Result<(), Self::Error> {
//!         self.0 += batch.num_rows();
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.log");
//! std::fs::write(&path, concat!(
//!     r#"{"auditID":"a","stage":"ResponseComplete","verb":"get","timestamp":"2024-01-01T00:00:00Z"}"#, "\n",
//!     "not json\n",
//! )).unwrap();
//! let mut replay = Replay::new(Count(0), None);
//! let mut summary = Summary::default();
//! replay.input(&Input::Path(path), &mut summary, &mut |_| {}).unwrap();
//! replay.flush().unwrap();
//! assert_eq!(replay.into_sink().0, 1);
//! assert_eq!(summary.rejected[0].line, 2);
//! ```
#![warn(missing_docs)]

mod body;
mod error;
pub mod file;
#[cfg(test)]
mod fuzz;
pub mod kafka;
pub mod lines;
mod publish;
pub mod replay;
pub mod sink;
pub mod webhook;

pub use error::{Error, Result};
pub use file::Input;
pub use replay::{Progress, Rejected, Replay, Summary, error_chain};
pub use sink::Sink;
