//! What the console's read routes share: query-string filters parsed once, filters built as
//! DataFusion expressions (values are literals, never SQL text), and the time histogram.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use datafusion::common::ScalarValue;
use datafusion::prelude::{DataFrame, Expr, col, lit};

use auditlake_schema::time::{now_micros, parse_time_bound};

use crate::error::ApiError;
use crate::format;
use crate::state::ApiState;

/// A query string's `key=value` pairs, checked against the keys a route knows.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    now: i64,
}

impl Params {
    /// The pairs of `query`; a key outside `known` is refused, naming the known ones.
    pub(crate) fn parse(query: Option<&str>, known: &[&str]) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !known.contains(&key.as_ref()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown filter `{key}`; use {}",
                    known.join(", ")
                )));
            }
            if !value.is_empty() {
                pairs.push((key.into_owned(), value.into_owned()));
            }
        }
        Ok(Self {
            pairs,
            now: now_micros(),
        })
    }

    /// The last value given for `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `key` as a time bound (µs since the epoch).
    pub(crate) fn time(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| {
                parse_time_bound(v, self.now).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "`{key}={v}` is not an RFC 3339 time, a YYYY-MM-DD date or a duration ago such as 24h"
                    ))
                })
            })
            .transpose()
    }

    /// `key` as a count from 1 to `max`, `default` when absent.
    pub(crate) fn count(&self, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("`{key}={v}` must be a number from 1 to {max}"))
                }),
        }
    }
}

/// A timestamp literal of the lake's type.
pub(crate) fn time_lit(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

/// `column >= since AND column < until`, for the bounds given.
pub(crate) fn time_range(column: &str, since: Option<i64>, until: Option<i64>) -> Vec<Expr> {
    let mut out = Vec::new();
    if let Some(since) = since {
        out.push(col(column).gt_eq(time_lit(since)));
    }
    if let Some(until) = until {
        out.push(col(column).lt(time_lit(until)));
    }
    out
}

/// Whether any of `columns` holds `text`, ignoring case. A plain substring test, so `%` or `_`
/// in the text mean themselves.
pub(crate) fn contains_text(columns: &[&str], text: &str) -> Expr {
    use datafusion::functions::expr_fn::{lower, strpos};
    let needle = text.to_lowercase();
    columns
        .iter()
        .map(|c| strpos(lower(col(*c)), lit(needle.as_str())).gt(lit(0)))
        .reduce(Expr::or)
        .unwrap_or(lit(true))
}

/// Every filter of `filters` and-ed onto `frame`.
pub(crate) fn filtered(frame: DataFrame, filters: &[Expr]) -> datafusion::error::Result<DataFrame> {
    match filters.iter().cloned().reduce(Expr::and) {
        Some(all) => frame.filter(all),
        None => Ok(frame),
    }
}

/// Rows of a result as JSON objects.
pub(crate) fn rows(result: &auditlake_engine::QueryResult) -> Result<serde_json::Value, ApiError> {
    let mut out = Vec::new();
    format::write_json(&result.batches, &mut out).map_err(ApiError::internal)?;
    serde_json::from_slice(&out).map_err(ApiError::internal)
}

/// Widths a histogram's buckets may have, in seconds.
const BUCKETS: [i64; 12] = [
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    7 * 86_400,
    30 * 86_400,
    365 * 86_400,
];
/// Bars a histogram has at most.
const MAX_BARS: i64 = 72;

/// The narrowest bucket that covers `span_micros` in at most [`MAX_BARS`] bars.
fn bucket_seconds(span_micros: i64) -> i64 {
    let span = span_micros.max(1) / 1_000_000;
    BUCKETS
        .into_iter()
        .find(|w| span / w < MAX_BARS)
        .unwrap_or(BUCKETS[BUCKETS.len() - 1])
}

/// Counts of `table`'s rows matching `filters` per time bucket of `time_column`, the bucket's
/// width chosen from the time range (the bounds given, else the rows' own first and last time).
pub(crate) async fn histogram(
    state: &ApiState,
    table: &str,
    time_column: &str,
    filters: &[Expr],
    since: Option<i64>,
    until: Option<i64>,
) -> Result<serde_json::Value, ApiError> {
    use datafusion::functions::expr_fn::date_bin;
    use datafusion::functions_aggregate::expr_fn::{count, max, min};
    let (from, to) = match (since, until) {
        (Some(s), Some(u)) => (s, u),
        _ => {
            let (bounds, _) = state
                .query
                .frame(table, |f| {
                    filtered(f, filters)?.aggregate(
                        vec![],
                        vec![
                            min(col(time_column)).alias("first"),
                            max(col(time_column)).alias("last"),
                        ],
                    )
                })
                .await?;
            let value = |i: usize| {
                bounds.batches.first().and_then(|b| {
                    let a = b.column(i).as_primitive_opt::<TimestampMicrosecondType>()?;
                    (!a.is_null(0)).then(|| a.value(0))
                })
            };
            match (since.or(value(0)), until.or(value(1).map(|l| l + 1))) {
                (Some(s), Some(u)) => (s, u),
                _ => return Ok(serde_json::json!({"bucket_seconds": 60, "buckets": []})),
            }
        }
    };
    let width = bucket_seconds(to - from);
    let stride = lit(ScalarValue::IntervalMonthDayNano(Some(
        arrow::datatypes::IntervalMonthDayNano::new(0, 0, width * 1_000_000_000),
    )));
    let (result, _) = state
        .query
        .frame(table, |f| {
            filtered(f, filters)?
                .aggregate(
                    vec![date_bin(stride, col(time_column), time_lit(0)).alias("bucket")],
                    vec![count(lit(1)).alias("n")],
                )?
                .sort(vec![col("bucket").sort(true, false)])
        })
        .await?;
    let mut buckets = Vec::new();
    for batch in &result.batches {
        // The bucket's type follows the time column's; read it as µs whatever it is.
        let start = arrow::compute::cast(
            batch.column(0),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )
        .map_err(ApiError::internal)?;
        let start = start
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| ApiError::internal("histogram bucket is not a time"))?;
        let n = batch
            .column(1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| ApiError::internal("histogram count is not an integer"))?;
        for i in 0..batch.num_rows() {
            buckets.push(serde_json::json!({
                "start_ms": start.value(i) / 1000,
                "count": n.value(i),
            }));
        }
    }
    Ok(serde_json::json!({
        "bucket_seconds": width,
        "since_ms": from / 1000,
        "until_ms": to / 1000,
        "buckets": buckets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fit_the_range() {
        assert_eq!(bucket_seconds(30 * 60 * 1_000_000), 60);
        assert_eq!(bucket_seconds(24 * 3600 * 1_000_000), 30 * 60);
        assert_eq!(bucket_seconds(7 * 86_400 * 1_000_000), 3 * 3600);
        assert_eq!(bucket_seconds(0), 60);
    }

    #[test]
    fn unknown_keys_are_refused_and_empty_values_ignored() {
        let p = Params::parse(Some("a=1&b=&a=2"), &["a", "b"]).expect("params");
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), None);
        let err = Params::parse(Some("c=1"), &["a"]).err().expect("refused");
        assert!(err.to_string().contains("use a"), "{err}");
        assert!(p.count("a", 5, 1).is_err());
    }
}
