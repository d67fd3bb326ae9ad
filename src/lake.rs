//! `auditlake lake convert`: a data directory of an earlier version, whose tables are
//! hive-partitioned Parquet files with no transaction log, made Delta tables in place.

use std::process::ExitCode;

use anyhow::Context;
use auditlake_engine::delta::convert;
use auditlake_engine::lake::{ALERTS_DIR, EVENTS_DIR};
use auditlake_schema::columns::{alert, event};
use auditlake_schema::{alerts_schema, events_schema};

use crate::cli::LakeCommand;
use crate::config::Settings;

pub fn run(settings: &Settings, command: LakeCommand) -> anyhow::Result<ExitCode> {
    let dry_run = match command {
        LakeCommand::Convert { dry_run } => dry_run,
        LakeCommand::Quarantine { files } => return quarantine(settings, &files),
    };
    let Some(dir) = settings.lake.local_dir() else {
        anyhow::bail!(
            "lake convert works on a local data directory; convert it, then copy its tables to {} \
             with their _delta_log directories",
            settings.lake.describe()
        );
    };
    for (name, schema, time) in [
        (EVENTS_DIR, events_schema(), event::EVENT_TIME),
        (ALERTS_DIR, alerts_schema(), alert::EVENT_TIME),
    ] {
        let table = dir.join(name);
        let found = convert(dir, name, &schema, time, dry_run)
            .with_context(|| format!("converting {}", table.display()))?;
        match found {
            None => println!("{}: already a Delta table", table.display()),
            Some(c) if c.files == 0 => {
                println!("{}: no files, nothing to convert", table.display())
            }
            Some(c) => println!(
                "{}: {} {} files ({} rows, {} bytes){}",
                table.display(),
                if dry_run { "would add" } else { "added" },
                c.files,
                c.rows,
                c.bytes,
                if c.skipped > 0 {
                    format!("; {} unfinished .tmp files left out", c.skipped)
                } else {
                    String::new()
                }
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `auditlake lake quarantine FILE...`.
fn quarantine(settings: &Settings, files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let Some(dir) = settings.lake.local_dir() else {
        anyhow::bail!(
            "lake quarantine works on a local data directory, not {}",
            settings.lake.describe()
        );
    };
    for file in files {
        let q = auditlake_engine::quarantine::quarantine(dir, file)
            .with_context(|| format!("quarantining {}", file.display()))?;
        println!(
            "{}: {} removed from the {} table ({} rows); its copy is {}",
            file.display(),
            q.path,
            q.table,
            q.rows.map_or_else(|| "?".to_string(), |r| r.to_string()),
            q.copy.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
