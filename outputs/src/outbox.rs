//! The durable queue of one output. Alerts are appended to a log of their own (the engine's
//! write-ahead log format: CRC-checked Arrow batches, fsynced) under `DATA_DIR/outbox/NAME/`
//! and kept in memory as the JSON rows the output sends; a segment is deleted once every alert in
//! it was accepted. The queue is bounded in bytes: past the bound the oldest alert of the lowest
//! severity is dropped first, counted and logged.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use auditlake_engine::wal::{self, Wal};
use auditlake_schema::columns::{alert, column};

use crate::error::{Error, Result};

/// One queued alert.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Its id, stable across redeliveries (receivers dedupe on it).
    pub alert_id: String,
    /// `critical`, `high`, `medium`, `low` or `info`.
    pub severity: String,
    /// The `alerts` row as a JSON object, as outputs send it.
    pub row: Arc<serde_json::Value>,
    /// Bytes it counts against the bound (its JSON text).
    bytes: usize,
    /// The log segment holding it; segments before the oldest queued alert's are deleted.
    segment: u64,
}

impl Queued {
    /// A queued alert of `row`, outside any outbox (tests).
    #[cfg(test)]
    pub(crate) fn for_test(id: &str, row: serde_json::Value) -> Self {
        Queued {
            alert_id: id.to_string(),
            severity: "high".into(),
            bytes: row.to_string().len(),
            row: Arc::new(row),
            segment: 0,
        }
    }
}

/// The queue of alerts not yet accepted by one output.
pub struct Outbox {
    name: String,
    log: Wal,
    queue: VecDeque<Queued>,
    bytes: usize,
    max_bytes: usize,
    dropped: u64,
    /// Whether alerts were appended since the last sync.
    unsynced: bool,
}

/// The rows of `alerts` as queued alerts of `segment`.
pub(crate) fn queued(alerts: &RecordBatch, segment: u64) -> Result<Vec<Queued>> {
    let mut json = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::LineDelimited>(&mut json);
        writer
            .write(alerts)
            .and_then(|()| writer.finish())
            .map_err(|source| Error::Json { source })?;
    }
    let ids = column(alerts, alert::ALERT_ID).as_string::<i32>();
    let severities = column(alerts, alert::SEVERITY).as_string::<i32>();
    json.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            let row: serde_json::Value = serde_json::from_slice(line).map_err(|e| Error::Json {
                source: arrow::error::ArrowError::JsonError(e.to_string()),
            })?;
            Ok(Queued {
                alert_id: ids.value(i).to_string(),
                severity: severities.value(i).to_string(),
                row: Arc::new(row),
                bytes: line.len(),
                segment,
            })
        })
        .collect()
}

/// Rank of a severity; unknown ones count as the lowest, so they are dropped first.
fn rank(severity: &str) -> u8 {
    match severity {
        "critical" => 4,
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

impl Outbox {
    /// Opens the outbox in `dir` for the output `name`, holding at most `max_bytes` of alerts;
    /// the alerts a previous run queued and no output accepted are queued again, oldest first.
    pub fn open(dir: &Path, name: &str, max_bytes: usize) -> Result<Self> {
        let fail = |source| Error::Outbox {
            output: name.to_string(),
            source,
        };
        let (log, first) = Wal::open(dir).map_err(fail)?;
        let mut outbox = Outbox {
            name: name.to_string(),
            log,
            queue: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
            unsynced: false,
        };
        // Which older segment a replayed alert came from is not known: segment 0 keeps them
        // all until every replayed alert was accepted.
        let mut rows = Vec::new();
        wal::replay(dir, first, |batch| {
            rows.push(batch);
            Ok(())
        })
        .map_err(fail)?;
        for batch in rows {
            outbox.enqueue(&batch, 0)?;
        }
        outbox.metrics();
        Ok(outbox)
    }

    /// Queues `alerts` (a batch of the `alerts` schema) durably: they are on disk when this
    /// returns. Returns how many queued alerts the bound made it drop.
    pub fn push(&mut self, alerts: &RecordBatch) -> Result<u64> {
        let dropped = self.push_unsynced(alerts)?;
        self.sync()?;
        Ok(dropped)
    }

    /// Queues `alerts`, written but not yet synced to disk: [`Outbox::sync`] makes them durable.
    /// Cheaper per batch, for a caller that can raise the alerts again after a crash until it
    /// has synced.
    pub fn push_unsynced(&mut self, alerts: &RecordBatch) -> Result<u64> {
        if alerts.num_rows() == 0 {
            return Ok(0);
        }
        let fail = |source| Error::Outbox {
            output: self.name.clone(),
            source,
        };
        let segment = self.log.segment();
        let record = wal::encode(alerts).map_err(fail)?;
        self.log.append(&record).map_err(fail)?;
        self.unsynced = true;
        let dropped = self.enqueue(alerts, segment)?;
        self.metrics();
        Ok(dropped)
    }

    /// Makes every alert pushed so far durable.
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.log.sync().map_err(|source| Error::Outbox {
                output: self.name.clone(),
                source,
            })?;
            self.unsynced = false;
        }
        Ok(())
    }

    fn enqueue(&mut self, alerts: &RecordBatch, segment: u64) -> Result<u64> {
        for queued in queued(alerts, segment)? {
            self.bytes += queued.bytes;
            self.queue.push_back(queued);
        }
        let mut dropped = 0;
        while self.bytes > self.max_bytes && self.queue.len() > 1 {
            let lowest = self
                .queue
                .iter()
                .map(|q| rank(&q.severity))
                .min()
                .unwrap_or(0);
            let Some(at) = self.queue.iter().position(|q| rank(&q.severity) == lowest) else {
                break;
            };
            if let Some(gone) = self.queue.remove(at) {
                self.bytes -= gone.bytes;
                tracing::warn!(
                    output = %self.name,
                    alert_id = %gone.alert_id,
                    severity = %gone.severity,
                    "outbox full; alert dropped for this output"
                );
                metrics::counter!("auditlake_output_dropped_total", "output" => self.name.clone())
                    .increment(1);
                dropped += 1;
            }
        }
        self.dropped += dropped;
        Ok(dropped)
    }

    /// The `n` oldest queued alerts, oldest first.
    pub fn oldest(&self, n: usize) -> impl Iterator<Item = &Queued> {
        self.queue.iter().take(n)
    }

    /// The `n` oldest alerts were accepted by the output: forgets them, and deletes the log
    /// segments no queued alert is in any more.
    pub fn ack(&mut self, n: usize) -> Result<()> {
        for gone in self.queue.drain(..n.min(self.queue.len())) {
            self.bytes -= gone.bytes;
        }
        let fail = |source| Error::Outbox {
            output: self.name.clone(),
            source,
        };
        match self.queue.front() {
            Some(front) => self.log.remove_before(front.segment).map_err(fail)?,
            None => {
                // Nothing is waiting: start a fresh segment and delete the others, so a crash
                // now sends nothing twice.
                self.log.rotate().map_err(fail)?;
                self.log.remove_before(self.log.segment()).map_err(fail)?;
            }
        }
        self.metrics();
        Ok(())
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no alert is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes of the alerts waiting (their JSON).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Alerts the bound dropped since this outbox was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn metrics(&self) {
        metrics::gauge!("auditlake_output_queue_alerts", "output" => self.name.clone())
            .set(self.queue.len() as f64);
        metrics::gauge!("auditlake_output_queue_bytes", "output" => self.name.clone())
            .set(self.bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `alerts` batch of the given (id, severity) pairs.
    fn alerts(rows: &[(&str, &str)]) -> RecordBatch {
        let lines: String = rows
            .iter()
            .map(|(id, severity)| {
                format!(
                    "{}\n",
                    serde_json::json!({
                        "alert_id": id, "rule_id": "exec-into-pod", "severity": severity,
                        "category": "exec", "cluster": "prod", "count": 1,
                        "event_time": "2025-11-03T10:00:00Z", "detected_at": "2025-11-03T10:00:01Z",
                        "message": "alice ran exec in pod web",
                    })
                )
            })
            .collect();
        arrow::json::ReaderBuilder::new(auditlake_schema::alerts_schema())
            .build(std::io::Cursor::new(lines))
            .expect("reader")
            .next()
            .expect("a batch")
            .expect("alerts batch")
    }

    fn ids(outbox: &Outbox) -> Vec<String> {
        outbox
            .oldest(usize::MAX)
            .map(|q| q.alert_id.clone())
            .collect()
    }

    #[test]
    fn unaccepted_alerts_survive_a_restart_and_accepted_ones_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = Outbox::open(dir.path(), "pager", 1 << 20).expect("open");
        outbox
            .push(&alerts(&[("a1", "high"), ("a2", "low")]))
            .expect("push");
        outbox.push(&alerts(&[("a3", "critical")])).expect("push");
        assert_eq!(ids(&outbox), ["a1", "a2", "a3"]);
        let first = outbox.oldest(1).next().expect("queued").row.clone();
        assert_eq!(first["alert_id"], "a1");
        assert_eq!(first["severity"], "high");
        outbox.ack(1).expect("ack");
        drop(outbox);

        // a1 was accepted but shares its segment with a2: at least once, it may come again.
        let mut outbox = Outbox::open(dir.path(), "pager", 1 << 20).expect("reopen");
        let again = ids(&outbox);
        assert!(
            again == ["a1", "a2", "a3"] || again == ["a2", "a3"],
            "{again:?}"
        );
        let n = outbox.len();
        outbox.ack(n).expect("ack all");
        drop(outbox);
        let outbox = Outbox::open(dir.path(), "pager", 1 << 20).expect("reopen");
        assert!(outbox.is_empty(), "{:?}", ids(&outbox));
    }

    #[test]
    fn past_the_bound_the_oldest_lowest_severity_alert_goes_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = Outbox::open(dir.path(), "slack", usize::MAX).expect("open");
        outbox
            .push(&alerts(&[
                ("h1", "high"),
                ("l1", "low"),
                ("c1", "critical"),
                ("l2", "low"),
            ]))
            .expect("push");
        let each = outbox.bytes() / 4;
        drop(outbox);
        // Room for three: the oldest low one goes, and the others stay in order.
        let outbox = Outbox::open(dir.path(), "slack", each * 3 + each / 2).expect("reopen");
        assert_eq!(ids(&outbox), ["h1", "c1", "l2"]);
        assert_eq!(outbox.dropped(), 1);
        drop(outbox);
        let mut outbox = Outbox::open(dir.path(), "slack", each * 2 + each / 2).expect("reopen");
        assert_eq!(ids(&outbox), ["h1", "c1"]);
        assert_eq!(outbox.dropped(), 2);
        let dropped = outbox.push(&alerts(&[("m1", "medium")])).expect("push");
        assert_eq!((dropped, ids(&outbox)), (1, vec!["h1".into(), "c1".into()]));
    }
}
