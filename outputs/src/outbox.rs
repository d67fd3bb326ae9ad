//! The durable queue of one output. Alerts are appended to a log of their own (the engine's
//! write-ahead log format: CRC-checked Arrow batches, fsynced) under `DATA_DIR/outbox/NAME/`
//! and kept in memory as the JSON rows the output sends; a segment is deleted once every alert in
//! it was accepted. The queue is bounded in bytes: past the bound the oldest alert of the lowest
//! severity is dropped first, counted and logged. The log is bounded too: once it holds mostly
//! alerts that were dropped, it is rewritten with only the queued ones, so an output that stays
//! down for days neither fills the disk nor gets the dropped alerts back after a restart.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use auditlake_schema::columns::{alert, column};
use auditlake_storage::wal::{self, Wal};

use crate::error::{Error, Result};

/// The log is rewritten once it is past this size and [`DEAD_RATIO`] times the queue.
const REWRITE_MIN_BYTES: u64 = 16 << 20;
const DEAD_RATIO: u64 = 4;
/// Alert ids named in one log line about drops.
const DROPS_NAMED: usize = 10;
/// Rows per record when the log is rewritten.
const REWRITE_ROWS: usize = 4096;
/// An emptied queue starts a new log segment at most this often: after a crash, alerts sent in
/// the last moments may be sent again (at least once), but an output that keeps up does not
/// create and delete a file per batch.
const ROTATE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One queued alert.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Its id, stable across redeliveries (receivers dedupe on it).
    pub alert_id: String,
    /// `critical`, `high`, `medium`, `low` or `info`.
    pub severity: String,
    /// The rule that raised it.
    pub rule_id: String,
    /// The cluster it was raised in.
    pub cluster: String,
    /// The `alerts` row as the text of a JSON object, as outputs send it (text, not a parsed
    /// value: a third of the memory, and a webhook sends it as it is).
    pub json: Arc<str>,
    /// Its place in the queue, for [`Outbox::ack_through`]: grows by one per queued alert.
    pub seq: u64,
    /// Bytes it counts against the bound (its JSON text).
    bytes: usize,
    /// The log segment holding it; segments before the oldest queued alert's are deleted.
    segment: u64,
}

impl Queued {
    /// A queued alert of `row`, outside any outbox (tests).
    #[cfg(test)]
    pub(crate) fn for_test(id: &str, row: serde_json::Value) -> Self {
        let text = |k: &str| crate::text(&row, k).unwrap_or_default().to_string();
        let json = row.to_string();
        Queued {
            alert_id: id.to_string(),
            severity: "high".into(),
            rule_id: text("rule_id"),
            cluster: text("cluster"),
            bytes: json.len(),
            json: json.into(),
            seq: 0,
            segment: 0,
        }
    }

    /// The `alerts` row as a JSON object.
    pub fn row(&self) -> serde_json::Value {
        // The text was written by serde_json or arrow's JSON writer: it always parses.
        serde_json::from_str(&self.json).unwrap_or_default()
    }
}

/// The queue of alerts not yet accepted by one output.
pub struct Outbox {
    name: String,
    log: Wal,
    /// Queued alerts in order, `None` where one was dropped; the front is `Some`.
    queue: VecDeque<Option<Queued>>,
    /// `seq` of the queue's front.
    first_seq: u64,
    /// `seq`s of the queued alerts of each severity rank, oldest first.
    by_rank: [VecDeque<u64>; 5],
    /// Alerts queued (the `Some`s of `queue`).
    live: usize,
    bytes: usize,
    max_bytes: usize,
    dropped: u64,
    /// Bytes of records in the log's segments, by segment.
    log_bytes: std::collections::BTreeMap<u64, u64>,
    /// The log is rewritten once past this size (and mostly dead).
    rewrite_min_bytes: u64,
    /// When the log last started a new segment because the queue was empty.
    rotated: std::time::Instant,
    /// Whether alerts were appended since the last sync.
    unsynced: bool,
}

/// The rows of `alerts` as queued alerts of `segment` (`seq` still to be set).
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
    let rules = column(alerts, alert::RULE_ID).as_string::<i32>();
    let clusters = column(alerts, alert::CLUSTER).as_string::<i32>();
    let text = String::from_utf8(json).map_err(|e| Error::Json {
        source: arrow::error::ArrowError::JsonError(e.to_string()),
    })?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| Queued {
            alert_id: ids.value(i).to_string(),
            severity: severities.value(i).to_string(),
            rule_id: rules.value(i).to_string(),
            cluster: clusters.value(i).to_string(),
            bytes: line.len(),
            json: line.into(),
            seq: 0,
            segment,
        })
        .collect())
}

/// JSON rows made by [`queued`] as one `alerts` batch again.
fn batch_of(rows: &[&Queued]) -> Result<RecordBatch> {
    let mut text = Vec::new();
    for q in rows {
        text.extend_from_slice(q.json.as_bytes());
        text.push(b'\n');
    }
    let schema = auditlake_schema::alerts_schema();
    let mut decoder = arrow::json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(|source| Error::Json { source })?;
    decoder
        .decode(&text)
        .map_err(|source| Error::Json { source })?;
    Ok(decoder
        .flush()
        .map_err(|source| Error::Json { source })?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

/// Rank of a severity; unknown ones count as the lowest, so they are dropped first.
fn rank(severity: &str) -> usize {
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
            first_seq: 0,
            by_rank: Default::default(),
            live: 0,
            bytes: 0,
            max_bytes,
            dropped: 0,
            log_bytes: Default::default(),
            rewrite_min_bytes: REWRITE_MIN_BYTES,
            rotated: std::time::Instant::now()
                .checked_sub(ROTATE_EVERY)
                .unwrap_or_else(std::time::Instant::now),
            unsynced: false,
        };
        let mut rows = Vec::new();
        let replayed = wal::replay(dir, first, |batch| {
            rows.push(batch);
            Ok(())
        })
        .map_err(fail)?;
        if replayed.segments > 0 {
            // A crash between a rewrite and the deletion of what it replaced leaves alerts twice.
            let mut seen = HashSet::new();
            for batch in rows {
                let fresh: Vec<Queued> = queued(&batch, 0)?
                    .into_iter()
                    .filter(|q| seen.insert(q.alert_id.clone()))
                    .collect();
                outbox.enqueue(fresh);
            }
            // Rewritten at once: what the bound dropped stays dropped, and the old segments go.
            outbox.rewrite()?;
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
        let segment = self.log.segment();
        let record = wal::encode(alerts).map_err(|source| self.fail(source))?;
        self.log
            .append(&record)
            .map_err(|source| self.fail(source))?;
        *self.log_bytes.entry(segment).or_default() += record.log_bytes() as u64;
        self.unsynced = true;
        let dropped = self.enqueue(queued(alerts, segment)?);
        self.metrics();
        Ok(dropped)
    }

    /// Makes every alert pushed so far durable; rewrites the log once it holds mostly alerts
    /// that are gone.
    pub fn sync(&mut self) -> Result<()> {
        if self.unsynced {
            self.log.sync().map_err(|source| self.fail(source))?;
            self.unsynced = false;
        }
        let on_disk: u64 = self.log_bytes.values().sum();
        if on_disk > self.rewrite_min_bytes && on_disk > DEAD_RATIO * self.bytes as u64 {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Writes every queued alert to a fresh segment, synced, then deletes the older segments.
    fn rewrite(&mut self) -> Result<()> {
        self.log.rotate().map_err(|source| self.fail(source))?;
        let segment = self.log.segment();
        let rows: Vec<&Queued> = self.queue.iter().flatten().collect();
        let mut written = 0;
        for chunk in rows.chunks(REWRITE_ROWS) {
            let record = wal::encode(&batch_of(chunk)?).map_err(|source| self.fail(source))?;
            self.log
                .append(&record)
                .map_err(|source| self.fail(source))?;
            written += record.log_bytes() as u64;
        }
        self.log.sync().map_err(|source| self.fail(source))?;
        self.unsynced = false;
        for q in self.queue.iter_mut().flatten() {
            q.segment = segment;
        }
        self.log
            .remove_before(segment)
            .map_err(|source| self.fail(source))?;
        self.log_bytes.clear();
        self.log_bytes.insert(segment, written);
        Ok(())
    }

    /// Deletes the log's segments before `segment`, if there are any.
    fn remove_segments_before(&mut self, segment: u64) -> Result<()> {
        if self.log_bytes.keys().next().is_some_and(|&s| s < segment) {
            self.log
                .remove_before(segment)
                .map_err(|source| self.fail(source))?;
            self.log_bytes.retain(|s, _| *s >= segment);
        }
        Ok(())
    }

    fn fail(&self, source: auditlake_storage::Error) -> Error {
        Error::Outbox {
            output: self.name.clone(),
            source,
        }
    }

    fn enqueue(&mut self, alerts: Vec<Queued>) -> u64 {
        for mut queued in alerts {
            queued.seq = self.first_seq + self.queue.len() as u64;
            self.bytes += queued.bytes;
            self.live += 1;
            self.by_rank[rank(&queued.severity)].push_back(queued.seq);
            self.queue.push_back(Some(queued));
        }
        let mut gone = Vec::new();
        while self.bytes > self.max_bytes && self.live > 1 {
            let Some(seq) = self.by_rank.iter_mut().find_map(VecDeque::pop_front) else {
                break;
            };
            let at = (seq - self.first_seq) as usize;
            if let Some(q) = self.queue.get_mut(at).and_then(Option::take) {
                self.bytes -= q.bytes;
                self.live -= 1;
                gone.push(q);
            }
        }
        self.trim_front();
        if gone.is_empty() {
            return 0;
        }
        let dropped = gone.len() as u64;
        let mut by_severity = std::collections::BTreeMap::<&str, u64>::new();
        for q in &gone {
            *by_severity.entry(q.severity.as_str()).or_default() += 1;
        }
        let named: Vec<&str> = gone
            .iter()
            .take(DROPS_NAMED)
            .map(|q| q.alert_id.as_str())
            .collect();
        tracing::warn!(
            output = %self.name,
            dropped,
            severities = ?by_severity,
            alert_ids = ?named,
            "outbox full; the oldest alerts of the lowest severity were dropped for this output"
        );
        metrics::counter!("auditlake_output_dropped_total", "output" => self.name.clone())
            .increment(dropped);
        self.dropped += dropped;
        dropped
    }

    fn trim_front(&mut self) {
        while matches!(self.queue.front(), Some(None)) {
            self.queue.pop_front();
            self.first_seq += 1;
        }
    }

    /// The `n` oldest queued alerts, oldest first.
    pub fn oldest(&self, n: usize) -> impl Iterator<Item = &Queued> {
        self.queue.iter().flatten().take(n)
    }

    /// The output accepted every queued alert up to `seq` (a [`Queued::seq`]): forgets them, and
    /// deletes the log segments no queued alert is in any more.
    pub fn ack_through(&mut self, seq: u64) -> Result<()> {
        while self.first_seq <= seq {
            let Some(front) = self.queue.pop_front() else {
                break;
            };
            self.first_seq += 1;
            if let Some(q) = front {
                self.bytes -= q.bytes;
                self.live -= 1;
                let r = rank(&q.severity);
                debug_assert_eq!(self.by_rank[r].front(), Some(&q.seq));
                self.by_rank[r].pop_front();
            }
        }
        self.trim_front();
        let front = self.oldest(1).next().map(|q| q.segment);
        match front {
            Some(front) => self.remove_segments_before(front)?,
            None if self.log_bytes.contains_key(&self.log.segment())
                && self.rotated.elapsed() >= ROTATE_EVERY =>
            {
                // Nothing is waiting: start a fresh segment and delete the others, so a crash
                // now sends nothing twice. At most once per ROTATE_EVERY, as an output that keeps
                // up empties its queue after every batch.
                self.log.rotate().map_err(|source| self.fail(source))?;
                self.rotated = std::time::Instant::now();
                self.remove_segments_before(self.log.segment())?;
            }
            None => self.remove_segments_before(self.log.segment())?,
        }
        self.metrics();
        Ok(())
    }

    /// Alerts waiting.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no alert is waiting.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Bytes of the alerts waiting (their JSON).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes of the outbox's log on disk.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes.values().sum()
    }

    /// Alerts the bound dropped since this outbox was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn metrics(&self) {
        metrics::gauge!("auditlake_output_queue_alerts", "output" => self.name.clone())
            .set(self.live as f64);
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

    fn first_seq(outbox: &Outbox) -> u64 {
        outbox.oldest(1).next().expect("queued").seq
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
        let first = outbox.oldest(1).next().expect("queued").row();
        assert_eq!(first["alert_id"], "a1");
        assert_eq!(first["severity"], "high");
        outbox.ack_through(first_seq(&outbox)).expect("ack");
        drop(outbox);

        // a1 was accepted but shares its segment with a2: at least once, it may come again.
        let mut outbox = Outbox::open(dir.path(), "pager", 1 << 20).expect("reopen");
        let again = ids(&outbox);
        assert!(
            again == ["a1", "a2", "a3"] || again == ["a2", "a3"],
            "{again:?}"
        );
        outbox.ack_through(u64::MAX).expect("ack all");
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
        // The drop outlived the restart: only l2 goes now.
        let mut outbox = Outbox::open(dir.path(), "slack", each * 2 + each / 2).expect("reopen");
        assert_eq!(ids(&outbox), ["h1", "c1"]);
        assert_eq!(outbox.dropped(), 1);
        let dropped = outbox.push(&alerts(&[("m1", "medium")])).expect("push");
        assert_eq!((dropped, ids(&outbox)), (1, vec!["h1".into(), "c1".into()]));
    }

    #[test]
    fn queued_rows_make_the_same_batch_again() {
        let lines = concat!(
            r#"{"alert_id":"a1","rule_id":"r","rule_title":"T \"q\"","severity":"high","category":"exec","#,
            r#""mitre":["T1609","T1610"],"cluster":"prod","audit_id":null,"event_time":"2025-11-03T10:00:00.123456Z","#,
            r#""user_name":"é\u0000x","count":3,"detected_at":"2025-11-03T10:00:01Z","tags":[],"evidence":null}"#,
            "\n"
        );
        let batch = arrow::json::ReaderBuilder::new(auditlake_schema::alerts_schema())
            .build(std::io::Cursor::new(lines))
            .expect("reader")
            .next()
            .expect("a batch")
            .expect("alerts batch");
        let rows = queued(&batch, 0).expect("queued");
        let again = batch_of(&rows.iter().collect::<Vec<_>>()).expect("batch");
        assert_eq!(again, batch);
    }

    #[test]
    fn an_ack_after_a_drop_forgets_only_what_was_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = Outbox::open(dir.path(), "pager", usize::MAX).expect("open");
        outbox
            .push(&alerts(&[("l1", "low"), ("h1", "high"), ("h2", "high")]))
            .expect("push");
        let each = outbox.bytes() / 3;
        let sending: Vec<Queued> = outbox.oldest(2).cloned().collect();
        // While l1 and h1 are on their way, the bound drops l1 (and nothing else).
        outbox.max_bytes = each * 3 + each / 2;
        outbox.push(&alerts(&[("h3", "high")])).expect("push");
        assert_eq!(ids(&outbox), ["h1", "h2", "h3"]);
        outbox
            .ack_through(sending.last().expect("two").seq)
            .expect("ack");
        assert_eq!(ids(&outbox), ["h2", "h3"]);
        assert_eq!(outbox.len(), 2);
        let left: usize = outbox.oldest(usize::MAX).map(|q| q.bytes).sum();
        assert_eq!(outbox.bytes(), left);
    }

    #[test]
    fn a_log_of_mostly_dropped_alerts_is_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outbox = Outbox::open(dir.path(), "siem", usize::MAX).expect("open");
        outbox.push(&alerts(&[("c0", "critical")])).expect("push");
        let each = outbox.bytes();
        outbox.max_bytes = each * 10;
        outbox.rewrite_min_bytes = 64 << 10;
        for round in 0..200 {
            let batch: Vec<(String, &str)> =
                (0..20).map(|i| (format!("l{round}-{i}"), "low")).collect();
            let batch: Vec<(&str, &str)> = batch.iter().map(|(a, s)| (a.as_str(), *s)).collect();
            outbox.push(&alerts(&batch)).expect("push");
        }
        assert_eq!(outbox.len(), 10);
        assert_eq!(outbox.dropped(), 200 * 20 + 1 - 10);
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum();
        assert!(
            on_disk <= (64 << 10) + 64 * each as u64,
            "{on_disk} bytes on disk"
        );
        assert_eq!(on_disk, outbox.log_bytes());
        let kept = ids(&outbox);
        assert_eq!(kept[0], "c0");
        drop(outbox);
        let outbox = Outbox::open(dir.path(), "siem", each * 10).expect("reopen");
        assert_eq!(ids(&outbox), kept);
        assert_eq!(outbox.dropped(), 0);
    }
}
