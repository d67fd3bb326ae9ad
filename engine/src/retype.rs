//! Schemas with some columns typed otherwise, and batches cast to them: scans read strings as
//! `Utf8View`, results go out as `Utf8`, dictionary reads type a few columns as dictionaries.

use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

/// `schema` with its `from` columns typed `to` (`Utf8` and `Utf8View`, either way).
pub(crate) fn strings_as(schema: &Schema, from: &DataType, to: &DataType) -> SchemaRef {
    retyped(schema, |f| (f.data_type() == from).then(|| to.clone()))
}

/// `schema` with each field `new_type` gives a type for typed so, the rest as they are.
pub(crate) fn retyped(schema: &Schema, new_type: impl Fn(&Field) -> Option<DataType>) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match new_type(f) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with each column cast to the type `schema` gives it (same names, same order).
pub(crate) fn as_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match c.data_type() == f.data_type() {
            true => Ok(Arc::clone(c)),
            false => cast(c, f.data_type()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
