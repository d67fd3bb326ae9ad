//! `GET /v1/events`: events over a time range with column filters, newest first, with the top
//! values of the facet columns, a time histogram, and the SQL each part ran.

use datafusion::prelude::{Expr, col, lit};

use auditlake_schema::columns::event;

use crate::alert::TIMELINE_COLUMNS;
use crate::error::ApiError;
use crate::params::{Params, contains_text, filtered, histogram, rows, time_range};
use crate::state::ApiState;
use crate::state::Caller;
use axum::extract::RawQuery;

/// Columns that can be filtered on by value, and are counted as facets.
const FACETS: [&str; 8] = [
    event::USER_NAME,
    event::VERB,
    event::RESOURCE,
    event::NAMESPACE,
    event::RESPONSE_CODE,
    event::USER_AGENT,
    event::SOURCE_IP,
    event::CLUSTER,
];
/// Other columns that can be filtered on by value.
const OTHER_FILTERS: [&str; 4] = [
    event::SUBRESOURCE,
    event::NAME,
    event::AUDIT_ID,
    event::STAGE,
];
/// Values shown per facet.
const FACET_VALUES: usize = 10;
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 5000;
/// Columns the free text `q` is looked for in.
const TEXT_COLUMNS: [&str; 3] = [event::REQUEST_URI, event::USER_NAME, event::USER_AGENT];

fn known() -> Vec<&'static str> {
    let mut known = vec!["since", "until", "q", "limit", "facets"];
    known.extend(FACETS);
    known.extend(OTHER_FILTERS);
    known
}

/// The filters of `params` as expressions over `events`.
fn filters(params: &Params) -> Result<Vec<Expr>, ApiError> {
    let mut out = time_range(
        event::EVENT_TIME,
        params.time("since")?,
        params.time("until")?,
    );
    for column in FACETS.iter().chain(&OTHER_FILTERS) {
        let Some(value) = params.get(column) else {
            continue;
        };
        if *column == event::RESPONSE_CODE {
            let code: i32 = value.parse().map_err(|_| {
                ApiError::BadRequest(format!("`response_code={value}` is not a number"))
            })?;
            out.push(col(*column).eq(lit(code)));
        } else {
            out.push(col(*column).eq(lit(value)));
        }
    }
    if let Some(text) = params.get("q") {
        out.push(contains_text(&TEXT_COLUMNS, text));
    }
    Ok(out)
}

/// The most frequent values of `column` among the matching events.
async fn facet(
    state: &ApiState,
    column: &'static str,
    filters: &[Expr],
) -> Result<(serde_json::Value, String), ApiError> {
    use datafusion::functions_aggregate::expr_fn::count;
    let (result, sql) = state
        .query
        .frame("events", |f| {
            filtered(f, filters)?
                .aggregate(
                    vec![col(column).alias("value")],
                    vec![count(lit(1)).alias("count")],
                )?
                .sort(vec![
                    col("count").sort(false, false),
                    col("value").sort(true, false),
                ])?
                .limit(0, Some(FACET_VALUES))
        })
        .await?;
    Ok((rows(&result)?, sql))
}

pub(crate) async fn list(
    Caller(state, _): Caller,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let _slot = state.query_slot().await?;
    let params = Params::parse(query.as_deref(), &known())?;
    let limit = params.count("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let with_facets = params.get("facets") != Some("0");
    let filters = filters(&params)?;
    let listing = async {
        state
            .query
            .frame("events", |f| {
                filtered(f, &filters)?
                    .select_columns(&TIMELINE_COLUMNS)?
                    .sort(vec![
                        col(event::EVENT_TIME).sort(false, false),
                        col(event::AUDIT_ID).sort(true, false),
                    ])?
                    .limit(0, Some(limit))
            })
            .await
            .map_err(ApiError::from)
    };
    let facets = async {
        let mut out = serde_json::Map::new();
        let mut sql = serde_json::Map::new();
        if with_facets {
            // One after another: the facets share the request's query slot, and each scan
            // already uses every core, so running them at once would only add memory.
            for column in FACETS {
                let (values, text) = facet(&state, column, &filters).await?;
                out.insert(column.to_string(), values);
                sql.insert(column.to_string(), text.into());
            }
        }
        Ok::<_, ApiError>((out, sql))
    };
    let histogram = async {
        if !with_facets {
            return Ok(serde_json::Value::Null);
        }
        histogram(
            &state,
            "events",
            event::EVENT_TIME,
            &filters,
            params.time("since")?,
            params.time("until")?,
        )
        .await
    };
    let ((listed, sql), (facets, facet_sql), histogram) =
        tokio::try_join!(listing, facets, histogram)?;
    let events = rows(&listed)?;
    Ok(axum::Json(serde_json::json!({
        "count": events.as_array().map_or(0, Vec::len),
        "limit": limit,
        "events": events,
        "sql": sql,
        "facets": facets,
        "facet_sql": facet_sql,
        "histogram": histogram,
    })))
}
