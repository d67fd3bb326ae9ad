//! [`Service`]: the long-running writer behind `auditlake serve`. Senders hand it decoded batches;
//! it appends them to the write-ahead log, syncs once for every batch that arrived meanwhile
//! (group commit), and feeds the batches in order to one pipeline thread that dedups, runs the
//! rules and writes the lake. A sender is answered once its rows are synced in the log and
//! queryable in the live buffer (read-your-writes), alerts included. Parquet files are completed every `flush_interval` or when the live buffer grows past `flush_bytes`,
//! after which the log segments they cover are deleted.
//!
//! Memory is bounded by a byte budget: a sender reserves its batch's size before decoding and the
//! reservation is released only when the pipeline has applied the batch, so when the pipeline
//! falls behind, new senders are refused (and told to retry) instead of queued.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use auditlake_rules::RuleEngine;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

mod log;
mod writer;

use self::log::{Append, Apply, Checkpoint, ToLog, log_thread};
use self::writer::PipelineThread;
use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::live::SharedLake;
use crate::maintenance::{self, Maintenance};
use crate::pipeline::Pipeline;
use crate::wal::{self, Wal};
use auditlake_storage::Lake;

/// How the service flushes, bounds memory and maintains the lake.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Longest time rows stay only in the live buffer and the log.
    pub flush_interval: Duration,
    /// Live-buffer size that triggers a flush sooner.
    pub flush_bytes: usize,
    /// Bytes of accepted-but-not-yet-applied input held at most; beyond it senders are refused.
    pub inflight_bytes: usize,
    /// How often compaction and retention run.
    pub maintenance_interval: Duration,
    /// Partitions whose hour ended longer ago than this are deleted.
    pub retention: Option<Duration>,
    /// Which server this is, when several share the data directory.
    pub instance: Instance,
    /// Where the lake's tables are; `None` is inside the data directory.
    pub lake: Option<Lake>,
    /// Called with every batch of new alerts, on the pipeline thread, before the batch is
    /// acknowledged: may sync to disk, must not wait on the network.
    pub on_alerts: Option<AlertHook>,
}

/// Receives new alerts as they are raised (say, to queue them for delivery); see
/// [`ServiceConfig::on_alerts`]. It runs before the batch that raised them is acknowledged; an
/// error (an outbox that cannot be written) fails the service as a failed lake write does.
#[derive(Clone)]
pub struct AlertHook {
    /// Takes new alerts; may write them without syncing.
    pub take: Arc<AlertFn>,
    /// Makes every alert taken so far durable. Called before the write-ahead log segments of
    /// the events that raised them are deleted: until then a crash replays those events and
    /// raises the alerts again, so the hook need not sync per batch.
    pub sync: Arc<SyncFn>,
}

/// What [`AlertHook::sync`] calls.
pub type SyncFn = dyn Fn() -> std::result::Result<(), String> + Send + Sync;

/// What an [`AlertHook`] calls: new alerts in, why they could not be taken out.
pub type AlertFn = dyn Fn(&RecordBatch) -> std::result::Result<(), String> + Send + Sync;

impl std::fmt::Debug for AlertHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertHook")
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(30),
            flush_bytes: 64 << 20,
            inflight_bytes: 128 << 20,
            maintenance_interval: Duration::from_secs(60),
            retention: None,
            instance: Instance::unnamed(),
            lake: None,
            on_alerts: None,
        }
    }
}

/// Where the service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Readiness {
    /// Replaying the write-ahead log left by the last run.
    Replaying = 0,
    /// Taking traffic (but see [`Service::problem`]).
    Ready = 1,
}

/// Bytes of the in-flight budget held by one batch until the pipeline has applied it.
pub struct Reservation(OwnedSemaphorePermit);

impl Reservation {
    /// Grows the reservation (a body that inflated when decompressed); `false` if the budget
    /// cannot cover it now.
    pub fn grow(&mut self, budget: &Service, bytes: usize) -> bool {
        match budget.try_reserve(bytes) {
            Some(more) => {
                self.0.merge(more.0);
                true
            }
            None => false,
        }
    }
}

/// The write side of a running server. Dropping it without [`Service::shutdown`] leaves the log
/// to be replayed at the next start.
pub struct Service {
    appends: Mutex<Option<mpsc::Sender<ToLog>>>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    shared: Arc<SharedLake>,
    readiness: Arc<AtomicU8>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop_maintenance: Mutex<Option<SyncSender<()>>>,
    /// Held until shut down: one process per instance and data directory.
    lock: Mutex<Option<std::fs::File>>,
    /// Why the write-ahead log takes no batches for now.
    log_problem: Arc<Problem>,
    /// Why the lake is not written for now (batches are refused meanwhile).
    lake_problem: Arc<Problem>,
}

impl Service {
    /// Opens the lake and the log under `data_dir` and starts the log, pipeline and maintenance
    /// threads. What the last run left in the log is replayed first (see [`Service::readiness`]);
    /// batches accepted meanwhile wait behind it.
    pub fn start(
        data_dir: &Path,
        rules: Option<RuleEngine>,
        config: ServiceConfig,
    ) -> Result<Self> {
        let instance = config.instance.clone();
        let lock = instance.lock(data_dir)?;
        let lake = config.lake.clone().unwrap_or_else(|| Lake::local(data_dir));
        maintenance::recover(&lake, data_dir, &instance)?;
        let shared = Arc::new(SharedLake::default());
        let pipeline =
            Pipeline::open_shared(&lake, data_dir, rules, &shared)?.with_instance(&instance);
        let wal_dir = instance.wal_dir(data_dir);
        let (wal, first_segment) = Wal::open(&wal_dir)?;
        let readiness = Arc::new(AtomicU8::new(Readiness::Replaying as u8));
        let checkpoint = Arc::new(Checkpoint::default());
        let (append_tx, append_rx) = mpsc::channel::<ToLog>(4096);
        let (apply_tx, apply_rx) = sync_channel::<Apply>(256);

        let mut threads = Vec::new();
        let log_checkpoint = Arc::clone(&checkpoint);
        let log_problem = Arc::new(Problem::default());
        let lake_problem = Arc::new(Problem::default());
        let problem = Arc::clone(&log_problem);
        threads.push(spawn("auditlake-wal", move || {
            log_thread(wal, append_rx, apply_tx, &log_checkpoint, &problem)
        })?);
        let writer = PipelineThread {
            pipeline,
            wal_dir,
            shared: Arc::clone(&shared),
            config: config.clone(),
            readiness: Arc::clone(&readiness),
            checkpoint,
            problem: Arc::clone(&lake_problem),
            log: append_tx.downgrade(),
            last_segment: None,
            dirty_since: None,
            replayed_before: 0,
            retry: None,
        };
        threads.push(spawn("auditlake-pipeline", move || {
            writer.run(first_segment, apply_rx)
        })?);
        let (stop_tx, stop_rx) = sync_channel(1);
        let maintenance =
            Maintenance::new_in(&lake, data_dir, config.retention)?.with_instance(instance);
        let every = config.maintenance_interval;
        threads.push(spawn("auditlake-maintenance", move || {
            maintenance.run(every, &stop_rx)
        })?);

        let budget_bytes = config.inflight_bytes.max(1);
        Ok(Self {
            appends: Mutex::new(Some(append_tx)),
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            shared,
            readiness,
            threads: Mutex::new(threads),
            stop_maintenance: Mutex::new(Some(stop_tx)),
            lock: Mutex::new(Some(lock)),
            log_problem,
            lake_problem,
        })
    }

    /// What the query engine must share to see rows before their files are complete.
    pub fn shared(&self) -> Arc<SharedLake> {
        Arc::clone(&self.shared)
    }

    /// Why batches are refused for now, while the service retries by itself (the disk under the
    /// write-ahead log is full, say); `None` when they are taken.
    pub fn problem(&self) -> Option<String> {
        self.log_problem.get().or_else(|| self.lake_problem.get())
    }

    /// Whether the service has replayed the log and takes traffic.
    pub fn readiness(&self) -> Readiness {
        match self.readiness.load(Ordering::Acquire) {
            0 => Readiness::Replaying,
            _ => Readiness::Ready,
        }
    }

    /// Reserves `bytes` of the in-flight budget, or `None` when the pipeline is too far behind
    /// (the sender should retry later). A request larger than the whole budget waits for all of it.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = bytes.clamp(1, self.budget_bytes);
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        Arc::clone(&self.budget)
            .try_acquire_many_owned(n)
            .ok()
            .map(Reservation)
    }

    /// Stores `batch` durably: returns once it is in the synced log and applied to the live
    /// buffer, so a query sent after this returns sees it.
    pub async fn store(&self, batch: RecordBatch, reservation: Reservation) -> Result<()> {
        if let Some(reason) = self.lake_problem.get() {
            return Err(Error::Unavailable { reason });
        }
        let sender = self
            .appends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::Unavailable {
                reason: "shutting down".into(),
            })?;
        let record = wal::encode(&batch)?;
        let (done, receipt) = oneshot::channel();
        sender
            .send(ToLog::Append(Append {
                record,
                batch,
                reservation,
                done,
            }))
            .await
            .map_err(|_| Error::Unavailable {
                reason: "shutting down".into(),
            })?;
        match receipt.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Unavailable { reason }),
            Err(_) => Err(Error::Unavailable {
                reason: "the write-ahead log stopped".into(),
            }),
        }
    }

    /// Stops taking batches, applies and flushes everything accepted, and deletes the log it
    /// covered. Blocks until done.
    pub fn shutdown(&self) {
        self.appends
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.stop_maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a service thread panicked");
            }
        }
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Why the service refuses batches for now, while it retries by itself (`/readyz` says it).
#[derive(Default)]
pub(crate) struct Problem(Mutex<Option<String>>);

impl Problem {
    fn set(&self, reason: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
    }

    /// Clears it; whether there was one.
    fn clear(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some()
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(Error::io(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QueryEngine, QueryLimits};
    use arrow::array::AsArray;
    use auditlake_schema::columns::{alert, column};
    use auditlake_storage::test_support::events;

    fn count(engine: &QueryEngine) -> i64 {
        use arrow::array::AsArray;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let result = rt
            .block_on(engine.query("SELECT count(*) FROM events"))
            .expect("query");
        result.batches[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0)
    }

    /// Log segments (not the lock file) of the unnamed instance.
    fn segments(data_dir: &Path) -> usize {
        std::fs::read_dir(data_dir.join(wal::WAL_DIR))
            .expect("wal")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
            })
            .count()
    }

    fn store(service: &Service, batch: RecordBatch) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let reservation = service.try_reserve(1 << 20).expect("budget");
        rt.block_on(service.store(batch, reservation))
            .expect("store");
    }

    #[test]
    fn stored_rows_are_queryable_at_once_and_flushed_at_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServiceConfig {
            flush_interval: Duration::from_secs(3600),
            ..ServiceConfig::default()
        };
        let service = Service::start(dir.path(), None, config.clone()).expect("start");
        let query = QueryEngine::open_shared(
            &Lake::local(dir.path()),
            QueryLimits::default(),
            service.shared(),
        )
        .expect("query");
        store(&service, events("a", 30, "2025-11-03T10:00:00Z"));
        store(&service, events("b", 12, "2025-11-03T11:00:00Z"));
        assert_eq!(count(&query), 42, "live rows before any file is complete");
        assert_eq!(
            crate::partition::list(&dir.path().join("events"))
                .expect("list")
                .len(),
            2
        );
        let on_disk = QueryEngine::open(dir.path(), QueryLimits::default()).expect("query");
        assert_eq!(count(&on_disk), 0, "nothing finished yet");

        service.shutdown();
        assert_eq!(count(&on_disk), 42);
        let wal = segments(dir.path());
        assert_eq!(wal, 0, "the log is gone once everything is flushed");

        // A restart with a redelivery stores nothing twice.
        let service = Service::start(dir.path(), None, config).expect("restart");
        store(&service, events("a", 30, "2025-11-03T10:00:00Z"));
        service.shutdown();
        assert_eq!(count(&on_disk), 42);
    }

    #[test]
    fn a_failed_lake_write_refuses_new_batches_and_the_service_recovers_by_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the partition directory must go: writing that hour fails.
        let events_dir = dir.path().join("events");
        std::fs::create_dir_all(&events_dir).expect("mkdir");
        let obstacle = events_dir.join("date=2025-11-03");
        std::fs::write(&obstacle, b"in the way").expect("write");
        let service = Service::start(dir.path(), None, ServiceConfig::default()).expect("start");
        let query = QueryEngine::open_shared(
            &Lake::local(dir.path()),
            QueryLimits::default(),
            service.shared(),
        )
        .expect("query");
        store(&service, events("ok", 3, "2025-11-02T10:00:00Z"));
        store(&service, events("f", 5, "2025-11-03T10:00:00Z"));
        let why = service.problem().expect("a problem once the write failed");
        assert!(why.contains("writing the lake failed"), "{why}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let refused = rt.block_on(service.store(
            events("g", 1, "2025-11-04T10:00:00Z"),
            service.try_reserve(10).expect("budget"),
        ));
        assert!(
            matches!(refused, Err(Error::Unavailable { .. })),
            "{refused:?}"
        );

        // Retries fail while the obstacle stays; once it is gone, one succeeds unaided.
        std::thread::sleep(Duration::from_millis(1500));
        assert!(service.problem().is_some(), "still failing");
        std::fs::remove_file(&obstacle).expect("remove");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while service.problem().is_some() {
            assert!(std::time::Instant::now() < deadline, "never recovered");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(count(&query), 8, "both acknowledged batches, each once");
        store(&service, events("g", 1, "2025-11-04T10:00:00Z"));
        assert_eq!(count(&query), 9);
        service.shutdown();
        let on_disk = QueryEngine::open(dir.path(), QueryLimits::default()).expect("query");
        assert_eq!(count(&on_disk), 9);
        let leftovers: Vec<_> = crate::partition::files_under(&events_dir)
            .expect("files")
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// An outbox that cannot sync loses what it took since its last sync; the lake must not
    /// commit the events before, or their alerts would never be raised (nor delivered) again.
    #[test]
    fn alerts_a_failed_sync_lost_are_raised_again_before_their_events_are_committed() {
        use auditlake_rules::{CompiledPack, RuleSet};
        let pack = CompiledPack::compile(&RuleSet::builtin().expect("pack")).expect("compiles");
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-logs/exec-into-pod.log"),
        )
        .expect("sample log");
        let mut decoder = auditlake_schema::Decoder::new(Some("prod".into()));
        let mut rejected = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            decoder.decode(line.as_bytes(), &mut rejected);
        }
        let batch = decoder.finish();

        #[derive(Default)]
        struct Outbox {
            taken: Vec<String>,
            durable: std::collections::BTreeSet<String>,
            failures_left: usize,
        }
        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let (take, sync) = (Arc::clone(&outbox), Arc::clone(&outbox));
        let hook = AlertHook {
            take: Arc::new(move |alerts: &RecordBatch| {
                let ids = column(alerts, alert::ALERT_ID).as_string::<i32>();
                let mut outbox = take.lock().expect("lock");
                outbox
                    .taken
                    .extend(ids.iter().flatten().map(str::to_string));
                Ok(())
            }),
            sync: Arc::new(move || {
                let mut outbox = sync.lock().expect("lock");
                let taken = std::mem::take(&mut outbox.taken);
                if outbox.failures_left > 0 {
                    outbox.failures_left -= 1;
                    return Err("injected: the outbox could not be synced".into());
                }
                outbox.durable.extend(taken);
                Ok(())
            }),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServiceConfig {
            flush_interval: Duration::from_millis(100),
            on_alerts: Some(hook),
            ..ServiceConfig::default()
        };
        let service =
            Service::start(dir.path(), Some(RuleEngine::new(&pack)), config).expect("start");
        while service.readiness() == Readiness::Replaying {
            std::thread::sleep(Duration::from_millis(10));
        }
        outbox.lock().expect("lock").failures_left = 2;
        store(&service, batch);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        std::thread::sleep(Duration::from_millis(300));
        while service.problem().is_some() {
            assert!(std::time::Instant::now() < deadline, "never recovered");
            std::thread::sleep(Duration::from_millis(50));
        }
        service.shutdown();
        let stored = QueryEngine::open(dir.path(), QueryLimits::default()).expect("query");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let result = rt
            .block_on(stored.query("SELECT alert_id FROM alerts"))
            .expect("query");
        let mut ids = std::collections::BTreeSet::new();
        for b in &result.batches {
            ids.extend(
                b.column(0)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
        }
        assert!(!ids.is_empty(), "the sample raises alerts");
        let outbox = outbox.lock().expect("lock");
        assert_eq!(outbox.failures_left, 0, "both failures were met");
        assert_eq!(
            outbox.durable, ids,
            "every stored alert is durable in the outbox"
        );
    }

    #[test]
    fn flushed_log_segments_are_deleted_while_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = Service::start(
            dir.path(),
            None,
            ServiceConfig {
                flush_interval: Duration::from_millis(20),
                ..ServiceConfig::default()
            },
        )
        .expect("start");
        for i in 0..8 {
            store(
                &service,
                events(&format!("s{i}"), 10, "2025-11-03T10:00:00Z"),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let segments = segments(dir.path());
        assert!(segments <= 2, "{segments} segments kept after 8 flushes");
        service.shutdown();
        let on_disk = QueryEngine::open(dir.path(), QueryLimits::default()).expect("query");
        assert_eq!(count(&on_disk), 80);
    }

    #[test]
    fn an_exhausted_budget_refuses_until_batches_are_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = Service::start(
            dir.path(),
            None,
            ServiceConfig {
                inflight_bytes: 1000,
                ..ServiceConfig::default()
            },
        )
        .expect("start");
        let held = service.try_reserve(800).expect("first fits");
        assert!(service.try_reserve(300).is_none(), "over the budget");
        drop(held);
        assert!(service.try_reserve(300).is_some(), "released");
        assert!(
            service.try_reserve(5000).is_some(),
            "a request above the whole budget waits for all of it"
        );
        service.shutdown();
    }
}
