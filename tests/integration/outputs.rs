//! Alert delivery end to end: `auditlake serve` with a signed webhook output whose receiver is
//! down while the server is killed (SIGKILL) and restarted (once the receiver is up, every alert
//! arrives, every signature verifies), and with a real Prometheus Alertmanager.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::serve::{Server, client, event_list};

pub(crate) const SECRET: &str = "webhook-signing-secret-0123456789";

/// What the receiver saw.
#[derive(Default)]
pub(crate) struct Received {
    pub(crate) ids: BTreeSet<String>,
    pub(crate) deliveries: usize,
    pub(crate) bad_signatures: usize,
}

pub(crate) async fn receive(
    State(seen): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get(auditlake_outputs::webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut seen = seen.lock().expect("lock");
    if !auditlake_outputs::webhook::verify(SECRET.as_bytes(), signature, &body, now, 300) {
        seen.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("a JSON array");
    seen.deliveries += 1;
    for row in rows {
        seen.ids
            .insert(row["alert_id"].as_str().expect("alert_id").to_string());
    }
    StatusCode::OK
}

/// An HTTP receiver serving `app` on `port`; stops when dropped.
pub(crate) struct Receiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start(port: u16, app: axum::Router) -> Receiver {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("receiver port");
                ready.send(()).expect("ready");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("receiver");
            });
        });
        listening.recv().expect("receiver listening");
        Receiver {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Posts every sample event to `server`'s webhook, then answers `sql` with its rows.
async fn post_samples_and_query(server: &Server, sql: &str) -> Vec<serde_json::Value> {
    let http = client();
    let posted = http
        .post(format!("{}/v1/webhook/demo", server.url))
        .body(event_list(&sample_events()))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    let answer: serde_json::Value = http
        .post(format!("{}/v1/query", server.url))
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    answer["rows"].as_array().expect("rows").clone()
}

pub(crate) fn sample_events() -> Vec<serde_json::Value> {
    crate::sample_log_files()
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).expect("sample event"))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_reaches_a_webhook_that_was_down_across_a_sigkill() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let port = crate::free_port();
    let config = scratch.path().join("auditlake.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nconsole_url = \"https://auditlake.example\"\n\n[[alerts.outputs]]\n\
             name = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
             secret_env = \"HOOK_SECRET\"\n"
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let args = ["--config", config.as_str(), "--flush-interval", "1s"];
    let env = [("HOOK_SECRET", SECRET)];
    let mut server = Server::start(&data, &args, &env);
    let http = client();
    let rows = post_samples_and_query(&server, "SELECT alert_id FROM alerts").await;
    let expected: BTreeSet<String> = rows
        .iter()
        .map(|r| r["alert_id"].as_str().expect("id").to_string())
        .collect();
    assert!(expected.len() > 50, "{} alerts", expected.len());
    let ready: serde_json::Value = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        ready["status"], "ready",
        "a failing output does not stop ingest: {ready}"
    );

    // The outbox is synced when the lake's files are written (every second here), before the
    // write-ahead log holding the events may go.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !walk(&data.join("outbox/hook"))
        .iter()
        .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
    {
        assert!(Instant::now() < deadline, "the outbox was not synced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Killed while the receiver is down; the alerts wait in the outbox on disk. The write-ahead
    // log goes too, so that the restart cannot raise them again: they must come from the outbox.
    server.kill();
    std::fs::remove_dir_all(data.join("wal")).expect("remove the write-ahead log");
    let mut server = Server::start(&data, &args, &env);
    let seen = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&seen));
    let _receiver = Receiver::start(port, app);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = seen.lock().expect("lock").ids.clone();
        if expected.is_subset(&got) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} alerts arrived; missing {:?}\n{}",
            got.len(),
            expected.len(),
            expected.difference(&got).take(5).collect::<Vec<_>>(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    {
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.bad_signatures, 0);
        assert!(seen.ids.is_subset(&expected), "only the server's alerts");
        assert!(seen.deliveries >= 1);
    }
    let ready: serde_json::Value = http
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["outputs"]["hook"]["sending"], true, "{ready}");
    server.kill();
}

/// Alertmanager: `AUDITLAKE_ALERTMANAGER`, else Debian's, which `scripts/test` installs.
fn alertmanager_binary() -> PathBuf {
    let path = std::env::var_os("AUDITLAKE_ALERTMANAGER").map_or_else(
        || PathBuf::from("/usr/bin/prometheus-alertmanager"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "Alertmanager is not installed at {}: run `bash scripts/test`, which installs Debian's \
         prometheus-alertmanager",
        path.display()
    );
    path
}

/// A real Alertmanager on a loopback port, in a scratch directory; killed when dropped.
struct Alertmanager {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\n  group_by: [alertname]\nreceivers:\n  - name: nobody\n",
        )
        .expect("config");
        let port = crate::free_port();
        let child = std::process::Command::new(alertmanager_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("alertmanager runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "alertmanager did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_holds_every_alert_with_its_labels() {
    let alertmanager = Alertmanager::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let config = scratch.path().join("auditlake.toml");
    std::fs::write(
        &config,
        format!(
            "[[alerts.outputs]]\nname = \"pager\"\nkind = \"alertmanager\"\nurl = \"{}\"\n\
             min_severity = \"medium\"\nalert_ttl = \"2h\"\n",
            alertmanager.url
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let mut server = Server::start(&data, &["--config", config.as_str()], &[]);
    let http = client();
    let rows = post_samples_and_query(
        &server,
        "SELECT alert_id, rule_id, severity FROM alerts \
         WHERE severity IN ('medium', 'high', 'critical')",
    )
    .await;
    let expected: std::collections::BTreeMap<String, (String, String)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().expect("text").to_string();
            (s("alert_id"), (s("rule_id"), s("severity")))
        })
        .collect();
    assert!(expected.len() > 20, "{} alerts", expected.len());

    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let held: Vec<serde_json::Value> = http
            .get(format!("{}/api/v2/alerts", alertmanager.url))
            .send()
            .await
            .expect("alertmanager answers")
            .json()
            .await
            .expect("json");
        if held.len() >= expected.len() {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager holds {} of {} alerts\n{}",
            held.len(),
            expected.len(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        held.len(),
        expected.len(),
        "one alert each, low ones filtered out"
    );
    for alert in &held {
        let labels = &alert["labels"];
        let id = labels["alert_id"].as_str().expect("alert_id label");
        let (rule, severity) = expected.get(id).expect("an alert the server raised");
        assert_eq!(labels["alertname"], rule.as_str());
        assert_eq!(labels["severity"], severity.as_str());
        assert_eq!(labels["cluster"], "demo");
        assert_eq!(labels["source"], "auditlake");
        assert!(
            alert["annotations"]["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty())
        );
        assert_eq!(alert["status"]["state"], "active");
        let ends = alert["endsAt"].as_str().expect("endsAt");
        assert!(
            ends > alert["startsAt"].as_str().expect("startsAt"),
            "{alert}"
        );
    }
    server.kill();
}

/// The frames of an RFC 6587 octet-counted stream.
fn frames(mut stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some((len, rest)) = stream.split_once(' ') {
        let len: usize = len.parse().expect("a frame length");
        out.push(rest[..len].to_string());
        stream = &rest[len..];
    }
    out
}

/// The parts of an RFC 5424 line this project writes: priority, the structured data's params,
/// the message.
fn parse_5424(line: &str) -> (u8, std::collections::BTreeMap<String, String>, String) {
    let (pri, rest) = line
        .strip_prefix('<')
        .and_then(|l| l.split_once(">1 "))
        .expect("<PRI>1");
    let fields: Vec<&str> = rest.splitn(6, ' ').collect();
    assert_eq!(fields.len(), 6, "{line}");
    auditlake_schema::time::parse_rfc3339_micros(fields[0]).expect("an RFC 3339 time");
    assert_eq!(
        (fields[2], fields[3], fields[4]),
        ("auditlake", "-", "alert"),
        "{line}"
    );
    let sd = fields[5]
        .strip_prefix("[auditlake@32473")
        .expect("structured data");
    let mut params = std::collections::BTreeMap::new();
    let mut chars = sd.chars().peekable();
    loop {
        match chars.next() {
            Some(' ') => {
                let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut value = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().expect("an escaped character")),
                        '"' => break,
                        c => value.push(c),
                    }
                }
                params.insert(name, value);
            }
            Some(']') => break,
            other => panic!("unexpected {other:?} in {line}"),
        }
    }
    let message: String = chars.collect();
    let message = message
        .strip_prefix(" \u{feff}")
        .expect("a UTF-8 message with its BOM")
        .to_string();
    (pri.parse().expect("a priority"), params, message)
}

/// A TLS acceptor whose certificate (for 127.0.0.1) a fresh CA signed, and that CA's PEM file.
fn tls_listener_with_ca(dir: &std::path::Path) -> (tokio_rustls::TlsAcceptor, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".into()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    let ca_file = dir.join("syslog-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("ca");
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_syslog_receivers_get_readable_messages_and_rfc_5424_lines() {
    // Slack: a local HTTP server taking incoming-webhook messages.
    let slack_port = crate::free_port();
    let messages = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let app = axum::Router::new()
        .route(
            "/services/T0/B0/secret",
            axum::routing::post(
                |State(seen): State<Arc<Mutex<Vec<serde_json::Value>>>>, body: Bytes| async move {
                    let message = serde_json::from_slice(&body).expect("JSON");
                    seen.lock().expect("lock").push(message);
                    StatusCode::OK
                },
            ),
        )
        .with_state(Arc::clone(&messages));
    let grouped = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let app = app.merge(
        axum::Router::new()
            .route(
                "/grouped",
                axum::routing::post(
                    |State(seen): State<Arc<Mutex<Vec<serde_json::Value>>>>, body: Bytes| async move {
                        seen.lock().expect("lock").push(serde_json::from_slice(&body).expect("JSON"));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&grouped)),
    );
    let _slack = Receiver::start(slack_port, app);
    // Syslog: a TCP listener reading octet-counted frames, and a UDP socket.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("tcp");
    let tcp_port = tcp.local_addr().expect("addr").port();
    let streams = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&streams);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let (mut socket, _) = tcp.accept().await.expect("accept");
            let mut text = String::new();
            socket.read_to_string(&mut text).await.expect("read");
            sink.lock().expect("lock").push_str(&text);
        }
    });
    // Syslog over TLS (RFC 5425): a listener with a certificate from a CA of the test's own.
    let scratch = tempfile::tempdir().expect("tempdir");
    let (tls_acceptor, ca_file) = tls_listener_with_ca(scratch.path());
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("tls");
    let tls_port = tls.local_addr().expect("addr").port();
    let secured = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&secured);
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let (socket, _) = tls.accept().await.expect("accept");
            let Ok(mut socket) = tls_acceptor.accept(socket).await else {
                continue;
            };
            let mut text = String::new();
            // A close without TLS's close_notify would be an error: keep what was read.
            let _ = socket.read_to_string(&mut text).await;
            sink.lock().expect("lock").push_str(&text);
        }
    });
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let udp_port = udp.local_addr().expect("addr").port();
    let datagrams = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&datagrams);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = udp.recv_from(&mut buf).await.expect("recv");
            sink.lock()
                .expect("lock")
                .push(String::from_utf8(buf[..n].to_vec()).expect("UTF-8"));
        }
    });

    let data = scratch.path().join("data");
    let secret = scratch.path().join("slack-url");
    std::fs::write(
        &secret,
        format!("http://127.0.0.1:{slack_port}/services/T0/B0/secret\n"),
    )
    .expect("secret");
    let config = scratch.path().join("auditlake.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nconsole_url = \"https://auditlake.example\"\n\n\
             [[alerts.outputs]]\nname = \"chat\"\nkind = \"slack\"\nsecret_file = \"{}\"\nmin_severity = \"high\"\n\n\
             [[alerts.outputs]]\nname = \"chat-grouped\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{slack_port}/grouped\"\n\
             min_severity = \"high\"\ngroup_window = \"1h\"\n\n\
             [[alerts.outputs]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"tcp://127.0.0.1:{tcp_port}\"\n\n\
             [[alerts.outputs]]\nname = \"siem-udp\"\nkind = \"syslog\"\naddress = \"udp://127.0.0.1:{udp_port}\"\n\n\
             [[alerts.outputs]]\nname = \"siem-tls\"\nkind = \"syslog\"\naddress = \"tls://127.0.0.1:{tls_port}\"\nca_file = \"{}\"\n",
            secret.display(),
            ca_file.display()
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let mut server = Server::start(&data, &["--config", config.as_str()], &[]);
    let rows = post_samples_and_query(
        &server,
        "SELECT alert_id, severity, rule_title, rule_id FROM alerts",
    )
    .await;
    let alerts = rows;
    let high = alerts
        .iter()
        .filter(|a| matches!(a["severity"].as_str(), Some("high" | "critical")))
        .count();

    let high_rules: BTreeSet<&str> = alerts
        .iter()
        .filter(|a| matches!(a["severity"].as_str(), Some("high" | "critical")))
        .map(|a| a["rule_id"].as_str().expect("rule"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = (
            messages.lock().expect("lock").len(),
            frames(&streams.lock().expect("lock")).len(),
            datagrams.lock().expect("lock").len(),
            frames(&secured.lock().expect("lock")).len(),
        );
        let want = (high, alerts.len(), alerts.len(), alerts.len());
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slack, tcp, udp, tls got {got:?} of {want:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Grouped per rule and cluster: one message per rule (one cluster here), and no more later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(grouped.lock().expect("lock").len(), high_rules.len());
    for message in messages.lock().expect("lock").iter() {
        let text = message["text"].as_str().expect("text");
        assert!(
            text.contains("*HIGH*") || text.contains("*CRITICAL*"),
            "{text}"
        );
        assert!(
            text.contains("<https://auditlake.example/#/alert/"),
            "{text}"
        );
        assert!(text.contains("who: `"), "{text}");
    }
    let ids: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["alert_id"].as_str().expect("id"))
        .collect();
    for lines in [
        frames(&streams.lock().expect("lock")),
        datagrams.lock().expect("lock").clone(),
        frames(&secured.lock().expect("lock")),
    ] {
        let mut seen = BTreeSet::new();
        for line in &lines {
            let (pri, params, message) = parse_5424(line);
            assert_eq!(pri / 8, 13, "facility log audit: {line}");
            assert!(ids.contains(params["alert_id"].as_str()), "{line}");
            assert!(!message.is_empty());
            seen.insert(params["alert_id"].clone());
        }
        assert_eq!(seen.len(), ids.len());
    }
    server.kill();

    // `alerts test-output` sends one sample alert through the same formats, and says why not.
    let before = messages.lock().expect("lock").len();
    let out = crate::auditlake(
        &data,
        &["--config", config.as_str(), "alerts", "test-output", "chat"],
    );
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(crate::stdout(&out).contains("sent a sample alert to chat"));
    let sent = messages.lock().expect("lock")[before..].to_vec();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("auditlake test alert"))
    );
    let out = crate::auditlake(
        &data,
        &[
            "--config",
            config.as_str(),
            "alerts",
            "test-output",
            "pager",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::stderr(&out).contains("has: chat, chat-grouped, siem, siem-udp, siem-tls"),
        "{}",
        crate::stderr(&out)
    );
    drop(_slack);
    let out = crate::auditlake(
        &data,
        &["--config", config.as_str(), "alerts", "test-output", "chat"],
    );
    assert_eq!(out.status.code(), Some(1), "the receiver is gone");
    assert!(
        crate::stderr(&out).contains("output chat"),
        "{}",
        crate::stderr(&out)
    );
}
