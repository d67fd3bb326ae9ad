//! `auditlake alerts test-output NAME`: one sample alert sent to an output of the config file,
//! so that an operator sees the route to their pager, chat or SIEM work before a real alert
//! needs it.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::AlertsCommand;
use crate::config::Settings;

pub fn run(settings: &Settings, command: AlertsCommand) -> anyhow::Result<ExitCode> {
    let AlertsCommand::TestOutput { name } = command;
    let Some(table) = settings.alerts.outputs.iter().find(|o| o.name == name) else {
        let known: Vec<&str> = settings
            .alerts
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        bail!(
            "no output named {name:?} in the config file's [[alerts.outputs]] (has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let output = table
        .check()
        .map_err(|e| anyhow::anyhow!("[[alerts.outputs]]: {e}"))?;
    let alert = sample(&name)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(auditlake_outputs::deliver::send_now(
            &output,
            &alert,
            settings.alerts.console_url.as_deref(),
        ))
        .map_err(|e| anyhow::anyhow!("output {name}: {e}"))?;
    println!("sent a sample alert to {name} ({})", table.kind);
    Ok(ExitCode::SUCCESS)
}

/// A sample alert, marked as a test in its rule, tags and message.
fn sample(output: &str) -> anyhow::Result<arrow::record_batch::RecordBatch> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let row = serde_json::json!({
        "alert_id": format!("test-{}", chrono::Utc::now().timestamp_micros()),
        "rule_id": "auditlake-test-output",
        "rule_title": "auditlake test alert",
        "severity": "high",
        "category": "other",
        "cluster": "test",
        "event_time": now,
        "detected_at": now,
        "count": 1,
        "tags": ["test"],
        "message": format!("A test alert from `auditlake alerts test-output {output}`: this output works."),
    });
    arrow::json::ReaderBuilder::new(auditlake_schema::alerts_schema())
        .build(std::io::Cursor::new(format!("{row}\n")))?
        .next()
        .context("the sample alert")?
        .context("the sample alert")
}
