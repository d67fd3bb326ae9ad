//! The webhook routes with an in-memory sink: status codes, partial acceptance, limits.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use auditlake_ingest::webhook::{DurableSink, WebhookState, router};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Keeps batches in memory; `budget` bytes in flight at most; fails when `broken`.
#[derive(Default)]
struct MemorySink {
    batches: Mutex<Vec<RecordBatch>>,
    budget: usize,
    held: AtomicUsize,
    broken: bool,
}

impl MemorySink {
    fn with_budget(budget: usize) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    fn rows(&self) -> usize {
        self.batches
            .lock()
            .expect("lock")
            .iter()
            .map(|b| b.num_rows())
            .sum()
    }

    fn clusters(&self) -> Vec<String> {
        use arrow::array::AsArray;
        let mut out = Vec::new();
        for b in self.batches.lock().expect("lock").iter() {
            let c = b
                .column_by_name("cluster")
                .expect("cluster")
                .as_string::<i32>();
            out.extend(c.iter().flatten().map(str::to_string));
        }
        out
    }
}

impl DurableSink for MemorySink {
    type Reservation = usize;

    fn reserve(&self, bytes: usize) -> Option<usize> {
        let held = self.held.fetch_add(bytes, Ordering::SeqCst);
        if held + bytes > self.budget {
            self.held.fetch_sub(bytes, Ordering::SeqCst);
            return None;
        }
        Some(bytes)
    }

    fn grow(&self, reservation: &mut usize, bytes: usize) -> bool {
        match self.reserve(bytes) {
            Some(n) => {
                *reservation += n;
                true
            }
            None => false,
        }
    }

    async fn store(&self, batch: RecordBatch, reservation: usize) -> Result<(), String> {
        self.held.fetch_sub(reservation, Ordering::SeqCst);
        if self.broken {
            return Err("the write-ahead log could not be written".into());
        }
        self.batches.lock().expect("lock").push(batch);
        Ok(())
    }
}

fn app(sink: Arc<MemorySink>, max_body: usize) -> axum::Router {
    router(WebhookState {
        sink,
        max_body,
        default_cluster: Some("home".into()),
        time_window: None,
        body_timeout: std::time::Duration::from_secs(60),
    })
}

async fn post(
    app: axum::Router,
    path: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, serde_json::Value, Option<String>) {
    let mut request = Request::post(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app
        .oneshot(request.body(Body::from(body)).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let retry = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").to_string());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, json, retry)
}

fn sample_events() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(
        auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR"))
            .join("../sample-logs/exec-into-pod.log"),
    )
    .expect("sample log");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect()
}

fn event_list(items: Vec<serde_json::Value>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": items,
    }))
    .expect("json")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    g.write_all(bytes).expect("gzip");
    g.finish().expect("gzip")
}

#[tokio::test]
async fn an_event_list_is_stored_and_bad_items_are_named() {
    let sink = Arc::new(MemorySink::with_budget(1 << 30));
    let mut items = sample_events();
    let n = items.len();
    items.insert(1, serde_json::json!({"kind": "Pod", "apiVersion": "v1"}));
    items.push(serde_json::json!(42));
    let (status, body, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook/prod",
        event_list(items),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], n);
    assert_eq!(body["rejected_count"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    assert_eq!(body["rejected"][1]["index"], n + 1);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("Pod")
    );
    assert_eq!(sink.rows(), n);
    assert!(
        sink.clusters().iter().all(|c| c == "prod"),
        "the path names the cluster"
    );
}

/// `event` with its request and stage times at `at`.
fn timed(mut event: serde_json::Value, at: &str) -> serde_json::Value {
    event["requestReceivedTimestamp"] = at.into();
    event["stageTimestamp"] = at.into();
    event
}

#[tokio::test]
async fn events_outside_the_acceptance_window_are_rejected_one_by_one() {
    let sink = Arc::new(MemorySink::with_budget(1 << 30));
    let app = router(WebhookState {
        sink: Arc::clone(&sink),
        max_body: 1 << 20,
        default_cluster: None,
        time_window: Some(auditlake_schema::TimeWindow {
            max_age: Some(std::time::Duration::from_secs(86_400)),
            max_ahead: Some(std::time::Duration::from_secs(3600)),
        }),
        body_timeout: std::time::Duration::from_secs(60),
    });
    let now = chrono::Utc::now();
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let event = sample_events().remove(0);
    let items = vec![
        timed(event.clone(), &at(now)),
        timed(event.clone(), "1970-01-01T00:00:00.000000Z"),
        timed(event.clone(), "9999-12-31T23:59:59.000000Z"),
        timed(event.clone(), &at(now - chrono::Duration::hours(30))),
        timed(event.clone(), &at(now + chrono::Duration::minutes(50))),
        timed(event, &at(now + chrono::Duration::hours(2))),
    ];
    let (status, body, _) = post(app, "/v1/webhook/prod", event_list(items), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");
    assert_eq!(sink.rows(), 2);
    let rejected: Vec<u64> = body["rejected"]
        .as_array()
        .expect("rejections")
        .iter()
        .map(|r| {
            let reason = r["reason"].as_str().expect("reason");
            assert!(reason.contains("outside the accepted window"), "{reason}");
            r["index"].as_u64().expect("index")
        })
        .collect();
    assert_eq!(rejected, [1, 2, 3, 5]);
    assert!(
        body["rejected"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("1970-01-01T00:00:00Z")
    );
}

#[tokio::test]
async fn gzip_and_ndjson_bodies_are_read_and_the_default_cluster_applies() {
    let sink = Arc::new(MemorySink::with_budget(1 << 30));
    let items = sample_events();
    let n = items.len();
    let (status, body, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        gzip(&event_list(items.clone())),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(n as u64))
    );
    let ndjson: String = items.iter().map(|e| format!("{e}\nnot json\n")).collect();
    let (status, body, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        ndjson.into_bytes(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], n);
    assert_eq!(body["rejected_count"], n);
    assert_eq!(body["rejected"][0]["line"], 2);
    assert_eq!(sink.rows(), 2 * n);
    assert!(sink.clusters().iter().all(|c| c == "home"));
}

#[tokio::test]
async fn undecodable_bodies_get_400_with_the_reason() {
    let sink = Arc::new(MemorySink::with_budget(1 << 30));
    for body in [&b"{not json"[..], b"{\"kind\": 0}", b"\xff\xfe garbage"] {
        let (status, json, _) = post(
            app(Arc::clone(&sink), 1 << 20),
            "/v1/webhook",
            body.to_vec(),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
        assert!(
            json["error"]
                .as_str()
                .expect("error")
                .starts_with("no audit event"),
            "{json}"
        );
    }
    let (status, json, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        b"not gzip at all".to_vec(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"].as_str().expect("error").contains("gzip"));
    let (status, _, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        b"{}".to_vec(),
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook/bad%20name",
        event_list(sample_events()),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, json, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        event_list(vec![]),
        &[],
    )
    .await;
    assert_eq!(
        (status, json["accepted"].as_u64()),
        (StatusCode::OK, Some(0)),
        "an empty list is fine"
    );
    assert_eq!(sink.rows(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_even_when_they_only_inflate_past_it() {
    let sink = Arc::new(MemorySink::with_budget(1 << 30));
    let big = event_list(sample_events());
    let limit = big.len() - 1;
    let (status, json, _) = post(
        app(Arc::clone(&sink), limit),
        "/v1/webhook",
        big.clone(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    // A gzip bomb: 64 MiB of zeros in a few KiB.
    let bomb = gzip(&vec![b' '; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let (status, json, _) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        bomb,
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert!(
        json["error"]
            .as_str()
            .expect("error")
            .contains("decompression")
    );
    assert_eq!(sink.rows(), 0);
}

#[tokio::test]
async fn a_full_pipeline_gets_429_and_a_failed_sink_503_both_with_retry_after() {
    let sink = Arc::new(MemorySink::with_budget(10));
    let (status, _, retry) = post(
        app(Arc::clone(&sink), 1 << 20),
        "/v1/webhook",
        event_list(sample_events()),
        &[],
    )
    .await;
    assert_eq!(
        (status, retry.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("1"))
    );
    let broken = Arc::new(MemorySink {
        budget: 1 << 30,
        broken: true,
        ..MemorySink::default()
    });
    let (status, json, retry) = post(
        app(broken, 1 << 20),
        "/v1/webhook",
        event_list(sample_events()),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{json}");
    assert!(retry.is_some());
}
