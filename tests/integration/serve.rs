//! `auditlake serve` end to end: the real binary on `127.0.0.1:0`, real EventLists over HTTP(S),
//! a crash mid-load, authentication and TLS.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{auditlake, query, real_logs};

/// A running server; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_on("127.0.0.1:0", data_dir, args, env)
    }

    /// Like [`Server::start`], listening on `listen` (to come back on the same address).
    pub(crate) fn start_on(
        listen: &str,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_auditlake")),
            listen,
            data_dir,
            args,
            env,
        )
    }

    /// Like [`Server::start`], the binary run by `wrapper` (its arguments, then the binary's
    /// path and arguments), which must `exec` it so that the server keeps the wrapper's pid.
    pub(crate) fn start_in(
        wrapper: &[&str],
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut command = Command::new(wrapper[0]);
        command
            .args(&wrapper[1..])
            .arg(env!("CARGO_BIN_EXE_auditlake"));
        Self::launch(command, "127.0.0.1:0", data_dir, args, env)
    }

    fn launch(
        mut command: Command,
        listen: &str,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .env_remove("AUDITLAKE_TOKENS")
            // The fixtures are history (2018 to 2025): accept them, as replaying them would.
            // `env` or a flag in `args` puts the window back.
            .env("AUDITLAKE_MAX_EVENT_AGE", "off")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("the auditlake binary runs");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let mut url = None;
        for line in lines.by_ref() {
            let line = line.expect("stderr line");
            log.lock().expect("log").push_str(&format!("{line}\n"));
            if let Some(u) = line.strip_prefix("auditlake: listening on ") {
                url = Some(u.to_string());
                break;
            }
        }
        let url = url.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("server did not start:\n{}", log.lock().expect("log"))
        });
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().expect("log").push_str(&format!("{line}\n"));
            }
        });
        Server { child, url, log }
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub(crate) fn event_list(items: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items,
    }))
    .expect("json")
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    g.write_all(bytes).expect("gzip");
    g.finish().expect("gzip")
}

/// Events of the real captures that are one JSON event per line.
fn real_events(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f).expect("read").lines() {
            if !line.trim().is_empty() {
                out.push(serde_json::from_str(line).expect("event"));
            }
        }
    }
    out
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

pub(crate) async fn sql(client: &reqwest::Client, url: &str, sql: &str) -> serde_json::Value {
    let (status, body) = sql_as(client, url, None, sql).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `POST /v1/query` with an optional bearer token: status and JSON body.
async fn sql_as(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    sql: &str,
) -> (u16, serde_json::Value) {
    let mut request = client
        .post(format!("{url}/v1/query"))
        .json(&serde_json::json!({ "sql": sql }));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("query");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Alert counts by rule, from `/v1/alerts` rows or `auditlake query` rows.
fn by_rule(rows: &[serde_json::Value]) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        *out.entry(r["rule_id"].as_str().expect("rule_id").to_string())
            .or_default() += 1;
    }
    out
}

#[tokio::test]
async fn posted_events_and_their_alerts_are_queryable_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), &[], &[]);
    let client = client();
    let falco = real_events(&files_in(&real_logs().join("falco")));
    let rbac = real_events(&files_in(&real_logs().join("audit2rbac")));

    let started = Instant::now();
    let plain = client
        .post(format!("{}/v1/webhook/falco", server.url))
        .body(event_list(&falco))
        .send()
        .await
        .expect("post");
    assert_eq!(plain.status(), 200);
    let body: serde_json::Value = plain.json().await.expect("json");
    assert_eq!(body["accepted"], falco.len());
    let zipped = client
        .post(format!("{}/v1/webhook/audit2rbac", server.url))
        .header("content-encoding", "gzip")
        .body(gzip(&event_list(&rbac)))
        .send()
        .await
        .expect("post");
    assert_eq!(zipped.status(), 200);

    // Read-your-writes: the server answers once the rows and their alerts are in its live
    // buffer, so the first query after the acknowledgements sees all of them, with no waiting.
    // (How long the posts themselves take is the machine's speed, which benchmarks measure.)
    let want = serde_json::json!([
        {"cluster": "audit2rbac", "n": rbac.len()},
        {"cluster": "falco", "n": falco.len()}
    ]);
    let counts = sql(
        &client,
        &server.url,
        "SELECT cluster, count(*) AS n FROM events GROUP BY cluster ORDER BY cluster",
    )
    .await;
    let alerts: serde_json::Value = client
        .get(format!(
            "{}/v1/alerts?limit=10000&cluster=falco",
            server.url
        ))
        .send()
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    assert_eq!(counts["rows"], want);
    assert!(alerts["count"].as_u64() > Some(0), "{alerts}");
    eprintln!(
        "events and alerts visible {:?} after the first post",
        started.elapsed()
    );

    // The same events replayed from files raise the same alerts.
    let reference = tempfile::tempdir().expect("tempdir");
    let files: Vec<String> = files_in(&real_logs().join("falco"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut args = vec!["replay", "--cluster", "falco"];
    args.extend(files.iter().map(String::as_str));
    assert!(auditlake(reference.path(), &args).status.success());
    let expected = query(reference.path(), "SELECT rule_id FROM alerts");
    let served: Vec<serde_json::Value> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["cluster"] == "falco")
        .cloned()
        .collect();
    assert!(!expected.is_empty(), "the Falco captures raise alerts");
    assert_eq!(by_rule(&served), by_rule(&expected));
    drop(server);
}

#[tokio::test]
async fn sigterm_flushes_the_live_buffer_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--flush-interval", "1h"], &[]);
    let falco = real_events(&files_in(&real_logs().join("falco")));
    let r = client()
        .post(format!("{}/v1/webhook", server.url))
        .body(event_list(&falco))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let status = server.terminate();
    assert!(status.success(), "exit {status:?}\n{}", server.log());
    let n = query(&data, "SELECT count(*) AS n FROM events");
    assert_eq!(n[0]["n"], falco.len(), "the events are in Parquet files");
    let wal: Vec<PathBuf> = files_in(&data.join("wal"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    assert!(wal.is_empty(), "the log is deleted once flushed: {wal:?}");
    assert!(server.log().contains("\"request\"") || server.log().contains("request"));
}

/// One batch of the crash test: `size` events with ids `crash-BATCH-I`.
fn crash_batch(batch: usize, size: usize) -> Vec<serde_json::Value> {
    (0..size)
        .map(|i| {
            let mut e = crate::event(&format!("crash-{batch}-{i}"));
            e["requestReceivedTimestamp"] = serde_json::json!(format!(
                "2025-11-03T11:{:02}:{:02}.000001Z",
                batch % 60,
                i % 60
            ));
            e["stageTimestamp"] = e["requestReceivedTimestamp"].clone();
            e
        })
        .collect()
}

#[tokio::test]
async fn a_crash_loses_no_acknowledged_batch_and_stores_none_twice() {
    const BATCHES: usize = 400;
    const SIZE: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Flushing every second: some acknowledged batches are in finished files, some only in the
    // log, when the kill comes.
    let mut server = Server::start(&data, &["--flush-interval", "1s"], &[]);
    let url = server.url.clone();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let url = url.clone();
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let client = client();
            for batch in (worker..BATCHES).step_by(8) {
                let response = client
                    .post(format!("{url}/v1/webhook"))
                    .body(event_list(&crash_batch(batch, SIZE)))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == 200 => acked.lock().expect("acked").push(batch),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill once a good part is acknowledged, with requests in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("acked").len() < BATCHES / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::thread::sleep(Duration::from_millis(1200));
    server.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked: Vec<usize> = acked.lock().expect("acked").clone();
    assert!(
        acked.len() >= BATCHES / 3 && acked.len() < BATCHES,
        "killed mid-load: {} acknowledged",
        acked.len()
    );

    let wal_bytes: u64 = files_in(&data.join("wal"))
        .iter()
        .map(|f| f.metadata().expect("metadata").len())
        .sum();
    eprintln!(
        "killed with {} of {BATCHES} batches acknowledged, {wal_bytes} bytes in the log",
        acked.len()
    );
    let server = Server::start(&data, &[], &[]);
    let client = client();
    let ready = Instant::now();
    loop {
        let r = client
            .get(format!("{}/readyz", server.url))
            .send()
            .await
            .expect("readyz");
        if r.status() == 200 {
            break;
        }
        assert!(ready.elapsed() < Duration::from_secs(60), "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.log().contains("write-ahead log replayed"),
        "the restart replayed the log:\n{}",
        server.log()
    );
    let rows = sql(
        &client,
        &server.url,
        "SELECT split_part(audit_id, '-', 2) AS batch, count(*) AS n, count(DISTINCT audit_id) AS ids \
         FROM events GROUP BY 1",
    )
    .await;
    let mut stored = std::collections::HashMap::new();
    for r in rows["rows"].as_array().expect("rows") {
        let batch: usize = r["batch"].as_str().expect("batch").parse().expect("number");
        assert_eq!(r["n"], r["ids"], "batch {batch} has an event stored twice");
        assert_eq!(r["n"], SIZE, "batch {batch} is stored whole or not at all");
        stored.insert(batch, ());
    }
    for batch in &acked {
        assert!(
            stored.contains_key(batch),
            "acknowledged batch {batch} was lost"
        );
    }
    // An exact redelivery after the restart is stored once.
    let before = sql(&client, &server.url, "SELECT count(*) AS n FROM events").await;
    let r = client
        .post(format!("{}/v1/webhook", server.url))
        .body(event_list(&crash_batch(acked[0], SIZE)))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let after = sql(&client, &server.url, "SELECT count(*) AS n FROM events").await;
    assert_eq!(before["rows"], after["rows"]);
}

#[test]
fn beyond_loopback_the_server_refuses_to_start_without_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("AUDITLAKE_TOKENS")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("AUDITLAKE_TOKENS", "apiserver ingest short")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 16"));
    // HTTP on loopback, but a SQL protocol beyond it: refused the same way.
    for flag in ["--pg-listen", "--flight-listen"] {
        let out = Command::new(env!("CARGO_BIN_EXE_auditlake"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", flag, "0.0.0.0:0"])
            .env_remove("AUDITLAKE_TOKENS")
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refusing to listen on 0.0.0.0:0 without authentication"),
            "{flag}: {stderr}"
        );
    }
}

#[tokio::test]
async fn tokens_guard_the_webhook_and_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = "apiserver ingest ingest-token-0123456789;analyst query query-token-0123456789";
    let server = Server::start(
        &dir.path().join("data"),
        &[],
        &[("AUDITLAKE_TOKENS", tokens)],
    );
    let client = client();
    let body = event_list(&[crate::event("auth-1")]);
    let post = |token: Option<&'static str>| {
        let mut r = client
            .post(format!("{}/v1/webhook", server.url))
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(post(None).await.expect("post").status(), 401);
    assert_eq!(
        post(Some("wrong-token-0123456789"))
            .await
            .expect("post")
            .status(),
        401
    );
    assert_eq!(
        post(Some("query-token-0123456789"))
            .await
            .expect("post")
            .status(),
        403
    );
    assert_eq!(
        post(Some("ingest-token-0123456789"))
            .await
            .expect("post")
            .status(),
        200
    );
    let (status, q) = sql_as(
        &client,
        &server.url,
        Some("query-token-0123456789"),
        "SELECT count(*) AS n FROM events",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(q["rows"][0]["n"], 1);
    assert!(
        !server.log().contains("ingest-token-0123456789"),
        "tokens never reach the log"
    );
}

#[tokio::test]
async fn tls_with_a_generated_certificate_and_client_certificates() {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let server_key = KeyPair::generate().expect("key");
    let server_cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params")
        .signed_by(&server_key, &ca)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client_params = CertificateParams::new(vec!["kube-apiserver".into()]).expect("params");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &ca)
        .expect("client cert");
    let path = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let cert = path("server.pem", server_cert.pem());
    let key = path("server.key", server_key.serialize_pem());
    let ca_file = path("ca.pem", ca.pem());

    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca_file,
        ],
        &[("AUDITLAKE_TOKENS", "analyst query query-token-0123456789")],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("root");
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .expect("client");
    let identity = reqwest::Identity::from_pem(
        format!("{}{}", client_cert.pem(), client_key.serialize_pem()).as_bytes(),
    )
    .expect("identity");
    let apiserver = reqwest::Client::builder()
        .add_root_certificate(root)
        .identity(identity)
        .build()
        .expect("client");

    let r = anonymous
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("healthz over TLS");
    assert_eq!(r.status(), 200);
    let body = event_list(&[crate::event("tls-1")]);
    let r = anonymous
        .post(format!("{}/v1/webhook", server.url))
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401, "no certificate, no token");
    let r = apiserver
        .post(format!("{}/v1/webhook", server.url))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        200,
        "a client certificate signed by the CA grants ingest"
    );
    let (status, _) = sql_as(&apiserver, &server.url, None, "SELECT 1").await;
    assert_eq!(status, 403, "but not query");
    let (status, v) = sql_as(
        &anonymous,
        &server.url,
        Some("query-token-0123456789"),
        "SELECT count(*) AS n FROM events",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["rows"][0]["n"], 1);
    let plain = client()
        .get(server.url.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(
        plain.map(|r| r.status() != 200).unwrap_or(true),
        "plain HTTP is not served"
    );
}

/// The threat list is re-read on SIGHUP: an address added to its file matches from then on, one
/// just outside a block never does, and a file turned bad keeps the list as it was.
#[tokio::test]
async fn sighup_rereads_the_threat_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("threat-intel.txt");
    std::fs::write(&list, "# empty for now\n").expect("write list");
    let server = Server::start(
        &dir.path().join("data"),
        &["--threat-intel", &list.display().to_string()],
        &[],
    );
    let client = client();
    let visit = |n: u32, ip: &str| {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": format!("00000000-0000-4000-8000-{n:012}"), "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces", "verb": "list",
            "user": {"username": format!("visitor-{n}")}, "sourceIPs": [ip],
            "userAgent": "curl/8.4.0", "objectRef": {"resource": "namespaces"},
            "responseStatus": {"code": 403},
            "requestReceivedTimestamp": "2025-11-03T12:00:00.000000Z",
            "stageTimestamp": "2025-11-03T12:00:00.001000Z",
        })
    };
    let post = |events: Vec<serde_json::Value>| {
        let client = client.clone();
        let url = server.url.clone();
        async move {
            let response = client
                .post(format!("{url}/v1/webhook"))
                .body(event_list(&events))
                .send()
                .await
                .expect("post");
            assert_eq!(response.status(), 200);
        }
    };
    let listed = |client: reqwest::Client, url: String| async move {
        let rows = sql(
            &client,
            &url,
            "SELECT user_name FROM alerts WHERE rule_id = 'threat-intel-source-ip' ORDER BY 1",
        )
        .await;
        rows["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["user_name"].as_str().expect("user").to_string())
            .collect::<Vec<_>>()
    };
    post(vec![visit(1, "185.220.101.77")]).await;
    assert!(listed(client.clone(), server.url.clone()).await.is_empty());

    std::fs::write(&list, "185.220.101.0/25 # tor exits\n").expect("rewrite list");
    let signal = |server: &Server| {
        let _ = std::process::Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status();
    };
    signal(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("ip lists re-read") {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post(vec![
        visit(2, "185.220.101.77"),
        visit(3, "185.220.101.128"),
    ])
    .await;
    assert_eq!(
        listed(client.clone(), server.url.clone()).await,
        ["visitor-2"]
    );

    std::fs::write(&list, "185.220.101.0/25\nnot-an-address\n").expect("break list");
    signal(&server);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("not-an-address") {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains(":2:"), "{}", server.log());
    post(vec![visit(4, "185.220.101.9")]).await;
    assert_eq!(
        listed(client.clone(), server.url.clone()).await,
        ["visitor-2", "visitor-4"]
    );
    // Both reloads are in the access log, the bad one with its reason.
    let reloads = sql(
        &client,
        &server.url,
        "SELECT token, status, outcome FROM access_log WHERE action = 'reload ip lists' \
         ORDER BY time",
    )
    .await;
    // (The poll of the files may have seen a change before a signal did: then more rows.)
    let reloads = reloads["rows"].as_array().expect("rows");
    assert!(
        reloads
            .iter()
            .any(|r| r["token"] == "SIGHUP" && r["status"] == 200),
        "{reloads:?}"
    );
    let last = reloads.last().expect("a reload");
    assert_eq!(last["status"], 500);
    assert!(
        last["outcome"]
            .as_str()
            .expect("outcome")
            .contains("not-an-address"),
        "{reloads:?}"
    );
}

/// A metric's value summed over its labels, from `/metrics`.
pub(crate) async fn metric(url: &str, name: &str) -> f64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `/readyz`: its status and body.
pub(crate) async fn readyz(url: &str) -> (u16, serde_json::Value) {
    let response = client()
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Polls `/readyz` until it answers 200 or `limit` passes; returns the last answer.
pub(crate) async fn ready_within(url: &str, limit: Duration) -> (u16, serde_json::Value) {
    let deadline = Instant::now() + limit;
    loop {
        let answer = readyz(url).await;
        if answer.0 == 200 || Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
