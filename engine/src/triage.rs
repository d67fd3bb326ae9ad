//! Triage of alerts: who marked which alert open, acknowledged, resolved or a false positive, with
//! an assignee and a note. Every change is one line appended (and fsynced) to
//! `DATA_DIR/triage/changes.jsonl` before it is answered, and the two tables `triage` (each
//! alert's current state) and `triage_log` (every change, the audit trail) are read from it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The directory under the data directory that holds the triage log.
pub const TRIAGE_DIR: &str = "triage";
const LOG_FILE: &str = "changes.jsonl";
/// Longest assignee accepted, in bytes.
pub const MAX_ASSIGNEE: usize = 200;
/// Longest note accepted, in bytes.
pub const MAX_NOTE: usize = 4000;

/// Where an investigator put an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Nobody has looked at it yet (every alert without a change).
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Handled.
    Resolved,
    /// Not an attack: the rule fired on routine work.
    FalsePositive,
}

impl Status {
    /// Every status, in the order the console lists them.
    pub const ALL: [Status; 4] = [
        Status::Open,
        Status::Acknowledged,
        Status::Resolved,
        Status::FalsePositive,
    ];

    /// The status's name in the API and the tables.
    pub fn name(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::FalsePositive => "false_positive",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One change of an alert's triage, as stored and as the tables show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageChange {
    /// The alert.
    pub alert_id: String,
    /// Its rule, so that the state can be read per rule without the `alerts` table.
    pub rule_id: String,
    /// Its status after the change.
    pub status: Status,
    /// Who is on it after the change.
    pub assignee: Option<String>,
    /// The investigator's note after the change.
    pub note: Option<String>,
    /// The token (or certificate) that made the change.
    pub changed_by: String,
    /// When, in µs since the epoch.
    pub changed_at: i64,
}

/// What a caller asks to change; fields left `None` keep their value.
#[derive(Debug, Clone, Default)]
pub struct TriageUpdate {
    /// The new status.
    pub status: Option<Status>,
    /// The new assignee (`Some("")` clears it).
    pub assignee: Option<String>,
    /// The new note (`Some("")` clears it).
    pub note: Option<String>,
}

/// The triage log of one data directory, shared by the servers that use it: appends take an
/// exclusive lock on the file, and readers pick up what others appended since they last looked.
pub struct TriageStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

struct Inner {
    file: File,
    /// Bytes of the file read into `log`.
    read_to: u64,
    log: Vec<TriageChange>,
    /// Index in `log` of each alert's latest change.
    latest: HashMap<String, usize>,
}

impl TriageStore {
    /// Opens (or creates) the triage log under `data_dir`. A last line cut short by a crash is
    /// dropped (it was never answered); any other line that does not parse is an error naming it.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join(TRIAGE_DIR);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        let store = TriageStore {
            inner: Mutex::new(Inner {
                file,
                read_to: 0,
                log: Vec::new(),
                latest: HashMap::new(),
            }),
            path,
        };
        drop(store.lock()?);
        Ok(store)
    }

    /// Whether `data_dir` has a triage log.
    pub fn exists(data_dir: &Path) -> bool {
        data_dir.join(TRIAGE_DIR).join(LOG_FILE).is_file()
    }

    /// The state, with every change appended by anyone up to now read in.
    fn lock(&self) -> Result<MutexGuard<'_, Inner>> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let len = inner.file.metadata().map_err(Error::io(&self.path))?.len();
        if len > inner.read_to {
            self.read_tail(&mut inner)?;
        }
        Ok(inner)
    }

    fn read_tail(&self, inner: &mut Inner) -> Result<()> {
        let mut reader = BufReader::new(File::open(&self.path).map_err(Error::io(&self.path))?);
        reader
            .seek(SeekFrom::Start(inner.read_to))
            .map_err(Error::io(&self.path))?;
        let mut line = String::new();
        let mut line_no = inner.log.len();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(Error::io(&self.path))?;
            if n == 0 {
                return Ok(());
            }
            if !line.ends_with('\n') {
                // Cut short: a crash mid-append, or a writer still appending. Read it next time.
                tracing::warn!(path = %self.path.display(), "triage log ends in a partial line; skipped");
                return Ok(());
            }
            line_no += 1;
            let change: TriageChange =
                serde_json::from_str(line.trim_end()).map_err(|e| Error::Unavailable {
                    reason: format!(
                        "{} line {line_no}: not a triage change: {e}",
                        self.path.display()
                    ),
                })?;
            inner.read_to += n as u64;
            inner
                .latest
                .insert(change.alert_id.clone(), inner.log.len());
            inner.log.push(change);
        }
    }

    /// The alert's latest change, if it has one.
    pub fn current(&self, alert_id: &str) -> Result<Option<TriageChange>> {
        let inner = self.lock()?;
        Ok(inner.latest.get(alert_id).map(|&i| inner.log[i].clone()))
    }

    /// Every change of the alert, oldest first.
    pub fn history(&self, alert_id: &str) -> Result<Vec<TriageChange>> {
        let inner = self.lock()?;
        Ok(inner
            .log
            .iter()
            .filter(|c| c.alert_id == alert_id)
            .cloned()
            .collect())
    }

    /// The latest change of each of `alert_ids` that has one.
    pub fn current_of<'a>(
        &self,
        alert_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<String, TriageChange>> {
        let inner = self.lock()?;
        Ok(alert_ids
            .into_iter()
            .filter_map(|id| {
                let &i = inner.latest.get(id)?;
                Some((id.to_string(), inner.log[i].clone()))
            })
            .collect())
    }

    /// The alerts whose current status is `status` (for `open`: those changed back to open; the
    /// alerts never triaged are open too, and are not listed).
    pub fn with_status(&self, status: Status) -> Result<Vec<String>> {
        let inner = self.lock()?;
        Ok(inner
            .latest
            .iter()
            .filter(|&(_, &i)| inner.log[i].status == status)
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// Applies `update` to the alert, durably: the change is on disk when this returns.
    pub fn record(
        &self,
        alert_id: &str,
        rule_id: &str,
        update: TriageUpdate,
        changed_by: &str,
        changed_at: i64,
    ) -> Result<TriageChange> {
        let refuse = |reason: String| Error::Invalid { reason };
        if update
            .assignee
            .as_ref()
            .is_some_and(|a| a.len() > MAX_ASSIGNEE)
        {
            return Err(refuse(format!(
                "the assignee is longer than {MAX_ASSIGNEE} bytes"
            )));
        }
        if update.note.as_ref().is_some_and(|n| n.len() > MAX_NOTE) {
            return Err(refuse(format!("the note is longer than {MAX_NOTE} bytes")));
        }
        let mut inner = self.lock()?;
        let before = inner.latest.get(alert_id).map(|&i| inner.log[i].clone());
        let keep = |new: Option<String>, old: Option<String>| match new {
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v),
            None => old,
        };
        let change = TriageChange {
            alert_id: alert_id.to_string(),
            rule_id: rule_id.to_string(),
            status: update
                .status
                .or(before.as_ref().map(|b| b.status))
                .unwrap_or(Status::Open),
            assignee: keep(
                update.assignee,
                before.as_ref().and_then(|b| b.assignee.clone()),
            ),
            note: keep(update.note, before.and_then(|b| b.note)),
            changed_by: changed_by.to_string(),
            changed_at,
        };
        let mut line = serde_json::to_vec(&change).map_err(|e| Error::Invalid {
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let io = Error::io(&self.path);
        // Servers sharing the data directory append under the file's lock, after reading what
        // the others appended, so each line is whole and the state is everyone's.
        inner.file.lock().map_err(Error::io(&self.path))?;
        let appended = (|| {
            if inner.file.metadata()?.len() > inner.read_to {
                self.read_tail(&mut inner)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            inner.file.write_all(&line)?;
            inner.file.sync_data()
        })();
        let _ = inner.file.unlock();
        appended.map_err(io)?;
        inner.read_to += line.len() as u64;
        let at = inner.log.len();
        inner.latest.insert(change.alert_id.clone(), at);
        inner.log.push(change.clone());
        Ok(change)
    }

    /// Every change, as a batch of [`triage_schema`].
    fn log_batch(&self, current_only: bool) -> Result<RecordBatch> {
        let inner = self.lock()?;
        let rows: Vec<&TriageChange> = if current_only {
            let mut latest: Vec<usize> = inner.latest.values().copied().collect();
            latest.sort_unstable();
            latest.iter().map(|&i| &inner.log[i]).collect()
        } else {
            inner.log.iter().collect()
        };
        let mut columns: Vec<StringBuilder> = (0..6).map(|_| StringBuilder::new()).collect();
        let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for row in rows {
            columns[0].append_value(&row.alert_id);
            columns[1].append_value(&row.rule_id);
            columns[2].append_value(row.status.name());
            columns[3].append_option(row.assignee.as_deref());
            columns[4].append_option(row.note.as_deref());
            columns[5].append_value(&row.changed_by);
            at.append_value(row.changed_at);
        }
        let mut arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|mut c| Arc::new(c.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(at.finish()));
        RecordBatch::try_new(triage_schema(), arrays).map_err(|source| Error::Arrow { source })
    }
}

/// The columns of the `triage` and `triage_log` tables.
pub fn triage_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("alert_id", false),
        text("rule_id", false),
        text("status", false),
        text("assignee", true),
        text("note", true),
        text("changed_by", false),
        Field::new(
            "changed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// `triage` (each alert's latest change) or `triage_log` (every change) as a DataFusion table,
/// read from the store at each scan.
#[derive(Clone)]
pub struct TriageTable {
    store: Arc<TriageStore>,
    current_only: bool,
}

impl std::fmt::Debug for TriageTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TriageTable")
            .field("current_only", &self.current_only)
            .finish()
    }
}

impl TriageTable {
    /// Each alert's latest change.
    pub fn current(store: Arc<TriageStore>) -> Self {
        Self {
            store,
            current_only: true,
        }
    }

    /// Every change, oldest first.
    pub fn log(store: Arc<TriageStore>) -> Self {
        Self {
            store,
            current_only: false,
        }
    }
}

#[async_trait]
impl TableProvider for TriageTable {
    fn schema(&self) -> SchemaRef {
        triage_schema()
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
        let batch = self
            .store
            .log_batch(self.current_only)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], triage_schema(), projection.cloned())?;
        Ok(exec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(status: Option<Status>, assignee: Option<&str>, note: Option<&str>) -> TriageUpdate {
        TriageUpdate {
            status,
            assignee: assignee.map(str::to_string),
            note: note.map(str::to_string),
        }
    }

    #[test]
    fn changes_survive_a_reopen_and_keep_what_they_do_not_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TriageStore::open(dir.path()).expect("open");
        store
            .record(
                "a1",
                "r",
                update(Some(Status::Acknowledged), Some("alice"), None),
                "ops",
                1,
            )
            .expect("record");
        let second = store
            .record(
                "a1",
                "r",
                update(Some(Status::Resolved), None, Some("rotated")),
                "bob",
                2,
            )
            .expect("record");
        assert_eq!(second.assignee.as_deref(), Some("alice"));
        assert_eq!(second.changed_by, "bob");
        drop(store);

        let store = TriageStore::open(dir.path()).expect("reopen");
        let now = store.current("a1").expect("current").expect("changed");
        assert_eq!(now.status, Status::Resolved);
        assert_eq!(now.note.as_deref(), Some("rotated"));
        assert_eq!(store.history("a1").expect("history").len(), 2);
        assert_eq!(store.with_status(Status::Resolved).expect("ids"), ["a1"]);
        assert!(store.current("a2").expect("current").is_none());
        let cleared = store
            .record("a1", "r", update(None, Some(""), None), "bob", 3)
            .expect("record");
        assert_eq!((cleared.status, cleared.assignee), (Status::Resolved, None));
    }

    #[test]
    fn a_line_cut_by_a_crash_is_dropped_and_a_corrupt_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TriageStore::open(dir.path()).expect("open");
        store
            .record(
                "a1",
                "r",
                update(Some(Status::Resolved), None, None),
                "ops",
                1,
            )
            .expect("record");
        drop(store);
        let path = dir.path().join(TRIAGE_DIR).join(LOG_FILE);
        let mut file = OpenOptions::new().append(true).open(&path).expect("file");
        file.write_all(b"{\"alert_id\":\"a2\",\"sta")
            .expect("write");
        drop(file);
        let store = TriageStore::open(dir.path()).expect("reopen");
        assert!(store.current("a1").expect("a1").is_some());
        assert!(store.current("a2").expect("a2").is_none());
        drop(store);

        std::fs::write(&path, "not json\n").expect("write");
        let err = TriageStore::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn two_stores_on_one_directory_see_each_others_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = TriageStore::open(dir.path()).expect("a");
        let b = TriageStore::open(dir.path()).expect("b");
        a.record(
            "x",
            "r",
            update(Some(Status::Acknowledged), Some("alice"), None),
            "a",
            1,
        )
        .expect("a records");
        b.record("x", "r", update(Some(Status::Resolved), None, None), "b", 2)
            .expect("b records");
        let seen = a.current("x").expect("current").expect("changed");
        assert_eq!(
            (seen.status, seen.assignee.as_deref()),
            (Status::Resolved, Some("alice"))
        );
        assert_eq!(a.history("x").expect("history").len(), 2);
    }

    #[test]
    fn long_values_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = TriageStore::open(dir.path()).expect("open");
        let long = "n".repeat(MAX_NOTE + 1);
        assert!(
            store
                .record("a", "r", update(None, None, Some(&long)), "o", 1)
                .is_err()
        );
        assert!(store.current("a").expect("current").is_none());
    }
}
