//! File replay: documents from inputs through the [`Decoder`] into a [`Sink`], in batches, with
//! every rejected line named by file and line.
//!
//! A batch ends after the document that brings the JSON text decoded since the last batch to
//! [`BATCH_BYTES`], and at the end of each input. With more than one thread
//! ([`Replay::with_threads`]) the documents are gathered into those same batches by a reader
//! thread and decoded by several decoder threads, and the sink gets them in input order: the
//! sink sees exactly the batches a single thread would have given it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use auditlake_schema::Decoder;

use crate::error::{Error, Result};
use crate::file::Input;
use crate::lines::{Document, for_each_document};
use crate::sink::Sink;

mod threads;

/// JSON text decoded into one batch: about 6,500 events of 1.3 KB. Counted in bytes rather than
/// events so that a batch's memory follows its events' size, and so that where a batch ends is
/// known before decoding (a document can hold a whole `EventList`).
pub const BATCH_BYTES: usize = 8 << 20;

/// A line (or an item of a list on that line) that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The input's display name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What was wrong, including the list item when only an item was bad.
    pub reason: String,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Inputs read.
    pub inputs: usize,
    /// Events decoded and handed to the sink.
    pub events: u64,
    /// Everything not stored, in input order.
    pub rejected: Vec<Rejected>,
    /// Inputs that held no document at all.
    pub empty_inputs: Vec<String>,
}

/// Progress of a running replay, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes read from the current input's underlying file.
    pub bytes: u64,
    /// Events decoded so far, all inputs.
    pub events: u64,
}

/// Replays inputs into a sink.
pub struct Replay<S> {
    cluster: Option<String>,
    decoder: Decoder,
    sink: S,
    batch_bytes: usize,
    threads: usize,
}

impl<S: Sink> Replay<S> {
    /// `cluster` forces the cluster name of every event (else a wrapper's, else `default`).
    pub fn new(sink: S, cluster: Option<String>) -> Self {
        Self {
            decoder: Decoder::new(cluster.clone()),
            cluster,
            sink,
            batch_bytes: BATCH_BYTES,
            threads: 1,
        }
    }

    /// JSON text per batch handed to the sink (see [`BATCH_BYTES`]).
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Decodes on `threads` threads (besides the one reading the input and the caller's, which
    /// runs the sink); 1 decodes on the caller's thread. The sink gets the same batches either
    /// way.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The sink, once replay is done.
    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Reads one input to the end. A read failure part-way (truncated gzip) is recorded as a
    /// rejection at the line where it happened and the events before it are kept; only a sink
    /// failure is an error.
    pub fn input(
        &mut self,
        input: &Input,
        summary: &mut Summary,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let name = input.display_name();
        summary.inputs += 1;
        let read_bytes = Arc::new(AtomicU64::new(0));
        let mut reader = match input.open(Arc::clone(&read_bytes)) {
            Ok(r) => r,
            Err(e) => {
                summary.rejected.push(Rejected {
                    file: name,
                    line: 0,
                    reason: error_chain(&e),
                });
                return Ok(());
            }
        };
        if self.threads > 1 {
            return self.input_threaded(reader, name, read_bytes, summary, progress);
        }
        let mut documents = 0usize;
        let mut rejections = Vec::new();
        let mut sink_error = None;
        let mut batch_bytes = 0usize;
        let read = for_each_document(&mut reader, |doc| {
            if sink_error.is_some() {
                return;
            }
            documents += 1;
            match doc {
                Document::Json { line, bytes } => {
                    batch_bytes += bytes.len();
                    let n = self.decoder.decode(bytes, &mut rejections);
                    summary.events += n as u64;
                    for r in rejections.drain(..) {
                        summary.rejected.push(Rejected {
                            file: name.clone(),
                            line,
                            reason: r.to_string(),
                        });
                    }
                }
                Document::Invalid { line, reason } => summary.rejected.push(Rejected {
                    file: name.clone(),
                    line,
                    reason,
                }),
            }
            if batch_bytes >= self.batch_bytes {
                batch_bytes = 0;
                if let Err(e) = self.flush() {
                    sink_error = Some(e);
                }
                progress(Progress {
                    bytes: read_bytes.load(Ordering::Relaxed),
                    events: summary.events,
                });
            }
        });
        if let Some(e) = sink_error {
            return Err(e);
        }
        self.flush()?;
        read_ended(read, documents, name, summary);
        progress(Progress {
            bytes: read_bytes.load(Ordering::Relaxed),
            events: summary.events,
        });
        Ok(())
    }

    /// Hands what is decoded so far to the sink.
    pub fn flush(&mut self) -> Result<()> {
        if self.decoder.is_empty() {
            return Ok(());
        }
        let batch = self.decoder.finish();
        self.sink.write(batch).map_err(|e| Error::Sink {
            source: Box::new(e),
        })
    }
}

/// Records how reading an input ended: a read failure part-way as a rejection at its line, an
/// input without a single document as empty.
fn read_ended(read: Result<()>, documents: usize, name: String, summary: &mut Summary) {
    if let Err(e) = read {
        let line = match &e {
            Error::Read { line, .. } => *line,
            _ => 0,
        };
        summary.rejected.push(Rejected {
            file: name,
            line,
            reason: error_chain(&e),
        });
    } else if documents == 0 {
        summary.empty_inputs.push(name);
    }
}

/// `outer: inner: innermost`, for one-line messages.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
