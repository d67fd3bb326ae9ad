//! `auditlake query "SQL"`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use auditlake_engine::{AccessLog, AccessTable, QueryEngine, QueryLimits};

use crate::cli::{Format, QueryArgs};
use crate::config::Settings;
use crate::output;

pub fn run(settings: &Settings, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let format = args.format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let engine = QueryEngine::open_once(&settings.lake, QueryLimits::default())?;
    engine.register_triage_if_kept(&settings.data_dir)?;
    // Whoever runs this reads the data directory's files: the access log is theirs to query.
    let engine = if AccessLog::exists(&settings.data_dir) {
        let log = AccessLog::open(&settings.data_dir)?;
        engine.with_access_log(std::sync::Arc::new(AccessTable::new(std::sync::Arc::new(
            log,
        ))))?
    } else {
        engine
    };
    let started = Instant::now();
    let result = runtime.block_on(engine.query(&args.sql))?;
    let took = started.elapsed();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    output::write(&result, format, &mut out)?;
    std::io::Write::flush(&mut out)?;
    if args.timing {
        eprintln!("time: {:.3} s", took.as_secs_f64());
    }
    Ok(ExitCode::SUCCESS)
}
