//! Tenant isolation: a token limited to clusters (`NAME SCOPES TOKEN clusters=a`) sees only their
//! rows through every query path (SQL over HTTP whatever its shape, the alert and event
//! endpoints the console calls, triage, the PostgreSQL protocol, Arrow Flight SQL), and posts
//! events only for them.

use std::process::Command;

use crate::pg::{listener_port, psql_binary};
use crate::serve::{Server, client, event_list};
use crate::*;

const TENANT: &str = "tenant-a-token-0123456789";
const ADMIN: &str = "admin-token-0123456789abc";
const B_INGEST: &str = "b-apiserver-token-0123456789";

struct Tenants {
    server: Server,
    pg_port: u16,
    flight_port: u16,
    dir: tempfile::TempDir,
}

/// The sample logs replayed twice, as cluster `a` and as cluster `b`, served with a token of
/// `a`, an admin and an ingest token of `b`.
fn start() -> Tenants {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    for cluster in ["a", "b"] {
        let mut args = vec!["replay".to_string(), "--cluster".into(), cluster.into()];
        args.extend(sample_log_files().iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = auditlake(&data, &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let tokens = format!(
        "tenant query,triage {TENANT} clusters=a\nops admin {ADMIN}\n\
         b-apiserver ingest {B_INGEST} clusters=b"
    );
    let exceptions = dir.path().join("exceptions.yaml");
    let exceptions = exceptions.display().to_string();
    let server = Server::start(
        &data,
        &[
            "--pg-listen",
            "127.0.0.1:0",
            "--flight-listen",
            "127.0.0.1:0",
            "--exceptions-file",
            &exceptions,
        ],
        &[("AUDITLAKE_TOKENS", tokens.as_str())],
    );
    let pg_port = listener_port(&server, "auditlake: postgres protocol on ");
    let flight_port = listener_port(&server, "auditlake: flight sql on ");
    Tenants {
        server,
        pg_port,
        flight_port,
        dir,
    }
}

impl Tenants {
    async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let response = client()
            .get(format!("{}{path}", self.server.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        (
            response.status().as_u16(),
            response.json().await.expect("json"),
        )
    }

    async fn sql(&self, token: &str, sql: &str) -> (u16, serde_json::Value) {
        let response = client()
            .post(format!("{}/v1/query", self.server.url))
            .bearer_auth(token)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .expect("query");
        (
            response.status().as_u16(),
            response.json().await.expect("json"),
        )
    }

    /// The rows of `sql` for `token`, which must succeed.
    async fn rows(&self, token: &str, sql: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.sql(token, sql).await;
        assert_eq!(status, 200, "{sql}: {body}");
        body["rows"].as_array().expect("rows").clone()
    }
}

impl Tenants {
    /// `psql` as the tenant running `sql`, unaligned.
    fn psql(&self, sql: &str) -> std::process::Output {
        Command::new(psql_binary())
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .arg(format!(
                "postgresql://tenant@127.0.0.1:{}/auditlake?sslmode=disable",
                self.pg_port
            ))
            .args(["-c", sql])
            .env("PGPASSWORD", TENANT)
            .output()
            .expect("psql runs")
    }

    /// A Python script run with `conn`, an ADBC Flight SQL connection as the tenant, open; its
    /// output. `flight_sql` is the DB-API module.
    fn adbc(&self, body: &str) -> std::process::Output {
        let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
        let script = format!(
            "import json\nimport adbc_driver_flightsql.dbapi as flight_sql\n\
             from adbc_driver_flightsql import DatabaseOptions\n\
             bearer = {{DatabaseOptions.AUTHORIZATION_HEADER.value: \"Bearer {TENANT}\"}}\n\
             with flight_sql.connect(\"grpc://127.0.0.1:{}\", db_kwargs=bearer) as conn:\n\
             {indented}",
            self.flight_port
        );
        Command::new(python())
            .args(["-c", &script])
            .output()
            .expect("python runs")
    }
}

/// The distinct values of `column` in `rows`.
fn values(rows: &[serde_json::Value], column: &str) -> Vec<String> {
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| r[column].as_str().unwrap_or("?").to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[tokio::test]
async fn a_cluster_limited_token_sees_only_its_clusters_through_every_path() {
    let t = start();
    let count = |rows: &[serde_json::Value]| rows[0]["n"].as_i64().expect("n");

    // The admin sees both clusters; the tenant exactly cluster a's rows.
    let all = t
        .rows(
            ADMIN,
            "SELECT cluster, count(*) AS n FROM events GROUP BY cluster",
        )
        .await;
    assert_eq!(values(&all, "cluster"), ["a", "b"]);
    let of_a = count(
        &t.rows(
            ADMIN,
            "SELECT count(*) AS n FROM events WHERE cluster = 'a'",
        )
        .await,
    );
    let alerts_of_a = count(
        &t.rows(
            ADMIN,
            "SELECT count(*) AS n FROM alerts WHERE cluster = 'a'",
        )
        .await,
    );
    assert!(of_a > 0 && alerts_of_a > 0);
    assert_eq!(
        count(&t.rows(TENANT, "SELECT count(*) AS n FROM events").await),
        of_a
    );
    assert_eq!(
        count(&t.rows(TENANT, "SELECT count(*) AS n FROM alerts").await),
        alerts_of_a
    );

    // Whatever the query's shape, no row of b.
    for sql in [
        "SELECT DISTINCT cluster FROM events",
        "SELECT DISTINCT e.cluster FROM events e JOIN alerts a ON e.audit_id = a.audit_id",
        "SELECT DISTINCT a.cluster FROM alerts a LEFT JOIN events e ON e.cluster = 'b'",
        "SELECT cluster FROM events UNION SELECT cluster FROM alerts",
        "SELECT cluster FROM events UNION ALL SELECT cluster FROM alerts WHERE cluster <> 'a'",
        "WITH x AS (SELECT * FROM events WHERE cluster IN ('a', 'b')) SELECT DISTINCT cluster FROM x",
        "WITH RECURSIVE r(c) AS (SELECT cluster FROM events) SELECT DISTINCT c AS cluster FROM r",
        "SELECT DISTINCT cluster FROM (SELECT * FROM (SELECT * FROM alerts) s) t",
        "SELECT cluster FROM events WHERE audit_id IN (SELECT audit_id FROM events WHERE cluster = 'b')",
        "SELECT cluster FROM events WHERE EXISTS (SELECT 1 FROM alerts WHERE alerts.cluster = 'b')",
        "SELECT (SELECT max(cluster) FROM events) AS cluster",
        "SELECT cluster FROM events ORDER BY cluster DESC LIMIT 5",
        "SELECT cluster, count(*) FROM events GROUP BY ROLLUP (cluster)",
    ] {
        let rows = t.rows(TENANT, sql).await;
        let seen: Vec<String> = values(&rows, "cluster")
            .into_iter()
            .filter(|c| c != "?")
            .collect();
        assert!(
            seen.iter().all(|c| c == "a"),
            "{sql} showed {seen:?}: {rows:?}"
        );
    }
    assert_eq!(
        count(
            &t.rows(
                TENANT,
                "SELECT count(*) AS n FROM events WHERE cluster = 'b'"
            )
            .await
        ),
        0
    );

    // The catalog lists the two tables and nothing of anyone else's (no triage log).
    let tables = t
        .rows(
            TENANT,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await;
    assert_eq!(values(&tables, "table_name"), ["alerts", "events"]);

    // No way to the files themselves.
    let file = std::fs::read_dir(t.dir.path().join("data/events"))
        .expect("events")
        .flatten()
        .find(|d| d.file_name().to_string_lossy().starts_with("date="))
        .expect("a day")
        .path();
    let file = file.display();
    for sql in [
        format!("SELECT * FROM '{file}'"),
        format!("SELECT * FROM read_parquet('{file}')"),
        format!("CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{file}'"),
        "SELECT * FROM triage_log".to_string(),
    ] {
        let (status, body) = t.sql(TENANT, &sql).await;
        assert!((400..500).contains(&status), "{sql}: {status} {body}");
    }

    // The endpoints the console calls.
    let (status, alerts) = t.get(TENANT, "/v1/alerts?limit=1000").await;
    assert_eq!(status, 200, "{alerts}");
    let listed = alerts["alerts"].as_array().expect("alerts");
    assert_eq!(listed.len() as i64, alerts_of_a);
    assert_eq!(values(listed, "cluster"), ["a"]);
    let (_, of_b) = t.get(TENANT, "/v1/alerts?cluster=b").await;
    assert_eq!(of_b["alerts"].as_array().expect("alerts").len(), 0);
    let (status, events) = t.get(TENANT, "/v1/events?limit=5000").await;
    assert_eq!(status, 200, "{events}");
    assert_eq!(
        events["events"].as_array().expect("events").len() as i64,
        of_a.min(5000)
    );
    let facet = events["facets"]["cluster"].to_string();
    assert!(
        facet.contains("\"a\"") && !facet.contains("\"b\""),
        "{facet}"
    );
    let (_, events_of_b) = t.get(TENANT, "/v1/events?cluster=b").await;
    assert_eq!(events_of_b["events"].as_array().expect("events").len(), 0);
    let (status, summary) = t.get(TENANT, "/v1/alerts/summary").await;
    assert_eq!(status, 200, "{summary}");
    assert!(
        !summary.to_string().contains("\"b\""),
        "the summary counts b: {summary}"
    );
    let (_, status_view) = t.get(TENANT, "/v1/status").await;
    assert_eq!(status_view["metrics"], serde_json::json!({}));

    // Another cluster's alert does not exist for the tenant: not readable, not triaged.
    let b_alert = t
        .rows(
            ADMIN,
            "SELECT alert_id FROM alerts WHERE cluster = 'b' LIMIT 1",
        )
        .await[0]["alert_id"]
        .as_str()
        .expect("id")
        .to_string();
    let a_alert = listed[0]["alert_id"].as_str().expect("id").to_string();
    assert_eq!(t.get(TENANT, &format!("/v1/alerts/{b_alert}")).await.0, 404);
    assert_eq!(t.get(ADMIN, &format!("/v1/alerts/{b_alert}")).await.0, 200);
    let patch = |id: String| {
        client()
            .patch(format!("{}/v1/alerts/{id}", t.server.url))
            .bearer_auth(TENANT)
            .json(&serde_json::json!({"status": "acknowledged"}))
            .send()
    };
    assert_eq!(patch(b_alert.clone()).await.expect("patch").status(), 404);
    assert_eq!(patch(a_alert.clone()).await.expect("patch").status(), 200);

    // An exception from a false positive silences the rule in the tenant's cluster only.
    let except = |id: &str| {
        client()
            .post(format!(
                "{}/v1/alerts/{id}/exception?fields=user_name",
                t.server.url
            ))
            .bearer_auth(TENANT)
            .send()
    };
    assert_eq!(except(&b_alert).await.expect("post").status(), 404);
    let added: serde_json::Value = except(&a_alert)
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(
        added["exception"]["fields"],
        serde_json::json!(["user_name", "cluster"]),
        "{added}"
    );
    assert_eq!(added["exception"]["values"][0][1], "a", "{added}");

    // b's API server posts for b only.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut e = event("posted-by-b");
    e["requestReceivedTimestamp"] = now.clone().into();
    e["stageTimestamp"] = now.into();
    for (path, want) in [
        ("/v1/webhook/a", 403),
        ("/v1/webhook", 403),
        ("/v1/webhook/b", 200),
    ] {
        let response = client()
            .post(format!("{}{path}", t.server.url))
            .bearer_auth(B_INGEST)
            .body(event_list(std::slice::from_ref(&e)))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status().as_u16(), want, "{path}");
    }
    assert_eq!(
        count(
            &t.rows(
                TENANT,
                "SELECT count(*) AS n FROM events WHERE audit_id = 'posted-by-b'"
            )
            .await
        ),
        0
    );

    // The PostgreSQL protocol, as psql runs it.
    let psql = |sql: &str| {
        let out = t.psql(sql);
        assert!(out.status.success(), "{sql}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(
        psql("SELECT DISTINCT cluster FROM events UNION SELECT cluster FROM alerts").trim(),
        "a"
    );
    assert_eq!(psql("SELECT count(*) FROM events").trim(), of_a.to_string());
    let listed_tables = psql(r"\dt");
    assert!(
        !listed_tables.contains("triage"),
        "psql lists the triage tables: {listed_tables}"
    );

    // Arrow Flight SQL, through the ADBC driver (prepared statements plan with the view too).
    let out = t.adbc(
        r#"with conn.cursor() as cur:
    cur.execute("SELECT DISTINCT cluster FROM events UNION SELECT cluster FROM alerts")
    clusters = sorted(r[0] for r in cur.fetchall())
    cur.execute("SELECT count(*) FROM events WHERE cluster = $1", parameters=("b",))
    of_b = cur.fetchone()[0]
objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
tables = sorted(
    t["table_name"]
    for c in objects
    for s in (c["catalog_db_schemas"] or [])
    for t in (s["db_schema_tables"] or [])
)
print(json.dumps({"clusters": clusters, "of_b": of_b, "tables": tables}))"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap_or_default()).expect("json");
    assert_eq!(got["clusters"], serde_json::json!(["a"]), "{got}");
    assert_eq!(got["of_b"], 0, "{got}");
    assert!(!got["tables"].to_string().contains("triage"), "{got}");
}

#[test]
fn a_token_file_with_bad_cluster_limits_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (line, says) in [
        ("x query 0123456789abcdef0123 clusters=", "cluster name"),
        ("x query 0123456789abcdef0123 clusters=a/b", "cluster name"),
        ("x query 0123456789abcdef0123 cluster=a", "clusters=a,b"),
        ("x admin 0123456789abcdef0123 clusters=a", "admin"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_auditlake"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("AUDITLAKE_TOKENS", line)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{line}");
        assert!(stderr(&out).contains(says), "{line}: {}", stderr(&out));
    }
}

#[tokio::test]
async fn every_call_is_in_the_access_log_which_only_admins_read() {
    let t = start();
    let c = client();
    // Calls of every kind: a query, an alert listing, a triage change with a note, a refused
    // token, a non-admin's attempt at the access log, and the same over the PostgreSQL protocol.
    assert_eq!(
        t.sql(TENANT, "SELECT count(*) AS n FROM events").await.0,
        200
    );
    assert_eq!(t.get(TENANT, "/v1/alerts?severity=high").await.0, 200);
    let alert = t.rows(TENANT, "SELECT alert_id FROM alerts LIMIT 1").await[0]["alert_id"]
        .as_str()
        .expect("id")
        .to_string();
    let note = "a-note-that-is-nobodys-business";
    let patched = c
        .patch(format!("{}/v1/alerts/{alert}", t.server.url))
        .bearer_auth(TENANT)
        .json(&serde_json::json!({"status": "acknowledged", "note": note}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    assert_eq!(t.get("not-a-token-at-all-0123", "/v1/alerts").await.0, 401);
    let (status, refused) = t.sql(TENANT, "SELECT * FROM access_log").await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused["error"].as_str().expect("error").contains("admin"));
    let (status, _) = t
        .sql(TENANT, "WITH x AS (SELECT 1) SELECT * FROM x, access_log")
        .await;
    assert_eq!(status, 403);
    let out = t.psql("SELECT token FROM access_log");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("admin"), "{}", stderr(&out));

    let out = t.adbc(
        r#"with conn.cursor() as cur:
    cur.execute("SELECT 42 AS answer")
    assert cur.fetchone()[0] == 42
    try:
        cur.execute("SELECT * FROM access_log")
        raise SystemExit("a tenant read the access log")
    except flight_sql.Error as e:
        assert "admin" in str(e), e"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The admin reads them all back, in order, with the SQL and the outcomes.
    let rows = t
        .rows(
            ADMIN,
            "SELECT token, protocol, action, sql, status, outcome, source FROM access_log \
             ORDER BY time",
        )
        .await;
    let seen: Vec<(String, String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["token"].as_str().unwrap_or("").to_string(),
                r["protocol"].as_str().unwrap_or("").to_string(),
                r["action"].as_str().unwrap_or("").to_string(),
                r["status"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let has = |token: &str, protocol: &str, action: &str, status: i64| {
        seen.iter().any(|(t, p, a, s)| {
            t == token && p == protocol && a.starts_with(action) && *s == status
        })
    };
    assert!(has("tenant", "http", "POST /v1/query", 200), "{seen:?}");
    assert!(
        has("tenant", "http", "GET /v1/alerts?severity=high", 200),
        "{seen:?}"
    );
    assert!(
        has("tenant", "http", &format!("PATCH /v1/alerts/{alert}"), 200),
        "{seen:?}"
    );
    assert!(has("-", "http", "GET /v1/alerts", 401), "{seen:?}");
    assert!(has("tenant", "http", "POST /v1/query", 403), "{seen:?}");
    assert!(has("tenant", "postgres", "query", 403), "{seen:?}");
    assert!(has("tenant", "flight", "query", 200), "{seen:?}");
    assert!(has("tenant", "flight", "query", 403), "{seen:?}");
    let first = &rows[0];
    assert_eq!(first["sql"], "SELECT count(*) AS n FROM events");
    assert!(
        first["source"]
            .as_str()
            .expect("source")
            .starts_with("127.0.0.1:")
    );
    assert!(
        rows.iter().any(|r| r["sql"] == "SELECT * FROM access_log"
            && r["outcome"].as_str().unwrap_or("").contains("admin")),
        "{rows:?}"
    );

    // It is kept append-only: no statement changes it, and it never holds a token or a body.
    for sql in [
        "DELETE FROM access_log",
        "DROP TABLE access_log",
        "INSERT INTO access_log SELECT * FROM access_log",
    ] {
        assert_eq!(t.sql(ADMIN, sql).await.0, 400, "{sql}");
    }
    // Whoever holds the data directory reads it from the command line too.
    let counted = query(
        &t.dir.path().join("data"),
        "SELECT count(*) AS n FROM access_log",
    );
    assert!(counted[0]["n"].as_u64().expect("n") as usize >= rows.len());
    let text = std::fs::read_to_string(t.dir.path().join("data/access/log.jsonl")).expect("log");
    for secret in [TENANT, ADMIN, note] {
        assert!(!text.contains(secret), "the access log holds {secret}");
    }
}
