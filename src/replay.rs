//! `auditlake replay FILE...`: files through the decoder into the lake, with a summary.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use auditlake_engine::{AppendStats, Pipeline};
use auditlake_ingest::{Input, Progress, Replay, Sink, Summary};
use auditlake_rules::RuleEngine;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ReplayArgs;
use crate::config::Settings;

/// Inputs at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 16 << 20;
/// Rejected lines printed one by one; past this only the count.
const MAX_LISTED_REJECTIONS: usize = 1000;

/// The pipeline as the replay's sink.
struct PipelineSink {
    pipeline: Pipeline,
    alerts_stdout: bool,
}

impl Sink for PipelineSink {
    type Error = auditlake_engine::Error;

    fn write(&mut self, batch: RecordBatch) -> Result<(), Self::Error> {
        let ingested = self.pipeline.ingest(&batch)?;
        if self.alerts_stdout && ingested.alerts.num_rows() > 0 {
            print_alerts(&ingested.alerts);
        }
        Ok(())
    }
}

/// Alerts as JSON lines on stdout, as they are raised.
fn print_alerts(alerts: &RecordBatch) {
    let stdout = std::io::stdout();
    let mut writer = arrow::json::LineDelimitedWriter::new(stdout.lock());
    if let Err(e) = writer.write(alerts).and_then(|()| writer.finish()) {
        tracing::warn!(error = %e, "cannot print alerts to stdout");
    }
}

pub fn run(settings: &Settings, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let rules = if args.pipeline.no_rules {
        None
    } else {
        Some(RuleEngine::new(&crate::rules::load(
            &args.pipeline.rules,
            settings,
        )?))
    };
    let threads = crate::cli::threads_or_all(args.threads);
    let mut pipeline = Pipeline::open_in(&settings.lake, &settings.data_dir, rules)
        .with_context(|| format!("cannot open the lake in {}", settings.lake.describe()))?;
    if threads > 1 {
        pipeline = pipeline.with_background_encoding();
    }
    let cluster = args.pipeline.cluster.or_else(|| settings.cluster.clone());
    let sink = PipelineSink {
        pipeline,
        alerts_stdout: args.alerts_stdout,
    };
    let mut replay = Replay::new(sink, cluster)
        .with_threads(threads)
        .with_batch_bytes(args.batch_bytes);
    let inputs: Vec<Input> = args.files.iter().map(|f| Input::from_arg(f)).collect();
    let bar = progress_bar(&inputs);
    let mut summary = Summary::default();
    let mut done_bytes = 0u64;
    for input in &inputs {
        let mut on_progress = |p: Progress| {
            if let Some(bar) = &bar {
                bar.set_position(done_bytes + p.bytes);
                bar.set_message(format!("{} events", p.events));
            }
        };
        replay.input(input, &mut summary, &mut on_progress)?;
        done_bytes += input.size().unwrap_or(0);
    }
    replay.flush()?;
    let mut sink = replay.into_sink();
    sink.pipeline
        .flush()
        .context("completing the lake's files")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_summary(
        &summary,
        sink.pipeline.totals(),
        sink.pipeline.alert_counts(),
        args.alerts_stdout,
    );
    let history = sink.pipeline.history_memory_bytes();
    if history > 0 {
        eprintln!(
            "first-seen and sequence state: {} KiB",
            history.div_ceil(1024)
        );
    }
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn progress_bar(inputs: &[Input]) -> Option<ProgressBar> {
    let total: u64 = inputs.iter().filter_map(Input::size).sum();
    if !std::io::stderr().is_terminal() || total < PROGRESS_MIN_BYTES {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
        )
        .expect("the template is valid"),
    );
    Some(bar)
}

fn print_summary(
    summary: &Summary,
    totals: AppendStats,
    alerts: &std::collections::BTreeMap<String, u64>,
    alerts_on_stdout: bool,
) {
    for rejected in summary.rejected.iter().take(MAX_LISTED_REJECTIONS) {
        eprintln!("{rejected}");
    }
    if summary.rejected.len() > MAX_LISTED_REJECTIONS {
        eprintln!(
            "... and {} more rejected lines",
            summary.rejected.len() - MAX_LISTED_REJECTIONS
        );
    }
    for empty in &summary.empty_inputs {
        eprintln!("{empty}: empty, no audit events");
    }
    // With alerts on stdout as JSON lines, the human summary goes to stderr.
    let line = format!(
        "replayed {} input{}: {} event{} stored, {} duplicate{} skipped, {} line{} rejected, {} alert{}",
        summary.inputs,
        plural(summary.inputs as u64),
        totals.stored,
        plural(totals.stored),
        totals.duplicates,
        plural(totals.duplicates),
        summary.rejected.len(),
        plural(summary.rejected.len() as u64),
        alerts.values().sum::<u64>(),
        plural(alerts.values().sum::<u64>()),
    );
    let mut text = line;
    for (rule, n) in alerts {
        text.push_str(&format!("\n  {n:>6}  {rule}"));
    }
    if alerts_on_stdout {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
