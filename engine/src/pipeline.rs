//! [`Pipeline`]: one decoded batch in, its new events stored, the rules run on exactly those
//! (so a redelivery never alerts twice), and the alerts stored next to them. Threshold windows
//! are rebuilt from the stored events of the hours they reach back to, so they survive restarts.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::TimestampMicrosecondType;
use auditlake_rules::RuleEngine;
use auditlake_schema::alerts_schema;
use auditlake_schema::columns::{alert, column, event};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::lake::{ALERTS_DIR, AppendStats, EVENTS_DIR, LakeWriter, TableWriter};
use crate::live::SharedLake;
use crate::partition::{Hour, parquet_files};

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
    events_dir: PathBuf,
    /// Hours whose stored events the threshold rules have already seen (history is in the lake,
    /// so windows survive a restart).
    warmed: HashSet<Hour>,
}

impl Pipeline {
    /// Opens the lake under `data_dir`; with `rules`, every new event is checked.
    pub fn open(data_dir: &Path, rules: Option<RuleEngine>) -> Result<Self> {
        Ok(Self {
            lake: LakeWriter::open(data_dir)?,
            alerts: TableWriter::open(data_dir, ALERTS_DIR, alerts_schema(), alert::EVENT_TIME)?,
            rules,
            alert_counts: BTreeMap::new(),
            events_dir: data_dir.join(EVENTS_DIR),
            warmed: HashSet::new(),
        })
    }

    /// Like [`Pipeline::open`], with every written row shown to queries over `shared` until its
    /// file is complete.
    pub fn open_shared(
        data_dir: &Path,
        rules: Option<RuleEngine>,
        shared: &SharedLake,
    ) -> Result<Self> {
        let mut pipeline = Self::open(data_dir, rules)?;
        pipeline.lake = pipeline.lake.with_live(Arc::clone(&shared.events));
        pipeline.alerts = pipeline.alerts.with_live(Arc::clone(&shared.alerts));
        Ok(pipeline)
    }

    /// Names new files after `instance` (a lake shared by several servers).
    pub fn with_instance(mut self, instance: &Instance) -> Self {
        self.lake = self.lake.with_instance(instance.clone());
        self.alerts = self.alerts.with_instance(instance.clone());
        self
    }

    /// Before a batch is stored: lets the threshold rules count the stored events of every hour
    /// their windows could reach back to, once per hour.
    fn warm_thresholds(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some(engine) = &mut self.rules else {
            return Ok(());
        };
        let Some(window) = engine.max_window_micros() else {
            return Ok(());
        };
        let times = column(batch, event::EVENT_TIME).as_primitive::<TimestampMicrosecondType>();
        let (Some(min), Some(max)) = (times.values().iter().min(), times.values().iter().max())
        else {
            return Ok(());
        };
        let first = Hour::of_micros(min.saturating_sub(window)).0;
        for hour in (first..=Hour::of_micros(*max).0).map(Hour) {
            if !self.warmed.insert(hour) {
                continue;
            }
            let dir = hour.dir(&self.events_dir);
            let files = match parquet_files(&dir) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&dir)(e)),
            };
            for path in files {
                let file = File::open(&path).map_err(Error::io(&path))?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.build())
                    .map_err(Error::parquet(&path))?;
                for stored in reader {
                    engine
                        .warm(&stored?)
                        .map_err(|source| Error::Rules { source })?;
                }
            }
        }
        Ok(())
    }

    /// Stores the new events of `batch`, runs the rules on them, stores the alerts.
    pub fn ingest(&mut self, batch: &RecordBatch) -> Result<Ingested> {
        self.warm_thresholds(batch)?;
        let appended = self.lake.append(batch)?;
        let mut alerts = Vec::new();
        if let Some(engine) = &mut self.rules {
            for fresh in &appended.fresh {
                let raised = engine
                    .evaluate(fresh)
                    .map_err(|source| Error::Rules { source })?;
                if raised.num_rows() > 0 {
                    alerts.push(raised);
                }
            }
        }
        let alerts = match alerts.len() {
            0 => RecordBatch::new_empty(alerts_schema()),
            1 => alerts.remove(0),
            _ => concat_batches(&alerts_schema(), &alerts)?,
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
        let ids = column(alerts, alert::RULE_ID).as_string::<i32>();
        for id in ids.iter().flatten() {
            *self.alert_counts.entry(id.to_string()).or_default() += 1;
        }
        self.alerts.write(alerts)
    }

    /// Completes every open file of both tables; returns how many files were completed.
    ///
    /// Alerts go first: after a crash between the two, the events are replayed from the
    /// write-ahead log and raise their alerts again (same alert ids) rather than being found
    /// already stored and never alerting.
    pub fn flush(&mut self) -> Result<usize> {
        let alerts = self.alerts.flush()?;
        Ok(alerts + self.lake.flush()?)
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
