//! [`AllOf`]: a conjunction of conditions that are never null, evaluated cheapest first, each
//! test after the first only where the ones before it held.
//!
//! DataFusion's `AND` evaluates its right side on only the rows its left side selected when
//! they are few, by filtering the whole batch the `AND` reads, once per `AND` of a chain. In
//! the rule pack most tests are per-value lookups or boolean macro columns, which cost less
//! over every row than that filtering does; so here they run over every row and only the
//! other tests (patterns over user names or bodies, string comparisons, functions) run over
//! the selected rows, filtering only the columns they read.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::buffer::{BooleanBuffer, MutableBuffer};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Schema};
use arrow::util::bit_util;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal, NotExpr};

use crate::eval::Narrowed;
use crate::per_value::PerValue;

/// The share of a batch's rows at or below which a costly test runs on only the selected rows
/// (DataFusion's own threshold for `AND`).
const SELECTIVE: f64 = 0.2;

/// Conditions that all hold, none of which is ever null (as [`crate::rewrite::is_true`] makes
/// them).
#[derive(Debug)]
pub(crate) struct AllOf {
    /// The cheap tests, then the costly ones, each group in the order written.
    tests: Vec<Arc<dyn PhysicalExpr>>,
    /// Per test, when it is costly: the test over just the batch columns it reads.
    narrowed: Vec<Option<Narrowed>>,
}

impl AllOf {
    /// The conjunction of `tests`, each never null.
    pub(crate) fn new(tests: Vec<Arc<dyn PhysicalExpr>>) -> Self {
        let (mut ordered, costly): (Vec<_>, Vec<_>) = tests.into_iter().partition(cheap);
        let cheap_tests = ordered.len();
        ordered.extend(costly);
        let narrowed = ordered
            .iter()
            .enumerate()
            .map(|(i, t)| (i >= cheap_tests).then(|| Narrowed::new(t)))
            .collect();
        Self {
            tests: ordered,
            narrowed,
        }
    }
}

/// The tests `e` is the conjunction of (`e` alone when it is not one).
pub(crate) fn tests(e: &Arc<dyn PhysicalExpr>) -> Vec<Arc<dyn PhysicalExpr>> {
    match conjunctions(e).downcast_ref::<AllOf>() {
        Some(all) => all.tests.clone(),
        None => vec![Arc::clone(e)],
    }
}

/// Tests that cost about as much over every row as finding the selected rows does: constants,
/// column reads (the macros' booleans), per-value lookups, and comparisons of a number.
pub(crate) fn cheap(e: &Arc<dyn PhysicalExpr>) -> bool {
    if e.downcast_ref::<PerValue>().is_some()
        || e.downcast_ref::<Literal>().is_some()
        || e.downcast_ref::<Column>().is_some()
    {
        return true;
    }
    if let Some(not) = e.downcast_ref::<NotExpr>() {
        return cheap(not.arg());
    }
    if let Some(all) = e.downcast_ref::<AllOf>() {
        return all.tests.iter().all(cheap);
    }
    if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        let number = |e: &Arc<dyn PhysicalExpr>| match e.downcast_ref::<Literal>() {
            Some(l) => l.value().data_type().is_numeric(),
            None => false,
        };
        return match b.op() {
            Operator::And | Operator::Or => cheap(b.left()) && cheap(b.right()),
            // `x IS TRUE` of a cheap test, and `response_code >= 400`.
            Operator::IsNotDistinctFrom | Operator::IsDistinctFrom => {
                cheap(b.left()) && b.right().downcast_ref::<Literal>().is_some()
            }
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => cheap(b.left()) && number(b.right()),
            _ => false,
        };
    }
    false
}

/// `e` with every chain of `AND`s made one [`AllOf`]. Only for a condition whose `AND`s have
/// operands that are never null, as [`crate::rewrite::is_true`] leaves them.
pub(crate) fn conjunctions(e: &Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    Arc::clone(e)
        .transform_up(|e| {
            let Some(b) = e
                .downcast_ref::<BinaryExpr>()
                .filter(|b| b.op() == &Operator::And)
            else {
                return Ok(Transformed::no(e));
            };
            let mut tests = Vec::new();
            for side in [b.left(), b.right()] {
                match side.downcast_ref::<AllOf>() {
                    Some(all) => tests.extend(all.tests.iter().cloned()),
                    None => tests.push(Arc::clone(side)),
                }
            }
            Ok(Transformed::yes(Arc::new(AllOf::new(tests)) as _))
        })
        .expect("the rewrite itself never fails")
        .data
}

impl PartialEq for AllOf {
    fn eq(&self, other: &Self) -> bool {
        self.tests == other.tests
    }
}

impl Eq for AllOf {}

impl Hash for AllOf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.tests.hash(state);
    }
}

impl fmt::Display for AllOf {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "all of (")?;
        for (i, t) in self.tests.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{t}")?;
        }
        write!(f, ")")
    }
}

/// What one test said about the rows it was asked about.
enum Answer {
    Every(bool),
    Rows(BooleanBuffer),
}

fn answer(value: ColumnarValue, rows: usize) -> Result<Answer> {
    Ok(match value {
        ColumnarValue::Scalar(ScalarValue::Boolean(v)) => Answer::Every(v == Some(true)),
        ColumnarValue::Scalar(other) => return exec_err!("a condition gave {other:?}"),
        ColumnarValue::Array(array) => {
            let Some(values) = array.as_boolean_opt() else {
                return exec_err!("a condition gave {}", array.data_type());
            };
            if values.len() != rows {
                return exec_err!("a condition gave {} rows of {rows}", values.len());
            }
            // Never null here; were it, null is not true.
            match values.nulls() {
                Some(nulls) => Answer::Rows(values.values() & nulls.inner()),
                None => Answer::Rows(values.values().clone()),
            }
        }
    })
}

impl PhysicalExpr for AllOf {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, _input_schema: &Schema) -> Result<bool> {
        Ok(false)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        // The rows every test so far held on; `None` while that is all of them.
        let mut held: Option<BooleanBuffer> = None;
        for (test, narrowed) in self.tests.iter().zip(&self.narrowed) {
            let selected = held.as_ref().map_or(rows, BooleanBuffer::count_set_bits);
            if selected == 0 {
                break;
            }
            let few = (selected as f64) <= SELECTIVE * rows as f64;
            let now = match (narrowed, &held) {
                (Some(narrowed), Some(mask)) if few => {
                    let input = batch.project(&narrowed.columns)?;
                    let mask = BooleanArray::new(mask.clone(), None);
                    let input = filter_record_batch(&input, &mask)?;
                    match answer(narrowed.expr.evaluate(&input)?, selected)? {
                        Answer::Every(true) => continue,
                        Answer::Every(false) => return Ok(every(false)),
                        Answer::Rows(bits) => scatter(mask.values(), &bits),
                    }
                }
                _ => match answer(test.evaluate(batch)?, rows)? {
                    Answer::Every(true) => continue,
                    Answer::Every(false) => return Ok(every(false)),
                    Answer::Rows(bits) => match &held {
                        Some(mask) => mask & &bits,
                        None => bits,
                    },
                },
            };
            held = Some(now);
        }
        Ok(match held {
            None => every(true),
            Some(bits) if bits.count_set_bits() == 0 => every(false),
            Some(bits) => ColumnarValue::Array(Arc::new(BooleanArray::new(bits, None))),
        })
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        self.tests.iter().collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        if children.len() != self.tests.len() {
            return exec_err!("AllOf takes {} children", self.tests.len());
        }
        Ok(Arc::new(Self::new(children)))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.tests.iter().enumerate() {
            if i > 0 {
                write!(f, " AND ")?;
            }
            write!(f, "(")?;
            t.fmt_sql(f)?;
            write!(f, ")")?;
        }
        Ok(())
    }
}

fn every(value: bool) -> ColumnarValue {
    ColumnarValue::Scalar(ScalarValue::Boolean(Some(value)))
}

/// The rows of `mask` with each set bit replaced by the next answer of `bits` (one per set bit).
fn scatter(mask: &BooleanBuffer, bits: &BooleanBuffer) -> BooleanBuffer {
    let mut out = MutableBuffer::from_len_zeroed(mask.len().div_ceil(8));
    for (row, keep) in mask.set_indices().zip(bits.iter()) {
        if keep {
            bit_util::set_bit(out.as_slice_mut(), row);
        }
    }
    BooleanBuffer::new(out.into(), 0, mask.len())
}
