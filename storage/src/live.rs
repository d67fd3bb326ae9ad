//! The live buffer: rows written to Parquet files that are still open, kept in memory by hour so
//! queries see an event as soon as it is stored rather than when its file is complete.
//!
//! Rows are kept by the file they are written to until a commit adds that file to the table;
//! see [`LiveBuffer::snapshot`] for how a scan sees each row exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arrow::record_batch::RecordBatch;

use crate::partition::Hour;

/// Buffered rows by the file they are written to (its path in the table), with its hour.
type ByFile = HashMap<Arc<str>, (Hour, Vec<RecordBatch>)>;

/// Rows of one table not yet in a committed file, by the file they are written to.
#[derive(Debug, Default)]
pub struct LiveBuffer {
    rows: RwLock<ByFile>,
    /// Memory held, so the writer knows when to flush.
    bytes: AtomicUsize,
}

impl LiveBuffer {
    /// Adds rows that were just written to `file` (its path in the table) of `hour`.
    pub(crate) fn push(&self, hour: Hour, file: &Arc<str>, batch: RecordBatch) {
        self.bytes
            .fetch_add(batch.get_array_memory_size(), Ordering::Relaxed);
        self.write()
            .entry(Arc::clone(file))
            .or_insert_with(|| (hour, Vec::new()))
            .1
            .push(batch);
    }

    /// Drops the rows of `files`, which a commit has just added to the table.
    pub(crate) fn committed<'a>(&self, files: impl IntoIterator<Item = &'a str>) {
        let mut rows = self.write();
        for file in files {
            if let Some((_, dropped)) = rows.remove(file) {
                let freed: usize = dropped.iter().map(|b| b.get_array_memory_size()).sum();
                self.bytes.fetch_sub(freed, Ordering::Relaxed);
            }
        }
    }

    /// Drops every buffered row (their files were given up, to be written again).
    pub(crate) fn clear(&self) {
        let mut rows = self.write();
        rows.clear();
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Memory held by buffered rows.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The buffered rows of the hours `keep` accepts, with the file each is written to.
    ///
    /// A scan takes these *before* it reads the table's file list, then leaves out the rows of
    /// files that list holds: a file committed in between is read from the table only, and one
    /// committed before is no longer here. So it sees every row exactly once.
    pub fn snapshot(&self, keep: impl Fn(Hour) -> bool) -> Vec<(Arc<str>, RecordBatch)> {
        self.read()
            .iter()
            .filter(|(_, (hour, _))| keep(*hour))
            .flat_map(|(file, (_, batches))| {
                batches.iter().map(move |b| (Arc::clone(file), b.clone()))
            })
            .collect()
    }

    fn read(&self) -> RwLockReadGuard<'_, ByFile> {
        // A panic while holding the lock cannot leave the map half-updated: every change is one
        // insert or remove.
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, ByFile> {
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
}
