//! The log thread: appends each group of batches that arrived together to the write-ahead log,
//! syncs once for all of them, and hands them on in order to the pipeline thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use super::{Problem, Reservation};
use crate::error::Result;
use crate::wal::{Record, Wal};

/// Largest group of records written before one sync.
const GROUP_BYTES: usize = 32 << 20;

/// While the log fails and no batch comes: how often the request queue is looked at, and how
/// often the disk is probed.
const PROBE_POLL: Duration = Duration::from_millis(50);
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// What the log thread is asked to do, in order.
pub(super) enum ToLog {
    /// Log a batch, then hand it to the pipeline.
    Append(Append),
    /// Start a new segment and answer with its id: every batch acknowledged before is in an
    /// older segment (the pipeline thread replays those after a failed lake write).
    Rotate(oneshot::Sender<std::result::Result<u64, String>>),
}

pub(super) struct Append {
    pub(super) record: Record,
    pub(super) batch: RecordBatch,
    pub(super) reservation: Reservation,
    pub(super) done: oneshot::Sender<std::result::Result<(), String>>,
}

pub(super) struct Apply {
    pub(super) batch: RecordBatch,
    pub(super) segment: u64,
    pub(super) _reservation: Reservation,
    /// Answered once the rows are in the live buffer: the sender's next query sees them.
    pub(super) done: oneshot::Sender<std::result::Result<(), String>>,
}

pub(super) fn log_thread(
    mut wal: Wal,
    mut requests: mpsc::Receiver<ToLog>,
    apply: SyncSender<Apply>,
    checkpoint: &Checkpoint,
    problem: &Problem,
) {
    // Why the current segment takes no more appends; each group (or a probe, while none comes)
    // first tries a new segment, so the log resumes by itself once the disk has room again.
    let mut broken: Option<String> = None;
    let mut seen_flushes = 0;
    // A rotation asked for in the middle of a group, done after it.
    let mut next: Option<ToLog> = None;
    let mut probed = Instant::now();
    loop {
        let request = match next.take() {
            Some(request) => request,
            // While it is failing and no batch comes to try it (a load balancer sends none to
            // a server that is not ready), the disk is probed: once it takes a write again, so
            // does the log.
            None if problem.get().is_some() => match requests.try_recv() {
                Ok(request) => request,
                Err(mpsc::error::TryRecvError::Empty) => {
                    std::thread::sleep(PROBE_POLL);
                    if probed.elapsed() >= PROBE_EVERY {
                        probed = Instant::now();
                        probe(&mut wal, &mut broken, problem);
                    }
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            },
            None => match requests.blocking_recv() {
                Some(request) => request,
                None => break,
            },
        };
        let first = match request {
            ToLog::Append(append) => append,
            ToLog::Rotate(answer) => {
                let rotated = if broken.is_some() {
                    wal.abandon_segment()
                } else if wal.segment_bytes() == 0 {
                    Ok(()) // Nothing in it yet: it is already the first segment after them.
                } else {
                    wal.rotate()
                };
                let _ = answer.send(match rotated {
                    Ok(()) => {
                        broken = None;
                        Ok(wal.segment())
                    }
                    Err(e) => Err(why(&e)),
                });
                continue;
            }
        };
        let mut bytes = first.record.log_bytes();
        let mut group = vec![first];
        while bytes < GROUP_BYTES
            && let Ok(request) = requests.try_recv()
        {
            match request {
                ToLog::Append(append) => {
                    bytes += append.record.log_bytes();
                    group.push(append);
                }
                rotate @ ToLog::Rotate(_) => {
                    next = Some(rotate);
                    break;
                }
            }
        }
        let flushes = checkpoint.flushes.load(Ordering::Acquire);
        if broken.is_none() && flushes != seen_flushes {
            seen_flushes = flushes;
            let flushed = checkpoint.segment.load(Ordering::Acquire);
            if let Err(e) = release_flushed(&mut wal, flushed) {
                tracing::warn!(error = %e, "could not delete flushed write-ahead log segments");
            }
        }
        if broken.is_some() {
            match wal.abandon_segment() {
                Ok(()) => broken = None,
                Err(e) => broken = Some(why(&e)),
            }
        }
        if broken.is_none() {
            let written = group.iter().try_for_each(|a| wal.append(&a.record));
            match written.and_then(|()| wal.sync()) {
                Ok(took) => {
                    metrics::counter!("auditlake_wal_bytes_total").increment(bytes as u64);
                    metrics::histogram!("auditlake_wal_fsync_seconds").record(took.as_secs_f64());
                    if problem.clear() {
                        tracing::info!("the write-ahead log is written again; batches are taken");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "write-ahead log write failed; batches are refused until a write succeeds");
                    metrics::counter!("auditlake_wal_errors_total").increment(1);
                    broken = Some(why(&e));
                }
            }
        }
        if let Some(reason) = &broken {
            problem.set(reason);
        }
        let segment = wal.segment();
        for a in group {
            if let Some(reason) = &broken {
                let _ = a.done.send(Err(reason.clone()));
                continue;
            }
            if let Err(refused) = apply.send(Apply {
                batch: a.batch,
                segment,
                _reservation: a.reservation,
                done: a.done,
            }) {
                let _ = refused.0.done.send(Err("the pipeline stopped".into()));
            }
        }
    }
}

/// Clears the log's problem once its disk takes a write again (a broken segment is given up
/// first, as the next append would).
fn probe(wal: &mut Wal, broken: &mut Option<String>, problem: &Problem) {
    let ready = wal.probe().and_then(|()| match broken {
        Some(_) => wal.abandon_segment(),
        None => Ok(()),
    });
    if ready.is_ok() {
        *broken = None;
        problem.clear();
        tracing::info!("the write-ahead log's disk takes writes again; batches are taken");
    }
}

fn why(e: &auditlake_storage::Error) -> String {
    format!(
        "the write-ahead log could not be written: {}",
        auditlake_storage::error::chain(e)
    )
}

/// What the pipeline has put in finished files, for the log thread to delete.
#[derive(Default)]
pub(super) struct Checkpoint {
    /// Segments before this one are wholly in finished lake files; this one maybe in part.
    segment: AtomicU64,
    /// Flushes so far; the log thread acts once per change. Zero until the replay of the last
    /// run's segments is flushed, so nothing is deleted while it runs.
    flushes: AtomicU64,
}

impl Checkpoint {
    pub(super) fn advance(&self, segment: u64) {
        self.segment.store(segment, Ordering::Release);
        self.flushes.fetch_add(1, Ordering::AcqRel);
    }
}

/// Deletes segments the lake's files already hold; starts a new segment when the current one is
/// among them, so it can go at the next flush.
fn release_flushed(wal: &mut Wal, checkpoint: u64) -> Result<()> {
    if checkpoint >= wal.segment() && wal.segment_bytes() > 0 {
        wal.rotate()?;
    }
    Ok(wal.remove_before(checkpoint)?)
}
