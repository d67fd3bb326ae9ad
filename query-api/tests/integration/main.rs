//! Integration tests of the query API: every route in-process over a lake built from
//! `sample-logs/`.

mod console;
mod routes;

use std::path::Path;
use std::sync::Arc;

use auditlake_engine::{Pipeline, QueryEngine, QueryLimits};
use auditlake_query_api::{ApiState, Auth};
use auditlake_rules::{CompiledPack, RuleEngine, RuleSet};
use auditlake_schema::Decoder;
use axum::body::Body;
use axum::http::{Request, Response};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Tokens every test may use.
pub const TOKENS: &str = "ops admin admin-token-0123456789\nanalyst query query-token-0123456789\napiserver ingest ingest-token-0123456789";

pub fn pack() -> CompiledPack {
    CompiledPack::compile(&RuleSet::builtin().expect("builtin rules")).expect("compile")
}

/// A lake holding every sample log, rules run.
pub fn sample_lake(dir: &Path) {
    let pack = pack();
    let mut pipeline = Pipeline::open(dir, Some(RuleEngine::new(&pack))).expect("pipeline");
    let samples = auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR")).join("../sample-logs");
    let mut files: Vec<_> = std::fs::read_dir(&samples)
        .expect("sample-logs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    for file in files {
        let mut decoder = Decoder::new(None);
        let mut rejected = Vec::new();
        for line in std::fs::read_to_string(&file).expect("read").lines() {
            if !line.trim().is_empty() {
                decoder.decode(line.as_bytes(), &mut rejected);
            }
        }
        assert!(rejected.is_empty(), "{}: {rejected:?}", file.display());
        pipeline.ingest(&decoder.finish()).expect("ingest");
    }
    pipeline.flush().expect("flush");
}

pub fn state(dir: &Path, limits: QueryLimits, auth: Auth) -> ApiState {
    let query = QueryEngine::open(dir, limits).expect("query engine");
    ApiState::new(Arc::new(query), &pack(), auth)
}

/// Sends one request; returns status, content type and body.
pub async fn send(state: &ApiState, request: Request<Body>) -> (u16, String, Vec<u8>) {
    let response: Response<Body> = auditlake_query_api::router(state.clone())
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, content_type, body.to_vec())
}

pub fn query_request(sql: &str, accept: Option<&str>, token: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/v1/query").header("content-type", "application/json");
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::from(
        serde_json::to_vec(&serde_json::json!({"sql": sql})).expect("json"),
    ))
    .expect("request")
}

pub fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Body::empty()).expect("request")
}

/// One audit event at `time`, as JSON text.
pub fn event_json(time: &str) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("ready-{time}"), "stage": "ResponseComplete", "verb": "get",
        "requestURI": "/api/v1/pods", "user": {"username": "alice"},
        "objectRef": {"resource": "pods"}, "responseStatus": {"code": 200},
        "requestReceivedTimestamp": time, "stageTimestamp": time,
    })
    .to_string()
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}
