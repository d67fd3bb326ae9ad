//! The generated traffic goes through decode and the lake and comes back whole: every event stored
//! once, and sampled rows equal to a plain serde_json decode column by column.

use auditlake_benches::{Generator, Ids, roundtrip, store};

fn generated(seed: u64, events: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    Generator::new(seed)
        .expect("sample-logs/ is readable")
        .ndjson(events, &mut bytes)
        .expect("write");
    bytes
}

#[test]
fn generated_traffic_round_trips_through_the_lake() {
    const EVENTS: usize = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = generated(3, EVENTS);
    let file = dir.path().join("traffic.ndjson");
    std::fs::write(&file, &bytes).expect("write file");
    let data = dir.path().join("data");
    assert_eq!(store(&bytes, &data), Ok(EVENTS as u64));

    let report = roundtrip::check(&file, &data, 50).expect("check");
    assert_eq!(report.events, EVENTS as u64);
    assert!(report.sampled >= 390, "{report:?}");
    assert!(report.ok(), "{report:?}");
}

#[test]
fn a_changed_value_is_caught() {
    const EVENTS: usize = 2_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = generated(4, EVENTS);
    let data = dir.path().join("data");
    assert_eq!(store(&bytes, &data), Ok(EVENTS as u64));
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

#[test]
fn traffic_with_per_event_ids_round_trips_and_varies_them() {
    const EVENTS: usize = 5_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = Vec::new();
    Generator::with_ids(5, Ids::PerEvent)
        .expect("sample-logs/ is readable")
        .ndjson(EVENTS, &mut bytes)
        .expect("write");
    let file = dir.path().join("traffic.ndjson");
    std::fs::write(&file, &bytes).expect("write file");
    let data = dir.path().join("data");
    assert_eq!(store(&bytes, &data), Ok(EVENTS as u64));
    let report = roundtrip::check(&file, &data, 20).expect("check");
    assert!(report.ok(), "{report:?}");
    // Nearly every event (all but the attack scenarios') has IDs of its own.
    let text = String::from_utf8(bytes).expect("utf8");
    let distinct = |marker: &str| {
        text.split(marker)
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or_default())
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    for marker in [
        "\"accessKeyId\":[\"",
        "credential-id\":[\"JTI=",
        "\"uid\":\"",
    ] {
        assert!(
            distinct(marker) > EVENTS * 9 / 10,
            "{marker}: {}",
            distinct(marker)
        );
    }
}
