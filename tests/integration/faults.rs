//! Faults injected into a running server: clocks and event times, slow clients, a full disk, a
//! damaged lake. Each test says what it injects and checks that nothing acknowledged is lost and
//! that the server goes on by itself.

use std::path::Path;

use crate::serve::{Server, client, event_list, sql};
use crate::*;

/// `event(id)` at `time` (its request and stage times).
fn at(id: &str, time: &str) -> serde_json::Value {
    let mut e = event(id);
    e["requestReceivedTimestamp"] = time.into();
    e["stageTimestamp"] = time.into();
    e
}

fn hour_partitions(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(data.join("events"))
        .expect("events dir")
        .flatten()
    {
        let name = day.file_name().to_string_lossy().to_string();
        if name.starts_with("date=") {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn events_far_in_the_past_or_future_are_rejected_not_partitioned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The server's defaults (7 days back, 1 hour ahead), not the tests' `off`.
    let mut server = Server::start(&data, &[], &[("AUDITLAKE_MAX_EVENT_AGE", "7d")]);
    let c = client();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut items = vec![at("now", &now)];
    for (i, time) in [
        "1970-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
        "2001-09-09T01:46:40.000000Z",
    ]
    .iter()
    .enumerate()
    {
        items.push(at(&format!("forged-{i}"), time));
    }
    let answer: serde_json::Value = c
        .post(format!("{}/v1/webhook/prod", server.url))
        .body(event_list(&items))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected_count"], 3, "{answer}");
    for r in answer["rejected"].as_array().expect("rejected") {
        assert!(
            r["reason"]
                .as_str()
                .expect("reason")
                .contains("outside the accepted window"),
            "{r}"
        );
    }
    // A body of nothing but forged times: 400, the reason given, nothing stored.
    let response = c
        .post(format!("{}/v1/webhook/prod", server.url))
        .body(event_list(&[at("old", "1970-01-01T00:00:00Z")]))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    let rows = sql(&c, &server.url, "SELECT audit_id FROM events").await;
    assert_eq!(rows["rows"].as_array().expect("rows").len(), 1, "{rows}");
    assert!(server.terminate().success());
    let days = hour_partitions(&data);
    assert_eq!(days.len(), 1, "one day of partitions: {days:?}");
}
