//! [`RuleEngine`]: evaluates every enabled rule on each `events` batch and builds the `alerts`
//! batch. It keeps two kinds of state: which (rule, cluster, audit ID) already alerted, so a
//! request logged at several stages alerts once, and the open threshold windows.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, RecordBatch, TimestampMicrosecondArray,
    UInt32Array,
};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use auditlake_schema::columns::{column, event};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{Column, NotExpr};
use datafusion::physical_expr::utils::collect_columns;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128_with_seed};

use crate::all_of::{self, cheap, conjunctions};
use crate::compile::{CompiledPack, CompiledRule};
use crate::dictionary;
use crate::error::{Error, Result};
use crate::history::{Candidate, History, alert_key};
use crate::rewrite::{compiled_regexes, is_true, per_value};

mod alerts;
mod threshold;
use threshold::Windows;

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

/// Conditions reading a costly macro at most which it moves into rather than being computed
/// over every row of the batch.
const INLINE_MAX_READERS: usize = 2;

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
type Seen = crate::history::Map<i64>;

/// One alert before it becomes a row.
struct Hit {
    rule: usize,
    row: u32,
    count: i64,
    alert_id: String,
    /// Appended to the rendered `output`: the baseline or steps a history rule compared with.
    note: String,
    /// The audit IDs behind the alert.
    evidence: Vec<String>,
}

/// What a pass over a batch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Every rule, alerts raised.
    Evaluate,
    /// Stored events fed to the threshold rules, no alerts.
    WarmThresholds,
    /// Stored events fed to the first-seen and sequence rules, no alerts.
    WarmHistory,
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
    newest_micros: i64,
    /// Per rule (in `rules` order), its condition over only the columns it reads, and which
    /// columns of the macro-extended batch those are. A test run on only the rows the tests
    /// before it selected filters the columns it reads first ([`crate::all_of::AllOf`], and
    /// DataFusion's `OR`); given every column, that copied the request and response bodies at
    /// each such step, and that was most of the rules' cost.
    narrow: Vec<Narrowed>,
    /// The macros computed once per batch (by index among the macros), the same way over the
    /// `events` columns they read. A macro no rule reads, or one whose tests are costly (a
    /// pattern over request bodies or image lists) and so run inside each condition that reads
    /// it, on only the rows its other tests selected, is not computed over the whole batch.
    narrow_macros: Vec<(usize, Narrowed)>,
    /// `events` columns also given dictionary-encoded, after the macro columns.
    dictionaries: Vec<usize>,
    /// The batch the conditions read: `events`, one boolean per macro, the dictionaries.
    schema: SchemaRef,
    /// Per rule, its sequence steps' conditions, narrowed like `narrow` (empty for others).
    narrow_steps: Vec<Vec<Narrowed>>,
    /// Per rule, per condition (its own, or each step's), the expressions whose values key it:
    /// a first-seen rule's `fields`, a step's `by`. Evaluated on the matched rows only.
    narrow_keys: Vec<Vec<Vec<Narrowed>>>,
    /// Per first-seen rule, the columns its term reads (four at most, else none): rows alike
    /// in all of them have the same term.
    term_columns: Vec<Option<Vec<usize>>>,
    /// First-seen terms, learning entities and partial sequences.
    history: History,
    /// The `events` columns the first-seen and sequence rules read (their conditions, steps,
    /// terms, keys and the macros those use), so their history is read from the lake without
    /// the rest.
    history_columns: Vec<usize>,
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
        let steps: Vec<&Arc<dyn PhysicalExpr>> = rules
            .iter()
            .flat_map(|r| {
                r.sequence
                    .iter()
                    .flat_map(|s| s.steps.iter().map(|s| &s.expr))
            })
            .collect();
        let conditions: Vec<_> = rules
            .iter()
            .map(|r| &r.expr)
            .chain(&macros.exprs)
            .chain(steps.iter().copied())
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
        let looked_up: Vec<Arc<dyn PhysicalExpr>> = conditions
            .iter()
            .map(|e| {
                let encoded = &mut |column| encoded.get(&column).cloned();
                per_value(e, &macros.schema, &candidate, encoded, &lookups)
            })
            .collect();
        let events_width = macros.schema.fields().len() - macros.exprs.len();
        let (rule_conditions, rest) = looked_up.split_at(rules.len());
        let (macro_conditions, step_conditions) = rest.split_at(macros.exprs.len());
        // A costly macro read by one or two conditions moves into them: there it runs on only
        // the rows their other tests selected. So does one that every reader only excludes
        // with (`... AND NOT trusted_node_agent_images`, after tests that select a few rows).
        // One that many conditions select with (`anonymous`, with its list of groups) costs
        // less computed once.
        let mut readers = vec![0usize; macros.exprs.len()];
        let mut selects = vec![false; macros.exprs.len()];
        let macro_of = |c: &Column| {
            c.index()
                .checked_sub(events_width)
                .filter(|&m| m < macros.exprs.len())
        };
        for condition in rule_conditions.iter().chain(step_conditions) {
            // Each column once per condition.
            for m in collect_columns(condition).iter().filter_map(macro_of) {
                readers[m] += 1;
            }
            let tests = all_of::tests(condition);
            for test in &tests {
                let excluded = test
                    .downcast_ref::<NotExpr>()
                    .and_then(|not| not.arg().downcast_ref::<Column>())
                    .is_some_and(|c| macro_of(c).is_some() && tests.len() > 1);
                if !excluded {
                    for m in collect_columns(test).iter().filter_map(macro_of) {
                        selects[m] = true;
                    }
                }
            }
        }
        let costly: Vec<bool> = macro_conditions
            .iter()
            .enumerate()
            .map(|(m, e)| {
                (readers[m] <= INLINE_MAX_READERS || !selects[m]) && !cheap(&conjunctions(e))
            })
            .collect();
        let inline = |e: &Arc<dyn PhysicalExpr>| -> Narrowed {
            let inlined = Arc::clone(e)
                .transform_up(|e| {
                    let m = e
                        .downcast_ref::<Column>()
                        .and_then(macro_of)
                        .filter(|&m| costly[m]);
                    Ok(match m {
                        Some(m) => Transformed::yes(Arc::clone(&macro_conditions[m])),
                        None => Transformed::no(e),
                    })
                })
                .expect("the rewrite itself never fails")
                .data;
            Narrowed::new(&conjunctions(&inlined))
        };
        let narrow: Vec<Narrowed> = rule_conditions.iter().map(inline).collect();
        let mut steps = step_conditions.iter().map(inline);
        let narrow_steps: Vec<Vec<Narrowed>> = rules
            .iter()
            .map(|r| {
                let n = r.sequence.as_ref().map_or(0, |s| s.steps.len());
                steps.by_ref().take(n).collect()
            })
            .collect();
        // The macros still read as columns: by a condition, a first-seen term or a step's key.
        let keys = rules.iter().flat_map(|r| {
            let fields = r.first_seen.iter().flat_map(|f| &f.fields);
            fields.chain(
                r.sequence
                    .iter()
                    .flat_map(|s| s.steps.iter().flat_map(|s| &s.by)),
            )
        });
        let mut read: Vec<usize> = narrow
            .iter()
            .chain(narrow_steps.iter().flatten())
            .flat_map(|n| n.columns.iter().copied())
            .chain(keys.flat_map(|e| collect_columns(e).into_iter().map(|c| c.index())))
            .filter_map(|c| c.checked_sub(events_width))
            .filter(|&m| m < macros.exprs.len())
            .collect();
        read.sort_unstable();
        read.dedup();
        let narrow_macros = read
            .into_iter()
            .map(|m| (m, Narrowed::new(&conjunctions(&macro_conditions[m]))))
            .collect();
        let mut history_columns = Vec::new();
        for rule in rules.iter().filter(|r| r.needs_history()) {
            let mut exprs = vec![&rule.expr];
            if let Some(f) = &rule.first_seen {
                exprs.extend(&f.fields);
                history_columns.extend(&f.learn_by);
            }
            for step in rule.sequence.iter().flat_map(|s| &s.steps) {
                exprs.push(&step.expr);
                exprs.extend(&step.by);
            }
            for expr in exprs {
                for c in collect_columns(expr) {
                    match c.index().checked_sub(events_width) {
                        None => history_columns.push(c.index()),
                        Some(m) => history_columns
                            .extend(collect_columns(&macros.exprs[m]).iter().map(Column::index)),
                    }
                }
            }
        }
        if !history_columns.is_empty() {
            history_columns.extend(
                [event::CLUSTER, event::AUDIT_ID, event::EVENT_TIME]
                    .iter()
                    .filter_map(|n| macros.schema.index_of(n).ok()),
            );
        }
        history_columns.sort_unstable();
        history_columns.dedup();
        let narrow_keys = rules
            .iter()
            .map(|r| match (&r.first_seen, &r.sequence) {
                (Some(f), _) => vec![f.fields.iter().map(Narrowed::new).collect()],
                (_, Some(q)) => q
                    .steps
                    .iter()
                    .map(|s| s.by.iter().map(Narrowed::new).collect())
                    .collect(),
                _ => Vec::new(),
            })
            .collect::<Vec<Vec<Vec<Narrowed>>>>();
        let term_columns = rules
            .iter()
            .zip(&narrow_keys)
            .map(|(r, keys)| {
                r.first_seen.as_ref()?;
                let mut columns: Vec<usize> = keys[0]
                    .iter()
                    .flat_map(|k| k.columns.iter().copied())
                    .collect();
                columns.sort_unstable();
                columns.dedup();
                (columns.len() <= 4).then_some(columns)
            })
            .collect();
        Self {
            narrow_keys,
            term_columns,
            history: History::new(&rules),
            history_columns,
            narrow_steps,
            dictionaries,
            schema,
            seen: vec![Seen::default(); rules.len()],
            seen_prune_at: SEEN_PRUNE_FLOOR,
            rules,
            windows: Windows::default(),
            newest_micros: i64::MIN,
            narrow,
            narrow_macros,
        }
    }

    /// The rules it runs.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// Forgets every event it was given (matched requests, threshold windows, first-seen terms,
    /// partial sequences), as a new engine of the same rules: the events are about to be given
    /// again from the lake and the write-ahead log, after a failed write, and counting them twice
    /// would raise alerts no single pass raises.
    pub fn forget(&mut self) {
        self.history = History::new(&self.rules);
        self.seen = vec![Seen::default(); self.rules.len()];
        self.seen_prune_at = SEEN_PRUNE_FLOOR;
        self.windows = Windows::default();
        self.newest_micros = i64::MIN;
    }

    /// The longest threshold window of the rules, in µs; `None` without threshold rules.
    pub fn max_window_micros(&self) -> Option<i64> {
        self.rules
            .iter()
            .filter_map(|r| r.threshold.as_ref().map(|t| t.window_micros))
            .max()
    }

    /// How far back the first-seen and sequence rules need stored events, in µs; `None` without
    /// such rules.
    pub fn history_micros(&self) -> Option<i64> {
        self.rules
            .iter()
            .map(CompiledRule::history_micros)
            .max()
            .filter(|m| *m > 0)
    }

    /// The `events` columns (by index) that [`RuleEngine::warm_history`] reads; the others may
    /// be null in the batches it is given.
    pub fn history_columns(&self) -> &[usize] {
        &self.history_columns
    }

    /// Bytes the first-seen and sequence state holds now.
    pub fn history_memory_bytes(&self) -> usize {
        self.history.memory_bytes()
    }

    /// Feeds already-stored events to the threshold rules without raising alerts, so windows that
    /// began before a restart keep their counts (and a window that already reached its threshold
    /// does not alert again).
    pub fn warm(&mut self, batch: &RecordBatch) -> Result<()> {
        self.run(batch, Pass::WarmThresholds).map(drop)
    }

    /// Feeds already-stored events, in time order, to the first-seen and sequence rules without
    /// raising alerts: their baselines and partial sequences are rebuilt from the lake, so a
    /// restart neither forgets history nor alerts again on a term already seen.
    pub fn warm_history(&mut self, batch: &RecordBatch) -> Result<()> {
        self.run(batch, Pass::WarmHistory).map(drop)
    }

    /// Evaluates every rule on `batch` (an `events` batch) and returns the alerts raised.
    pub fn evaluate(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let hits = self.run(batch, Pass::Evaluate)?;
        self.build(batch, &hits)
    }

    fn run(&mut self, batch: &RecordBatch, pass: Pass) -> Result<Vec<Hit>> {
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
        let history = pass != Pass::WarmThresholds && self.history.active();
        // Per column of `extended`, its dictionary's keys (when it has one), to tell rows with
        // the same values apart cheaply; only within one cluster.
        let one_cluster = cluster.iter().all(|c| c == Some(cluster.value(0)));
        let first_dictionary = extended.num_columns() - self.dictionaries.len();
        let codes = |c: usize| -> Option<&Int32Array> {
            let at = if c >= first_dictionary {
                c
            } else {
                first_dictionary + self.dictionaries.iter().position(|&d| d == c)?
            };
            Some(extended.column(at).as_dictionary_opt::<Int32Type>()?.keys())
        };
        let mut candidates = Vec::new();
        let mut values: Vec<Vec<Vec<ArrayRef>>> = vec![Vec::new(); self.rules.len()];
        for (r, rule) in self.rules.iter().enumerate() {
            let wanted = match pass {
                Pass::Evaluate => true,
                Pass::WarmThresholds => rule.threshold.is_some(),
                Pass::WarmHistory => rule.needs_history(),
            };
            if !wanted {
                continue;
            }
            if rule.needs_history() {
                if history {
                    let eval_error = |source| Error::Eval {
                        rule: rule.def.id.clone(),
                        source,
                    };
                    let conditions: Vec<&Narrowed> = match &rule.sequence {
                        Some(_) => self.narrow_steps[r].iter().collect(),
                        None => vec![&self.narrow[r]],
                    };
                    let term_codes = self.term_columns[r]
                        .as_ref()
                        .filter(|_| one_cluster)
                        .and_then(|columns| columns.iter().map(|&c| codes(c)).collect());
                    let matched = Matched {
                        r,
                        rule,
                        conditions,
                        keyed: &self.narrow_keys[r],
                        seen: &mut self.seen[r],
                        term_codes,
                    };
                    values[r] = matched
                        .candidates(&extended, cluster, audit_id, times, &mut candidates)
                        .map_err(eval_error)?;
                }
                continue;
            }
            let matched = self.narrow[r]
                .evaluate(&extended)
                .map_err(|source| Error::Eval {
                    rule: rule.def.id.clone(),
                    source,
                })?;
            let matched: &BooleanArray = matched.as_boolean();
            // A request logged at two stages counts once; a distinct count cannot count its one
            // value twice, so it needs no check (a busy recon rule matches a fifth of all events).
            let distinct = rule
                .threshold
                .as_ref()
                .is_some_and(|t| t.distinct.is_some());
            // Set bits only: most rules match few rows of a batch.
            for row in matched.values().set_indices() {
                if !matched.is_valid(row) {
                    continue;
                }
                if !distinct {
                    let request = request_key(cluster.value(row), audit_id.value(row));
                    if self.seen[r].insert(request, times.value(row)).is_some() {
                        continue;
                    }
                }
                match &rule.threshold {
                    None => hits.push(Hit {
                        rule: r,
                        row: row as u32,
                        count: 1,
                        alert_id: format!(
                            "{:032x}",
                            alert_key(&rule.def.id, [cluster.value(row), audit_id.value(row)])
                        ),
                        note: String::new(),
                        evidence: vec![audit_id.value(row).to_string()],
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
        if history {
            let raised = self.history.apply(&self.rules, batch, candidates, &values);
            hits.extend(raised.into_iter().map(|h| Hit {
                rule: h.rule,
                row: h.row,
                count: h.evidence.len() as i64,
                alert_id: format!("{:032x}", h.alert_id),
                note: h.note,
                evidence: h.evidence,
            }));
        }
        self.expire_windows();
        if pass != Pass::Evaluate {
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
        let macros = self.schema.fields().len() - columns.len() - self.dictionaries.len();
        columns.extend((0..macros).map(|_| Arc::clone(&placeholder)));
        for &c in &self.dictionaries {
            columns.push(match batch.column(c).as_string_opt::<i32>() {
                Some(strings) => Arc::new(dictionary::encode(strings)),
                None => cast(batch.column(c), &dictionary_type())?,
            });
        }
        let first_macro = batch.num_columns();
        let inputs = RecordBatch::try_new(Arc::clone(&self.schema), columns.clone())?;
        for (i, m) in &self.narrow_macros {
            columns[first_macro + *i] = m.evaluate(&inputs)?;
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
        self.windows.expire(&self.rules, newest);
    }
}

/// A history rule's conditions (its own, or one per sequence step) on one batch.
struct Matched<'a> {
    r: usize,
    rule: &'a CompiledRule,
    conditions: Vec<&'a Narrowed>,
    /// Per condition, the term's `fields` or the step's `by`, narrowed.
    keyed: &'a [Vec<Narrowed>],
    seen: &'a mut Seen,
    /// A first-seen rule's: the dictionary keys of every column its term reads.
    term_codes: Option<Vec<&'a Int32Array>>,
}

impl Matched<'_> {
    /// The rows a first-seen rule's condition, or each step of a sequence, matched (a request
    /// logged at several stages once), and the values each reads: the term's `fields`, or per
    /// step its `by`.
    fn candidates(
        self,
        extended: &RecordBatch,
        cluster: &arrow::array::StringArray,
        audit_id: &arrow::array::StringArray,
        times: &TimestampMicrosecondArray,
        candidates: &mut Vec<Candidate>,
    ) -> datafusion::error::Result<Vec<Vec<ArrayRef>>> {
        let Matched {
            r,
            rule,
            conditions,
            keyed,
            seen,
            term_codes,
        } = self;
        let mut values = Vec::with_capacity(conditions.len());
        // Rows whose term columns hold the same codes as an earlier row's: only the first of
        // them can find its term new, the rest only move its last sighting. Kept out before
        // their terms are evaluated and hashed (a busy identity's requests repeat their terms).
        let mut firsts: crate::history::Map<usize> = Default::default();
        for (step, condition) in conditions.into_iter().enumerate() {
            let matched = condition.evaluate(extended)?;
            let matched: &BooleanArray = matched.as_boolean();
            let mut rows = Vec::new();
            for row in matched.values().set_indices() {
                if !matched.is_valid(row) {
                    continue;
                }
                if let Some(codes) = &term_codes {
                    let alike = codes.iter().fold(0u128, |key, keys| {
                        let code = if keys.is_valid(row) {
                            keys.value(row) as u32
                        } else {
                            u32::MAX
                        };
                        (key << 32) | u128::from(code)
                    });
                    let time = times.value(row);
                    match firsts.entry(alike) {
                        std::collections::hash_map::Entry::Occupied(first) => {
                            let first: &mut Candidate = &mut candidates[*first.get()];
                            first.latest = first.latest.max(time);
                            continue;
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(candidates.len());
                        }
                    }
                }
                // A first-seen term seen at an earlier stage of the request is known by then;
                // a sequence step counts a request once.
                if rule.sequence.is_some() {
                    let request =
                        request_key(cluster.value(row), audit_id.value(row)) ^ step as u128;
                    if seen.insert(request, times.value(row)).is_some() {
                        continue;
                    }
                }
                candidates.push(Candidate {
                    row: row as u32,
                    slot: rows.len() as u32,
                    rule: r,
                    step,
                    term: 0,
                    latest: times.value(row),
                });
                rows.push(row as u32);
            }
            // The term's or key's values of the matched rows only, in their order.
            let rows = UInt32Array::from(rows);
            let mut evaluated = Vec::new();
            if !rows.is_empty() {
                for expr in &keyed[step] {
                    let input = take_record_batch(&extended.project(&expr.columns)?, &rows)?;
                    evaluated.push(expr.expr.evaluate(&input)?.into_array(rows.len())?);
                }
            }
            values.push(evaluated);
        }
        Ok(values)
    }
}

/// A value as text, null as empty: what thresholds group and count by.
pub(crate) fn display(values: &ArrayRef, row: usize) -> Cow<'_, str> {
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

#[cfg(test)]
mod tests;
