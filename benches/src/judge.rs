//! Judges a rule pack on [`crate::habits`] traffic: each day replayed by a pipeline of its own
//! (as one `auditlake replay` run a day would), then recall per labelled kind (an alert of medium
//! or higher severity naming the labelled event) and the medium-and-higher alerts per day on
//! everything else.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use arrow::array::AsArray;
use auditlake_engine::Pipeline;
use auditlake_rules::{CompiledPack, RuleEngine};
use auditlake_schema::columns::{alert, column};

use crate::decode_each;
use crate::habits::Habits;

/// Severities that page someone.
pub const PAGING: &[&str] = &["critical", "high", "medium"];

/// One alert, as much of it as the verdict needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    /// `alert_id`.
    pub alert_id: String,
    /// The rule.
    pub rule: String,
    /// Its severity.
    pub severity: String,
    /// The event it names.
    pub audit_id: String,
    /// The day it was raised on, from 0.
    pub day: u32,
}

/// What the pack did.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Per labelled kind: anomalies caught, anomalies.
    pub recall: BTreeMap<String, (usize, usize)>,
    /// Per day: medium-and-higher alerts on routine traffic, by (severity, rule).
    pub noise: Vec<BTreeMap<(String, String), u64>>,
    /// Every alert raised, in order.
    pub alerts: Vec<Raised>,
    /// The largest first-seen and sequence state seen after a day, in bytes.
    pub history_bytes: usize,
}

impl Verdict {
    /// Medium-and-higher alerts on routine traffic on `day`.
    pub fn noise_on(&self, day: usize) -> u64 {
        self.noise.get(day).map_or(0, |d| d.values().sum())
    }

    /// Kinds with an anomaly no paging alert named.
    pub fn missed(&self) -> Vec<&str> {
        self.recall
            .iter()
            .filter(|(_, (caught, total))| caught < total)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Replays every day of `habits` into a lake under `data_dir`, each day with a new pipeline and
/// rule engine (their history comes from the lake), and judges the alerts.
pub fn replay_days(
    habits: &Habits,
    data_dir: &Path,
    pack: &CompiledPack,
) -> Result<Verdict, String> {
    let mut verdict = Verdict::default();
    for (day, bytes) in habits.days.iter().enumerate() {
        let engine = RuleEngine::new(pack);
        let mut pipeline = Pipeline::open(data_dir, Some(engine)).map_err(|e| e.to_string())?;
        let mut failure = None;
        let rejected = decode_each(bytes, |batch| {
            if failure.is_some() {
                return;
            }
            match pipeline.ingest(&batch) {
                Ok(ingested) => verdict.alerts.extend(rows(&ingested.alerts, day as u32)),
                Err(e) => failure = Some(e.to_string()),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if rejected > 0 {
            return Err(format!("day {day}: {rejected} lines rejected"));
        }
        pipeline.flush().map_err(|e| e.to_string())?;
        verdict.history_bytes = verdict.history_bytes.max(pipeline.history_memory_bytes());
    }
    judge(habits, &mut verdict);
    Ok(verdict)
}

/// The alerts of a batch of the `alerts` table.
pub fn rows(alerts: &arrow::record_batch::RecordBatch, day: u32) -> Vec<Raised> {
    let text = |name: &str| column(alerts, name).as_string::<i32>().clone();
    let (ids, rules, severities, audit_ids) = (
        text(alert::ALERT_ID),
        text(alert::RULE_ID),
        text(alert::SEVERITY),
        text(alert::AUDIT_ID),
    );
    (0..alerts.num_rows())
        .map(|i| Raised {
            alert_id: ids.value(i).to_string(),
            rule: rules.value(i).to_string(),
            severity: severities.value(i).to_string(),
            audit_id: audit_ids.value(i).to_string(),
            day,
        })
        .collect()
}

/// Fills in recall and noise from `verdict.alerts`.
pub fn judge(habits: &Habits, verdict: &mut Verdict) {
    let paged: HashSet<&str> = verdict
        .alerts
        .iter()
        .filter(|a| PAGING.contains(&a.severity.as_str()))
        .map(|a| a.audit_id.as_str())
        .collect();
    let mut recall: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for label in &habits.labels {
        let entry = recall.entry(label.kind.to_string()).or_default();
        entry.1 += 1;
        if paged.contains(label.audit_id.as_str()) {
            entry.0 += 1;
        }
    }
    let mut noise = vec![BTreeMap::new(); habits.days.len()];
    for a in &verdict.alerts {
        if PAGING.contains(&a.severity.as_str()) && !habits.attack.contains(&a.audit_id) {
            *noise[a.day as usize]
                .entry((a.severity.clone(), a.rule.clone()))
                .or_default() += 1;
        }
    }
    verdict.recall = recall;
    verdict.noise = noise;
}
