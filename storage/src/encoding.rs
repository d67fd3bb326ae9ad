//! How the lake's Parquet files are encoded: per column by what it holds, and per file by what
//! its first rows hold.

use std::collections::HashSet;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use auditlake_schema::columns::{alert, event};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::lake::FEW_VALUED_EVENT_COLUMNS;

/// Rows per Parquet row group: small enough that an open writer's buffered group stays a few MiB
/// with request bodies kept, large enough for good compression and statistics.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows of the batch a file's first rows came in that [`file_properties`] looks at.
const SAMPLE_ROWS: usize = 4096;
/// Values a column needs in that sample before its encoding is decided from them.
const SAMPLE_MIN_VALUES: usize = 256;

fn zstd() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(1).expect("1 is a valid zstd level"))
}

/// How every file of the lake is written.
///
/// Dictionary encoding stays on for the low-cardinality columns (verb, resource, namespace, user,
/// user agent, codes, ...). Columns where nearly every value is new skip it: a dictionary that
/// overflows is wasted hashing and a wasted page. Times are sorted within a file, so their deltas
/// pack into a few bits each. Bodies get no min/max statistics: nobody prunes on them and
/// comparing kilobytes of JSON per value is not free. Nor do the long or nearly unique texts
/// (audit IDs, URIs, names, user agents, UIDs, source IPs, alert IDs, messages, evidence): an
/// hour's file holds them from one end of the alphabet to the other, so their min and max never
/// excluded a file, and
/// comparing every value twice cost 2% of ingest CPU (six alternating 1M-event replays: 5.08
/// against 5.24 CPU-s, medians).
///
/// Codecs: zstd where it pays (the bodies, IDs, URIs and names: 95% of the bytes it saves), LZ4
/// for the dictionary-encoded rest, none for the delta-packed times and the random hash, which
/// zstd left the same size. zstd at level 1: against level 3 on the generated 1M events it
/// stores 2.4% more (58.7 against 57.3 MB) and ingest takes 5% less CPU (5.30 against 5.58 s). A zstd column costs its writer about half a MiB of codec state per
/// open row group (a compression and a decompression context), and a server has several open.
pub(crate) fn writer_properties() -> WriterProperties {
    let zstd = zstd();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("auditlake".into());
    for time in [event::EVENT_TIME, event::STAGE_TIME, event::INGESTED_AT] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(time), false)
            .set_column_encoding(ColumnPath::from(time), Encoding::DELTA_BINARY_PACKED)
            .set_column_compression(ColumnPath::from(time), Compression::UNCOMPRESSED);
    }
    for unique in [event::AUDIT_ID, event::EVENT_HASH, alert::ALERT_ID] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(unique), false);
    }
    // An alert's evidence: audit IDs, unique, in a list (`evidence.list.item`).
    let evidence = ColumnPath::new(vec![alert::EVIDENCE.into(), "list".into(), "item".into()]);
    builder = builder
        .set_column_dictionary_enabled(evidence.clone(), false)
        .set_column_statistics_enabled(evidence, EnabledStatistics::None);
    for body in [
        event::REQUEST_OBJECT,
        event::RESPONSE_OBJECT,
        event::ANNOTATIONS,
        event::USER_EXTRA,
    ] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(body), false)
            .set_column_statistics_enabled(ColumnPath::from(body), EnabledStatistics::None);
    }
    for compressible in [
        event::REQUEST_OBJECT,
        event::RESPONSE_OBJECT,
        event::ANNOTATIONS,
        event::USER_EXTRA,
        event::AUDIT_ID,
        event::REQUEST_URI,
        event::NAME,
        event::RESPONSE_MESSAGE,
        alert::MESSAGE,
    ] {
        builder = builder.set_column_compression(ColumnPath::from(compressible), zstd);
    }
    for unprunable in [
        event::AUDIT_ID,
        event::REQUEST_URI,
        event::USER_UID,
        event::USER_AGENT,
        event::NAME,
        event::RESPONSE_MESSAGE,
        event::DECISION_REASON,
        event::SOURCE_IP,
        alert::ALERT_ID,
        alert::MESSAGE,
    ] {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(unprunable), EnabledStatistics::None);
    }
    builder
        .set_column_statistics_enabled(ColumnPath::from(event::EVENT_HASH), EnabledStatistics::None)
        .set_column_compression(
            ColumnPath::from(event::EVENT_HASH),
            Compression::UNCOMPRESSED,
        )
        .build()
}

/// `base` for a file whose first rows came in `part`: a string column dictionary-encoded by default
/// whose values there are mostly distinct (more than half of them) is written plain and zstd
/// compressed in this file instead. Such a column (a user UID, an access-key or token ID that
/// an authenticator makes per request, pod names) overflows its dictionary page early on: the
/// dictionary was hashing wasted, and its pages were LZ4, which barely shortens random text.
/// The same column keeps its dictionary in files where it repeats (a UID per user). The columns
/// queries read as dictionaries ([`FEW_VALUED_EVENT_COLUMNS`]) always keep it.
pub(crate) fn file_properties(base: &WriterProperties, part: &RecordBatch) -> WriterProperties {
    let sample = part.slice(0, part.num_rows().min(SAMPLE_ROWS));
    let mut builder = None;
    for (field, values) in sample.schema().fields().iter().zip(sample.columns()) {
        let name = field.name().as_str();
        let path = ColumnPath::from(name);
        if field.data_type() != &DataType::Utf8
            || FEW_VALUED_EVENT_COLUMNS.contains(&name)
            || !base.dictionary_enabled(&path)
        {
            continue;
        }
        let strings = values.as_string::<i32>();
        let present = strings.len() - strings.null_count();
        if present < SAMPLE_MIN_VALUES {
            continue;
        }
        let distinct: HashSet<&str> = strings.iter().flatten().collect();
        if distinct.len() * 2 > present {
            let b = builder.unwrap_or_else(|| base.clone().into_builder());
            builder = Some(
                b.set_column_dictionary_enabled(path.clone(), false)
                    .set_column_compression(path, zstd()),
            );
        }
    }
    builder.map_or_else(|| base.clone(), |b| b.build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::events;

    /// `events` with `user_uid` replaced.
    fn with_uids(uid: impl Fn(usize) -> String) -> RecordBatch {
        let batch = events("e", 1000, "2025-11-03T10:00:00Z");
        let index = batch.schema().index_of(event::USER_UID).expect("user_uid");
        let mut columns = batch.columns().to_vec();
        columns[index] = std::sync::Arc::new(arrow::array::StringArray::from_iter_values(
            (0..batch.num_rows()).map(uid),
        ));
        RecordBatch::try_new(batch.schema(), columns).expect("same schema")
    }

    #[test]
    fn a_column_of_distinct_values_is_written_plain_and_zstd_in_that_file_only() {
        let base = writer_properties();
        let uid = ColumnPath::from(event::USER_UID);
        let name = ColumnPath::from(event::AUDIT_ID);
        let verb = ColumnPath::from(event::VERB);
        assert!(base.dictionary_enabled(&uid));

        let unique = file_properties(&base, &with_uids(|i| format!("uid-{i:08}")));
        assert!(!unique.dictionary_enabled(&uid));
        assert_eq!(unique.compression(&uid), zstd());
        // Already plain by default; the few-valued columns keep their dictionaries.
        assert!(!unique.dictionary_enabled(&name));
        assert!(unique.dictionary_enabled(&verb));

        let repeated = file_properties(&base, &with_uids(|i| format!("uid-{}", i % 60)));
        assert!(repeated.dictionary_enabled(&uid));
        assert_eq!(repeated.compression(&uid), base.compression(&uid));

        // Too few rows to tell: the defaults.
        let few = file_properties(&base, &with_uids(|i| format!("uid-{i}")).slice(0, 10));
        assert!(few.dictionary_enabled(&uid));
    }
}
