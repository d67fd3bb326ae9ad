//! Arrow Flight SQL (`serve --flight-listen`) with a client no one here wrote: Python's
//! `adbc-driver-flightsql` (the ADBC driver, in Go, behind pandas and polars), against a server
//! loaded with `sample-logs/`.

use std::process::{Command, Output};

use crate::pg::{INGEST_TOKEN, SqlServer, TOKEN, test_certificates};
use crate::{python, stderr, stdout};

impl SqlServer {
    /// An ADBC script with `uri` (this server's Flight SQL address, `grpc://` or given
    /// `scheme`), `token` (alice's), `ingest_token` and `flight_sql` (the DB-API module) in its
    /// globals; its last line printed is JSON.
    fn adbc(&self, scheme: &str, script: &str) -> serde_json::Value {
        let prelude = format!(
            "import json\nimport adbc_driver_flightsql.dbapi as flight_sql\n\
             from adbc_driver_flightsql import DatabaseOptions\n\
             uri = '{scheme}://127.0.0.1:{}'\ntoken = '{TOKEN}'\n\
             ingest_token = '{INGEST_TOKEN}'\n",
            self.flight_port
        );
        let out: Output = Command::new(python())
            .args(["-c", &format!("{prelude}{script}")])
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}\n{}",
            stderr(&out),
            self.server.log()
        );
        let text = stdout(&out);
        serde_json::from_str(text.lines().last().unwrap_or_default()).expect("json")
    }
}

/// Reads a query into pyarrow then pandas, and one into polars, lists the tables and reads a table's columns, runs a
/// prepared statement with a bound parameter, and is refused what changes data, a wrong token and
/// a token without the query scope.
#[test]
fn adbc_reads_a_query_into_pandas_lists_the_tables_and_is_refused_changes_and_wrong_tokens() {
    let server = SqlServer::start();
    let got = server.adbc(
        "grpc",
        r#"
bearer = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
with flight_sql.connect(uri, db_kwargs=bearer) as conn:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT audit_id, event_time, verb, response_code, source_ips FROM events "
            "ORDER BY event_time, audit_id"
        )
        table = cur.fetch_arrow_table()
    frame = table.to_pandas()
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = sorted(
        t["table_name"]
        for c in objects
        for s in (c["catalog_db_schemas"] or [])
        for t in (s["db_schema_tables"] or [])
    )
    columns = conn.adbc_get_table_schema("events").names
    import polars
    by_polars = polars.read_database(
        "SELECT verb, count(*) AS n FROM events GROUP BY verb ORDER BY verb", connection=conn
    )
    info = conn.adbc_get_info()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM events WHERE verb = $1", parameters=("get",))
        n_get = cur.fetchone()[0]
    refused = []
    for statement in [
        "DROP TABLE events",
        "COPY events TO '/tmp/stolen.csv'",
        "SET datafusion.execution.batch_size = 1",
        "INSERT INTO events (audit_id) VALUES ('x')",
    ]:
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                cur.fetchall()
            refused.append("ran: " + statement)
        except flight_sql.Error as e:
            refused.append(str(e))

def refusal(db_kwargs):
    try:
        with flight_sql.connect(uri, db_kwargs=db_kwargs) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        return "accepted"
    except flight_sql.Error as e:
        return str(e)

# ADBC's username and password: a handshake whose answer is the bearer token.
with flight_sql.connect(uri, db_kwargs={"username": "alice", "password": token}) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        by_password = cur.fetchone()[0]

print(json.dumps({
    "rows": table.num_rows,
    "types": {f.name: str(f.type) for f in table.schema},
    "pandas": {c: str(t) for c, t in frame.dtypes.items()},
    "first": [frame["audit_id"][0], frame["event_time"][0].isoformat()],
    "tables": tables,
    "vendor": info.get("vendor_name"),
    "read_only": info.get("vendor_read_only"),
    "columns": columns,
    "n_get": n_get,
    "polars": dict(zip(by_polars["verb"].to_list(), by_polars["n"].to_list())),
    "by_password": by_password,
    "refused": refused,
    "wrong_bearer": refusal({DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer not-the-token-0000"}),
    "wrong_password": refusal({"username": "alice", "password": "not-the-token-0000"}),
    "renamed": refusal({"username": "bob", "password": token}),
    "ingest_only": refusal({DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {ingest_token}"}),
}))
"#,
    );
    let data = server.data_dir();
    let total = crate::count(&data);
    assert_eq!(got["rows"], total, "{got}");
    assert_eq!(got["by_password"], total, "{got}");
    assert!(
        got["types"]["event_time"]
            .as_str()
            .unwrap_or_default()
            .starts_with("timestamp"),
        "{got}"
    );
    assert!(
        got["types"]["source_ips"]
            .as_str()
            .unwrap_or_default()
            .starts_with("list"),
        "{got}"
    );
    assert!(
        got["pandas"]["event_time"]
            .as_str()
            .unwrap_or_default()
            .starts_with("datetime64"),
        "{got}"
    );
    let ours = crate::query(
        &data,
        "SELECT audit_id, (SELECT count(*) FROM events WHERE verb = 'get') AS n_get FROM events \
         ORDER BY event_time, audit_id LIMIT 1",
    );
    assert_eq!(got["first"][0], ours[0]["audit_id"]);
    assert_eq!(got["n_get"], ours[0]["n_get"]);
    assert_eq!(got["polars"]["get"], ours[0]["n_get"], "{got}");
    let tables: Vec<&str> = got["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tables.contains(&"events") && tables.contains(&"alerts"),
        "{tables:?}"
    );
    assert_eq!(got["vendor"], "auditlake", "{got}");
    let columns = got["columns"].as_array().expect("columns");
    for column in ["audit_id", "event_time", "user_name", "source_ips"] {
        assert!(columns.iter().any(|c| c == column), "{column}: {columns:?}");
    }
    let refused = got["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 4);
    for r in refused {
        let r = r.as_str().unwrap_or_default();
        assert!(r.contains("read-only"), "{r}");
    }
    for (case, word) in [
        ("wrong_bearer", "invalid token"),
        ("wrong_password", "invalid token"),
        ("renamed", "invalid token"),
        ("ingest_only", "query scope"),
    ] {
        let why = got[case].as_str().unwrap_or_default();
        assert!(why.contains(word), "{case}: {why}");
    }
    assert_eq!(crate::count(&data), total, "nothing changed");
    let log = server.server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("flight sql: query") && l.contains("alice") && l.contains("DROP")),
        "{log}"
    );
}

/// Flight's own row limit cuts what a query streams, apart from HTTP's.
#[test]
fn flight_streams_at_most_its_row_limit() {
    let server = SqlServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--flight-max-rows", "7", "--query-max-rows", "3"],
    );
    let got = server.adbc(
        "grpc",
        r#"
bearer = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
with flight_sql.connect(uri, db_kwargs=bearer) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM events")
        rows = cur.fetch_arrow_table().num_rows
print(json.dumps({"rows": rows}))
"#,
    );
    assert_eq!(got["rows"], 7, "{got}");
}

#[test]
fn adbc_connects_over_tls_verified_against_the_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, ca) = test_certificates(dir.path());
    let server = SqlServer::start_with(dir, &["--tls-cert", &cert, "--tls-key", &key]);
    let script = format!(
        r#"
ca = open({ca:?}).read()
def count(roots):
    options = {{DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {{token}}"}}
    if roots:
        options[DatabaseOptions.TLS_ROOT_CERTS.value] = roots
    try:
        with flight_sql.connect(uri, db_kwargs=options) as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM events")
                return cur.fetchone()[0]
    except flight_sql.Error as e:
        return str(e)
print(json.dumps({{"verified": count(ca), "unknown_ca": count(None)}}))
"#
    );
    let got = server.adbc("grpc+tls", &script);
    assert_eq!(got["verified"], crate::count(&server.data_dir()), "{got}");
    assert!(got["unknown_ca"].is_string(), "{got}");
}

/// Injected: 300 clients on each SQL listener that connect and send nothing (more than either
/// serves at once). Each is dropped once `--header-timeout` passes, its descriptor freed, and
/// real clients are served meanwhile and after.
#[test]
fn idle_clients_of_the_sql_listeners_are_dropped_and_real_ones_served() {
    use std::io::Read;
    let server = SqlServer::start_with(
        tempfile::tempdir().expect("tempdir"),
        &["--header-timeout", "1s"],
    );
    let pid = server.server.pid();
    let baseline = crate::faults::descriptors(pid);
    let started = std::time::Instant::now();
    let mut idle = Vec::new();
    for port in [server.port, server.flight_port] {
        for _ in 0..300 {
            let socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .expect("timeout");
            idle.push(socket);
        }
    }
    let held = crate::faults::descriptors(pid);
    for mut socket in idle {
        // Read to the end: nothing but (for HTTP/2) the server's own settings, then closed.
        let mut sent = Vec::new();
        match socket.read_to_end(&mut sent) {
            Ok(_) => {}
            Err(e) => assert!(
                matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
                "an idle client was kept: {e}"
            ),
        }
        assert!(
            sent.len() < 256,
            "{} bytes sent to an idle client",
            sent.len()
        );
    }
    let dropped = started.elapsed();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let after = crate::faults::descriptors(pid);
    println!(
        "600 idle SQL clients: {baseline} descriptors before, {held} while they were connected, \
         {after} after; all dropped {:.1} s after connecting",
        dropped.as_secs_f64()
    );
    assert!(after < baseline + 20, "{after} descriptors left open");
    let out = server.psql("alice", TOKEN, "SELECT count(*) FROM events");
    assert!(out.status.success(), "{}", stderr(&out));
    let got = server.adbc(
        "grpc",
        r#"
bearer = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
with flight_sql.connect(uri, db_kwargs=bearer) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM events")
        rows = cur.fetch_arrow_table().to_pylist()
print(json.dumps({"n": rows[0]["n"]}))
"#,
    );
    assert!(got["n"].as_i64().is_some_and(|n| n > 0), "{got}");
}
