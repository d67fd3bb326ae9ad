//! Helpers that build events and lakes, for tests (this crate's, and others' through the
//! `test-support` feature).

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use arrow::array::AsArray;
use auditlake_schema::Decoder;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::LakeWriter;
use crate::lake::EVENTS_DIR;

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

/// Writes `n` events at `time` to `path` as a release before `exec_command` was a column
/// wrote them: one column fewer, and no schema tag unless `path` has one.
pub fn older_events_file(path: &Path, prefix: &str, n: usize, time: &str) {
    let batch = events(prefix, n, time);
    let schema = batch.schema();
    let at = schema
        .index_of(auditlake_schema::columns::event::EXEC_COMMAND)
        .expect("column");
    let keep: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != at).collect();
    let batch = batch.project(&keep).expect("older columns");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    let file = File::create(path).expect("create");
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    w.write(&batch).expect("write");
    w.close().expect("close");
}

/// Events in the completed files of the lake under `dir`, asserting that none is there twice.
pub fn count_events(dir: &Path) -> i64 {
    let mut ids = HashSet::new();
    let mut rows = 0;
    for partition in walk(&dir.join(EVENTS_DIR)) {
        for file in crate::partition::parquet_files(&partition).expect("list") {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&file).expect("open"))
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
    }
    assert_eq!(ids.len() as i64, rows, "no row twice");
    rows
}

/// `dir` and every directory under it.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    out.push(entry.path());
                }
            }
        }
        i += 1;
    }
    out
}
