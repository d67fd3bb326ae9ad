//! Where alerts go once raised: every configured output (Alertmanager, a webhook, Slack, syslog)
//! gets its own [`Outbox`], a queue on disk that an alert enters before the events that raised it
//! are acknowledged and leaves only once the output accepted it, so an output that is down, or a
//! crash, loses no alert (at least once: after a crash an alert may be sent again, with the same
//! `alert_id`).
//!
//! # Layout
//! - [`deliver`]: [`Delivery`], every output's outbox and the task that sends from it.
//! - [`group`]: at most one message per rule and cluster per window.
//! - [`outbox`]: [`Outbox`], the durable, bounded queue of one output.
//! - [`config`]: `[[alerts.outputs]]` tables, checked into [`config::Output`]s.
//! - [`alertmanager`]: the body of Alertmanager's `POST /api/v2/alerts`.
//! - [`webhook`]: the signature of the generic webhook, and its check.
//! - [`slack`]: a Slack-compatible message.
//! - [`syslog`]: RFC 5424 lines.
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
//! if let Some(last) = batch.last() {
//!     outbox.ack_through(last.seq)?;
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod alertmanager;
pub mod config;
pub mod deliver;
pub mod error;
pub mod group;
pub mod outbox;
pub mod slack;
pub mod syslog;
pub mod webhook;

pub use deliver::Delivery;
pub use error::{Error, Result};
pub use outbox::{Outbox, Queued};

/// The text of an alert row's `key`, if it is a non-empty string.
pub(crate) fn text<'r>(row: &'r serde_json::Value, key: &str) -> Option<&'r str> {
    row.get(key)
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
}
