//! [`Lake`]: where the lake's tables are — a local directory (the default, inside the data
//! directory) or a prefix of an object store (`s3://bucket/prefix`, `gs://...`, `az://...`).
//!
//! Object stores take their credentials and settings the ordinary way, from the environment:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, an instance
//! profile or a web identity token when no key is given, and `AWS_ENDPOINT_URL` with
//! `AWS_ALLOW_HTTP` for an S3-compatible store on premises; `GOOGLE_*` and `AZURE_*` likewise.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{Error, Result};

/// Where the lake's tables are.
#[derive(Clone)]
pub enum Lake {
    /// A local directory; its tables are `DIR/events`, `DIR/alerts`.
    Local(PathBuf),
    /// A prefix of an object store; its tables are `URL/events`, `URL/alerts`.
    Remote {
        /// `s3://bucket/prefix/`, always ending with `/`.
        url: Url,
        /// The store, rooted at the bucket.
        store: Arc<dyn ObjectStore>,
    },
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Lake {
    /// The lake in a local directory.
    pub fn local(dir: &Path) -> Self {
        Lake::Local(dir.to_path_buf())
    }

    /// The lake `spec` names: `s3://`, `s3a://`, `gs://`, `az://`, `abfs://`, `abfss://` or
    /// `file://` URLs, or else a local path.
    pub fn parse(spec: &str) -> Result<Self> {
        let invalid = |message: String| Error::Location {
            location: spec.to_string(),
            message,
        };
        let Some((scheme, _)) = spec.split_once("://") else {
            return Ok(Lake::Local(PathBuf::from(spec)));
        };
        let mut url = Url::parse(spec).map_err(|e| invalid(e.to_string()))?;
        if scheme == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| invalid("not a local path".into()))?;
            return Ok(Lake::Local(path));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            "gs" => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            "az" | "abfs" | "abfss" | "azure" => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| invalid(e.to_string()))?,
            ),
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}; use a path, s3://, gs:// or az://"
                )));
            }
        };
        Ok(Lake::Remote { url, store })
    }

    /// The local directory of a local lake.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Lake::Local(dir) => Some(dir),
            Lake::Remote { .. } => None,
        }
    }

    /// The object store of a remote lake, rooted at its bucket.
    pub fn store(&self) -> Option<Arc<dyn ObjectStore>> {
        match self {
            Lake::Local(_) => None,
            Lake::Remote { store, .. } => Some(Arc::clone(store)),
        }
    }

    /// The URL of the table `name`, ending with `/`.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        let url = match self {
            Lake::Local(dir) => {
                let dir = std::path::absolute(dir.join(name)).map_err(Error::io(dir))?;
                // delta-rs decodes a table's URL twice, so `%41` in a directory name would
                // open `A` instead.
                if dir.to_string_lossy().contains('%') {
                    return Err(Error::Location {
                        location: dir.display().to_string(),
                        message: "a `%` in the lake's path is not supported; choose a directory without one".into(),
                    });
                }
                Url::from_directory_path(&dir).map_err(|()| Error::Location {
                    location: dir.display().to_string(),
                    message: "not an absolute path".into(),
                })?
            }
            Lake::Remote { url, .. } => {
                url.join(&format!("{name}/")).map_err(|e| Error::Location {
                    location: url.to_string(),
                    message: e.to_string(),
                })?
            }
        };
        Ok(url)
    }

    /// The object store path of `relative` (a data file's path in its table) in table `name`
    /// of a remote lake: the URL's path without its leading `/`, then the table and the file.
    pub fn object_path(&self, name: &str, relative: &str) -> object_store::path::Path {
        match self {
            Lake::Local(dir) => object_store::path::Path::from_iter(
                dir.join(name)
                    .join(relative)
                    .iter()
                    .filter_map(|c| c.to_str())
                    .filter(|c| *c != "/"),
            ),
            Lake::Remote { url, .. } => {
                let prefix = url.path().trim_matches('/');
                let joined = if prefix.is_empty() {
                    format!("{name}/{relative}")
                } else {
                    format!("{prefix}/{name}/{relative}")
                };
                object_store::path::Path::from(joined)
            }
        }
    }

    /// How the lake is named in messages: its directory or URL.
    pub fn describe(&self) -> String {
        match self {
            Lake::Local(dir) => dir.display().to_string(),
            Lake::Remote { url, .. } => url.to_string(),
        }
    }
}

/// A data file opened for reading: a local file, or an object fetched whole.
pub enum FileData {
    /// A file of a local lake.
    Local(std::fs::File),
    /// An object of a remote lake, fetched.
    Fetched(bytes::Bytes),
}

impl parquet::file::reader::Length for FileData {
    fn len(&self) -> u64 {
        match self {
            FileData::Local(f) => f.len(),
            FileData::Fetched(b) => b.len() as u64,
        }
    }
}

impl parquet::file::reader::ChunkReader for FileData {
    type T = Box<dyn std::io::Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(match self {
            FileData::Local(f) => Box::new(f.get_read(start)?),
            FileData::Fetched(b) => Box::new(b.get_read(start)?),
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        match self {
            FileData::Local(f) => f.get_bytes(start, length),
            FileData::Fetched(b) => b.get_bytes(start, length),
        }
    }
}

impl Lake {
    /// Opens the data file `relative` of table `name` for reading.
    pub fn read_file(&self, name: &str, relative: &str) -> Result<FileData> {
        match self {
            Lake::Local(dir) => {
                let path = dir.join(name).join(relative);
                std::fs::File::open(&path)
                    .map(FileData::Local)
                    .map_err(Error::io(&path))
            }
            Lake::Remote { store, .. } => {
                let path = self.object_path(name, relative);
                let store = Arc::clone(store);
                let fetched = crate::delta::block_on({
                    let path = path.clone();
                    async move { store.get(&path).await?.bytes().await }
                });
                fetched
                    .map(FileData::Fetched)
                    .map_err(|source| Error::Store {
                        path: path.to_string(),
                        source,
                    })
            }
        }
    }

    /// Puts the finished local file `local` in the lake as `relative` of table `name`: a rename
    /// into place on a local lake, an upload (multipart when large) on a remote one, after which
    /// `local` is deleted. The file is not part of the table until a commit adds it.
    pub fn publish_file(&self, local: &Path, name: &str, relative: &str) -> Result<()> {
        match self {
            Lake::Local(dir) => {
                let path = dir.join(name).join(relative);
                std::fs::rename(local, &path).map_err(Error::io(&path))?;
                crate::durable::sync_dir(&path);
                Ok(())
            }
            Lake::Remote { store, .. } => {
                let path = self.object_path(name, relative);
                let store = Arc::clone(store);
                let source = local.to_path_buf();
                let uploaded = crate::delta::block_on({
                    let path = path.clone();
                    async move { upload(store, &source, path).await }
                });
                uploaded.map_err(|e| match e {
                    Upload::Io(source) => Error::Io {
                        path: local.to_path_buf(),
                        source,
                    },
                    Upload::Store(source) => Error::Store {
                        path: path.to_string(),
                        source,
                    },
                })?;
                std::fs::remove_file(local).map_err(Error::io(local))
            }
        }
    }

    /// The paths (relative to the table) of every Parquet file in the partitions of table `name`,
    /// whether or not a commit refers to it.
    pub fn list_data_files(&self, name: &str) -> Result<Vec<String>> {
        match self {
            Lake::Local(dir) => {
                let table = dir.join(name);
                let files = crate::partition::files_under(&table).map_err(Error::io(&table))?;
                Ok(files
                    .iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                    .filter_map(|p| p.strip_prefix(&table).ok()?.to_str().map(String::from))
                    .collect())
            }
            Lake::Remote { store, .. } => {
                use futures::TryStreamExt;
                let prefix = self.object_path(name, "");
                let store = Arc::clone(store);
                let listed = crate::delta::block_on({
                    let prefix = prefix.clone();
                    async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await }
                })
                .map_err(|source| Error::Store {
                    path: prefix.to_string(),
                    source,
                })?;
                Ok(listed
                    .into_iter()
                    .filter_map(|o| {
                        let relative = o.location.prefix_match(&prefix)?;
                        let relative: Vec<String> =
                            relative.map(|p| p.as_ref().to_string()).collect();
                        let joined = relative.join("/");
                        (joined.ends_with(".parquet") && joined.starts_with("date="))
                            .then_some(joined)
                    })
                    .collect())
            }
        }
    }

    /// Deletes the data file `relative` of table `name` (one no commit refers to); a file
    /// already gone is fine.
    pub fn delete_file(&self, name: &str, relative: &str) -> Result<()> {
        match self {
            Lake::Local(dir) => {
                let path = dir.join(name).join(relative);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path)(e)),
                    _ => Ok(()),
                }
            }
            Lake::Remote { store, .. } => {
                let path = self.object_path(name, relative);
                let store = Arc::clone(store);
                let deleted = crate::delta::block_on({
                    let path = path.clone();
                    async move { store.delete(&path).await }
                });
                match deleted {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(source) => Err(Error::Store {
                        path: path.to_string(),
                        source,
                    }),
                }
            }
        }
    }
}

enum Upload {
    Io(std::io::Error),
    Store(object_store::Error),
}

/// Copies `source` to `path`: one request when it is small, parts of 10 MiB (several at once)
/// otherwise.
async fn upload(
    store: Arc<dyn ObjectStore>,
    source: &Path,
    path: object_store::path::Path,
) -> std::result::Result<(), Upload> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut file = tokio::fs::File::open(source).await.map_err(Upload::Io)?;
    let mut writer = object_store::buffered::BufWriter::new(store, path);
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer).await.map_err(Upload::Io)?;
        if n == 0 {
            break;
        }
        if let Err(e) = writer.write_all(&buffer[..n]).await {
            let _ = writer.abort().await;
            return Err(Upload::Io(e));
        }
    }
    writer
        .shutdown()
        .await
        .map_err(|e| match e.downcast::<object_store::Error>() {
            Ok(e) => Upload::Store(e),
            Err(e) => Upload::Io(e),
        })
}
