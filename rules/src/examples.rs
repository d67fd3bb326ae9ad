//! Running the `examples` every rule carries: each `fires` example must raise the rule's alert and
//! each `silent` one must not. A rule without both kinds fails.
//!
//! An example is an audit event written in YAML (missing `kind`, `apiVersion`, `auditID`, `stage`,
//! `level` and timestamps are filled in), or a reference to a sample log: `FILE#LINE` for one line,
//! `FILE` for the whole file, or `{repeat: N, event: {...}, vary: {PATH: [values]}}` for N copies
//! (threshold rules need many events).
//!
//! Rules that need history take a story: `{history: [...], days: 10, events: [...], gap: 1m}`.
//! Each `history` example happens once a day on each of the `days` days before, then the
//! `events` follow `gap` apart (each may be any of the forms above); only an alert on the last
//! event counts, so a first-seen rule is judged on the new term after its baseline, and a
//! sequence on the step that completes it. A story's `lists: {NAME: [addresses or blocks]}` fills
//! IP lists for its own run (the threat-intel list is empty until a user gives files).

use std::path::Path;

use arrow::record_batch::RecordBatch;
use auditlake_schema::Decoder;
use serde_json::Value;

use crate::compile::{CompiledPack, CompiledRule};
use crate::eval::RuleEngine;

/// One example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    /// The rule.
    pub rule: String,
    /// `fires[2]`, `silent[0]`, or `examples` when some are missing.
    pub example: String,
    /// What happened.
    pub reason: String,
}

impl std::fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule {}: {}: {}", self.rule, self.example, self.reason)
    }
}

/// What `rules test` found.
#[derive(Debug, Default)]
pub struct ExampleReport {
    /// Examples run.
    pub run: usize,
    /// The ones that failed.
    pub failures: Vec<ExampleFailure>,
}

/// Runs the examples of every rule of `pack` (disabled rules too: they must stay correct for the
/// users who enable them). References are resolved against `base_dir`.
pub fn run_examples(pack: &CompiledPack, base_dir: &Path) -> ExampleReport {
    let mut report = ExampleReport::default();
    for rule in &pack.rules {
        let examples = &rule.def.examples;
        for (kind, list) in [("fires", &examples.fires), ("silent", &examples.silent)] {
            if list.is_empty() {
                report.failures.push(ExampleFailure {
                    rule: rule.def.id.clone(),
                    example: "examples".into(),
                    reason: format!("no {kind} example"),
                });
            }
            for (i, example) in list.iter().enumerate() {
                report.run += 1;
                let name = format!("{kind}[{i}]");
                let outcome = alerts_for(pack, rule, example, i, base_dir);
                let failure = match (kind, outcome) {
                    (_, Err(reason)) => Some(reason),
                    ("fires", Ok(0)) => Some("expected an alert, got none".to_string()),
                    ("silent", Ok(n)) if n > 0 => Some(format!("expected no alert, got {n}")),
                    _ => None,
                };
                if let Some(reason) = failure {
                    report.failures.push(ExampleFailure {
                        rule: rule.def.id.clone(),
                        example: name,
                        reason,
                    });
                }
            }
        }
    }
    report
}

/// Alerts the rule raises on one example, run on its own.
fn alerts_for(
    pack: &CompiledPack,
    rule: &CompiledRule,
    example: &Value,
    index: usize,
    base_dir: &Path,
) -> Result<usize, String> {
    let story = example
        .as_object()
        .filter(|o| o.contains_key("events") || o.contains_key("history"));
    let (docs, last) = match story {
        Some(story) => {
            let docs = story_events(story, &rule.def.id, index, base_dir)?;
            let last = docs.last().and_then(|d| {
                serde_json::from_str::<Value>(d)
                    .ok()?
                    .get("auditID")?
                    .as_str()
                    .map(String::from)
            });
            (docs, last)
        }
        None => (documents(example, &rule.def.id, index, base_dir)?, None),
    };
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    for doc in &docs {
        decoder.decode(doc.as_bytes(), &mut rejected);
    }
    if let Some(r) = rejected.first() {
        return Err(format!("example is not a valid audit event: {r}"));
    }
    let batch: RecordBatch = decoder.finish();
    // A story may fill IP lists (`lists: {threat_intel_ips: [192.0.2.0/24]}`) for its own run.
    let mut restore = Vec::new();
    for (name, items) in story
        .and_then(|s| s.get("lists"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let text: Vec<&str> = items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let set = crate::ip::IpSet::parse(&text.join("\n"))
            .map_err(|(line, e)| format!("lists.{name}[{}]: {e}", line - 1))?;
        restore.push((name.clone(), pack.ip_lists.get(name)));
        pack.ip_lists.set(name, set);
    }
    let mut engine = RuleEngine::with_rules(pack, vec![rule.clone()]);
    let alerts = engine.evaluate(&batch);
    for (name, set) in restore {
        pack.ip_lists.set(&name, (*set).clone());
    }
    let alerts = alerts.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        message
    })?;
    let Some(last) = last else {
        return Ok(alerts.num_rows());
    };
    let ids = arrow::array::AsArray::as_string::<i32>(auditlake_schema::columns::column(
        &alerts,
        auditlake_schema::columns::alert::AUDIT_ID,
    ));
    Ok(ids.iter().filter(|id| *id == Some(last.as_str())).count())
}

/// One example's audit events as JSON lines.
fn documents(
    example: &Value,
    rule: &str,
    index: usize,
    base_dir: &Path,
) -> Result<Vec<String>, String> {
    match example {
        Value::String(reference) => referenced_lines(reference, base_dir),
        Value::Object(obj) if obj.contains_key("repeat") => repeated(obj, rule, index),
        Value::Object(_) => Ok(vec![complete(example, rule, index).to_string()]),
        _ => Err("an example is an event (a mapping) or a FILE[#LINE] reference".into()),
    }
}

/// The events of a story, timed: the history once a day on each of `days` days before
/// 2025-11-03T12:00Z, then the events from then on, `gap` apart. Each gets its own audit ID.
fn story_events(
    story: &serde_json::Map<String, Value>,
    rule: &str,
    index: usize,
    base_dir: &Path,
) -> Result<Vec<String>, String> {
    const DAY: i64 = 86_400_000_000;
    let base = auditlake_schema::time::parse_rfc3339_micros("2025-11-03T12:00:00Z")
        .ok_or("the stories' start time")?;
    let list = |key: &str| -> Result<Vec<String>, String> {
        let mut docs = Vec::new();
        for (i, e) in story
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            docs.extend(documents(e, rule, index * 1000 + i, base_dir)?);
        }
        Ok(docs)
    };
    let days = story.get("days").and_then(Value::as_i64).unwrap_or(10);
    let gap = match story.get("gap").and_then(Value::as_str) {
        Some(g) => crate::parse_duration(g)
            .ok_or_else(|| format!("gap {g:?} is not like 30s, 1m"))?
            .as_micros() as i64,
        None => 60_000_000,
    };
    let history = list("history")?;
    let events = list("events")?;
    if events.is_empty() {
        return Err("a story needs events".into());
    }
    let mut out = Vec::new();
    let mut timed = |doc: &str, at: i64, n: usize| -> Result<(), String> {
        let mut event: Value =
            serde_json::from_str(doc).map_err(|e| format!("example event: {e}"))?;
        let time = timestamp(at);
        if let Some(obj) = event.as_object_mut() {
            obj.insert(
                "auditID".into(),
                format!("example-{rule}-{index}-story-{n}").into(),
            );
            obj.insert("requestReceivedTimestamp".into(), time.clone().into());
            obj.insert("stageTimestamp".into(), time.into());
            obj.remove("timestamp");
        }
        out.push(event.to_string());
        Ok(())
    };
    let mut n = 0;
    for day in (1..=days).rev() {
        for (i, doc) in history.iter().enumerate() {
            timed(doc, base - day * DAY + i as i64 * 1_000_000, n)?;
            n += 1;
        }
    }
    for (i, doc) in events.iter().enumerate() {
        timed(doc, base + i as i64 * gap, n)?;
        n += 1;
    }
    Ok(out)
}

fn timestamp(micros: i64) -> String {
    arrow::temporal_conversions::timestamp_us_to_datetime(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// `{repeat: N, event: {...}, vary: {"objectRef.resource": [a, b]}}`: N copies of the event with
/// their own audit IDs, one second apart, each `vary` path cycling through its values.
fn repeated(
    obj: &serde_json::Map<String, Value>,
    rule: &str,
    index: usize,
) -> Result<Vec<String>, String> {
    let n = obj
        .get("repeat")
        .and_then(Value::as_u64)
        .ok_or("repeat must be a number")?;
    let base = obj.get("event").ok_or("repeat needs an event")?;
    let vary = obj.get("vary").and_then(Value::as_object);
    let mut out = Vec::new();
    for i in 0..n {
        let mut event = base.clone();
        if let Some(e) = event.as_object_mut() {
            e.insert(
                "auditID".into(),
                format!("example-{rule}-{index}-{i}").into(),
            );
            let t = format!("2025-11-03T12:{:02}:{:02}.000000Z", (i / 60) % 60, i % 60);
            e.insert("requestReceivedTimestamp".into(), t.clone().into());
            e.insert("stageTimestamp".into(), t.into());
        }
        for (path, values) in vary.into_iter().flatten() {
            let values = values.as_array().ok_or("vary values must be lists")?;
            if values.is_empty() {
                continue;
            }
            let value = values[i as usize % values.len()].clone();
            set_path(&mut event, path, value);
        }
        out.push(complete(&event, rule, index).to_string());
    }
    Ok(out)
}

fn set_path(event: &mut Value, path: &str, value: Value) {
    let mut at = event;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let Some(obj) = at.as_object_mut() else {
            return;
        };
        if i == parts.len() - 1 {
            obj.insert((*part).to_string(), value);
            return;
        }
        at = obj
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

fn referenced_lines(reference: &str, base_dir: &Path) -> Result<Vec<String>, String> {
    let (file, line) = match reference.rsplit_once('#') {
        Some((f, l)) => (
            f,
            Some(
                l.parse::<usize>()
                    .map_err(|_| format!("bad line number in {reference}"))?,
            ),
        ),
        None => (reference, None),
    };
    let text = std::fs::read_to_string(base_dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from);
    match line {
        None => Ok(lines.collect()),
        Some(n) => text
            .lines()
            .nth(n.saturating_sub(1))
            .map(|l| vec![l.to_string()])
            .ok_or_else(|| format!("{file} has no line {n}")),
    }
}

/// Fills what an example may leave out.
fn complete(example: &Value, rule: &str, index: usize) -> Value {
    let mut event = example.clone();
    let Some(obj) = event.as_object_mut() else {
        return event;
    };
    let defaults = [
        ("kind", Value::from("Event")),
        ("apiVersion", Value::from("audit.k8s.io/v1")),
        ("auditID", Value::from(format!("example-{rule}-{index}"))),
        ("stage", Value::from("ResponseComplete")),
        (
            "requestReceivedTimestamp",
            Value::from("2025-11-03T12:00:00.000000Z"),
        ),
        ("stageTimestamp", Value::from("2025-11-03T12:00:00.005000Z")),
    ];
    for (key, value) in defaults {
        obj.entry(key).or_insert(value);
    }
    if !obj.contains_key("level") {
        let level = if obj.contains_key("requestObject") || obj.contains_key("responseObject") {
            "RequestResponse"
        } else {
            "Metadata"
        };
        obj.insert("level".into(), level.into());
    }
    event
}
