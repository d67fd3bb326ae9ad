//! How a rule's condition is rewritten before it runs, each rewrite keeping which rows it is
//! true on: patterns compiled once, `IS TRUE` pushed down so `AND` and `OR` can short-circuit,
//! and tests of one low-cardinality column evaluated per distinct value.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal, NotExpr};
use datafusion::physical_expr::utils::collect_columns;

use crate::per_value::{Lookups, PerValue};
use crate::regex_match::RegexMatch;

/// `condition` with each match against a constant pattern compiled once.
pub(crate) fn compiled_regexes(condition: &Arc<dyn PhysicalExpr>) -> Arc<dyn PhysicalExpr> {
    Arc::clone(condition)
        .transform_up(|e| {
            Ok(match RegexMatch::compile(&e) {
                Some(compiled) => Transformed::yes(compiled),
                None => Transformed::no(e),
            })
        })
        .expect("the rewrite itself never fails")
        .data
}

/// `condition IS TRUE`, never null, with `IS TRUE` pushed down through `AND`, `OR` and `NOT` to
/// the comparisons that can be null. A rule matches where its condition is true, so null and
/// false mean the same at the top, and there this is the same condition. DataFusion skips the
/// right side of an `AND` where the left side is false, or evaluates it on only the rows where
/// the left is true when they are few, but only when the left side has no nulls: one null
/// `resource` in a batch made `resource = 'certificatesigningrequests' AND ...` read every
/// request body.
pub(crate) fn is_true(condition: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Arc<dyn PhysicalExpr> {
    truth(condition, true, schema)
}

/// `e IS TRUE` (`want`) or `e IS FALSE` (`!want`), never null.
fn truth(e: &Arc<dyn PhysicalExpr>, want: bool, schema: &Schema) -> Arc<dyn PhysicalExpr> {
    if let Some(not) = e.downcast_ref::<NotExpr>() {
        return truth(not.arg(), !want, schema);
    }
    if let Some(b) = e.downcast_ref::<BinaryExpr>() {
        let both = |op| -> Arc<dyn PhysicalExpr> {
            let left = truth(b.left(), want, schema);
            Arc::new(BinaryExpr::new(left, op, truth(b.right(), want, schema)))
        };
        let is_bool = |e: &Arc<dyn PhysicalExpr>| {
            e.downcast_ref::<Literal>().and_then(|l| match l.value() {
                ScalarValue::Boolean(Some(v)) => Some(*v),
                _ => None,
            })
        };
        match (b.op(), is_bool(b.right())) {
            // (a AND b) IS TRUE = a IS TRUE AND b IS TRUE; (a AND b) IS FALSE = a IS FALSE OR
            // b IS FALSE; the same for OR the other way round.
            (Operator::And, _) => return both(if want { Operator::And } else { Operator::Or }),
            (Operator::Or, _) => return both(if want { Operator::Or } else { Operator::And }),
            // What `IS TRUE` and `IS FALSE` plan to.
            (Operator::IsNotDistinctFrom, Some(v)) => {
                let inner = truth(b.left(), v, schema);
                return if want {
                    inner
                } else {
                    Arc::new(NotExpr::new(inner))
                };
            }
            _ => {}
        }
    }
    match (e.nullable(schema).unwrap_or(true), want) {
        (false, true) => Arc::clone(e),
        (false, false) => Arc::new(NotExpr::new(Arc::clone(e))),
        (true, want) => Arc::new(BinaryExpr::new(
            Arc::clone(e),
            Operator::IsNotDistinctFrom,
            Arc::new(Literal::new(ScalarValue::Boolean(Some(want)))),
        )),
    }
}

/// `condition` with each largest part that is boolean and reads one `candidate` column only
/// evaluated per distinct value of that column's dictionary, where `dictionary` gives one.
pub(crate) fn per_value(
    condition: &Arc<dyn PhysicalExpr>,
    schema: &Schema,
    candidate: &dyn Fn(usize) -> bool,
    dictionary: &mut dyn FnMut(usize) -> Option<Column>,
    lookups: &Arc<Lookups>,
) -> Arc<dyn PhysicalExpr> {
    Arc::clone(condition)
        .transform_down(|e| {
            let columns = collect_columns(&e);
            let Some(column) = columns.iter().next().map(Column::index) else {
                return Ok(Transformed::no(e));
            };
            let single = columns.len() == 1 && candidate(column);
            let boolean = e.data_type(schema).is_ok_and(|t| t == DataType::Boolean);
            if !single || !boolean || e.downcast_ref::<Column>().is_some() {
                return Ok(Transformed::no(e));
            }
            // The largest such part: its own parts are not looked at.
            let wrapped = dictionary(column).and_then(|d| PerValue::wrap(&e, column, d, lookups));
            Ok(match wrapped {
                Some(w) => Transformed::new(w, true, TreeNodeRecursion::Jump),
                None => Transformed::new(e, false, TreeNodeRecursion::Jump),
            })
        })
        .expect("the rewrite itself never fails")
        .data
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::{
        Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray,
    };
    use arrow::compute::cast;
    use arrow::datatypes::Field;
    use datafusion::common::DFSchema;

    use super::*;
    use crate::all_of::{AllOf, conjunctions};
    use crate::eval::dictionary_type;

    /// Where `values` is true (not null), as a boolean array without nulls.
    pub(crate) fn true_bits(values: &ArrayRef) -> BooleanArray {
        let values = values.as_boolean();
        (0..values.len())
            .map(|i| Some(values.is_valid(i) && values.value(i)))
            .collect()
    }

    /// Every combination of null and a few values in `a`, `b` (text) and `n`.
    fn combinations() -> RecordBatch {
        let texts = [None, Some("x"), Some("y"), Some("sys:z"), Some("")];
        let numbers = [None, Some(1), Some(500)];
        let (mut a, mut b, mut n) = (Vec::new(), Vec::new(), Vec::new());
        for x in texts {
            for y in texts {
                for z in numbers {
                    a.push(x);
                    b.push(y);
                    n.push(z);
                }
            }
        }
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(a)),
            Arc::new(StringArray::from(b)),
            Arc::new(Int64Array::from(n)),
        ];
        RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
    }

    /// `sql` planned over `schema` as DataFusion plans it, before any rewrite.
    fn planned(sql: &str, schema: &Schema) -> Arc<dyn PhysicalExpr> {
        let df_schema = DFSchema::try_from(schema.clone()).expect("schema");
        let ctx = crate::compile::session(&crate::ip::IpLists::default());
        let logical = ctx.parse_sql_expr(sql, &df_schema).expect(sql);
        ctx.create_physical_expr(logical, &df_schema).expect(sql)
    }

    #[test]
    fn rewritten_conditions_are_true_where_the_plain_ones_are() {
        let batch = combinations();
        let schema = batch.schema();
        // The batch with `a` and `b` dictionary-encoded after its columns.
        let mut columns = batch.columns().to_vec();
        let mut fields = schema.fields().to_vec();
        for c in [0, 1] {
            columns.push(cast(batch.column(c), &dictionary_type()).expect("cast"));
            fields.push(Arc::new(Field::new(
                format!("d{c}"),
                dictionary_type(),
                true,
            )));
        }
        let extended =
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("extended");
        let conditions = [
            "a = 'x' AND b = 'y'",
            "NOT (a = 'x' AND b LIKE 'sys:%')",
            "NOT (a = 'x' OR n > 100)",
            "(a ~ '^s') IS FALSE OR NOT b IN ('x', 'y')",
            "NOT ((a = 'x') IS TRUE) AND NOT (b ~* 'Y')",
            "regexp_like(a, 'x|z') OR n IS NULL",
            "a !~* '^SYS' AND NOT (n < 5)",
            "NOT (a IS NULL OR b !~ 'x') AND (n = 1) IS NOT FALSE",
            "NOT (NOT (a = '' AND NOT b = 'x') OR n = 500)",
            "a = b OR (a LIKE '%z' AND b ~ '^$')",
        ];
        // Conjunctions with a costly test (of two columns): after cheap tests selecting few
        // rows, so it runs on those only; first, so it moves last; after a costly `OR`.
        let conjunctions_with_costly_tests = [
            "a = 'x' AND b = 'y' AND n = 500 AND a || b = 'xy'",
            "a || b LIKE '%y' AND n > 1 AND NOT a = 'x'",
            "a = 'sys:z' AND (a < b OR b IS NULL) AND n IS NOT NULL",
        ];
        for sql in conditions.iter().chain(&conjunctions_with_costly_tests) {
            let plain = planned(sql, &schema);
            let expected = plain.evaluate(&batch).expect(sql);
            let expected = expected.into_array(batch.num_rows()).expect(sql);
            let rewritten = is_true(&compiled_regexes(&plain), &schema);
            let rewritten = per_value(
                &rewritten,
                &schema,
                &|c| c < 2,
                &mut |c| Some(Column::new(&format!("d{c}"), 3 + c)),
                &Arc::default(),
            );
            let rewritten = conjunctions(&rewritten);
            if conjunctions_with_costly_tests.contains(sql) {
                assert!(rewritten.downcast_ref::<AllOf>().is_some(), "{rewritten}");
            }
            let got = rewritten.evaluate(&extended).expect(sql);
            let got = got.into_array(batch.num_rows()).expect(sql);
            assert_eq!(got.null_count(), 0, "{sql}");
            assert_eq!(
                &true_bits(&expected),
                got.as_boolean(),
                "{sql}: {rewritten}"
            );
        }
    }

    #[test]
    fn constant_patterns_are_compiled_once_and_single_column_tests_run_per_value() {
        let schema = combinations().schema();
        let plain = planned("a ~* '^SYS' AND b LIKE 'x%' AND n > 1", &schema);
        let compiled = compiled_regexes(&plain);
        let mut found = 0;
        compiled
            .apply(|e| {
                found += usize::from(e.downcast_ref::<RegexMatch>().is_some());
                Ok(TreeNodeRecursion::Continue)
            })
            .expect("walks");
        assert_eq!(found, 1, "{compiled}");
        let mut asked = Vec::new();
        let wrapped = per_value(
            &is_true(&compiled, &schema),
            &schema,
            &|c| c < 2,
            &mut |c| {
                asked.push(c);
                Some(Column::new(&format!("d{c}"), 3 + c))
            },
            &Arc::default(),
        );
        // `a`'s test and `b`'s, not `n`'s (not a candidate) nor the whole (three columns).
        assert_eq!(asked, [0, 1], "{wrapped}");
    }
}
