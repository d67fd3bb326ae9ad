//! [`RuleEngine`]: evaluates every enabled rule on each `events` batch and builds the `alerts`
//! batch. It keeps two kinds of state: which (rule, cluster, audit ID) already alerted, so a
//! request logged at several stages alerts once, and the open threshold windows.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray, UInt32Array,
};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use auditlake_schema::alerts_schema;
use auditlake_schema::columns::{column, event};
use auditlake_schema::time::now_micros;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::collect_columns;
use xxhash_rust::xxh3::{Xxh3, Xxh3DefaultBuilder, xxh3_64, xxh3_128, xxh3_128_with_seed};

use crate::all_of::conjunctions;
use crate::compile::{CompiledPack, CompiledRule, Threshold};
use crate::dictionary;
use crate::error::{Error, Result};
use crate::rewrite::{compiled_regexes, is_true, per_value};

/// Open windows beyond which the newest half is kept even if all are recent. Windows are not
/// dropped by time alone: events arrive out of order (Kafka partitions consumed at different
/// paces, a backfill from the earliest offset), and a window dropped while its late events are
/// still coming never fires.
const WINDOWS_LIMIT: usize = 1 << 16;
/// Pruning windows older than [`KEEP_WINDOWS`] window lengths behind the newest event runs when
/// the open windows have doubled since the last pruning, and not below this many.
const WINDOWS_PRUNE_FLOOR: usize = 1 << 14;
/// When pruning, windows older than this many window lengths behind the newest event go first.
const KEEP_WINDOWS: i64 = 2;
/// How far behind the newest event a request's alert is remembered. Every stage of a request
/// carries the same `event_time` (when the request was received), so this only has to cover
/// delivery delay, not how long a request ran.
const SEEN_MICROS: i64 = 3_600_000_000;
/// Remembered requests beyond which only the newer half is kept, even within [`SEEN_MICROS`].
const SEEN_LIMIT: usize = 1 << 20;
/// Pruning requests older than [`SEEN_MICROS`] runs when the remembered requests have doubled
/// since the last pruning, and not below this many: memory follows the matches of the last hour,
/// not of the whole input.
const SEEN_PRUNE_FLOOR: usize = 1 << 14;

/// Columns with few distinct values that conditions test over and over (`verb IN (...)`,
/// `resource = 'secrets'`, `user_name LIKE 'system:%'`, `user_agent ~* '^(curl|python|...)'`).
/// Each one that at least two tests read is dictionary-encoded once per batch, and each test
/// that reads it alone runs once per distinct value ([`crate::per_value::PerValue`]) instead of once per row.
const DICTIONARY_CANDIDATES: &[&str] = &[
    event::VERB,
    event::RESOURCE,
    event::SUBRESOURCE,
    event::NAMESPACE,
    event::USER_NAME,
    event::USER_AGENT,
    event::API_GROUP,
    event::STAGE,
    event::LEVEL,
    event::SOURCE_IP,
    event::DECISION,
    event::RESPONSE_STATUS,
    event::POD_SERVICE_ACCOUNT,
];

/// Tests that must read a column before it is worth dictionary-encoding.
const DICTIONARY_MIN_USES: usize = 2;

/// The name of `column`'s dictionary-encoded copy in the batch the conditions read.
fn dictionary_name(column: &str) -> String {
    format!("{column}#dictionary")
}

pub(crate) fn dictionary_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Requests (hash of cluster and audit ID) → event time.
type Seen = HashMap<u128, i64, Xxh3DefaultBuilder>;

/// The open threshold windows.
#[derive(Default)]
struct Windows {
    /// (rule, hash of the group's values, window start) → window.
    open: HashMap<(usize, u128, i64), Window, Xxh3DefaultBuilder>,
    /// The group's values of the row being counted, to hash.
    key: Vec<u8>,
}

/// One alert before it becomes a row.
struct Hit {
    rule: usize,
    row: u32,
    count: i64,
    alert_id: String,
}

#[derive(Default)]
struct Window {
    count: u64,
    /// Hashes of the distinct values seen (128 bits: a collision is as likely as a cosmic ray).
    distinct: HashSet<u128, Xxh3DefaultBuilder>,
    fired: bool,
}

/// Runs a compiled pack over batches, statefully.
pub struct RuleEngine {
    rules: Vec<CompiledRule>,
    /// Per rule, the requests (hash of cluster and audit ID) that matched already, with their
    /// event time.
    seen: Vec<Seen>,
    /// Requests in `seen` at which it is pruned next.
    seen_prune_at: usize,
    /// (rule, hash of the group's values, window start) → window.
    windows: Windows,
    /// Windows open at which they are pruned next.
    windows_prune_at: usize,
    newest_micros: i64,
    /// Per rule (in `rules` order), its condition over only the columns it reads, and which
    /// columns of the macro-extended batch those are. A test run on only the rows the tests
    /// before it selected filters the columns it reads first ([`crate::all_of::AllOf`], and
    /// DataFusion's `OR`); given every column, that copied the request and response bodies at
    /// each such step, and that was most of the rules' cost.
    narrow: Vec<Narrowed>,
    /// The macros, the same way over the `events` columns they read.
    narrow_macros: Vec<Narrowed>,
    /// `events` columns also given dictionary-encoded, after the macro columns.
    dictionaries: Vec<usize>,
    /// The batch the conditions read: `events`, one boolean per macro, the dictionaries.
    schema: SchemaRef,
}

/// An expression rewritten to read a projection of its batch.
#[derive(Debug)]
pub(crate) struct Narrowed {
    /// The columns of the batch it reads, in order.
    pub(crate) columns: Vec<usize>,
    /// The expression, reading those columns as the projection's.
    pub(crate) expr: Arc<dyn PhysicalExpr>,
}

impl Narrowed {
    pub(crate) fn new(expr: &Arc<dyn PhysicalExpr>) -> Self {
        let mut columns: Vec<usize> = collect_columns(expr).iter().map(Column::index).collect();
        columns.sort_unstable();
        columns.dedup();
        let expr = Arc::clone(expr)
            .transform_up(|e| {
                let Some(c) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                let at = columns.binary_search(&c.index()).unwrap_or_default();
                Ok(Transformed::yes(Arc::new(Column::new(c.name(), at)) as _))
            })
            .expect("the rewrite itself never fails")
            .data;
        Self { columns, expr }
    }

    fn evaluate(&self, batch: &RecordBatch) -> datafusion::error::Result<ArrayRef> {
        // A projection keeps the batch's row count, also with no columns (a constant condition).
        let input = batch.project(&self.columns)?;
        self.expr.evaluate(&input)?.into_array(batch.num_rows())
    }
}

impl RuleEngine {
    /// An engine running the enabled rules of `pack`.
    pub fn new(pack: &CompiledPack) -> Self {
        Self::with_rules(pack, pack.enabled().cloned().collect())
    }

    /// An engine running exactly these rules (compiled as part of `pack`).
    pub fn with_rules(pack: &CompiledPack, rules: Vec<CompiledRule>) -> Self {
        let macros = &pack.macros;
        let candidate = |i: usize| {
            let field = macros.schema.field(i);
            DICTIONARY_CANDIDATES.contains(&field.name().as_str())
                && field.data_type() == &DataType::Utf8
        };
        let conditions: Vec<_> = rules
            .iter()
            .map(|r| &r.expr)
            .chain(&macros.exprs)
            .map(|e| is_true(&compiled_regexes(e), &macros.schema))
            .collect();
        let lookups = Arc::default();
        let mut uses: HashMap<usize, usize> = HashMap::new();
        for condition in &conditions {
            let count = &mut |column| {
                *uses.entry(column).or_default() += 1;
                None
            };
            per_value(condition, &macros.schema, &candidate, count, &lookups);
        }
        let mut fields = macros.schema.fields().to_vec();
        let mut dictionaries = Vec::new();
        let mut encoded = HashMap::new();
        for (i, field) in macros.schema.fields().iter().enumerate() {
            if uses.get(&i).copied().unwrap_or(0) >= DICTIONARY_MIN_USES {
                let name = dictionary_name(field.name());
                encoded.insert(i, Column::new(&name, fields.len()));
                dictionaries.push(i);
                fields.push(Arc::new(Field::new(name, dictionary_type(), true)));
            }
        }
        let schema = Arc::new(Schema::new(fields));
        let mut narrowed = conditions.iter().map(|e| {
            let encoded = &mut |column| encoded.get(&column).cloned();
            let looked_up = per_value(e, &macros.schema, &candidate, encoded, &lookups);
            Narrowed::new(&conjunctions(&looked_up))
        });
        let narrow = narrowed.by_ref().take(rules.len()).collect();
        let narrow_macros = narrowed.collect();
        Self {
            dictionaries,
            schema,
            seen: vec![Seen::default(); rules.len()],
            seen_prune_at: SEEN_PRUNE_FLOOR,
            rules,
            windows: Windows::default(),
            windows_prune_at: WINDOWS_PRUNE_FLOOR,
            newest_micros: i64::MIN,
            narrow,
            narrow_macros,
        }
    }

    /// The rules it runs.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// The longest threshold window of the rules, in µs; `None` without threshold rules.
    pub fn max_window_micros(&self) -> Option<i64> {
        self.rules
            .iter()
            .filter_map(|r| r.threshold.as_ref().map(|t| t.window_micros))
            .max()
    }

    /// Feeds already-stored events to the threshold rules without raising alerts, so windows that
    /// began before a restart keep their counts (and a window that already reached its threshold
    /// does not alert again).
    pub fn warm(&mut self, batch: &RecordBatch) -> Result<()> {
        self.run(batch, true).map(drop)
    }

    /// Evaluates every rule on `batch` (an `events` batch) and returns the alerts raised.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let hits = self.run(batch, false)?;
        self.build(batch, &hits)
    }

    fn run(&mut self, batch: &RecordBatch, warming: bool) -> Result<Vec<Hit>> {
        let mut hits = Vec::new();
        if batch.num_rows() == 0 {
            return Ok(hits);
        }
        let column = |name: &str| column(batch, name);
        let cluster = column(event::CLUSTER).as_string::<i32>();
        let audit_id = column(event::AUDIT_ID).as_string::<i32>();
        let times = column(event::EVENT_TIME).as_primitive::<TimestampMicrosecondType>();
        if let Some(newest) = times.values().iter().max() {
            self.newest_micros = self.newest_micros.max(*newest);
        }
        let extended = self.extend(batch).map_err(|source| Error::Eval {
            rule: "(macros)".into(),
            source,
        })?;
        for (r, rule) in self.rules.iter().enumerate() {
            if warming && rule.threshold.is_none() {
                continue;
            }
            let matched = self.narrow[r]
                .evaluate(&extended)
                .map_err(|source| Error::Eval {
                    rule: rule.def.id.clone(),
                    source,
                })?;
            let matched: &BooleanArray = matched.as_boolean();
            // Set bits only: most rules match few rows of a batch.
            for row in matched.values().set_indices() {
                if !matched.is_valid(row) {
                    continue;
                }
                let request = request_key(cluster.value(row), audit_id.value(row));
                if self.seen[r].insert(request, times.value(row)).is_some() {
                    continue;
                }
                match &rule.threshold {
                    None => hits.push(Hit {
                        rule: r,
                        row: row as u32,
                        count: 1,
                        alert_id: format!(
                            "{:032x}",
                            alert_key(&rule.def.id, &[cluster.value(row), audit_id.value(row)])
                        ),
                    }),
                    Some(t) => {
                        if let Some(hit) =
                            self.windows.count(r, rule, t, batch, row, times.value(row))
                        {
                            hits.push(hit);
                        }
                    }
                }
            }
        }
        self.expire_windows();
        if warming {
            hits.clear();
        }
        Ok(hits)
    }

    /// `batch` with the macro columns and the dictionaries appended.
    fn extend(&self, batch: &RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        // Macros read events columns and dictionaries only, never another macro: their slots
        // hold placeholders until they are computed.
        let placeholder: ArrayRef = Arc::new(BooleanArray::from(BooleanBuffer::new_unset(rows)));
        columns.extend(self.narrow_macros.iter().map(|_| Arc::clone(&placeholder)));
        for &c in &self.dictionaries {
            columns.push(match batch.column(c).as_string_opt::<i32>() {
                Some(strings) => Arc::new(dictionary::encode(strings)),
                None => cast(batch.column(c), &dictionary_type())?,
            });
        }
        let first_macro = batch.num_columns();
        let inputs = RecordBatch::try_new(Arc::clone(&self.schema), columns.clone())?;
        for (i, m) in self.narrow_macros.iter().enumerate() {
            columns[first_macro + i] = m.evaluate(&inputs)?;
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    fn expire_windows(&mut self) {
        let newest = self.newest_micros;
        let remembered = |seen: &[Seen]| seen.iter().map(HashMap::len).sum::<usize>();
        if remembered(&self.seen) >= self.seen_prune_at {
            let horizon = newest.saturating_sub(SEEN_MICROS);
            for seen in &mut self.seen {
                seen.retain(|_, time| *time >= horizon);
            }
            if remembered(&self.seen) >= SEEN_LIMIT / 2 {
                // Everything is within the horizon (a busy hour): keep the newer half, so memory
                // stays bounded.
                let mut times: Vec<i64> =
                    self.seen.iter().flat_map(|s| s.values().copied()).collect();
                let middle = times.len() / 2;
                let cut = *times.select_nth_unstable(middle).1;
                for seen in &mut self.seen {
                    seen.retain(|_, time| *time > cut);
                }
            }
            for seen in &mut self.seen {
                seen.shrink_to_fit();
            }
            self.seen_prune_at = (2 * remembered(&self.seen)).max(SEEN_PRUNE_FLOOR);
        }
        if self.windows.open.len() < self.windows_prune_at {
            return;
        }
        let rules = &self.rules;
        self.windows.open.retain(|(r, _, start), _| {
            let window = rules[*r].threshold.as_ref().map_or(0, |t| t.window_micros);
            *start >= newest.saturating_sub(KEEP_WINDOWS * window)
        });
        if self.windows.open.len() >= WINDOWS_LIMIT / 2 {
            // All recent (many groups at once): keep the newer half.
            let mut starts: Vec<i64> = self
                .windows
                .open
                .keys()
                .map(|(_, _, start)| *start)
                .collect();
            let middle = starts.len() / 2;
            let cut = *starts.select_nth_unstable(middle).1;
            self.windows.open.retain(|(_, _, start), _| *start > cut);
        }
        self.windows.open.shrink_to_fit();
        self.windows_prune_at = (2 * self.windows.open.len()).max(WINDOWS_PRUNE_FLOOR);
    }

    fn build(&self, batch: &RecordBatch, hits: &[Hit]) -> Result<RecordBatch> {
        let schema = alerts_schema();
        if hits.is_empty() {
            return Ok(RecordBatch::new_empty(schema));
        }
        let rows = UInt32Array::from(hits.iter().map(|h| h.row).collect::<Vec<_>>());
        let copied = |name: &str| -> Result<ArrayRef> {
            Ok(take(column(batch, name).as_ref(), &rows, None)?)
        };
        let rule = |h: &Hit| &self.rules[h.rule].def;
        let strings = |f: &dyn Fn(&Hit) -> String| -> ArrayRef {
            Arc::new(StringArray::from(hits.iter().map(f).collect::<Vec<_>>()))
        };
        let lists = |f: &dyn Fn(&Hit) -> Vec<String>| -> ArrayRef {
            let mut b = ListBuilder::new(StringBuilder::new());
            for h in hits {
                for v in f(h) {
                    b.values().append_value(v);
                }
                b.append(true);
            }
            Arc::new(b.finish())
        };
        let now = now_micros();
        let columns: Vec<ArrayRef> = vec![
            strings(&|h| h.alert_id.clone()),
            strings(&|h| rule(h).id.clone()),
            strings(&|h| rule(h).title.clone()),
            strings(&|h| rule(h).severity.clone()),
            strings(&|h| rule(h).category.clone()),
            lists(&|h| rule(h).mitre.clone()),
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
            strings(&|h| {
                self.rules[h.rule]
                    .output
                    .render(batch, h.row as usize, h.count)
            }),
            lists(&|h| rule(h).tags.clone()),
            Arc::new(Int64Array::from(
                hits.iter().map(|h| h.count).collect::<Vec<_>>(),
            )),
            Arc::new(TimestampMicrosecondArray::from(vec![now; hits.len()]).with_timezone("UTC")),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

impl Windows {
    /// Counts one matching event into its window; returns the alert when the window reaches the
    /// threshold (once per window).
    fn count(
        &mut self,
        r: usize,
        rule: &CompiledRule,
        t: &Threshold,
        batch: &RecordBatch,
        row: usize,
        time: i64,
    ) -> Option<Hit> {
        self.key.clear();
        for &i in &t.group_by {
            self.key
                .extend_from_slice(display(batch.column(i), row).as_bytes());
            self.key.push(0x1f);
        }
        let start = time.div_euclid(t.window_micros) * t.window_micros;
        let window = self
            .open
            .entry((r, xxh3_128(&self.key), start))
            .or_default();
        let n = match t.distinct {
            Some(i) => {
                let values = batch.column(i);
                if values.is_valid(row) {
                    let value = xxh3_128(display(values, row).as_bytes());
                    window.distinct.insert(value);
                }
                window.distinct.len() as u64
            }
            None => {
                window.count += 1;
                window.count
            }
        };
        if n < t.count || window.fired {
            return None;
        }
        window.fired = true;
        let group: Vec<Cow<str>> = t
            .group_by
            .iter()
            .map(|&i| display(batch.column(i), row))
            .collect();
        let group = group.join("\u{1f}");
        Some(Hit {
            rule: r,
            row: row as u32,
            count: n as i64,
            alert_id: format!(
                "{:032x}",
                alert_key(&rule.def.id, &[&group, &start.to_string()])
            ),
        })
    }
}

/// A value as text, null as empty: what thresholds group and count by.
fn display(values: &ArrayRef, row: usize) -> Cow<'_, str> {
    if values.is_null(row) {
        return Cow::Borrowed("");
    }
    if let Some(text) = values.as_string_opt::<i32>() {
        return Cow::Borrowed(text.value(row));
    }
    let options = FormatOptions::default().with_null("");
    ArrayFormatter::try_new(values.as_ref(), &options)
        .map(|f| Cow::Owned(f.value(row).to_string()))
        .unwrap_or_default()
}

fn request_key(cluster: &str, audit_id: &str) -> u128 {
    xxh3_128_with_seed(audit_id.as_bytes(), xxh3_64(cluster.as_bytes()))
}

/// Deterministic alert IDs: replaying the same events gives the same alerts.
fn alert_key(rule: &str, parts: &[&str]) -> u128 {
    let mut h = Xxh3::new();
    h.update(rule.as_bytes());
    for p in parts {
        h.update(&[0x1f]);
        h.update(p.as_bytes());
    }
    h.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuleSet;
    use crate::rewrite::tests::true_bits;
    use auditlake_schema::Decoder;

    /// Every sample log, decoded into one batch.
    fn samples() -> RecordBatch {
        let dir = auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR")).join("../sample-logs");
        let mut decoder = Decoder::new(None);
        let mut rejected = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("sample-logs") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "log") {
                for line in std::fs::read_to_string(&path).expect("read").lines() {
                    decoder.decode(line.as_bytes(), &mut rejected);
                }
            }
        }
        decoder.finish()
    }

    #[test]
    fn narrowed_conditions_over_dictionaries_match_the_plain_ones_for_every_rule() {
        let pack = CompiledPack::compile(&RuleSet::builtin().expect("parses")).expect("compiles");
        let engine = RuleEngine::new(&pack);
        let encoded: Vec<&str> = engine
            .dictionaries
            .iter()
            .map(|&c| pack.macros.schema.field(c).name().as_str())
            .collect();
        for column in [event::VERB, event::RESOURCE, event::USER_NAME] {
            assert!(encoded.contains(&column), "{column} in {encoded:?}");
        }
        let batch = samples();
        assert!(batch.num_rows() > 100);
        let extended = engine.extend(&batch).expect("extends");
        let mut matched = 0;
        for (r, rule) in engine.rules.iter().enumerate() {
            let plain = rule.expr.evaluate(&extended).expect("plain");
            let plain = plain.into_array(batch.num_rows()).expect("array");
            let narrowed = engine.narrow[r].evaluate(&extended).expect("narrowed");
            assert_eq!(narrowed.null_count(), 0, "{}", rule.def.id);
            assert_eq!(&true_bits(&plain), narrowed.as_boolean(), "{}", rule.def.id);
            matched += narrowed.as_boolean().true_count();
        }
        assert!(matched > 0, "the samples match some rules");
        // The plain macros agree too.
        for (m, expr) in pack.macros.exprs.iter().enumerate() {
            let plain = expr.evaluate(&extended).expect("plain");
            let plain = plain.into_array(batch.num_rows()).expect("array");
            let at = batch.num_columns() + m;
            assert_eq!(plain.as_ref(), extended.column(at).as_ref(), "macro {m}");
            assert_eq!(extended.column(at).null_count(), 0, "macro {m}");
        }
    }
}
