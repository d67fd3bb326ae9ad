//! Making what was written to the file system outlive a crash.

use std::fs::File;
use std::path::Path;

/// Makes a rename in the file's directory durable. Best effort: a filesystem that cannot sync a
/// directory still has the file, only its name may need the journal replayed after a crash.
pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}
