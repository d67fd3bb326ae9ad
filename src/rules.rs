//! `auditlake rules list|test|backtest`, and loading the rules every command shares.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use auditlake_engine::{Pipeline, QueryEngine, QueryLimits, QueryResult};
use auditlake_rules::{
    CLOUD_RANGES_LIST, CompiledPack, RuleEngine, RuleSet, THREAT_INTEL_LIST, run_examples,
};
use auditlake_schema::alerts_schema;
use auditlake_schema::time::{now_micros, parse_time_bound};

use crate::cli::{BacktestArgs, Format, RulesArgs, RulesCommand};
use crate::config::Settings;
use crate::output;

/// The built-in pack plus the user's directories, validated and compiled. Any error stops the
/// command: running without the rules someone configured would be silently blind.
/// `--threat-intel` and `--cloud-ranges` files (else the config file's) feed the built-in
/// threat-intel and cloud-ranges lists; the latter replace the built-in ranges snapshot.
pub fn load(args: &RulesArgs, settings: &Settings) -> anyhow::Result<CompiledPack> {
    let mut set = RuleSet::load(&args.dirs).context("loading rules")?;
    for (flag, list, given, configured) in [
        (
            "--threat-intel",
            THREAT_INTEL_LIST,
            &args.threat_intel,
            &settings.threat_intel,
        ),
        (
            "--cloud-ranges",
            CLOUD_RANGES_LIST,
            &args.cloud_ranges,
            &settings.cloud_ranges,
        ),
    ] {
        let files = if given.is_empty() { configured } else { given };
        if !files.is_empty() {
            // The providers' current files replace the built-in snapshot.
            set.list_defaults.remove(list);
        }
        for file in files {
            set.add_list_file(list, file)
                .with_context(|| format!("loading {flag}"))?;
        }
    }
    CompiledPack::compile(&set).context("loading rules")
}

pub fn run(settings: &Settings, command: RulesCommand) -> anyhow::Result<ExitCode> {
    match command {
        RulesCommand::List { rules, format } => list(&load(&rules, settings)?, format),
        RulesCommand::Test {
            rules,
            examples_dir,
        } => {
            let pack = load(&rules, settings)?;
            let report = run_examples(&pack, &examples_dir);
            for failure in &report.failures {
                eprintln!("{failure}");
            }
            println!(
                "{} rules, {} examples run, {} failed",
                pack.rules.len(),
                report.run,
                report.failures.len()
            );
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        RulesCommand::Backtest(args) => backtest(settings, args),
    }
}

fn list(pack: &CompiledPack, format: Option<Format>) -> anyhow::Result<ExitCode> {
    let text = |f: &dyn Fn(&auditlake_rules::CompiledRule) -> String| {
        Arc::new(StringArray::from(
            pack.rules.iter().map(f).collect::<Vec<_>>(),
        ))
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("enabled", DataType::Boolean, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            text(&|r| r.def.id.clone()),
            text(&|r| r.def.severity.clone()),
            text(&|r| r.def.category.clone()),
            Arc::new(BooleanArray::from(
                pack.rules.iter().map(|r| r.def.enabled).collect::<Vec<_>>(),
            )),
            text(&|r| r.file.clone()),
            text(&|r| r.def.title.clone()),
        ],
    )?;
    let result = QueryResult {
        schema,
        batches: vec![batch],
        truncated: false,
    };
    print(&result, format)?;
    Ok(ExitCode::SUCCESS)
}

fn print(result: &QueryResult, format: Option<Format>) -> anyhow::Result<()> {
    let format = format.unwrap_or(if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Json
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    output::write(result, format, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// A `--since`/`--until` value in microseconds, checked here so a typo is a clear error.
fn time_bound(flag: &str, value: &str) -> anyhow::Result<i64> {
    parse_time_bound(value, now_micros()).with_context(|| {
        format!("--{flag} {value:?} is not an RFC 3339 time, a YYYY-MM-DD date or a duration ago such as 24h")
    })
}

/// Every stored event from `since` to before `until` (either open), in time order (ties in
/// audit ID and stage order), to `each` on this thread. One hour partition is sorted at a
/// time: the hours follow each other, so the order is that of one sort over everything, while
/// memory stays that of an hour (a day of a big cluster, sorted at once, spilled gigabytes and
/// then ran out of its 1 GiB for merging them).
fn each_in_time_order(
    runtime: &tokio::runtime::Runtime,
    query: &QueryEngine,
    since: Option<i64>,
    until: Option<i64>,
    mut each: impl FnMut(RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let within = |lo: Option<i64>, hi: Option<i64>| {
        let mut filters = Vec::new();
        if let Some(lo) = lo {
            filters.push(format!("event_time >= to_timestamp_micros({lo})"));
        }
        if let Some(hi) = hi {
            filters.push(format!("event_time < to_timestamp_micros({hi})"));
        }
        if filters.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", filters.join(" AND "))
        }
    };
    // The hours that hold events, from the times alone (a lake may span years with gaps).
    let hours = runtime.block_on(query.query(&format!(
        "SELECT DISTINCT to_unixtime(date_trunc('hour', event_time)) AS hour FROM events {} \
         ORDER BY hour",
        within(since, until)
    )))?;
    const HOUR: i64 = 3_600_000_000;
    for batch in &hours.batches {
        let seconds = batch.column(0).as_primitive::<Int64Type>();
        for hour in seconds.iter().flatten().map(|s| s * 1_000_000) {
            let lo = since.map_or(hour, |s| s.max(hour));
            let hi = until.map_or(hour + HOUR, |u| u.min(hour + HOUR));
            let sql = format!(
                "SELECT * FROM events {} ORDER BY event_time, audit_id, stage",
                within(Some(lo), Some(hi))
            );
            each_batch(runtime, query, &sql, &mut each)?;
        }
    }
    Ok(())
}

/// Runs `sql` on `runtime`'s threads and hands its batches, in order, to `each` on this thread:
/// the rules run on one batch while the query reads, decodes and sorts the next ones.
fn each_batch(
    runtime: &tokio::runtime::Runtime,
    query: &QueryEngine,
    sql: &str,
    mut each: impl FnMut(RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (batches, taken) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || {
            runtime.block_on(query.for_each_batch(sql, |batch| {
                // Fails only when the rules stopped at an error, which is the one reported.
                batches
                    .send(batch)
                    .map_err(|_| auditlake_engine::Error::Unavailable {
                        reason: "the rules stopped".into(),
                    })
            }))
        });
        let mut ruled = Ok(());
        for batch in taken.iter() {
            ruled = each(batch);
            if ruled.is_err() {
                break;
            }
        }
        drop(taken);
        let read = reading.join().expect("the query thread does not panic");
        ruled?;
        Ok(read?)
    })
}

fn backtest(settings: &Settings, args: BacktestArgs) -> anyhow::Result<ExitCode> {
    let pack = load(&args.rules, settings)?;
    let rules: Vec<_> = if args.rule_ids.is_empty() {
        pack.enabled().cloned().collect()
    } else {
        let mut chosen = Vec::new();
        for id in &args.rule_ids {
            let rule = pack
                .rules
                .iter()
                .find(|r| &r.def.id == id)
                .with_context(|| format!("--rule {id}: no such rule"))?;
            chosen.push(rule.clone());
        }
        chosen
    };
    let mut engine = RuleEngine::with_rules(&pack, rules);
    let bound = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<i64>> {
        value.as_ref().map(|v| time_bound(flag, v)).transpose()
    };
    let (since, until) = (bound("since", &args.since)?, bound("until", &args.until)?);
    let threads = crate::cli::threads_or_all(args.threads);
    let limits = QueryLimits {
        threads: Some(threads),
        ..QueryLimits::default()
    };
    let query = QueryEngine::open_once(&settings.lake, limits)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    // First-seen and sequence rules compare with what came before `--since`: their history is
    // read first, raising nothing.
    if let (Some(start), Some(history)) = (since, engine.history_micros()) {
        let first = start.saturating_sub(history);
        each_in_time_order(&runtime, &query, Some(first), Some(start), |batch| {
            engine.warm_history(&batch)?;
            Ok(())
        })?;
    }
    let mut store = if args.store {
        Some(Pipeline::open_in(&settings.lake, &settings.data_dir, None)?)
    } else {
        None
    };
    let mut alerts = Vec::new();
    each_in_time_order(&runtime, &query, since, until, |batch| {
        let raised = engine.evaluate(&batch)?;
        if let Some(pipeline) = &mut store {
            pipeline.store_alerts(&raised)?;
        }
        if raised.num_rows() > 0 {
            alerts.push(raised);
        }
        Ok(())
    })?;
    if let Some(mut pipeline) = store {
        pipeline.flush()?;
    }
    let result = QueryResult {
        schema: alerts_schema(),
        batches: alerts,
        truncated: false,
    };
    print(&result, args.format)?;
    Ok(ExitCode::SUCCESS)
}
