//! Flags and subcommands. Every flag also reads an `AUDITLAKE_*` environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Kubernetes audit logs into a Parquet lake you can query with SQL.
#[derive(Debug, Parser)]
#[command(name = "auditlake", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where the lake lives [default: ./auditlake-data]
    #[arg(long, global = true, env = "AUDITLAKE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML file with defaults for these flags (`data_dir`, `cluster`)
    #[arg(long, global = true, env = "AUDITLAKE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log line format on stderr
    #[arg(
        long,
        global = true,
        env = "AUDITLAKE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest audit log files (any shape, gzip too, `-` for stdin) into the lake
    Replay(ReplayArgs),
    /// Run read-only SQL over the `events` and `alerts` tables
    Query(QueryArgs),
    /// List, test and backtest detection rules
    #[command(subcommand)]
    Rules(RulesCommand),
}

/// Where rules come from: the built-in pack, then each `--rules DIR` in order.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// A directory (or file) of rule YAML that adds to or tunes the built-in pack; repeatable
    #[arg(long = "rules", env = "AUDITLAKE_RULES", value_delimiter = ',')]
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the loaded rules: id, severity, category, enabled, source file
    List {
        #[command(flatten)]
        rules: RulesArgs,
        /// Output format [default: table on a terminal, json otherwise]
        #[arg(long)]
        format: Option<Format>,
    },
    /// Run every rule's `fires` and `silent` examples
    Test {
        #[command(flatten)]
        rules: RulesArgs,
        /// Where `FILE#LINE` example references resolve
        #[arg(long, default_value = ".")]
        examples_dir: PathBuf,
    },
    /// Run the rules over stored events and print what they would have raised
    Backtest(BacktestArgs),
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Only these rules (repeatable); default all enabled rules
    #[arg(long = "rule")]
    pub rule_ids: Vec<String>,
    /// Events at or after this time (RFC 3339, or a date)
    #[arg(long)]
    pub since: Option<String>,
    /// Events before this time (RFC 3339, or a date)
    #[arg(long)]
    pub until: Option<String>,
    /// Also store the alerts in the `alerts` table
    #[arg(long)]
    pub store: bool,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(long)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Files to ingest; `-` reads stdin
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Cluster name for every event (else a cloud wrapper's cluster name, else `default`)
    #[arg(long, env = "AUDITLAKE_CLUSTER")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Do not run detection rules
    #[arg(long)]
    pub no_rules: bool,
    /// Also print every alert to stdout as a JSON line
    #[arg(long, env = "AUDITLAKE_ALERTS_STDOUT")]
    pub alerts_stdout: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL, e.g. "SELECT verb, count(*) FROM events GROUP BY verb"
    pub sql: String,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(long, env = "AUDITLAKE_FORMAT")]
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Logs go to stderr; `RUST_LOG` picks the level (warn by default, so output stays clean).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
