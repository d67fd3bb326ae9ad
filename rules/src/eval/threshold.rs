//! Threshold windows: tumbling windows aligned to the epoch, one per rule, group and start,
//! counting matching events (or distinct values) until the rule's count is reached, once.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use auditlake_schema::columns::{column, event};
use xxhash_rust::xxh3::xxh3_128;

use super::{Hit, display};
use crate::compile::{CompiledRule, Threshold};
use crate::history::alert_key;

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

/// The open threshold windows.
#[derive(Default)]
pub(super) struct Windows {
    /// (rule, hash of the group's values, window start) → window.
    open: HashMap<(usize, u128, i64), Window, foldhash::fast::RandomState>,
    /// The group's values of the row being counted, to hash.
    key: Vec<u8>,
    /// Windows open at which they are pruned next (at least [`WINDOWS_PRUNE_FLOOR`]).
    prune_at: usize,
}

#[derive(Default)]
struct Window {
    count: u64,
    /// Hashes of the distinct values seen (128 bits: a collision is as likely as a cosmic ray).
    distinct: HashSet<u128, foldhash::fast::RandomState>,
    fired: bool,
}

impl Windows {
    /// Drops windows older than [`KEEP_WINDOWS`] window lengths behind `newest` when the open
    /// ones have doubled since the last time, and the older half when all are recent.
    pub(super) fn expire(&mut self, rules: &[CompiledRule], newest: i64) {
        if self.open.len() < self.prune_at.max(WINDOWS_PRUNE_FLOOR) {
            return;
        }
        self.open.retain(|(r, _, start), _| {
            let window = rules[*r].threshold.as_ref().map_or(0, |t| t.window_micros);
            *start >= newest.saturating_sub(KEEP_WINDOWS * window)
        });
        if self.open.len() >= WINDOWS_LIMIT / 2 {
            // All recent (many groups at once): keep the newer half.
            let mut starts: Vec<i64> = self.open.keys().map(|(_, _, start)| *start).collect();
            let middle = starts.len() / 2;
            let cut = *starts.select_nth_unstable(middle).1;
            self.open.retain(|(_, _, start), _| *start > cut);
        }
        self.open.shrink_to_fit();
        self.prune_at = (2 * self.open.len()).max(WINDOWS_PRUNE_FLOOR);
    }

    /// Counts one matching event into its window; returns the alert when the window reaches the
    /// threshold (once per window).
    pub(super) fn count(
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
        let audit_id = column(batch, event::AUDIT_ID).as_string::<i32>().value(row);
        Some(Hit {
            rule: r,
            row: row as u32,
            count: n as i64,
            alert_id: format!(
                "{:032x}",
                alert_key(&rule.def.id, [group.as_str(), &start.to_string()])
            ),
            note: String::new(),
            evidence: vec![audit_id.to_string()],
        })
    }
}
