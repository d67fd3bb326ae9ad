//! Setting a damaged file aside (`auditlake lake quarantine FILE`): the file is copied to
//! `DATA_DIR/quarantine/TABLE/...` as evidence, then removed from its table in one commit, so
//! queries and compaction go on with the rest. The original's bytes go with the next vacuum,
//! like any removed file's.

use std::path::{Component, Path, PathBuf};

use auditlake_schema::columns::{alert, event};
use auditlake_schema::{alerts_schema, events_schema};

use crate::delta::{TableLog, block_on};
use crate::error::{Error, Result};
use crate::lake::{ALERTS_DIR, EVENTS_DIR};
use crate::store::Lake;

/// The directory under the data directory that holds quarantined files.
pub const QUARANTINE_DIR: &str = "quarantine";

/// What was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// `events` or `alerts`.
    pub table: &'static str,
    /// Its path in the table.
    pub path: String,
    /// Rows the table's log said it held, when known.
    pub rows: Option<u64>,
    /// Where its copy is.
    pub copy: PathBuf,
}

/// Sets `file` (a Parquet file of a table of the local lake in `data_dir`) aside.
pub fn quarantine(data_dir: &Path, file: &Path) -> Result<Quarantined> {
    let not_ours = |why: &str| Error::Io {
        path: file.to_path_buf(),
        source: std::io::Error::other(why.to_string()),
    };
    let absolute = std::path::absolute(file).map_err(Error::io(file))?;
    let root = std::path::absolute(data_dir).map_err(Error::io(data_dir))?;
    let inside = absolute
        .strip_prefix(&root)
        .map_err(|_| not_ours("not a file of this data directory"))?;
    let mut parts = inside.components();
    let (table, schema, time) = match parts.next() {
        Some(Component::Normal(t)) if t == EVENTS_DIR => {
            (EVENTS_DIR, events_schema(), event::EVENT_TIME)
        }
        Some(Component::Normal(t)) if t == ALERTS_DIR => {
            (ALERTS_DIR, alerts_schema(), alert::EVENT_TIME)
        }
        _ => return Err(not_ours("not a file of the events or alerts table")),
    };
    let relative = parts.as_path().to_string_lossy().to_string();
    let log = TableLog::open_blocking(&Lake::local(data_dir), table, &schema, time)?;
    let files = {
        let log = log.clone();
        block_on(async move { log.files().await })?
    };
    let found = files
        .iter()
        .find(|f| f.path == relative)
        .cloned()
        .ok_or_else(|| not_ours("not in the table (already set aside, or never committed)"))?;
    let copy = data_dir.join(QUARANTINE_DIR).join(table).join(&relative);
    if let Some(dir) = copy.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    }
    std::fs::copy(&absolute, &copy).map_err(Error::io(&copy))?;
    let predicate = format!("quarantined damaged file {relative}");
    let removed = vec![found.clone()];
    block_on(async move { log.remove(&removed, predicate).await })?;
    tracing::warn!(table, file = %relative, copy = %copy.display(), "file quarantined");
    Ok(Quarantined {
        table,
        path: relative,
        rows: found.rows,
        copy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LakeWriter;
    use crate::maintenance::Maintenance;
    use crate::test_support::{committed_files, count_events, events};

    #[test]
    fn a_damaged_file_stops_no_merge_but_its_own_and_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        for flush in 0..9 {
            lake.append(&events(&format!("f{flush}"), 5, "2020-01-01T00:30:00Z"))
                .expect("append");
            lake.flush().expect("flush");
        }
        let files = committed_files(dir.path());
        assert_eq!(files.len(), 9);
        let damaged = dir.path().join(EVENTS_DIR).join(&files[0].path);
        let bytes = std::fs::read(&damaged).expect("read");
        std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("damage");

        // Compaction fails for that partition, commits nothing and writes nothing.
        let m = Maintenance::new(dir.path(), None).expect("m");
        let pass = m.pass().expect("pass");
        assert_eq!((pass.compacted_files, pass.failed_partitions), (0, 1));
        assert_eq!(committed_files(dir.path()).len(), 9, "nothing merged");

        let q = quarantine(dir.path(), &damaged).expect("quarantine");
        assert_eq!((q.table, q.rows), (EVENTS_DIR, Some(5)));
        assert_eq!(
            std::fs::read(&q.copy).expect("copy"),
            bytes[..bytes.len() / 2]
        );
        assert_eq!(committed_files(dir.path()).len(), 8);
        assert!(quarantine(dir.path(), &damaged).is_err(), "only once");
        assert!(quarantine(dir.path(), Path::new("/etc/passwd")).is_err());

        // The rest merges as usual.
        assert_eq!(m.pass().expect("pass").compacted_files, 8);
        assert_eq!(count_events(dir.path()), 40);
    }
}
