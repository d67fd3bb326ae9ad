//! [`LocalReads`]: the lake's files read on the thread that asks for them.

use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::object_store::local::LocalFileSystem;
use datafusion::object_store::path::Path;
use datafusion::object_store::{
    CopyOptions, Error, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use futures::stream::{self, BoxStream, StreamExt};

const STORE: &str = "LocalReads";

/// The local filesystem as queries read it: range reads and `head`s are plain `pread`s and
/// `stat`s on the calling thread; everything else is `object_store`'s [`LocalFileSystem`].
///
/// `LocalFileSystem` hands every read to tokio's blocking pool and waits for a thread to pick it
/// up. A query over 240 hour files made about a thousand such handoffs (a `head`, a footer read
/// and column reads per file), and the thread wakeups they cost were a tenth of its CPU. The
/// lake's files are local and mostly in the page cache, where a read returns in microseconds.
#[derive(Debug, Default)]
pub(crate) struct LocalReads {
    inner: LocalFileSystem,
}

impl fmt::Display for LocalReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(STORE)
    }
}

impl LocalReads {
    fn open(&self, location: &Path) -> Result<File> {
        let path = self.inner.path_to_filesystem(location)?;
        match File::open(&path) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
                path: path.display().to_string(),
                source: Box::new(e),
            }),
            Err(e) => Err(generic(e)),
        }
    }
}

fn generic(e: std::io::Error) -> Error {
    Error::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

/// The bytes of `file` in `range`; a file shorter than that is an error, not a short read.
pub(crate) fn pread(file: &File, range: &Range<u64>) -> std::io::Result<Bytes> {
    let mut buf = vec![0; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)?;
    Ok(buf.into())
}

fn read_at(file: &File, range: &Range<u64>) -> Result<Bytes> {
    pread(file, range).map_err(generic)
}

/// The object metadata `LocalFileSystem` gives the same file, so both agree on its identity.
fn meta_of(location: &Path, file: &File) -> Result<ObjectMeta> {
    object_meta(location, &file.metadata().map_err(generic)?)
}

/// The object metadata of the file at `location` whose filesystem metadata is `m`, as
/// `LocalFileSystem` gives it (e-tag included).
pub(crate) fn object_meta(location: &Path, m: &std::fs::Metadata) -> Result<ObjectMeta> {
    let modified = m.modified().map_err(generic)?;
    let micros = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default();
    Ok(ObjectMeta {
        location: location.clone(),
        last_modified: modified.into(),
        size: m.len(),
        e_tag: Some(format!("{:x}-{:x}-{:x}", m.ino(), micros, m.len())),
        version: None,
    })
}

#[async_trait]
impl ObjectStore for LocalReads {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let conditional = options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some();
        if conditional {
            return self.inner.get_opts(location, options).await;
        }
        let file = self.open(location)?;
        let meta = meta_of(location, &file)?;
        let range = match &options.range {
            Some(r) => r.as_range(meta.size).map_err(|e| Error::Generic {
                store: STORE,
                source: Box::new(e),
            })?,
            None => 0..meta.size,
        };
        let payload = if options.head {
            stream::empty().boxed()
        } else {
            let bytes = read_at(&file, &range)?;
            stream::once(async move { Ok(bytes) }).boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let file = self.open(location)?;
        ranges.iter().map(|r| read_at(&file, r)).collect()
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::object_store::{GetRange, ObjectStoreExt};

    #[test]
    fn reads_and_heads_match_the_local_filesystem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("part.parquet");
        let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &content).expect("write");
        let location = Path::from_filesystem_path(&file).expect("path");
        let ours = LocalReads::default();
        let theirs = LocalFileSystem::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            assert_eq!(
                ours.head(&location).await.expect("head"),
                theirs.head(&location).await.expect("head"),
            );
            let ranges = [0..10, 4000..4096, 9990..10_000];
            assert_eq!(
                ours.get_ranges(&location, &ranges).await.expect("ranges"),
                theirs.get_ranges(&location, &ranges).await.expect("ranges"),
            );
            for range in [
                GetRange::Bounded(17..1017),
                GetRange::Suffix(8),
                GetRange::Offset(9000),
            ] {
                let options = GetOptions {
                    range: Some(range.clone()),
                    ..Default::default()
                };
                let a = ours
                    .get_opts(&location, options.clone())
                    .await
                    .expect("get");
                let b = theirs.get_opts(&location, options).await.expect("get");
                assert_eq!((&a.range, &a.meta), (&b.range, &b.meta), "{range:?}");
                assert_eq!(
                    a.bytes().await.expect("bytes"),
                    b.bytes().await.expect("bytes")
                );
            }
            let whole = ours.get(&location).await.expect("get");
            assert_eq!(whole.bytes().await.expect("bytes"), content);
            // Past the end, and a file that is not there, are errors like theirs.
            let past_the_end = [0..10, 9990..10_010];
            assert!(ours.get_ranges(&location, &past_the_end).await.is_err());
            let missing = Path::from_filesystem_path(dir.path())
                .expect("dir")
                .join("gone");
            assert!(matches!(
                ours.get_range(&missing, 0..1).await,
                Err(Error::NotFound { .. })
            ));
        });
    }
}
