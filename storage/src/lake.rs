//! The write side of the lake: `events` batches in, deduplicated, split by hour, sorted by time
//! and written as zstd Parquet files (as `.tmp` while open), which are put in the lake under their
//! final names when complete and become part of the table when a flush commits them to its log
//! (see [`crate::delta`]), so readers never see half a file or half a flush.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use arrow::datatypes::{Schema, SchemaRef};
use auditlake_schema::columns::{column, event};
use auditlake_schema::events_schema;
use auditlake_schema::time::now_micros;
use parquet::file::properties::WriterProperties;

use crate::dedup::{DedupIndex, KeySet, keys};
use crate::delta::{DataFile, TableLog};
use crate::encoding::{file_properties, writer_properties};
use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::live::LiveBuffer;
use crate::open_file::{OpenFile, remove_unfinished};
use crate::partition::{Hour, RecentPartitions};
use crate::store::Lake;

/// How stale the writer's view of other writers' commits may be.
const COMMITTED_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// Directory of the data directory where a remote lake's open files are written.
pub const SPOOL_DIR: &str = "spool";

/// Subdirectory of the data dir holding the `events` table.
pub const EVENTS_DIR: &str = "events";
/// Subdirectory of the data dir holding the `alerts` table.
pub const ALERTS_DIR: &str = "alerts";

/// Partitions written at once; more closes the least recently written (input is mostly in time
/// order, so this bounds memory without scattering small files).
const MAX_OPEN_WRITERS: usize = 4;

/// The tag a lake file's name carries of the Arrow schema it was written with:
/// `part-{uuid}.{tag}.parquet`. A query reads a file whose tag is its table's as having exactly the
/// table's schema, without decoding the schema embedded in the file's footer and converting it
/// again: over 240 hour files that made the investigator queries of `benches/compare.sh` 7-11%
/// faster. Files without a tag (written before tags were) or with another one (another version's
/// schema) are read as any Parquet file is, their columns matched to the table's by name.
///
/// The tag is a hash of the fields (names, types, nullability, nested fields); the lake's schemas
/// carry no metadata maps, whose order would vary.
pub fn schema_tag(schema: &Schema) -> String {
    let fields = format!("{:?}", schema.fields());
    format!("s{:016x}", xxhash_rust::xxh3::xxh3_64(fields.as_bytes()))
}

/// The schema tag in the name of the lake file at `path`, if it has one.
pub fn file_schema_tag(path: &Path) -> Option<&str> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let (_, tag) = stem.rsplit_once('.')?;
    Some(tag)
}

/// What an append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    /// New events written.
    pub stored: u64,
    /// Exact redeliveries of events already stored, skipped.
    pub duplicates: u64,
}

impl std::ops::AddAssign for AppendStats {
    fn add_assign(&mut self, rhs: Self) {
        self.stored += rhs.stored;
        self.duplicates += rhs.duplicates;
    }
}

/// Writes one table of the lake: splits batches by the hour of the time column, sorts each part
/// by time, and appends it to that hour's open file.
pub struct TableWriter {
    lake: Lake,
    /// The table's name in the lake (`events`, `alerts`).
    name: &'static str,
    /// Where open files are written: the table's directory of a local lake, a spool directory
    /// in the data directory for a remote one.
    table_dir: PathBuf,
    log: TableLog,
    /// Files complete and in the lake but not yet committed.
    pending: Vec<DataFile>,
    schema: SchemaRef,
    /// [`schema_tag`] of `schema`, in every file name.
    tag: String,
    time_column: &'static str,
    props: WriterProperties,
    open: RecentPartitions<OpenFile>,
    /// The newest hour written to.
    newest: Hour,
    /// Where rows of still-open files are shown to queries, when a query engine shares it.
    live: Option<Arc<LiveBuffer>>,
    /// Whose files these are.
    instance: Instance,
    /// Whether each open file is encoded on a thread of its own.
    background: bool,
}

impl TableWriter {
    /// Opens (creating if needed) the table `name` of the lake in `data_dir`.
    pub fn open(
        data_dir: &Path,
        name: &'static str,
        schema: SchemaRef,
        time_column: &'static str,
    ) -> Result<Self> {
        Self::open_in(&Lake::local(data_dir), data_dir, name, schema, time_column)
    }

    /// Opens (creating if needed) the table `name` of `lake`; a remote lake's open files are
    /// spooled under `data_dir`.
    pub fn open_in(
        lake: &Lake,
        data_dir: &Path,
        name: &'static str,
        schema: SchemaRef,
        time_column: &'static str,
    ) -> Result<Self> {
        let table_dir = match lake.local_dir() {
            Some(dir) => dir.join(name),
            None => data_dir.join(SPOOL_DIR).join(name),
        };
        std::fs::create_dir_all(&table_dir).map_err(Error::io(&table_dir))?;
        let log = TableLog::open_blocking(lake, name, &schema, time_column)?;
        let props = writer_properties();
        Ok(Self {
            lake: lake.clone(),
            name,
            table_dir,
            log,
            pending: Vec::new(),
            tag: schema_tag(&schema),
            schema,
            time_column,
            props,
            open: RecentPartitions::new(MAX_OPEN_WRITERS),
            newest: Hour(i64::MIN),
            live: None,
            instance: Instance::unnamed(),
            background: false,
        })
    }

    /// Encodes each open file on a thread of its own, the rows handed over in order, so that
    /// encoding overlaps with whatever the writer does next (a replay with cores to spare). A
    /// failed write may then be reported at the next write, or when the file is completed.
    pub fn with_background_encoding(mut self) -> Self {
        self.background = true;
        self
    }

    /// Shows every row written to a still-open file in `live` until its file is published.
    pub fn with_live(mut self, live: Arc<LiveBuffer>) -> Self {
        self.live = Some(live);
        self
    }

    /// Names new files after `instance` (a lake shared by several servers).
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.instance = instance;
        self
    }

    /// Rows of `batch` grouped by the hour they fall in.
    fn hours(&self, batch: &RecordBatch) -> BTreeMap<Hour, Vec<u32>> {
        let times = column(batch, self.time_column).as_primitive::<TimestampMicrosecondType>();
        let mut by_hour: BTreeMap<Hour, Vec<u32>> = BTreeMap::new();
        for (row, t) in times.values().iter().enumerate() {
            by_hour
                .entry(Hour::of_micros(*t))
                .or_default()
                .push(row as u32);
        }
        by_hour
    }

    /// Writes every row of `batch`.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        for (hour, rows) in self.hours(batch) {
            let part = self.rows_in_time_order(batch, rows)?;
            self.write_hour(hour, &part, batch)?;
        }
        Ok(())
    }

    /// `rows` of `batch` in time order (so row-group statistics on time are tight), copied in one
    /// step, or not copied at all when they already are a run of the batch in time order (a log
    /// file's lines usually are).
    fn rows_in_time_order(&self, batch: &RecordBatch, mut rows: Vec<u32>) -> Result<RecordBatch> {
        let times = column(batch, self.time_column).as_primitive::<TimestampMicrosecondType>();
        let times = times.values();
        rows.sort_by_key(|&r| times[r as usize]);
        let first = rows.first().copied().unwrap_or(0) as usize;
        let run = rows
            .iter()
            .enumerate()
            .all(|(i, &r)| r as usize == first + i);
        if run {
            return Ok(batch.slice(first, rows.len()));
        }
        Ok(take_record_batch(batch, &UInt32Array::from(rows))?)
    }

    /// Writes rows that all fall in `hour`, in time order; `batch` is what they came in, from
    /// which a new file's encodings are chosen ([`file_properties`]: an hour's first rows can
    /// be a handful at the end of a batch).
    fn write_hour(&mut self, hour: Hour, part: &RecordBatch, batch: &RecordBatch) -> Result<()> {
        let props = &self.props;
        let schema = &self.schema;
        let (lake, name, table_dir) = (&self.lake, self.name, &self.table_dir);
        let pending = &mut self.pending;
        let stem = || self.instance.new_file_stem(&self.tag);
        let background = self.background;
        let file = self.open.get_or_insert_with(
            hour,
            || {
                let (schema, props) = (Arc::clone(schema), file_properties(props, batch));
                OpenFile::create(hour, table_dir, &stem(), schema, props, background)
            },
            |_, evicted| {
                pending.push(evicted.close(lake, name)?);
                Ok(())
            },
        )?;
        file.write(part, self.time_column)?;
        if let Some(live) = &self.live {
            live.push(hour, &file.relative, part.clone());
        }
        self.bound_open_memory(hour)
    }

    /// Ends the row groups of the files other than `hour`'s that are two or more hours behind
    /// the newest hour written, and of all of them once all open files together buffer more
    /// than [`OPEN_FILES_MEMORY`]. An hour left behind stays open because a late event may still
    /// come (it then starts a small row group), but an unfinished row group holds codec and
    /// encoder state for every column, about 10 MiB for `events` whatever its row count.
    fn bound_open_memory(&mut self, hour: Hour) -> Result<()> {
        self.newest = self.newest.max(hour);
        let behind = Hour(self.newest.0.saturating_sub(1));
        let buffered: usize = self
            .open
            .iter_mut()
            .map(|(_, f)| f.writer.memory_size())
            .sum();
        let over = buffered > OPEN_FILES_MEMORY;
        for (h, file) in self.open.iter_mut() {
            if h != hour && (over || h < behind) && file.writer.in_progress_rows() > 0 {
                file.writer
                    .end_row_group()
                    .map_err(Error::parquet(&file.tmp))?;
            }
        }
        Ok(())
    }

    /// Completes the open file of `hour`, if any (committed at the next flush).
    fn close_hour(&mut self, hour: Hour) -> Result<()> {
        if let Some(file) = self.open.remove(hour) {
            self.pending.push(file.close(&self.lake, self.name)?);
        }
        Ok(())
    }

    /// Completes every open file and commits every completed file to the table in one commit,
    /// making everything written visible to every reader. Returns how many files were committed.
    ///
    /// A file that could not be completed, or a commit that failed, is an error; the files
    /// completed are committed at the next flush.
    pub fn flush(&mut self) -> Result<usize> {
        let mut first_error = None;
        for file in self.open.drain() {
            match file.close(&self.lake, self.name) {
                Ok(done) => self.pending.push(done),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !self.pending.is_empty() {
            let log = self.log.clone();
            let files = self.pending.clone();
            crate::delta::block_on(async move { log.append(&files).await })?;
            if let Some(live) = &self.live {
                live.committed(self.pending.iter().map(|f| f.path.as_str()));
            }
        }
        let committed = std::mem::take(&mut self.pending).len();
        first_error.map_or(Ok(committed), Err)
    }

    /// Starts over from what the table's log holds, as a restart would, after a failed write
    /// (a full disk, an I/O error) left it unsure which rows are in a committed file: gives up
    /// the open files and the completed ones not committed (their rows are still in the
    /// write-ahead log, to be written again), and drops the live buffer's rows. The log is read
    /// afresh first, so a file whose commit did go through though it was reported failed is
    /// kept; if that read fails, nothing is given up (call it again).
    pub fn reopen(&mut self) -> Result<()> {
        let log = TableLog::open_blocking(&self.lake, self.name, &self.schema, self.time_column)?;
        let committed = {
            let log = log.clone();
            crate::delta::block_on(async move { log.files().await })?
        };
        for file in self.open.drain() {
            drop(file.writer);
            remove_unfinished(&file.tmp);
        }
        for file in std::mem::take(&mut self.pending) {
            if committed.iter().any(|c| c.path == file.path) {
                continue;
            }
            if let Err(e) = self.lake.delete_file(self.name, &file.path) {
                tracing::warn!(error = %e, file = %file.path, "could not remove a file never committed; a restart removes it");
            }
        }
        if let Some(live) = &self.live {
            live.clear();
        }
        self.log = log;
        self.newest = Hour(i64::MIN);
        Ok(())
    }

    /// Whether rows were written that are not yet in a committed file.
    pub fn has_open_files(&self) -> bool {
        !self.open.is_empty() || !self.pending.is_empty()
    }

    /// The dedup keys of the events stored in `hour`, committed or not.
    fn stored_keys(&self, hour: Hour) -> Result<KeySet> {
        let mut keys = KeySet::default();
        for file in self.files_of(hour)? {
            let data = self.lake.read_file(self.name, &file.path)?;
            crate::dedup::load(&mut keys, data, &file.path)?;
        }
        Ok(keys)
    }

    /// The table's committed files, other writers' commits of the last few seconds perhaps not
    /// among them (their events are another instance's to deduplicate).
    fn committed(&self) -> Result<Arc<Vec<DataFile>>> {
        let log = self.log.clone();
        crate::delta::block_on(async move { log.files_within(COMMITTED_MAX_AGE).await })
    }

    /// The stored files (committed, or complete and committed at the next flush) of the hours
    /// `first..=last`, in time order of their hours.
    pub fn stored_files(&self, first: Hour, last: Hour) -> Result<Vec<DataFile>> {
        let committed = self.committed()?;
        let mut files: Vec<DataFile> = committed
            .iter()
            .chain(&self.pending)
            .filter(|f| (first..=last).contains(&f.hour))
            .cloned()
            .collect();
        files.sort_by(|a, b| (a.hour, &a.path).cmp(&(b.hour, &b.path)));
        Ok(files)
    }

    /// Opens a stored file of this table for reading.
    pub fn read_file(&self, file: &DataFile) -> Result<crate::store::FileData> {
        self.lake.read_file(self.name, &file.path)
    }

    /// The committed files of `hour` and the completed ones not yet committed.
    fn files_of(&self, hour: Hour) -> Result<Vec<DataFile>> {
        let committed = self.committed()?;
        Ok(committed
            .iter()
            .chain(&self.pending)
            .filter(|f| f.hour == hour)
            .cloned()
            .collect())
    }
}

/// What an append stored.
#[derive(Debug)]
pub struct Appended {
    /// Counts.
    pub stats: AppendStats,
    /// The rows that were new (with `ingested_at` set), for the rules to see: one batch per hour
    /// they fall in, each in time order.
    pub fresh: Vec<RecordBatch>,
}

/// Writes `events` into the lake under a data directory, each exact redelivery once.
pub struct LakeWriter {
    events: TableWriter,
    dedup: DedupIndex,
    /// Totals since this writer was opened.
    totals: AppendStats,
}

impl LakeWriter {
    /// Opens (creating if needed) the lake in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_in(&Lake::local(data_dir), data_dir)
    }

    /// Opens (creating if needed) the `events` table of `lake`, spooling under `data_dir`.
    pub fn open_in(lake: &Lake, data_dir: &Path) -> Result<Self> {
        Ok(Self {
            events: TableWriter::open_in(
                lake,
                data_dir,
                EVENTS_DIR,
                events_schema(),
                event::EVENT_TIME,
            )?,
            dedup: DedupIndex::default(),
            totals: AppendStats::default(),
        })
    }

    /// The `events` table's writer.
    pub fn events(&self) -> &TableWriter {
        &self.events
    }

    /// Totals since this writer was opened.
    pub fn totals(&self) -> AppendStats {
        self.totals
    }

    /// Stores the events of `batch` that are not already stored.
    pub fn append(&mut self, batch: &RecordBatch) -> Result<Appended> {
        let mut stats = AppendStats::default();
        let mut fresh_parts = Vec::new();
        if batch.num_rows() > 0 {
            let keys = keys(batch);
            let now = now_micros();
            for (hour, rows) in self.events.hours(batch) {
                let seen = self.dedup.partition(
                    hour,
                    &mut self.events,
                    |events| events.stored_keys(hour),
                    |events, old| events.close_hour(old),
                )?;
                let fresh: Vec<u32> = rows
                    .into_iter()
                    .filter(|&r| seen.insert(keys[r as usize]))
                    .collect();
                stats.stored += fresh.len() as u64;
                if fresh.is_empty() {
                    continue;
                }
                let part = self.events.rows_in_time_order(batch, fresh)?;
                let part = stamp_ingested_at(&part, now)?;
                self.events.write_hour(hour, &part, batch)?;
                fresh_parts.push(part);
            }
            stats.duplicates = batch.num_rows() as u64 - stats.stored;
        }
        self.totals += stats;
        Ok(Appended {
            stats,
            fresh: fresh_parts,
        })
    }

    /// Shows appended rows to queries sharing `live` before their files are complete.
    pub fn with_live(mut self, live: Arc<LiveBuffer>) -> Self {
        self.events = self.events.with_live(live);
        self
    }

    /// See [`TableWriter::with_background_encoding`].
    pub fn with_background_encoding(mut self) -> Self {
        self.events = self.events.with_background_encoding();
        self
    }

    /// Names new files after `instance`.
    pub fn with_instance(mut self, instance: Instance) -> Self {
        self.events = self.events.with_instance(instance);
        self
    }

    /// Completes every open file, making all appended events visible to queries. Returns how
    /// many files were completed.
    pub fn flush(&mut self) -> Result<usize> {
        self.events.flush()
    }

    /// [`TableWriter::reopen`], and forgets which events it stored: those whose files were given
    /// up are new again.
    pub fn reopen(&mut self) -> Result<()> {
        self.events.reopen()?;
        self.dedup = DedupIndex::default();
        Ok(())
    }
}

/// Memory all open files of a table may buffer together before the idle ones end their row groups.
const OPEN_FILES_MEMORY: usize = 48 << 20;

/// The `events` string columns with few distinct values in an hour and a value in nearly every
/// row, dictionary-encoded in every file as all string columns not excluded in
/// [`writer_properties`] are: a query filtering on one reads it as a dictionary and evaluates the
/// filter once per distinct value (`LakeTable::with_dictionary_reads` in `auditlake-engine`). Columns
/// null in most rows (subresource, impersonated user, response status, pod fields, role refs)
/// are not among them: read as a dictionary, such a column carries a key for every row where a
/// string read carries only its few values, and a filter on `subresource` alone took 9% more CPU.
pub const FEW_VALUED_EVENT_COLUMNS: &[&str] = &[
    event::CLUSTER,
    event::STAGE,
    event::LEVEL,
    event::VERB,
    event::USER_NAME,
    event::USER_AGENT,
    event::RESOURCE,
    event::NAMESPACE,
    event::API_GROUP,
    event::API_VERSION,
    event::DECISION,
];

/// Sets `ingested_at` to the time of storing.
fn stamp_ingested_at(batch: &RecordBatch, now: i64) -> Result<RecordBatch> {
    let schema = batch.schema();
    let index = schema
        .index_of(event::INGESTED_AT)
        .expect("events batches carry ingested_at");
    let mut columns = batch.columns().to_vec();
    columns[index] =
        Arc::new(TimestampMicrosecondArray::from(vec![now; batch.num_rows()]).with_timezone("UTC"));
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::parquet_files;
    use crate::test_support::events;

    fn hour(h: u32) -> String {
        format!("2025-11-03T{h:02}:15:00Z")
    }

    #[test]
    fn an_hour_whose_keys_are_dropped_has_its_open_file_completed_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        let stored = |lake: &mut LakeWriter, h: u32| {
            lake.append(&events(&format!("h{h}"), 5, &hour(h)))
                .expect("append")
                .stats
        };
        for h in [2, 3, 4, 1] {
            assert_eq!(stored(&mut lake, h).stored, 5);
        }
        // Redeliveries of hours 2..4 make hour 1 the least recently used key set, while its
        // file, the most recently written, stays open.
        for h in [2, 3, 4] {
            assert_eq!(stored(&mut lake, h).duplicates, 5);
        }
        assert_eq!(stored(&mut lake, 5).stored, 5, "hour 1's keys make room");
        // Hour 1's keys come back from its files, which must hold the rows written so far.
        assert_eq!(stored(&mut lake, 1).duplicates, 5);
        assert_eq!(lake.totals().stored, 25);
    }

    #[test]
    fn hours_left_behind_end_their_row_groups_and_late_rows_still_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        lake.append(&events("a", 5, &hour(1))).expect("append");
        lake.append(&events("b", 5, &hour(2))).expect("append");
        let in_progress = |lake: &mut LakeWriter| -> Vec<(i64, usize)> {
            let mut open: Vec<_> = lake
                .events
                .open
                .iter_mut()
                .map(|(h, f)| (h.0 % 24, f.writer.in_progress_rows()))
                .collect();
            open.sort_unstable();
            open
        };
        assert_eq!(in_progress(&mut lake), [(1, 5), (2, 5)], "one hour behind");
        lake.append(&events("c", 5, &hour(3))).expect("append");
        assert_eq!(in_progress(&mut lake), [(1, 0), (2, 5), (3, 5)]);
        lake.append(&events("late", 2, &hour(1))).expect("append");
        lake.flush().expect("flush");
        let file =
            parquet_files(&Hour::of_micros(micros(&hour(1))).dir(&dir.path().join(EVENTS_DIR)))
                .expect("files")
                .remove(0);
        let reader = parquet::file::reader::SerializedFileReader::new(
            std::fs::File::open(file).expect("open"),
        )
        .expect("reader");
        use parquet::file::reader::FileReader;
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(
            groups,
            [5, 2],
            "one file, the late rows in a row group of their own"
        );
    }

    fn micros(time: &str) -> i64 {
        auditlake_schema::time::parse_rfc3339_micros(time).expect("time")
    }
}
