//! [`PerValue`]: a condition on one column evaluated once per distinct value of that column
//! instead of once per row. Most conditions test the low-cardinality columns (`verb IN (...)`,
//! `user_agent ~* '^(curl|python|...)'`, the dozen `LIKE`s of `system_principal` on
//! `user_name`); a batch of 16k events holds a few dozen distinct verbs or user agents, so each
//! such test runs a few dozen times and is then looked up by key for every row.

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Int32Array, RecordBatch,
};
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
    /// Lookups already done, shared with the other tests of the same engine.
    lookups: Arc<Lookups>,
}

/// Dictionary arrays whose lookups are remembered at most: a batch has a dozen.
const LOOKUP_KEYS: usize = 16;

/// Rows already looked up, shared by the [`PerValue`]s of one engine. Many tests give the same
/// answers per value (`resource = 'pods'` is in a dozen rules, and `verb IN (...)` in most), so
/// each (keys, answers) pair is looked up once per batch and the rest reuse it.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    /// Per dictionary array (held, so that its buffers are never another array's while
    /// remembered), the answers per value looked up in it and the rows they gave; oldest first.
    done: Mutex<Vec<Done>>,
}

/// The lookups done in one dictionary array.
#[derive(Debug)]
struct Done {
    dictionary: DictionaryArray<Int32Type>,
    /// Answers per value, and the rows they gave.
    answers: Vec<(BooleanBuffer, BooleanBuffer)>,
}

impl Lookups {
    /// `answers` looked up by the keys of `dictionary`, or what the same lookup gave before.
    fn rows(
        &self,
        answers: &BooleanArray,
        dictionary: &DictionaryArray<Int32Type>,
    ) -> BooleanBuffer {
        let keys = dictionary.keys();
        let same = |d: &DictionaryArray<Int32Type>| {
            let k = d.keys();
            k.len() == keys.len()
                && k.offset() == keys.offset()
                && k.values().inner().as_ptr() == keys.values().inner().as_ptr()
                && k.nulls() == keys.nulls()
                && Arc::ptr_eq(d.values(), dictionary.values())
        };
        let Ok(mut done) = self.done.lock() else {
            return look_up(answers, keys);
        };
        let at = match done.iter().position(|d| same(&d.dictionary)) {
            Some(at) => at,
            None => {
                if done.len() == LOOKUP_KEYS {
                    done.remove(0);
                }
                done.push(Done {
                    dictionary: dictionary.clone(),
                    answers: Vec::new(),
                });
                done.len() - 1
            }
        };
        let remembered = &mut done[at].answers;
        if let Some((_, rows)) = remembered.iter().find(|(a, _)| a == answers.values()) {
            return rows.clone();
        }
        let rows = look_up(answers, keys);
        remembered.push((answers.values().clone(), rows.clone()));
        rows
    }
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
        lookups: &Arc<Lookups>,
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
            lookups: Arc::clone(lookups),
        }))
    }
}

impl fmt::Display for PerValue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "per value of {}: {}", self.dictionary, self.condition)
    }
}

/// Each row's answer: `answers[key]`, or the last answer (the null value's) where the key is null.
///
/// The answers are spread to one byte each in a table whose length is a power of two, so each
/// row is one masked load and no bounds check: this runs for every row of a batch for each of
/// the hundred-odd tests of the pack.
fn look_up(answers: &BooleanArray, keys: &Int32Array) -> BooleanBuffer {
    let len = answers.len().next_power_of_two();
    let mask = len - 1;
    let mut table = vec![0u8; len];
    for (slot, answer) in table.iter_mut().zip(answers.values()) {
        *slot = u8::from(answer);
    }
    let table = &table[..=mask];
    let mut words = Vec::with_capacity(keys.len().div_ceil(64));
    for chunk in keys.values().chunks(64) {
        let mut word = 0u64;
        for (bit, key) in chunk.iter().enumerate() {
            word |= u64::from(table[*key as usize & mask]) << bit;
        }
        words.push(word);
    }
    let looked_up = BooleanBuffer::new(words.into(), 0, keys.len());
    match keys.nulls() {
        // A null key's slot holds any value: its rows take the null value's answer instead.
        Some(nulls) => {
            let null_answer = answers.values().value(answers.len() - 1);
            match null_answer {
                true => &looked_up | &!nulls.inner(),
                false => &looked_up & nulls.inner(),
            }
        }
        None => looked_up,
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
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(
            self.lookups.rows(answers, dictionary),
            None,
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
            lookups: Arc::clone(&self.lookups),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.condition.fmt_sql(f)
    }
}
