//! The lake's tables as Delta Lake tables: each table (`events`, `alerts`) has a transaction log
//! (`_delta_log/`) next to its `date=/hour=` partitions, written and read through delta-rs, so
//! that every other engine that reads Delta (Spark, Trino, Athena, Databricks, DuckDB, Python's
//! `deltalake` and `polars`) reads the same table, and so that several servers can write to it at
//! once on object storage, where there is no rename or lock to rely on.
//!
//! The log, not a directory listing, says which files make up a table: a file is written whole
//! under its final name first and only becomes part of the table when a commit adds it. Each flush
//! is one commit adding the files it completed; each compaction one commit removing the merged
//! files and adding their replacement; each retention pass one commit removing expired files,
//! whose bytes are deleted by a later vacuum once [`VACUUM_GRACE`] has passed (no query runs that
//! long). A reader therefore sees a flush, a compaction or an expiry whole or not at all.
//!
//! Commits are conditional writes of the next version's log entry (put-if-absent, which S3, GCS,
//! Azure and the local file system all provide); a writer that loses the race checks the winner's
//! commit for a conflict and retries on the next version. Appends never conflict with each other;
//! a compaction or an expiry that removes a file another commit removed first is abandoned.
//!
//! Partition columns are `date` (a date) and `hour` (an integer, 0 to 23). They are not stored in
//! the data files (as Delta requires), only in the log and in the files' directories.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::datatypes::Schema;
use chrono::{DateTime, SecondsFormat, Timelike};
use deltalake_core::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{
    Action, Add, DataType, LogicalFileView, PrimitiveType, Remove, StructField, StructType,
};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::operations::vacuum::VacuumMode;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableBuilder, DeltaTableError, TableProperty};
use object_store::ObjectStore;
use url::Url;

use crate::error::{Error, Result};
use crate::partition::{HOUR_MICROS, Hour};
use crate::store::Lake;

/// The partition column holding an event's date (UTC).
pub const DATE_COLUMN: &str = "date";
/// The partition column holding an event's hour of the day (UTC), 0 to 23.
pub const HOUR_COLUMN: &str = "hour";
/// How long files removed from a table (compacted or expired) stay readable before a vacuum
/// deletes them: longer than any query runs, so none loses a file it planned to read.
pub const VACUUM_GRACE: Duration = Duration::from_secs(3600);
/// A checkpoint (the whole file list in one Parquet file) every this many commits, so a reader
/// opening the table reads one checkpoint and fewer than this many commits.
const CHECKPOINT_INTERVAL: u32 = 100;
/// Log entries older than this are deleted after a checkpoint: the table's history is not a
/// product feature, and a short log keeps opening the table (and listing its log) cheap.
const LOG_RETENTION: &str = "interval 1 days";
/// A table's transaction log directory.
pub const LOG_DIR: &str = "_delta_log";
/// Retries of a commit that lost the race for its version to other writers.
const COMMIT_RETRIES: usize = 50;

/// A data file of a table, as its log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Path relative to the table's root: `date=YYYY-MM-DD/hour=HH/part-....parquet`.
    pub path: String,
    /// The partition.
    pub hour: Hour,
    /// Size in bytes.
    pub size: u64,
    /// Rows, when known (the log's statistics).
    pub rows: Option<u64>,
    /// Earliest and latest value of the table's time column, µs, when known.
    pub times: Option<(i64, i64)>,
}

impl DataFile {
    /// The file's name, without its directories.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// A table's transaction log, opened (and created if it is not there) at `LAKE/NAME`.
///
/// Cheap to clone: clones share one loaded state, updated with the commits made since it was
/// last read.
#[derive(Clone)]
pub struct TableLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableLog")
            .field("url", &self.inner.url.as_str())
            .finish()
    }
}

struct Inner {
    url: Url,
    time_column: &'static str,
    state: tokio::sync::Mutex<State>,
}

struct State {
    table: DeltaTable,
    /// The file list of the version last listed.
    files: Option<(u64, Arc<Vec<DataFile>>)>,
    /// When the log was last read.
    updated: Option<std::time::Instant>,
}

impl TableLog {
    /// Opens the table `name` of `lake` whose rows have `schema` (partition columns excluded),
    /// creating it if there is none. Two servers creating the same table at once are fine: one
    /// creates it, the other opens it.
    pub async fn open(
        lake: &Lake,
        name: &str,
        schema: &Schema,
        time_column: &'static str,
    ) -> Result<Self> {
        Self::open_or_create(lake, name, Some(schema), time_column)
            .await
            .map(|log| log.expect("created when missing"))
    }

    /// Opens the table `name` of `lake` if there is one (readers, which create nothing).
    pub async fn open_existing(
        lake: &Lake,
        name: &str,
        time_column: &'static str,
    ) -> Result<Option<Self>> {
        Self::open_or_create(lake, name, None, time_column).await
    }

    async fn open_or_create(
        lake: &Lake,
        name: &str,
        create_with: Option<&Schema>,
        time_column: &'static str,
    ) -> Result<Option<Self>> {
        let url = lake.table_url(name)?;
        if let Some(dir) = lake.local_dir() {
            let dir = dir.join(name);
            if create_with.is_none() && !dir.exists() {
                return Ok(None);
            }
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            let unconverted = !dir.join(LOG_DIR).exists()
                && !crate::partition::list(&dir)
                    .map_err(Error::io(&dir))?
                    .is_empty();
            if unconverted {
                return Err(Error::Unconverted {
                    dir: dir.display().to_string(),
                });
            }
        }
        let mut table = builder(lake, &url)?.build().map_err(delta(&url))?;
        // Loading a table that is not there logs an error from the kernel: ask first.
        let exists = table
            .verify_deltatable_existence()
            .await
            .map_err(delta(&url))?;
        let loaded = match exists {
            true => table.load().await,
            false => Err(DeltaTableError::NotATable(url.to_string())),
        };
        match (loaded, create_with) {
            (Ok(()), _) => {}
            (Err(DeltaTableError::NotATable(_)), Some(schema)) => {
                table = create(lake, &url, name, schema).await?;
            }
            (Err(DeltaTableError::NotATable(_)), None) => return Ok(None),
            (Err(e), _) => return Err(delta(&url)(e)),
        }
        Ok(Some(Self {
            inner: Arc::new(Inner {
                url,
                time_column,
                state: tokio::sync::Mutex::new(State {
                    table,
                    files: None,
                    updated: None,
                }),
            }),
        }))
    }

    /// [`TableLog::open`] from synchronous code.
    pub fn open_blocking(
        lake: &Lake,
        name: &str,
        schema: &Schema,
        time_column: &'static str,
    ) -> Result<Self> {
        let (lake, name, schema) = (lake.clone(), name.to_string(), schema.clone());
        block_on(async move { Self::open(&lake, &name, &schema, time_column).await })
    }

    /// The table's location.
    pub fn url(&self) -> &Url {
        &self.inner.url
    }

    /// The table's current data files (reading any commits made since the last call).
    pub async fn files(&self) -> Result<Arc<Vec<DataFile>>> {
        self.files_within(Duration::ZERO).await
    }

    /// The table's data files as of at most `max_age` ago, with this log's own commits: the
    /// writer's dedup asks for an hour's files whenever it reloads that hour's keys, which input
    /// out of time order makes it do for nearly every batch, and reading the log each time cost
    /// an object store listing and a read per reload.
    pub async fn files_within(&self, max_age: Duration) -> Result<Arc<Vec<DataFile>>> {
        let url = &self.inner.url;
        let mut state = self.inner.state.lock().await;
        let fresh = state.updated.is_some_and(|at| at.elapsed() < max_age);
        if !fresh {
            state
                .table
                .update_incremental(None)
                .await
                .map_err(delta(url))?;
            state.updated = Some(std::time::Instant::now());
        }
        let version = state.table.version().unwrap_or(0);
        if let Some((listed, files)) = &state.files
            && *listed == version
        {
            return Ok(Arc::clone(files));
        }
        let snapshot = state.table.snapshot().map_err(delta(url))?;
        let files: Vec<DataFile> = snapshot
            .log_data()
            .iter()
            .map(|f| self.data_file(&f))
            .collect::<Result<_>>()?;
        let files = Arc::new(files);
        state.files = Some((version, Arc::clone(&files)));
        Ok(files)
    }

    fn data_file(&self, view: &LogicalFileView) -> Result<DataFile> {
        let path = view.path().into_owned();
        let hour = partition_hour(view)
            .or_else(|| hour_of_path(&path))
            .ok_or_else(|| Error::Table {
                table: self.inner.url.to_string(),
                message: format!("file {path} has no date and hour partition"),
            })?;
        let stats = view
            .stats()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
        let rows = stats.as_ref().and_then(|s| s.get("numRecords")?.as_u64());
        let time = |key: &str| {
            let value = stats.as_ref()?.get(key)?.get(self.inner.time_column)?;
            auditlake_schema::time::parse_rfc3339_micros(value.as_str()?)
        };
        Ok(DataFile {
            path,
            hour,
            size: u64::try_from(view.size()).unwrap_or(0),
            rows,
            times: time("minValues").zip(time("maxValues")),
        })
    }

    /// Adds `files` to the table in one commit; returns its version.
    pub async fn append(&self, files: &[DataFile]) -> Result<u64> {
        let actions = files
            .iter()
            .map(|f| Action::Add(self.add(f, true)))
            .collect();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: Some(vec![DATE_COLUMN.into(), HOUR_COLUMN.into()]),
            predicate: None,
        };
        self.commit(actions, operation).await
    }

    /// Replaces `old` by `new`, holding the same rows, in one commit. Fails with
    /// [`Error::Conflict`] when another commit removed one of `old` first.
    pub async fn replace(&self, old: &[DataFile], new: &[DataFile]) -> Result<u64> {
        let mut actions: Vec<Action> = old
            .iter()
            .map(|f| Action::Remove(remove(f, false)))
            .collect();
        actions.extend(new.iter().map(|f| Action::Add(self.add(f, false))));
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: new.iter().map(|f| f.size as i64).max().unwrap_or(0),
        };
        self.commit(actions, operation).await
    }

    /// Removes `files` (whose rows expired) in one commit. Fails with [`Error::Conflict`] when
    /// another commit removed one of them first.
    pub async fn remove(&self, files: &[DataFile], predicate: String) -> Result<u64> {
        let actions = files
            .iter()
            .map(|f| Action::Remove(remove(f, true)))
            .collect();
        let operation = DeltaOperation::Delete {
            predicate: Some(predicate),
        };
        self.commit(actions, operation).await
    }

    /// Deletes the bytes of files removed from the table more than `grace` ago; returns how many.
    pub async fn vacuum(&self, grace: Duration) -> Result<usize> {
        let url = &self.inner.url;
        let mut state = self.inner.state.lock().await;
        state
            .table
            .update_incremental(None)
            .await
            .map_err(delta(url))?;
        let (table, metrics) = state
            .table
            .clone()
            .vacuum()
            .with_mode(VacuumMode::Lite)
            .with_retention_period(chrono::Duration::from_std(grace).unwrap_or_default())
            .with_enforce_retention_duration(false)
            .await
            .map_err(delta(url))?;
        state.table = table;
        Ok(metrics.files_deleted.len())
    }

    async fn commit(&self, actions: Vec<Action>, operation: DeltaOperation) -> Result<u64> {
        let url = &self.inner.url;
        let mut state = self.inner.state.lock().await;
        let commit = CommitBuilder::from(
            CommitProperties::default()
                .with_max_retries(COMMIT_RETRIES)
                .with_create_checkpoint(true),
        )
        .with_actions(actions)
        .build(
            Some(state.table.snapshot().map_err(delta(url))?),
            state.table.log_store(),
            operation,
        )
        .await;
        let version = match commit {
            Ok(done) => done.version(),
            Err(DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(conflict),
            }) => {
                return Err(Error::Conflict {
                    table: url.to_string(),
                    message: conflict.to_string(),
                });
            }
            Err(e) => return Err(delta(url)(e)),
        };
        state
            .table
            .update_incremental(None)
            .await
            .map_err(delta(url))?;
        metrics::counter!("auditlake_lake_commits_total").increment(1);
        Ok(version)
    }

    fn add(&self, file: &DataFile, data_change: bool) -> Add {
        Add {
            path: file.path.clone(),
            partition_values: partition_values(file.hour),
            size: file.size as i64,
            modification_time: auditlake_schema::time::now_micros() / 1000,
            data_change,
            stats: Some(self.stats(file)),
            ..Default::default()
        }
    }

    /// The file's statistics as Delta keeps them, so that other engines skip files by time too.
    /// Timestamps there have millisecond precision: the minimum is rounded down and the maximum
    /// up, so no reader skips a file holding a row in range.
    fn stats(&self, file: &DataFile) -> String {
        let mut stats = serde_json::Map::new();
        if let Some(rows) = file.rows {
            stats.insert("numRecords".into(), rows.into());
        }
        if let Some((min, max)) = file.times {
            let column = self.inner.time_column;
            let ms = |micros: i64| {
                DateTime::from_timestamp_millis(micros)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_default()
            };
            let min = ms(min.div_euclid(1000));
            let max = ms(max.div_euclid(1000) + i64::from(max.rem_euclid(1000) != 0));
            stats.insert("minValues".into(), serde_json::json!({ column: min }));
            stats.insert("maxValues".into(), serde_json::json!({ column: max }));
            stats.insert("nullCount".into(), serde_json::json!({ column: 0 }));
        }
        serde_json::Value::Object(stats).to_string()
    }
}

fn remove(file: &DataFile, data_change: bool) -> Remove {
    Remove {
        path: file.path.clone(),
        data_change,
        deletion_timestamp: Some(auditlake_schema::time::now_micros() / 1000),
        extended_file_metadata: Some(true),
        partition_values: Some(partition_values(file.hour)),
        size: Some(file.size as i64),
        ..Default::default()
    }
}

/// `{"date": "YYYY-MM-DD", "hour": "H"}`.
fn partition_values(hour: Hour) -> HashMap<String, Option<String>> {
    let t = DateTime::from_timestamp_micros(hour.start_micros()).unwrap_or_default();
    HashMap::from([
        (DATE_COLUMN.into(), Some(t.date_naive().to_string())),
        (HOUR_COLUMN.into(), Some(t.hour().to_string())),
    ])
}

/// The hour a file's partition values name.
fn partition_hour(view: &LogicalFileView) -> Option<Hour> {
    let values = view.partition_values()?;
    let mut date = None;
    let mut hour = None;
    // Both print as integers: days since the epoch, the hour.
    for (field, value) in values.fields().iter().zip(values.values()) {
        let number = value.to_string().parse::<i64>().ok();
        match field.name().as_str() {
            DATE_COLUMN => date = number,
            HOUR_COLUMN => hour = number,
            _ => {}
        }
    }
    let (date, hour) = (date?, hour?);
    (0..24).contains(&hour).then(|| Hour(date * 24 + hour))
}

/// The hour of a path `.../date=YYYY-MM-DD/hour=HH/file`.
pub(crate) fn hour_of_path(path: &str) -> Option<Hour> {
    let mut parts = path.rsplit('/').skip(1);
    let hour = parts.next()?;
    let date = parts.next()?;
    Hour::parse(date, hour)
}

/// The Delta schema of a table whose rows have `schema`: its columns, then `date` and `hour`.
///
/// Unsigned columns (`event_hash`, the dedup hash) are left out: Delta has no unsigned types,
/// and a reader told the column is a `long` refuses the half of the hashes above `i64::MAX`
/// (polars does). Delta readers read only the columns of the table's schema, so they never see
/// it; auditlake reads the files' own columns and still does.
fn table_schema(schema: &Schema) -> Result<Vec<StructField>> {
    let signed: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| !f.data_type().is_unsigned_integer())
        .cloned()
        .collect();
    let schema = Schema::new(signed);
    let columns = StructType::try_from_arrow(&schema).map_err(|e| Error::Table {
        table: String::new(),
        message: format!("schema has no Delta equivalent: {e}"),
    })?;
    let mut fields: Vec<StructField> = columns.fields().cloned().collect();
    fields.push(StructField::new(
        DATE_COLUMN,
        DataType::Primitive(PrimitiveType::Date),
        false,
    ));
    fields.push(StructField::new(
        HOUR_COLUMN,
        DataType::Primitive(PrimitiveType::Integer),
        false,
    ));
    Ok(fields)
}

async fn create(lake: &Lake, url: &Url, name: &str, schema: &Schema) -> Result<DeltaTable> {
    let table = builder(lake, url)?.build().map_err(delta(url))?;
    let created = CreateBuilder::new()
        .with_log_store(table.log_store())
        .with_table_name(name)
        .with_columns(table_schema(schema)?)
        .with_partition_columns([DATE_COLUMN, HOUR_COLUMN])
        .with_save_mode(SaveMode::Ignore)
        .with_configuration_property(
            TableProperty::CheckpointInterval,
            Some(CHECKPOINT_INTERVAL.to_string()),
        )
        .with_configuration_property(TableProperty::LogRetentionDuration, Some(LOG_RETENTION))
        .with_configuration_property(
            TableProperty::DeletedFileRetentionDuration,
            Some(format!("interval {} seconds", VACUUM_GRACE.as_secs())),
        )
        .await;
    match created {
        Ok(table) => Ok(table),
        // Another server created it first.
        Err(DeltaTableError::VersionAlreadyExists(_))
        | Err(DeltaTableError::Transaction {
            source: TransactionError::VersionAlreadyExists(_),
        }) => {
            let mut table = builder(lake, url)?.build().map_err(delta(url))?;
            table.load().await.map_err(delta(url))?;
            Ok(table)
        }
        Err(e) => Err(delta(url)(e)),
    }
}

/// delta-rs finds a table's log store by its URL's scheme, and knows only local ones unless its
/// cloud crates register theirs; auditlake hands it the object store itself, so every cloud
/// scheme gets the default log store (commits by put-if-absent, which S3, GCS and Azure have).
struct ConditionalPutLogStore;

impl deltalake_core::logstore::LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: deltalake_core::logstore::ObjectStoreRef,
        root_store: deltalake_core::logstore::ObjectStoreRef,
        location: &Url,
        options: &deltalake_core::logstore::StorageConfig,
    ) -> deltalake_core::DeltaResult<Arc<dyn deltalake_core::logstore::LogStore>> {
        Ok(deltalake_core::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_cloud_log_stores() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let registry = deltalake_core::logstore::logstore_factories();
        for scheme in ["s3", "s3a", "gs", "az", "abfs", "abfss", "azure"] {
            if let Ok(url) = Url::parse(&format!("{scheme}://")) {
                registry.insert(url, Arc::new(ConditionalPutLogStore));
            }
        }
    });
}

fn builder(lake: &Lake, url: &Url) -> Result<DeltaTableBuilder> {
    register_cloud_log_stores();
    let builder = DeltaTableBuilder::from_url(url.clone()).map_err(delta(url))?;
    Ok(match lake.store() {
        Some(store) => builder.with_storage_backend(store as Arc<dyn ObjectStore>, url.clone()),
        None => builder,
    })
}

fn delta(url: &Url) -> impl FnOnce(DeltaTableError) -> Error + '_ {
    move |source| Error::Delta {
        table: url.to_string(),
        source: Box::new(source),
    }
}

/// The hours `[start, end)` as the SQL predicate a retention commit records.
pub fn expiry_predicate(time_column: &str, cutoff_micros: i64) -> String {
    let cutoff =
        DateTime::from_timestamp_micros(cutoff_micros.div_euclid(HOUR_MICROS) * HOUR_MICROS)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true);
    format!("{time_column} < '{cutoff}'")
}

/// Runs `future` to completion from synchronous code (the writer's and maintenance's threads),
/// on a runtime of the lake's own that stays up for the process: connections an object store
/// opens there keep working between calls. Safe to call from inside another runtime's task too.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("auditlake-lake-io")
            .enable_all()
            .build()
            .expect("the lake's I/O runtime starts")
    });
    let task = runtime.spawn(future);
    match futures::executor::block_on(task) {
        Ok(output) => output,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// What converting a table of an earlier version's lake found (and, unless a dry run, did).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Parquet files found in the table's partitions, and added to its new log.
    pub files: usize,
    /// Their rows, from their footers.
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Unfinished files (`.tmp`) left out: a crash's leftovers, whose rows are in the
    /// write-ahead log.
    pub skipped: usize,
}

/// Makes the table `name` of the local lake in `dir`, written as hive-partitioned Parquet by an
/// earlier version, a Delta table in place: its files stay where they are and one commit adds
/// them all. With `dry_run`, only says what it would add. A table that already has a log is
/// left alone (`Ok(None)`), and so is one with no files.
pub fn convert(
    dir: &std::path::Path,
    name: &str,
    schema: &Schema,
    time_column: &'static str,
    dry_run: bool,
) -> Result<Option<Converted>> {
    let table = dir.join(name);
    if table.join(LOG_DIR).exists() {
        return Ok(None);
    }
    let mut found = Converted::default();
    let mut files = Vec::new();
    for path in crate::partition::files_under(&table).map_err(Error::io(&table))? {
        let Some(relative) = path
            .strip_prefix(&table)
            .ok()
            .and_then(|p| p.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !relative.ends_with(".parquet") {
            found.skipped += usize::from(relative.ends_with(".tmp"));
            continue;
        }
        let Some(hour) = hour_of_path(&relative) else {
            continue;
        };
        let file = std::fs::File::open(&path).map_err(Error::io(&path))?;
        let size = file.metadata().map_err(Error::io(&path))?.len();
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
            .map_err(Error::parquet(&path))?;
        let rows = parquet::file::reader::FileReader::metadata(&reader)
            .file_metadata()
            .num_rows();
        found.files += 1;
        found.rows += rows as u64;
        found.bytes += size;
        files.push(DataFile {
            path: relative,
            hour,
            size,
            rows: Some(rows as u64),
            // Row-group statistics would give them; other engines then just read every file of
            // an hour they select.
            times: None,
        });
    }
    if dry_run || files.is_empty() {
        return Ok(Some(found));
    }
    let lake = Lake::local(dir);
    let (name, schema) = (name.to_string(), schema.clone());
    block_on(async move {
        // `open` refuses a table with files and no log: create the log on an empty view of it.
        let url = lake.table_url(&name)?;
        let table = create(&lake, &url, &name, &schema).await?;
        let log = TableLog {
            inner: Arc::new(Inner {
                url,
                time_column,
                state: tokio::sync::Mutex::new(State {
                    table,
                    files: None,
                    updated: None,
                }),
            }),
        };
        for chunk in files.chunks(10_000) {
            log.append(chunk).await?;
        }
        Ok::<_, Error>(())
    })?;
    Ok(Some(found))
}
