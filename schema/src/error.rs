//! Why one document could not become `events` rows.

/// What went wrong decoding one input document (a line, an `EventList` item, a wrapper record).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not valid UTF-8; JSON must be.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence within the document.
        offset: usize,
    },
    /// The text is not JSON (or is truncated JSON).
    #[error("not JSON: {source}")]
    NotJson {
        /// The parser's own account, with line and column.
        source: serde_json::Error,
    },
    /// Valid JSON whose shape is not an audit event or a known wrapper of one.
    #[error("not an audit event: {reason}")]
    NotAnEvent {
        /// What is missing or of the wrong type.
        reason: String,
    },
    /// An audit event whose timestamps cannot be read, so it cannot be placed in time.
    #[error("bad timestamp {value:?} in {field}")]
    BadTimestamp {
        /// Which field held it.
        field: &'static str,
        /// The text that failed to parse.
        value: String,
    },
    /// An event whose time is outside the window a live source accepts ([`crate::TimeWindow`]).
    #[error(
        "event time {} is outside the accepted window {} to {} (--max-event-age, --max-event-ahead)",
        crate::time::format_micros(*event_time),
        crate::time::format_micros(*earliest),
        crate::time::format_micros(*latest)
    )]
    OutsideTimeWindow {
        /// The event's time, µs since the epoch.
        event_time: i64,
        /// The earliest time accepted when it arrived.
        earliest: i64,
        /// The latest time accepted when it arrived.
        latest: i64,
    },
}

impl Error {
    /// Maps a serde_json failure onto "not JSON" (syntax, truncation) or "not an audit event" (wrong
    /// types or missing fields in otherwise valid JSON).
    pub(crate) fn from_json(source: serde_json::Error) -> Self {
        match source.classify() {
            serde_json::error::Category::Data => Error::NotAnEvent {
                reason: source.to_string(),
            },
            _ => Error::NotJson { source },
        }
    }

    pub(crate) fn not_an_event(reason: impl Into<String>) -> Self {
        Error::NotAnEvent {
            reason: reason.into(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
