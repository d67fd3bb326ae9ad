//! Replay on several threads: a reader thread splits the input into the batches a single thread
//! would make (whole documents, [`Replay::with_batch_bytes`] of JSON text each), decoder threads
//! decode them, each into one batch, and the caller's thread hands the batches to the sink in
//! input order, as they would have come from one thread.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;
use auditlake_schema::Decoder;

use super::{Progress, Rejected, Replay, Summary, read_ended};
use crate::error::{Error, Result};
use crate::lines::{Document, for_each_document};
use crate::sink::Sink;

/// The documents of one batch, copied out of the reader's buffer.
struct Chunk {
    text: Vec<u8>,
    documents: Vec<Item>,
}

enum Item {
    /// JSON text at `line`, ending at `end` in the chunk's text (starting where the one before ended).
    Json {
        line: usize,
        end: usize,
    },
    Invalid {
        line: usize,
        reason: String,
    },
}

/// One chunk decoded.
struct Decoded {
    batch: Option<RecordBatch>,
    events: u64,
    /// (line, reason), in input order.
    rejected: Vec<(usize, String)>,
}

fn decode(decoder: &mut Decoder, chunk: &Chunk) -> Decoded {
    let mut events = 0u64;
    let mut rejected = Vec::new();
    let mut rejections = Vec::new();
    let mut start = 0;
    for item in &chunk.documents {
        match item {
            Item::Json { line, end } => {
                events += decoder.decode(&chunk.text[start..*end], &mut rejections) as u64;
                start = *end;
                rejected.extend(rejections.drain(..).map(|r| (*line, r.to_string())));
            }
            Item::Invalid { line, reason } => rejected.push((*line, reason.clone())),
        }
    }
    let batch = (!decoder.is_empty()).then(|| decoder.finish());
    Decoded {
        batch,
        events,
        rejected,
    }
}

/// [`decode`], a panic in it (a bug: the decoder is fuzzed for them) reported as the chunk's
/// documents being rejected rather than stopping the chunks after it; the decoder starts afresh.
fn decode_or_report(decoder: &mut Decoder, cluster: &Option<String>, chunk: &Chunk) -> Decoded {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(decoder, chunk))) {
        Ok(decoded) => decoded,
        Err(_) => {
            *decoder = Decoder::new(cluster.clone());
            let reason = "the decoder failed on this batch (a bug; please report it)";
            Decoded {
                batch: None,
                events: 0,
                rejected: chunk
                    .documents
                    .iter()
                    .map(|item| match item {
                        Item::Json { line, .. } | Item::Invalid { line, .. } => {
                            (*line, reason.to_string())
                        }
                    })
                    .collect(),
            }
        }
    }
}

/// Reads `reader` to the end, sending each chunk with its number once a permit is free; stops
/// early when the permits or the decoders are gone. Returns how reading ended and how many
/// documents it found.
fn read_chunks(
    mut reader: Box<dyn BufRead + Send>,
    batch_bytes: usize,
    permits: Receiver<()>,
    chunks: SyncSender<(usize, Chunk)>,
    spare: Receiver<Vec<u8>>,
) -> (Result<()>, usize) {
    // Room for a batch's text and the document that ends it, so that the text is not copied
    // again while it grows. The decoders give each text back once decoded: freed on their
    // threads instead, the allocator kept hundreds of MiB of them committed.
    let capacity = batch_bytes + (batch_bytes >> 3);
    let empty = || Chunk {
        text: spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity)),
        documents: Vec::new(),
    };
    let mut chunk = empty();
    let mut sent = 0usize;
    let mut documents = 0usize;
    let mut stopped = false;
    let mut send = |chunk: Chunk| {
        let ok = permits.recv().is_ok() && chunks.send((sent, chunk)).is_ok();
        sent += 1;
        ok
    };
    let read = for_each_document(&mut reader, |doc| {
        if stopped {
            return;
        }
        documents += 1;
        match doc {
            Document::Json { line, bytes } => {
                chunk.text.extend_from_slice(bytes);
                let end = chunk.text.len();
                chunk.documents.push(Item::Json { line, end });
            }
            Document::Invalid { line, reason } => {
                chunk.documents.push(Item::Invalid { line, reason })
            }
        }
        if chunk.text.len() >= batch_bytes {
            stopped = !send(std::mem::replace(&mut chunk, empty()));
        }
    });
    if !stopped && !chunk.documents.is_empty() {
        send(chunk);
    }
    (read, documents)
}

impl<S: Sink> Replay<S> {
    /// [`Replay::input`] with the reading, decoding and storing of batches overlapping.
    pub(super) fn input_threaded(
        &mut self,
        reader: Box<dyn BufRead + Send>,
        name: String,
        read_bytes: Arc<AtomicU64>,
        summary: &mut Summary,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        // Batches end with each input, so nothing decoded on this thread is pending; were it
        // (a caller mixing thread counts), it goes first, as it came first.
        self.flush()?;
        let decoders = self.threads;
        // Chunks read ahead of the sink at most: one per decoder, and one decoded, waiting for
        // the sink. Each holds its text and then its batch: this bounds the replay's memory.
        let in_flight = decoders + 1;
        let (permit, permits) = sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            permit.send(()).expect("the receiver is here");
        }
        let mut permit = Some(permit);
        let (chunk_tx, chunk_rx) = sync_channel::<(usize, Chunk)>(decoders);
        let chunk_rx = Arc::new(Mutex::new(chunk_rx));
        let (done_tx, done_rx) = channel::<(usize, Decoded)>();
        let (spare_tx, spare_rx) = channel::<Vec<u8>>();
        let batch_bytes = self.batch_bytes;
        let mut sink_error = None;
        let (read, documents) = std::thread::scope(|scope| {
            for _ in 0..decoders {
                let (chunks, done) = (Arc::clone(&chunk_rx), done_tx.clone());
                let spare = spare_tx.clone();
                let cluster = self.cluster.clone();
                let mut decoder = Decoder::new(cluster.clone());
                scope.spawn(move || {
                    loop {
                        let next = chunks.lock().map(|c| c.recv());
                        let Ok(Ok((n, chunk))) = next else { break };
                        let decoded = decode_or_report(&mut decoder, &cluster, &chunk);
                        let mut text = chunk.text;
                        text.clear();
                        // The reader may be done: then the text is freed here.
                        let _ = spare.send(text);
                        if done.send((n, decoded)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop((done_tx, spare_tx));
            let reading =
                scope.spawn(move || read_chunks(reader, batch_bytes, permits, chunk_tx, spare_rx));
            // In input order: chunk n waits here until every chunk before it went to the sink.
            let mut next = 0usize;
            let mut waiting = BTreeMap::new();
            for (n, decoded) in done_rx.iter() {
                waiting.insert(n, decoded);
                while let Some(decoded) = waiting.remove(&next) {
                    next += 1;
                    if sink_error.is_some() {
                        continue;
                    }
                    if let Err(e) = self.take(decoded, &name, summary) {
                        // The reader stops at its next chunk; what is decoded is dropped.
                        sink_error = Some(e);
                        permit = None;
                        continue;
                    }
                    if let Some(permit) = &permit {
                        // Fails only once the reader is done, which needs no more permits.
                        let _ = permit.send(());
                    }
                    progress(Progress {
                        bytes: read_bytes.load(Ordering::Relaxed),
                        events: summary.events,
                    });
                }
            }
            reading.join().expect("the reader thread does not panic")
        });
        if let Some(e) = sink_error {
            return Err(e);
        }
        read_ended(read, documents, name, summary);
        progress(Progress {
            bytes: read_bytes.load(Ordering::Relaxed),
            events: summary.events,
        });
        Ok(())
    }

    /// Counts one decoded chunk in `summary` and hands its batch to the sink.
    fn take(&mut self, decoded: Decoded, name: &str, summary: &mut Summary) -> Result<()> {
        summary.events += decoded.events;
        summary
            .rejected
            .extend(decoded.rejected.into_iter().map(|(line, reason)| Rejected {
                file: name.to_string(),
                line,
                reason,
            }));
        match decoded.batch {
            Some(batch) => self.sink.write(batch).map_err(|e| Error::Sink {
                source: Box::new(e),
            }),
            None => Ok(()),
        }
    }
}
