//! `column = 'text'` over a string-view column, for a text short enough to be held inside a view
//! (12 bytes or fewer): one 16-byte comparison per row.
//!
//! A string view of up to 12 bytes holds the whole string after its length, zero-padded; a
//! longer string has another length. So a row equals such a text exactly when its view equals
//! the text's view. Arrow's own comparison checks lengths, prefixes and data buffers row by row,
//! and over the benchmark's 10M events `subresource = 'exec'` (`subresource` is read as strings,
//! see [`crate::lake::FEW_VALUED_EVENT_COLUMNS`]) spent 16% of the pods/exec query's CPU there.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, make_view};
use arrow::buffer::BooleanBuffer;
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr_common::physical_expr::PhysicalExpr;

use crate::wrapped::{Evaluation, Wrapped};

/// The longest string a view holds inline.
const INLINE: usize = 12;

/// How a [`Wrapped`] equality is evaluated: the column it reads and the view every equal row has.
#[derive(Debug)]
pub(crate) struct ShortEq {
    column: Column,
    view: u128,
}

impl ShortEq {
    /// `filter` evaluated by view when it is `column = 'text'` (either way round) over a
    /// string-view column of `schema` and a text of at most 12 bytes.
    pub(crate) fn wrap(
        filter: &Arc<dyn PhysicalExpr>,
        schema: &Schema,
    ) -> Option<Arc<dyn PhysicalExpr>> {
        let how = Self::of(filter)?;
        let field = schema.fields().get(how.column.index())?;
        (field.name() == how.column.name() && field.data_type() == &DataType::Utf8View)
            .then(|| Arc::new(Wrapped::new(Arc::clone(filter), how)) as Arc<dyn PhysicalExpr>)
    }

    /// The column and view of `column = 'text'`, whatever the column's type (a batch whose
    /// column is not a string view is evaluated by the filter itself).
    fn of(filter: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let binary = filter.downcast_ref::<BinaryExpr>()?;
        if binary.op() != &Operator::Eq {
            return None;
        }
        let (column, literal) = match (
            binary.left().downcast_ref::<Column>(),
            binary.right().downcast_ref::<Literal>(),
        ) {
            (Some(c), Some(l)) => (c, l),
            _ => (
                binary.right().downcast_ref::<Column>()?,
                binary.left().downcast_ref::<Literal>()?,
            ),
        };
        // Coerced to the column's type by the planner, as the comparison kernel requires.
        let ScalarValue::Utf8View(Some(text)) = literal.value() else {
            return None;
        };
        (text.len() <= INLINE).then(|| Self {
            column: column.clone(),
            view: make_view(text.as_bytes(), 0, 0),
        })
    }
}

impl Evaluation for ShortEq {
    const LABEL: &'static str = " by view";

    fn evaluate(
        &self,
        filter: &Arc<dyn PhysicalExpr>,
        batch: &RecordBatch,
    ) -> Result<ColumnarValue> {
        let array = self.column.evaluate(batch)?.into_array(batch.num_rows())?;
        let Some(strings) = array.as_string_view_opt() else {
            return filter.evaluate(batch);
        };
        let views = strings.views();
        // A view under a null may be anything: the null buffer below masks it.
        let equal = BooleanBuffer::collect_bool(views.len(), |i| views[i] == self.view);
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            equal,
            strings.nulls().cloned(),
        ))))
    }

    fn for_filter(&self, filter: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        Self::of(filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringViewArray};
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::lit;

    fn text(text: &str) -> Arc<dyn PhysicalExpr> {
        lit(ScalarValue::Utf8View(Some(text.into())))
    }

    /// Texts of every length class a view has: empty, inline, exactly 12 bytes, longer with the
    /// same first 12 bytes, and null.
    fn batch() -> RecordBatch {
        let values: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("exec"),
            Some("execs"),
            Some(""),
            None,
            Some("twelve-bytes"),
            Some("twelve-bytes and then some more"),
            Some("exec"),
            Some("Exec"),
        ]));
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8View, true),
        ]);
        let numbers: ArrayRef = Arc::new(arrow::array::Int32Array::from(vec![0; 8]));
        RecordBatch::try_new(Arc::new(schema), vec![numbers, values]).expect("batch")
    }

    fn eq(left: Arc<dyn PhysicalExpr>, right: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(left, Operator::Eq, right))
    }

    fn answer(filter: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> BooleanArray {
        let answer = filter.evaluate(batch).expect("evaluate");
        answer
            .into_array(batch.num_rows())
            .expect("array")
            .as_boolean()
            .clone()
    }

    #[test]
    fn short_texts_compared_by_view_give_arrows_answers() {
        let batch = batch();
        let column = || Arc::new(Column::new("s", 1)) as Arc<dyn PhysicalExpr>;
        for t in ["exec", "", "twelve-bytes", "Exec", "nothing"] {
            for filter in [eq(column(), self::text(t)), eq(self::text(t), column())] {
                let wrapped = ShortEq::wrap(&filter, &batch.schema()).expect("wrapped");
                assert!(wrapped.to_string().ends_with(" by view"), "{wrapped}");
                assert_eq!(
                    answer(&wrapped, &batch),
                    answer(&filter, &batch),
                    "{filter}"
                );
            }
        }
        assert_eq!(
            answer(
                &ShortEq::wrap(&eq(column(), text("exec")), &batch.schema()).expect("wrapped"),
                &batch
            )
            .true_count(),
            2
        );
    }

    #[test]
    fn longer_texts_other_types_and_other_operators_are_left_alone() {
        let schema = batch().schema();
        let column = Arc::new(Column::new("s", 1)) as Arc<dyn PhysicalExpr>;
        let longer = eq(Arc::clone(&column), text("thirteen-byte"));
        assert!(ShortEq::wrap(&longer, &schema).is_none());
        let number = eq(Arc::new(Column::new("n", 0)), lit(1));
        assert!(ShortEq::wrap(&number, &schema).is_none());
        let other: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&column),
            Operator::NotEq,
            text("exec"),
        ));
        assert!(ShortEq::wrap(&other, &schema).is_none());
        // A column of another name at that index is another schema's: not trusted.
        let renamed = eq(Arc::new(Column::new("t", 1)), text("exec"));
        assert!(ShortEq::wrap(&renamed, &schema).is_none());
    }
}
