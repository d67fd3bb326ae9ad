//! Background upkeep of the lake's tables: small files left by frequent flushes are merged per
//! partition (compaction), files whose hour is older than the retention are removed from the
//! table, the bytes of removed files are deleted once no query can still be reading them
//! (vacuum), and what a crash left behind is cleaned up at start.
//!
//! Each is a commit to the table's log (see [`crate::delta`]), so several servers sharing a lake
//! can run them at once: a compaction or an expiry whose files another server's commit removed
//! first is abandoned, never applied twice. Each server compacts only its own files (so two never
//! do the same work) and expires anyone's (so a server that is gone does not keep its files).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use auditlake_schema::columns::{alert, event};
use auditlake_schema::time::now_micros;
use auditlake_schema::{alerts_schema, events_schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::delta::{self, DataFile, TableLog, VACUUM_GRACE, block_on};
use crate::encoding::writer_properties;
use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::lake::{ALERTS_DIR, EVENTS_DIR, SPOOL_DIR, schema_tag};
use crate::open_file::write_bounded;
use crate::partition::{HOUR_MICROS, Hour};
use crate::store::{FileData, Lake};

/// A partition is compacted once it has this many small files.
pub const COMPACT_MIN_FILES: usize = 8;
/// Files at least this big are left alone; smaller ones are merged.
const COMPACT_TARGET_BYTES: u64 = 128 << 20;
/// Rows decoded at a time while merging: wide rows (request and response bodies) make big
/// batches, and compaction runs next to the ingest pipeline.
const MERGE_BATCH_ROWS: usize = 1024;

/// One table as upkeep sees it.
struct Table {
    name: &'static str,
    schema: SchemaRef,
    time_column: &'static str,
    log: TableLog,
}

/// Compaction, retention and vacuum for one lake.
pub struct Maintenance {
    lake: Lake,
    /// Where merged files are written before they are put in a remote lake.
    spool: PathBuf,
    tables: Vec<Table>,
    retention: Option<Duration>,
    instance: Instance,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Files merged away.
    pub compacted_files: usize,
    /// Partitions whose files retention removed.
    pub expired_partitions: usize,
    /// Removed files whose bytes were deleted.
    pub vacuumed_files: usize,
    /// Partitions whose merge failed (a damaged file, a full disk): left as they were, tried
    /// again next pass.
    pub failed_partitions: usize,
}

impl Maintenance {
    /// Upkeep of the lake in `data_dir`.
    pub fn new(data_dir: &Path, retention: Option<Duration>) -> Result<Self> {
        Self::new_in(&Lake::local(data_dir), data_dir, retention)
    }

    /// Upkeep of `lake`, spooling merged files under `data_dir` when it is remote.
    pub fn new_in(lake: &Lake, data_dir: &Path, retention: Option<Duration>) -> Result<Self> {
        let mut tables = Vec::new();
        for (name, schema, time_column) in [
            (EVENTS_DIR, events_schema(), event::EVENT_TIME),
            (ALERTS_DIR, alerts_schema(), alert::EVENT_TIME),
        ] {
            let log = TableLog::open_blocking(lake, name, &schema, time_column)?;
            tables.push(Table {
                name,
                schema,
                time_column,
                log,
            });
        }
        Ok(Self {
            lake: lake.clone(),
            spool: data_dir.join(SPOOL_DIR),
            tables,
            retention,
            instance: Instance::unnamed(),
        })
    }

    /// Compacts only the files of `instance`.
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.instance = instance;
        self
    }

    /// Runs a pass every `every` until `stop` is signalled or dropped.
    pub fn run(&self, every: Duration, stop: &Receiver<()>) {
        loop {
            match stop.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            // Shutdown should not wait for a whole pass: stop between partitions.
            let stopping = || !matches!(stop.try_recv(), Err(TryRecvError::Empty));
            match self.pass_until(&stopping) {
                Ok(pass) if pass != Pass::default() => {
                    tracing::info!(
                        compacted_files = pass.compacted_files,
                        expired_partitions = pass.expired_partitions,
                        vacuumed_files = pass.vacuumed_files,
                        "lake maintenance"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lake maintenance failed; retrying next pass"),
            }
        }
    }

    /// Applies retention, compacts every partition with enough small files of this instance, and
    /// deletes files removed more than [`VACUUM_GRACE`] ago.
    pub fn pass(&self) -> Result<Pass> {
        self.pass_until(&|| false)
    }

    /// [`Maintenance::pass`] with a vacuum grace of `grace` (tests).
    pub fn pass_with_grace(&self, grace: Duration) -> Result<Pass> {
        self.pass_inner(&|| false, grace)
    }

    /// [`Maintenance::pass`], ending early (between partitions) once `stopping` says so.
    fn pass_until(&self, stopping: &dyn Fn() -> bool) -> Result<Pass> {
        self.pass_inner(stopping, VACUUM_GRACE)
    }

    fn pass_inner(&self, stopping: &dyn Fn() -> bool, grace: Duration) -> Result<Pass> {
        let mut pass = Pass::default();
        for table in &self.tables {
            if let Some(retention) = self.retention {
                pass.expired_partitions += self.expire(table, retention)?;
            }
            let files = files(&table.log)?;
            let mut hours: std::collections::BTreeMap<Hour, Vec<DataFile>> = Default::default();
            for file in files.iter() {
                hours.entry(file.hour).or_default().push(file.clone());
            }
            for (_, files) in hours {
                if stopping() {
                    return Ok(pass);
                }
                // A merge that fails commits nothing: its inputs stay as they were, so a damaged
                // file spreads to no merged one, and the other partitions go on.
                match self.compact(table, files) {
                    Ok(merged) => pass.compacted_files += merged,
                    Err(e) => {
                        metrics::counter!("auditlake_compaction_failures_total").increment(1);
                        tracing::error!(
                            table = table.name,
                            error = %crate::error::chain(&e),
                            "a partition was not compacted; its files are left as they were \
                             (a damaged one can be set aside with `auditlake lake quarantine`)"
                        );
                        pass.failed_partitions += 1;
                    }
                }
            }
            let log = table.log.clone();
            pass.vacuumed_files += block_on(async move { log.vacuum(grace).await })?;
            let files = files_count(&table.log)?;
            metrics::gauge!("auditlake_lake_files", "table" => table.name).set(files as f64);
        }
        Ok(pass)
    }

    /// Removes from `table` every file whose hour ended more than `retention` ago, in one
    /// commit; returns how many partitions that emptied.
    ///
    /// Ago counts from the clock, or from the end of the newest hour the table holds when the
    /// clock is past it: a clock that jumps ahead (a bad RTC, an NTP server gone wrong) must not
    /// erase the evidence, so the newest `retention` of history is always kept, also in a lake
    /// nothing has written to for a while.
    fn expire(&self, table: &Table, retention: Duration) -> Result<usize> {
        let files = files(&table.log)?;
        let Some(newest) = files
            .iter()
            .map(|f| f.hour.start_micros() + HOUR_MICROS)
            .max()
        else {
            return Ok(0);
        };
        let now = now_micros();
        if now > newest + i64::try_from(retention.as_micros()).unwrap_or(i64::MAX) {
            tracing::warn!(
                table = table.name,
                newest = %auditlake_schema::time::format_micros(newest),
                "the clock is past the newest data by more than the retention; \
                 retention counts from the newest data"
            );
        }
        let cutoff = now.min(newest) - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let expired: Vec<DataFile> = files
            .iter()
            .filter(|f| f.hour.start_micros() + HOUR_MICROS <= cutoff)
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let mut hours: Vec<Hour> = expired.iter().map(|f| f.hour).collect();
        hours.dedup();
        let predicate = delta::expiry_predicate(table.time_column, cutoff);
        let log = table.log.clone();
        let removed = expired.clone();
        match block_on(async move { log.remove(&removed, predicate).await }) {
            Ok(_) => {}
            Err(Error::Conflict { message, .. }) => {
                tracing::info!(table = table.name, %message, "another server expired these files first");
                return Ok(0);
            }
            Err(e) => return Err(e),
        }
        metrics::counter!("auditlake_partitions_expired_total").increment(hours.len() as u64);
        Ok(hours.len())
    }

    /// Merges the small files of this instance in one partition into one file of the table's
    /// schema, in one commit; returns how many were merged away.
    fn compact(&self, table: &Table, partition: Vec<DataFile>) -> Result<usize> {
        let own: Vec<DataFile> = partition
            .into_iter()
            .filter(|f| self.instance.owns(f.name()))
            .collect();
        let Some(small) = tier_to_merge(own) else {
            return Ok(0);
        };
        let hour = small[0].hour;
        let name = self.instance.new_file_stem(&schema_tag(&table.schema));
        let relative = format!("{}/{name}.parquet", hour.relative_dir());
        let local_dir = match self.lake.local_dir() {
            Some(dir) => dir.join(table.name),
            None => self.spool.join(table.name),
        };
        let tmp = local_dir.join(format!("{relative}.tmp"));
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        let inputs = small
            .iter()
            .map(|f| Ok((self.lake.read_file(table.name, &f.path)?, f.path.as_str())));
        let (rows, times) = match merge(inputs, &tmp, &table.schema, table.time_column) {
            Ok(counts) => counts,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let size = std::fs::metadata(&tmp).map_err(Error::io(&tmp))?.len();
        self.lake.publish_file(&tmp, table.name, &relative)?;
        let merged = DataFile {
            path: relative.clone(),
            hour,
            size,
            rows: Some(rows),
            times,
        };
        let log = table.log.clone();
        let old = small.clone();
        match block_on(async move { log.replace(&old, &[merged]).await }) {
            Ok(_) => {}
            Err(e) => {
                // Never committed, so nobody reads it; unless the commit went through though it
                // was reported failed, which only a fresh read of the log tells.
                let committed = files(&table.log).map(|f| f.iter().any(|f| f.path == relative));
                if matches!(committed, Ok(false)) {
                    let _ = self.lake.delete_file(table.name, &relative);
                }
                return match e {
                    Error::Conflict { message, .. } => {
                        tracing::info!(table = table.name, %message, "compaction abandoned");
                        Ok(0)
                    }
                    e => Err(e),
                };
            }
        }
        metrics::counter!("auditlake_files_compacted_total").increment(small.len() as u64);
        Ok(small.len())
    }
}

fn files(log: &TableLog) -> Result<Arc<Vec<DataFile>>> {
    let log = log.clone();
    block_on(async move { log.files().await })
}

fn files_count(log: &TableLog) -> Result<usize> {
    Ok(files(log)?.len())
}

/// The files to merge: the smallest size tier (sizes within a factor of 4) holding at least
/// [`COMPACT_MIN_FILES`] files under [`COMPACT_TARGET_BYTES`]. Merging like with like writes each
/// row O(log n) times, where merging every small file would rewrite the hour's growing merged
/// file at every pass.
fn tier_to_merge(mut files: Vec<DataFile>) -> Option<Vec<DataFile>> {
    files.retain(|f| f.size < COMPACT_TARGET_BYTES);
    files.sort_by(|a, b| (a.size, &a.path).cmp(&(b.size, &b.path)));
    let tier = |size: u64| (size.max(1).ilog2() / 2) as usize;
    let mut start = 0;
    while start < files.len() {
        let t = tier(files[start].size);
        let end = start
            + files[start..]
                .iter()
                .take_while(|f| tier(f.size) == t)
                .count();
        if end - start >= COMPACT_MIN_FILES {
            return Some(files.drain(start..end).collect());
        }
        start = end;
    }
    None
}

/// Cleans what a crash of `instance` left: its unfinished `.tmp` files (never visible, their
/// rows are in its write-ahead log), and its files put in the lake but never committed (a crash
/// between the two steps; their rows are in the log too, and go into new files). Other
/// instances' files, which may be in the middle of being written or committed, are left alone.
pub fn recover(lake: &Lake, data_dir: &Path, instance: &Instance) -> Result<()> {
    for (name, schema, time_column) in [
        (EVENTS_DIR, events_schema(), event::EVENT_TIME),
        (ALERTS_DIR, alerts_schema(), alert::EVENT_TIME),
    ] {
        let local = match lake.local_dir() {
            Some(dir) => dir.join(name),
            None => data_dir.join(SPOOL_DIR).join(name),
        };
        for path in crate::partition::files_under(&local).map_err(Error::io(&local))? {
            if path.extension().is_some_and(|e| e == "tmp") && instance.owns_path(&path) {
                tracing::info!(file = %path.display(), "removing an unfinished file");
                std::fs::remove_file(&path).map_err(Error::io(&path))?;
            }
        }
        let log = TableLog::open_blocking(lake, name, &schema, time_column)?;
        let committed: std::collections::HashSet<String> =
            files(&log)?.iter().map(|f| f.path.clone()).collect();
        for relative in lake.list_data_files(name)? {
            let file_name = relative.rsplit('/').next().unwrap_or(&relative);
            if !committed.contains(&relative) && instance.owns(file_name) {
                tracing::info!(file = %relative, table = name, "removing a file never committed");
                lake.delete_file(name, &relative)?;
            }
        }
    }
    Ok(())
}

/// Writes the rows of `inputs` to `output` as one file of `schema`; returns its row count and
/// time range. Files written before a column was added to the table get nulls in it, so an hour
/// holding files of an older release and of this one still merges (their schemas differ, and
/// one Parquet file has one).
fn merge<'a>(
    inputs: impl Iterator<Item = Result<(FileData, &'a str)>>,
    output: &Path,
    schema: &SchemaRef,
    time_column: &str,
) -> Result<(u64, Option<(i64, i64)>)> {
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampMicrosecondType;
    let mut writer: Option<ArrowWriter<File>> = None;
    let (mut rows, mut times) = (0u64, None::<(i64, i64)>);
    for input in inputs {
        let (file, path) = input?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(MERGE_BATCH_ROWS).build())
            .map_err(Error::parquet(path))?;
        for batch in reader {
            let batch = as_schema(&batch?, schema).map_err(|e| Error::parquet(path)(e.into()))?;
            let t = auditlake_schema::columns::column(&batch, time_column)
                .as_primitive::<TimestampMicrosecondType>();
            if let (Some(min), Some(max)) = (arrow::compute::min(t), arrow::compute::max(t)) {
                times = Some(times.map_or((min, max), |(a, b)| (min.min(a), max.max(b))));
            }
            rows += batch.num_rows() as u64;
            let w = match &mut writer {
                Some(w) => w,
                None => {
                    let file = File::create(output).map_err(Error::io(output))?;
                    writer.insert(
                        ArrowWriter::try_new(file, Arc::clone(schema), Some(writer_properties()))
                            .map_err(Error::parquet(output))?,
                    )
                }
            };
            write_bounded(w, &batch).map_err(Error::parquet(output))?;
        }
    }
    match writer {
        Some(w) => {
            let file = w.into_inner().map_err(Error::parquet(output))?;
            file.sync_all().map_err(Error::io(output))?;
        }
        // No rows at all: still a valid (empty) file of the schema.
        None => {
            let file = File::create(output).map_err(Error::io(output))?;
            ArrowWriter::try_new(file, Arc::clone(schema), Some(writer_properties()))
                .and_then(|w| w.close().map(|_| ()))
                .map_err(Error::parquet(output))?;
        }
    }
    Ok((rows, times))
}

/// `batch` with the columns of `schema`, matched by name: cast where the stored type differs,
/// null where the file predates the column. A column that cannot be cast, or a missing column
/// that may not be null, is an error.
fn as_schema(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast(c, field.data_type()),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LakeWriter;
    use crate::test_support::{committed_files, count_events as count, events, older_events_file};

    fn files(dir: &Path) -> usize {
        committed_files(dir).len()
    }

    /// Parquet files in the events partitions, committed or not.
    fn on_disk(dir: &Path) -> usize {
        Lake::local(dir)
            .list_data_files(EVENTS_DIR)
            .expect("list")
            .len()
    }

    #[test]
    fn small_files_are_merged_into_one_and_every_row_stays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        for flush in 0..10 {
            lake.append(&events(&format!("f{flush}"), 20, "2025-11-03T10:15:00Z"))
                .expect("append");
            lake.flush().expect("flush");
        }
        assert_eq!((files(dir.path()), count(dir.path())), (10, 200));
        let m = Maintenance::new(dir.path(), None).expect("maintenance");
        let pass = m.pass().expect("pass");
        assert_eq!(pass.compacted_files, 10);
        assert_eq!((files(dir.path()), count(dir.path())), (1, 200));
        assert_eq!(
            on_disk(dir.path()),
            11,
            "merged files stay for running queries"
        );
        assert_eq!(pass.vacuumed_files, 0);
        let pass = m.pass_with_grace(Duration::ZERO).expect("pass");
        assert_eq!(
            (pass.compacted_files, pass.vacuumed_files),
            (0, 10),
            "one file is left alone"
        );
        assert_eq!(on_disk(dir.path()), 1);
        assert_eq!(count(dir.path()), 200);
    }

    #[test]
    fn files_of_an_older_schema_merge_with_current_ones_into_the_current_schema() {
        use arrow::array::{Array, AsArray};
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder as Reader;

        let dir = tempfile::tempdir().expect("tempdir");
        let time = "2025-11-03T10:15:00Z";
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        for flush in 0..4 {
            lake.append(&events(&format!("new{flush}"), 5, time))
                .expect("append");
            lake.flush().expect("flush");
        }
        // Four files as a release before `exec_command` was a column wrote them.
        for old in 0..4 {
            let name = format!("part-{old:032x}.parquet");
            older_events_file(dir.path(), &name, &format!("old{old}"), 5, time);
        }
        assert_eq!((files(dir.path()), count(dir.path())), (8, 40));

        let m = Maintenance::new(dir.path(), None).expect("maintenance");
        assert_eq!(m.pass().expect("pass").compacted_files, 8);
        assert_eq!((files(dir.path()), count(dir.path())), (1, 40));
        let merged = dir
            .path()
            .join(EVENTS_DIR)
            .join(&committed_files(dir.path())[0].path);
        let tag = crate::lake::file_schema_tag(&merged).expect("tagged");
        assert_eq!(tag, schema_tag(&events_schema()));
        let rows: Vec<RecordBatch> = Reader::try_new(File::open(&merged).expect("open"))
            .and_then(|b| b.build())
            .expect("reader")
            .collect::<std::result::Result<_, _>>()
            .expect("rows");
        assert_eq!(rows[0].schema().fields(), events_schema().fields());
        let nulls: usize = rows
            .iter()
            .map(|b| column_nulls(b, auditlake_schema::columns::event::EXEC_COMMAND))
            .sum();
        assert_eq!(nulls, 40, "no event here is an exec, old or new");
        let ids: usize = rows
            .iter()
            .map(|b| {
                let ids = b
                    .column_by_name("audit_id")
                    .expect("audit_id")
                    .as_string::<i32>();
                ids.iter()
                    .filter(|id| id.is_some_and(|i| i.starts_with("old")))
                    .count()
            })
            .sum();
        assert_eq!(ids, 20, "the old files' rows are all there");
        fn column_nulls(b: &RecordBatch, name: &str) -> usize {
            b.column_by_name(name).expect("column").null_count()
        }
    }

    #[test]
    fn only_files_of_one_size_tier_are_merged() {
        let p = |size: u64, name: &str| DataFile {
            path: name.into(),
            hour: Hour(0),
            size,
            rows: None,
            times: None,
        };
        let mut files: Vec<_> = (0..8).map(|i| p(1000 + i, &format!("small{i}"))).collect();
        files.push(p(50 << 20, "merged-before"));
        files.push(p(200 << 20, "big"));
        let chosen = tier_to_merge(files.clone()).expect("eight small files");
        assert_eq!(chosen.len(), 8);
        assert!(chosen.iter().all(|f| f.path.starts_with("small")));
        files.truncate(7);
        assert_eq!(tier_to_merge(files), None, "seven are not enough");
        // Sizes a little apart stay in one tier; eight files of 4 KiB..60 KiB are not one tier.
        let spread: Vec<_> = (0..8)
            .map(|i| p(4096 << (i / 2), &format!("f{i}")))
            .collect();
        assert_eq!(tier_to_merge(spread), None);
    }

    #[test]
    fn retention_removes_expired_hours_and_vacuum_deletes_them_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        lake.append(&events("old", 5, "2020-01-01T00:30:00Z"))
            .expect("append");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        lake.append(&events("new", 7, &now)).expect("append");
        lake.flush().expect("flush");
        let m = Maintenance::new(dir.path(), Some(Duration::from_secs(86_400))).expect("m");
        assert_eq!(m.pass().expect("pass").expired_partitions, 1);
        assert_eq!(count(dir.path()), 7);
        assert_eq!(
            on_disk(dir.path()),
            2,
            "the expired file waits for the grace period"
        );
        assert_eq!(
            m.pass_with_grace(Duration::ZERO)
                .expect("pass")
                .vacuumed_files,
            1
        );
        assert_eq!(on_disk(dir.path()), 1);
    }

    #[test]
    fn instances_compact_their_own_files_expire_anyones_and_recover_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Instance::named("a").expect("name");
        let b = Instance::named("b").expect("name");
        for (instance, prefix) in [(&a, "a"), (&b, "b")] {
            let mut lake = LakeWriter::open(dir.path())
                .expect("lake")
                .with_instance(instance.clone());
            for flush in 0..8 {
                lake.append(&events(
                    &format!("{prefix}{flush}"),
                    5,
                    "2020-01-01T00:30:00Z",
                ))
                .expect("append");
                lake.flush().expect("flush");
            }
        }
        let hour = dir.path().join("events/date=2020-01-01/hour=00");
        // Files b is writing or about to commit right now: a's recovery must not take them
        // for its own crash's leftovers.
        let writing = hour.join(format!("{}.parquet.tmp", b.new_file_stem("s1")));
        std::fs::write(&writing, b"in progress").expect("write");
        let uncommitted_b = hour.join(format!("{}.parquet", b.new_file_stem("s1")));
        std::fs::write(&uncommitted_b, b"not yet committed").expect("write");
        // And what a crash of a left: a file put in place but never committed.
        let uncommitted_a = hour.join(format!("{}.parquet", a.new_file_stem("s1")));
        std::fs::write(&uncommitted_a, b"never committed").expect("write");
        recover(&Lake::local(dir.path()), dir.path(), &a).expect("recover");
        assert!(
            writing.exists() && uncommitted_b.exists(),
            "b's files are left alone"
        );
        assert!(!uncommitted_a.exists(), "a's leftover is gone");

        let of_a = Maintenance::new(dir.path(), None)
            .expect("m")
            .with_instance(a.clone());
        assert_eq!(of_a.pass().expect("pass").compacted_files, 8);
        let owned = |i: &Instance| {
            committed_files(dir.path())
                .iter()
                .filter(|f| i.owns(f.name()))
                .count()
        };
        assert_eq!((owned(&a), owned(&b)), (1, 8), "b's files are untouched");
        assert_eq!(count(dir.path()), 80);

        // Any server expires every expired file, whoever wrote it (counting from the newest
        // data, which a third writes now).
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        lake.append(&events("c", 1, &now)).expect("append");
        lake.flush().expect("flush");
        let retention = Some(Duration::from_secs(86_400));
        let expire = Maintenance::new(dir.path(), retention)
            .expect("m")
            .with_instance(a);
        assert_eq!(expire.pass().expect("pass").expired_partitions, 1);
        assert_eq!(count(dir.path()), 1);
    }

    #[test]
    fn retention_counts_from_the_newest_data_when_the_clock_is_past_it() {
        // As if the clock jumped years ahead of the newest event: the newest day of history
        // stays, only what is older than it by the retention goes.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        lake.append(&events("older", 3, "2020-01-01T00:30:00Z"))
            .expect("append");
        lake.append(&events("newest-day", 4, "2020-01-05T10:30:00Z"))
            .expect("append");
        lake.append(&events("newest", 5, "2020-01-05T23:30:00Z"))
            .expect("append");
        lake.flush().expect("flush");
        let m = Maintenance::new(dir.path(), Some(Duration::from_secs(86_400))).expect("m");
        assert_eq!(m.pass().expect("pass").expired_partitions, 1);
        assert_eq!(count(dir.path()), 9);
        assert_eq!(
            m.pass().expect("pass").expired_partitions,
            0,
            "and it stays"
        );
    }
}
