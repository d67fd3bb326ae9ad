//! The built-in pack: it compiles, every rule carries examples, and every example behaves.

mod fuzz;
mod pack;
mod tuning;

use std::path::PathBuf;

/// The repository root, where example references (`sample-logs/...`) resolve.
pub fn repo() -> PathBuf {
    auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR")).join("..")
}
