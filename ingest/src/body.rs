//! What the webhook and the Kafka consumer do alike with a body they received: inflate gzip
//! within a limit, and decode every audit event in it (one JSON document of any shape the
//! decoder knows, or NDJSON), naming each rejected document by line and list item.

use std::io::Read;

use auditlake_schema::{Decoder, TimeWindow};

use crate::lines::{Document, for_each_document};

pub(crate) use auditlake_schema::valid_cluster_name;

/// Whether `bytes` start like a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Inflates gzip `bytes`; `Ok(None)` once the output passes `max` bytes (a gzip bomb).
pub(crate) fn gunzip(bytes: &[u8], max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(max));
    flate2::read::MultiGzDecoder::new(bytes)
        .take(max as u64 + 1)
        .read_to_end(&mut out)?;
    Ok((out.len() <= max).then_some(out))
}

/// Decodes every event of `body` into `decoder`; each rejection is handed to `note` as
/// `{"line", "index"?, "reason"}` (`line` absent when the input itself could not be read).
/// A decoder for a live source: events labelled `cluster`, their times checked against `window`.
pub(crate) fn new_decoder(cluster: Option<String>, window: Option<TimeWindow>) -> Decoder {
    let decoder = Decoder::new(cluster);
    match window {
        Some(window) => decoder.with_time_window(window),
        None => decoder,
    }
}

pub(crate) fn decode_into(
    decoder: &mut Decoder,
    body: &[u8],
    mut note: impl FnMut(serde_json::Value),
) {
    let mut rejections = Vec::new();
    let mut input = body;
    let read = for_each_document(&mut input, |doc| match doc {
        Document::Json { line, bytes } => {
            decoder.decode(bytes, &mut rejections);
            for r in rejections.drain(..) {
                let reason = r.error.to_string();
                note(match r.item {
                    Some(index) => {
                        serde_json::json!({"line": line, "index": index, "reason": reason})
                    }
                    None => serde_json::json!({"line": line, "reason": reason}),
                });
            }
        }
        Document::Invalid { line, reason } => {
            note(serde_json::json!({"line": line, "reason": reason}));
        }
    });
    if let Err(e) = read {
        note(serde_json::json!({"reason": crate::replay::error_chain(&e)}));
    }
}
