//! [`Instance`]: which server wrote a lake file. Several servers (say, Kafka consumers of one
//! group) may share one data directory: each names its files after itself, keeps its own
//! write-ahead log, and compacts, expires and cleans up only its own files, while every query
//! reads all of them.
//!
//! A file is `part-{instance}-{uuid}.{schema tag}.parquet`; the unnamed instance (a lone server,
//! `replay`, `backtest --store`) writes `part-{uuid}.{schema tag}.parquet` (files written before
//! schema tags have none; see [`crate::lake::schema_tag`]). A named instance's log is
//! `wal-{instance}/`, the unnamed one's `wal/`; each log directory holds a `LOCK` that a second process of the same
//! instance cannot take.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::wal::WAL_DIR;

/// The lock file in an instance's log directory.
const LOCK_FILE: &str = "LOCK";

/// A writer of the lake; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Instance(Option<String>);

impl Instance {
    /// The unnamed instance.
    pub fn unnamed() -> Self {
        Self(None)
    }

    /// A named instance: 1 to 64 letters, digits, `-` or `_`.
    pub fn named(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !valid {
            return Err(Error::InvalidInstance {
                name: name.to_string(),
            });
        }
        Ok(Self(Some(name.to_string())))
    }

    /// The name, `None` for the unnamed instance.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// A new, unique file stem of this instance for a file of the schema `schema_tag` names
    /// (`part-...`, without extension).
    pub fn new_file_stem(&self, schema_tag: &str) -> String {
        let id = uuid::Uuid::new_v4().simple();
        match &self.0 {
            Some(name) => format!("part-{name}-{id}.{schema_tag}"),
            None => format!("part-{id}.{schema_tag}"),
        }
    }

    /// Whether this instance wrote the file `name` (any extension: `.parquet`, `.parquet.tmp`,
    /// a compaction intent). Files whose name says no instance belong to the unnamed one.
    pub fn owns(&self, file_name: &str) -> bool {
        let Some(rest) = file_name.strip_prefix("part-") else {
            return self.0.is_none();
        };
        let stem = rest.split('.').next().unwrap_or(rest);
        let owner = match stem.rsplit_once('-') {
            Some((owner, id)) if is_file_id(id) => Some(owner),
            _ => None,
        };
        owner == self.0.as_deref()
    }

    /// Whether this instance wrote the file at `path`.
    pub fn owns_path(&self, path: &Path) -> bool {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| self.owns(n))
    }

    /// This instance's write-ahead log directory under `data_dir`.
    pub fn wal_dir(&self, data_dir: &Path) -> PathBuf {
        match &self.0 {
            Some(name) => data_dir.join(format!("{WAL_DIR}-{name}")),
            None => data_dir.join(WAL_DIR),
        }
    }

    /// Takes this instance's lock in `data_dir` (creating its log directory), held while the
    /// returned file is open; fails at once if another process holds it.
    pub fn lock(&self, data_dir: &Path) -> Result<File> {
        let dir = self.wal_dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let path = dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                dir: dir.display().to_string(),
                instance: self.0.clone().unwrap_or_default(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path)(e)),
        }
    }
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("(unnamed)"))
    }
}

/// A file id: a simple (hyphenless) UUID.
fn is_file_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_instance_owns_only_the_files_it_names() {
        let a = Instance::named("consumer-a").expect("name");
        let b = Instance::named("b").expect("name");
        let unnamed = Instance::unnamed();
        let of_a = format!("{}.parquet", a.new_file_stem("s1"));
        let of_b = format!("{}.parquet.tmp", b.new_file_stem("s1"));
        let lone = format!("{}.compacting", unnamed.new_file_stem("s1"));
        assert!(a.owns(&of_a) && !b.owns(&of_a) && !unnamed.owns(&of_a));
        assert!(b.owns(&of_b) && !a.owns(&of_b) && !unnamed.owns(&of_b));
        assert!(unnamed.owns(&lone) && !a.owns(&lone));
        // Names no instance scheme made belong to the unnamed instance.
        assert!(unnamed.owns("part-merged.parquet") && !a.owns("part-merged.parquet"));
        // `consumer` is not `consumer-a`.
        let prefix = Instance::named("consumer").expect("name");
        assert!(!prefix.owns(&of_a));
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a/b", "a.b", "x y", &"n".repeat(65)] {
            assert!(Instance::named(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_process_per_instance_and_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Instance::named("a").expect("name");
        let held = a.lock(dir.path()).expect("first");
        let again = a.lock(dir.path());
        assert!(matches!(again, Err(Error::Locked { .. })), "{again:?}");
        Instance::named("b")
            .expect("name")
            .lock(dir.path())
            .expect("another instance");
        drop(held);
        a.lock(dir.path()).expect("released");
    }
}
