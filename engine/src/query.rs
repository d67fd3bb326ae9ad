//! Read-only SQL over the lake: a DataFusion session with `events` and `alerts` registered once,
//! statements other than queries refused, and optional row, time and memory limits.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use auditlake_schema::columns::{alert, event};
use auditlake_schema::{alerts_schema, events_schema};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    TableProvider,
};
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::lake::{ALERTS_DIR, EVENTS_DIR, FEW_VALUED_EVENT_COLUMNS};
use crate::live::SharedLake;
use crate::local_reads::LocalReads;
use crate::retype::{as_schema, strings_as};
use crate::scoped::ClusterScoped;
use crate::table::LakeTable;
use auditlake_storage::Lake;

/// Bytes read from the end of a Parquet file in the hope they hold its whole footer. An hour's
/// file of events has a footer of about 11 KB per row group; DataFusion's default of 512 KiB read a
/// fifth of every such file just to open it, and 64 KiB still copied six times the footer. A
/// footer larger than this costs one more read of the rest, a `pread` of a local file.
const METADATA_SIZE_HINT: u64 = 16 << 10;

/// Bounds on one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Rows returned at most; the result says when it was cut.
    pub max_rows: Option<usize>,
    /// Wall-clock time at most.
    pub timeout: Option<Duration>,
    /// Memory for sorts, joins and aggregations; beyond it they spill to disk or fail.
    pub memory_bytes: usize,
    /// Parts a scan, sort or aggregation is split into, run in parallel [default: one per core].
    pub threads: Option<usize>,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_rows: None,
            timeout: None,
            memory_bytes: 1 << 30,
            threads: None,
        }
    }
}

/// The rows of one query.
#[derive(Debug)]
pub struct QueryResult {
    /// Columns of the result (also when there are no rows).
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Whether `max_rows` cut the result.
    pub truncated: bool,
}

/// Whether a session keeps the Parquet footers it has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Footers {
    Cached,
    Uncached,
}

/// Runs read-only SQL over a lake.
pub struct QueryEngine {
    ctx: SessionContext,
    limits: QueryLimits,
    /// The lake's tables, for views limited to some clusters ([`QueryEngine::limited_to`]).
    events: Arc<dyn TableProvider>,
    alerts: Arc<dyn TableProvider>,
    /// The tables registered besides them (triage), for other views of the engine.
    others: std::sync::Mutex<Vec<(&'static str, Arc<dyn TableProvider>)>>,
}

impl QueryEngine {
    /// A session over the lake in `data_dir` with `events` and `alerts` registered.
    pub fn open(data_dir: &Path, limits: QueryLimits) -> Result<Self> {
        Self::open_in(&Lake::local(data_dir), limits)
    }

    /// A session over `lake` with `events` and `alerts` registered.
    pub fn open_in(lake: &Lake, limits: QueryLimits) -> Result<Self> {
        Self::build(lake, limits, None, Footers::Cached)
    }

    /// Like [`QueryEngine::open`], for a process that runs one query and ends: the footers of
    /// the files it reads are not kept for queries after it. Keeping them (DataFusion's default,
    /// up to 50 MB) spared a long-running session reading them again, and cost a one-off query
    /// over 240 hour files 5-10% of its time (`benches/compare.sh`'s queries, 15 alternating
    /// runs: 0.105 -> 0.097 s for the top users by 403s).
    pub fn open_once(lake: &Lake, limits: QueryLimits) -> Result<Self> {
        Self::build(lake, limits, None, Footers::Uncached)
    }

    /// Like [`QueryEngine::open`], also reading the rows a writer sharing `shared` has not yet
    /// put in finished files.
    pub fn open_shared(lake: &Lake, limits: QueryLimits, shared: Arc<SharedLake>) -> Result<Self> {
        Self::build(lake, limits, Some(shared), Footers::Cached)
    }

    fn build(
        lake: &Lake,
        limits: QueryLimits,
        shared: Option<Arc<SharedLake>>,
        footers: Footers,
    ) -> Result<Self> {
        let mut runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(limits.memory_bytes)));
        if footers == Footers::Uncached {
            runtime = runtime
                .with_cache_manager(CacheManagerConfig::default().with_metadata_cache_limit(0));
        }
        let runtime = runtime.build_arc()?;
        runtime.register_object_store(
            ObjectStoreUrl::local_filesystem().as_ref(),
            Arc::new(LocalReads::default()),
        );
        if let Lake::Remote { url, store } = lake {
            runtime
                .register_object_store(crate::table::store_url(url)?.as_ref(), Arc::clone(store));
        }
        // PostgreSQL's dialect: the generic one allows trailing commas in a select list and so
        // reserves `CLUSTER` there, which would make `SELECT verb, cluster FROM events` an error.
        //
        // Parquet reading, measured on the investigator queries of `benches/compare.sh` (10M
        // events, 240 hour files; medians of nine alternating runs):
        // - Filters are evaluated inside the Parquet decoder: the columns a query only returns
        //   are then decoded for the matching rows alone. 0.20 -> 0.15 s for the `pods/exec`
        //   count, 0.30 -> 0.25 s for the service accounts listing secrets.
        // - Their conjuncts are ordered by the lake tables themselves, most selective first as
        //   measured while the scan runs (`filter_order`), not by DataFusion's column sizes.
        // - Planning does not read every file's statistics, nor the page indexes: hour
        //   partitions and row-group statistics already prune by time, and reading page indexes
        //   made each query 0.03-0.06 s slower.
        // - No bloom filters are read: the lake writes none.
        // - Row-group statistics are checked only in scans that filter on a time or the cluster
        //   (`LakeTable::with_pruning_columns`): 0.108 -> 0.102 s for the service accounts
        //   listing secrets.
        // - A session that keeps no footers (`open_once`) decodes of them only what its scans
        //   use (`footers`): 0.094 -> 0.089 s and 0.121 -> 0.112 s for the top users by 403s
        //   and the service accounts listing secrets (11 alternating runs).
        let config = SessionConfig::new()
            .with_information_schema(true)
            .set_str("datafusion.sql_parser.dialect", "PostgreSQL")
            .set_bool("datafusion.execution.collect_statistics", false)
            .set_bool("datafusion.execution.parquet.pushdown_filters", true)
            .set_bool("datafusion.execution.parquet.reorder_filters", false)
            .set_bool("datafusion.execution.parquet.enable_page_index", false)
            .set_bool("datafusion.execution.parquet.bloom_filter_on_read", false)
            .set_u64(
                "datafusion.execution.parquet.metadata_size_hint",
                METADATA_SIZE_HINT,
            );
        let config = match limits.threads {
            Some(threads) => config.with_target_partitions(threads),
            None => config,
        };
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let mut events =
            LakeTable::new(lake.clone(), EVENTS_DIR, events_schema(), event::EVENT_TIME)
                .with_dictionary_reads(FEW_VALUED_EVENT_COLUMNS)
                .with_pruning_columns(&[event::STAGE_TIME, event::INGESTED_AT, event::CLUSTER]);
        let mut alerts =
            LakeTable::new(lake.clone(), ALERTS_DIR, alerts_schema(), alert::EVENT_TIME)
                .with_pruning_columns(&[alert::DETECTED_AT, alert::CLUSTER]);
        if let Some(shared) = &shared {
            events = events.with_live(Arc::clone(&shared.events));
            alerts = alerts.with_live(Arc::clone(&shared.alerts));
        }
        let events: Arc<dyn TableProvider> = Arc::new(events);
        let alerts: Arc<dyn TableProvider> = Arc::new(alerts);
        ctx.register_table("events", Arc::clone(&events))?;
        ctx.register_table("alerts", Arc::clone(&alerts))?;
        Ok(Self {
            ctx,
            limits,
            events,
            alerts,
            others: Default::default(),
        })
    }

    /// An engine over the same lake, limits, memory pool and footer cache whose `events` and
    /// `alerts` hold only the rows of `clusters` (what a cluster-limited token sees), enforced
    /// in their scans. Its catalog is its own and has no other table: the triage tables, which
    /// hold no cluster, are not in it.
    pub fn limited_to(&self, clusters: Arc<[String]>) -> Result<Self> {
        let scoped = |table: &Arc<dyn TableProvider>, column| -> Arc<dyn TableProvider> {
            Arc::new(ClusterScoped::new(
                Arc::clone(table),
                column,
                Arc::clone(&clusters),
            ))
        };
        self.view(
            scoped(&self.events, event::CLUSTER),
            scoped(&self.alerts, alert::CLUSTER),
            Vec::new(),
        )
    }

    /// An engine with every table of this one and `access_log` over `table`: an `admin`
    /// token's view.
    pub fn with_access_log(&self, table: Arc<dyn TableProvider>) -> Result<Self> {
        let mut others = self
            .others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        others.push(("access_log", table));
        self.view(Arc::clone(&self.events), Arc::clone(&self.alerts), others)
    }

    /// An engine over the same memory pool and footer cache with a catalog of its own holding
    /// `events`, `alerts` and `others`.
    fn view(
        &self,
        events: Arc<dyn TableProvider>,
        alerts: Arc<dyn TableProvider>,
        others: Vec<(&'static str, Arc<dyn TableProvider>)>,
    ) -> Result<Self> {
        let base = self.ctx.state();
        let (catalog_name, schema_name) = {
            let options = &base.config_options().catalog;
            (
                options.default_catalog.clone(),
                options.default_schema.clone(),
            )
        };
        let state = SessionStateBuilder::new_from_existing(base)
            .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let catalog = Arc::new(MemoryCatalogProvider::new());
        catalog.register_schema(&schema_name, Arc::new(MemorySchemaProvider::new()))?;
        ctx.register_catalog(&catalog_name, catalog);
        ctx.register_table("events", Arc::clone(&events))?;
        ctx.register_table("alerts", Arc::clone(&alerts))?;
        for (name, table) in &others {
            ctx.register_table(*name, Arc::clone(table))?;
        }
        Ok(Self {
            ctx,
            limits: self.limits.clone(),
            events,
            alerts,
            others: std::sync::Mutex::new(others),
        })
    }

    /// Registers the tables `triage` (each alert's latest verdict) and `triage_log` (every
    /// change) over `store`.
    pub fn register_triage(&self, store: Arc<crate::triage::TriageStore>) -> Result<()> {
        use crate::triage::TriageTable;
        let tables: [(&'static str, Arc<dyn TableProvider>); 2] = [
            ("triage", Arc::new(TriageTable::current(Arc::clone(&store)))),
            ("triage_log", Arc::new(TriageTable::log(store))),
        ];
        let mut others = self.others.lock().unwrap_or_else(|e| e.into_inner());
        for (name, table) in tables {
            self.ctx.register_table(name, Arc::clone(&table))?;
            others.push((name, table));
        }
        Ok(())
    }

    /// Registers the triage tables of the data directory `data_dir` when it has a triage log
    /// (a server wrote one); a query-only process creates nothing.
    pub fn register_triage_if_kept(&self, data_dir: &Path) -> Result<()> {
        if crate::triage::TriageStore::exists(data_dir) {
            self.register_triage(Arc::new(crate::triage::TriageStore::open(data_dir)?))?;
        }
        Ok(())
    }

    /// A session of its own over the same tables, memory pool and footer cache, for a wire
    /// protocol that registers its own catalog and functions (the PostgreSQL protocol's
    /// `pg_catalog`). It does not check statements: its caller must.
    pub fn session(&self) -> SessionContext {
        SessionContext::new_with_state(self.ctx.state())
    }

    /// The tables `sql` names (not its CTEs), as the planner resolves them; none when it does not
    /// parse (planning then says why).
    pub fn tables_read(&self, sql: &str) -> Vec<String> {
        let state = self.ctx.state();
        let dialect = state.config_options().sql_parser.dialect;
        state
            .sql_to_statement(sql, &dialect)
            .and_then(|statement| state.resolve_table_references(&statement))
            .map(|references| references.iter().map(|r| r.table().to_string()).collect())
            .unwrap_or_default()
    }

    /// The limits queries run under.
    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Runs one query. DDL, DML and statements such as `SET` or `COPY` are refused.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        let run = async {
            let (schema, stream) = self.stream(sql).await?;
            self.collect(schema, stream).await
        };
        self.bounded(run).await
    }

    /// Runs the query `build` makes of the table `table` (filters, sorts, aggregates built as
    /// DataFusion expressions, so no value is spliced into SQL text), under the same limits as
    /// [`QueryEngine::query`]. Also gives the plan back as SQL (empty if it has none), so that a
    /// caller can show what ran.
    pub async fn frame(
        &self,
        table: &str,
        build: impl FnOnce(DataFrame) -> datafusion::error::Result<DataFrame>,
    ) -> Result<(QueryResult, String)> {
        let run = async {
            let frame = build(self.ctx.table(table).await?)?;
            let sql = datafusion::sql::unparser::plan_to_sql(frame.logical_plan())
                .map(|s| s.to_string())
                .unwrap_or_default();
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let stream = frame.execute_stream().await?;
            Ok((self.collect(schema, stream).await?, sql))
        };
        self.bounded(run).await
    }

    async fn bounded<T>(&self, run: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match self.limits.timeout {
            Some(limit) => tokio::time::timeout(limit, run)
                .await
                .map_err(|_| Error::Timeout {
                    seconds: limit.as_secs(),
                })?,
            None => run.await,
        }
    }

    /// Runs one query and hands each result batch to `each` as it is produced, so results larger
    /// than memory can be processed (a backtest over months of events). No row limit applies.
    pub async fn for_each_batch(
        &self,
        sql: &str,
        mut each: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (schema, mut stream) = self.stream(sql).await?;
        let schema = stored_types(&schema);
        while let Some(batch) = stream.next().await {
            each(as_schema(&batch?, &schema)?)?;
        }
        Ok(())
    }

    async fn stream(
        &self,
        sql: &str,
    ) -> Result<(
        SchemaRef,
        datafusion::physical_plan::SendableRecordBatchStream,
    )> {
        let frame = self.plan_frame(sql).await?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        Ok((schema, frame.execute_stream().await?))
    }

    /// Plans `sql`, refusing anything but a query.
    async fn plan_frame(&self, sql: &str) -> Result<DataFrame> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        // DataFusion's planner panics on some statements (`SELECT (SELECT FROM t)`, found by
        // the SQL guard's fuzz target): a refusal, not a dead connection.
        let planning = std::panic::AssertUnwindSafe(self.ctx.sql_with_options(sql, options));
        match futures::FutureExt::catch_unwind(planning).await {
            Ok(frame) => Ok(frame?),
            Err(_) => Err(Error::Invalid {
                reason: "the query planner failed on this statement; write it another way".into(),
            }),
        }
    }

    /// Plans one query without running it, for a protocol that answers with the result's
    /// columns first and may bind parameters (`$1`, `$2`, ...) before running it (Arrow Flight
    /// SQL's prepared statements). Refuses what [`QueryEngine::query`] refuses. Neither the
    /// time nor the row limit applies to what [`Planned::execute`] streams: its caller bounds
    /// both; sorts and joins share the engine's memory pool.
    pub async fn plan(&self, sql: &str) -> Result<Planned> {
        let frame = self.bounded(self.plan_frame(sql)).await?;
        Ok(Planned { frame })
    }

    async fn collect(
        &self,
        schema: SchemaRef,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    ) -> Result<QueryResult> {
        let schema = stored_types(&schema);
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = as_schema(&batch?, &schema)?;
            if let Some(max) = self.limits.max_rows
                && rows + batch.num_rows() > max
            {
                batches.push(batch.slice(0, max - rows));
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok(QueryResult {
            schema,
            batches,
            truncated,
        })
    }
}

/// A planned query: its result's columns, its parameters, and a stream of its batches.
pub struct Planned {
    frame: DataFrame,
}

/// Result batches as they are produced.
pub type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

impl Planned {
    /// The result's columns, with the stored types.
    pub fn schema(&self) -> SchemaRef {
        stored_types(&Arc::new(self.frame.schema().as_arrow().clone()))
    }

    /// The parameters' types in order (`$1` first); a type is `None` when the query does not
    /// say what it must be.
    pub fn parameters(&self) -> Result<Vec<Option<DataType>>> {
        let types = self.frame.logical_plan().get_parameter_types()?;
        let mut numbered = Vec::with_capacity(types.len());
        for (name, data_type) in types {
            let n = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::Invalid {
                    reason: format!("parameter {name} is not numbered ($1, $2, ...)"),
                })?;
            numbered.push((n, data_type));
        }
        numbered.sort_by_key(|(n, _)| *n);
        if let Some((i, (n, _))) = numbered.iter().enumerate().find(|(i, (n, _))| *n != i + 1) {
            return Err(Error::Invalid {
                reason: format!("the query has ${n} but no ${}", i + 1),
            });
        }
        Ok(numbered.into_iter().map(|(_, t)| t).collect())
    }

    /// The query with `values` in place of `$1`, `$2`, ... in order.
    pub fn bind(self, values: Vec<datafusion::scalar::ScalarValue>) -> Result<Planned> {
        Ok(Planned {
            frame: self.frame.with_param_values(values)?,
        })
    }

    /// Runs the query, giving its batches with the stored types as they are produced.
    pub async fn execute(self) -> Result<BatchStream> {
        let schema = self.schema();
        let stream = self.frame.execute_stream().await?;
        Ok(stream
            .map(move |batch| Ok(as_schema(&batch?, &schema)?))
            .boxed())
    }
}

/// Answers carry the stored types: the tables read strings as views (see [`LakeTable`]), and
/// results give them back as `Utf8`, as the `events` and `alerts` schemas say.
pub fn stored_types(schema: &SchemaRef) -> SchemaRef {
    strings_as(schema, &DataType::Utf8View, &DataType::Utf8)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lake::LakeWriter;
    use arrow::array::AsArray;
    use auditlake_storage::test_support::{events, lake_of};
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::physical_plan::ExecutionPlan;

    /// A lasting session (footers decoded whole and kept) and a one-off one (footers decoded
    /// only as far as each scan uses them) over the lake under `dir`, named.
    pub(crate) fn both_kinds(dir: &std::path::Path) -> [(&'static str, QueryEngine); 2] {
        let limits = QueryLimits::default;
        [
            ("lasting", QueryEngine::open(dir, limits()).expect("open")),
            (
                "one-off",
                QueryEngine::open_once(&Lake::local(dir), limits()).expect("open"),
            ),
        ]
    }

    /// The data-source scans (files or memory) found in `plan`.
    fn parquet_scans(plan: &Arc<dyn ExecutionPlan>, found: &mut Vec<Arc<dyn ExecutionPlan>>) {
        if plan.is::<DataSourceExec>() {
            found.push(Arc::clone(plan));
        }
        for child in plan.children() {
            parquet_scans(child, found);
        }
    }

    /// The one file scan of `plan`.
    fn file_scan(plan: &Arc<dyn ExecutionPlan>) -> FileScanConfig {
        let mut scans = Vec::new();
        parquet_scans(plan, &mut scans);
        assert_eq!(scans.len(), 1, "one scan");
        scans[0]
            .downcast_ref::<DataSourceExec>()
            .and_then(|s| s.data_source().downcast_ref::<FileScanConfig>())
            .expect("a file scan")
            .clone()
    }

    /// A statement DataFusion's planner panics on is refused, and the engine goes on.
    #[test]
    fn a_statement_the_planner_panics_on_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        lake_of(dir.path(), "a", 3, "2025-11-03T10:00:00Z");
        let engine = QueryEngine::open(dir.path(), QueryLimits::default()).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let sql = "SELECT (SELECT FROM alerts) AS last, count(DISTINCT audit_id) FROM events";
        let refused = rt.block_on(engine.query(sql)).expect_err("refused");
        assert!(refused.is_user_error(), "{refused}");
        assert!(refused.to_string().contains("planner failed"), "{refused}");
        let counted = rt
            .block_on(engine.query("SELECT count(*) FROM events"))
            .expect("the engine goes on");
        assert_eq!(counted.batches[0].num_rows(), 1);
    }

    #[test]
    fn lake_scans_read_with_the_sessions_parquet_settings() {
        use datafusion::datasource::physical_plan::ParquetSource;
        let dir = tempfile::tempdir().expect("tempdir");
        lake_of(dir.path(), "a", 3, "2025-11-03T10:00:00Z");
        let engine = QueryEngine::open(dir.path(), QueryLimits::default()).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let sql = "SELECT count(*) AS n FROM events WHERE verb = 'get' AND user_name = 'alice'";
        let plan = rt
            .block_on(async { engine.ctx.sql(sql).await?.create_physical_plan().await })
            .expect("plan");
        let scan = file_scan(&plan);
        let source = scan
            .file_source()
            .downcast_ref::<ParquetSource>()
            .expect("a Parquet file scan");
        let options = &source.table_parquet_options().global;
        // Pushed down, ordered by the scan's own measurements rather than by DataFusion.
        assert!(options.pushdown_filters && !options.reorder_filters);
        assert!(!options.enable_page_index && !options.bloom_filter_on_read);
        assert_eq!(
            options.metadata_size_hint,
            Some(METADATA_SIZE_HINT as usize)
        );
        let answer = rt.block_on(engine.query(sql)).expect("query");
        let n = answer.batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(n, 3, "the pushed-down filters keep every matching row");
    }

    /// Row-group statistics are checked in a scan that filters on a time (or the cluster), where
    /// they prune, and not in one that filters on other columns only, where they cannot.
    #[test]
    fn row_group_statistics_are_checked_only_for_filters_they_can_prune_with() {
        use datafusion::datasource::physical_plan::ParquetSource;
        let dir = tempfile::tempdir().expect("tempdir");
        // Two files in one hour partition, one row group each, forty minutes apart.
        lake_of(dir.path(), "a", 3, "2025-11-03T10:05:00Z");
        lake_of(dir.path(), "b", 2, "2025-11-03T10:45:00Z");
        let engine = QueryEngine::open(dir.path(), QueryLimits::default()).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let prunes = |sql: &str| {
            let plan = rt
                .block_on(async { engine.ctx.sql(sql).await?.create_physical_plan().await })
                .expect("plan");
            let scan = file_scan(&plan);
            let source = scan.file_source().downcast_ref::<ParquetSource>();
            source
                .expect("a Parquet file scan")
                .table_parquet_options()
                .global
                .pruning
        };
        let late = "SELECT count(*) AS n FROM events WHERE event_time >= '2025-11-03T10:30:00Z'";
        assert!(prunes(late));
        assert!(prunes(
            "SELECT count(*) FROM events WHERE cluster = 'c' AND verb = 'get'"
        ));
        assert!(!prunes(
            "SELECT count(*) FROM events WHERE verb = 'get' AND user_name = 'x'"
        ));

        let count = |sql: &str| {
            let answer = rt.block_on(engine.query(sql)).expect("query");
            answer.batches[0]
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0)
        };
        assert_eq!(count(late), 2);
        assert_eq!(
            count("SELECT count(*) FROM events WHERE verb IS NOT NULL"),
            5
        );
        // The earlier file's row group is skipped by its time statistics.
        let answer = rt
            .block_on(engine.query(&format!("EXPLAIN ANALYZE {late}")))
            .expect("explain");
        let plan = arrow::util::pretty::pretty_format_batches(&answer.batches)
            .expect("format")
            .to_string();
        assert!(
            plan.contains("row_groups_pruned_statistics=2 total \u{2192} 1 matched"),
            "{plan}"
        );
    }

    /// A session for one query keeps no footers; a lasting one keeps every file's, and both
    /// answer alike.
    #[test]
    fn only_lasting_sessions_keep_the_footers_they_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        for (i, hour) in ["08", "09", "10"].iter().enumerate() {
            lake.append(&events(hour, 2 + i, &format!("2025-11-03T{hour}:15:00Z")))
                .expect("append");
        }
        lake.flush().expect("flush");
        drop(lake);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let sql = "SELECT count(*) AS n FROM events WHERE verb = 'get'";
        let mut kept = Vec::new();
        for (_, engine) in both_kinds(dir.path()) {
            let answer = rt.block_on(engine.query(sql)).expect("query");
            let n = answer.batches[0]
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0);
            assert_eq!(n, 2 + 3 + 4);
            let cache = engine
                .ctx
                .runtime_env()
                .cache_manager
                .get_file_metadata_cache();
            kept.push(cache.len());
        }
        assert_eq!(
            kept,
            [3, 0],
            "footers kept by the lasting and the one-off session"
        );
    }

    /// A listing table took `[` in a path for a glob and answered over no files at all.
    #[test]
    fn lakes_under_paths_with_glob_or_url_characters_are_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let refused = LakeWriter::open(&dir.path().join("audit %41")).err();
        assert!(
            refused.is_some_and(|e| e.to_string().contains("`%`")),
            "a `%` is refused, not read as another directory"
        );
        let data = dir.path().join("audit [prod] *? é");
        let mut lake = LakeWriter::open(&data).expect("lake");
        for (i, hour) in ["08", "09", "10", "11", "12"].iter().enumerate() {
            lake.append(&events(hour, 2 + i, &format!("2025-11-03T{hour}:15:00Z")))
                .expect("append");
        }
        lake.flush().expect("flush");
        drop(lake);
        let engine = QueryEngine::open(&data, QueryLimits::default()).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let sql = "SELECT count(*) AS n, count(DISTINCT date_trunc('hour', event_time)) AS hours \
                   FROM events WHERE event_time >= '2025-11-03T09:00:00Z'";
        let answer = rt.block_on(engine.query(sql)).expect("query");
        let row = &answer.batches[0];
        let n = row.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        let hours = row.column(1).as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!((n.value(0), hours.value(0)), (3 + 4 + 5 + 6, 4));
    }

    /// Files named with the table's schema tag are read with the table's schema as given; files
    /// of an older schema (no tag, or another one) by their own, missing columns read as null.
    /// Were every file given the table's schema, the older ones would fail the query.
    #[test]
    fn files_are_read_with_the_tables_schema_only_when_their_name_says_they_have_it() {
        use auditlake_storage::test_support::older_events_file;
        let dir = tempfile::tempdir().expect("tempdir");
        lake_of(dir.path(), "new", 3, "2025-11-03T10:15:00Z");
        older_events_file(
            dir.path(),
            "part-untagged.parquet",
            "old",
            2,
            "2025-11-03T10:30:00Z",
        );
        older_events_file(
            dir.path(),
            "part-other.s0123456789abcdef.parquet",
            "other",
            4,
            "2025-11-03T11:30:00Z",
        );

        // Both with footers decoded whole and with only what the scan uses of them (the
        // first footer of a tag teaches the schema to the others of that tag).
        for (kind, engine) in both_kinds(dir.path()) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let sql = "SELECT count(*) AS n, count(exec_command) AS execs, \
                   count(DISTINCT audit_id) AS ids FROM events WHERE verb = 'get' AND user_name = 'alice'";
            let plan = rt
                .block_on(async { engine.ctx.sql(sql).await?.create_physical_plan().await })
                .expect("plan");
            let tag = crate::lake::schema_tag(&events_schema());
            let given: Vec<(String, bool)> = file_scan(&plan)
                .file_groups
                .iter()
                .flat_map(|g| g.files())
                .map(|f| {
                    let name = f.object_meta.location.filename().expect("name").to_string();
                    (name, f.arrow_schema.is_some())
                })
                .collect();
            assert_eq!(given.len(), 3, "{given:?}");
            assert_eq!(given.iter().filter(|(_, g)| *g).count(), 1, "{given:?}");
            for (name, given) in &given {
                assert_eq!(*given, name.ends_with(&format!(".{tag}.parquet")), "{name}");
            }

            let answer = rt.block_on(engine.query(sql)).expect("query");
            let row = &answer.batches[0];
            let value = |i: usize| {
                row.column(i)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .value(0)
            };
            assert_eq!((value(0), value(1), value(2)), (9, 0, 9), "{kind}");
        }
    }
}
