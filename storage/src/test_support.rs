//! Helpers that build events and lakes, for tests (this crate's, and others' through the
//! `test-support` feature).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use auditlake_schema::Decoder;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::delta::{DataFile, TableLog, block_on};
use crate::lake::EVENTS_DIR;
use crate::partition::Hour;
use crate::{Lake, LakeWriter};

/// An events batch of `n` distinct events at `time`.
pub fn events(prefix: &str, n: usize, time: &str) -> arrow::record_batch::RecordBatch {
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    for i in 0..n {
        let e = serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": format!("{prefix}-{i}"), "stage": "ResponseComplete", "verb": "get",
            "requestURI": "/api/v1/pods", "user": {"username": "alice"},
            "objectRef": {"resource": "pods"}, "responseStatus": {"code": 200},
            "requestReceivedTimestamp": time, "stageTimestamp": time,
        });
        decoder.decode(e.to_string().as_bytes(), &mut rejected);
    }
    assert!(rejected.is_empty(), "{rejected:?}");
    decoder.finish()
}

/// A lake under `dir` holding `n` events at `time`, in one completed file.
pub fn lake_of(dir: &Path, prefix: &str, n: usize, time: &str) {
    let mut lake = LakeWriter::open(dir).expect("lake");
    lake.append(&events(prefix, n, time)).expect("append");
    lake.flush().expect("flush");
}

/// Writes `n` events at `time` as a release before `exec_command` was a column wrote them (one
/// column fewer, and no schema tag unless `name` has one), as the file `name` of the events
/// partition of `time` in the lake in `dir`, and commits it to the table.
pub fn older_events_file(dir: &Path, name: &str, prefix: &str, n: usize, time: &str) -> PathBuf {
    let batch = events(prefix, n, time);
    let schema = batch.schema();
    let at = schema
        .index_of(auditlake_schema::columns::event::EXEC_COMMAND)
        .expect("column");
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != at).collect();
    let batch = batch.project(&keep).expect("older columns");
    let micros = auditlake_schema::time::parse_rfc3339_micros(time).expect("time");
    let hour = Hour::of_micros(micros);
    let relative = format!("{}/{name}", hour.relative_dir());
    let path = dir.join(EVENTS_DIR).join(&relative);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    let file = File::create(&path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
    let file = DataFile {
        path: relative,
        hour,
        size: std::fs::metadata(&path).expect("size").len(),
        rows: Some(n as u64),
        times: Some((micros, micros)),
    };
    let log = events_log(dir);
    block_on(async move { log.append(&[file]).await }).expect("commit");
    path
}

/// The `events` table's log of the lake in `dir`.
pub fn events_log(dir: &Path) -> TableLog {
    TableLog::open_blocking(
        &Lake::local(dir),
        EVENTS_DIR,
        &auditlake_schema::events_schema(),
        auditlake_schema::columns::event::EVENT_TIME,
    )
    .expect("events table")
}

/// The committed files of the `events` table of the lake in `dir`, by path.
pub fn committed_files(dir: &Path) -> Vec<DataFile> {
    let log = events_log(dir);
    let mut files = block_on(async move { log.files().await })
        .expect("files")
        .to_vec();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// Events in the committed files of the lake in `dir`, asserting that none is there twice.
pub fn count_events(dir: &Path) -> i64 {
    let mut ids = HashSet::new();
    let mut rows = 0;
    for file in committed_files(dir) {
        let path = dir.join(EVENTS_DIR).join(&file.path);
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
            .expect("parquet")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("batch");
            let audit_ids = batch
                .column_by_name(auditlake_schema::columns::event::AUDIT_ID)
                .expect("audit_id")
                .as_string::<i32>();
            for id in audit_ids.iter().flatten() {
                ids.insert(id.to_string());
            }
            rows += batch.num_rows() as i64;
        }
    }
    assert_eq!(ids.len() as i64, rows, "no row twice");
    rows
}
