//! Errors of the sources.

use std::path::PathBuf;

/// What stopped a source from reading on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading failed part-way (a truncated gzip stream, a vanished file).
    #[error("line {line}: read failed, input truncated or corrupt")]
    Read {
        /// The line being read when it failed.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
    /// The sink refused a batch; nothing after it was stored.
    #[error("storing events failed")]
    Sink {
        /// The sink's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
