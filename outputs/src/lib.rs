//! Where alerts go once raised: every configured output (Alertmanager, a webhook, Slack, syslog)
//! gets its own [`Outbox`], a queue on disk that an alert enters before the events that raised it
//! are acknowledged and leaves only once the output accepted it, so an output that is down, or a
//! crash, loses no alert (at least once: after a crash an alert may be sent again, with the same
//! `alert_id`).
//!
//! # Layout
//! - [`outbox`]: [`Outbox`], the durable, bounded queue of one output.
//! - [`error`]: the [`Error`] type.
//!
//! # Example
//! ```no_run
//! # fn demo(alerts: &arrow::record_batch::RecordBatch) -> auditlake_outputs::Result<()> {
//! use auditlake_outputs::Outbox;
//! let mut outbox = Outbox::open(std::path::Path::new("data/outbox/pager"), "pager", 64 << 20)?;
//! outbox.push(alerts)?; // durable when this returns
//! let batch: Vec<_> = outbox.oldest(100).cloned().collect();
//! // ... send `batch`; once the output accepted it:
//! outbox.ack(batch.len())?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod error;
pub mod outbox;

pub use error::{Error, Result};
pub use outbox::{Outbox, Queued};
