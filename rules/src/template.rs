//! `output` templates: `{column}` placeholders filled from the event that fired, and `{count}`.

use arrow::array::RecordBatch;
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

    /// Renders the template for one row of an `events` batch; nulls render as `-`.
    pub(crate) fn render(&self, batch: &RecordBatch, row: usize, count: i64) -> String {
        let options = FormatOptions::default().with_null("-");
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Count => out.push_str(&count.to_string()),
                Part::Column(i) => {
                    match ArrayFormatter::try_new(batch.column(*i).as_ref(), &options) {
                        Ok(f) => out.push_str(&f.value(row).to_string()),
                        Err(_) => out.push('?'),
                    }
                }
            }
        }
        out
    }
}
