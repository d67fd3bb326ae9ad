//! Hour partitions of the lake: `TABLE/date=YYYY-MM-DD/hour=HH/`, the hive layout that DataFusion,
//! DuckDB, Spark and Trino all read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use auditlake_schema::time::parse_rfc3339_micros;
use chrono::{DateTime, Datelike, Timelike};

/// Microseconds in an hour.
pub const HOUR_MICROS: i64 = 3_600_000_000;

/// An hour partition: hours since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(pub i64);

impl Hour {
    /// The hour an event time (µs since the epoch, UTC) falls in.
    pub fn of_micros(micros: i64) -> Self {
        Hour(micros.div_euclid(HOUR_MICROS))
    }

    /// First microsecond of the hour.
    pub fn start_micros(self) -> i64 {
        self.0 * HOUR_MICROS
    }

    /// `date=YYYY-MM-DD/hour=HH` under `table_dir`.
    pub fn dir(self, table_dir: &Path) -> PathBuf {
        table_dir.join(self.relative_dir())
    }

    /// `date=YYYY-MM-DD/hour=HH`, the partition's directory in its table.
    pub fn relative_dir(self) -> String {
        let t = DateTime::from_timestamp_micros(self.start_micros()).unwrap_or_default();
        format!(
            "date={:04}-{:02}-{:02}/hour={:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour()
        )
    }

    /// Parses the directory names `date=YYYY-MM-DD` and `hour=HH` back into an hour.
    pub fn parse(date_dir: &str, hour_dir: &str) -> Option<Self> {
        let date = date_dir.strip_prefix("date=")?;
        let hour = hour_dir.strip_prefix("hour=")?;
        if date.len() != 10 || hour.len() != 2 {
            return None;
        }
        let micros = parse_rfc3339_micros(&format!("{date}T{hour}:00:00Z"))?;
        Some(Hour::of_micros(micros))
    }
}

/// Every hour partition under `table_dir` with its directory, in time order. A missing table
/// directory is an empty table.
pub fn list(table_dir: &Path) -> std::io::Result<Vec<(Hour, PathBuf)>> {
    let mut out = Vec::new();
    let dates = match std::fs::read_dir(table_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for date in dates {
        let date = date?;
        let date_name = date.file_name();
        let Some(date_name) = date_name.to_str() else {
            continue;
        };
        if !date_name.starts_with("date=") || !date.file_type()?.is_dir() {
            continue;
        }
        for hour in std::fs::read_dir(date.path())? {
            let hour = hour?;
            let hour_name = hour.file_name();
            if let Some(h) = hour_name.to_str().and_then(|n| Hour::parse(date_name, n)) {
                out.push((h, hour.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Finished Parquet files of one partition directory (in-progress `.tmp` files excluded).
pub fn parquet_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every file in the partition directories under `table_dir` (none if it does not exist).
pub fn files_under(table_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (_, dir) in list(table_dir)? {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// Per-partition state kept only for the most recently used partitions (open files, dedup keys):
/// input is mostly in time order, so a small number bounds memory without thrashing.
pub(crate) struct RecentPartitions<V> {
    entries: HashMap<Hour, (V, u64)>,
    clock: u64,
    capacity: usize,
}

impl<V> RecentPartitions<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            clock: 0,
            capacity: capacity.max(1),
        }
    }

    /// The state of `hour`, made by `make` when absent; if that would exceed the capacity, the
    /// least recently used state is first handed to `evict`.
    pub(crate) fn get_or_insert_with<E>(
        &mut self,
        hour: Hour,
        make: impl FnOnce() -> Result<V, E>,
        evict: impl FnOnce(Hour, V) -> Result<(), E>,
    ) -> Result<&mut V, E> {
        self.clock += 1;
        if !self.entries.contains_key(&hour) {
            if self.entries.len() >= self.capacity
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(h, _)| *h)
                && let Some((value, _)) = self.entries.remove(&oldest)
            {
                evict(oldest, value)?;
            }
            self.entries.insert(hour, (make()?, self.clock));
        }
        let (value, used) = self
            .entries
            .get_mut(&hour)
            .expect("inserted above when missing");
        *used = self.clock;
        Ok(value)
    }

    /// Takes the state of `hour` out.
    pub(crate) fn remove(&mut self, hour: Hour) -> Option<V> {
        self.entries.remove(&hour).map(|(v, _)| v)
    }

    /// Every partition's state.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (Hour, &mut V)> + '_ {
        self.entries.iter_mut().map(|(h, (v, _))| (*h, v))
    }

    /// Whether no partition has state.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes every state out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.entries.drain().map(|(_, (v, _))| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_round_trip() {
        let micros = parse_rfc3339_micros("2018-10-26T13:42:46.764713Z").expect("time");
        let hour = Hour::of_micros(micros);
        let dir = hour.dir(Path::new("events"));
        assert_eq!(dir, Path::new("events/date=2018-10-26/hour=13"));
        assert_eq!(Hour::parse("date=2018-10-26", "hour=13"), Some(hour));
        assert_eq!(Hour::parse("date=2018-10-26", "hour=x"), None);
        assert_eq!(
            Hour::of_micros(-1),
            Hour(-1),
            "before 1970 still sorts in time"
        );
    }
}
