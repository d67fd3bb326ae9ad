//! Query results as JSON rows, CSV or an Arrow IPC stream: the encodings of `POST /v1/query`,
//! also used by `auditlake query --format`.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// An array of objects, one per row, every column present (explicit nulls), as investigators'
/// tools expect.
pub fn write_json(batches: &[RecordBatch], out: &mut dyn Write) -> Result<(), ArrowError> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(out);
    let batches: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    writer.write_batches(&batches)?;
    writer.finish()
}

/// CSV with a header row (also when there are no rows); list columns become `[a, b]` text.
pub fn write_csv(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<(), ArrowError> {
    let mut writer = arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    let rows: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
    if rows.is_empty() {
        return writer.write(&lists_as_text(&RecordBatch::new_empty(Arc::clone(schema)))?);
    }
    for batch in rows {
        writer.write(&lists_as_text(batch)?)?;
    }
    Ok(())
}

/// An Arrow IPC stream: the schema, then every batch.
pub fn write_arrow_ipc(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    out: &mut dyn Write,
) -> Result<(), ArrowError> {
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(out, schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
}

/// CSV has no nested types: list columns (`user_groups`, `mitre`, ...) become `[a, b]` text.
fn lists_as_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
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
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
