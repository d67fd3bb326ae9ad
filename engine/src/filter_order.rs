//! The conjuncts of a scan's filter, most selective first, as measured on the files the scan has
//! already read.
//!
//! The Parquet reader evaluates a filter's conjuncts one after the other, each decoding its
//! columns for only the rows the ones before it kept, so the conjunct that keeps fewest rows
//! should go first. DataFusion's own order (by the compressed size of the columns a conjunct
//! reads) is blind to that: it puts `verb = 'list'` (a small column, a fifth of all rows) before
//! `resource = 'secrets'` (a bigger one, a third of a percent), which made the investigators'
//! "service accounts listing secrets" query 15% slower than the other way round; and the order
//! the query was written in is no better (`resource = 'pods'` before `subresource = 'exec'` took
//! twice as long). Here every conjunct counts the rows it sees and keeps, and each file the scan
//! opens gets its conjuncts ordered by the share they have kept so far, lowest first. Conjuncts
//! not yet measured (in the first files a scan opens) keep the order they were given, after the
//! measured ones.
//!
//! A conjunct after the first is measured on the rows the ones before it kept; once it moves
//! first, on every row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::AsArray;
use arrow::record_batch::RecordBatch;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::{conjunction, split_conjunction};
use datafusion::physical_expr_common::physical_expr::PhysicalExpr;

use crate::wrapped::{Evaluation, Wrapped};

/// What the conjuncts of one scan's filter have kept so far, by conjunct.
#[derive(Debug, Default)]
pub(crate) struct Selectivity {
    seen: Mutex<HashMap<String, Arc<Counts>>>,
}

#[derive(Debug, Default)]
struct Counts {
    rows: AtomicU64,
    kept: AtomicU64,
}

impl Counts {
    /// The share of the rows seen that were kept; `None` before any row.
    fn share(&self) -> Option<f64> {
        let rows = self.rows.load(Ordering::Relaxed);
        (rows > 0).then(|| self.kept.load(Ordering::Relaxed) as f64 / rows as f64)
    }
}

impl Selectivity {
    /// `filter` with its conjuncts ordered by the share of rows each has kept so far (unmeasured
    /// ones last, in their given order), each counting the rows it sees from now on. A filter of
    /// one conjunct is returned as it is.
    pub(crate) fn order(&self, filter: Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
        let conjuncts = split_conjunction(&filter);
        if conjuncts.len() < 2 {
            return filter;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted: Vec<(f64, Arc<dyn PhysicalExpr>)> = conjuncts
            .into_iter()
            .map(|c| {
                let counts = Arc::clone(seen.entry(c.to_string()).or_default());
                let share = counts.share().unwrap_or(f64::INFINITY);
                let counted = Wrapped::new(Arc::clone(c), Counting(counts));
                (share, Arc::new(counted) as Arc<dyn PhysicalExpr>)
            })
            .collect();
        // Stable: ties and the unmeasured keep their given order.
        counted.sort_by(|a, b| a.0.total_cmp(&b.0));
        conjunction(counted.into_iter().map(|(_, c)| c))
    }
}

/// How a conjunct counts the rows it is evaluated on and the rows it keeps (true, not null).
#[derive(Debug)]
struct Counting(Arc<Counts>);

impl Evaluation for Counting {
    const LABEL: &'static str = "";

    fn evaluate(
        &self,
        filter: &Arc<dyn PhysicalExpr>,
        batch: &RecordBatch,
    ) -> Result<ColumnarValue> {
        let answer = filter.evaluate(batch)?;
        let rows = batch.num_rows();
        let kept = match &answer {
            ColumnarValue::Array(a) => a.as_boolean_opt().map_or(rows, |a| a.true_count()),
            ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))) => rows,
            ColumnarValue::Scalar(_) => 0,
        };
        self.0.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.0.kept.fetch_add(kept as u64, Ordering::Relaxed);
        Ok(answer)
    }

    fn for_filter(&self, _filter: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        Some(Self(Arc::clone(&self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{BinaryExpr, Column, lit};

    fn eq(column: &str, index: usize, value: i32) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(Column::new(column, index)),
            Operator::Eq,
            lit(value),
        ))
    }

    fn order_of(filter: &Arc<dyn PhysicalExpr>) -> Vec<String> {
        split_conjunction(filter)
            .iter()
            .map(|c| c.to_string())
            .collect()
    }

    /// The first file keeps the given order; once `b = 1` has been seen to keep fewer rows than
    /// `a = 1`, the next file evaluates it first. Answers are the filter's own.
    #[test]
    fn conjuncts_that_kept_fewer_rows_go_first_in_the_next_file() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Int32, true),
        ]));
        // `a = 1` keeps 3 of 4 rows, `b = 1` one (a null is not kept).
        let a: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(1), Some(1), None]));
        let b: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(3)]));
        let batch = RecordBatch::try_new(schema, vec![a, b]).expect("batch");
        let filter: Arc<dyn PhysicalExpr> =
            Arc::new(BinaryExpr::new(eq("a", 0, 1), Operator::And, eq("b", 1, 1)));
        let selectivity = Selectivity::default();

        let first = selectivity.order(Arc::clone(&filter));
        assert_eq!(order_of(&first), ["a@0 = 1", "b@1 = 1"]);
        // As the Parquet reader does: each conjunct on its own.
        let mut kept = Vec::new();
        for conjunct in split_conjunction(&first) {
            let answer = conjunct.evaluate(&batch).expect("evaluate");
            let answer = answer.into_array(batch.num_rows()).expect("array");
            kept.push(answer.as_boolean().true_count());
        }
        assert_eq!(kept, [3, 1]);

        let second = selectivity.order(Arc::clone(&filter));
        assert_eq!(order_of(&second), ["b@1 = 1", "a@0 = 1"]);
        let answer = second.evaluate(&batch).expect("evaluate");
        let expected = filter.evaluate(&batch).expect("evaluate");
        assert_eq!(
            answer.into_array(4).expect("array").as_boolean(),
            expected.into_array(4).expect("array").as_boolean()
        );

        // A single condition is left as it is.
        let one = eq("a", 0, 1);
        assert!(Arc::ptr_eq(&selectivity.order(Arc::clone(&one)), &one));
    }
}
