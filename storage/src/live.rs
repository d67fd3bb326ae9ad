//! The live buffer: rows written to Parquet files that are still open, kept in memory by hour so
//! queries see an event as soon as it is stored rather than when its file is complete.
//!
//! A file is published (renamed from `.tmp`) and its hour's rows dropped from the buffer under one
//! lock, and a scan lists files and copies the buffer under the same lock, so a query sees every
//! row exactly once whichever side of a flush it lands on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arrow::record_batch::RecordBatch;

use crate::partition::Hour;

/// Rows of one table not yet in a finished file, by hour.
#[derive(Debug, Default)]
pub struct LiveBuffer {
    rows: RwLock<HashMap<Hour, Vec<RecordBatch>>>,
    /// Memory held, so the writer knows when to flush.
    bytes: AtomicUsize,
}

impl LiveBuffer {
    /// Adds rows that were just written to the open file of `hour`.
    pub(crate) fn push(&self, hour: Hour, batch: RecordBatch) {
        self.bytes
            .fetch_add(batch.get_array_memory_size(), Ordering::Relaxed);
        self.write().entry(hour).or_default().push(batch);
    }

    /// Renames `tmp` to `path` (publishing a finished file of `hour`) and drops the hour's rows,
    /// as one step for readers.
    pub(crate) fn publish(&self, hour: Hour, tmp: &Path, path: &Path) -> std::io::Result<()> {
        let mut rows = self.write();
        std::fs::rename(tmp, path)?;
        if let Some(dropped) = rows.remove(&hour) {
            let freed: usize = dropped.iter().map(|b| b.get_array_memory_size()).sum();
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Memory held by buffered rows.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Lists files with `list` and copies the buffered rows of the hours `keep` accepts, both while
    /// no file is being published.
    pub fn snapshot<T>(
        &self,
        keep: impl Fn(Hour) -> bool,
        list: impl FnOnce() -> std::io::Result<T>,
    ) -> std::io::Result<(T, Vec<RecordBatch>)> {
        let rows = self.read();
        let files = list()?;
        let batches = rows
            .iter()
            .filter(|(hour, _)| keep(**hour))
            .flat_map(|(_, batches)| batches.iter().cloned())
            .collect();
        Ok((files, batches))
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Hour, Vec<RecordBatch>>> {
        // A panic while holding the lock cannot leave the map half-updated: every change is one
        // insert or remove.
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Hour, Vec<RecordBatch>>> {
        self.rows.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the writer and the query engine of one process share about a data directory.
#[derive(Debug, Default)]
pub struct SharedLake {
    /// Live rows of `events`.
    pub events: Arc<LiveBuffer>,
    /// Live rows of `alerts`.
    pub alerts: Arc<LiveBuffer>,
    /// Held for reading by every running query, for writing by compaction and retention while
    /// they delete files, so no query loses a file it has planned to read.
    pub files: tokio::sync::RwLock<()>,
}
