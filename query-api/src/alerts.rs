//! `GET /v1/alerts` (newest first, filtered by `since`, `until`, `rule`, `severity`, `category`,
//! `cluster`, `limit`) and `GET /v1/rules`.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use auditlake_engine::query::AlertFilter;
use auditlake_schema::time::{now_micros, parse_time_bound};

use crate::error::ApiError;
use crate::format;
use crate::state::ApiState;

/// Alerts returned when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;
/// Alerts returned at most.
const MAX_LIMIT: usize = 10_000;

fn parse_filter(query: Option<&str>) -> Result<AlertFilter, ApiError> {
    let now = now_micros();
    let mut filter = AlertFilter {
        limit: DEFAULT_LIMIT,
        ..AlertFilter::default()
    };
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let time = |v: &str| {
            parse_time_bound(v, now).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`{key}={v}` is not an RFC 3339 time, a YYYY-MM-DD date or a duration ago such as 24h"
                ))
            })
        };
        match key.as_ref() {
            "since" => filter.since = Some(time(&value)?),
            "until" => filter.until = Some(time(&value)?),
            "rule" => filter.rule = Some(value.into_owned()),
            "severity" => filter.severity = Some(value.into_owned()),
            "category" => filter.category = Some(value.into_owned()),
            "cluster" => filter.cluster = Some(value.into_owned()),
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "`limit={value}` must be a number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown filter `{other}`; use since, until, rule, severity, category, cluster, limit"
                )));
            }
        }
    }
    Ok(filter)
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let filter = parse_filter(query.as_deref())?;
    let result = state.query.alerts(&filter).await?;
    let mut rows = Vec::new();
    format::write_json(&result.batches, &mut rows).map_err(ApiError::internal)?;
    let count: usize = result.batches.iter().map(|b| b.num_rows()).sum();
    let mut out = format!("{{\"count\":{count},\"alerts\":").into_bytes();
    out.extend_from_slice(&rows);
    out.push(b'}');
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

pub(crate) async fn rules(State(state): State<ApiState>) -> Response {
    axum::Json(state.rules.as_ref().clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_what_they_do_not_know() {
        let f = parse_filter(Some(
            "rule=exec-into-pod&severity=high&limit=5&since=2025-03-01",
        ))
        .expect("filter");
        assert_eq!(f.rule.as_deref(), Some("exec-into-pod"));
        assert_eq!(f.limit, 5);
        assert!(f.since.is_some() && f.until.is_none());
        assert!(parse_filter(Some("limit=0")).is_err());
        assert!(parse_filter(Some("since=yesterday")).is_err());
        assert!(parse_filter(Some("user=alice")).is_err());
        assert_eq!(parse_filter(None).expect("none").limit, DEFAULT_LIMIT);
    }
}
