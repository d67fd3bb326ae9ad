//! The console's routes in-process: the page and its policy, alert detail and context, triage
//! and its scope, exceptions, events with facets, and the SQL an events view shows.

use std::sync::Arc;
use std::time::Duration;

use auditlake_engine::{QueryLimits, TriageStore};
use auditlake_query_api::{ApiState, Auth};
use axum::body::Body;
use axum::http::Request;

use crate::{get, json, query_request, sample_lake, send, state};

const TOKENS: &str = "ops admin admin-token-0123456789\nanalyst query query-token-0123456789\n\
                      triager query,triage triage-token-0123456789";

fn console_state(dir: &std::path::Path) -> ApiState {
    let limits = QueryLimits {
        max_rows: Some(10_000),
        timeout: Some(Duration::from_secs(30)),
        memory_bytes: 256 << 20,
        threads: None,
    };
    let mut s = state(dir, limits, Auth::with_tokens(TOKENS).expect("tokens"));
    let store = Arc::new(TriageStore::open(dir).expect("triage"));
    s.query.register_triage(Arc::clone(&store)).expect("tables");
    s.triage = Some(store);
    s.exceptions_file = Some(dir.join("exceptions.yaml"));
    s
}

fn with_token(
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request")
}

async fn exec_alert(s: &ApiState) -> serde_json::Value {
    let (status, _, body) = send(
        s,
        get(
            "/v1/alerts?rule=pod-exec-attach&q=mallory&limit=1",
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)["alerts"][0].clone()
}

#[tokio::test]
async fn the_page_is_served_with_a_policy_that_forbids_inline_and_foreign_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = console_state(dir.path());
    let response = auditlake_query_api::router(s.clone())
        .oneshot_get("/")
        .await;
    let csp = response.0.expect("a policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(response.1.contains("/console/app.js"));
    let (status, ctype, _) = send(&s, get("/console/alerts.js", None)).await;
    assert_eq!(
        (status, ctype.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let (status, _, body) = send(&s, get("/console/../../etc/passwd", None)).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    // The data behind the page still needs a token.
    let (status, _, _) = send(&s, get("/v1/alerts", None)).await;
    assert_eq!(status, 401);
}

trait OneshotGet {
    async fn oneshot_get(self, path: &str) -> (Option<String>, String);
}

impl OneshotGet for axum::Router {
    async fn oneshot_get(self, path: &str) -> (Option<String>, String) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let response = self.oneshot(get(path, None)).await.expect("response");
        let csp = response
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().expect("ascii").to_string());
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (csp, String::from_utf8(body.to_vec()).expect("utf8"))
    }
}

#[tokio::test]
async fn an_alert_comes_with_its_event_rule_and_the_users_context() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = console_state(dir.path());
    let alert = exec_alert(&s).await;
    let id = alert["alert_id"].as_str().expect("id");
    let time = alert["event_time"].as_str().expect("time");
    let (status, _, body) = send(
        &s,
        get(
            &format!("/v1/alerts/{id}?time={time}&minutes=30"),
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let d = json(&body);
    assert_eq!(d["rule"]["id"], "pod-exec-attach");
    let event = d["event"]
        .as_array()
        .expect("event")
        .last()
        .expect("trigger")
        .clone();
    assert_eq!(event["audit_id"], alert["audit_id"]);
    assert!(
        event["exec_command"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let context = &d["context"];
    assert_eq!(context["identity"], "mallory@example.com");
    let events = context["events"].as_array().expect("events");
    assert!(events.len() > 1);
    assert!(
        events
            .iter()
            .all(|e| e["user_name"] == "mallory@example.com")
    );
    let times: Vec<&str> = events
        .iter()
        .map(|e| e["event_time"].as_str().expect("t"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let alerting = context["alerts"].as_array().expect("alerts");
    assert!(alerting.iter().any(|a| a["alert_id"] == id));

    // Without the time hint the alert is found too; an unknown id is a JSON 404.
    let (status, _, _) = send(
        &s,
        get(&format!("/v1/alerts/{id}"), Some("query-token-0123456789")),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = send(&s, get("/v1/alerts/nope", Some("query-token-0123456789"))).await;
    assert_eq!(status, 404);
    assert!(
        json(&body)["error"]
            .as_str()
            .is_some_and(|e| e.contains("nope"))
    );
    let (status, _, _) = send(
        &s,
        get(
            &format!("/v1/alerts/{id}?minutes=0"),
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn triage_needs_its_scope_is_kept_and_filters_the_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = console_state(dir.path());
    let alert = exec_alert(&s).await;
    let id = alert["alert_id"].as_str().expect("id");
    let change =
        serde_json::json!({"status": "false_positive", "assignee": "alice", "note": "pentest"});

    let (status, _, _) = send(
        &s,
        with_token(
            "PATCH",
            &format!("/v1/alerts/{id}"),
            "query-token-0123456789",
            Some(change.clone()),
        ),
    )
    .await;
    assert_eq!(status, 403, "query alone does not grant triage");
    let (status, _, body) = send(
        &s,
        with_token(
            "PATCH",
            &format!("/v1/alerts/{id}"),
            "triage-token-0123456789",
            Some(serde_json::json!({"status": "closed"})),
        ),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(
        &s,
        with_token(
            "PATCH",
            "/v1/alerts/nope",
            "triage-token-0123456789",
            Some(change.clone()),
        ),
    )
    .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = send(
        &s,
        with_token(
            "PATCH",
            &format!("/v1/alerts/{id}"),
            "triage-token-0123456789",
            Some(change),
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let d = json(&body);
    assert_eq!(d["triage"]["changed_by"], "triager");
    assert_eq!(d["history"].as_array().map(Vec::len), Some(1));

    let list = |q: &'static str| {
        let s = s.clone();
        async move {
            let (status, _, body) = send(
                &s,
                get(&format!("/v1/alerts?{q}"), Some("query-token-0123456789")),
            )
            .await;
            assert_eq!(status, 200);
            json(&body)
        }
    };
    let fp = list("status=false_positive").await;
    assert_eq!(fp["count"], 1);
    assert_eq!(fp["triage"][id]["assignee"], "alice");
    let all = list("limit=10000").await["count"].as_u64().expect("n");
    let open = list("status=open&limit=10000").await["count"]
        .as_u64()
        .expect("n");
    assert_eq!(open, all - 1);

    // The verdict is a table next to alerts.
    let sql = "SELECT t.status, a.rule_id FROM triage t JOIN alerts a USING (alert_id)";
    let (_, _, body) = send(&s, query_request(sql, None, Some("query-token-0123456789"))).await;
    let rows = json(&body)["rows"].clone();
    assert_eq!(
        rows,
        serde_json::json!([{"status": "false_positive", "rule_id": "pod-exec-attach"}])
    );

    // The false positive becomes an exception: shown, then appended to the server's file.
    let (status, _, body) = send(
        &s,
        get(
            &format!("/v1/alerts/{id}/exception?fields=user_name,namespace"),
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let yaml = json(&body)["yaml"].as_str().expect("yaml").to_string();
    assert!(
        yaml.contains("mallory@example.com") && yaml.contains("pod-exec-attach"),
        "{yaml}"
    );
    let (status, _, _) = send(
        &s,
        with_token(
            "POST",
            &format!("/v1/alerts/{id}/exception?fields=user_name"),
            "query-token-0123456789",
            None,
        ),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, body) = send(
        &s,
        with_token(
            "POST",
            &format!("/v1/alerts/{id}/exception?fields=user_name,namespace"),
            "triage-token-0123456789",
            None,
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The file loads and compiles as rules after the pack.
    let mut set = auditlake_rules::RuleSet::builtin().expect("builtin");
    set.merge_dir(&dir.path().join("exceptions.yaml"))
        .expect("the file is a rules file");
    auditlake_rules::CompiledPack::compile(&set).expect("compiles");
    let (status, _, body) = send(
        &s,
        get(
            &format!("/v1/alerts/{id}/exception?fields=request_object"),
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn events_come_with_facets_a_histogram_and_the_sql_they_ran() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample_lake(dir.path());
    let s = console_state(dir.path());
    let (status, _, body) = send(
        &s,
        get(
            "/v1/events?source_ip=198.51.100.7&limit=1000",
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let d = json(&body);
    let events = d["events"].as_array().expect("events");
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["source_ip"] == "198.51.100.7"));
    let users = d["facets"]["user_name"].as_array().expect("facet");
    assert_eq!(users[0]["value"], "mallory@example.com");
    let counted: u64 = d["facets"]["verb"]
        .as_array()
        .expect("verbs")
        .iter()
        .map(|v| v["count"].as_u64().expect("n"))
        .sum();
    assert_eq!(counted as usize, events.len(), "facets count the same rows");
    let bars: u64 = d["histogram"]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["count"].as_u64().expect("n"))
        .sum();
    assert_eq!(bars as usize, events.len());

    // The SQL shown for the view answers the same rows through /v1/query.
    let sql = d["sql"].as_str().expect("sql");
    let (status, _, body) =
        send(&s, query_request(sql, None, Some("query-token-0123456789"))).await;
    assert_eq!(status, 200, "{sql}: {}", String::from_utf8_lossy(&body));
    assert_eq!(
        json(&body)["rows"].as_array().map(Vec::len),
        Some(events.len()),
        "{sql}"
    );
    let facet_sql = d["facet_sql"]["user_name"].as_str().expect("facet sql");
    let (_, _, body) = send(
        &s,
        query_request(facet_sql, None, Some("query-token-0123456789")),
    )
    .await;
    assert_eq!(json(&body)["rows"][0]["value"], "mallory@example.com");

    // A quote in a value is a value, not SQL.
    let (status, _, body) = send(
        &s,
        get(
            "/v1/events?user_name=x%27%20OR%20%271%27%3D%271",
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["count"], 0);
    let (status, _, _) = send(
        &s,
        get(
            "/v1/events?response_code=abc",
            Some("query-token-0123456789"),
        ),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = send(
        &s,
        get("/v1/events?password=x", Some("query-token-0123456789")),
    )
    .await;
    assert_eq!(status, 400);
}
