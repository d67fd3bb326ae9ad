//! Errors of alert delivery.

/// What failed queueing or delivering alerts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The outbox's log could not be written or read.
    #[error("outbox {output}")]
    Outbox {
        /// The output it belongs to.
        output: String,
        /// Why.
        source: auditlake_storage::Error,
    },
    /// The thread writing the outboxes failed earlier, or is gone; alerts are refused until a
    /// restart (the write-ahead log raises the unsynced ones again).
    #[error("the outbox writer failed")]
    Writer {
        /// The failure that stopped it.
        source: std::sync::Arc<Error>,
    },
    /// The outbox writer is gone (its thread could not start, or ended).
    #[error("the outbox writer {reason}")]
    WriterGone {
        /// Why.
        reason: String,
    },
    /// An alert could not be turned into the JSON an output sends.
    #[error("alert as JSON")]
    Json {
        /// Why.
        source: arrow::error::ArrowError,
    },
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
