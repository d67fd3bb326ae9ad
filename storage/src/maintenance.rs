//! Background upkeep of the lake: small files left by frequent flushes are merged per partition
//! (compaction), partitions older than the retention are deleted, and what a crash left
//! half-done is cleaned up at start. Each server touches only the files of its own
//! [`Instance`]: several servers can share one data directory.
//!
//! A compaction writes the merged file as `.tmp`, records which files it replaces in an intent
//! file, then (while no query runs) publishes the new file and deletes the old ones. A crash at
//! any point leaves either the old files or the new one, never both: [`recover`] finishes or
//! abandons what an intent describes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use arrow::array::{RecordBatch, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use auditlake_schema::time::now_micros;
use auditlake_schema::{alerts_schema, events_schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::durable::sync_dir;
use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::lake::{ALERTS_DIR, EVENTS_DIR, schema_tag, write_bounded, writer_properties};
use crate::live::SharedLake;
use crate::partition::{self, HOUR_MICROS, parquet_files};

/// A partition is compacted once it has this many small files.
pub const COMPACT_MIN_FILES: usize = 8;
/// Files at least this big are left alone; smaller ones are merged.
const COMPACT_TARGET_BYTES: u64 = 128 << 20;
const INTENT_SUFFIX: &str = ".compacting";
/// Rows decoded at a time while merging: wide rows (request and response bodies) make big
/// batches, and compaction runs next to the ingest pipeline.
const MERGE_BATCH_ROWS: usize = 1024;

/// Compaction and retention for one data directory.
pub struct Maintenance {
    data_dir: PathBuf,
    shared: Arc<SharedLake>,
    retention: Option<Duration>,
    instance: Instance,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Files merged away.
    pub compacted_files: usize,
    /// Partitions deleted by retention.
    pub expired_partitions: usize,
}

impl Maintenance {
    /// Upkeep of the lake under `data_dir`; deletions wait for running queries through `shared`.
    pub fn new(data_dir: &Path, shared: Arc<SharedLake>, retention: Option<Duration>) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            shared,
            retention,
            instance: Instance::unnamed(),
        }
    }

    /// Compacts, expires and recovers only the files of `instance`.
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
                        "lake maintenance"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lake maintenance failed; retrying next pass"),
            }
        }
    }

    /// Applies retention, then compacts every partition with enough small files.
    pub fn pass(&self) -> Result<Pass> {
        self.pass_until(&|| false)
    }

    /// [`Maintenance::pass`], ending early (between partitions) once `stopping` says so.
    fn pass_until(&self, stopping: &dyn Fn() -> bool) -> Result<Pass> {
        let mut pass = Pass::default();
        for (table, schema) in [(EVENTS_DIR, events_schema()), (ALERTS_DIR, alerts_schema())] {
            let table_dir = self.data_dir.join(table);
            if let Some(retention) = self.retention {
                pass.expired_partitions += self.expire(&table_dir, retention)?;
            }
            let mut files = 0;
            for (_, dir) in partition::list(&table_dir).map_err(Error::io(&table_dir))? {
                if stopping() {
                    return Ok(pass);
                }
                pass.compacted_files += self.compact(&dir, &schema)?;
                files += parquet_files(&dir).map_or(0, |f| f.len());
            }
            metrics::gauge!("auditlake_lake_files", "table" => table).set(files as f64);
        }
        Ok(pass)
    }

    /// Deletes this instance's files in the partitions of `table_dir` whose hour ended more than
    /// `retention` ago, and each such partition once no other instance has files in it.
    fn expire(&self, table_dir: &Path, retention: Duration) -> Result<usize> {
        let cutoff = now_micros() - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let expired: Vec<PathBuf> = partition::list(table_dir)
            .map_err(Error::io(table_dir))?
            .into_iter()
            .filter(|(hour, _)| hour.start_micros() + HOUR_MICROS <= cutoff)
            .map(|(_, dir)| dir)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let _no_queries = self.shared.files.blocking_write();
        for dir in &expired {
            for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
                let path = entry.map_err(Error::io(dir))?.path();
                if self.instance.owns_path(&path) {
                    std::fs::remove_file(&path).map_err(Error::io(&path))?;
                }
            }
            // Only succeeds once every instance's files are gone.
            let _ = std::fs::remove_dir(dir);
            if let Some(date_dir) = dir.parent() {
                // Only succeeds once the day's last hour is gone.
                let _ = std::fs::remove_dir(date_dir);
            }
        }
        metrics::counter!("auditlake_partitions_expired_total").increment(expired.len() as u64);
        Ok(expired.len())
    }

    /// Merges the small files of one partition into one file of the table's `schema`; returns
    /// how many were merged away.
    fn compact(&self, dir: &Path, schema: &SchemaRef) -> Result<usize> {
        let mut sized = Vec::new();
        for path in parquet_files(dir).map_err(Error::io(dir))? {
            if !self.instance.owns_path(&path) {
                continue;
            }
            let size = std::fs::metadata(&path).map_err(Error::io(&path))?.len();
            sized.push((size, path));
        }
        let Some(small) = tier_to_merge(sized) else {
            return Ok(0);
        };
        let name = self.instance.new_file_stem(&schema_tag(schema));
        let merged = dir.join(format!("{name}.parquet"));
        let tmp = dir.join(format!("{name}.parquet.tmp"));
        merge(&small, &tmp, schema)?;
        let intent = dir.join(format!("{name}{INTENT_SUFFIX}"));
        let listing: String = small
            .iter()
            .filter_map(|p| p.file_name()?.to_str())
            .map(|n| format!("{n}\n"))
            .collect();
        write_synced(&intent, listing.as_bytes())?;

        let _no_queries = self.shared.files.blocking_write();
        std::fs::rename(&tmp, &merged).map_err(Error::io(&merged))?;
        sync_dir(&merged);
        for old in &small {
            std::fs::remove_file(old).map_err(Error::io(old))?;
        }
        std::fs::remove_file(&intent).map_err(Error::io(&intent))?;
        sync_dir(&merged);
        metrics::counter!("auditlake_files_compacted_total").increment(small.len() as u64);
        Ok(small.len())
    }
}

/// The files to merge: the smallest size tier (sizes within a factor of 4) holding at least
/// [`COMPACT_MIN_FILES`] files under [`COMPACT_TARGET_BYTES`]. Merging like with like writes each
/// row O(log n) times, where merging every small file would rewrite the hour's growing merged
/// file at every pass.
fn tier_to_merge(mut files: Vec<(u64, PathBuf)>) -> Option<Vec<PathBuf>> {
    files.retain(|(size, _)| *size < COMPACT_TARGET_BYTES);
    files.sort();
    let tier = |size: u64| (size.max(1).ilog2() / 2) as usize;
    let mut start = 0;
    while start < files.len() {
        let t = tier(files[start].0);
        let end = start
            + files[start..]
                .iter()
                .take_while(|(s, _)| tier(*s) == t)
                .count();
        if end - start >= COMPACT_MIN_FILES {
            return Some(files.drain(start..end).map(|(_, p)| p).collect());
        }
        start = end;
    }
    None
}

/// Cleans what a crash of `instance` left under `data_dir`: its unfinished `.tmp` files (never
/// visible, their rows are in its write-ahead log) and its half-done compactions. Other
/// instances' files, which may be in the middle of being written, are left alone.
pub fn recover(data_dir: &Path, instance: &Instance) -> Result<()> {
    for table in [EVENTS_DIR, ALERTS_DIR] {
        let table_dir = data_dir.join(table);
        for (_, dir) in partition::list(&table_dir).map_err(Error::io(&table_dir))? {
            let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(Error::io(&dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| instance.owns_path(p))
                .collect();
            for path in &entries {
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if let Some(stem) = name.strip_suffix(INTENT_SUFFIX) {
                    finish_intent(&dir, stem, path)?;
                }
            }
            for path in entries {
                if path.extension().is_some_and(|e| e == "tmp") && path.exists() {
                    tracing::info!(file = %path.display(), "removing an unfinished file");
                    std::fs::remove_file(&path).map_err(Error::io(&path))?;
                }
            }
        }
    }
    Ok(())
}

/// A compaction was interrupted: if its merged file was published, the old files go; if not,
/// the old files stay and the merged `.tmp` is removed with the other unfinished files.
fn finish_intent(dir: &Path, stem: &str, intent: &Path) -> Result<()> {
    if dir.join(format!("{stem}.parquet")).exists() {
        let listing = std::fs::read_to_string(intent).map_err(Error::io(intent))?;
        for name in listing
            .lines()
            .filter(|l| !l.is_empty() && !l.contains('/'))
        {
            let old = dir.join(name);
            if old.exists() {
                std::fs::remove_file(&old).map_err(Error::io(&old))?;
            }
        }
    }
    std::fs::remove_file(intent).map_err(Error::io(intent))
}

/// Writes the rows of `inputs` to `output` as one file of `schema`. Files written before a column
/// was added to the table get nulls in it, so an hour holding files of an older release and of
/// this one still merges (their schemas differ, and one Parquet file has one).
fn merge(inputs: &[PathBuf], output: &Path, schema: &SchemaRef) -> Result<()> {
    let mut writer: Option<ArrowWriter<File>> = None;
    for path in inputs {
        let file = File::open(path).map_err(Error::io(path))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(MERGE_BATCH_ROWS).build())
            .map_err(Error::parquet(path))?;
        for batch in reader {
            let batch = as_schema(&batch?, schema).map_err(|e| Error::parquet(path)(e.into()))?;
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
    if let Some(w) = writer {
        let file = w.into_inner().map_err(Error::parquet(output))?;
        file.sync_all().map_err(Error::io(output))?;
    }
    Ok(())
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

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut file = File::create(path).map_err(Error::io(path))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io(path))?;
    sync_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LakeWriter;
    use crate::test_support::{events, older_events_file};

    fn count(dir: &Path) -> i64 {
        crate::test_support::count_events(dir)
    }

    fn files(dir: &Path) -> usize {
        partition::list(&dir.join(EVENTS_DIR))
            .expect("list")
            .iter()
            .map(|(_, d)| parquet_files(d).expect("files").len())
            .sum()
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
        let m = Maintenance::new(dir.path(), Arc::new(SharedLake::default()), None);
        let pass = m.pass().expect("pass");
        assert_eq!(pass.compacted_files, 10);
        assert_eq!((files(dir.path()), count(dir.path())), (1, 200));
        assert_eq!(
            m.pass().expect("pass").compacted_files,
            0,
            "one file is left alone"
        );
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
        let hour = dir.path().join("events/date=2025-11-03/hour=10");
        for old in 0..4 {
            let name = format!("part-{old:032x}.parquet");
            older_events_file(&hour.join(name), &format!("old{old}"), 5, time);
        }
        assert_eq!((files(dir.path()), count(dir.path())), (8, 40));

        let m = Maintenance::new(dir.path(), Arc::new(SharedLake::default()), None);
        assert_eq!(m.pass().expect("pass").compacted_files, 8);
        assert_eq!((files(dir.path()), count(dir.path())), (1, 40));
        let merged = parquet_files(&hour).expect("files").remove(0);
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
        let p = |s: u64, name: &str| (s, PathBuf::from(name));
        let mut files: Vec<_> = (0..8).map(|i| p(1000 + i, &format!("small{i}"))).collect();
        files.push(p(50 << 20, "merged-before"));
        files.push(p(200 << 20, "big"));
        let chosen = tier_to_merge(files.clone()).expect("eight small files");
        assert_eq!(chosen.len(), 8);
        assert!(
            chosen
                .iter()
                .all(|f| f.to_string_lossy().starts_with("small"))
        );
        files.truncate(7);
        assert_eq!(tier_to_merge(files), None, "seven are not enough");
        // Sizes a little apart stay in one tier; eight files of 4 KiB..60 KiB are not one tier.
        let spread: Vec<_> = (0..8)
            .map(|i| p(4096 << (i / 2), &format!("f{i}")))
            .collect();
        assert_eq!(tier_to_merge(spread), None);
    }

    #[test]
    fn retention_deletes_whole_expired_partitions_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        lake.append(&events("old", 5, "2020-01-01T00:30:00Z"))
            .expect("append");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        lake.append(&events("new", 7, &now)).expect("append");
        lake.flush().expect("flush");
        let m = Maintenance::new(
            dir.path(),
            Arc::new(SharedLake::default()),
            Some(Duration::from_secs(86_400)),
        );
        assert_eq!(m.pass().expect("pass").expired_partitions, 1);
        assert_eq!(count(dir.path()), 7);
        assert!(!dir.path().join("events/date=2020-01-01").exists());
    }

    #[test]
    fn instances_sharing_a_lake_compact_expire_and_recover_only_their_own_files() {
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
        // A file b is writing right now: a's recovery must not take it for a crash leftover.
        let writing = hour.join(format!("{}.parquet.tmp", b.new_file_stem("s1")));
        std::fs::write(&writing, b"in progress").expect("write");
        recover(dir.path(), &a).expect("recover");
        assert!(writing.exists(), "b's file in progress is left alone");

        let shared = Arc::new(SharedLake::default());
        let of_a = Maintenance::new(dir.path(), Arc::clone(&shared), None).with_instance(a.clone());
        assert_eq!(of_a.pass().expect("pass").compacted_files, 8);
        let owned = |i: &Instance| {
            parquet_files(&hour)
                .expect("files")
                .iter()
                .filter(|p| i.owns_path(p))
                .count()
        };
        assert_eq!((owned(&a), owned(&b)), (1, 8), "b's files are untouched");
        assert_eq!(count(dir.path()), 80);

        let retention = Some(Duration::from_secs(86_400));
        let expire_a =
            Maintenance::new(dir.path(), Arc::clone(&shared), retention).with_instance(a);
        expire_a.pass().expect("pass");
        assert_eq!(count(dir.path()), 40, "only a's rows expired");
        assert!(hour.exists(), "the partition stays while b has files in it");
        std::fs::remove_file(&writing).expect("remove");
        let expire_b = Maintenance::new(dir.path(), shared, retention).with_instance(b);
        expire_b.pass().expect("pass");
        assert!(!dir.path().join("events/date=2020-01-01").exists());
    }

    #[test]
    fn recovery_finishes_a_published_compaction_and_abandons_an_unpublished_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        for (flush, hour) in [(0, "10"), (1, "10"), (2, "11"), (3, "11")] {
            lake.append(&events(
                &format!("r{flush}"),
                3,
                &format!("2025-11-03T{hour}:00:00Z"),
            ))
            .expect("append");
            lake.flush().expect("flush");
        }
        let hour10 = dir.path().join("events/date=2025-11-03/hour=10");
        let hour11 = dir.path().join("events/date=2025-11-03/hour=11");
        // Hour 10: the merged file was published, the old files not yet deleted.
        let old10 = parquet_files(&hour10).expect("files");
        let schema = events_schema();
        // Named as compaction names them: the stem includes the schema tag.
        let merged = format!("part-merged.{}", schema_tag(&schema));
        merge(&old10, &hour10.join(format!("{merged}.parquet")), &schema).expect("merge");
        let names = |v: &[PathBuf]| -> String {
            v.iter()
                .map(|p| {
                    format!(
                        "{}\n",
                        p.file_name().and_then(|n| n.to_str()).expect("name")
                    )
                })
                .collect()
        };
        std::fs::write(
            hour10.join(format!("{merged}{INTENT_SUFFIX}")),
            names(&old10),
        )
        .expect("intent");
        // Hour 11: the crash came before the merged file was published.
        let old11 = parquet_files(&hour11).expect("files");
        merge(
            &old11,
            &hour11.join("part-unpublished.parquet.tmp"),
            &schema,
        )
        .expect("merge");
        std::fs::write(
            hour11.join(format!("part-unpublished{INTENT_SUFFIX}")),
            names(&old11),
        )
        .expect("intent");

        recover(dir.path(), &Instance::unnamed()).expect("recover");
        assert_eq!(count(dir.path()), 12);
        assert_eq!(parquet_files(&hour10).expect("files").len(), 1);
        assert_eq!(parquet_files(&hour11).expect("files").len(), 2);
        let leftovers: Vec<_> = std::fs::read_dir(&hour11)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e != "parquet"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
