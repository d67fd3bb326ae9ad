//! `output` templates: `{column}` placeholders filled from the event that fired, and `{count}`.

use std::fmt::Write;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// A parsed template: literal text and column indices, alternating.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Column(usize),
    /// `{count}`: events behind the alert (1 unless a threshold rule).
    Count,
}

impl Template {
    /// Parses `text`, resolving placeholders against the `events` columns.
    pub(crate) fn parse(
        text: &str,
        column_index: impl Fn(&str) -> Option<usize>,
    ) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("output: unclosed {{ in {text:?}"))?
                + open;
            let name = rest[open + 1..close].trim();
            if name == "count" {
                parts.push(Part::Count);
            } else {
                let index = column_index(name)
                    .ok_or_else(|| format!("output: unknown column {{{name}}}"))?;
                parts.push(Part::Column(index));
            }
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Appends the template rendered for one row of an `events` batch to `out`; nulls render
    /// as `-`.
    pub(crate) fn render_into(
        &self,
        out: &mut String,
        batch: &RecordBatch,
        row: usize,
        count: i64,
    ) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Count => {
                    let _ = write!(out, "{count}");
                }
                Part::Column(i) => push_value(out, batch.column(*i), row),
            }
        }
    }
}

/// Appends one value as text: strings as they are, other types as Arrow displays them.
fn push_value(out: &mut String, values: &ArrayRef, row: usize) {
    if values.is_null(row) {
        out.push('-');
    } else if let Some(text) = values.as_string_opt::<i32>() {
        out.push_str(text.value(row));
    } else {
        let options = FormatOptions::default().with_null("-");
        match ArrayFormatter::try_new(values.as_ref(), &options) {
            Ok(f) => {
                let _ = write!(out, "{}", f.value(row));
            }
            Err(_) => out.push('?'),
        }
    }
}
