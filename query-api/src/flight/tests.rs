use super::*;
use auditlake_engine::QueryLimits;
use base64::Engine;

/// A caller who sees every cluster.
pub(super) fn alice() -> Who {
    Who {
        principal: Principal {
            name: "alice".into(),
            admin: false,
            clusters: None,
        },
        source: "127.0.0.1:1".into(),
    }
}

pub(super) fn service(dir: &std::path::Path) -> FlightSql {
    let engine = Arc::new(QueryEngine::open(dir, QueryLimits::default()).expect("engine"));
    FlightSql {
        catalog: engine.session(),
        engine,
        admin_engine: None,
        access: None,
        auth: Arc::new(
            Auth::with_tokens("alice query alice-token-0123456789\nbob query bob-token-0123456789")
                .expect("tokens"),
        ),
        slots: Arc::new(Semaphore::new(1)),
        queue_wait: Duration::from_millis(10),
        timeout: None,
        max_rows: None,
        prepared: Mutex::new(Prepared::default()),
        sql_info: sql_info(),
    }
}

#[test]
fn basic_credentials_are_read_padded_or_not() {
    // "bob:pg-test-token-0123456789" is 28 bytes: padded with "==".
    let padded = base64::engine::general_purpose::STANDARD.encode("bob:pg-test-token-0123456789");
    let unpadded = padded.trim_end_matches('=');
    for encoded in [padded.as_str(), unpadded] {
        assert_eq!(
            basic_credentials(encoded),
            Some(("bob".into(), "pg-test-token-0123456789".into()))
        );
    }
    assert_eq!(basic_credentials("not base64!"), None);
    let no_colon = base64::engine::general_purpose::STANDARD.encode("token-only");
    assert_eq!(basic_credentials(&no_colon), None);
}

#[test]
fn only_one_query_passes_the_check() {
    assert!(FlightSql::check("SELECT verb FROM events").is_ok());
    assert!(FlightSql::check("EXPLAIN SELECT 1").is_ok());
    for (sql, said) in [
        ("DROP TABLE events", "DROP is refused"),
        ("COPY events TO '/tmp/x.csv'", "COPY is refused"),
        (
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'",
            "CREATE is refused",
        ),
        ("SET datafusion.execution.batch_size = 1", "SET is refused"),
    ] {
        let refused = FlightSql::check(sql).expect_err(sql);
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{sql}");
        assert!(
            refused.message().starts_with(said),
            "{sql}: {}",
            refused.message()
        );
    }
    let two = FlightSql::check("SELECT 1; DROP TABLE events").expect_err("two statements");
    assert_eq!(two.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn a_prepared_statement_is_its_tokens_and_takes_its_parameters_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = service(dir.path());
    let planned = service
        .plan(&alice(), "SELECT $2::bigint + 1 AS a, $1 || 'x' AS b", &[])
        .await
        .expect("plan");
    assert_eq!(planned.parameters().expect("parameters").len(), 2);
    service.prepared.lock().expect("lock").statements.insert(
        b"h".to_vec(),
        Statement {
            owner: "alice".into(),
            sql: "SELECT 1".into(),
            parameters: Vec::new(),
            used: Instant::now(),
        },
    );
    assert!(service.prepared("alice", b"h").is_ok());
    let theirs = service.prepared("bob", b"h").err().expect("bob's");
    assert_eq!(theirs.code(), tonic::Code::NotFound);
    let gapped = service
        .plan(&alice(), "SELECT $2 AS b", &[])
        .await
        .expect("plan");
    assert!(gapped.parameters().is_err(), "$2 without $1");
}

#[tokio::test]
async fn a_query_waits_for_a_slot_and_is_refused_when_none_frees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = service(dir.path());
    let held = service.slot().await.expect("the one slot");
    let busy = service
        .run(&alice(), "SELECT 1", &[])
        .await
        .err()
        .expect("no slot");
    assert_eq!(busy.code(), tonic::Code::ResourceExhausted);
    drop(held);
    assert!(service.run(&alice(), "SELECT 1", &[]).await.is_ok());
}
