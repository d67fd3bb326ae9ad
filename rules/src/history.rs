//! The state of the rules that need history: first-seen terms with the entities and clusters
//! they learn from, and partial sequences. Every event is applied in row order, so the alerts do
//! not depend on how events were split into batches; memory is bounded per rule.

use std::collections::HashMap;
use std::fmt::Write;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::temporal_conversions::timestamp_us_to_datetime;
use auditlake_schema::columns::{column, event};
use xxhash_rust::xxh3::xxh3_128;

use crate::compile::{CompiledRule, FirstSeen, Sequence};
use crate::eval::display;

/// Terms remembered per first-seen rule beyond which the least recently seen half is dropped
/// (a table of 2^18 slots of 49 bytes, about 12 MiB a rule at most; a dropped term counts as new
/// if it comes back): 10,000 identities with 13 terms each fit.
pub(crate) const TERMS_LIMIT: usize = 1 << 17;
/// Entities (per `learn_by` set) remembered beyond which the least recently seen half goes.
const ENTITIES_LIMIT: usize = 1 << 17;
/// Partial sequences kept per rule beyond which the oldest half goes.
const PARTIALS_LIMIT: usize = 1 << 16;
/// Audit IDs kept per step as evidence.
const EVIDENCE_PER_STEP: usize = 5;
/// State is pruned of what fell out of its window when it doubled since the last pruning, and
/// not below this many entries.
const PRUNE_FLOOR: usize = 1 << 12;

/// Keyed by hashes already: a fast keyed hasher (randomly seeded, so no input can choose its
/// buckets) rather than hashing a hash again in full.
pub(crate) type Map<V> = HashMap<u128, V, foldhash::fast::RandomState>;

/// What is known of one term, entity or cluster.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: i64,
    last: i64,
    count: u64,
}

impl Seen {
    fn new(time: i64) -> Self {
        Self {
            first: time,
            last: time,
            count: 1,
        }
    }

    fn add(&mut self, time: i64) {
        self.first = self.first.min(time);
        self.last = self.last.max(time);
        self.count += 1;
    }
}

/// A map of keys to [`Seen`] that forgets keys not seen within `horizon` of the newest event,
/// and the least recently seen half beyond `limit`.
#[derive(Debug)]
struct Remembered {
    map: Map<Seen>,
    prune_at: usize,
    limit: usize,
}

impl Remembered {
    fn new(limit: usize) -> Self {
        Self {
            map: Map::default(),
            prune_at: PRUNE_FLOOR,
            limit,
        }
    }

    fn prune(&mut self, horizon: i64) {
        if self.map.len() < self.prune_at {
            return;
        }
        self.map.retain(|_, s| s.last >= horizon);
        if self.map.len() > self.limit / 4 * 3 {
            let mut lasts: Vec<i64> = self.map.values().map(|s| s.last).collect();
            let middle = lasts.len() / 2;
            let cut = *lasts.select_nth_unstable(middle).1;
            self.map.retain(|_, s| s.last > cut);
        }
        self.map.shrink_to_fit();
        self.prune_at = (2 * self.map.len()).clamp(PRUNE_FLOOR, self.limit);
    }

    fn bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(u128, Seen)>() + 1)
    }
}

/// One sequence in progress for one key.
#[derive(Debug, Clone)]
struct Partial {
    /// The step being matched.
    step: usize,
    /// Matches of that step so far.
    count: u64,
    /// When its first step began: the sequence must complete within `within` of it.
    start: i64,
    /// (step, audit ID, time) of the events behind it.
    evidence: Vec<(usize, String, i64)>,
}

/// Per history rule (in the engine's rule order), its state.
#[derive(Debug)]
enum RuleState {
    None,
    FirstSeen {
        terms: Remembered,
        /// Which entity set ([`History::entities`]) it learns from; `None`: the cluster.
        entities: Option<usize>,
    },
    Sequence {
        partials: Map<Partial>,
        prune_at: usize,
    },
}

/// One alert a history rule raised, before it becomes a row.
pub(crate) struct HistoryHit {
    pub rule: usize,
    pub row: u32,
    pub alert_id: u128,
    /// The baseline or the steps, appended to the rendered `output`.
    pub note: String,
    pub evidence: Vec<String>,
}

/// A match of one history rule (and step) on one row.
pub(crate) struct Candidate {
    pub row: u32,
    /// Its position in the values evaluated for its rule and step (only matched rows are).
    pub slot: u32,
    pub rule: usize,
    /// A first-seen rule's term (filled in by [`History::apply`]).
    pub term: u128,
    pub step: usize,
    /// The latest time of its row and of the rows alike it stands for.
    pub latest: i64,
}

/// The state of every history rule of an engine.
#[derive(Debug)]
pub(crate) struct History {
    rules: Vec<RuleState>,
    /// The distinct `learn_by` column sets, and what is known of each entity of each.
    entities: Vec<(Vec<usize>, Remembered)>,
    /// Per cluster, when its first event was seen and how many (a handful: a list).
    clusters: Vec<(String, Seen)>,
    /// The longest history any rule keeps, in µs.
    horizon_micros: i64,
    newest: i64,
}

impl History {
    pub(crate) fn new(rules: &[CompiledRule]) -> Self {
        let mut entities: Vec<(Vec<usize>, Remembered)> = Vec::new();
        let states = rules
            .iter()
            .map(|rule| {
                if let Some(f) = &rule.first_seen {
                    let set = (!f.learn_by.is_empty()).then(|| {
                        entities
                            .iter()
                            .position(|(by, _)| *by == f.learn_by)
                            .unwrap_or_else(|| {
                                entities
                                    .push((f.learn_by.clone(), Remembered::new(ENTITIES_LIMIT)));
                                entities.len() - 1
                            })
                    });
                    RuleState::FirstSeen {
                        terms: Remembered::new(TERMS_LIMIT),
                        entities: set,
                    }
                } else if rule.sequence.is_some() {
                    RuleState::Sequence {
                        partials: Map::default(),
                        prune_at: PRUNE_FLOOR,
                    }
                } else {
                    RuleState::None
                }
            })
            .collect();
        Self {
            rules: states,
            entities,
            clusters: Vec::new(),
            horizon_micros: rules
                .iter()
                .map(CompiledRule::history_micros)
                .max()
                .unwrap_or(0),
            newest: i64::MIN,
        }
    }

    /// Whether any rule keeps history.
    pub(crate) fn active(&self) -> bool {
        self.horizon_micros > 0
    }

    /// Bytes held by the state (hash tables at capacity; evidence strings approximately).
    pub(crate) fn memory_bytes(&self) -> usize {
        let rules: usize = self
            .rules
            .iter()
            .map(|s| match s {
                RuleState::None => 0,
                RuleState::FirstSeen { terms, .. } => terms.bytes(),
                RuleState::Sequence { partials, .. } => partials
                    .values()
                    .map(|p| 64 + p.evidence.len() * 64)
                    .sum::<usize>()
                    .max(partials.capacity() * 17),
            })
            .sum();
        rules + self.entities.iter().map(|(_, e)| e.bytes()).sum::<usize>()
    }

    /// Applies every row of `batch` in order: entities and clusters learn from every row, and
    /// each candidate (a row a history rule's condition or step matched) is checked against
    /// what came before it. `values[r]` holds rule `r`'s evaluated `fields` (first-seen) or, per
    /// step, its `by` values (sequence).
    pub(crate) fn apply(
        &mut self,
        rules: &[CompiledRule],
        batch: &RecordBatch,
        mut candidates: Vec<Candidate>,
        values: &[Vec<Vec<ArrayRef>>],
    ) -> Vec<HistoryHit> {
        let mut hits = Vec::new();
        let rows = batch.num_rows();
        if rows == 0 {
            return hits;
        }
        let times = column(batch, event::EVENT_TIME).as_primitive::<TimestampMicrosecondType>();
        let clusters = column(batch, event::CLUSTER).as_string::<i32>();
        // Rows in order; within a row, later steps first, so one event never completes two
        // steps of one sequence.
        candidates.sort_unstable_by_key(|c| {
            (u128::from(c.row) << 96)
                | ((c.rule as u128) << 32)
                | u128::from(u32::MAX - c.step as u32)
        });
        // Only the first event of a term in this batch can find it new; the later ones only
        // move its last sighting, done at the end. Most matches are of known terms.
        let mut repeats: Map<i64> = Map::default();
        candidates.retain_mut(|c| {
            let Some(fields) = rules[c.rule]
                .first_seen
                .as_ref()
                .map(|_| &values[c.rule][0])
            else {
                return true;
            };
            let row = c.row as usize;
            c.term = key(clusters.value(row), fields.iter(), c.slot as usize);
            let time = c.latest;
            match repeats.entry(alert_key_u128(c.rule, c.term)) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    *e.get_mut() = (*e.get()).max(time);
                    false
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(time);
                    true
                }
            }
        });
        let mut entity_batches: Vec<EntityBatch> = self
            .entities
            .iter()
            .map(|(by, _)| EntityBatch::new(batch, by, clusters))
            .collect();
        let mut next = candidates.iter().peekable();
        let mut at = 0;
        for row in 0..rows {
            let time = times.value(row);
            self.newest = self.newest.max(time);
            let cluster = clusters.value(row);
            if self
                .clusters
                .get(at)
                .is_none_or(|(name, _)| name != cluster)
            {
                at = match self.clusters.iter().position(|(name, _)| name == cluster) {
                    Some(i) => i,
                    None => {
                        self.clusters.push((cluster.to_string(), Seen::new(time)));
                        self.clusters.len() - 1
                    }
                };
            }
            self.clusters[at].1.add(time);
            for entities in &mut entity_batches {
                entities.add(row, time);
            }
            while let Some(c) = next.next_if(|c| c.row as usize == row) {
                let rule = &rules[c.rule];
                let hit = if let Some(f) = &rule.first_seen {
                    self.first_seen(c, rule, f, batch, &entity_batches, &values[c.rule][0], time)
                } else if let Some(s) = &rule.sequence {
                    self.sequence(c, rule, s, batch, &values[c.rule], time)
                } else {
                    None
                };
                hits.extend(hit);
            }
        }
        for c in candidates
            .iter()
            .filter(|c| rules[c.rule].first_seen.is_some())
        {
            let last = repeats.get(&alert_key_u128(c.rule, c.term)).copied();
            if let (RuleState::FirstSeen { terms, .. }, Some(last)) =
                (&mut self.rules[c.rule], last)
                && let Some(seen) = terms.map.get_mut(&c.term)
            {
                seen.last = seen.last.max(last);
            }
        }
        for ((_, entities), batch) in self.entities.iter_mut().zip(entity_batches) {
            batch.merge_into(&mut entities.map);
        }
        self.prune(rules);
        hits
    }

    #[allow(clippy::too_many_arguments)]
    fn first_seen(
        &mut self,
        c: &Candidate,
        rule: &CompiledRule,
        f: &FirstSeen,
        batch: &RecordBatch,
        entity_batches: &[EntityBatch],
        fields: &[ArrayRef],
        time: i64,
    ) -> Option<HistoryHit> {
        let row = c.row as usize;
        let cluster = column(batch, event::CLUSTER).as_string::<i32>().value(row);
        let RuleState::FirstSeen { terms, entities } = &mut self.rules[c.rule] else {
            return None;
        };
        let slot = c.slot as usize;
        let term = c.term;
        let known = match terms.map.get_mut(&term) {
            Some(seen) if seen.last >= time.saturating_sub(f.history_micros) => {
                seen.add(time);
                true
            }
            _ => {
                terms.map.insert(term, Seen::new(time));
                false
            }
        };
        if known {
            return None;
        }
        // The baseline it was compared with: the entity's history, else the cluster's.
        let (whose, baseline) = match entities {
            Some(set) => {
                let by = &self.entities[*set].0;
                let name: Vec<String> = by
                    .iter()
                    .map(|&i| display(batch.column(i), row).into_owned())
                    .collect();
                let seen = entity_batches[*set].seen(row, &self.entities[*set].1.map);
                (name.join(" "), seen)
            }
            None => (
                format!("cluster {cluster}"),
                self.clusters
                    .iter()
                    .find(|(name, _)| name == cluster)
                    .map(|(_, seen)| *seen),
            ),
        };
        let baseline = baseline.unwrap_or(Seen::new(time));
        if let Some(learn) = f.learn_micros
            && baseline.first > time.saturating_sub(learn)
        {
            return None;
        }
        let term_text: Vec<String> = fields
            .iter()
            .map(|a| display(a, slot).into_owned())
            .collect();
        let note = format!(
            "; first time in {} of history: {} ({} seen since {}, {} requests)",
            span(f.history_micros),
            term_text.join(", "),
            whose,
            date(baseline.first),
            thousands(baseline.count.saturating_sub(1)),
        );
        let audit_id = column(batch, event::AUDIT_ID).as_string::<i32>().value(row);
        Some(HistoryHit {
            rule: c.rule,
            row: c.row,
            alert_id: alert_key(&rule.def.id, [cluster, audit_id]),
            note,
            evidence: vec![audit_id.to_string()],
        })
    }

    fn sequence(
        &mut self,
        c: &Candidate,
        rule: &CompiledRule,
        s: &Sequence,
        batch: &RecordBatch,
        by: &[Vec<ArrayRef>],
        time: i64,
    ) -> Option<HistoryHit> {
        let row = c.row as usize;
        let cluster = column(batch, event::CLUSTER).as_string::<i32>().value(row);
        let audit_id = column(batch, event::AUDIT_ID).as_string::<i32>().value(row);
        let RuleState::Sequence { partials, .. } = &mut self.rules[c.rule] else {
            return None;
        };
        let last = s.steps.len() - 1;
        let mut hit = None;
        for k in keys(cluster, &by[c.step], c.slot as usize) {
            if partials
                .get(&k)
                .is_some_and(|p| time.saturating_sub(p.start) > s.within_micros)
            {
                partials.remove(&k);
            }
            let step = &s.steps[c.step];
            let partial = match partials.get_mut(&k) {
                Some(p) => p,
                None if c.step == 0 => partials.entry(k).or_insert(Partial {
                    step: 0,
                    count: 0,
                    start: time,
                    evidence: Vec::new(),
                }),
                None => continue,
            };
            if c.step == 0 && partial.step == 1 && step.count == 1 {
                // The first step again before the second: the window starts from the latest.
                partial.start = time;
                partial.evidence.clear();
                partial.evidence.push((0, audit_id.to_string(), time));
                continue;
            }
            if partial.step != c.step {
                continue;
            }
            partial.count += 1;
            if partial.evidence.iter().filter(|e| e.0 == c.step).count() < EVIDENCE_PER_STEP {
                partial.evidence.push((c.step, audit_id.to_string(), time));
            }
            if partial.count < step.count {
                continue;
            }
            partial.step += 1;
            partial.count = 0;
            if c.step < last {
                continue;
            }
            let done = partials.remove(&k).expect("the partial just matched");
            if hit.is_some() {
                continue;
            }
            let mut note = format!("; sequence within {}:", span(s.within_micros));
            for (i, step) in s.steps.iter().enumerate() {
                let ids: Vec<&(usize, String, i64)> =
                    done.evidence.iter().filter(|e| e.0 == i).collect();
                if let Some(first) = ids.first() {
                    let _ = write!(
                        note,
                        " {}. {} at {} ({}{})",
                        i + 1,
                        step.name,
                        clock(first.2),
                        first.1,
                        if ids.len() > 1 {
                            format!(" and {} more", ids.len() - 1)
                        } else {
                            String::new()
                        }
                    );
                }
            }
            let first_id = done.evidence.first().map_or("", |e| e.1.as_str());
            hit = Some(HistoryHit {
                rule: c.rule,
                row: c.row,
                alert_id: alert_key(&rule.def.id, [cluster, first_id, audit_id]),
                note,
                evidence: done.evidence.into_iter().map(|e| e.1).collect(),
            });
        }
        hit
    }

    fn prune(&mut self, rules: &[CompiledRule]) {
        let newest = self.newest;
        for (state, rule) in self.rules.iter_mut().zip(rules) {
            match state {
                RuleState::None => {}
                RuleState::FirstSeen { terms, .. } => {
                    terms.prune(newest.saturating_sub(rule.history_micros()));
                }
                RuleState::Sequence { partials, prune_at } => {
                    if partials.len() < *prune_at {
                        continue;
                    }
                    let horizon = newest.saturating_sub(rule.history_micros());
                    partials.retain(|_, p| p.start >= horizon);
                    if partials.len() >= PARTIALS_LIMIT {
                        let mut starts: Vec<i64> = partials.values().map(|p| p.start).collect();
                        let middle = starts.len() / 2;
                        let cut = *starts.select_nth_unstable(middle).1;
                        partials.retain(|_, p| p.start > cut);
                    }
                    partials.shrink_to_fit();
                    *prune_at = (2 * partials.len()).max(PRUNE_FLOOR);
                }
            }
        }
        let horizon = newest.saturating_sub(self.horizon_micros);
        for (_, entities) in &mut self.entities {
            entities.prune(horizon);
        }
    }
}

/// One batch's rows grouped by entity: each row's entity as a small code, and what this batch
/// has seen of each so far, merged into the remembered entities at its end. Rows are applied in
/// order without a hash-map operation per row.
struct EntityBatch {
    /// Per row, its entity's code.
    codes: Vec<u32>,
    /// Per code, the entity's key.
    keys: Vec<u128>,
    /// Per code, what this batch saw of it up to the row being applied.
    local: Vec<Option<Seen>>,
}

impl EntityBatch {
    fn new(batch: &RecordBatch, by: &[usize], clusters: &StringArray) -> Self {
        let rows = batch.num_rows();
        let one_cluster = rows == 0 || clusters.iter().all(|c| c == Some(clusters.value(0)));
        let single = match by {
            [c] if one_cluster => batch.column(*c).as_string_opt::<i32>(),
            _ => None,
        };
        let (codes, keys) = match single {
            // The usual case (`learn_by: [user_name]`): one hash per distinct value.
            Some(strings) => {
                let encoded = crate::dictionary::encode(strings);
                let values = encoded.values().as_string::<i32>();
                let cluster = if rows > 0 { clusters.value(0) } else { "" };
                let keys = (0..values.len())
                    .map(|i| alert_key(cluster, [values.value(i)]))
                    .collect();
                let null = values.len() as u32;
                let codes: Vec<u32> = encoded
                    .keys()
                    .iter()
                    .map(|k| k.map_or(null, |k| k as u32))
                    .collect();
                let mut keys: Vec<u128> = keys;
                keys.push(alert_key(cluster, [""]));
                (codes, keys)
            }
            None => {
                let columns: Vec<&ArrayRef> = by.iter().map(|&c| batch.column(c)).collect();
                let mut index: Map<u32> = Map::default();
                let mut keys = Vec::new();
                let codes = (0..rows)
                    .map(|row| {
                        let k = key(clusters.value(row), columns.iter().copied(), row);
                        *index.entry(k).or_insert_with(|| {
                            keys.push(k);
                            keys.len() as u32 - 1
                        })
                    })
                    .collect();
                (codes, keys)
            }
        };
        let local = vec![None; keys.len()];
        Self { codes, keys, local }
    }

    fn add(&mut self, row: usize, time: i64) {
        match &mut self.local[self.codes[row] as usize] {
            Some(seen) => seen.add(time),
            slot => *slot = Some(Seen::new(time)),
        }
    }

    /// What is known of a row's entity, its rows of this batch up to now included.
    fn seen(&self, row: usize, remembered: &Map<Seen>) -> Option<Seen> {
        let code = self.codes[row] as usize;
        let before = remembered.get(&self.keys[code]).copied();
        match (before, self.local[code]) {
            (Some(mut b), Some(l)) => {
                b.first = b.first.min(l.first);
                b.last = b.last.max(l.last);
                b.count += l.count;
                Some(b)
            }
            (b, l) => b.or(l),
        }
    }

    fn merge_into(self, remembered: &mut Map<Seen>) {
        for (key, local) in self.keys.into_iter().zip(self.local) {
            let Some(l) = local else { continue };
            remembered
                .entry(key)
                .and_modify(|b| {
                    b.first = b.first.min(l.first);
                    b.last = b.last.max(l.last);
                    b.count += l.count;
                })
                .or_insert(l);
        }
    }
}

/// A rule's term as one key.
fn alert_key_u128(rule: usize, term: u128) -> u128 {
    term ^ (rule as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
}

/// The hash of a row's values of `columns`, within its cluster.
fn key<'a>(cluster: &str, columns: impl Iterator<Item = &'a ArrayRef>, row: usize) -> u128 {
    alert_key(cluster, columns.map(|c| display(c, row)))
}

/// A row's keys: one, or one per element when a value is a list (a binding's `subjects`).
fn keys(cluster: &str, columns: &[ArrayRef], row: usize) -> Vec<u128> {
    let mut parts: Vec<Vec<String>> = Vec::with_capacity(columns.len());
    for c in columns {
        if c.is_null(row) {
            return Vec::new();
        }
        match c.as_list_opt::<i32>() {
            Some(list) => {
                let items = list.value(row);
                parts.push(
                    (0..items.len())
                        .filter(|&i| items.is_valid(i))
                        .map(|i| display(&items, i).into_owned())
                        .collect(),
                );
            }
            None => parts.push(vec![display(c, row).into_owned()]),
        }
    }
    let mut combos: Vec<Vec<&str>> = vec![Vec::new()];
    for options in &parts {
        combos = combos
            .iter()
            .flat_map(|prefix| {
                options.iter().map(move |o| {
                    let mut next = prefix.clone();
                    next.push(o.as_str());
                    next
                })
            })
            .collect();
    }
    combos
        .iter()
        .filter(|values| values.iter().all(|v| !v.is_empty()))
        .map(|values| alert_key(cluster, values.iter()))
        .collect()
}

/// Deterministic alert IDs (replaying the same events gives the same alerts), and the keys of
/// terms and sequences: `first` and `parts`, separated, hashed.
/// The parts are joined in a buffer reused per thread and hashed at once (the same value as
/// xxh3's streaming hasher over them, which costs more to set up than most keys cost to hash).
pub(crate) fn alert_key(first: &str, parts: impl IntoIterator<Item = impl AsRef<str>>) -> u128 {
    thread_local! {
        static JOINED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    JOINED.with_borrow_mut(|joined| {
        joined.clear();
        joined.extend_from_slice(first.as_bytes());
        for p in parts {
            joined.push(0x1f);
            joined.extend_from_slice(p.as_ref().as_bytes());
        }
        xxh3_128(joined)
    })
}

fn date(micros: i64) -> String {
    timestamp_us_to_datetime(micros).map_or_else(|| "-".into(), |t| t.date().to_string())
}

fn clock(micros: i64) -> String {
    timestamp_us_to_datetime(micros).map_or_else(
        || "-".into(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// `14d`, `5m`: a window as rules write it.
fn span(micros: i64) -> String {
    let seconds = micros / 1_000_000;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds % size == 0 && seconds >= size {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_keys_stay_under_their_limit_and_the_most_recent_stay() {
        let mut terms = Remembered::new(PRUNE_FLOOR * 2);
        for i in 0..(PRUNE_FLOOR as i64 * 10) {
            terms.map.insert(i as u128, Seen::new(i));
            terms.prune(0);
            assert!(terms.map.len() <= PRUNE_FLOOR * 2, "{}", terms.map.len());
        }
        let newest = PRUNE_FLOOR as u128 * 10 - 1;
        assert!(terms.map.contains_key(&newest));
        assert!(!terms.map.contains_key(&0));
        // Keys older than the horizon go first, whatever the limit.
        terms.prune_at = 0;
        terms.prune(newest as i64 - 9);
        assert_eq!(terms.map.len(), 10);
    }

    #[test]
    fn alert_keys_are_the_streaming_hash_of_their_parts_as_stored_alert_ids_were() {
        // Alert IDs in existing lakes were made with xxh3's streaming hasher: a replay after an
        // upgrade must find the same IDs.
        let long = "x".repeat(300);
        for parts in [
            vec![],
            vec!["audit-1"],
            vec!["", "b"],
            vec![long.as_str(), "c", long.as_str()],
        ] {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(b"rule-id");
            for p in &parts {
                h.update(&[0x1f]);
                h.update(p.as_bytes());
            }
            assert_eq!(alert_key("rule-id", &parts), h.digest128(), "{parts:?}");
        }
    }

    #[test]
    fn spans_and_numbers_read_as_people_write_them() {
        assert_eq!(span(14 * 86_400_000_000), "14d");
        assert_eq!(span(300_000_000), "5m");
        assert_eq!(span(90_000_000), "90s");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(date(0), "1970-01-01");
    }
}
