//! `POST /v1/query`: `{"sql": "..."}` in; rows out as JSON (default), CSV (`Accept: text/csv`) or
//! an Arrow IPC stream (`Accept: application/vnd.apache.arrow.stream`). The engine refuses
//! anything but a query and enforces the time, memory and row limits; here the number of queries
//! running at once is bounded too.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::{ACCESS_TABLE, RanSql};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::format;
use crate::state::{ApiState, Caller};

/// Largest SQL body accepted.
const MAX_QUERY_BODY: usize = 1 << 20;
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
}

enum Encoding {
    Json,
    Csv,
    Arrow,
}

impl Encoding {
    fn from_accept(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains(ARROW_STREAM) {
            Encoding::Arrow
        } else if accept.contains("text/csv") {
            Encoding::Csv
        } else {
            Encoding::Json
        }
    }
}

pub(crate) async fn run(
    Caller(state, caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(body, MAX_QUERY_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit_bytes: MAX_QUERY_BODY,
        })?;
    let request: QueryRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("the body must be JSON {{\"sql\": \"...\"}}: {e}"))
    })?;
    let sql = RanSql(request.sql.clone());
    let mut response = answer(&state, &caller, &headers, request)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(sql);
    Ok(response)
}

async fn answer(
    state: &ApiState,
    caller: &Principal,
    headers: &HeaderMap,
    request: QueryRequest,
) -> Result<Response, ApiError> {
    if !caller.admin
        && state
            .query
            .tables_read(&request.sql)
            .iter()
            .any(|t| t == ACCESS_TABLE)
    {
        return Err(ApiError::ForbiddenBecause(format!(
            "{ACCESS_TABLE} is for admin tokens"
        )));
    }
    let encoding = Encoding::from_accept(headers);
    let _slot = state.query_slot().await?;

    let started = Instant::now();
    let result = state.query.query(&request.sql).await;
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!("auditlake_query_seconds").record(seconds);
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) if e.is_user_error() => "refused",
        Err(_) => "error",
    };
    metrics::counter!("auditlake_queries_total", "outcome" => outcome).increment(1);
    let result = result?;

    let mut out = Vec::new();
    let content_type = match encoding {
        Encoding::Json => {
            let mut rows = Vec::new();
            format::write_json(&result.batches, &mut rows).map_err(ApiError::internal)?;
            let columns: Vec<serde_json::Value> = result
                .schema
                .fields()
                .iter()
                .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                .collect();
            let row_count: usize = result.batches.iter().map(|b| b.num_rows()).sum();
            let head = serde_json::json!({
                "columns": columns,
                "row_count": row_count,
                "truncated": result.truncated,
                "elapsed_ms": (seconds * 1000.0).round() as u64,
            });
            // `{...head, "rows": [...]}` without parsing the rows back into values.
            let head = serde_json::to_vec(&head).map_err(ApiError::internal)?;
            out.extend_from_slice(&head[..head.len() - 1]);
            out.extend_from_slice(b",\"rows\":");
            out.extend_from_slice(&rows);
            out.push(b'}');
            "application/json"
        }
        Encoding::Csv => {
            format::write_csv(&result.schema, &result.batches, &mut out)
                .map_err(ApiError::internal)?;
            "text/csv; charset=utf-8"
        }
        Encoding::Arrow => {
            format::write_arrow_ipc(&result.schema, &result.batches, &mut out)
                .map_err(ApiError::internal)?;
            ARROW_STREAM
        }
    };
    let mut response = ([(header::CONTENT_TYPE, content_type)], out).into_response();
    response.headers_mut().insert(
        "x-auditlake-truncated",
        HeaderValue::from_static(if result.truncated { "true" } else { "false" }),
    );
    Ok(response)
}
