//! Alert delivery end to end: `auditlake serve` with a signed webhook output whose receiver is
//! down while the server is killed (SIGKILL) and restarted; once the receiver is up, every alert
//! arrives, every signature verifies.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::repo;
use crate::serve::{Server, client, event_list};

const SECRET: &str = "webhook-signing-secret-0123456789";

/// What the receiver saw.
#[derive(Default)]
struct Received {
    ids: BTreeSet<String>,
    deliveries: usize,
    bad_signatures: usize,
}

async fn receive(
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

/// A webhook receiver on `port`; stops when dropped.
struct Receiver {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, seen: Arc<Mutex<Received>>) -> Receiver {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route("/hook", axum::routing::post(receive))
                    .with_state(seen);
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn sample_events() -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("sample-logs"))
        .expect("sample-logs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
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
    let port = free_port();
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
    let posted = http
        .post(format!("{}/v1/webhook/demo", server.url))
        .body(event_list(&sample_events()))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);
    let answer: serde_json::Value = http
        .post(format!("{}/v1/query", server.url))
        .json(&serde_json::json!({"sql": "SELECT alert_id FROM alerts"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    let expected: BTreeSet<String> = answer["rows"]
        .as_array()
        .expect("rows")
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

    assert!(
        walk(&data.join("outbox/hook"))
            .iter()
            .any(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0)),
        "the alerts wait in the outbox"
    );

    // Killed while the receiver is down; the alerts wait in the outbox on disk. The write-ahead
    // log goes too, so that the restart cannot raise them again: they must come from the outbox.
    server.kill();
    std::fs::remove_dir_all(data.join("wal")).expect("remove the write-ahead log");
    let mut server = Server::start(&data, &args, &env);
    let seen = Arc::new(Mutex::new(Received::default()));
    let _receiver = Receiver::start(port, Arc::clone(&seen));
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
