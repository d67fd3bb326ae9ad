//! Errors of the engine.

use std::path::PathBuf;

/// What failed storing or querying events.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An Arrow operation on a batch failed (a batch of the wrong shape).
    #[error("batch")]
    Arrow {
        /// Why.
        source: arrow::error::ArrowError,
    },
    /// The SQL was refused or failed; DataFusion's message says why.
    #[error("{source}")]
    Query {
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// The rules failed on a batch.
    #[error("rules")]
    Rules {
        /// Why.
        source: auditlake_rules::Error,
    },
    /// The service cannot take the batch now (shutting down, or a write failed).
    #[error("{reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The lake, its log or its files failed.
    #[error(transparent)]
    Storage(#[from] auditlake_storage::Error),
    /// A caller's request the engine refuses (a triage note too long).
    #[error("{reason}")]
    Invalid {
        /// Why.
        reason: String,
    },
    /// The query ran longer than its time limit.
    #[error("query exceeded its time limit of {seconds} s")]
    Timeout {
        /// The limit.
        seconds: u64,
    },
}

impl Error {
    /// An I/O error on `path` (a file of the data directory), as storage reports it.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let wrap = auditlake_storage::Error::io(path);
        move |source| Error::Storage(wrap(source))
    }

    /// A Parquet error on `path`, as storage reports it.
    pub(crate) fn parquet(
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Error {
        let wrap = auditlake_storage::Error::parquet(path);
        move |source| Error::Storage(wrap(source))
    }

    /// Whether the caller's SQL is at fault (bad syntax, unknown column, a refused statement) rather
    /// than the engine.
    pub fn is_user_error(&self) -> bool {
        use datafusion::error::DataFusionError as D;
        match self {
            Error::Query { source } => matches!(
                source.find_root(),
                D::SQL(..)
                    | D::Plan(..)
                    | D::SchemaError(..)
                    | D::NotImplemented(..)
                    | D::ResourcesExhausted(..)
            ),
            Error::Timeout { .. } | Error::Invalid { .. } => true,
            _ => false,
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(source: arrow::error::ArrowError) -> Self {
        Error::Arrow { source }
    }
}

impl From<datafusion::error::DataFusionError> for Error {
    fn from(source: datafusion::error::DataFusionError) -> Self {
        Error::Query { source }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
