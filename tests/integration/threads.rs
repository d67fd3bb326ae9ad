//! `replay --threads N` stores the same lake and raises the same alerts (same `alert_id`s) as
//! `--threads 1`, on the sample logs, the real logs and generated traffic; `rules backtest
//! --threads N` answers the same alerts as one thread.

use std::path::{Path, PathBuf};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::*;

/// `auditlake replay --threads N [--batch-bytes B] FILES...`, which must succeed; its summary.
fn replay_threads(data: &Path, files: &[PathBuf], threads: usize, batch_bytes: &str) -> String {
    let mut args = vec![
        "replay".to_string(),
        format!("--threads={threads}"),
        format!("--batch-bytes={batch_bytes}"),
    ];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = auditlake(data, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Every row of a table's Parquet files under `dir`, without the columns that say when it was
/// processed, sorted by every remaining column that identifies a row.
fn table_rows(dir: &Path, drop: &str, key: &[&str]) -> Option<RecordBatch> {
    let files = auditlake_engine::partition::files_under(dir).expect("table directory");
    let mut batches = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet"))
    {
        let file = std::fs::File::open(file).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .expect("a Parquet file");
        batches.extend(reader.map(|b| b.expect("a batch")));
    }
    let schema = batches.first()?.schema();
    let all = concat_batches(&schema, &batches).expect("concat");
    let order = lexsort_to_indices(
        &key.iter()
            .map(|k| SortColumn {
                values: ArrayRef::clone(all.column_by_name(k).expect("key column")),
                options: None,
            })
            .collect::<Vec<_>>(),
        None,
    )
    .expect("sort");
    let mut sorted = take_record_batch(&all, &order).expect("take");
    sorted.remove_column(schema.index_of(drop).expect("dropped column"));
    Some(sorted)
}

/// The two lakes hold the same events and the same alerts, value for value.
fn assert_same_lakes(one: &Path, many: &Path) -> (usize, usize) {
    let mut sizes = (0, 0);
    for (table, drop, key, size) in [
        (
            "events",
            "ingested_at",
            &["event_time", "audit_id", "stage", "event_hash"][..],
            &mut sizes.0,
        ),
        (
            "alerts",
            "detected_at",
            &["alert_id", "rule_id", "audit_id"][..],
            &mut sizes.1,
        ),
    ] {
        let a = table_rows(&one.join(table), drop, key);
        let b = table_rows(&many.join(table), drop, key);
        let (Some(a), Some(b)) = (a, b) else {
            panic!("{table}: one lake has no rows");
        };
        assert_eq!(a.num_rows(), b.num_rows(), "{table} rows");
        for (i, field) in a.schema().fields().iter().enumerate() {
            assert!(
                a.column(i).as_ref() == b.column(i).as_ref(),
                "{table}.{} differs between one thread and several",
                field.name()
            );
        }
        *size = a.num_rows();
    }
    sizes
}

/// Replays `files` with one thread and with `threads`, in batches of `batch_bytes`; both
/// summaries and both lakes must be the same. Returns (events, alerts).
fn same_with_threads(files: &[PathBuf], threads: usize, batch_bytes: &str) -> (usize, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, many) = (dir.path().join("one"), dir.path().join("many"));
    let summary_one = replay_threads(&one, files, 1, batch_bytes);
    let summary_many = replay_threads(&many, files, threads, batch_bytes);
    assert_eq!(summary_one, summary_many);
    assert_same_lakes(&one, &many)
}

#[test]
fn several_threads_store_the_sample_logs_as_one_does() {
    // Small batches, so that each log is many batches decoded out of order.
    let (events, alerts) = same_with_threads(&sample_log_files(), 3, "16KiB");
    assert!(
        events > 150 && alerts > 50,
        "{events} events, {alerts} alerts"
    );
}

#[test]
fn several_threads_store_the_real_logs_as_one_does() {
    let (events, alerts) = same_with_threads(&real_log_files(), 2, "4KiB");
    assert_eq!(events, 68);
    assert!(alerts > 0);
}

#[test]
fn several_threads_store_generated_traffic_as_one_does() {
    const EVENTS: usize = 200_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("traffic.ndjson");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
    auditlake_benches::Generator::new(7)
        .expect("sample-logs/ is readable")
        .ndjson(EVENTS, &mut out)
        .expect("write");
    std::io::Write::flush(&mut out).expect("flush");
    drop(out);
    // The default batch size: about 30 batches.
    let (events, alerts) = same_with_threads(&[file], 2, "8MiB");
    assert_eq!(events, EVENTS);
    assert!(alerts > 100, "{alerts} alerts");
}

#[test]
fn a_backtest_on_several_threads_raises_what_one_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = replay(dir.path(), &sample_log_files());
    assert!(out.status.success(), "{}", stderr(&out));
    let backtest = |threads: &str| {
        let out = auditlake(
            dir.path(),
            &[
                "rules",
                "backtest",
                "--threads",
                threads,
                "--format",
                "json",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let mut alerts: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("a JSON array");
        for alert in &mut alerts {
            alert
                .as_object_mut()
                .expect("an alert object")
                .remove("detected_at");
        }
        alerts
    };
    let one = backtest("1");
    assert!(one.len() > 50, "{} alerts", one.len());
    assert_eq!(backtest("3"), one);
}
