//! Publishing to Kafka: alerts as they are raised ([`AlertPublisher`]) and audit log documents
//! split into one message per event ([`messages_of`], for `auditlake produce`).

use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::record_batch::RecordBatch;
use auditlake_schema::columns::alert;
use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::kafka::{KafkaSourceError, client_config};

/// Publishes alerts to a topic as JSON, one message per alert keyed by its `alert_id`, without
/// blocking the caller: delivery failures are counted and logged.
pub struct AlertPublisher {
    producer: ThreadedProducer<DeliveryCounter>,
    topic: String,
}

/// Counts failed deliveries of published alerts.
pub struct DeliveryCounter;

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => metrics::counter!("auditlake_alerts_published_total").increment(1),
            Err((e, _)) => {
                metrics::counter!("auditlake_alerts_publish_failures_total").increment(1);
                tracing::warn!(error = %e, "publishing an alert to kafka failed");
            }
        }
    }
}

impl AlertPublisher {
    /// A publisher to `topic` on `brokers`.
    pub fn new(
        brokers: &str,
        options: &[(String, String)],
        topic: &str,
    ) -> Result<Self, KafkaSourceError> {
        let producer = client_config(brokers, options).create_with_context(DeliveryCounter)?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Queues every alert of `alerts` (a batch of the `alerts` table).
    pub fn publish(&self, alerts: &RecordBatch) {
        let mut lines = Vec::new();
        {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
            if let Err(e) = writer.write(alerts).and_then(|()| writer.finish()) {
                tracing::warn!(error = %e, "cannot encode alerts as JSON");
                return;
            }
        }
        let ids = alerts
            .schema()
            .index_of(alert::ALERT_ID)
            .ok()
            .map(|i| alerts.column(i).as_string::<i32>().clone());
        let rows = lines.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        for (row, line) in rows.enumerate() {
            let mut record = rdkafka::producer::BaseRecord::to(&self.topic).payload(line);
            if let Some(id) = ids.as_ref().filter(|ids| ids.is_valid(row)) {
                record = record.key(id.value(row));
            }
            if let Err((e, _)) = self.producer.send(record) {
                metrics::counter!("auditlake_alerts_publish_failures_total").increment(1);
                tracing::warn!(error = %e, "cannot queue an alert for kafka");
            }
        }
    }

    /// Waits up to `timeout` for queued alerts to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "alerts still queued for kafka at shutdown");
        }
    }
}

/// One message to publish: the event's `auditID` as key (so stages of a request share a
/// partition) and the JSON as payload.
pub struct Outgoing {
    /// `auditID`, when the document has one.
    pub key: Option<String>,
    /// The JSON text.
    pub payload: Vec<u8>,
}

/// Splits one JSON document into messages: an `EventList` (or a JSON array) becomes one message
/// per item, so no message outgrows a broker's size limit; any other document (one event, a
/// cloud wrapper) stays whole.
pub fn messages_of(document: &[u8]) -> Result<Vec<Outgoing>, String> {
    let value: serde_json::Value =
        serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
    let key = |v: &serde_json::Value| v.get("auditID")?.as_str().map(str::to_string);
    let whole = |v: &serde_json::Value, bytes: Vec<u8>| Outgoing {
        key: key(v),
        payload: bytes,
    };
    let items = match &value {
        serde_json::Value::Array(items) => Some(items),
        serde_json::Value::Object(o) => o.get("items").and_then(|i| i.as_array()),
        _ => None,
    };
    match items {
        Some(items) => items
            .iter()
            .map(|item| {
                serde_json::to_vec(item)
                    .map(|bytes| whole(item, bytes))
                    .map_err(|e| e.to_string())
            })
            .collect(),
        None => Ok(vec![whole(&value, document.to_vec())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_list_becomes_one_message_per_item_keyed_by_audit_id() {
        let list =
            br#"{"kind":"EventList","items":[{"auditID":"a","verb":"get"},{"auditID":"b"}]}"#;
        let messages = messages_of(list).expect("json");
        let keys: Vec<Option<String>> = messages.iter().map(|m| m.key.clone()).collect();
        assert_eq!(keys, [Some("a".to_string()), Some("b".to_string())]);
        let first: serde_json::Value = serde_json::from_slice(&messages[0].payload).expect("json");
        assert_eq!(first["verb"], "get");

        let wrapper = br#"{"records":[{"properties":{"log":"{}"}}]}"#;
        let whole = messages_of(wrapper).expect("json");
        assert_eq!(whole.len(), 1, "a cloud wrapper stays whole");
        assert_eq!(whole[0].payload, wrapper);
        assert!(whole[0].key.is_none());
        assert!(messages_of(b"{not json").is_err());
    }
}
