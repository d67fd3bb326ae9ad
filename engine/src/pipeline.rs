//! [`Pipeline`]: one decoded batch in, its new events stored, the rules run on exactly those
//! (so a redelivery never alerts twice), and the alerts stored next to them. Threshold windows
//! are rebuilt from the stored events of the hours they reach back to, so they survive restarts.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt64Array, new_null_array};
use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use auditlake_rules::RuleEngine;
use auditlake_schema::columns::{alert, column, event};
use auditlake_schema::{alerts_schema, events_schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::instance::Instance;
use crate::lake::{ALERTS_DIR, AppendStats, LakeWriter, TableWriter};
use crate::live::SharedLake;
use crate::partition::Hour;
use auditlake_storage::Lake;
use auditlake_storage::store::FileData;

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
    /// Hours whose stored events the threshold rules have already seen (history is in the lake,
    /// so windows survive a restart).
    warmed: HashSet<Hour>,
    /// Whether the first-seen and sequence rules have been given the stored history.
    history_warmed: bool,
}

impl Pipeline {
    /// Opens the lake in `data_dir`; with `rules`, every new event is checked.
    pub fn open(data_dir: &Path, rules: Option<RuleEngine>) -> Result<Self> {
        Self::open_in(&Lake::local(data_dir), data_dir, rules)
    }

    /// Opens `lake` (spooling a remote lake's open files under `data_dir`); with `rules`,
    /// every new event is checked.
    pub fn open_in(lake: &Lake, data_dir: &Path, rules: Option<RuleEngine>) -> Result<Self> {
        Ok(Self {
            lake: LakeWriter::open_in(lake, data_dir)?,
            alerts: TableWriter::open_in(
                lake,
                data_dir,
                ALERTS_DIR,
                alerts_schema(),
                alert::EVENT_TIME,
            )?,
            rules,
            alert_counts: BTreeMap::new(),
            warmed: HashSet::new(),
            history_warmed: false,
        })
    }

    /// Like [`Pipeline::open`], with every written row shown to queries over `shared` until its
    /// file is complete.
    pub fn open_shared(
        lake: &Lake,
        data_dir: &Path,
        rules: Option<RuleEngine>,
        shared: &SharedLake,
    ) -> Result<Self> {
        let mut pipeline = Self::open_in(lake, data_dir, rules)?;
        pipeline.lake = pipeline.lake.with_live(Arc::clone(&shared.events));
        pipeline.alerts = pipeline.alerts.with_live(Arc::clone(&shared.alerts));
        Ok(pipeline)
    }

    /// Encodes each open events file on a thread of its own (see
    /// [`TableWriter::with_background_encoding`]): a replay's rules then run while the previous
    /// batch is encoded.
    pub fn with_background_encoding(mut self) -> Self {
        self.lake = self.lake.with_background_encoding();
        self
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
            for stored in self.lake.events().stored_files(hour, hour)? {
                let file = self.lake.events().read_file(&stored)?;
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.build())
                    .map_err(Error::parquet(&stored.path))?;
                for stored in reader {
                    engine
                        .warm(&stored?)
                        .map_err(|source| Error::Rules { source })?;
                }
            }
        }
        Ok(())
    }

    /// Before the first batch is stored: gives the first-seen and sequence rules every stored
    /// event from their longest history before the batch's first event on, hour by hour in time
    /// order, reading only the columns they use. Their baselines and partial sequences are thus
    /// the same after a restart or in a second `replay` as in one uninterrupted run.
    fn warm_history(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.history_warmed {
            return Ok(());
        }
        let Some(engine) = &mut self.rules else {
            return Ok(());
        };
        let Some(history) = engine.history_micros() else {
            return Ok(());
        };
        let times = column(batch, event::EVENT_TIME).as_primitive::<TimestampMicrosecondType>();
        let Some(min) = times.values().iter().min() else {
            return Ok(());
        };
        self.history_warmed = true;
        let first = Hour::of_micros(min.saturating_sub(history));
        let last = Hour(i64::MAX);
        let mut by_hour: BTreeMap<Hour, Vec<_>> = BTreeMap::new();
        for file in self.lake.events().stored_files(first, last)? {
            by_hour.entry(file.hour).or_default().push(file);
        }
        let schema = events_schema();
        let wanted: Vec<&str> = engine
            .history_columns()
            .iter()
            .map(|&i| schema.field(i).name().as_str())
            .collect();
        let started = std::time::Instant::now();
        let mut events = 0usize;
        for (hour, files) in by_hour {
            let mut batches = Vec::new();
            for file in files {
                let data = self.lake.events().read_file(&file)?;
                batches.extend(read_columns(data, &file.path, &wanted)?);
            }
            if batches.is_empty() {
                continue;
            }
            let stored = concat_batches(&schema, &batches)?;
            let order = sort_to_indices(
                column(&stored, event::EVENT_TIME),
                Some(SortOptions::default()),
                None,
            )?;
            let stored = take_record_batch(&stored, &order)?;
            events += stored.num_rows();
            engine
                .warm_history(&stored)
                .map_err(|source| Error::Rules { source })?;
            tracing::debug!(hour = hour.0, rows = stored.num_rows(), "history warmed");
        }
        tracing::info!(
            events,
            seconds = started.elapsed().as_secs_f64(),
            memory_bytes = engine.history_memory_bytes(),
            "first-seen and sequence history read from the lake"
        );
        Ok(())
    }

    /// Stores the new events of `batch`, runs the rules on them, stores the alerts.
    pub fn ingest(&mut self, batch: &RecordBatch) -> Result<Ingested> {
        self.warm_history(batch)?;
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
            match self.alert_counts.get_mut(id) {
                Some(n) => *n += 1,
                None => {
                    self.alert_counts.insert(id.to_string(), 1);
                }
            }
        }
        Ok(self.alerts.write(alerts)?)
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

    /// Starts over from what the lake holds, as a restart would, after a failed write left it
    /// unsure which rows and alerts are stored: gives up both tables' unfinished files (see
    /// [`TableWriter::reopen`]) and makes the rules forget what they saw, so the write-ahead log
    /// replayed next stores and checks each event once.
    pub fn reopen(&mut self) -> Result<()> {
        self.alerts.reopen()?;
        self.lake.reopen()?;
        if let Some(engine) = &mut self.rules {
            engine.forget();
        }
        self.warmed.clear();
        self.history_warmed = false;
        Ok(())
    }

    /// Bytes the first-seen and sequence rules' state holds (0 without rules).
    pub fn history_memory_bytes(&self) -> usize {
        self.rules
            .as_ref()
            .map_or(0, RuleEngine::history_memory_bytes)
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

/// The `wanted` columns of a lake file as `events` batches: every other column null (a time
/// column that may not be null repeats `event_time`, `event_hash` is 0), so files of older
/// schemas read too.
fn read_columns(file: FileData, path: &str, wanted: &[&str]) -> Result<Vec<RecordBatch>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::parquet(path))?;
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(Error::parquet(path))?;
    let schema = events_schema();
    let mut out = Vec::new();
    for read in reader {
        let read = read?;
        let rows = read.num_rows();
        let Some(times) = read.column_by_name(event::EVENT_TIME).cloned() else {
            continue;
        };
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| match read.column_by_name(f.name()) {
                Some(c) if c.data_type() == f.data_type() => Arc::clone(c),
                _ if f.is_nullable() => new_null_array(f.data_type(), rows),
                _ if f.data_type() == &DataType::UInt64 => {
                    Arc::new(UInt64Array::from(vec![0; rows]))
                }
                _ => Arc::clone(&times),
            })
            .collect();
        out.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
    }
    Ok(out)
}
