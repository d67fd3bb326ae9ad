//! Filters on `event_time` read only the hour partitions they can match; `query --timing` says
//! how long the query itself took.

use crate::*;

#[test]
fn time_filters_skip_other_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [
        repo().join("sample-logs/exec-into-pod.log"),
        repo().join("sample-logs/wildcard-role.log"),
    ];
    assert!(replay(dir.path(), &files).status.success());
    // Damage the wildcard-role partition (15:00): a query that reads it must fail.
    let hour = dir.path().join("events/date=2025-11-03/hour=15");
    for entry in std::fs::read_dir(&hour).expect("partition exists") {
        std::fs::write(entry.expect("entry").path(), b"not parquet").expect("overwrite");
    }
    let rows = query(
        dir.path(),
        "SELECT count(*) AS n FROM events \
         WHERE event_time >= '2025-11-03T10:00:00Z' AND event_time < '2025-11-03T11:00:00Z'",
    );
    assert_eq!(rows[0]["n"], 4, "only the 10:00 partition is read");
    let all = auditlake(dir.path(), &["query", "SELECT count(*) FROM events"]);
    assert!(
        !all.status.success(),
        "an unfiltered scan reads the damaged file"
    );
}

#[test]
fn timing_goes_to_stderr_and_leaves_the_answer_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [repo().join("sample-logs/exec-into-pod.log")];
    assert!(replay(dir.path(), &files).status.success());
    let sql = "SELECT count(*) AS n FROM events WHERE resource = 'pods' AND subresource = 'exec'";
    let plain = auditlake(dir.path(), &["query", sql, "--format", "json"]);
    let timed = auditlake(dir.path(), &["query", sql, "--format", "json", "--timing"]);
    assert!(plain.status.success() && timed.status.success());
    assert_eq!(timed.stdout, plain.stdout);
    let answer: serde_json::Value = serde_json::from_slice(&timed.stdout).expect("json");
    assert!(answer[0]["n"].as_u64().is_some_and(|n| n > 0), "{answer}");
    let err = String::from_utf8_lossy(&timed.stderr);
    let seconds = err
        .trim()
        .strip_prefix("time: ")
        .and_then(|s| s.strip_suffix(" s"))
        .and_then(|s| s.parse::<f64>().ok());
    assert!(seconds.is_some_and(|s| s >= 0.0), "stderr: {err}");
    assert!(plain.stderr.is_empty(), "no timing unless asked");
}
