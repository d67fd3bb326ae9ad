//! `GET /healthz` (the process answers), `/readyz` (the write-ahead log is replayed, writes
//! work and every source is connected), `/metrics` (Prometheus text) and `/v1/status` (the same
//! figures as JSON for the console, with the lake's sizes).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use auditlake_engine::Readiness;

use crate::error::ApiError;
use crate::state::ApiState;
use crate::state::Caller;

pub(crate) async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// 200 once the writer takes traffic and every source (the Kafka consumer) works; else 503
/// saying what is not ready.
pub(crate) async fn readyz(State(state): State<ApiState>) -> Response {
    let (mut status, mut text) = match state.readiness() {
        Readiness::Ready => (StatusCode::OK, "ready".to_string()),
        Readiness::Replaying => (
            StatusCode::SERVICE_UNAVAILABLE,
            "replaying write-ahead log".to_string(),
        ),
    };
    if let Some(problem) = state.service.as_ref().and_then(|s| s.problem()) {
        status = StatusCode::SERVICE_UNAVAILABLE;
        text = problem;
    }
    let mut body = serde_json::Map::new();
    for source in &state.sources {
        let (ready, detail) = source.check();
        if !ready && status == StatusCode::OK {
            status = StatusCode::SERVICE_UNAVAILABLE;
            text = format!("{} is not ready", source.name());
        }
        body.insert(source.name().to_string(), detail);
    }
    body.insert("status".into(), text.into());
    (status, axum::Json(serde_json::Value::Object(body))).into_response()
}

pub(crate) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("metrics are not enabled".into()))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

/// `GET /v1/status` (the `query` scope): readiness, the server's own counters and gauges from
/// its metrics, the sizes of the lake and the write-ahead log, and how old the newest event is,
/// for the console's health view.
pub(crate) async fn status(Caller(state, caller): Caller) -> Result<Response, ApiError> {
    let _slot = state.query_slot().await?;
    let mut metrics = serde_json::Map::new();
    // The server's counters and the lake's sizes are of every cluster: not for a token limited
    // to some.
    let whole = caller.clusters.is_none();
    if let Some(handle) = state.metrics.as_ref().filter(|_| whole) {
        for (name, value) in counters(&handle.render()) {
            metrics.insert(name, value.into());
        }
    }
    let sizes = match state.data_dir.clone().filter(|_| whole) {
        Some(dir) => tokio::task::spawn_blocking(move || {
            let mut sizes = serde_json::Map::new();
            for part in ["events", "alerts", "wal", "triage"] {
                sizes.insert(part.into(), dir_bytes(&dir.join(part)).into());
            }
            sizes
        })
        .await
        .map_err(ApiError::internal)?,
        None => serde_json::Map::new(),
    };
    let now = auditlake_schema::time::now_micros();
    let newest = {
        use datafusion::functions_aggregate::expr_fn::max;
        use datafusion::prelude::col;
        let day = crate::params::time_range("event_time", Some(now - 86_400_000_000), None);
        let (result, _) = state
            .query
            .frame("events", |f| {
                crate::params::filtered(f, &day)?
                    .aggregate(vec![], vec![max(col("event_time")).alias("newest")])
            })
            .await?;
        crate::params::rows(&result)?[0]["newest"].clone()
    };
    let ready = matches!(state.readiness(), Readiness::Ready);
    Ok(axum::Json(serde_json::json!({
        "ready": ready,
        "now_ms": now / 1000,
        "newest_event_today": newest,
        "bytes": sizes,
        "metrics": metrics,
    }))
    .into_response())
}

/// Each `auditlake_*` sample of Prometheus text, labelled ones also summed under their bare name
/// (histogram quantiles left out).
fn counters(text: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with("auditlake_") || line.contains("quantile=") {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        out.push((series.to_string(), value));
        if let Some((name, _)) = series.split_once('{') {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += value,
                None => out.push((name.to_string(), value)),
            }
        }
    }
    out
}

/// Bytes of the files under `dir`, 0 when it does not exist.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_and_labelled_ones_summed() {
        let text = "# TYPE x counter\nauditlake_events_stored_total 12\n\
            auditlake_queries_total{outcome=\"ok\"} 3\nauditlake_queries_total{outcome=\"refused\"} 2\n\
            auditlake_query_seconds{quantile=\"0.5\"} 0.1\nother_metric 5\n";
        let got = counters(text);
        let get = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(get("auditlake_events_stored_total"), Some(12.0));
        assert_eq!(get("auditlake_queries_total"), Some(5.0));
        assert_eq!(get("auditlake_queries_total{outcome=\"ok\"}"), Some(3.0));
        assert_eq!(get("other_metric"), None);
        assert!(got.iter().all(|(k, _)| !k.contains("quantile")));
    }
}
