//! Every route, status code and error of the query API.

use std::time::Duration;

use auditlake_engine::QueryLimits;
use auditlake_query_api::Auth;

use tower::ServiceExt;

use crate::{TOKENS, get, json, query_request, sample_lake, send, state};

fn limits() -> QueryLimits {
    QueryLimits {
        max_rows: Some(10_000),
        timeout: Some(Duration::from_secs(30)),
        memory_bytes: 256 << 20,
        threads: None,
    }
}

#[tokio::test]
async fn query_answers_json_csv_and_arrow() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = state(dir.path(), limits(), Auth::disabled());
    let sql = "SELECT verb, count(*) AS n FROM events GROUP BY verb ORDER BY n DESC, verb";

    let (status, ctype, body) = send(&s, query_request(sql, None, None)).await;
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    let v = json(&body);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["columns"][0]["name"], "verb");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(v["row_count"], rows.len());
    let total: u64 = rows.iter().map(|r| r["n"].as_u64().expect("n")).sum();
    assert_eq!(total, 194, "every sample event is counted once");

    let (status, ctype, body) = send(&s, query_request(sql, Some("text/csv"), None)).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/csv"));
    let csv = String::from_utf8(body).expect("utf8");
    assert_eq!(csv.lines().next(), Some("verb,n"));
    assert_eq!(csv.lines().count(), rows.len() + 1);

    let (status, ctype, body) = send(
        &s,
        query_request(sql, Some("application/vnd.apache.arrow.stream"), None),
    )
    .await;
    assert_eq!(
        (status, ctype.as_str()),
        (200, "application/vnd.apache.arrow.stream")
    );
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).expect("ipc");
    let n: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(n, rows.len());
}

#[tokio::test]
async fn the_row_limit_truncates_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = state(
        dir.path(),
        QueryLimits {
            max_rows: Some(10),
            ..limits()
        },
        Auth::disabled(),
    );
    let (status, _, body) =
        send(&s, query_request("SELECT audit_id FROM events", None, None)).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(
        (v["row_count"].as_u64(), v["truncated"].as_bool()),
        (Some(10), Some(true))
    );
}

#[tokio::test]
async fn forbidden_statements_and_bad_sql_get_400_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = state(dir.path(), limits(), Auth::disabled());
    for (sql, says) in [
        ("COPY events TO '/tmp/out.csv'", "COPY"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "DDL",
        ),
        ("CREATE TABLE t AS SELECT 1", "DDL"),
        ("DROP TABLE events", "DDL"),
        ("INSERT INTO events SELECT * FROM events", "DML"),
        ("DELETE FROM events", "DML"),
        ("SET datafusion.execution.batch_size = 1", "SetVariable"),
        ("SELECT * FROM '/etc/passwd'", "not found"),
        ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet"),
        ("SELECT nope FROM events", "nope"),
        ("SELEC 1", "SELEC"),
    ] {
        let (status, _, body) = send(&s, query_request(sql, None, None)).await;
        let v = json(&body);
        assert_eq!(status, 400, "{sql}: {v}");
        let error = v["error"].as_str().expect("error");
        assert!(error.contains(says), "{sql}: {error}");
    }
    let bad = axum::http::Request::post("/v1/query")
        .body(axum::body::Body::from("{\"query\": 1}"))
        .expect("request");
    let (status, _, body) = send(&s, bad).await;
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("sql")
    );
}

#[tokio::test]
async fn runaway_queries_hit_the_time_and_memory_limits_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = state(
        dir.path(),
        QueryLimits {
            max_rows: Some(10_000),
            timeout: Some(Duration::from_secs(1)),
            memory_bytes: 16 << 20,
            threads: None,
        },
        Auth::disabled(),
    );
    let started = std::time::Instant::now();
    let (status, _, body) = send(
        &s,
        query_request(
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("time limit")
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped near the limit"
    );

    let (status, _, body) = send(
        &s,
        query_request(
            "SELECT array_agg(value) FROM generate_series(1, 50000000)",
            None,
            None,
        ),
    )
    .await;
    let error = json(&body)["error"].as_str().expect("error").to_string();
    assert_eq!(status, 400, "{error}");
    assert!(
        error.contains("Resources exhausted") || error.contains("memory"),
        "{error}"
    );

    let (status, _, body) = send(
        &s,
        query_request("SELECT count(*) AS n FROM events", None, None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["rows"][0]["n"], 194);
}

#[tokio::test]
async fn alerts_filter_and_rules_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = state(dir.path(), limits(), Auth::disabled());
    let (status, _, body) = send(&s, get("/v1/alerts?limit=10000", None)).await;
    assert_eq!(status, 200);
    let all = json(&body);
    let n = all["count"].as_u64().expect("count");
    assert!(n > 10, "the samples raise alerts");
    let times: Vec<&str> = all["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| a["event_time"].as_str().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let (_, _, body) = send(
        &s,
        get("/v1/alerts?rule=pod-exec-attach&severity=low", None),
    )
    .await;
    let exec = json(&body);
    assert!(exec["count"].as_u64().expect("count") > 0);
    assert!(
        exec["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .all(|a| a["rule_id"] == "pod-exec-attach")
    );

    let (_, _, body) = send(&s, get("/v1/alerts?category=exec&limit=2", None)).await;
    assert_eq!(json(&body)["count"], 2);
    let (_, _, body) = send(&s, get("/v1/alerts?since=2099-01-01", None)).await;
    assert_eq!(json(&body)["count"], 0);
    let (_, _, body) = send(&s, get("/v1/alerts?until=2000-01-01&cluster=default", None)).await;
    assert_eq!(json(&body)["count"], 0);
    for bad in [
        "/v1/alerts?since=yesterday",
        "/v1/alerts?limit=0",
        "/v1/alerts?colour=red",
    ] {
        let (status, _, body) = send(&s, get(bad, None)).await;
        assert_eq!(status, 400, "{bad}");
        assert!(json(&body)["error"].is_string());
    }

    let (status, _, body) = send(&s, get("/v1/rules", None)).await;
    assert_eq!(status, 200);
    let rules = json(&body);
    assert!(rules["count"].as_u64().expect("count") >= 90);
    let exec_rule = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["id"] == "pod-exec-attach")
        .expect("pod-exec-attach");
    assert_eq!(exec_rule["category"], "exec");
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = state(
        dir.path(),
        limits(),
        Auth::with_tokens(TOKENS).expect("tokens"),
    );
    let (status, _, _) = send(&s, get("/healthz", None)).await;
    assert_eq!(status, 200, "probes need no token");
    let (status, _, body) = send(&s, get("/readyz", None)).await;
    assert_eq!(
        (status, json(&body)["status"].as_str()),
        (200, Some("ready"))
    );
    let (status, _, _) = send(&s, get("/metrics", Some("admin-token-0123456789"))).await;
    assert_eq!(status, 503, "no recorder, no metrics");

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("auditlake_events_accepted_total").increment(3);
    });
    s.metrics = Some(recorder.handle());
    let (status, ctype, body) = send(&s, get("/metrics", Some("admin-token-0123456789"))).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain"));
    assert!(
        String::from_utf8(body)
            .expect("utf8")
            .contains("auditlake_events_accepted_total 3")
    );
    let (status, _, _) = send(&s, get("/metrics", Some("query-token-0123456789"))).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn queries_beyond_the_concurrency_limit_get_429() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = state(dir.path(), limits(), Auth::disabled());
    s.query_slots = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    s.queue_wait = Duration::from_millis(50);
    let response = auditlake_query_api::router(s)
        .oneshot(query_request("SELECT 1", None, None))
        .await
        .expect("response");
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii")),
        Some("5")
    );
}

#[tokio::test]
async fn readyz_is_503_while_the_writer_cannot_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("events")).expect("mkdir");
    std::fs::write(dir.path().join("events/date=2025-11-03"), b"in the way").expect("write");
    let service = std::sync::Arc::new(
        auditlake_engine::Service::start(dir.path(), None, Default::default()).expect("start"),
    );
    let mut s = state(dir.path(), limits(), Auth::disabled());
    s.service = Some(std::sync::Arc::clone(&service));
    let mut decoder = auditlake_schema::Decoder::new(None);
    decoder.decode(
        crate::event_json("2025-11-03T10:00:00Z").as_bytes(),
        &mut Vec::new(),
    );
    let reservation = service.try_reserve(100).expect("budget");
    service
        .store(decoder.finish(), reservation)
        .await
        .expect("durable");
    let (status, _, body) = send(&s, get("/readyz", None)).await;
    assert_eq!(status, 503);
    assert!(
        json(&body)["status"]
            .as_str()
            .expect("status")
            .contains("failed")
    );
    service.shutdown();
}

#[tokio::test]
async fn tokens_are_checked_per_scope() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = state(
        dir.path(),
        limits(),
        Auth::with_tokens(TOKENS).expect("tokens"),
    );
    let sql = "SELECT 1 AS one";
    let (status, _, body) = send(&s, query_request(sql, None, None)).await;
    assert_eq!(status, 401);
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("token")
    );
    let (status, _, _) = send(&s, query_request(sql, None, Some("not-a-token-at-all"))).await;
    assert_eq!(status, 401);
    let (status, _, body) = send(
        &s,
        query_request(sql, None, Some("ingest-token-0123456789")),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        json(&body)["error"]
            .as_str()
            .expect("error")
            .contains("query")
    );
    let (status, _, _) = send(&s, query_request(sql, None, Some("query-token-0123456789"))).await;
    assert_eq!(status, 200);
    let (status, _, _) = send(&s, query_request(sql, None, Some("admin-token-0123456789"))).await;
    assert_eq!(status, 200, "admin implies query");
    let (status, _, _) = send(&s, get("/v1/alerts", Some("ingest-token-0123456789"))).await;
    assert_eq!(status, 403);
    let (status, _, _) = send(&s, get("/v1/rules", None)).await;
    assert_eq!(status, 401);
}
