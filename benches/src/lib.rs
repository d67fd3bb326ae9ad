//! Benchmarks of auditlake, and the input they run on.
//!
//! Realistic volume is made by amplifying `sample-logs/`: every copy of every scenario gets fresh
//! audit IDs and times shifted forward, so dedup never collapses it and partitions spread like a
//! real day of traffic.
//!
//! # Layout
//! - [`amplify`]: the deterministic amplifier; [`Generator`]: seeded realistic traffic at scale.
//! - [`lines`], [`decode_each`], [`decode_batches`], [`store`]: the line split, the decode loop
//!   and a rule-less lake load the benches share.
//! - [`roundtrip`]: checks a replayed file against a plain `serde_json` decode.
//! - `benches/normalize.rs`, `benches/rules.rs`, `benches/query.rs`: criterion.
//! - `examples/generate.rs`, `decode_file.rs`, `roundtrip.rs`: the binaries `compare.sh` drives.
//! - `examples/decode_profile.rs`: the decode loop as a plain binary, for profilers.
#![warn(missing_docs)]

pub mod generate;
pub mod habits;
pub mod judge;
pub mod roundtrip;

pub use generate::{Generator, Ids};

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use auditlake_engine::Pipeline;
use auditlake_schema::Decoder;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Rows per decoded batch, as `auditlake replay` makes them.
pub const BATCH_ROWS: usize = 16 * 1024;

/// The investigator questions of the comparison (`benches/compare.py` asks DuckDB the same).
pub const INVESTIGATOR_QUERIES: [(&str, &str); 3] = [
    (
        "pods_exec_count",
        "SELECT count(*) AS n FROM events WHERE resource = 'pods' AND subresource = 'exec'",
    ),
    (
        "top_users_by_403",
        "SELECT user_name, count(*) AS n FROM events WHERE response_code = 403 \
         GROUP BY user_name ORDER BY n DESC, user_name LIMIT 10",
    ),
    (
        "top_service_accounts_listing_secrets",
        "SELECT user_name, count(*) AS n FROM events WHERE verb = 'list' AND resource = 'secrets' \
         AND user_name LIKE 'system:serviceaccount:%' GROUP BY user_name \
         ORDER BY n DESC, user_name LIMIT 10",
    ),
];

/// NDJSON decoded into `events` batches of [`BATCH_ROWS`]; returns them and how many lines (or
/// list items) were rejected.
pub fn decode_batches(input: &[u8]) -> (Vec<RecordBatch>, usize) {
    let mut batches = Vec::new();
    let rejected = decode_each(input, |batch| batches.push(batch));
    (batches, rejected)
}

/// NDJSON decoded into `events` batches of [`BATCH_ROWS`], each handed to `consume` as soon as it
/// is full, the way `auditlake replay` hands them on; returns how many lines (or list items) were
/// rejected.
pub fn decode_each(input: &[u8], mut consume: impl FnMut(RecordBatch)) -> usize {
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    for line in lines(input) {
        decoder.decode(line, &mut rejected);
        if decoder.len() >= BATCH_ROWS {
            consume(decoder.finish());
        }
    }
    consume(decoder.finish());
    rejected.len()
}

/// The non-empty lines of NDJSON input.
pub fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    std::iter::from_fn(move || {
        while start < input.len() {
            let end = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |i| start + i);
            let line = &input[start..end];
            start = end + 1;
            if !line.is_empty() {
                return Some(line);
            }
        }
        None
    })
}

/// Stores NDJSON in a lake under `data_dir` without rules; returns the events stored.
pub fn store(input: &[u8], data_dir: &Path) -> Result<u64, String> {
    let (batches, rejected) = decode_batches(input);
    if rejected > 0 {
        return Err(format!("{rejected} lines rejected"));
    }
    let mut pipeline = Pipeline::open(data_dir, None).map_err(|e| e.to_string())?;
    for batch in &batches {
        pipeline.ingest(batch).map_err(|e| e.to_string())?;
    }
    pipeline.flush().map_err(|e| e.to_string())?;
    Ok(pipeline.totals().stored)
}

/// `sample-logs/` of this repository: beside the package directory a test or benchmark runs in
/// (`benches/`, or the repository's root when the root package's tests use the generator).
pub fn sample_logs_dir() -> PathBuf {
    let package = auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR"));
    let root = package.join("sample-logs");
    if root.is_dir() {
        root
    } else {
        package.join("../sample-logs")
    }
}

/// Every event of `sample-logs/*.log`, parsed.
pub fn sample_events() -> std::io::Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sample_logs_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut events = Vec::new();
    for file in files {
        for line in std::fs::read_to_string(file)?.lines() {
            if let Ok(v) = serde_json::from_str(line) {
                events.push(v);
            }
        }
    }
    Ok(events)
}

/// A traffic mix like a real cluster's: the benign baseline of `sample-logs/` forty times over
/// for every copy of the attack scenarios (about 1.5% attack traffic), so that benchmarks of the
/// rules measure evaluation rather than alert building.
pub fn realistic_events() -> std::io::Result<Vec<Value>> {
    let dir = sample_logs_dir();
    let mut events = Vec::new();
    let parse = |name: &str| -> std::io::Result<Vec<Value>> {
        Ok(std::fs::read_to_string(dir.join(name))?
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    };
    let benign = parse("benign-busy-cluster.log")?;
    for _ in 0..40 {
        events.extend(benign.iter().cloned());
    }
    for attack in sample_events()? {
        if !benign.contains(&attack) {
            events.push(attack);
        }
    }
    Ok(events)
}

/// NDJSON of at least `target` events: copies of `events`, copy `k` shifted `k` minutes forward
/// with audit IDs made unique per copy. Deterministic for the same input.
pub fn amplify(events: &[Value], target: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(target * 1024);
    let mut copy = 0i64;
    let mut written = 0;
    while written < target && !events.is_empty() {
        for (i, event) in events.iter().enumerate() {
            let mut e = event.clone();
            if let Some(obj) = e.as_object_mut() {
                obj.insert(
                    "auditID".into(),
                    Value::String(format!(
                        "{copy:08x}-{i:04x}-4000-8000-{:012x}",
                        copy * 7919 + i as i64
                    )),
                );
                for field in ["requestReceivedTimestamp", "stageTimestamp"] {
                    if let Some(Value::String(t)) = obj.get(field)
                        && let Ok(parsed) = DateTime::parse_from_rfc3339(t)
                    {
                        let shifted = parsed.with_timezone(&Utc) + chrono::Duration::minutes(copy);
                        obj.insert(
                            field.into(),
                            Value::String(shifted.to_rfc3339_opts(SecondsFormat::Micros, true)),
                        );
                    }
                }
            }
            serde_json::to_writer(&mut out, &e).expect("writing JSON to a Vec cannot fail");
            out.push(b'\n');
            written += 1;
            if written == target {
                break;
            }
        }
        copy += 1;
    }
    out
}
