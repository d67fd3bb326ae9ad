//! `GET /v1/alerts` (newest first, filtered by `since`, `until`, `rule`, `severity`, `category`,
//! `cluster`, `status`, free text `q`, `limit`), `GET /v1/alerts/summary` (counts per rule and
//! severity and a time histogram for the same filters) and `GET /v1/rules`.

use std::collections::HashMap;

use arrow::array::AsArray;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use datafusion::prelude::{Expr, col, lit};

use auditlake_engine::Status;
use auditlake_schema::columns::alert;

use crate::error::ApiError;
use crate::format;
use crate::params::{Params, contains_text, filtered, histogram, time_range};
use crate::state::ApiState;
use crate::state::Caller;

/// Alerts returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// Alerts returned at most.
const MAX_LIMIT: usize = 10_000;
const FILTERS: [&str; 9] = [
    "since", "until", "rule", "severity", "category", "cluster", "status", "q", "limit",
];
/// Columns the free text `q` is looked for in.
const TEXT_COLUMNS: [&str; 5] = [
    alert::MESSAGE,
    alert::USER_NAME,
    alert::RESOURCE,
    alert::NAME,
    alert::RULE_ID,
];

/// The filters of `params` as expressions over `alerts`.
fn filters(state: &ApiState, params: &Params) -> Result<Vec<Expr>, ApiError> {
    let mut out = time_range(
        alert::EVENT_TIME,
        params.time("since")?,
        params.time("until")?,
    );
    for (key, column) in [
        ("rule", alert::RULE_ID),
        ("severity", alert::SEVERITY),
        ("category", alert::CATEGORY),
        ("cluster", alert::CLUSTER),
    ] {
        if let Some(value) = params.get(key) {
            out.push(col(column).eq(lit(value)));
        }
    }
    if let Some(text) = params.get("q") {
        out.push(contains_text(&TEXT_COLUMNS, text));
    }
    if let Some(status) = params.get("status") {
        let status = Status::parse(status).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`status={status}` is not one of open, acknowledged, resolved, false_positive"
            ))
        })?;
        out.push(status_filter(state, status)?);
    }
    Ok(out)
}

/// Alerts in `status`: the triaged ones by id, and for `open` every alert not triaged otherwise.
fn status_filter(state: &ApiState, status: Status) -> Result<Expr, ApiError> {
    let Some(store) = &state.triage else {
        return Ok(lit(status == Status::Open));
    };
    let ids = |s: Status| -> Result<Vec<Expr>, ApiError> {
        Ok(store.with_status(s)?.into_iter().map(lit).collect())
    };
    if status == Status::Open {
        let others: Vec<Expr> = Status::ALL
            .into_iter()
            .filter(|s| *s != Status::Open)
            .map(ids)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        return Ok(if others.is_empty() {
            lit(true)
        } else {
            col(alert::ALERT_ID).in_list(others, true)
        });
    }
    let ids = ids(status)?;
    Ok(if ids.is_empty() {
        lit(false)
    } else {
        col(alert::ALERT_ID).in_list(ids, false)
    })
}

/// The triage state of the alerts in `result`, by id, for those that have one.
pub(crate) fn triage_of(
    state: &ApiState,
    result: &auditlake_engine::QueryResult,
) -> Result<serde_json::Value, ApiError> {
    let Some(store) = &state.triage else {
        return Ok(serde_json::json!({}));
    };
    let mut ids = Vec::new();
    for batch in &result.batches {
        if let Some(column) = batch.column_by_name(alert::ALERT_ID) {
            let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
                .map_err(ApiError::internal)?;
            ids.extend(
                column
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
    }
    let found: HashMap<_, _> = store.current_of(ids.iter().map(String::as_str))?;
    serde_json::to_value(found).map_err(ApiError::internal)
}

pub(crate) async fn list(
    Caller(state, _): Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let _slot = state.query_slot().await?;
    let params = Params::parse(query.as_deref(), &FILTERS)?;
    let limit = params.count("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let filters = filters(&state, &params)?;
    let (result, _) = state
        .query
        .frame("alerts", |f| {
            filtered(f, &filters)?
                .sort(vec![
                    col(alert::EVENT_TIME).sort(false, false),
                    col(alert::ALERT_ID).sort(true, false),
                ])?
                .limit(0, Some(limit))
        })
        .await?;
    let triage = serde_json::to_vec(&triage_of(&state, &result)?).map_err(ApiError::internal)?;
    let mut rows = Vec::new();
    format::write_json(&result.batches, &mut rows).map_err(ApiError::internal)?;
    let count: usize = result.batches.iter().map(|b| b.num_rows()).sum();
    let mut out = format!("{{\"count\":{count},\"alerts\":").into_bytes();
    out.extend_from_slice(&rows);
    out.extend_from_slice(b",\"triage\":");
    out.extend_from_slice(&triage);
    out.push(b'}');
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// `GET /v1/alerts/summary`: how many alerts match, per rule and severity, and over time.
pub(crate) async fn summary(
    Caller(state, _): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let _slot = state.query_slot().await?;
    use datafusion::functions_aggregate::expr_fn::{count, max};
    let params = Params::parse(query.as_deref(), &FILTERS)?;
    let filters = filters(&state, &params)?;
    let (by_rule, _) = state
        .query
        .frame("alerts", |f| {
            filtered(f, &filters)?
                .aggregate(
                    vec![col(alert::RULE_ID), col(alert::SEVERITY)],
                    vec![
                        count(lit(1)).alias("count"),
                        max(col(alert::RULE_TITLE)).alias("rule_title"),
                        max(col(alert::EVENT_TIME)).alias("last"),
                    ],
                )?
                .sort(vec![
                    col("count").sort(false, false),
                    col(alert::RULE_ID).sort(true, false),
                ])
        })
        .await?;
    let by_rule = crate::params::rows(&by_rule)?;
    let total: i64 = by_rule
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["count"].as_i64()).sum())
        .unwrap_or(0);
    let histogram = histogram(
        &state,
        "alerts",
        alert::EVENT_TIME,
        &filters,
        params.time("since")?,
        params.time("until")?,
    )
    .await?;
    Ok(axum::Json(serde_json::json!({
        "total": total,
        "by_rule": by_rule,
        "histogram": histogram,
    })))
}

pub(crate) async fn rules(State(state): State<ApiState>) -> Response {
    axum::Json(state.rules.as_ref().clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_refuse_what_they_do_not_know() {
        let p = Params::parse(
            Some("rule=exec-into-pod&severity=high&limit=5&since=2025-03-01"),
            &FILTERS,
        )
        .expect("filter");
        assert_eq!(p.get("rule"), Some("exec-into-pod"));
        assert_eq!(
            p.count("limit", DEFAULT_LIMIT, MAX_LIMIT).expect("limit"),
            5
        );
        assert!(p.time("since").expect("since").is_some());
        let bad = Params::parse(Some("limit=0"), &FILTERS).expect("parsed");
        assert!(bad.count("limit", DEFAULT_LIMIT, MAX_LIMIT).is_err());
        let bad = Params::parse(Some("since=yesterday"), &FILTERS).expect("parsed");
        assert!(bad.time("since").is_err());
        assert!(Params::parse(Some("user=alice"), &FILTERS).is_err());
    }
}
