//! A filter of a lake scan evaluated some other way than its own, standing in for it everywhere
//! else: in plans, in comparisons, and for row-group pruning by statistics, which inspects
//! filters rather than evaluating them and so is given the filter itself
//! ([`PhysicalExpr::snapshot`]).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr_common::physical_expr::PhysicalExpr;

/// How a [`Wrapped`] filter is evaluated.
pub(crate) trait Evaluation: fmt::Debug + Send + Sync + Sized + 'static {
    /// Shown after the filter when a plan is displayed.
    const LABEL: &'static str;

    /// The answer of `filter` on `batch`.
    fn evaluate(
        &self,
        filter: &Arc<dyn PhysicalExpr>,
        batch: &RecordBatch,
    ) -> Result<ColumnarValue>;

    /// This way of evaluating for `filter`, a rewrite of the filter it was made for; `None` when
    /// it does not apply to the rewrite, which is then evaluated as it is.
    fn for_filter(&self, filter: &Arc<dyn PhysicalExpr>) -> Option<Self>;
}

#[derive(Debug)]
pub(crate) struct Wrapped<E> {
    filter: Arc<dyn PhysicalExpr>,
    how: E,
}

impl<E> Wrapped<E> {
    pub(crate) fn new(filter: Arc<dyn PhysicalExpr>, how: E) -> Self {
        Self { filter, how }
    }
}

impl<E> PartialEq for Wrapped<E> {
    fn eq(&self, other: &Self) -> bool {
        self.filter.eq(&other.filter)
    }
}

impl<E> Eq for Wrapped<E> {}

impl<E> Hash for Wrapped<E> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.filter.hash(state);
    }
}

impl<E: Evaluation> fmt::Display for Wrapped<E> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}{}", self.filter, E::LABEL)
    }
}

impl<E: Evaluation> PhysicalExpr for Wrapped<E> {
    fn data_type(&self, input_schema: &Schema) -> Result<DataType> {
        self.filter.data_type(input_schema)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.filter.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        self.how.evaluate(&self.filter, batch)
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.filter]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        match <[_; 1]>::try_from(children) {
            Ok([filter]) => Ok(match self.how.for_filter(&filter) {
                Some(how) => Arc::new(Self { filter, how }),
                None => filter,
            }),
            Err(children) => internal_err!("{self} has one child, got {children:?}"),
        }
    }

    fn snapshot(&self) -> Result<Option<Arc<dyn PhysicalExpr>>> {
        Ok(Some(Arc::clone(&self.filter)))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.filter.fmt_sql(f)
    }
}
