//! Query results as a table, JSON (an array of objects) or CSV.

use std::io::Write;

use anyhow::Context;
use arrow::record_batch::RecordBatch;
use auditlake_engine::QueryResult;
use auditlake_query_api::format;

use crate::cli::Format;

pub fn write(result: &QueryResult, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let batches: Vec<RecordBatch> = result
                .batches
                .iter()
                .filter(|b| b.num_rows() > 0)
                .cloned()
                .collect();
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    result.schema.clone(),
                )])
            } else {
                arrow::util::pretty::pretty_format_batches(&batches)
            }
            .context("formatting the result as a table")?;
            writeln!(out, "{table}")?;
        }
        Format::Json => {
            format::write_json(&result.batches, &mut *out).context("writing JSON")?;
            writeln!(out)?;
        }
        Format::Csv => {
            format::write_csv(&result.schema, &result.batches, &mut *out).context("writing CSV")?;
        }
    }
    if result.truncated {
        eprintln!("auditlake: result truncated at the row limit");
    }
    Ok(())
}
