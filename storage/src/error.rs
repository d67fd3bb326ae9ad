//! Errors of storage.

use std::path::PathBuf;

/// What failed storing events or reading them back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory of the lake could not be read or written.
    #[error("{path}")]
    Io {
        /// Which path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A Parquet file of the lake could not be written or read back.
    #[error("parquet file {path}")]
    Parquet {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: parquet::errors::ParquetError,
    },
    /// An Arrow operation on a batch failed (a batch of the wrong shape).
    #[error("batch")]
    Arrow {
        /// Why.
        source: arrow::error::ArrowError,
    },
    /// An instance name that cannot name files.
    #[error("instance name {name:?} must be 1 to 64 letters, digits, `-` or `_`")]
    InvalidInstance {
        /// The name given.
        name: String,
    },
    /// The lake's location could not be understood or reached.
    #[error("lake location {location}: {message}")]
    Location {
        /// The location given.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// A table's transaction log could not be read or written.
    #[error("delta table {table}")]
    Delta {
        /// The table's URL.
        table: String,
        /// Why.
        source: Box<deltalake_core::DeltaTableError>,
    },
    /// A table's log holds something this version cannot use.
    #[error("delta table {table}: {message}")]
    Table {
        /// The table's URL.
        table: String,
        /// What.
        message: String,
    },
    /// Another writer's commit removed a file this commit removes too (two compactions or
    /// expiries of the same files); this one was abandoned.
    #[error("delta table {table}: a concurrent commit conflicts: {message}")]
    Conflict {
        /// The table's URL.
        table: String,
        /// The conflict.
        message: String,
    },
    /// A table written by a version before the lake's tables were Delta tables.
    #[error(
        "{dir} holds Parquet files but no Delta log: a lake of an earlier version; convert it with `auditlake lake convert` (try --dry-run first)"
    )]
    Unconverted {
        /// The table's directory.
        dir: String,
    },
    /// An object store request failed.
    #[error("object store {path}")]
    Store {
        /// The object's path.
        path: String,
        /// Why.
        source: object_store::Error,
    },
    /// Another process runs as the same instance on this data directory.
    #[error(
        "another auditlake process holds {dir} (instance {instance:?}); give each server sharing a data directory its own --instance-id"
    )]
    Locked {
        /// The locked log directory.
        dir: String,
        /// The instance.
        instance: String,
    },
}

impl Error {
    /// Wraps an I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Wraps a Parquet error on `path`.
    pub fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let path = path.into();
        move |source| Error::Parquet { path, source }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(source: arrow::error::ArrowError) -> Self {
        Error::Arrow { source }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `e` and the errors under it, as one line: `path: No space left on device (os error 28)`.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
