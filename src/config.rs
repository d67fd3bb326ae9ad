//! Settings resolved once at start-up: a flag wins over its environment variable, which wins over
//! the `--config` file, which wins over the built-in default.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::GlobalArgs;
use auditlake_engine::Lake;

/// The default data directory, relative to where auditlake runs.
pub const DEFAULT_DATA_DIR: &str = "auditlake-data";

/// What a `--config` file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    /// Where the tables are (`--lake`).
    lake: Option<String>,
    cluster: Option<String>,
    /// Threat-intel list files, used when neither `--threat-intel` nor its variable is given.
    #[serde(default)]
    threat_intel: Vec<PathBuf>,
    /// Cloud providers' range files, used when neither `--cloud-ranges` nor its variable is given.
    #[serde(default)]
    cloud_ranges: Vec<PathBuf>,
    /// Where alerts are delivered.
    #[serde(default)]
    alerts: AlertsConfig,
}

/// The `[alerts]` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The console's address as people reach it (`https://auditlake.example`), for links in
    /// delivered alerts.
    pub console_url: Option<String>,
    /// `[[alerts.outputs]]` tables.
    #[serde(default)]
    pub outputs: Vec<auditlake_outputs::config::OutputConfig>,
}

/// Settings every command shares.
#[derive(Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Where the tables are: `--lake`, else inside the data directory.
    pub lake: Lake,
    /// Default cluster name from the config file; `--cluster` overrides it.
    pub cluster: Option<String>,
    /// Threat-intel list files from the config file; `--threat-intel` replaces them.
    pub threat_intel: Vec<PathBuf>,
    /// Cloud providers' range files from the config file; `--cloud-ranges` replaces them.
    pub cloud_ranges: Vec<PathBuf>,
    /// Alert delivery from the config file.
    pub alerts: AlertsConfig,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => load(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let lake = match args.lake.clone().or(file.lake) {
            Some(spec) => Lake::parse(&spec).with_context(|| format!("--lake {spec}"))?,
            None => Lake::local(&data_dir),
        };
        Ok(Settings {
            data_dir,
            lake,
            cluster: file.cluster,
            threat_intel: file.threat_intel,
            cloud_ranges: file.cloud_ranges,
            alerts: file.alerts,
        })
    }
}

fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}
