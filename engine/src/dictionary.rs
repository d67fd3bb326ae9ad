//! Filters on low-cardinality string columns, evaluated once per distinct value rather than once
//! per row.
//!
//! The lake stores verb, resource, namespace, user and the like dictionary-encoded: an hour's file
//! holds each distinct value once and every row a small key. Read as strings, a filter such as
//! `resource = 'secrets'` costs a copy of every row's value out of the dictionary and then a
//! comparison per row. A scan that filters on such a column instead reads it as an Arrow
//! dictionary (keys and the file's distinct values, as stored), and [`ScanFilters`] rewrites
//! each filter over one such column into a [`PerDistinctValue`]: the filter is evaluated on the
//! few distinct values, and each row takes the answer of its key.
//!
//! Row-group pruning still sees the original filter (see [`Wrapped`]), and the
//! values a query returns are cast back to the table's types as for any other file column.

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_expr_common::physical_expr::PhysicalExpr;

use crate::filter_order::Selectivity;
use crate::retype::retyped;
use crate::short_eq::ShortEq;
use crate::wrapped::{Evaluation, Wrapped};

/// The Arrow type a dictionary-read string column is decoded into: the Parquet reader can keep
/// a column chunk's dictionary only with plain string values.
pub(crate) fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// `schema` with the columns named in `columns` typed as [`dictionary_type`].
pub(crate) fn with_dictionaries(schema: &Schema, columns: &[&str]) -> SchemaRef {
    retyped(schema, |f| {
        columns.contains(&f.name().as_str()).then(dictionary_type)
    })
}

/// Adapts a scan's filters and projections to each file as DataFusion does, turns every filter
/// over a single dictionary-read column into a [`PerDistinctValue`] and every comparison of a
/// string column with a short text into a [`ShortEq`], and orders the conjuncts of each file's
/// filter by what they kept in the files read before it ([`Selectivity`]).
#[derive(Debug, Default)]
pub(crate) struct ScanFilters {
    selectivity: Arc<Selectivity>,
}

impl PhysicalExprAdapterFactory for ScanFilters {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        Ok(Arc::new(ScanFilterAdapter {
            default: DefaultPhysicalExprAdapterFactory
                .create(logical_file_schema, Arc::clone(&physical_file_schema))?,
            file_schema: physical_file_schema,
            selectivity: Arc::clone(&self.selectivity),
        }))
    }
}

#[derive(Debug)]
struct ScanFilterAdapter {
    default: Arc<dyn PhysicalExprAdapter>,
    file_schema: SchemaRef,
    selectivity: Arc<Selectivity>,
}

impl PhysicalExprAdapter for ScanFilterAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let dictionaries = self
            .file_schema
            .fields()
            .iter()
            .any(|f| f.data_type() == &dictionary_type());
        let expr = self
            .default
            .rewrite(expr)?
            .transform_down(|e| {
                let faster = match dictionaries && self.per_distinct_value(&e)? {
                    true => Some(Arc::new(Wrapped::new(
                        Arc::clone(&e),
                        PerDistinctValue::try_new(&e)?,
                    )) as Arc<dyn PhysicalExpr>),
                    false => ShortEq::wrap(&e, &self.file_schema),
                };
                Ok(match faster {
                    Some(f) => Transformed::new(f, true, TreeNodeRecursion::Jump),
                    None => Transformed::no(e),
                })
            })
            .data()?;
        Ok(self.selectivity.order(expr))
    }
}

impl ScanFilterAdapter {
    /// Whether `expr` is a filter that may be evaluated per distinct value: a boolean function
    /// of one dictionary-read column and constants, the same for the same value every time.
    fn per_distinct_value(&self, expr: &Arc<dyn PhysicalExpr>) -> Result<bool> {
        if expr.downcast_ref::<Column>().is_some() || expr.children().is_empty() {
            return Ok(false);
        }
        // One walk, stopped at the first node that rules the expression out: a second column,
        // a volatile function, or a dynamic filter (from a join or a top-k), which changes while
        // the scan runs.
        let mut column: Option<&Column> = None;
        let mut eligible = true;
        expr.apply(|node| {
            if let Some(c) = node.downcast_ref::<Column>() {
                eligible &= column.is_none_or(|seen| seen == c);
                column = Some(c);
            } else if node.is_volatile_node() || node.snapshot()?.is_some() {
                eligible = false;
            }
            Ok(match eligible {
                true => TreeNodeRecursion::Continue,
                false => TreeNodeRecursion::Stop,
            })
        })?;
        let dictionary = |c: &Column| {
            self.file_schema
                .fields()
                .get(c.index())
                .is_some_and(|f| f.name() == c.name() && f.data_type() == &dictionary_type())
        };
        Ok(eligible
            && column.is_some_and(dictionary)
            && matches!(expr.data_type(&self.file_schema), Ok(DataType::Boolean)))
    }
}

/// How a filter over one dictionary-read column is evaluated: on the column's distinct values
/// (and on null), then looked up by each row's key.
#[derive(Debug)]
pub(crate) struct PerDistinctValue {
    /// The one column it reads.
    column: Column,
    /// The filter over a batch holding only that column.
    on_values: Arc<dyn PhysicalExpr>,
    /// The answers for the last dictionary seen: the batches of a column chunk share its
    /// dictionary, so it is evaluated once per file rather than once per batch.
    last: Mutex<Option<(ArrayRef, BooleanArray)>>,
}

impl PerDistinctValue {
    fn try_new(filter: &Arc<dyn PhysicalExpr>) -> Result<Self> {
        let columns = collect_columns(filter);
        let Some(column) = columns.into_iter().next() else {
            return internal_err!("a per-value filter reads no column: {filter}");
        };
        let on_values = Arc::clone(filter)
            .transform(|e| {
                Ok(match e.downcast_ref::<Column>() {
                    Some(c) => Transformed::yes(Arc::new(Column::new(c.name(), 0)) as _),
                    None => Transformed::no(e),
                })
            })
            .data()?;
        Ok(Self {
            column,
            on_values,
            last: Mutex::new(None),
        })
    }
}

impl Evaluation for PerDistinctValue {
    const LABEL: &'static str = " per distinct value";

    fn evaluate(
        &self,
        filter: &Arc<dyn PhysicalExpr>,
        batch: &RecordBatch,
    ) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        let array = self.column.evaluate(batch)?.into_array(rows)?;
        let Some(dictionary) = array.as_dictionary_opt::<Int32Type>() else {
            return filter.evaluate(batch);
        };
        let distinct = dictionary.values().len();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let answers = match &*last {
            Some((values, answers)) if Arc::ptr_eq(values, dictionary.values()) => answers,
            // A dictionary the Parquet reader built itself (the file's fell back to plain
            // values) may hold as many values as there are rows: evaluating it would not pay.
            _ if distinct >= rows => return filter.evaluate(batch),
            _ => {
                let answers = self.per_entry(filter, dictionary, distinct)?;
                &last.insert((Arc::clone(dictionary.values()), answers)).1
            }
        };
        Ok(ColumnarValue::Array(Arc::new(by_key(
            answers,
            dictionary.keys(),
        ))))
    }

    fn for_filter(&self, filter: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        Self::try_new(filter).ok()
    }
}

impl PerDistinctValue {
    /// The filter's answer for each distinct value of `dictionary`, then for null (at
    /// `distinct`).
    fn per_entry(
        &self,
        filter: &Arc<dyn PhysicalExpr>,
        dictionary: &DictionaryArray<Int32Type>,
        distinct: usize,
    ) -> Result<BooleanArray> {
        let keys: Int32Array = (0..distinct as i32)
            .map(Some)
            .chain(std::iter::once(None))
            .collect();
        let entries: ArrayRef = Arc::new(DictionaryArray::<Int32Type>::try_new(
            keys,
            Arc::clone(dictionary.values()),
        )?);
        let schema = Schema::new(vec![Field::new(
            self.column.name(),
            entries.data_type().clone(),
            true,
        )]);
        let entries = RecordBatch::try_new(Arc::new(schema), vec![entries])?;
        let answers = self
            .on_values
            .evaluate(&entries)?
            .into_array(distinct + 1)?;
        match answers.as_boolean_opt() {
            Some(answers) => Ok(answers.clone()),
            None => internal_err!("filter {filter} gave {}", answers.data_type()),
        }
    }
}

/// Each row's answer, looked up by its key in `answers` (one per distinct value, then the answer
/// for null). Two passes over the keys at most, both without branches.
fn by_key(answers: &BooleanArray, keys: &Int32Array) -> BooleanArray {
    let distinct = answers.len() - 1;
    let key = keys.values();
    let lookup = |table: &[bool]| {
        // A key under a null is whatever the reader left there: any in-range value will do.
        BooleanBuffer::collect_bool(keys.len(), |i| table[(key[i] as usize).min(distinct)])
    };
    // Rows with a null key take the answer for null.
    let with_nulls = |by_key: BooleanBuffer, for_null: bool| match keys.nulls() {
        None => by_key,
        Some(valid) if for_null => &by_key | &!valid.inner(),
        Some(valid) => &by_key & valid.inner(),
    };
    let value: Vec<bool> = (0..=distinct).map(|e| answers.values().value(e)).collect();
    let values = with_nulls(lookup(&value), value[distinct]);
    let nulls = match answers.nulls() {
        None => None,
        // The usual case: every value has an answer and null has none (`resource = 'x'`).
        Some(answered) if answered.null_count() == 1 && answered.is_null(distinct) => {
            keys.nulls().cloned()
        }
        Some(answered) => {
            let valid: Vec<bool> = (0..=distinct).map(|e| answered.is_valid(e)).collect();
            Some(NullBuffer::new(with_nulls(lookup(&valid), valid[distinct])))
        }
    };
    BooleanArray::new(values, nulls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::{FEW_VALUED_EVENT_COLUMNS, LakeWriter};
    use arrow::array::Int64Array;
    use auditlake_schema::{Decoder, events_schema};
    use datafusion::catalog::MemTable;
    use datafusion::physical_expr::expressions::{BinaryExpr, lit};
    use datafusion::prelude::SessionContext;

    /// Every sample log, decoded into one batch.
    fn sample_events() -> RecordBatch {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-logs");
        let mut decoder = Decoder::new(None);
        let mut rejected = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("sample logs") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "log") {
                for line in std::fs::read_to_string(&path).expect("log").lines() {
                    decoder.decode(line.as_bytes(), &mut rejected);
                }
            }
        }
        assert!(rejected.is_empty(), "{rejected:?}");
        decoder.finish()
    }

    fn count(batches: &[RecordBatch]) -> i64 {
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a count")
            .value(0)
    }

    /// Filters over the dictionary-read columns of a lake give the rows the same filters give
    /// over the same events held as plain strings: comparisons, nulls, negations, patterns,
    /// functions, filters over two columns and over one column and others.
    #[test]
    fn filters_on_dictionary_read_columns_keep_the_rows_they_keep_over_strings() {
        let events = sample_events();
        assert!(events.num_rows() > 150, "{} events", events.num_rows());
        let dir = tempfile::tempdir().expect("tempdir");
        let mut lake = LakeWriter::open(dir.path()).expect("lake");
        lake.append(&events).expect("append");
        lake.flush().expect("flush");
        drop(lake);
        let strings = SessionContext::new();
        let table = MemTable::try_new(events.schema(), vec![vec![events]]).expect("table");
        strings
            .register_table("events", Arc::new(table))
            .expect("register");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");

        // Sessions that keep footers read them whole; one-off ones only the statistics of the
        // filtered columns.
        for (kind, engine) in crate::query::tests::both_kinds(dir.path()) {
            for filter in [
                "resource = 'secrets'",
                "resource <> 'pods'",
                "resource IS NULL",
                "resource IS NOT NULL",
                "NOT (resource = 'pods')",
                "resource IN ('pods', 'secrets', 'configmaps')",
                "resource NOT IN ('pods', 'secrets')",
                "user_name LIKE 'system:serviceaccount:%'",
                "user_name NOT LIKE 'system:%'",
                "coalesce(namespace, 'cluster-wide') = 'cluster-wide'",
                "upper(verb) = 'LIST'",
                "namespace > 'kube'",
                "verb = 'list' AND resource = 'secrets'",
                "resource = 'pods' OR verb = 'create'",
                "(verb = 'get') IS NOT TRUE",
                "resource = namespace",
                "stage = 'ResponseComplete' AND response_code >= 400",
                "user_agent LIKE 'kubectl%' AND namespace IS NOT NULL",
                // Columns read as strings, compared with short texts by view.
                "subresource = 'status'",
                "'log' = subresource AND resource = 'pods'",
                "NOT (subresource = 'exec')",
                "subresource = ''",
            ] {
                let sql = format!("SELECT count(*) FROM events WHERE {filter}");
                let lake = rt.block_on(engine.query(&sql)).expect("lake query");
                let expected = rt
                    .block_on(async { strings.sql(&sql).await?.collect().await })
                    .expect("string query");
                assert_eq!(count(&lake.batches), count(&expected), "{filter} ({kind})");
            }

            // The filtered columns a query also returns come back as the strings they are.
            let sql = "SELECT verb, resource, count(*) AS n FROM events \
                   WHERE verb <> 'get' AND resource IS NOT NULL \
                   GROUP BY verb, resource ORDER BY verb, resource";
            let lake = rt.block_on(engine.query(sql)).expect("lake query");
            let expected = rt
                .block_on(async { strings.sql(sql).await?.collect().await })
                .expect("string query");
            let text = |b: &[RecordBatch]| {
                arrow::util::pretty::pretty_format_batches(b)
                    .expect("table")
                    .to_string()
            };
            assert!(lake.batches.iter().map(|b| b.num_rows()).sum::<usize>() > 3);
            assert_eq!(text(&lake.batches), text(&expected), "{kind}");

            // Row groups are still pruned by the statistics of a dictionary-read column, in a
            // scan that checks statistics (one bounded in time): no stored resource sorts after
            // `zzz`, so no byte of any file is read.
            let sql = "EXPLAIN ANALYZE SELECT count(*) FROM events \
                       WHERE resource = 'zzz' AND event_time > '2000-01-01T00:00:00Z'";
            let plan = rt.block_on(engine.query(sql)).expect("explain");
            let text = arrow::util::pretty::pretty_format_batches(&plan.batches)
                .expect("plan")
                .to_string();
            assert!(text.contains("bytes_scanned=0,"), "{kind}: {text}");
            assert!(text.contains("total → 0 matched"), "{kind}: {text}");
        }
    }

    /// A filter over one dictionary-read column is evaluated per distinct value; one over two
    /// columns is left as DataFusion adapted it, and one over a column read as strings is
    /// compared by view.
    #[test]
    fn only_filters_over_one_dictionary_read_column_are_evaluated_per_value() {
        let logical =
            crate::retype::strings_as(&events_schema(), &DataType::Utf8, &DataType::Utf8View);
        let physical = with_dictionaries(&logical, FEW_VALUED_EVENT_COLUMNS);
        let adapter = ScanFilters::default()
            .create(Arc::clone(&logical), Arc::clone(&physical))
            .expect("adapter");
        let column = |name: &str| -> Arc<dyn PhysicalExpr> {
            Arc::new(Column::new(name, logical.index_of(name).expect("column")))
        };
        let eq = |l, r| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(
                l,
                datafusion::logical_expr::Operator::Eq,
                r,
            ))
        };
        let text = |s: &str| lit(datafusion::common::ScalarValue::Utf8View(Some(s.into())));
        let per_value =
            |e: &Arc<dyn PhysicalExpr>| e.downcast_ref::<Wrapped<PerDistinctValue>>().is_some();

        let one = adapter
            .rewrite(eq(column("resource"), text("secrets")))
            .expect("rewrite");
        assert!(per_value(&one), "{one}");
        let two = adapter
            .rewrite(eq(column("resource"), column("namespace")))
            .expect("rewrite");
        assert!(!per_value(&two), "{two}");
        let strings = adapter
            .rewrite(eq(column("subresource"), text("exec")))
            .expect("rewrite");
        assert!(!per_value(&strings), "{strings}");
        assert!(
            strings.downcast_ref::<Wrapped<ShortEq>>().is_some(),
            "{strings}"
        );
        let both = adapter
            .rewrite(Arc::new(BinaryExpr::new(
                eq(column("verb"), text("list")),
                datafusion::logical_expr::Operator::And,
                eq(column("resource"), text("secrets")),
            )))
            .expect("rewrite");
        assert!(!per_value(&both), "{both}");
        // Each conjunct is per distinct value, under the counter that orders the conjuncts.
        assert_eq!(
            both.children()
                .iter()
                .filter(|c| c.children().first().is_some_and(|f| per_value(f)))
                .count(),
            2,
            "{both}"
        );
    }
}
