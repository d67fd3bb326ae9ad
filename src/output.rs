//! Query results as a table, JSON (an array of objects) or CSV.

use std::io::Write;

use anyhow::Context;
use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use auditlake_engine::QueryResult;

use crate::cli::Format;

pub fn write(result: &QueryResult, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    let batches: Vec<&RecordBatch> = result.batches.iter().filter(|b| b.num_rows() > 0).collect();
    match format {
        Format::Table => {
            let table = if batches.is_empty() {
                arrow::util::pretty::pretty_format_batches(&[RecordBatch::new_empty(
                    result.schema.clone(),
                )])
            } else {
                arrow::util::pretty::pretty_format_batches(
                    &batches.iter().map(|b| (*b).clone()).collect::<Vec<_>>(),
                )
            }
            .context("formatting the result as a table")?;
            writeln!(out, "{table}")?;
        }
        Format::Json => {
            // Explicit nulls: every row carries every column, as investigators' tools expect.
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::JsonArray>(&mut *out);
            writer.write_batches(&batches).context("writing JSON")?;
            writer.finish().context("writing JSON")?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                writer.write(&lists_as_text(&RecordBatch::new_empty(
                    result.schema.clone(),
                ))?)?;
            }
            for batch in batches {
                writer
                    .write(&lists_as_text(batch)?)
                    .context("writing CSV")?;
            }
        }
    }
    if result.truncated {
        eprintln!("auditlake: result truncated at the row limit");
    }
    Ok(())
}

/// CSV has no nested types: list columns (`user_groups`, `mitre`, ...) become `[a, b]` text.
fn lists_as_text(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::sync::Arc;

    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(
            field.data_type(),
            DataType::List(_) | DataType::LargeList(_)
        ) {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
