//! What the consumer does with the messages it polled: decode them into one `events` batch (every
//! input shape, gzip, the cluster each names), store it through the sink, and set the poison
//! messages aside, logged, counted and copied to the dead-letter topic.

use std::collections::HashMap;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use auditlake_schema::{Decoder, TimeWindow};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::KafkaConfig;
use crate::body::{self, new_decoder};
use crate::webhook::DurableSink;

/// One polled message, copied out of the consumer's buffer.
pub(super) struct Received {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) cluster: Result<Option<String>, String>,
    pub(super) payload: Vec<u8>,
}

/// A message that held something other than audit events.
struct Poison {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    reason: String,
    stored_events: bool,
}

pub(super) async fn store<S: DurableSink>(
    messages: Vec<Received>,
    mut reservation: S::Reservation,
    sink: &S,
    dead_letters: Option<FutureProducer>,
    config: &KafkaConfig,
) -> Result<(), String> {
    let max = config.max_message_bytes;
    let window = config.time_window;
    let (decoded, poison) = tokio::task::spawn_blocking(move || decode(messages, max, window))
        .await
        .map_err(|e| format!("decoding kafka messages failed: {e}"))?;
    for p in &poison {
        metrics::counter!("auditlake_kafka_poison_messages_total", "topic" => p.topic.clone())
            .increment(1);
        tracing::warn!(
            topic = %p.topic,
            partition = p.partition,
            offset = p.offset,
            reason = %p.reason,
            partly_stored = p.stored_events,
            "kafka message is not (all) audit events; passed over"
        );
    }
    if let (Some(producer), Some(topic)) = (&dead_letters, &config.dead_letter_topic) {
        for p in &poison {
            dead_letter(producer, topic, p).await?;
        }
    }
    if let Some((batch, bytes)) = decoded {
        // A gzip payload inflates past what was reserved for it: take the rest when there is room.
        let _ = sink.grow(&mut reservation, bytes);
        let rows = batch.num_rows();
        sink.store(batch, reservation).await?;
        metrics::counter!("auditlake_events_accepted_total").increment(rows as u64);
    }
    Ok(())
}

async fn dead_letter(producer: &FutureProducer, topic: &str, p: &Poison) -> Result<(), String> {
    let partition = p.partition.to_string();
    let offset = p.offset.to_string();
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "auditlake.source.topic",
            value: Some(p.topic.as_str()),
        })
        .insert(Header {
            key: "auditlake.source.partition",
            value: Some(partition.as_str()),
        })
        .insert(Header {
            key: "auditlake.source.offset",
            value: Some(offset.as_str()),
        })
        .insert(Header {
            key: "auditlake.error",
            value: Some(p.reason.as_str()),
        });
    let mut record = FutureRecord::to(topic)
        .payload(p.payload.as_slice())
        .headers(headers);
    if let Some(key) = &p.key {
        record = record.key(key.as_slice());
    }
    match producer.send(record, Duration::from_secs(30)).await {
        Ok(_) => {
            metrics::counter!("auditlake_kafka_dead_lettered_total").increment(1);
            Ok(())
        }
        Err((e, _)) => Err(format!(
            "copying the poison message at {}/{}/{} to dead-letter topic {topic} failed: {e}",
            p.topic, p.partition, p.offset
        )),
    }
}

/// Decodes every message; returns the events (one batch, every cluster) with the payload bytes
/// they came from after decompression, and the poison messages.
fn decode(
    messages: Vec<Received>,
    max: usize,
    window: Option<TimeWindow>,
) -> (Option<(RecordBatch, usize)>, Vec<Poison>) {
    let mut decoders: HashMap<Option<String>, Decoder> = HashMap::new();
    let mut poison = Vec::new();
    let mut bytes = 0;
    let mut received = 0;
    let mut rejected_docs = 0;
    for m in messages {
        let cluster = match &m.cluster {
            Ok(cluster) => cluster.clone(),
            Err(reason) => {
                let reason = reason.clone();
                poison.push(poison_of(m, reason, false));
                continue;
            }
        };
        if m.payload.is_empty() {
            continue;
        }
        let plain = if body::is_gzip(&m.payload) {
            match body::gunzip(&m.payload, max) {
                Ok(Some(plain)) => plain,
                Ok(None) => {
                    let reason = format!("over {max} bytes once decompressed");
                    poison.push(poison_of(m, reason, false));
                    continue;
                }
                Err(e) => {
                    let reason = format!("not valid gzip: {e}");
                    poison.push(poison_of(m, reason, false));
                    continue;
                }
            }
        } else {
            Vec::new()
        };
        let text = if plain.is_empty() { &m.payload } else { &plain };
        bytes += text.len();
        let decoder = decoders
            .entry(cluster.clone())
            .or_insert_with(|| new_decoder(cluster, window));
        let before = decoder.len();
        let mut first_reason = None;
        let mut rejected = 0;
        body::decode_into(decoder, text, |r| {
            rejected += 1;
            if first_reason.is_none() {
                first_reason = r.get("reason").and_then(|v| v.as_str()).map(|reason| {
                    match r.get("line").and_then(serde_json::Value::as_u64) {
                        Some(line) => format!("line {line}: {reason}"),
                        None => reason.to_string(),
                    }
                });
            }
        });
        let stored = decoder.len() - before;
        received += stored + rejected;
        rejected_docs += rejected;
        if rejected > 0 {
            let reason = first_reason.unwrap_or_else(|| "not an audit event".into());
            let reason = format!("{rejected} document(s) rejected, first: {reason}");
            poison.push(poison_of(m, reason, stored > 0));
        }
    }
    metrics::counter!("auditlake_events_received_total").increment(received as u64);
    metrics::counter!("auditlake_events_rejected_total").increment(rejected_docs as u64);
    let batches: Vec<RecordBatch> = decoders
        .into_values()
        .map(|mut d| d.finish())
        .filter(|b| b.num_rows() > 0)
        .collect();
    let batch = match batches.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, ..] => arrow::compute::concat_batches(&first.schema(), &batches).ok(),
    };
    (batch.map(|b| (b, bytes)), poison)
}

fn poison_of(m: Received, reason: String, stored_events: bool) -> Poison {
    Poison {
        topic: m.topic,
        partition: m.partition,
        offset: m.offset,
        key: m.key,
        payload: m.payload,
        reason,
        stored_events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(offset: i64, cluster: Result<Option<String>, String>, payload: &[u8]) -> Received {
        Received {
            topic: "t".into(),
            partition: 0,
            offset,
            key: None,
            cluster,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn decoding_keeps_good_events_and_names_poison_by_offset() {
        let event = |id: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{id}","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"2025-11-03T11:00:00Z"}}"#
            )
        };
        let mixed = format!("{}\nnot json\n", event("m"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, event("z").as_bytes()).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let messages = vec![
            received(0, Ok(Some("a".into())), event("a").as_bytes()),
            received(1, Ok(None), mixed.as_bytes()),
            received(2, Err("bad header".into()), event("x").as_bytes()),
            received(3, Ok(Some("b".into())), &gz),
            received(4, Ok(None), b""),
        ];
        let (batch, poison) = decode(messages, 1 << 20, None);
        let (batch, _) = batch.expect("events");
        assert_eq!(batch.num_rows(), 3, "a, m and z");
        let offsets: Vec<(i64, bool)> =
            poison.iter().map(|p| (p.offset, p.stored_events)).collect();
        assert_eq!(offsets, [(1, true), (2, false)]);
        assert!(poison[0].reason.contains("line 2"), "{}", poison[0].reason);
    }

    #[test]
    fn an_event_outside_the_window_makes_its_message_poison() {
        let at = |id: &str, time: &str| {
            format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"{id}","stage":"ResponseComplete","verb":"get","requestReceivedTimestamp":"{time}"}}"#
            )
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let messages = vec![
            received(0, Ok(None), at("now", &now).as_bytes()),
            received(1, Ok(None), at("old", "1970-01-01T00:00:00Z").as_bytes()),
            received(2, Ok(None), at("far", "9999-12-31T00:00:00Z").as_bytes()),
        ];
        let window = TimeWindow {
            max_age: Some(Duration::from_secs(86_400)),
            max_ahead: Some(Duration::from_secs(3600)),
        };
        let (batch, poison) = decode(messages, 1 << 20, Some(window));
        assert_eq!(batch.expect("events").0.num_rows(), 1);
        let offsets: Vec<i64> = poison.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, [1, 2]);
        assert!(
            poison[0].reason.contains("outside the accepted window"),
            "{}",
            poison[0].reason
        );
    }
}
