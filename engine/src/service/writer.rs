//! The pipeline thread: applies logged batches in order (dedup, rules, the live buffer), completes
//! the lake's files, and tells the log thread which segments they cover. After a failed lake write
//! (a full disk, an I/O error, an unreachable object store) it refuses new batches and retries by
//! itself what a restart would do: give up the unfinished files, replay the log, flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use auditlake_schema::columns::{alert, column};
use tokio::sync::{mpsc, oneshot};

use super::log::{Apply, Checkpoint, ToLog};
use super::{AlertHook, Problem, Readiness, ServiceConfig};
use crate::error::{Error, Result};
use crate::live::SharedLake;
use crate::pipeline::Pipeline;
use crate::wal;

/// First wait before retrying after a failed lake write; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

pub(super) struct PipelineThread {
    pub(super) pipeline: Pipeline,
    pub(super) wal_dir: PathBuf,
    pub(super) shared: Arc<SharedLake>,
    pub(super) config: ServiceConfig,
    pub(super) readiness: Arc<AtomicU8>,
    pub(super) checkpoint: Arc<Checkpoint>,
    /// Why the lake is not written now, for [`super::Service::store`] to refuse with.
    pub(super) problem: Arc<Problem>,
    /// To ask the log thread for a new segment before a replay (weak: it must not keep the log
    /// thread running after the service stops taking batches).
    pub(super) log: mpsc::WeakSender<ToLog>,
    /// Log segment of the last batch applied.
    pub(super) last_segment: Option<u64>,
    /// When the oldest row not yet in a finished file was applied.
    pub(super) dirty_since: Option<Instant>,
    /// Batches of log segments before this one are in the lake by a replay: skipped when they
    /// come.
    pub(super) replayed_before: u64,
    /// Set while the lake is not written: when to try again, and the wait after that.
    pub(super) retry: Option<(Instant, Duration)>,
}

impl PipelineThread {
    pub(super) fn run(mut self, first_segment: u64, batches: Receiver<Apply>) {
        match self.replay(first_segment) {
            Ok(()) => self.replayed(first_segment),
            Err(e) => self.fail(&e),
        }
        loop {
            if self.retry.is_some_and(|(at, _)| at <= Instant::now()) {
                self.recover(&batches);
            }
            let flush_in = self.dirty_since.map_or(Duration::from_secs(3600), |t| {
                self.config.flush_interval.saturating_sub(t.elapsed())
            });
            let retry_in = self.retry.map_or(Duration::MAX, |(at, _)| {
                at.saturating_duration_since(Instant::now())
            });
            match batches.recv_timeout(flush_in.min(retry_in)) {
                Ok(apply) => self.take(apply),
                Err(RecvTimeoutError::Timeout) => {
                    if self.dirty_since.is_some() {
                        self.flush();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush();
        if self.retry.is_none() {
            // Everything accepted is in finished files: the whole log can go.
            if let Err(e) = wal::remove_replayed(&self.wal_dir, u64::MAX) {
                tracing::warn!(error = %e, "could not delete the write-ahead log after the final flush");
            }
        }
        tracing::info!("pipeline stopped");
    }

    /// One logged batch: applied, or skipped when a replay stored it already or the lake is not
    /// written now (a replay will). Durable since the log sync either way, so answered the same.
    fn take(&mut self, apply: Apply) {
        if apply.segment < self.replayed_before || self.retry.is_some() {
            let _ = apply.done.send(Ok(()));
            return;
        }
        match self
            .pipeline
            .ingest(&apply.batch)
            .and_then(|done| record_ingest(&done, self.config.on_alerts.as_ref()))
        {
            Ok(()) => {
                self.last_segment = Some(apply.segment);
                self.dirty_since.get_or_insert_with(Instant::now);
            }
            Err(e) => self.fail(&e),
        }
        let _ = apply.done.send(Ok(()));
        if self.shared.events.bytes() + self.shared.alerts.bytes() >= self.config.flush_bytes {
            self.flush();
        }
    }

    /// Makes the alerts the hook took durable, before the log that could raise them again goes.
    fn sync_alerts(&self) -> Result<()> {
        match &self.config.on_alerts {
            Some(hook) => (hook.sync)().map_err(|reason| Error::Unavailable {
                reason: format!("syncing queued alerts: {reason}"),
            }),
            None => Ok(()),
        }
    }

    /// Stores every batch of the log segments before `before`, completes the files, syncs the
    /// alert hook, and deletes those segments.
    fn replay(&mut self, before: u64) -> Result<()> {
        let started = Instant::now();
        let pipeline = &mut self.pipeline;
        let hook = self.config.on_alerts.as_ref();
        let replayed = wal::replay(&self.wal_dir, before, |batch| {
            let done = pipeline.ingest(&batch)?;
            record_ingest(&done, hook)
        })?;
        self.sync_alerts()?;
        self.pipeline.flush()?;
        wal::remove_replayed(&self.wal_dir, before)?;
        if replayed.segments > 0 {
            tracing::info!(
                segments = replayed.segments,
                rows = replayed.rows,
                torn = replayed.torn,
                seconds = started.elapsed().as_secs_f64(),
                "write-ahead log replayed"
            );
        }
        Ok(())
    }

    /// The lake holds every batch of the segments before `before`: batches are taken again.
    fn replayed(&mut self, before: u64) {
        self.replayed_before = before;
        self.checkpoint.advance(before);
        self.last_segment = None;
        self.dirty_since = None;
        if self.retry.take().is_some() && self.problem.clear() {
            tracing::info!("the lake is written again; batches are taken");
        }
        self.readiness
            .store(Readiness::Ready as u8, Ordering::Release);
    }

    /// Tries what a restart would do: a new log segment (so every acknowledged batch is in an
    /// older one), the unfinished files given up, the older segments replayed.
    fn recover(&mut self, batches: &Receiver<Apply>) {
        let attempt = self.rotate_log(batches).and_then(|boundary| {
            self.pipeline.reopen()?;
            self.replay(boundary)?;
            Ok(boundary)
        });
        match attempt {
            Ok(boundary) => self.replayed(boundary),
            Err(e) => self.fail(&e),
        }
    }

    /// Asks the log thread for a new segment and returns its id. Meanwhile it answers the
    /// batches it is handed (all in older segments, which the replay stores), so the log thread
    /// never waits on it.
    fn rotate_log(&mut self, batches: &Receiver<Apply>) -> Result<u64> {
        let stopped = || Error::Unavailable {
            reason: "the write-ahead log stopped".into(),
        };
        let answer_one = || {
            if let Ok(apply) = batches.recv_timeout(Duration::from_millis(20)) {
                let _ = apply.done.send(Ok(()));
            }
        };
        let (answer, mut rotated) = oneshot::channel();
        let mut request = ToLog::Rotate(answer);
        let log = self.log.upgrade().ok_or_else(stopped)?;
        loop {
            match log.try_send(request) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    request = back;
                    answer_one();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(stopped()),
            }
        }
        drop(log);
        loop {
            match rotated.try_recv() {
                Ok(Ok(segment)) => return Ok(segment),
                Ok(Err(reason)) => return Err(Error::Unavailable { reason }),
                Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
                Err(oneshot::error::TryRecvError::Empty) => answer_one(),
            }
        }
    }

    fn flush(&mut self) {
        self.dirty_since = None;
        if self.retry.is_some() {
            return;
        }
        // Alerts durable in the outbox first: if the lake's commit then fails, the replay raises
        // them again (same ids, delivered once); the other way round, alerts whose events were
        // committed would never be raised again.
        match self.sync_alerts().and_then(|()| self.pipeline.flush()) {
            Ok(files) => {
                metrics::counter!("auditlake_lake_files_written_total").increment(files as u64);
                if let Some(segment) = self.last_segment {
                    self.checkpoint.advance(segment);
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    /// After a failed write the lake may be missing rows the log has: keep the log (no more
    /// checkpoints), refuse new batches, and retry by replaying it ([`Self::recover`]).
    fn fail(&mut self, e: &Error) {
        let wait = self
            .retry
            .map_or(RETRY_FIRST, |(_, wait)| (wait * 2).min(RETRY_MAX));
        let reason = format!(
            "writing the lake failed: {}; accepted events are kept in the write-ahead log and \
             written again once a retry succeeds",
            auditlake_storage::error::chain(e)
        );
        tracing::error!(error = %reason, retry_seconds = wait.as_secs(), "batches are refused until the lake is written again");
        metrics::counter!("auditlake_lake_write_errors_total").increment(1);
        self.problem.set(&reason);
        self.retry = Some((Instant::now() + wait, wait));
    }
}

fn record_ingest(done: &crate::pipeline::Ingested, hook: Option<&AlertHook>) -> Result<()> {
    metrics::counter!("auditlake_events_stored_total").increment(done.stats.stored);
    metrics::counter!("auditlake_events_duplicate_total").increment(done.stats.duplicates);
    let alerts = &done.alerts;
    if alerts.num_rows() == 0 {
        return Ok(());
    }
    if let Some(hook) = hook {
        (hook.take)(alerts).map_err(|reason| Error::Unavailable {
            reason: format!("queueing alerts for delivery: {reason}"),
        })?;
    }
    let rules = column(alerts, alert::RULE_ID).as_string::<i32>();
    let severities = column(alerts, alert::SEVERITY).as_string::<i32>();
    for (rule, severity) in rules.iter().zip(severities.iter()) {
        metrics::counter!(
            "auditlake_alerts_total",
            "rule" => rule.unwrap_or_default().to_string(),
            "severity" => severity.unwrap_or_default().to_string()
        )
        .increment(1);
    }
    Ok(())
}
