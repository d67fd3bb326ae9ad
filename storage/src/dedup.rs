//! Recognising exact redeliveries: the same event (same cluster, audit ID, stage and content)
//! stored once, however often a file is replayed or a sender retries.
//!
//! A redelivery has the same `event_time` as the original, so it lands in the same hour
//! partition: the index is kept per partition, loaded lazily from the partition's files (four
//! narrow columns) the first time a batch touches it, and only the most recently used partitions
//! stay in memory. Each partition keeps at most two generations of keys ([`KeySet`]), so memory
//! is bounded however busy an hour is: exact for the last ~917k events of an hour at least, and
//! for the whole hour below that. Distinct events sharing an `auditID` (anonymised logs do that)
//! differ in `event_hash` and are all kept.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use auditlake_schema::columns::{column, event};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};
use crate::partition::{Hour, RecentPartitions};
use crate::store::FileData;

/// Partitions whose keys stay in memory. Input is mostly in time order and redeliveries come
/// within minutes, so a few hours cover batches late across an hour boundary; input that walks
/// back to an older hour reloads that hour's keys from its files. Each hour holds at most two
/// generations of ~17 MiB, so this bounds the index whatever the input size.
pub(crate) const CACHED_PARTITIONS: usize = 4;

/// The identity of one stored event.
pub(crate) type Key = u128;

/// Computes [`Key`]s for every row of an `events` batch (or of its key columns read back).
pub(crate) fn keys(batch: &RecordBatch) -> Vec<Key> {
    let column = |name: &str| column(batch, name);
    let cluster = column(event::CLUSTER).as_string::<i32>();
    let audit_id = column(event::AUDIT_ID).as_string::<i32>();
    let stage = column(event::STAGE).as_string::<i32>();
    let hash = column(event::EVENT_HASH).as_primitive::<UInt64Type>();
    (0..batch.num_rows())
        .map(|i| {
            let mut h = Xxh3::new();
            for s in [cluster.value(i), audit_id.value(i)] {
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            if stage.is_valid(i) {
                h.update(stage.value(i).as_bytes());
            }
            h.update(&hash.value(i).to_le_bytes());
            h.digest128()
        })
        .collect()
}

/// Keys one partition keeps per generation: just under a power-of-two table's load limit
/// (7/8 of 2^20 buckets), so a generation never grows past 2^20 buckets (~17 MiB).
const GENERATION_KEYS: usize = 917_000;

/// The keys of one partition, bounded: two generations, the older dropped when the newer fills.
/// Membership is exact for at least the last [`GENERATION_KEYS`] keys inserted (all of them for
/// an hour with fewer events than that, which is most hours of most clusters); a redelivery older
/// than that in a busier hour is stored again rather than memory growing without bound.
#[derive(Default)]
pub(crate) struct KeySet {
    current: HashSet<Key>,
    previous: HashSet<Key>,
}

impl KeySet {
    /// Adds `key`; `false` if it is already known.
    pub(crate) fn insert(&mut self, key: Key) -> bool {
        if self.previous.contains(&key) || self.current.contains(&key) {
            return false;
        }
        if self.current.len() >= GENERATION_KEYS {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key)
    }
}

/// Keys of stored events, per hour partition.
pub(crate) struct DedupIndex(RecentPartitions<KeySet>);

impl Default for DedupIndex {
    fn default() -> Self {
        Self(RecentPartitions::new(CACHED_PARTITIONS))
    }
}

impl DedupIndex {
    /// The keys of `hour`, made by `load` if this partition is not in memory. A partition
    /// dropped to make room is first handed to `evicted`: its keys are loaded again next time,
    /// from its files, so a file still being written must be completed first. Both get `writer`.
    pub(crate) fn partition<W>(
        &mut self,
        hour: Hour,
        writer: &mut W,
        load: impl FnOnce(&W) -> Result<KeySet>,
        evicted: impl FnOnce(&mut W, Hour) -> Result<()>,
    ) -> Result<&mut KeySet> {
        let writer = std::cell::RefCell::new(writer);
        self.0.get_or_insert_with(
            hour,
            || load(&writer.borrow()),
            |old, _| evicted(&mut writer.borrow_mut(), old),
        )
    }
}

/// Adds the keys of the events stored in `file` (`path` names it in errors) to `keys`.
pub(crate) fn load(keys: &mut KeySet, file: FileData, path: &str) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::parquet(path))?;
    let wanted = [
        event::CLUSTER,
        event::AUDIT_ID,
        event::STAGE,
        event::EVENT_HASH,
    ];
    let mask = ProjectionMask::columns(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(Error::parquet(path))?;
    for batch in reader {
        let batch = batch?;
        for key in self::keys(&batch) {
            keys.insert(key);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_is_exact_for_the_latest_generation_and_bounded() {
        let mut set = KeySet::default();
        let n = GENERATION_KEYS as u128;
        for k in 0..n {
            assert!(set.insert(k));
        }
        assert!(!set.insert(0), "every key of a generation is known");
        for k in n..2 * n + 1 {
            assert!(set.insert(k));
        }
        // The first generation was dropped when the second filled up.
        assert!(!set.insert(2 * n), "the newest keys are known");
        assert!(!set.insert(n), "the previous generation is known");
        assert!(set.insert(1), "the oldest generation is gone");
        assert!(set.current.len() + set.previous.len() <= 2 * GENERATION_KEYS + 1);
    }
}
