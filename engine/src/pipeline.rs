//! [`Pipeline`]: one decoded batch in, its new events stored, the rules run on exactly those
//! (so a redelivery never alerts twice), and the alerts stored next to them.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use auditlake_rules::RuleEngine;
use auditlake_schema::alerts_schema;
use auditlake_schema::columns::alert;

use crate::error::{Error, Result};
use crate::lake::{ALERTS_DIR, AppendStats, LakeWriter, TableWriter};

/// What one batch did.
#[derive(Debug)]
pub struct Ingested {
    /// Events stored and duplicates skipped.
    pub stats: AppendStats,
    /// Alerts raised (already stored).
    pub alerts: RecordBatch,
}

/// Events and alerts into the lake, rules in between.
pub struct Pipeline {
    lake: LakeWriter,
    alerts: TableWriter,
    rules: Option<RuleEngine>,
    /// Alerts raised since opening, by rule id.
    alert_counts: BTreeMap<String, u64>,
}

impl Pipeline {
    /// Opens the lake under `data_dir`; with `rules`, every new event is checked.
    pub fn open(data_dir: &Path, rules: Option<RuleEngine>) -> Result<Self> {
        Ok(Self {
            lake: LakeWriter::open(data_dir)?,
            alerts: TableWriter::open(data_dir, ALERTS_DIR, alerts_schema(), alert::EVENT_TIME)?,
            rules,
            alert_counts: BTreeMap::new(),
        })
    }

    /// Stores the new events of `batch`, runs the rules on them, stores the alerts.
    pub fn ingest(&mut self, batch: &RecordBatch) -> Result<Ingested> {
        let appended = self.lake.append(batch)?;
        let alerts = match &mut self.rules {
            Some(engine) if appended.fresh.num_rows() > 0 => engine
                .evaluate(&appended.fresh)
                .map_err(|source| Error::Rules { source })?,
            _ => RecordBatch::new_empty(alerts_schema()),
        };
        self.store_alerts(&alerts)?;
        Ok(Ingested {
            stats: appended.stats,
            alerts,
        })
    }

    /// Stores alerts raised elsewhere (a backtest with `--store`).
    pub fn store_alerts(&mut self, alerts: &RecordBatch) -> Result<()> {
        if alerts.num_rows() == 0 {
            return Ok(());
        }
        let ids = alerts
            .column_by_name(alert::RULE_ID)
            .expect("alerts batches carry rule_id")
            .as_string::<i32>();
        for id in ids.iter().flatten() {
            *self.alert_counts.entry(id.to_string()).or_default() += 1;
        }
        self.alerts.write(alerts)
    }

    /// Completes every open file of both tables.
    pub fn flush(&mut self) -> Result<()> {
        let events = self.lake.flush();
        self.alerts.flush()?;
        events
    }

    /// Events stored and duplicates skipped since opening.
    pub fn totals(&self) -> AppendStats {
        self.lake.totals()
    }

    /// Alerts raised since opening, by rule id.
    pub fn alert_counts(&self) -> &BTreeMap<String, u64> {
        &self.alert_counts
    }
}
