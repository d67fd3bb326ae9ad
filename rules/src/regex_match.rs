//! [`RegexMatch`]: `text ~ 'pattern'` (and `~*`, `!~`, `!~*`, `regexp_like(text, 'pattern')`)
//! with the pattern compiled once, when the rule is. Arrow compiles a constant pattern again on
//! every batch, which for the rule pack's long alternations of tool names and paths cost more
//! than matching: about half a millisecond per pattern per batch, whatever the batch held.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, Operator};
use datafusion::physical_expr::expressions::{BinaryExpr, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use regex::{Regex, RegexBuilder};

/// A text expression matched against a pattern compiled once.
#[derive(Debug)]
pub(crate) struct RegexMatch {
    text: Arc<dyn PhysicalExpr>,
    pattern: String,
    case_insensitive: bool,
    negated: bool,
    regex: Regex,
}

impl RegexMatch {
    /// `e` with its pattern compiled, when `e` matches a text against a constant pattern;
    /// `None` otherwise, or when the pattern does not compile (DataFusion then reports it).
    pub(crate) fn compile(e: &Arc<dyn PhysicalExpr>) -> Option<Arc<dyn PhysicalExpr>> {
        let (text, pattern, case_insensitive, negated) =
            if let Some(b) = e.downcast_ref::<BinaryExpr>() {
                let (case_insensitive, negated) = match b.op() {
                    Operator::RegexMatch => (false, false),
                    Operator::RegexIMatch => (true, false),
                    Operator::RegexNotMatch => (false, true),
                    Operator::RegexNotIMatch => (true, true),
                    _ => return None,
                };
                (b.left(), b.right(), case_insensitive, negated)
            } else if let Some(f) = e.downcast_ref::<ScalarFunctionExpr>() {
                match f.args() {
                    [text, pattern] if f.name() == "regexp_like" => (text, pattern, false, false),
                    _ => return None,
                }
            } else {
                return None;
            };
        let pattern = match pattern.downcast_ref::<Literal>()?.value() {
            ScalarValue::Utf8(Some(p))
            | ScalarValue::LargeUtf8(Some(p))
            | ScalarValue::Utf8View(Some(p)) => p.clone(),
            _ => return None,
        };
        let regex = RegexBuilder::new(&pattern)
            .case_insensitive(case_insensitive)
            .build()
            .ok()?;
        Some(Arc::new(Self {
            text: Arc::clone(text),
            pattern,
            case_insensitive,
            negated,
            regex,
        }))
    }

    fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text) != self.negated
    }
}

impl PartialEq for RegexMatch {
    fn eq(&self, other: &Self) -> bool {
        self.text.eq(&other.text)
            && self.pattern == other.pattern
            && self.case_insensitive == other.case_insensitive
            && self.negated == other.negated
    }
}

impl Eq for RegexMatch {}

impl Hash for RegexMatch {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
        self.pattern.hash(state);
        self.case_insensitive.hash(state);
        self.negated.hash(state);
    }
}

impl fmt::Display for RegexMatch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let op = match (self.negated, self.case_insensitive) {
            (false, false) => "~",
            (false, true) => "~*",
            (true, false) => "!~",
            (true, true) => "!~*",
        };
        write!(f, "{} {op} {:?}", self.text, self.pattern)
    }
}

impl PhysicalExpr for RegexMatch {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.text.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let text = match self.text.evaluate(batch)? {
            ColumnarValue::Scalar(s) => {
                let matched = match &s {
                    ScalarValue::Utf8(t) | ScalarValue::LargeUtf8(t) | ScalarValue::Utf8View(t) => {
                        t.as_deref().map(|t| self.matches(t))
                    }
                    _ if s.is_null() => None,
                    other => return exec_err!("{} is {}, not text", self.text, other.data_type()),
                };
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(matched)));
            }
            ColumnarValue::Array(a) if a.data_type() == &DataType::Utf8 => a,
            ColumnarValue::Array(a) => cast(&a, &DataType::Utf8)?,
        };
        let text = text.as_string::<i32>();
        let matched: BooleanArray = text.iter().map(|t| t.map(|t| self.matches(t))).collect();
        Ok(ColumnarValue::Array(Arc::new(matched)))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.text]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let Some(text) = children.into_iter().next() else {
            return exec_err!("a regex match takes one child");
        };
        Ok(Arc::new(Self {
            text,
            pattern: self.pattern.clone(),
            case_insensitive: self.case_insensitive,
            negated: self.negated,
            regex: self.regex.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
