//! Where sources hand decoded batches.

use arrow::record_batch::RecordBatch;

/// Takes decoded `events` batches. A source treats a batch as stored once `write` returns `Ok`.
pub trait Sink {
    /// Why a batch could not be stored.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores one batch.
    fn write(&mut self, batch: RecordBatch) -> Result<(), Self::Error>;
}
