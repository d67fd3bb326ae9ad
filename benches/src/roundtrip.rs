//! Does a replayed NDJSON file come back whole? Every event must be in `events` once, and on a
//! sample of lines every column that maps straight from a field of the Event must equal what a
//! plain `serde_json` decode of that line says.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use auditlake_engine::{QueryEngine, QueryLimits};
use serde_json::{Map, Value};

/// What [`check`] compared.
#[derive(Debug, Default, serde::Serialize)]
pub struct RoundTrip {
    /// Lines (events) in the file.
    pub events: u64,
    /// Rows of `events` and distinct audit IDs among them.
    pub stored: u64,
    /// Distinct audit IDs in `events`.
    pub distinct: u64,
    /// Lines compared column by column.
    pub sampled: u64,
    /// Column values compared.
    pub values_compared: u64,
    /// What differed, `audit_id column: stored != decoded` (at most 20 kept).
    pub mismatches: Vec<String>,
}

impl RoundTrip {
    /// Every event stored once and no sampled value differing.
    pub fn ok(&self) -> bool {
        self.stored == self.events
            && self.distinct == self.events
            && self.sampled > 0
            && self.mismatches.is_empty()
    }
}

/// Columns selected for the comparison; times as µs since the epoch.
const SELECT: &str = "SELECT audit_id, stage, level, \
    CAST(event_time AS BIGINT) AS event_time, CAST(stage_time AS BIGINT) AS stage_time, \
    verb, request_uri, user_name, user_uid, user_groups, user_extra, impersonated_user, \
    impersonated_groups, source_ip, source_ips, user_agent, resource, subresource, namespace, \
    name, api_group, api_version, response_code, response_status, response_reason, \
    response_message, decision, decision_reason, annotations, request_object, response_object \
    FROM events";

/// Checks the lake under `data_dir` against `ndjson`, comparing every `every`-th line.
pub fn check(ndjson: &Path, data_dir: &Path, every: usize) -> Result<RoundTrip, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let engine = QueryEngine::open(data_dir, QueryLimits::default()).map_err(|e| e.to_string())?;
    let rows = |sql: String| -> Result<Vec<Map<String, Value>>, String> {
        let result = runtime
            .block_on(engine.query(&sql))
            .map_err(|e| format!("{sql}: {e}"))?;
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        let batches: Vec<_> = result.batches.iter().collect();
        writer.write_batches(&batches).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        let bytes = writer.into_inner();
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let counts = rows("SELECT count(*) AS n, count(DISTINCT audit_id) AS d FROM events".into())?;
    let mut report = RoundTrip {
        stored: counts[0]["n"].as_u64().unwrap_or(0),
        distinct: counts[0]["d"].as_u64().unwrap_or(0),
        ..RoundTrip::default()
    };

    let file = std::fs::File::open(ndjson).map_err(|e| format!("{}: {e}", ndjson.display()))?;
    let mut sample: HashMap<String, Value> = HashMap::new();
    for (i, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        report.events += 1;
        if i % every.max(1) == 0 {
            let event: Value = serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", ndjson.display(), i + 1))?;
            let id = event["auditID"].as_str().unwrap_or_default().to_string();
            sample.insert(id, event);
        }
    }
    let ids: Vec<&String> = sample.keys().collect();
    for chunk in ids.chunks(500) {
        let list = chunk
            .iter()
            .map(|id| format!("'{}'", id.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(",");
        for row in rows(format!("{SELECT} WHERE audit_id IN ({list})"))? {
            let id = row["audit_id"].as_str().unwrap_or_default().to_string();
            let Some(event) = sample.get(&id) else {
                continue;
            };
            report.sampled += 1;
            compare(&id, &row, event, &mut report);
        }
    }
    Ok(report)
}

/// The `events` columns a straight decode of `event` gives.
fn expected(event: &Value) -> Vec<(&'static str, Value)> {
    let text = |v: &Value| v.as_str().map_or(Value::Null, |s| Value::String(s.into()));
    let json = |v: &Value| if v.is_null() { Value::Null } else { v.clone() };
    let micros = |v: &Value| {
        v.as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(Value::Null, |t| Value::from(t.timestamp_micros()))
    };
    let user = &event["user"];
    let object = &event["objectRef"];
    let status = &event["responseStatus"];
    let annotations = &event["annotations"];
    let impersonated = &event["impersonatedUser"];
    vec![
        ("stage", text(&event["stage"])),
        ("level", text(&event["level"])),
        ("event_time", micros(&event["requestReceivedTimestamp"])),
        ("stage_time", micros(&event["stageTimestamp"])),
        ("verb", text(&event["verb"])),
        ("request_uri", text(&event["requestURI"])),
        ("user_name", text(&user["username"])),
        ("user_uid", text(&user["uid"])),
        ("user_groups", json(&user["groups"])),
        ("user_extra", json(&user["extra"])),
        ("impersonated_user", text(&impersonated["username"])),
        ("impersonated_groups", json(&impersonated["groups"])),
        ("source_ip", text(&event["sourceIPs"][0])),
        ("source_ips", json(&event["sourceIPs"])),
        ("user_agent", text(&event["userAgent"])),
        ("resource", text(&object["resource"])),
        ("subresource", text(&object["subresource"])),
        ("namespace", text(&object["namespace"])),
        ("name", text(&object["name"])),
        ("api_group", text(&object["apiGroup"])),
        ("api_version", text(&object["apiVersion"])),
        ("response_code", json(&status["code"])),
        ("response_status", text(&status["status"])),
        ("response_reason", text(&status["reason"])),
        ("response_message", text(&status["message"])),
        (
            "decision",
            text(&annotations["authorization.k8s.io/decision"]),
        ),
        (
            "decision_reason",
            text(&annotations["authorization.k8s.io/reason"]),
        ),
        ("annotations", json(annotations)),
        ("request_object", json(&event["requestObject"])),
        ("response_object", json(&event["responseObject"])),
    ]
}

/// Columns stored as JSON text.
const JSON_TEXT: [&str; 4] = [
    "user_extra",
    "annotations",
    "request_object",
    "response_object",
];

fn compare(id: &str, row: &Map<String, Value>, event: &Value, report: &mut RoundTrip) {
    // Secret values and tokens are redacted on purpose: their bodies are not compared.
    let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
    let subresource = event["objectRef"]["subresource"]
        .as_str()
        .unwrap_or_default();
    let redacted = matches!(resource, "secrets" | "tokenreviews") || subresource == "token";
    for (column, want) in expected(event) {
        if redacted && column.ends_with("_object") {
            continue;
        }
        let stored = row.get(column).cloned().unwrap_or(Value::Null);
        let stored = match (&stored, JSON_TEXT.contains(&column)) {
            (Value::String(text), true) => serde_json::from_str(text).unwrap_or(stored),
            _ => stored,
        };
        report.values_compared += 1;
        if stored != want && report.mismatches.len() < 20 {
            report
                .mismatches
                .push(format!("{id} {column}: stored {stored} != decoded {want}"));
        }
    }
}
