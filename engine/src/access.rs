//! The auditors audited: every call that reads or changes data through the API (a query with its
//! SQL over HTTP, the PostgreSQL protocol or Flight SQL; an alert or event read; a triage change;
//! a reload) is one line appended to `DATA_DIR/access/log.jsonl`, with who (the token's name,
//! never the token), from where, when, what and how it ended. The `access_log` table reads it;
//! only sessions of `admin` tokens have it.
//!
//! The file is append-only: the server opens it for appending and never rewrites it. A line is
//! written with one `write` before the call's answer is sent, so it survives the server's crash
//! (not the machine's: it is not fsynced, which would put a disk flush in every call's way).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{
    ArrayRef, Int32Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The directory under the data directory that holds the access log.
pub const ACCESS_DIR: &str = "access";
const LOG_FILE: &str = "log.jsonl";
/// SQL text kept per call at most, in bytes; longer text is cut and says so.
const MAX_SQL: usize = 64 << 10;

/// One call, as stored and as `access_log` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// When the call was answered, µs since the epoch.
    pub time: i64,
    /// The token's name (`anonymous` without authentication, `-` when none was valid).
    pub token: String,
    /// The client's address.
    pub source: String,
    /// `http`, `postgres`, `flight` or `signal`.
    pub protocol: String,
    /// What was asked: `GET /v1/alerts?severity=high`, `query`, `reload threat lists`.
    pub action: String,
    /// The SQL of a query.
    pub sql: Option<String>,
    /// The HTTP status, or for the SQL protocols 200 when the query ran and 400 or 403 when it
    /// was refused.
    pub status: i32,
    /// `ok`, or why not.
    pub outcome: String,
}

impl Access {
    /// A call's record, its SQL cut to [`MAX_SQL`] bytes.
    pub fn new(
        token: &str,
        source: &str,
        protocol: &str,
        action: &str,
        sql: Option<&str>,
        status: i32,
        outcome: &str,
    ) -> Self {
        let sql = sql.map(|s| {
            if s.len() <= MAX_SQL {
                return s.to_string();
            }
            let mut end = MAX_SQL;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}... (cut at {MAX_SQL} of {} bytes)", &s[..end], s.len())
        });
        Self {
            time: auditlake_schema::time::now_micros(),
            token: token.to_string(),
            source: source.to_string(),
            protocol: protocol.to_string(),
            action: action.to_string(),
            sql,
            status,
            outcome: outcome.to_string(),
        }
    }
}

/// The access log of one data directory.
pub struct AccessLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AccessLog {
    /// Opens (or creates) the access log under `data_dir`, for appending.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(ACCESS_DIR);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        // A last line a crash cut short is ended, so that the next record is a line of its own.
        let len = file.metadata().map_err(Error::io(&path))?.len();
        if len > 0 {
            use std::io::{Read, Seek, SeekFrom};
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(Error::io(&path))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(Error::io(&path))?;
            }
        }
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    /// Whether `data_dir` has an access log (a server wrote one).
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(ACCESS_DIR).join(LOG_FILE).is_file()
    }

    /// Appends one call. A failure (a full disk) is logged and counted, not passed on: the call
    /// itself was answered.
    pub fn record(&self, access: &Access) {
        let mut line = match serde_json::to_vec(access) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "access log: cannot encode a record");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(&line) {
            metrics::counter!("auditlake_access_log_errors_total").increment(1);
            tracing::error!(path = %self.path.display(), error = %e, "access log: a record was not written");
        }
    }

    /// Every record, oldest first; a line cut short by a crash is passed over.
    fn batch(&self) -> Result<RecordBatch> {
        let reader = BufReader::new(File::open(&self.path).map_err(Error::io(&self.path))?);
        let mut text: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
        let mut time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        let mut status = Int32Builder::new();
        for line in reader.lines() {
            let line = line.map_err(Error::io(&self.path))?;
            let Ok(a) = serde_json::from_str::<Access>(&line) else {
                continue;
            };
            time.append_value(a.time);
            text[0].append_value(&a.token);
            text[1].append_value(&a.source);
            text[2].append_value(&a.protocol);
            text[3].append_value(&a.action);
            text[4].append_option(a.sql.as_deref());
            text[5].append_value(&a.outcome);
            status.append_value(a.status);
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(time.finish())];
        arrays.extend(
            text.into_iter()
                .map(|mut c| Arc::new(c.finish()) as ArrayRef),
        );
        arrays.push(Arc::new(status.finish()));
        RecordBatch::try_new(access_schema(), arrays).map_err(|source| Error::Arrow { source })
    }
}

/// The columns of `access_log`.
pub fn access_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("token", false),
        text("source", false),
        text("protocol", false),
        text("action", false),
        text("sql", true),
        text("outcome", false),
        Field::new("status", DataType::Int32, false),
    ]))
}

/// `access_log` as a DataFusion table, read from the file at each scan.
#[derive(Debug, Clone)]
pub struct AccessTable {
    log: Arc<AccessLog>,
}

impl AccessTable {
    /// The table over `log`.
    pub fn new(log: Arc<AccessLog>) -> Self {
        Self { log }
    }
}

#[async_trait]
impl TableProvider for AccessTable {
    fn schema(&self) -> SchemaRef {
        access_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let log = Arc::clone(&self.log);
        let batch = tokio::task::spawn_blocking(move || log.batch())
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], access_schema(), projection.cloned())?;
        Ok(exec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_and_read_back_and_a_cut_line_is_passed_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AccessLog::open(dir.path()).expect("open");
        log.record(&Access::new(
            "alice",
            "10.0.0.1:5000",
            "http",
            "POST /v1/query",
            Some("SELECT 1"),
            200,
            "ok",
        ));
        let long = "x".repeat(MAX_SQL + 10);
        log.record(&Access::new(
            "bob",
            "10.0.0.2:5000",
            "postgres",
            "query",
            Some(&long),
            400,
            "refused",
        ));
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(ACCESS_DIR).join(LOG_FILE))
            .and_then(|mut f| f.write_all(b"{\"time\": 1, \"tok"))
            .expect("a cut line");
        let again = AccessLog::open(dir.path()).expect("reopen");
        again.record(&Access::new(
            "carol", "-", "signal", "reload", None, 200, "ok",
        ));
        let batch = again.batch().expect("batch");
        assert_eq!(batch.num_rows(), 3, "the cut line alone is lost");
        let sql = batch
            .column_by_name("sql")
            .and_then(|c| {
                c.as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .cloned()
            })
            .expect("sql");
        assert_eq!(sql.value(0), "SELECT 1");
        assert!(
            sql.value(1)
                .ends_with(&format!("(cut at {MAX_SQL} of {} bytes)", MAX_SQL + 10))
        );
    }
}
