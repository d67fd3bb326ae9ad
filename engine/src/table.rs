//! [`LakeTable`]: a lake table (`events`, `alerts`) as a DataFusion table whose scans read only the
//! hour partitions a query's time filters can match.
//!
//! The files come from the table's Delta log (its current version, read incrementally), not from
//! listing directories. DataFusion prunes partitions only on partition columns; investigators
//! filter on `event_time`. So each scan turns the time bounds of its filters into a set of hours
//! and hands the files of just those to a Parquet scan, where row-group statistics prune
//! further. Filters are reported `Inexact`, so DataFusion still applies every one of them.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::MemTable;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::object_store::path::Path;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use crate::dictionary::{ScanFilters, with_dictionaries};
use crate::footers::{LocalPath, ScanReaders};
use crate::lake::{file_schema_tag, schema_tag};
use crate::live::LiveBuffer;
use crate::partition::{HOUR_MICROS, Hour};
use crate::retype::{as_schema, strings_as};
use auditlake_storage::Lake;
use auditlake_storage::delta::{DataFile, TableLog};
use datafusion::object_store::ObjectMeta;

/// A hive-partitioned Parquet table of the lake.
///
/// Its string columns are read as Arrow string views: a dictionary-encoded Parquet column (verb,
/// resource, user, ...) then decodes into views of its dictionary instead of a copy of every
/// value, and comparisons look at the inlined prefix of short strings first.
#[derive(Debug)]
pub struct LakeTable {
    lake: Lake,
    /// The table's name in the lake.
    name: &'static str,
    /// Its log, once the table exists.
    log: tokio::sync::OnceCell<TableLog>,
    /// The table as queries see it: the stored schema with string views.
    schema: SchemaRef,
    /// The [`schema_tag`] of the stored schema: files named with it are read as having it.
    tag: String,
    /// The column the partitions are by (`event_time`).
    time_column: &'static str,
    /// Rows of files still being written, when a writer in this process shares them.
    live: Option<Arc<LiveBuffer>>,
    /// Low-cardinality string columns a scan filtering on them reads as dictionaries.
    dictionary_columns: &'static [&'static str],
    /// Columns besides the time column whose row-group statistics can prune.
    pruning_columns: &'static [&'static str],
}

impl LakeTable {
    /// The table `name` of `lake`, partitioned by the hour of `time_column`.
    pub fn new(
        lake: Lake,
        name: &'static str,
        schema: SchemaRef,
        time_column: &'static str,
    ) -> Self {
        Self {
            lake,
            name,
            log: tokio::sync::OnceCell::new(),
            tag: schema_tag(&schema),
            schema: strings_as(&schema, &DataType::Utf8, &DataType::Utf8View),
            time_column,
            live: None,
            dictionary_columns: &[],
            pruning_columns: &[],
        }
    }

    /// Reads `columns`, dictionary-encoded in every file written with the table's schema, as
    /// Arrow dictionaries in a scan that filters on them, and evaluates each filter on one of
    /// them once per distinct value of a file (see [`crate::dictionary`]). Over the 10M events
    /// of `benches/compare.sh` (31 alternating runs, medians) the service accounts listing
    /// secrets took 0.148 s instead of 0.162 s (CPU 0.258 against 0.287 s); the `pods/exec`
    /// count, whose first filter is on `subresource`, read as strings, 0.091 s against 0.088 s.
    pub fn with_dictionary_reads(mut self, columns: &'static [&'static str]) -> Self {
        self.dictionary_columns = columns;
        self
    }

    /// Lets a scan skip row groups by their statistics only when one of its filters is on the
    /// time column or on one of `columns`, and skips none by them otherwise.
    ///
    /// Each file holds one flush's rows of one hour, in time order: the statistics of the times
    /// (and of columns that are the same for a whole flush, such as the cluster) are narrow, and
    /// those of every other column span nearly all its values. Checking those against a filter
    /// costs a pruning predicate built and evaluated per file and prunes nothing: over the 10M
    /// events of `benches/compare.sh` (242 hour files, none pruned either way) the service
    /// accounts listing secrets took 0.102 s without it against 0.108 s with it (best of nine
    /// alternating runs each).
    pub fn with_pruning_columns(mut self, columns: &'static [&'static str]) -> Self {
        self.pruning_columns = columns;
        self
    }

    /// Also reads the rows a writer has buffered in `live` but not yet put in a finished file.
    pub fn with_live(mut self, live: Arc<LiveBuffer>) -> Self {
        self.live = Some(live);
        self
    }

    /// Data files a scan with these filters must read.
    pub async fn files_for(&self, filters: &[Expr]) -> Result<Vec<DataFile>> {
        Ok(self.snapshot(filters).await?.0)
    }

    fn bounds_of_all(&self, filters: &[Expr]) -> TimeBounds {
        filters
            .iter()
            .fold(TimeBounds::default(), |b, f| b.and(self.bounds_of(f)))
    }

    /// The table's log; `None` while the table does not exist yet.
    async fn log(&self) -> Result<Option<&TableLog>> {
        if let Some(log) = self.log.get() {
            return Ok(Some(log));
        }
        let opened = TableLog::open_existing(&self.lake, self.name, self.time_column)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(match opened {
            Some(log) => Some(self.log.get_or_init(|| async { log }).await),
            None => None,
        })
    }

    /// Committed files a scan with these filters must read, and the live rows of the same
    /// hours not in any of them (see [`LiveBuffer::snapshot`]): no row is seen twice or missed
    /// while a flush commits.
    async fn snapshot(&self, filters: &[Expr]) -> Result<(Vec<DataFile>, Vec<RecordBatch>)> {
        let bounds = self.bounds_of_all(filters);
        let live = match &self.live {
            Some(live) => live.snapshot(|hour| bounds.overlaps(hour)),
            None => Vec::new(),
        };
        let all = match self.log().await? {
            Some(log) => log
                .files()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
            None => Arc::new(Vec::new()),
        };
        let live = if live.is_empty() {
            Vec::new()
        } else {
            let committed: HashSet<&str> = all.iter().map(|f| f.path.as_str()).collect();
            live.into_iter()
                .filter(|(file, _)| !committed.contains(file.as_ref()))
                .map(|(_, batch)| batch)
                .collect()
        };
        let mut files: Vec<DataFile> = all
            .iter()
            .filter(|f| bounds.overlaps(f.hour))
            .cloned()
            .collect();
        // Hours in time order, so a target partition reads a run of hours.
        files.sort_by(|a, b| (a.hour, &a.path).cmp(&(b.hour, &b.path)));
        Ok((files, live))
    }

    /// What one filter says about the time column; anything it cannot read is unbounded.
    fn bounds_of(&self, expr: &Expr) -> TimeBounds {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => self.bounds_of(left).and(self.bounds_of(right)),
                Operator::Or => self.bounds_of(left).or(self.bounds_of(right)),
                _ => {
                    if let (true, Some(v)) = (self.is_time(left), micros_of(right)) {
                        TimeBounds::compare(*op, v)
                    } else if let (Some(v), true, Some(op)) =
                        (micros_of(left), self.is_time(right), op.swap())
                    {
                        TimeBounds::compare(op, v)
                    } else {
                        TimeBounds::default()
                    }
                }
            },
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if self.is_time(expr) => TimeBounds {
                min: micros_of(low),
                max: micros_of(high),
            },
            _ => TimeBounds::default(),
        }
    }

    /// A Parquet scan of `files`, planned the way a `ListingTable` plans one but from the files
    /// already listed. A listing table parsed each path as a URL again and stat'ed every file
    /// through the object store: the investigator queries of `benches/compare.sh` over 240 hour
    /// files took 0.110 / 0.123 / 0.190 s that way and 0.099 / 0.108 / 0.169 s this way (whole
    /// process, medians of 15 alternating runs). Nor is a path read as a glob: a listing table
    /// took a data directory such as `audit[prod]` for a pattern and found no files. Filters are
    /// not passed here: DataFusion pushes them into the scan from the filter above it.
    async fn scan_files(
        &self,
        state: &dyn Session,
        files: &[DataFile],
        filters: &[Expr],
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The columns the scan's filters read.
        let filter_columns: HashSet<&str> = filters
            .iter()
            .flat_map(|f| f.column_refs())
            .map(|c| c.name.as_str())
            .collect();
        let filtered: Vec<&str> = self
            .dictionary_columns
            .iter()
            .copied()
            .filter(|c| filter_columns.contains(c))
            .collect();
        let file_schema = match filtered.is_empty() {
            true => self.schema(),
            false => with_dictionaries(&self.schema, &filtered),
        };
        let local_dir = self.lake.local_dir().map(|d| d.join(self.name));
        let files = files
            .iter()
            .map(|f| {
                // The log's size stands for a `stat`; files are never changed once written.
                let meta = |location: Path| ObjectMeta {
                    location,
                    last_modified: chrono::DateTime::UNIX_EPOCH,
                    size: f.size,
                    e_tag: None,
                    version: None,
                };
                let file = match &local_dir {
                    Some(dir) => {
                        let path = std::path::absolute(dir.join(&f.path))?;
                        let location = Path::from_absolute_path(&path)
                            .map_err(|e| DataFusionError::External(Box::new(e)))?;
                        PartitionedFile::new_from_meta(meta(location))
                            .with_extension(LocalPath(path))
                    }
                    None => PartitionedFile::new_from_meta(meta(
                        self.lake.object_path(self.name, &f.path),
                    )),
                };
                // A file of this table's schema is read with it as given, its embedded schema
                // not decoded; any other is read by its own, and its columns matched by name.
                Ok(
                    if file_schema_tag(std::path::Path::new(f.name())) == Some(self.tag.as_str()) {
                        file.with_arrow_schema(Arc::clone(&file_schema))
                    } else {
                        file
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        // Contiguous runs of hours, one per target partition; DataFusion may split them further
        // by byte ranges.
        let per_group = files
            .len()
            .div_ceil(state.config().target_partitions().max(1));
        let groups = files
            .chunks(per_group)
            .map(|c| FileGroup::new(c.to_vec()))
            .collect();
        // The session's Parquet settings (page index, metadata size hint, pushdown): a bare
        // `ParquetFormat::default()` would read with DataFusion's defaults instead.
        let mut options = state.default_table_options().parquet;
        options.global.pruning &= filter_columns
            .iter()
            .any(|c| *c == self.time_column || self.pruning_columns.contains(c));
        let source = ParquetSource::new(TableSchema::from(self.schema()))
            .with_table_parquet_options(options.clone());
        let store_url = match &self.lake {
            Lake::Local(_) => ObjectStoreUrl::local_filesystem(),
            Lake::Remote { url, .. } => store_url(url)?,
        };
        let remote = self.lake.local_dir().is_none();
        let scan = |source: ParquetSource| {
            FileScanConfigBuilder::new(store_url, Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())
                .map(|c| {
                    c.with_limit(limit)
                        .with_expr_adapter(Some(Arc::new(ScanFilters::default()) as Arc<_>))
                        .build()
                })
        };
        // A session that keeps footers for later queries reads them whole, into its cache, the
        // way DataFusion's Parquet format plans a scan; one that does not reads only what this
        // scan uses of them.
        if remote || state.runtime_env().cache_manager.get_metadata_cache_limit() > 0 {
            let format = ParquetFormat::default().with_options(options);
            return format.create_physical_plan(state, scan(source)?).await;
        }
        let mut source =
            source.with_parquet_file_reader_factory(Arc::new(ScanReaders::new(filter_columns)));
        if let Some(hint) = options.global.metadata_size_hint {
            source = source.with_metadata_size_hint(hint);
        }
        Ok(DataSourceExec::from_data_source(scan(source)?))
    }

    fn is_time(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Column(c) => c.name == self.time_column,
            Expr::Cast(c) => self.is_time(&c.expr),
            Expr::TryCast(c) => self.is_time(&c.expr),
            _ => false,
        }
    }
}

/// The URL DataFusion knows the store of a remote lake by: its scheme and bucket.
pub(crate) fn store_url(url: &url::Url) -> Result<ObjectStoreUrl> {
    ObjectStoreUrl::parse(format!(
        "{}://{}",
        url.scheme(),
        url.host_str().unwrap_or_default()
    ))
}

/// Inclusive bounds in µs; `None` is unbounded.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct TimeBounds {
    min: Option<i64>,
    max: Option<i64>,
}

impl TimeBounds {
    fn compare(op: Operator, v: i64) -> Self {
        match op {
            Operator::Eq => TimeBounds {
                min: Some(v),
                max: Some(v),
            },
            Operator::Gt | Operator::GtEq => TimeBounds {
                min: Some(v),
                max: None,
            },
            Operator::Lt | Operator::LtEq => TimeBounds {
                min: None,
                max: Some(v),
            },
            _ => TimeBounds::default(),
        }
    }

    fn and(self, other: Self) -> Self {
        TimeBounds {
            min: max_opt(self.min, other.min),
            max: min_opt(self.max, other.max),
        }
    }

    /// Either side may hold: the hull of both (unbounded if either is).
    fn or(self, other: Self) -> Self {
        TimeBounds {
            min: self.min.zip(other.min).map(|(a, b)| a.min(b)),
            max: self.max.zip(other.max).map(|(a, b)| a.max(b)),
        }
    }

    fn overlaps(self, hour: Hour) -> bool {
        let start = hour.start_micros();
        let end = start + HOUR_MICROS - 1;
        self.min.is_none_or(|m| m <= end) && self.max.is_none_or(|m| m >= start)
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A literal time as µs since the epoch, rounded outward never inward (a bound that is off by a
/// fraction can only widen the partitions read).
fn micros_of(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => match value {
            ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
            ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
            ScalarValue::Date32(Some(d)) => i64::from(*d).checked_mul(86_400_000_000),
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => auditlake_schema::time::parse_rfc3339_micros(s),
            _ => None,
        },
        Expr::Cast(c) => micros_of(&c.expr),
        Expr::TryCast(c) => micros_of(&c.expr),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (files, live) = self.snapshot(filters).await?;
        let mut plans = Vec::new();
        if !files.is_empty() {
            plans.push(
                self.scan_files(state, &files, filters, projection, limit)
                    .await?,
            );
        }
        if !live.is_empty() {
            let live = live
                .iter()
                .map(|b| as_schema(b, &self.schema))
                .collect::<Result<Vec<_>>>()?;
            let memory = MemTable::try_new(self.schema(), vec![live])?;
            plans.push(memory.scan(state, projection, filters, limit).await?);
        }
        if plans.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        UnionExec::try_new(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn table() -> LakeTable {
        LakeTable::new(
            Lake::local(std::path::Path::new("")),
            "events",
            auditlake_schema::events_schema(),
            "event_time",
        )
    }

    fn ts(s: &str) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            auditlake_schema::time::parse_rfc3339_micros(s),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn bounds_from_comparisons_and_between() {
        let t = table();
        let f = col("event_time")
            .gt_eq(ts("2025-03-04T06:00:00Z"))
            .and(col("event_time").lt(ts("2025-03-04T08:00:00Z")));
        let b = t.bounds_of(&f);
        let hour =
            |s| Hour::of_micros(auditlake_schema::time::parse_rfc3339_micros(s).expect("time"));
        assert!(!b.overlaps(hour("2025-03-04T05:00:00Z")));
        assert!(b.overlaps(hour("2025-03-04T06:00:00Z")));
        assert!(b.overlaps(hour("2025-03-04T07:00:00Z")));
        assert!(
            b.overlaps(hour("2025-03-04T08:00:00Z")),
            "lt is inexact at the hour edge"
        );
        assert!(!b.overlaps(hour("2025-03-04T09:00:00Z")));
        let between =
            col("event_time").between(ts("2025-03-04T06:10:00Z"), ts("2025-03-04T06:20:00Z"));
        let b = t.bounds_of(&between);
        assert!(
            b.overlaps(hour("2025-03-04T06:00:00Z")) && !b.overlaps(hour("2025-03-04T07:00:00Z"))
        );
        let reversed = ts("2025-03-04T06:00:00Z").lt_eq(col("event_time"));
        assert!(
            !t.bounds_of(&reversed)
                .overlaps(hour("2025-03-04T05:00:00Z"))
        );
    }

    #[test]
    fn unreadable_filters_do_not_prune() {
        let t = table();
        let f = col("verb")
            .eq(lit("get"))
            .or(col("event_time").gt(ts("2025-03-04T06:00:00Z")));
        assert_eq!(t.bounds_of(&f), TimeBounds::default());
    }
}
