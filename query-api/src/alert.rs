//! One alert: `GET /v1/alerts/{id}` (the alert, its rule, the triggering event, the evidence and
//! the identity's context timeline), `PATCH /v1/alerts/{id}` (triage) and
//! `GET`/`POST /v1/alerts/{id}/exception` (a false positive turned into a rule exception).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use axum::extract::{Path, RawQuery};
use datafusion::prelude::{Expr, col, lit};
use serde::Deserialize;

use auditlake_engine::{Status, TriageUpdate};
use auditlake_schema::columns::{alert, event};
use auditlake_schema::time::now_micros;

use crate::error::ApiError;
use crate::params::{Params, filtered, rows, time_range};
use crate::state::ApiState;
use crate::state::Caller;

const MINUTE: i64 = 60_000_000;
/// How far around the alert's time `time=` lets the alert be looked for.
const HINT_SLACK: i64 = 60 * MINUTE;
/// Evidence events looked for this long before the alert.
const EVIDENCE_LOOKBACK: i64 = 24 * 60 * MINUTE;
/// Evidence events returned at most.
const MAX_EVIDENCE: usize = 200;
/// The columns of an event in a timeline.
pub(crate) const TIMELINE_COLUMNS: [&str; 14] = [
    event::EVENT_TIME,
    event::STAGE,
    event::USER_NAME,
    event::VERB,
    event::RESOURCE,
    event::SUBRESOURCE,
    event::NAMESPACE,
    event::NAME,
    event::RESPONSE_CODE,
    event::SOURCE_IP,
    event::USER_AGENT,
    event::EXEC_COMMAND,
    event::REQUEST_URI,
    event::AUDIT_ID,
];
/// Columns an exception made from an alert may match on (all of them in both tables).
const EXCEPTION_FIELDS: [&str; 9] = [
    alert::USER_NAME,
    alert::SOURCE_IP,
    alert::USER_AGENT,
    alert::VERB,
    alert::RESOURCE,
    alert::SUBRESOURCE,
    alert::NAMESPACE,
    alert::NAME,
    alert::CLUSTER,
];

/// The alert row with the values the routes need from it.
struct Found {
    batch: RecordBatch,
    time: i64,
}

impl Found {
    fn text(&self, column: &str) -> Option<String> {
        let array = self.batch.column_by_name(column)?;
        let array = arrow::compute::cast(array, &DataType::Utf8).ok()?;
        let array = array.as_string::<i32>();
        (!array.is_null(0)).then(|| array.value(0).to_string())
    }

    fn evidence(&self) -> Vec<String> {
        let Some(list) = self
            .batch
            .column_by_name(alert::EVIDENCE)
            .and_then(|c| c.as_list_opt::<i32>())
        else {
            return Vec::new();
        };
        if list.is_null(0) {
            return Vec::new();
        }
        let values = list.value(0);
        let Ok(values) = arrow::compute::cast(&values, &DataType::Utf8) else {
            return Vec::new();
        };
        values
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect()
    }
}

async fn find(state: &ApiState, id: &str, params: &Params) -> Result<Found, ApiError> {
    let mut filters = vec![col(alert::ALERT_ID).eq(lit(id))];
    if let Some(hint) = params.time("time")? {
        filters.extend(time_range(
            alert::EVENT_TIME,
            Some(hint - HINT_SLACK),
            Some(hint + HINT_SLACK),
        ));
    }
    let (result, _) = state
        .query
        .frame("alerts", |f| filtered(f, &filters)?.limit(0, Some(1)))
        .await?;
    let batch = result
        .batches
        .into_iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| ApiError::NotFound(format!("no alert with id {id:?}")))?;
    let time = batch
        .column_by_name(alert::EVENT_TIME)
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .map(|c| c.value(0))
        .ok_or_else(|| ApiError::internal("alert without event_time"))?;
    Ok(Found { batch, time })
}

/// Events matching `filters`, oldest first, at most `limit`, with the timeline's columns (or
/// every column).
async fn events(
    state: &ApiState,
    filters: Vec<Expr>,
    limit: usize,
    all_columns: bool,
) -> Result<(serde_json::Value, bool), ApiError> {
    let (result, _) = state
        .query
        .frame("events", |f| {
            let f = filtered(f, &filters)?;
            let f = if all_columns {
                f
            } else {
                f.select_columns(&TIMELINE_COLUMNS)?
            };
            f.sort(vec![
                col(event::EVENT_TIME).sort(true, false),
                col(event::AUDIT_ID).sort(true, false),
            ])?
            .limit(0, Some(limit + 1))
        })
        .await?;
    let mut rows = rows(&result)?;
    let more = rows.as_array().is_some_and(|r| r.len() > limit);
    if let Some(rows) = rows.as_array_mut() {
        rows.truncate(limit);
    }
    Ok((rows, more))
}

/// `GET /v1/alerts/{id}?time=&minutes=&limit=`.
pub(crate) async fn detail(
    Caller(state, _): Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let _slot = state.query_slot().await?;
    let params = Params::parse(query.as_deref(), &["time", "minutes", "limit"])?;
    let minutes = params.count("minutes", 30, 24 * 60)? as i64;
    let limit = params.count("limit", 500, 5000)?;
    let found = find(&state, &id, &params).await?;
    let t = found.time;
    let rule_id = found.text(alert::RULE_ID).unwrap_or_default();

    // The identity is the user; an alert on an anonymous request follows its source address.
    let (identity_column, identity) = match found.text(alert::USER_NAME) {
        Some(user) => (event::USER_NAME, Some(user)),
        None => (event::SOURCE_IP, found.text(alert::SOURCE_IP)),
    };
    let window = || {
        time_range(
            event::EVENT_TIME,
            Some(t - minutes * MINUTE),
            Some(t + minutes * MINUTE),
        )
    };
    let same_identity = |column: &str| match &identity {
        Some(v) => col(column).eq(lit(v.as_str())),
        None => col(column).is_null(),
    };

    let trigger_id = found.text(alert::AUDIT_ID).unwrap_or_default();
    let trigger = {
        let mut f = time_range(
            event::EVENT_TIME,
            Some(t - 10 * MINUTE),
            Some(t + 10 * MINUTE),
        );
        f.push(col(event::AUDIT_ID).eq(lit(trigger_id.as_str())));
        events(&state, f, 10, true)
    };
    // The other events behind a threshold or sequence alert (the triggering one is shown above).
    let evidence_ids: Vec<Expr> = found
        .evidence()
        .into_iter()
        .filter(|id| *id != trigger_id)
        .take(MAX_EVIDENCE)
        .map(lit)
        .collect();
    let evidence = async {
        if evidence_ids.is_empty() {
            return Ok((serde_json::json!([]), false));
        }
        let mut f = time_range(
            event::EVENT_TIME,
            Some(t - EVIDENCE_LOOKBACK),
            Some(t + MINUTE),
        );
        f.push(col(event::AUDIT_ID).in_list(evidence_ids, false));
        events(&state, f, MAX_EVIDENCE, false).await
    };
    let context = {
        let mut f = window();
        f.push(same_identity(identity_column));
        events(&state, f, limit, false)
    };
    let context_alerts = async {
        let mut f = time_range(
            alert::EVENT_TIME,
            Some(t - minutes * MINUTE),
            Some(t + minutes * MINUTE),
        );
        f.push(same_identity(identity_column));
        let (result, _) = state
            .query
            .frame("alerts", |frame| {
                filtered(frame, &f)?
                    .select_columns(&[
                        alert::ALERT_ID,
                        alert::RULE_ID,
                        alert::SEVERITY,
                        alert::AUDIT_ID,
                        alert::EVENT_TIME,
                    ])?
                    .limit(0, Some(1000))
            })
            .await?;
        rows(&result)
    };
    let ((event_rows, _), (evidence_rows, _), (context_rows, truncated), alert_rows) =
        tokio::try_join!(trigger, evidence, context, context_alerts)?;

    let (triage, history) = match &state.triage {
        Some(store) => (store.current(&id)?, store.history(&id)?),
        None => (None, Vec::new()),
    };
    let rule = state.rules["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["id"] == rule_id.as_str()))
        .cloned();
    let alert_row = rows(&auditlake_engine::QueryResult {
        schema: found.batch.schema(),
        batches: vec![found.batch.clone()],
        truncated: false,
    })?;
    Ok(axum::Json(serde_json::json!({
        "alert": alert_row[0],
        "rule": rule,
        "triage": triage,
        "history": history,
        "event": event_rows,
        "evidence": evidence_rows,
        "context": {
            "identity_column": identity_column,
            "identity": identity,
            "minutes": minutes,
            "since_ms": (t - minutes * MINUTE) / 1000,
            "until_ms": (t + minutes * MINUTE) / 1000,
            "events": context_rows,
            "truncated": truncated,
            "alerts": alert_rows,
        },
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriageRequest {
    status: Option<String>,
    assignee: Option<String>,
    note: Option<String>,
}

/// `PATCH /v1/alerts/{id}`: `{"status": ..., "assignee": ..., "note": ...}`, each optional.
pub(crate) async fn triage(
    Caller(state, principal): Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let request: TriageRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"status\", \"assignee\", \"note\"}}: {e}"
        ))
    })?;
    let status = request
        .status
        .as_deref()
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "status {s:?} is not one of open, acknowledged, resolved, false_positive"
                ))
            })
        })
        .transpose()?;
    let store = state.triage.as_ref().ok_or_else(|| {
        ApiError::Conflict("this server keeps no triage state (it has no writer)".into())
    })?;
    let params = Params::parse(query.as_deref(), &["time"])?;
    let found = find(&state, &id, &params).await?;
    let rule_id = found.text(alert::RULE_ID).unwrap_or_default();
    let change = store.record(
        &id,
        &rule_id,
        TriageUpdate {
            status,
            assignee: request.assignee,
            note: request.note,
        },
        &principal.name,
        now_micros(),
    )?;
    tracing::info!(
        alert_id = %id,
        rule_id = %rule_id,
        status = change.status.name(),
        assignee = change.assignee.as_deref().unwrap_or(""),
        by = %principal.name,
        "alert triaged"
    );
    Ok(axum::Json(serde_json::json!({
        "triage": change,
        "history": store.history(&id)?,
    })))
}

/// The exception that silences alerts like `found` on `fields`.
fn exception(found: &Found, id: &str, fields: &[String]) -> Result<serde_json::Value, ApiError> {
    let mut values = Vec::new();
    for field in fields {
        if !EXCEPTION_FIELDS.contains(&field.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "an exception can match on {}, not {field:?}",
                EXCEPTION_FIELDS.join(", ")
            )));
        }
        values.push(found.text(field).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "the alert has no {field}, so it cannot be matched on"
            ))
        })?);
    }
    if fields.is_empty() {
        return Err(ApiError::BadRequest("choose at least one field".into()));
    }
    let short: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    Ok(serde_json::json!({
        "rule": found.text(alert::RULE_ID).unwrap_or_default(),
        "name": format!("triage-{short}"),
        "fields": fields,
        "values": [values],
    }))
}

/// The first lines of an exceptions file the server writes.
const EXCEPTIONS_HEADER: &str = "# False-positive exceptions added from the auditlake console; \
loaded by `auditlake serve --exceptions-file` after the other rules.\nappend:\n  exceptions:\n";

/// The entry as a line of the file: JSON is YAML, and escapes every value.
fn exception_line(entry: &serde_json::Value) -> String {
    format!("    - {entry}\n")
}

fn fields_of(params: &Params) -> Vec<String> {
    params
        .get("fields")
        .unwrap_or("user_name")
        .split(',')
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect()
}

/// `GET /v1/alerts/{id}/exception?fields=user_name,namespace`: the YAML to add.
pub(crate) async fn exception_preview(
    Caller(state, _): Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let params = Params::parse(query.as_deref(), &["time", "fields"])?;
    let found = find(&state, &id, &params).await?;
    let entry = exception(&found, &id, &fields_of(&params))?;
    Ok(axum::Json(serde_json::json!({
        "exception": entry,
        "yaml": format!("append:\n  exceptions:\n{}", exception_line(&entry)),
        "file": state.exceptions_file,
    })))
}

/// `POST /v1/alerts/{id}/exception?fields=...`: appends the exception to the server's
/// exceptions file; it applies from the next start.
pub(crate) async fn exception_append(
    Caller(state, principal): Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let file = state.exceptions_file.clone().ok_or_else(|| {
        ApiError::Conflict(
            "the server was started without --exceptions-file; add the YAML to a rules file".into(),
        )
    })?;
    let params = Params::parse(query.as_deref(), &["time", "fields"])?;
    let found = find(&state, &id, &params).await?;
    let mut fields = fields_of(&params);
    // A cluster-limited token silences a rule in its own clusters only.
    if principal.clusters.is_some() && !fields.iter().any(|f| f == alert::CLUSTER) {
        fields.push(alert::CLUSTER.into());
    }
    let entry = exception(&found, &id, &fields)?;
    let line = exception_line(&entry);
    let path = file.clone();
    tokio::task::spawn_blocking(move || append_exception(&path, &line))
        .await
        .map_err(ApiError::internal)??;
    tracing::info!(
        alert_id = %id,
        rule_id = %entry["rule"],
        file = %file.display(),
        by = %principal.name,
        "exception appended"
    );
    Ok(axum::Json(serde_json::json!({
        "exception": entry,
        "file": file,
        "applies": "from the server's next start",
    })))
}

/// Appends `line` to the exceptions file, creating it with its header; refuses a file the
/// server did not write, whose last section may not be the exceptions list.
fn append_exception(path: &std::path::Path, line: &str) -> Result<(), ApiError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    file.lock().map_err(ApiError::internal)?;
    let written = (|| {
        let text = std::fs::read_to_string(path).map_err(ApiError::internal)?;
        let mut out = String::new();
        if text.is_empty() {
            out.push_str(EXCEPTIONS_HEADER);
        } else if !text.starts_with(EXCEPTIONS_HEADER) || !text.ends_with('\n') {
            return Err(ApiError::Conflict(format!(
                "{} was not written by auditlake; add the YAML to it by hand",
                path.display()
            )));
        }
        out.push_str(line);
        file.write_all(out.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))
    })();
    let _ = file.unlock();
    written
}
