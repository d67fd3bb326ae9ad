//! A table's file while it is being written (`.tmp` in the table's directory), encoded on the
//! writer's thread or, for a replay that has cores to spare, on a thread of its own.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use auditlake_schema::columns::column;
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use crate::delta::DataFile;
use crate::error::{Error, Result};
use crate::partition::Hour;
use crate::store::Lake;

/// Memory an open file's row group may buffer before it is written out, whatever its row count:
/// audit events with request and response bodies are wide, and a server keeps several files open.
const ROW_GROUP_MEMORY: usize = 32 << 20;

/// Batches handed to a background encoder that it has not started on yet, at most: the writer
/// waits rather than queue more (each holds its rows' memory).
const BACKGROUND_QUEUE: usize = 1;

/// Appends `batch`, ending the row group early when its buffers reach [`ROW_GROUP_MEMORY`].
pub(crate) fn write_bounded(
    writer: &mut ArrowWriter<File>,
    batch: &RecordBatch,
) -> parquet::errors::Result<()> {
    writer.write(batch)?;
    if writer.memory_size() >= ROW_GROUP_MEMORY {
        writer.flush()?;
    }
    Ok(())
}

/// Where an open file's rows are encoded.
pub(crate) enum FileWriter {
    /// On the thread that writes them.
    Inline(Box<ArrowWriter<File>>),
    /// On a thread of the file's own, the rows handed over in order.
    Background(Background),
}

pub(crate) struct Background {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<parquet::errors::Result<ArrowWriter<File>>>>,
    /// The encoder's buffered bytes after its last job.
    memory: Arc<AtomicUsize>,
    /// Rows handed over since the row group was last ended.
    rows: usize,
}

enum Job {
    Write(RecordBatch),
    EndRowGroup,
}

impl Background {
    /// The encoder's thread, given the file's writer; fails only when no thread can be had.
    fn start(mut writer: ArrowWriter<File>) -> std::io::Result<Self> {
        let (jobs, queue) = sync_channel::<Job>(BACKGROUND_QUEUE);
        let memory = Arc::new(AtomicUsize::new(0));
        let shown = Arc::clone(&memory);
        let thread = std::thread::Builder::new()
            .name("parquet-encoder".into())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Write(batch) => write_bounded(&mut writer, &batch)?,
                        Job::EndRowGroup => writer.flush()?,
                    }
                    shown.store(writer.memory_size(), Ordering::Relaxed);
                }
                Ok(writer)
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
            memory,
            rows: 0,
        })
    }

    fn send(&mut self, job: Job) -> parquet::errors::Result<()> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
        match sent {
            Some(Ok(())) => Ok(()),
            // The encoder stopped at an error: that error.
            _ => self.join().map(drop),
        }
    }

    /// Waits for the encoder to finish what it was given; its writer, or the error it stopped at.
    fn join(&mut self) -> parquet::errors::Result<ArrowWriter<File>> {
        self.jobs = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(done)) => done,
            Some(Err(_)) => Err(ParquetError::General("the Parquet encoder panicked".into())),
            None => Err(ParquetError::General(
                "the Parquet encoder stopped at an earlier error".into(),
            )),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Given up: the encoder ends with its queue, the file is removed by the caller.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl FileWriter {
    /// Encodes `batch` (or hands it to the encoder), ending the row group when it is large.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        match self {
            Self::Inline(writer) => write_bounded(writer, batch),
            Self::Background(b) => {
                b.rows += batch.num_rows();
                b.send(Job::Write(batch.clone()))
            }
        }
    }

    /// Ends the row group being buffered, if any.
    pub(crate) fn end_row_group(&mut self) -> parquet::errors::Result<()> {
        match self {
            Self::Inline(writer) => writer.flush(),
            Self::Background(b) => {
                b.rows = 0;
                b.send(Job::EndRowGroup)
            }
        }
    }

    /// Bytes the row group being buffered holds (for a background encoder, as of its last job).
    pub(crate) fn memory_size(&self) -> usize {
        match self {
            Self::Inline(writer) => writer.memory_size(),
            Self::Background(b) => b.memory.load(Ordering::Relaxed),
        }
    }

    /// Rows of the row group being buffered (for a background encoder, those handed over since
    /// it was last ended, even if it was ended early for its size).
    pub(crate) fn in_progress_rows(&self) -> usize {
        match self {
            Self::Inline(writer) => writer.in_progress_rows(),
            Self::Background(b) => b.rows,
        }
    }

    /// Writes the footer; the file, not yet synced.
    fn into_inner(self) -> parquet::errors::Result<File> {
        let writer = match self {
            Self::Inline(writer) => *writer,
            Self::Background(mut b) => b.join()?,
        };
        writer.into_inner()
    }
}

pub(crate) struct OpenFile {
    pub(crate) hour: Hour,
    pub(crate) tmp: PathBuf,
    /// The file's path in its table once complete.
    pub(crate) relative: Arc<str>,
    pub(crate) writer: FileWriter,
    rows: u64,
    /// Earliest and latest time written.
    times: Option<(i64, i64)>,
}

impl OpenFile {
    pub(crate) fn create(
        hour: Hour,
        table_dir: &Path,
        name: &str,
        schema: SchemaRef,
        props: WriterProperties,
        background: bool,
    ) -> Result<Self> {
        let relative = format!("{}/{name}.parquet", hour.relative_dir());
        let tmp = table_dir.join(format!("{relative}.tmp"));
        if let Some(dir) = tmp.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        let file = File::create(&tmp).map_err(Error::io(&tmp))?;
        let writer =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(Error::parquet(&tmp))?;
        let writer = if background {
            FileWriter::Background(Background::start(writer).map_err(Error::io(&tmp))?)
        } else {
            FileWriter::Inline(Box::new(writer))
        };
        Ok(Self {
            hour,
            tmp,
            relative: relative.into(),
            writer,
            rows: 0,
            times: None,
        })
    }

    /// Writes `part`, its rows all of this file's hour and in time order.
    pub(crate) fn write(&mut self, part: &RecordBatch, time_column: &str) -> Result<()> {
        self.writer.write(part).map_err(Error::parquet(&self.tmp))?;
        let times = column(part, time_column).as_primitive::<TimestampMicrosecondType>();
        let (min, max) = (arrow::compute::min(times), arrow::compute::max(times));
        if let (Some(min), Some(max)) = (min, max) {
            self.times = Some(match self.times {
                Some((a, b)) => (a.min(min), b.max(max)),
                None => (min, max),
            });
        }
        self.rows += part.num_rows() as u64;
        Ok(())
    }

    /// Writes the footer, syncs, and puts the file in `lake` under its final name; it becomes
    /// part of the table `name` when committed.
    pub(crate) fn close(self, lake: &Lake, name: &str) -> Result<DataFile> {
        let tmp = self.tmp.clone();
        let closed = self.finish(lake, name);
        if closed.is_err() {
            // Useless half-written; its rows are the caller's to write again.
            remove_unfinished(&tmp);
        }
        closed
    }

    fn finish(self, lake: &Lake, name: &str) -> Result<DataFile> {
        let file = self
            .writer
            .into_inner()
            .map_err(Error::parquet(&self.tmp))?;
        file.sync_all().map_err(Error::io(&self.tmp))?;
        let size = file.metadata().map_err(Error::io(&self.tmp))?.len();
        drop(file);
        lake.publish_file(&self.tmp, name, &self.relative)?;
        Ok(DataFile {
            path: self.relative.to_string(),
            hour: self.hour,
            size,
            rows: Some(self.rows),
            times: self.times,
        })
    }
}

/// Removes an open file given up; one already gone is fine.
pub(crate) fn remove_unfinished(tmp: &Path) {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(error = %e, file = %tmp.display(), "could not remove an unfinished file; a restart removes it");
        }
        _ => {}
    }
}
