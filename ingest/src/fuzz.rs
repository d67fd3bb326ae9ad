//! The fuzz target of what the webhook and the Kafka consumer do with a body: gzip detection and
//! inflation within a limit, splitting into documents (NDJSON or one document of any shape), and
//! decoding every audit event, over `sample-logs/` and `../shared/real-audit-logs/` mutated by
//! `auditlake-fuzz` (which also checks panics and the heap). Here: every document is stored or
//! rejected with a reason.
//!
//! `AUDITLAKE_FUZZ_SECONDS=600 cargo test --release -p auditlake-ingest --lib fuzz --
//! --nocapture` fuzzes for ten minutes.

use std::path::Path;

use auditlake_fuzz::{Target, seed_files};
use auditlake_schema::Decoder;

use crate::body::{decode_into, gunzip, is_gzip};

/// Largest inflated body (smaller than the webhook's default, to keep executions fast).
const MAX_INFLATED: usize = 8 << 20;

/// Audit event fields and shapes.
const TOKENS: &[&[u8]] = &[
    b"\"items\":[",
    b"\"kind\":\"EventList\"",
    b"\"auditID\":",
    b"\"stage\":\"ResponseComplete\"",
    b"\"requestReceivedTimestamp\":\"9999-12-31T23:59:59.999999999Z\"",
    b"\"stageTimestamp\":\"1970-01-01T00:00:00Z\"",
    b"\"sourceIPs\":[",
    b"\"annotations\":{",
    b"\"objectRef\":{",
    b"\"requestObject\":",
    b"\"responseStatus\":{\"code\":",
];

#[test]
fn fuzz_the_body_handling_and_decoder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = seed_files(
        &[
            root.join("sample-logs"),
            root.join("../shared/real-audit-logs"),
        ],
        &["log", "json"],
    );
    assert!(seeds.len() > 10, "the seed corpus is missing");
    let report = Target::new("body", seeds)
        .with_tokens(TOKENS)
        .with_gzip()
        .run(|body| {
            let inflated;
            let body = if is_gzip(body) {
                match gunzip(body, MAX_INFLATED) {
                    Ok(Some(out)) => {
                        inflated = out;
                        &inflated[..]
                    }
                    Ok(None) | Err(_) => return,
                }
            } else {
                body
            };
            let mut decoder = Decoder::new(Some("fuzz".into()));
            let mut notes = 0usize;
            decode_into(&mut decoder, body, |note| {
                assert!(
                    note["reason"].as_str().is_some_and(|r| !r.is_empty()),
                    "{note}"
                );
                notes += 1;
            });
            let stored = decoder.finish().num_rows();
            // Nothing vanishes: an input with content stores something or says why not. Empty
            // lists (`[]`, `[[]]`, the fuzzer's `[[[[[]]]]]`) hold no event to account for.
            let empty = body
                .iter()
                .all(|b| b.is_ascii_whitespace() || matches!(b, b'[' | b']' | b','));
            assert!(empty || stored + notes > 0, "nothing accounted for");
        });
    assert!(report.executions > 0);
}
