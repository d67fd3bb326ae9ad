//! The real captures in `../shared/real-audit-logs/`: every distinct event stored once, with the
//! right values, and replay is idempotent.

use crate::*;

#[test]
fn replaying_real_logs_stores_each_distinct_event_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = replay(dir.path(), &real_log_files());
    assert!(out.status.success(), "{}", stderr(&out));
    // test-audit.log: 5 lines, lines 2 and 3 identical -> 4 (3 Events + GKE + AKS object);
    // test-kube-audit.log 1; platformlogs-kube.log 1; falco 25; audit2rbac 37.
    assert!(
        stdout(&out).contains("68 events stored, 1 duplicate skipped, 0 lines rejected"),
        "{}",
        stdout(&out)
    );
    assert_eq!(count(dir.path()), 68);

    // The acceptance query, with tie-breakers: 24 of audit2rbac's events share one second, and a
    // snapshot needs one order.
    let rows = query(
        dir.path(),
        "SELECT user_name, verb, resource, response_code FROM events \
         ORDER BY event_time, user_name, verb, resource, response_code",
    );
    insta::assert_json_snapshot!("real_logs_events", rows);

    // The exact acceptance query returns the same rows, in event_time order.
    let mut plain = query(
        dir.path(),
        "SELECT user_name, verb, resource, response_code FROM events ORDER BY event_time",
    );
    let mut sorted = rows.clone();
    let key = |v: &serde_json::Value| v.to_string();
    plain.sort_by_key(key);
    sorted.sort_by_key(key);
    assert_eq!(plain, sorted);

    // The GKE entry is mapped, the AKS records unwrapped with their cluster names.
    let gke = query(
        dir.path(),
        "SELECT cluster, user_name, verb, request_uri, source_ip, user_agent, response_code, decision \
         FROM events WHERE audit_id = '1234abcd'",
    );
    insta::assert_json_snapshot!("gke_entry", gke);
    let clusters = query(
        dir.path(),
        "SELECT cluster, count(*) AS n FROM events GROUP BY cluster ORDER BY cluster",
    );
    insta::assert_json_snapshot!("clusters", clusters);
}

#[test]
fn replaying_twice_leaves_the_count_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = real_log_files();
    assert!(replay(dir.path(), &files).status.success());
    let first = count(dir.path());
    let again = replay(dir.path(), &files);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("0 events stored, 69 duplicates skipped"),
        "{}",
        stdout(&again)
    );
    assert_eq!(count(dir.path()), first);
}

#[test]
fn shared_audit_ids_with_different_content_are_all_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(replay(dir.path(), &real_log_files()).status.success());
    let rows = query(
        dir.path(),
        "SELECT verb, resource, cluster FROM events WHERE audit_id = 'abcde12345' ORDER BY event_time",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
}

#[test]
fn old_events_fall_back_to_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = real_logs().join("audit2rbac/demo.log");
    assert!(replay(dir.path(), &[demo]).status.success());
    let rows = query(
        dir.path(),
        "SELECT count(*) AS n, min(event_time) AS first, count(impersonated_user) AS impersonated \
         FROM events",
    );
    assert_eq!(rows[0]["n"], 37);
    assert_eq!(rows[0]["impersonated"], 37);
    assert_eq!(rows[0]["first"], "2017-09-11T19:55:05Z");
}
