//! Tables limited to some clusters' rows, for a token that may see only those (a tenant). The
//! limit is a filter inside the table's scan, below SQL: every way a query can name the table (a
//! join, a subquery, a CTE, a `UNION`, a view of a catalog) ends in this scan, so no query text
//! reaches another cluster's rows.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, cast};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::prelude::{col, lit};

/// `inner` with only the rows whose `column` is one of `clusters`.
#[derive(Debug)]
pub(crate) struct ClusterScoped {
    inner: Arc<dyn TableProvider>,
    column: &'static str,
    clusters: Arc<[String]>,
}

impl ClusterScoped {
    pub(crate) fn new(
        inner: Arc<dyn TableProvider>,
        column: &'static str,
        clusters: Arc<[String]>,
    ) -> Self {
        Self {
            inner,
            column,
            clusters,
        }
    }

    /// `column IN (clusters)`, the column read as text whatever its stored encoding.
    fn allowed(&self) -> Expr {
        cast(col(self.column), DataType::Utf8).in_list(
            self.clusters.iter().map(|c| lit(c.as_str())).collect(),
            false,
        )
    }
}

#[async_trait]
impl TableProvider for ClusterScoped {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        let cluster = schema.index_of(self.column)?;
        let mut columns: Vec<usize> =
            projection.map_or_else(|| (0..schema.fields().len()).collect(), Clone::clone);
        let wanted = columns.len();
        if !columns.contains(&cluster) {
            columns.push(cluster);
        }
        // Handed down too, so that the scan prunes files and row groups of other clusters; the
        // filter above is what guarantees it, whatever the scan makes of it. A limit is not
        // handed down: it would count rows before the filter; the limit above the scan, which
        // DataFusion keeps, applies it.
        let mut pushed = filters.to_vec();
        pushed.push(self.allowed());
        let scan = self
            .inner
            .scan(state, Some(&columns), &pushed, None)
            .await?;
        let scanned = DFSchema::try_from(scan.schema().as_ref().clone())?;
        let predicate = state.create_physical_expr(self.allowed(), &scanned)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
        if columns.len() == wanted {
            return Ok(filtered);
        }
        let out = filtered.schema();
        let exprs = (0..wanted).map(|i| {
            let name = out.field(i).name().clone();
            (
                Arc::new(Column::new(&name, i)) as Arc<dyn datafusion::physical_plan::PhysicalExpr>,
                name,
            )
        });
        Ok(Arc::new(ProjectionExec::try_new(exprs, filtered)?))
    }
}
