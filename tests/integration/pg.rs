//! The PostgreSQL wire protocol (`serve --pg-listen`) with clients no one here wrote: Debian's
//! `psql` and Python's `psycopg`, against a server loaded with `sample-logs/`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::serve::Server;
use crate::{python, sample_log_files, stderr, stdout};

pub(crate) const TOKEN: &str = "pg-test-token-0123456789";
pub(crate) const INGEST_TOKEN: &str = "ingest-only-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-for-metrics-0123456789";

/// `psql`: `AUDITLAKE_PSQL`, else Debian's.
pub(crate) fn psql_binary() -> PathBuf {
    let path =
        std::env::var_os("AUDITLAKE_PSQL").map_or_else(|| "/usr/bin/psql".into(), PathBuf::from);
    assert!(
        path.exists(),
        "psql is not at {}: run `bash scripts/test`, which installs postgresql-client",
        path.display()
    );
    path
}

/// A server over the sample logs, speaking the PostgreSQL protocol and Arrow Flight SQL too,
/// with three tokens: `alice` may query, `apiserver` only ingest, `ops` do anything.
pub(crate) struct SqlServer {
    pub(crate) server: Server,
    /// The PostgreSQL protocol's port.
    pub(crate) port: u16,
    /// Arrow Flight SQL's port.
    pub(crate) flight_port: u16,
    _dir: tempfile::TempDir,
}

impl SqlServer {
    pub(crate) fn start() -> SqlServer {
        Self::start_with(tempfile::tempdir().expect("tempdir"), &[])
    }

    /// Like [`SqlServer::start`], with the data directory in `dir` and more `serve` arguments.
    pub(crate) fn start_with(dir: tempfile::TempDir, args: &[&str]) -> SqlServer {
        let out = crate::replay(&dir.path().join("data"), &sample_log_files());
        assert!(out.status.success(), "{}", stderr(&out));
        let tokens = format!(
            "alice query {TOKEN}\napiserver ingest {INGEST_TOKEN}\nops admin {ADMIN_TOKEN}"
        );
        let mut all = vec![
            "--pg-listen",
            "127.0.0.1:0",
            "--flight-listen",
            "127.0.0.1:0",
        ];
        all.extend_from_slice(args);
        let server = Server::start(
            &dir.path().join("data"),
            &all,
            &[("AUDITLAKE_TOKENS", tokens.as_str())],
        );
        let port = listener_port(&server, "auditlake: postgres protocol on ");
        let flight_port = listener_port(&server, "auditlake: flight sql on ");
        SqlServer {
            server,
            port,
            flight_port,
            _dir: dir,
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// `psql` as `user` with `password`, running `command` unaligned (`|`-separated).
    pub(crate) fn psql(&self, user: &str, password: &str, command: &str) -> Output {
        self.psql_with(user, password, "sslmode=disable", command)
    }

    /// Like [`SqlServer::psql`], with `ssl` (libpq's `sslmode=...&sslrootcert=...`).
    fn psql_with(&self, user: &str, password: &str, ssl: &str, command: &str) -> Output {
        Command::new(psql_binary())
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                &format!(
                    "postgresql://{user}@127.0.0.1:{}/auditlake?{ssl}",
                    self.port
                ),
                "-c",
                command,
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql runs")
    }

    /// A psycopg script with `conninfo` (this server, as alice) in its globals.
    fn psycopg(&self, script: &str) -> Output {
        let prelude = format!(
            "import psycopg\nconninfo = 'host=127.0.0.1 port={} dbname=auditlake user=alice \
             password={TOKEN} sslmode=disable connect_timeout=10'\n",
            self.port
        );
        Command::new(python())
            .args(["-c", &format!("{prelude}{script}")])
            .output()
            .expect("python runs")
    }
}

/// The port `server` printed after `prefix` (`auditlake: ... on 127.0.0.1:PORT`).
pub(crate) fn listener_port(server: &Server, prefix: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find_map(|l| l.strip_prefix(prefix)) {
            return line
                .rsplit(':')
                .next()
                .expect("port")
                .parse()
                .expect("port");
        }
        assert!(
            Instant::now() < deadline,
            "no {prefix:?} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` it signed, written to `dir`:
/// the paths of the certificate, its key and the CA's certificate.
pub(crate) fn test_certificates(dir: &std::path::Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Its own name: OpenSSL takes a certificate whose issuer is its subject for self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "auditlake test CA");
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("server cert");
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    (
        write("server.pem", cert.pem()),
        write("server.key", key.serialize_pem()),
        write("ca.pem", ca.pem()),
    )
}

#[test]
fn psql_describes_the_tables_and_runs_a_group_by_as_auditlake_query_does() {
    let pg = SqlServer::start();
    let described = pg.psql("alice", TOKEN, r"\d events");
    assert!(
        described.status.success(),
        "{}\n{}",
        stderr(&described),
        pg.server.log()
    );
    let text = stdout(&described);
    for column in [
        "audit_id",
        "event_time",
        "user_name",
        "response_code",
        "source_ips",
    ] {
        assert!(
            text.contains(column),
            "{column} missing from \\d events:\n{text}"
        );
    }
    let tables = pg.psql("alice", TOKEN, r"\dt");
    assert!(tables.status.success(), "{}", stderr(&tables));
    assert!(
        stdout(&tables).contains("events") && stdout(&tables).contains("alerts"),
        "{}",
        stdout(&tables)
    );

    let sql = "SELECT verb, count(*) AS n FROM events GROUP BY verb ORDER BY n DESC, verb";
    let grouped = pg.psql("alice", TOKEN, sql);
    assert!(grouped.status.success(), "{}", stderr(&grouped));
    let theirs: Vec<String> = stdout(&grouped).lines().map(str::to_string).collect();
    let ours: Vec<String> = crate::query(&pg.data_dir(), sql)
        .iter()
        .map(|r| format!("{}|{}", r["verb"].as_str().unwrap_or_default(), r["n"]))
        .collect();
    assert!(ours.len() > 3, "{ours:?}");
    assert_eq!(theirs, ours);
}

#[test]
fn psql_is_refused_a_wrong_password_a_token_without_query_and_every_change() {
    let pg = SqlServer::start();
    let wrong = pg.psql("alice", "not-the-token-at-all-0000", "SELECT 1");
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).to_lowercase().contains("password"),
        "{}",
        stderr(&wrong)
    );
    // The right token under another name is refused too.
    let renamed = pg.psql("bob", TOKEN, "SELECT 1");
    assert!(!renamed.status.success(), "{}", stdout(&renamed));
    let ingest = pg.psql("apiserver", INGEST_TOKEN, "SELECT 1");
    assert!(!ingest.status.success());
    assert!(
        stderr(&ingest).contains("query scope"),
        "{}",
        stderr(&ingest)
    );

    for statement in [
        "DROP TABLE events",
        "COPY events TO '/tmp/stolen.csv'",
        "SET datafusion.execution.batch_size = 1",
        "CREATE TABLE t AS SELECT * FROM events",
        "INSERT INTO events (audit_id) VALUES ('x')",
    ] {
        let refused = pg.psql("alice", TOKEN, statement);
        assert!(
            !refused.status.success(),
            "{statement} ran: {}",
            stdout(&refused)
        );
        assert!(
            stderr(&refused).contains("read-only"),
            "{statement}: {}",
            stderr(&refused)
        );
    }
    // A statement DataFusion's planner panics on (found by fuzzing) is an error, and the
    // server goes on.
    let panicky = pg.psql(
        "alice",
        TOKEN,
        "SELECT (SELECT FROM alerts) AS last, count(DISTINCT audit_id) FROM events",
    );
    assert!(!panicky.status.success());
    assert!(
        stderr(&panicky).contains("planner failed"),
        "{}",
        stderr(&panicky)
    );
    // Still there, and the server logged who asked.
    let counted = pg.psql("alice", TOKEN, "SELECT count(*) FROM events");
    assert!(counted.status.success(), "{}", stderr(&counted));
    assert_eq!(
        stdout(&counted).trim(),
        crate::count(&pg.data_dir()).to_string()
    );
    let log = pg.server.log();
    assert!(
        log.lines().any(|l| l.contains("postgres protocol: query")
            && l.contains("alice")
            && l.contains("DROP")),
        "{log}"
    );
}

#[test]
fn psycopg_runs_a_parameterised_query_with_typed_timestamps_and_is_refused_changes() {
    let pg = SqlServer::start();
    let out = pg.psycopg(
        r#"
import datetime, json
with psycopg.connect(conninfo) as conn:
    # A server-side bound parameter: the extended protocol (Parse, Bind, Execute).
    rows = conn.execute(
        "SELECT audit_id, event_time, response_code FROM events WHERE verb = %s "
        "ORDER BY event_time, audit_id LIMIT 5",
        ("get",),
        prepare=True,
    ).fetchall()
    assert rows, "no rows"
    for audit_id, event_time, code in rows:
        assert isinstance(event_time, datetime.datetime), type(event_time)
        assert event_time.tzinfo is not None, event_time
        assert isinstance(code, int), type(code)
    refused = []
    for statement in ["DROP TABLE events", "COPY events TO STDOUT", "SET statement_timeout = 0"]:
        try:
            conn.execute(statement)
        except psycopg.Error as e:
            refused.append(str(e))
            conn.rollback()
    count = conn.execute("SELECT count(*) FROM events WHERE verb = %s", ("get",)).fetchone()[0]
try:
    psycopg.connect(conninfo.replace("password=", "password=x"))
    wrong = "accepted"
except psycopg.OperationalError as e:
    wrong = str(e)
print(json.dumps({
    "first": [rows[0][0], rows[0][1].isoformat()],
    "refused": refused,
    "count": count,
    "wrong": wrong,
}))
"#,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        pg.server.log()
    );
    let got: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    let ours = crate::query(
        &pg.data_dir(),
        "SELECT audit_id, count(*) OVER () AS n FROM events WHERE verb = 'get' \
         ORDER BY event_time, audit_id LIMIT 1",
    );
    assert_eq!(got["first"][0], ours[0]["audit_id"]);
    assert_eq!(got["count"], ours[0]["n"]);
    let refused = got["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.as_str().unwrap_or_default().contains("read-only")),
        "{refused:?}"
    );
    assert!(
        got["wrong"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("password"),
        "{}",
        got["wrong"]
    );
}

#[test]
fn psql_connects_over_tls_with_the_servers_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key, ca) = test_certificates(dir.path());
    let pg = SqlServer::start_with(dir, &["--tls-cert", &cert, "--tls-key", &key]);
    let ssl = format!("sslmode=verify-ca&sslrootcert={ca}");
    let counted = pg.psql_with("alice", TOKEN, &ssl, "SELECT count(*) FROM events");
    assert!(
        counted.status.success(),
        "{}\n{}",
        stderr(&counted),
        pg.server.log()
    );
    assert_eq!(
        stdout(&counted).trim(),
        crate::count(&pg.data_dir()).to_string()
    );
    // A client that insists on TLS against a CA that did not sign the certificate is refused.
    let other = tempfile::tempdir().expect("tempdir");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let stranger =
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
    let stranger_file = other.path().join("ca.pem");
    std::fs::write(&stranger_file, stranger.pem()).expect("write");
    let refused = pg.psql_with(
        "alice",
        TOKEN,
        &format!("sslmode=verify-ca&sslrootcert={}", stranger_file.display()),
        "SELECT 1",
    );
    assert!(!refused.status.success(), "{}", stdout(&refused));
}

/// Grafana's `$__timeFilter(column)` as its PostgreSQL data source expands it.
fn grafana_macros(sql: &str) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find("$__timeFilter(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "$__timeFilter(".len()..];
        let end = after.find(')').expect("closing parenthesis");
        out.push_str(&format!(
            "{} BETWEEN '2000-01-01T00:00:00Z' AND '2100-01-01T00:00:00Z'",
            &after[..end]
        ));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The Grafana dashboard in `docs/grafana/`: each SQL panel's query runs through the PostgreSQL
/// protocol and finds rows in the sample logs, and each Prometheus panel's metrics are in the
/// server's `/metrics` once events came through the webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboards_queries_run_and_its_metrics_exist() {
    let pg = SqlServer::start();
    let text = std::fs::read_to_string(crate::repo().join("docs/grafana/auditlake.json"))
        .expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut sql_panels = 0;
    let mut exprs = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            if let Some(sql) = target["rawSql"].as_str() {
                let out = pg.psql("alice", TOKEN, &grafana_macros(sql));
                assert!(out.status.success(), "{}: {}", panel["title"], stderr(&out));
                assert!(
                    !stdout(&out).trim().is_empty(),
                    "{} found no rows",
                    panel["title"]
                );
                sql_panels += 1;
            }
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_string());
            }
        }
    }
    assert_eq!(sql_panels, 3);
    assert!(!exprs.is_empty());

    let client = crate::serve::client();
    let posted = client
        .post(format!("{}/v1/webhook", pg.server.url))
        .bearer_auth(INGEST_TOKEN)
        .body(crate::serve::event_list(&[crate::event("grafana-1")]))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    let metrics = client
        .get(format!("{}/metrics", pg.server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for expr in exprs {
        let name = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| w.starts_with("auditlake_"))
            .expect("an auditlake metric");
        assert!(
            metrics.contains(name),
            "{name} is not in /metrics:\n{metrics}"
        );
    }
}
