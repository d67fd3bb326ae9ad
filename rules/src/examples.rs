//! Running the `examples` every rule carries: each `fires` example must raise the rule's alert and
//! each `silent` one must not. A rule without both kinds fails.
//!
//! An example is an audit event written in YAML (missing `kind`, `apiVersion`, `auditID`, `stage`,
//! `level` and timestamps are filled in), or a reference to a sample log: `FILE#LINE` for one line,
//! `FILE` for the whole file, or `{repeat: N, event: {...}, vary: {PATH: [values]}}` for N copies
//! (threshold rules need many events).

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
    let docs: Vec<String> = match example {
        Value::String(reference) => referenced_lines(reference, base_dir)?,
        Value::Object(obj) if obj.contains_key("repeat") => repeated(obj, &rule.def.id, index)?,
        Value::Object(_) => vec![complete(example, &rule.def.id, index).to_string()],
        _ => return Err("an example is an event (a mapping) or a FILE[#LINE] reference".into()),
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
    let mut engine = RuleEngine::with_rules(pack, vec![rule.clone()]);
    let alerts = engine.evaluate(&batch).map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        message
    })?;
    Ok(alerts.num_rows())
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
