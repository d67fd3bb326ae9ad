//! Alerts as rows of the `alerts` table.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::take;
use auditlake_schema::alerts_schema;
use auditlake_schema::columns::{column, event};
use auditlake_schema::time::now_micros;

use super::{Hit, RuleEngine};
use crate::error::Result;
use crate::format::RuleDef;

impl RuleEngine {
    /// One row per hit: the rule's facts, the event's, the rendered message and the evidence.
    #[allow(clippy::type_complexity)]
    pub(super) fn build<'a>(&'a self, batch: &RecordBatch, hits: &'a [Hit]) -> Result<RecordBatch> {
        let schema = alerts_schema();
        if hits.is_empty() {
            return Ok(RecordBatch::new_empty(schema));
        }
        let rows = UInt32Array::from(hits.iter().map(|h| h.row).collect::<Vec<_>>());
        let copied = |name: &str| -> Result<ArrayRef> {
            Ok(take(column(batch, name).as_ref(), &rows, None)?)
        };
        let rule = |h: &Hit| -> &'a RuleDef { &self.rules[h.rule].def };
        // Borrowed values: a busy hour raises tens of thousands of alerts.
        let strings = |f: &dyn Fn(&'a Hit) -> &'a str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(hits.iter().map(f)))
        };
        // Hands each value of one list column of an alert (its tags, say) to `add`.
        let lists = |f: &dyn Fn(&'a Hit, &mut dyn FnMut(&str))| -> ArrayRef {
            let mut b = ListBuilder::new(StringBuilder::new());
            for h in hits {
                f(h, &mut |v| b.values().append_value(v));
                b.append(true);
            }
            Arc::new(b.finish())
        };
        let now = now_micros();
        let mut messages = StringBuilder::new();
        let mut message = String::new();
        for h in hits {
            message.clear();
            let output = &self.rules[h.rule].output;
            output.render_into(&mut message, batch, h.row as usize, h.count);
            message.push_str(&h.note);
            messages.append_value(&message);
        }
        let columns: Vec<ArrayRef> = vec![
            strings(&|h| &h.alert_id),
            strings(&|h| &rule(h).id),
            strings(&|h| &rule(h).title),
            strings(&|h| &rule(h).severity),
            strings(&|h| &rule(h).category),
            lists(&|h, add| rule(h).mitre.iter().for_each(|m| add(m))),
            copied(event::CLUSTER)?,
            copied(event::AUDIT_ID)?,
            copied(event::EVENT_TIME)?,
            copied(event::USER_NAME)?,
            copied(event::SOURCE_IP)?,
            copied(event::USER_AGENT)?,
            copied(event::VERB)?,
            copied(event::RESOURCE)?,
            copied(event::SUBRESOURCE)?,
            copied(event::NAMESPACE)?,
            copied(event::NAME)?,
            Arc::new(messages.finish()),
            lists(&|h, add| {
                let compiled = &self.rules[h.rule];
                let tags = &rule(h).tags;
                tags.iter().for_each(|t| add(t));
                let kind = if compiled.first_seen.is_some() {
                    Some("first-seen")
                } else if compiled.sequence.is_some() {
                    Some("sequence")
                } else {
                    None
                };
                if let Some(kind) = kind
                    && !tags.iter().any(|t| t == kind)
                {
                    add(kind);
                }
            }),
            Arc::new(Int64Array::from(
                hits.iter().map(|h| h.count).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMicrosecondArray::from(vec![now; hits.len()]).with_timezone("UTC")),
            lists(&|h, add| h.evidence.iter().for_each(|e| add(e))),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}
