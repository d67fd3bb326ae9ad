//! The generated traffic goes through decode and the lake and comes back whole: every event stored
//! once, and sampled rows equal to a plain serde_json decode column by column.

use auditlake_benches::{Generator, roundtrip};
use auditlake_engine::Pipeline;
use auditlake_schema::Decoder;

#[test]
fn generated_traffic_round_trips_through_the_lake() {
    const EVENTS: usize = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("traffic.ndjson");
    let mut bytes = Vec::new();
    Generator::new(3)
        .expect("sample-logs/ is readable")
        .ndjson(EVENTS, &mut bytes)
        .expect("write");
    std::fs::write(&file, &bytes).expect("write file");

    let data = dir.path().join("data");
    let mut pipeline = Pipeline::open(&data, None).expect("open lake");
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        decoder.decode(line, &mut rejected);
        if decoder.len() >= 4096 {
            pipeline.ingest(&decoder.finish()).expect("ingest");
        }
    }
    pipeline.ingest(&decoder.finish()).expect("ingest");
    pipeline.flush().expect("flush");
    assert!(rejected.is_empty(), "{rejected:?}");

    let report = roundtrip::check(&file, &data, 50).expect("check");
    assert_eq!(report.events, EVENTS as u64);
    assert!(report.sampled >= 390, "{report:?}");
    assert!(report.ok(), "{report:?}");
}

#[test]
fn a_changed_value_is_caught() {
    const EVENTS: usize = 2_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    Generator::new(4)
        .expect("sample-logs/ is readable")
        .ndjson(EVENTS, &mut bytes)
        .expect("write");
    let data = dir.path().join("data");
    let mut pipeline = Pipeline::open(&data, None).expect("open lake");
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        decoder.decode(line, &mut rejected);
    }
    pipeline.ingest(&decoder.finish()).expect("ingest");
    pipeline.flush().expect("flush");
    // The file the lake is checked against says something else of every verb.
    let text = String::from_utf8(bytes)
        .expect("utf8")
        .replace("\"verb\":\"", "\"verb\":\"x");
    let file = dir.path().join("changed.ndjson");
    std::fs::write(&file, text).expect("write file");
    let report = roundtrip::check(&file, &data, 10).expect("check");
    assert!(!report.ok());
    assert!(
        report.mismatches.iter().any(|m| m.contains(" verb: ")),
        "{report:?}"
    );
}
