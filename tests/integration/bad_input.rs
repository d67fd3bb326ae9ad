//! Bad input gets a clear message naming file and line, never a panic, and never costs the good
//! lines next to it.

use std::io::Write;

use crate::*;

fn event_line(id: &str) -> String {
    event(id).to_string()
}

fn assert_no_panic(out: &std::process::Output) {
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
    assert!(out.status.code().is_some(), "killed by a signal");
}

#[test]
fn mixed_file_stores_good_lines_and_names_bad_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mixed.log");
    let list = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{},{{"kind":"Event","stage":"ResponseComplete"}}]}}"#,
        event_line("in-list")
    );
    let lines = [
        event_line("good-1"),
        "this is not json".to_string(),
        r#"{"kind": 0}"#.to_string(),
        event_line("good-2"),
        r#"{"kind":"Event","apiVersion":"v1","metadata":{"name":"x"},"reason":"Pulled"}"#
            .to_string(),
        list,
        r#"{"auditID":"no-time","stage":"ResponseComplete"}"#.to_string(),
    ];
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = replay(&dir.path().join("data"), std::slice::from_ref(&file));
    assert_no_panic(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejections make the exit status non-zero"
    );
    let err = stderr(&out);
    let name = file.display().to_string();
    assert!(err.contains(&format!("{name}:2: not JSON")), "{err}");
    assert!(
        err.contains(&format!("{name}:3: not an audit event")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:5: not an audit event: apiVersion \"v1\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:6: item 1: not an audit event: no auditID")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:7: not an audit event: no timestamp")),
        "{err}"
    );
    assert!(
        !err.contains(&format!("{name}:1:")) && !err.contains(&format!("{name}:4:")),
        "{err}"
    );
    assert!(
        stdout(&out).contains("3 events stored, 0 duplicates skipped, 5 lines rejected"),
        "{}",
        stdout(&out)
    );
    let ids = query(
        &dir.path().join("data"),
        "SELECT audit_id FROM events ORDER BY audit_id",
    );
    assert_eq!(
        ids,
        [
            serde_json::json!({"audit_id": "good-1"}),
            serde_json::json!({"audit_id": "good-2"}),
            serde_json::json!({"audit_id": "in-list"}),
        ]
    );
}

#[test]
fn truncated_gzip_keeps_what_came_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..2000 {
        writeln!(gz, "{}", event_line(&format!("gz-{i}"))).expect("compress");
    }
    let bytes = gz.finish().expect("gzip");
    let file = dir.path().join("cut.log.gz");
    std::fs::write(&file, &bytes[..bytes.len() * 3 / 4]).expect("write");
    let out = replay(&dir.path().join("data"), std::slice::from_ref(&file));
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("input truncated or corrupt"),
        "{}",
        stderr(&out)
    );
    let stored = count(&dir.path().join("data"));
    assert!(stored > 1000 && stored < 2000, "stored {stored}");
}

#[test]
fn empty_files_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, "").expect("write");
    let blank = dir.path().join("blank.log");
    std::fs::write(&blank, "\n\n  \n").expect("write");
    let out = replay(&dir.path().join("data"), &[empty, blank]);
    assert_no_panic(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("empty.log: empty, no audit events"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("blank.log: empty, no audit events"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&dir.path().join("data")), 0);
}

#[test]
fn ten_megabyte_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("big.log");
    let big_value = "x".repeat(10 << 20);
    let mut big_event: serde_json::Value = serde_json::from_str(&event_line("big")).expect("json");
    big_event["level"] = "RequestResponse".into();
    big_event["objectRef"] = serde_json::json!({"resource": "configmaps", "namespace": "default", "name": "blob", "apiVersion": "v1"});
    big_event["requestObject"] =
        serde_json::json!({"kind": "ConfigMap", "data": {"blob": big_value}});
    let junk = format!("{{\"auditID\": \"{}", "y".repeat(10 << 20));
    let content = format!("{big_event}\n{junk}\n{}\n", event_line("after"));
    std::fs::write(&file, content).expect("write");
    let out = replay(&dir.path().join("data"), std::slice::from_ref(&file));
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:2: not JSON", file.display())),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 4096, "the message does not echo the 10 MB line");
    let rows = query(
        &dir.path().join("data"),
        "SELECT audit_id, length(request_object) AS len FROM events ORDER BY audit_id",
    );
    assert_eq!(rows[0]["audit_id"], "after");
    assert_eq!(rows[1]["audit_id"], "big");
    assert!(rows[1]["len"].as_u64().expect("len") > 10 << 20);
}

#[test]
fn invalid_utf8_is_rejected_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("latin1.log");
    let mut content = event_line("before").into_bytes();
    content.extend_from_slice(b"\n{\"auditID\":\"caf\xe9\"}\n");
    content.extend_from_slice(event_line("after").as_bytes());
    std::fs::write(&file, content).expect("write");
    let out = replay(&dir.path().join("data"), std::slice::from_ref(&file));
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{}:2: invalid UTF-8 at byte 15", file.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&dir.path().join("data")), 2);
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.log");
    std::fs::write(&good, event_line("good")).expect("write");
    let out = replay(
        &dir.path().join("data"),
        &[dir.path().join("nope.log"), good],
    );
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nope.log:0: cannot open"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&dir.path().join("data")), 1);
}

#[test]
fn bad_sql_and_writes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for sql in [
        "SELEC nothing",
        "SELECT no_such_column FROM events",
        "CREATE TABLE t AS SELECT 1",
        "INSERT INTO events SELECT * FROM events",
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let out = auditlake(dir.path(), &["query", sql]);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        assert!(
            stderr(&out).starts_with("auditlake: "),
            "{sql}: {}",
            stderr(&out)
        );
    }
    let usage = auditlake(dir.path(), &["query"]);
    assert_eq!(usage.status.code(), Some(2), "bad usage exits 2");
}
