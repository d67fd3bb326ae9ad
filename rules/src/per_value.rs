//! [`PerValue`]: a condition on one column evaluated once per distinct value of that column
//! instead of once per row. Most conditions test the low-cardinality columns (`verb IN (...)`,
//! `user_agent ~* '^(curl|python|...)'`, the dozen `LIKE`s of `system_principal` on
//! `user_name`); a batch of 16k events holds a few dozen distinct verbs or user agents, so each
//! such test runs a few dozen times and is then looked up by key for every row.

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{concat, take};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;

/// The one-column batch of distinct values a [`PerValue`]'s condition reads.
static VALUES: LazyLock<SchemaRef> =
    LazyLock::new(|| Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)])));

/// `condition`, which reads only `column`, evaluated over the distinct values of the
/// dictionary-encoded copy of `column` at `dictionary` and mapped back to rows by key.
#[derive(Debug)]
pub(crate) struct PerValue {
    /// The dictionary column (`Dictionary(Int32, Utf8)`) of the batch.
    dictionary: Arc<dyn PhysicalExpr>,
    /// The condition, reading the values as column 0 of [`VALUES`].
    condition: Arc<dyn PhysicalExpr>,
}

impl PartialEq for PerValue {
    fn eq(&self, other: &Self) -> bool {
        self.dictionary.eq(&other.dictionary) && self.condition.eq(&other.condition)
    }
}

impl Eq for PerValue {}

impl Hash for PerValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.dictionary.hash(state);
        self.condition.hash(state);
    }
}

impl PerValue {
    /// `condition` (which reads no column but `column`) over the dictionary at `dictionary`
    /// instead; `None` when it reads another column too, or none, or is volatile.
    pub(crate) fn wrap(
        condition: &Arc<dyn PhysicalExpr>,
        column: usize,
        dictionary: Column,
    ) -> Option<Arc<dyn PhysicalExpr>> {
        let columns = collect_columns(condition);
        if columns.len() != 1 || columns.iter().any(|c| c.index() != column) {
            return None;
        }
        if datafusion::physical_expr_common::physical_expr::is_volatile(condition) {
            return None;
        }
        let condition = Arc::clone(condition)
            .transform_up(|e| match e.downcast_ref::<Column>() {
                Some(_) => Ok(Transformed::yes(Arc::new(Column::new("value", 0)) as _)),
                None => Ok(Transformed::no(e)),
            })
            .ok()?
            .data;
        Some(Arc::new(Self {
            dictionary: Arc::new(dictionary),
            condition,
        }))
    }
}

impl fmt::Display for PerValue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "per value of {}: {}", self.dictionary, self.condition)
    }
}

impl PhysicalExpr for PerValue {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        self.condition.data_type(&VALUES)
    }

    fn nullable(&self, _input_schema: &Schema) -> Result<bool> {
        self.condition.nullable(&VALUES)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        let dictionary = self.dictionary.evaluate(batch)?.into_array(rows)?;
        let Some(dictionary) = dictionary.as_dictionary_opt::<Int32Type>() else {
            return exec_err!("{} is not a dictionary", self.dictionary);
        };
        let values = dictionary.values();
        if values.data_type() != &DataType::Utf8 {
            return exec_err!("{} has {} values", self.dictionary, values.data_type());
        }
        // The distinct values and, last, a null for the rows without a value.
        let null = values.len() as i32;
        let values = concat(&[
            values.as_ref(),
            &arrow::array::new_null_array(&DataType::Utf8, 1),
        ])?;
        let values = RecordBatch::try_new(Arc::clone(&VALUES), vec![values])?;
        let per_value: ArrayRef = self
            .condition
            .evaluate(&values)?
            .into_array(values.num_rows())?;
        // The same answer for every row (`resource = 'certificatesigningrequests'` in most
        // batches): a constant, on which an `AND` or `OR` short-circuits.
        if let Some(answers) = per_value.as_boolean_opt() {
            let has_nulls = dictionary.null_count() > 0;
            let asked = answers.slice(0, answers.len() - usize::from(!has_nulls));
            if asked.null_count() == 0 && (asked.true_count() == 0 || asked.false_count() == 0) {
                let answer = asked.true_count() > 0;
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(answer))));
            }
        }
        let keys = dictionary.keys();
        let Some(answers) = per_value.as_boolean_opt().filter(|a| a.null_count() == 0) else {
            // Answers that can be null (a condition not made `IS TRUE`): the general lookup.
            let keys = Int32Array::from_iter_values((0..rows).map(|i| {
                if keys.is_valid(i) {
                    keys.value(i)
                } else {
                    null
                }
            }));
            return Ok(ColumnarValue::Array(take(&per_value, &keys, None)?));
        };
        let answer = |key: i32| answers.values().value(key as usize);
        let looked_up = match keys.nulls() {
            None => BooleanBuffer::collect_bool(rows, |i| answer(keys.values()[i])),
            Some(nulls) => BooleanBuffer::collect_bool(rows, |i| {
                answer(if nulls.is_valid(i) {
                    keys.values()[i]
                } else {
                    null
                })
            }),
        };
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            looked_up, None,
        ))))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.dictionary]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let Some(dictionary) = children.into_iter().next() else {
            return exec_err!("PerValue takes one child");
        };
        Ok(Arc::new(Self {
            dictionary,
            condition: Arc::clone(&self.condition),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.condition.fmt_sql(f)
    }
}
