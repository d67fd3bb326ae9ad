//! The write-ahead log: every accepted batch is appended here and synced before its sender is
//! told it is stored, so a crash loses nothing acknowledged. On start the log is replayed into the
//! lake (exact redeliveries are skipped there), and segments are deleted once the lake's files
//! hold everything in them.
//!
//! Layout: `wal/wal-NNNNNNNNNNNNNNNNNNNN.log` segments, each a run of records
//! `[u32 length][u32 crc32][Arrow IPC stream of one events batch]` (little endian). Records are
//! the normalized, already redacted rows, so no secret reaches the disk even here. A torn record
//! at the end of a segment (a crash mid-write, never acknowledged) ends that segment's replay.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use crate::durable::sync_dir;
use crate::error::{Error, Result};

/// Subdirectory of the data dir holding the log.
pub const WAL_DIR: &str = "wal";
/// A segment is closed and a new one started beyond this size, so flushed data can be deleted.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 8;

/// The appending side of the log.
pub struct Wal {
    dir: PathBuf,
    file: BufWriter<File>,
    /// Id of the segment being appended to; ids only grow.
    segment: u64,
    segment_bytes: u64,
    /// Bytes of the segment the last successful sync covers: what was acknowledged.
    synced_bytes: u64,
}

/// An encoded record, made by [`encode`] off the log's thread.
pub struct Record(Vec<u8>);

impl Record {
    /// Bytes it takes in the log.
    pub fn log_bytes(&self) -> usize {
        self.0.len() + HEADER
    }
}

/// Encodes a batch as a log record.
pub fn encode(batch: &RecordBatch) -> Result<Record> {
    let mut payload = Vec::with_capacity(batch.get_array_memory_size() / 2);
    let mut writer = StreamWriter::try_new(&mut payload, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(Record(payload))
}

impl Wal {
    /// Opens the log in `dir`, starting a new segment after any already there (which
    /// [`replay`] reads). Returns the log and the id of its first segment: older ones are the
    /// ones to replay.
    pub fn open(dir: &Path) -> Result<(Self, u64)> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let next = segments(&dir)?.last().map_or(0, |(id, _)| id + 1);
        let wal = Self {
            file: create_segment(&dir, next)?,
            dir,
            segment: next,
            segment_bytes: 0,
            synced_bytes: 0,
        };
        Ok((wal, next))
    }

    /// Id of the segment records are appended to now.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Appends a record (buffered until [`Wal::sync`]).
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let crc = crc32fast::hash(&record.0);
        let len = u32::try_from(record.0.len()).map_err(|_| Error::Io {
            path: self.path(),
            source: std::io::Error::other("record over 4 GiB"),
        })?;
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
        self.file
            .write_all(&header)
            .and_then(|()| self.file.write_all(&record.0))
            .map_err(Error::io(self.path()))?;
        self.segment_bytes += record.log_bytes() as u64;
        Ok(())
    }

    /// Makes everything appended durable; returns how long the sync took.
    pub fn sync(&mut self) -> Result<Duration> {
        let started = Instant::now();
        self.file.flush().map_err(Error::io(self.path()))?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(Error::io(self.path()))?;
        self.synced_bytes = self.segment_bytes;
        if self.segment_bytes >= SEGMENT_BYTES {
            self.rotate()?;
        }
        Ok(started.elapsed())
    }

    /// Starts a new segment, so the current one can be deleted once flushed.
    pub fn rotate(&mut self) -> Result<()> {
        self.file.flush().map_err(Error::io(self.path()))?;
        // Created before it counts, so a failure leaves the log appending where it was.
        self.file = create_segment(&self.dir, self.segment + 1)?;
        self.segment += 1;
        self.segment_bytes = 0;
        self.synced_bytes = 0;
        Ok(())
    }

    /// Gives up the current segment after a failed append or sync (a full disk, an I/O error):
    /// what of it was not synced was never acknowledged, and is cut off (or, if even that fails,
    /// left for a replay, which stores it once though its sender was refused and retries);
    /// appends go on in a new segment, and a replay stops at the old one's torn end. Until this
    /// succeeds the log must take no append, or a record after a torn one would be lost to a
    /// replay.
    pub fn abandon_segment(&mut self) -> Result<()> {
        let next = self.segment + 1;
        let file = create_segment(&self.dir, next)?;
        let abandoned = std::mem::replace(&mut self.file, file);
        // Not `drop`, which would write out the buffered bytes.
        let (file, _unwritten) = abandoned.into_parts();
        if let Err(e) = file.set_len(self.synced_bytes) {
            tracing::warn!(error = %e, segment = %self.path().display(), "could not cut the refused records off a write-ahead log segment; a replay stores them");
        }
        self.segment = next;
        self.segment_bytes = 0;
        self.synced_bytes = 0;
        Ok(())
    }

    /// Whether the log's disk takes writes again: writes, syncs and deletes a small file beside
    /// the segments (their names never end in `.probe`).
    pub fn probe(&self) -> Result<()> {
        let path = self.dir.join("write.probe");
        let written = File::create(&path).and_then(|mut file| {
            file.write_all(&[0u8; 4096])?;
            file.sync_data()
        });
        let _ = std::fs::remove_file(&path);
        written.map_err(Error::io(&path))
    }

    /// Deletes every segment older than `segment` (their records are in finished lake files).
    pub fn remove_before(&self, segment: u64) -> Result<()> {
        remove_segments(&self.dir, |id| id < segment)
    }

    /// Bytes in the current segment.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    fn path(&self) -> PathBuf {
        segment_path(&self.dir, self.segment)
    }
}

/// What a replay found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Segments read.
    pub segments: usize,
    /// Records (batches) handed on.
    pub records: usize,
    /// Rows in them.
    pub rows: usize,
    /// Segments that ended in a torn or corrupt record.
    pub torn: usize,
}

/// Hands every record of the segments before `before` to `each`, oldest first.
///
/// `each` may fail with an error of its own, which ends the replay and is returned.
pub fn replay<E: From<Error>>(
    dir: &Path,
    before: u64,
    mut each: impl FnMut(RecordBatch) -> std::result::Result<(), E>,
) -> std::result::Result<Replayed, E> {
    let mut out = Replayed::default();
    for (id, path) in segments(dir)? {
        if id >= before {
            break;
        }
        out.segments += 1;
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        let mut at = 0;
        while at < bytes.len() {
            let Some(payload) = record_at(&bytes, at) else {
                tracing::warn!(segment = %path.display(), offset = at, "write-ahead log segment ends in a torn record");
                out.torn += 1;
                break;
            };
            at += HEADER + payload.len();
            let reader =
                StreamReader::try_new(payload, None).map_err(|source| Error::Arrow { source })?;
            for batch in reader {
                let batch = batch.map_err(Error::from)?;
                out.rows += batch.num_rows();
                each(batch)?;
            }
            out.records += 1;
        }
    }
    Ok(out)
}

/// Deletes segments older than `before` (after a replay has put them in the lake).
pub fn remove_replayed(dir: &Path, before: u64) -> Result<()> {
    remove_segments(dir, |id| id < before)
}

/// The payload of the record at `at`, if it is whole and its checksum matches.
fn record_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at + HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("wal-{id:020}.log"))
}

fn create_segment(dir: &Path, id: u64) -> Result<BufWriter<File>> {
    let path = segment_path(dir, id);
    let file = File::create(&path).map_err(Error::io(&path))?;
    sync_dir(&path);
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// Segments in id order.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(Error::io(dir))?.path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("wal-")?.strip_suffix(".log")?.parse().ok());
        if let Some(id) = id {
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

fn remove_segments(dir: &Path, remove: impl Fn(u64) -> bool) -> Result<()> {
    for (id, path) in segments(dir)? {
        if remove(id) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&path)(e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter([(
            "v",
            Arc::new(Int64Array::from(values.to_vec())) as arrow::array::ArrayRef,
        )])
        .expect("batch")
    }

    /// The values of the segments before `before`, replayed, and what the replay found.
    fn replayed_values(dir: &Path, before: u64) -> (Vec<i64>, Replayed) {
        let mut rows = Vec::new();
        let replayed = replay(dir, before, |b| {
            let v = b
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("i64");
            rows.extend(v.values().iter().copied());
            Ok::<_, Error>(())
        })
        .expect("replay");
        (rows, replayed)
    }

    #[test]
    fn replays_synced_records_and_stops_at_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, first) = Wal::open(&dir.path().join(WAL_DIR)).expect("open");
        assert_eq!(first, 0);
        wal.append(&encode(&batch(&[1, 2])).expect("encode"))
            .expect("append");
        wal.append(&encode(&batch(&[3])).expect("encode"))
            .expect("append");
        wal.sync().expect("sync");
        let path = wal.path();
        drop(wal);
        // A crash part-way through a third record.
        let mut bytes = std::fs::read(&path).expect("read");
        let whole = bytes.len();
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 5]);
        std::fs::write(&path, &bytes).expect("write");

        let (_wal, next) = Wal::open(&dir.path().join(WAL_DIR)).expect("reopen");
        assert_eq!(next, 1, "a restart appends to a new segment");
        let (rows, replayed) = replayed_values(&dir.path().join(WAL_DIR), next);
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!((replayed.records, replayed.torn), (2, 1));
        assert!(whole > 0);

        remove_replayed(&dir.path().join(WAL_DIR), next).expect("remove");
        assert_eq!(
            segments(&dir.path().join(WAL_DIR)).expect("list").len(),
            1,
            "only the new segment is left"
        );
    }

    #[test]
    fn an_abandoned_segment_keeps_only_what_was_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal_dir = dir.path().join(WAL_DIR);
        let (mut wal, _) = Wal::open(&wal_dir).expect("open");
        wal.append(&encode(&batch(&[1])).expect("encode"))
            .expect("append");
        wal.sync().expect("sync");
        // Written out but (say) its fsync failed: refused, so it must not come back.
        wal.append(&encode(&batch(&[2])).expect("encode"))
            .expect("append");
        wal.file.flush().expect("written out");
        wal.abandon_segment().expect("abandon");
        wal.append(&encode(&batch(&[3])).expect("encode"))
            .expect("append");
        wal.sync().expect("sync");
        assert_eq!(replayed_values(&wal_dir, u64::MAX).0, [1, 3]);
    }

    #[test]
    fn a_flipped_bit_is_not_replayed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) = Wal::open(&dir.path().join(WAL_DIR)).expect("open");
        wal.append(&encode(&batch(&[7])).expect("encode"))
            .expect("append");
        wal.sync().expect("sync");
        let path = wal.path();
        drop(wal);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        let replayed =
            replay(&dir.path().join(WAL_DIR), 1, |_| Ok::<_, Error>(())).expect("replay");
        assert_eq!((replayed.records, replayed.torn), (0, 1));
    }
}
