//! Filters on `event_time` read only the hour partitions they can match.

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
