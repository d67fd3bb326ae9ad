//! Errors of loading, compiling and running rules.

use std::path::PathBuf;

/// What is wrong with a rule set, or what failed evaluating it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rules file could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A rules file is not valid YAML of the rule format.
    #[error("{file}: {source}")]
    Yaml {
        /// The file (`builtin/NAME.yaml` for the built-in pack).
        file: String,
        /// The parser's account, with line and column.
        source: serde_norway::Error,
    },
    /// A rule, macro, list or override is invalid.
    #[error("{file}: rule {rule}: {reason}")]
    Invalid {
        /// The file that defines (or overrides) it.
        file: String,
        /// The rule id (or `macro NAME`, `list NAME`).
        rule: String,
        /// What is wrong.
        reason: String,
    },
    /// A list file (IPs and CIDR blocks) is missing or has a bad line.
    #[error("{reason}")]
    ListFile {
        /// `FILE:LINE: what is wrong`, or `FILE: cannot read: why`.
        reason: String,
    },
    /// Evaluating a compiled rule failed on a batch.
    #[error("rule {rule}: evaluation failed")]
    Eval {
        /// The rule id.
        rule: String,
        /// DataFusion's error.
        source: datafusion::error::DataFusionError,
    },
    /// Building the alerts batch failed.
    #[error("building alerts")]
    Arrow {
        /// Why.
        source: arrow::error::ArrowError,
    },
}

impl Error {
    pub(crate) fn invalid(file: &str, rule: &str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            file: file.to_string(),
            rule: rule.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(source: arrow::error::ArrowError) -> Self {
        Error::Arrow { source }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
