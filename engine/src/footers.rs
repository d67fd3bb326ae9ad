//! [`ScanReaders`]: how a lake scan of a session that keeps no footers reads its files.
//!
//! DataFusion's own reader fetches every file's footer through the object store and decodes all
//! of it, to keep in its footer cache for later queries. A one-off query (the CLI's) has no later
//! queries, and over 240 hour files the footers were a third of a light query's time. So its
//! scans decode only what they use:
//! - the statistics of the columns their filters can prune row groups with, no other column's;
//! - no schema: files named with the same schema tag share the first one's decoded schema.
//!
//! A file is opened once, by its own path (not its object store URL, parsed back per read), and
//! read with `pread`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricCategory, MetricType,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, MetadataFetch};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    PageIndexPolicy, ParquetMetaData, ParquetMetaDataOptions, ParquetMetaDataReader,
    ParquetStatisticsPolicy,
};

use crate::lake::file_schema_tag;
use crate::local_reads::pread;

/// The path a [`PartitionedFile`] of a lake scan is read from, carried in its extensions.
#[derive(Debug)]
pub(crate) struct LocalPath(pub(crate) PathBuf);

/// Reads the files of one lake scan; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct ScanReaders {
    footers: Arc<FooterDecoding>,
}

/// How the footers of one scan are decoded.
#[derive(Debug)]
struct FooterDecoding {
    /// Columns (top-level names) whose statistics the scan's filters can prune with.
    pruned_on: HashSet<String>,
    /// Per schema tag, the decoding options learnt from the first footer of that tag.
    learnt: Mutex<HashMap<String, ParquetMetaDataOptions>>,
}

impl ScanReaders {
    /// Readers for a scan filtered on `columns`.
    pub(crate) fn new<'a>(columns: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            footers: Arc::new(FooterDecoding {
                pruned_on: columns.into_iter().map(str::to_owned).collect(),
                learnt: Mutex::default(),
            }),
        }
    }
}

impl FooterDecoding {
    /// How to decode a footer of a file tagged `tag`, if one of that tag was decoded before.
    fn options_for(&self, tag: Option<&str>) -> Option<ParquetMetaDataOptions> {
        let learnt = self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        tag.and_then(|t| learnt.get(t).cloned())
    }

    /// Remembers how to decode the footers tagged `tag`, from one decoded whole.
    fn learn(&self, tag: &str, metadata: &ParquetMetaData) {
        let schema = metadata.file_metadata().schema_descr_ptr();
        let keep: Vec<usize> = schema
            .columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.path()
                    .parts()
                    .first()
                    .is_some_and(|p| self.pruned_on.contains(p))
            })
            .map(|(i, _)| i)
            .collect();
        let options = ParquetMetaDataOptions::new()
            .with_schema(schema)
            .with_column_stats_policy(ParquetStatisticsPolicy::skip_except(&keep))
            .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
        let mut learnt = self.learnt.lock().unwrap_or_else(|e| e.into_inner());
        learnt.entry(tag.to_owned()).or_insert(options);
    }
}

impl ParquetFileReaderFactory for ScanReaders {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let path = file
            .extension::<LocalPath>()
            .map(|p| p.0.clone())
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "lake file {} has no local path",
                    file.object_meta.location
                ))
            })?;
        // The one metric DataFusion's reader keeps itself; the scan keeps the others.
        let bytes_scanned = MetricBuilder::new(metrics)
            .with_new_label("filename", file.object_meta.location.to_string())
            .with_type(MetricType::Summary)
            .with_category(MetricCategory::Bytes)
            .counter("bytes_scanned", partition_index);
        Ok(Box::new(ScanReader {
            footers: Arc::clone(&self.footers),
            path,
            size: file.object_meta.size,
            file: None,
            metadata_size_hint,
            bytes_scanned,
        }))
    }
}

/// One file of a scan.
struct ScanReader {
    footers: Arc<FooterDecoding>,
    path: PathBuf,
    size: u64,
    /// Opened at the first read.
    file: Option<File>,
    metadata_size_hint: Option<usize>,
    bytes_scanned: Count,
}

impl ScanReader {
    fn read(&mut self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        let path = &self.path;
        let file = match &mut self.file {
            Some(file) => file,
            none => none.insert(File::open(path).map_err(|e| read_error(path, e))?),
        };
        pread(file, &range).map_err(|e| read_error(path, e))
    }

    /// Reads of the file's data, counted as scanned; footer reads are not, as in DataFusion's.
    fn read_scanned(&mut self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        let bytes = self.read(range)?;
        self.bytes_scanned.add(bytes.len());
        Ok(bytes)
    }
}

fn read_error(path: &std::path::Path, e: std::io::Error) -> ParquetError {
    ParquetError::General(format!("reading {}: {e}", path.display()))
}

/// The reads of a file's footer.
struct Footer<'a>(&'a mut ScanReader);

impl MetadataFetch for Footer<'_> {
    fn fetch(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        std::future::ready(self.0.read(range)).boxed()
    }
}

impl AsyncFileReader for ScanReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        std::future::ready(self.read_scanned(range)).boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let read = ranges.into_iter().map(|r| self.read_scanned(r)).collect();
        std::future::ready(read).boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let tag = file_schema_tag(&self.path).map(str::to_owned);
            let decoding = self.footers.options_for(tag.as_deref());
            let learning = decoding.is_none();
            let reader = ParquetMetaDataReader::new()
                .with_prefetch_hint(self.metadata_size_hint)
                .with_column_index_policy(
                    options.map_or(PageIndexPolicy::Skip, |o| o.column_index_policy()),
                )
                .with_offset_index_policy(
                    options.map_or(PageIndexPolicy::Skip, |o| o.offset_index_policy()),
                )
                .with_metadata_options(decoding);
            let size = self.size;
            let metadata = reader.load_and_finish(Footer(self), size).await?;
            if learning && let Some(tag) = &tag {
                self.footers.learn(tag, &metadata);
            }
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditlake_storage::test_support::{lake_of, older_events_file};
    use datafusion::datasource::listing::PartitionedFile;
    use datafusion::object_store::ObjectMeta;

    fn file_of(path: &std::path::Path) -> PartitionedFile {
        let location =
            datafusion::object_store::path::Path::from_filesystem_path(path).expect("location");
        let meta = ObjectMeta {
            location,
            last_modified: Default::default(),
            size: std::fs::metadata(path).expect("stat").len(),
            e_tag: None,
            version: None,
        };
        PartitionedFile::new_from_meta(meta).with_extension(LocalPath(path.to_path_buf()))
    }

    /// The Parquet files of a table, in hour order.
    fn parquet_files(table_dir: &std::path::Path) -> Vec<PathBuf> {
        let hours = crate::partition::list(table_dir).expect("hours");
        let mut files = Vec::new();
        for (_, dir) in hours {
            let mut in_hour = crate::partition::parquet_files(&dir).expect("files");
            in_hour.sort();
            files.extend(in_hour);
        }
        files
    }

    /// The first footer of a schema tag is decoded whole; the next ones of that tag with its
    /// schema and the statistics of the filtered columns only. A file with no tag is always
    /// decoded whole, and each answers with its own row count.
    #[test]
    fn footers_after_the_first_of_a_tag_keep_only_the_filtered_columns_statistics() {
        let dir = tempfile::tempdir().expect("tempdir");
        lake_of(dir.path(), "a", 3, "2025-11-03T10:15:00Z");
        lake_of(dir.path(), "b", 5, "2025-11-03T11:15:00Z");
        older_events_file(
            dir.path(),
            "part-untagged.parquet",
            "old",
            2,
            "2025-11-03T12:30:00Z",
        );
        let files = parquet_files(&dir.path().join("events"));
        assert_eq!(files.len(), 3, "{files:?}");
        let readers = ScanReaders::new(["resource", "event_time"]);
        let metrics = ExecutionPlanMetricsSet::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut decoded = Vec::new();
        for path in &files {
            let mut reader = readers
                .create_reader(0, file_of(path), Some(16 << 10), &metrics)
                .expect("reader");
            let metadata = rt.block_on(reader.get_metadata(None)).expect("metadata");
            let schema = metadata.file_metadata().schema_descr();
            let stats = |name: &str| {
                let i = (0..schema.num_columns())
                    .find(|&i| schema.column(i).name() == name)
                    .expect("column");
                metadata.row_group(0).column(i).statistics().is_some()
            };
            decoded.push((
                metadata.file_metadata().num_rows(),
                stats("resource"),
                stats("event_time"),
                stats("verb"),
            ));
        }
        // In hour order: 10 (tagged, the first), 11 (tagged), 12 (untagged).
        assert_eq!(
            decoded,
            [
                (3, true, true, true),
                (5, true, true, false),
                (2, true, true, true)
            ]
        );
        let tags = readers
            .footers
            .learnt
            .lock()
            .expect("lock")
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(
            tags,
            [crate::lake::schema_tag(&auditlake_schema::events_schema())]
        );
    }

    /// A file a scan was not given a local path for is an error, not a read of another file.
    #[test]
    fn files_without_a_local_path_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        lake_of(dir.path(), "a", 1, "2025-11-03T10:15:00Z");
        let path = &parquet_files(&dir.path().join("events"))[0];
        let mut file = file_of(path);
        file.extensions = Default::default();
        let err = ScanReaders::new([])
            .create_reader(0, file, None, &ExecutionPlanMetricsSet::new())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("has no local path"), "{err}");
    }
}
