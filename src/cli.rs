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
    /// Where the tables are kept, when not inside the data directory: a path, or
    /// `s3://bucket/prefix` (also `gs://`, `az://`); credentials from the environment
    #[arg(long, global = true, env = "AUDITLAKE_LAKE")]
    pub lake: Option<String>,
    /// A TOML file with defaults for these flags (`data_dir`, `lake`, `cluster`)
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
    /// Run the audit webhook receiver and the investigator HTTP API
    Serve(Box<ServeArgs>),
    /// Ingest audit log files (any shape, gzip too, `-` for stdin) into the lake
    Replay(ReplayArgs),
    /// Run read-only SQL over the `events` and `alerts` tables
    Query(QueryArgs),
    /// List, test and backtest detection rules
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Publish audit log files (any shape, gzip too, `-` for stdin) to a Kafka topic
    Produce(ProduceArgs),
    /// Alert delivery: check an output of the config file's `[[alerts.outputs]]`
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// The lake's tables: convert a data directory of an earlier version
    #[command(subcommand)]
    Lake(LakeCommand),
}

/// `auditlake lake ...`.
#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Make the hive-partitioned Parquet tables an earlier version wrote in the data directory
    /// Delta tables, in place: the files stay, one commit per table adds them
    Convert {
        /// Only say what would be added
        #[arg(long)]
        dry_run: bool,
    },
    /// Set damaged Parquet files aside: each is copied to DATA_DIR/quarantine/ and removed from
    /// its table in one commit, so queries and compaction go on with the rest
    Quarantine {
        /// The files, as a failing query or the server's log named them
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

/// `auditlake alerts ...`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Send one sample alert to the output NAME now (no outbox, no retry) and say how it went
    TestOutput {
        /// The output's `name` in the config file
        name: String,
    },
}

/// Where rules come from: the built-in pack, then each `--rules DIR` in order.
#[derive(Debug, Clone, Args)]
pub struct RulesArgs {
    /// A directory (or file) of rule YAML that adds to or tunes the built-in pack; repeatable
    #[arg(long = "rules", env = "AUDITLAKE_RULES", value_delimiter = ',')]
    pub dirs: Vec<PathBuf>,
    /// A file of IP addresses and CIDR blocks (one per line, `#` comments: a threat-intel feed,
    /// a Tor exit list) that the built-in threat-intel rules match; repeatable, re-read when it
    /// changes (and on SIGHUP under serve). Also `threat_intel = [...]` in the config file
    #[arg(
        long = "threat-intel",
        env = "AUDITLAKE_THREAT_INTEL",
        value_delimiter = ','
    )]
    pub threat_intel: Vec<PathBuf>,
    /// A cloud provider's published address ranges as downloaded (AWS ip-ranges.json, Google
    /// cloud.json, Azure Service Tags JSON, Oracle public_ip_ranges.json, or one block a line):
    /// nodes and managed identities calling from them are routine, from other public addresses
    /// they alert. Replaces the built-in snapshot of 2025-07-25 (`/dev/null`: no ranges).
    /// Repeatable, re-read when it changes. Also `cloud_ranges = [...]` in the config file
    #[arg(
        long = "cloud-ranges",
        env = "AUDITLAKE_CLOUD_RANGES",
        value_delimiter = ','
    )]
    pub cloud_ranges: Vec<PathBuf>,
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
    /// Threads reading and sorting the lake beside the one running the rules [default: every
    /// core]; the alerts are the same with any number
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(long)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Files to ingest; `-` reads stdin
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Also print every alert to stdout as a JSON line
    #[arg(long, env = "AUDITLAKE_ALERTS_STDOUT")]
    pub alerts_stdout: bool,
    /// Threads decoding [default: every core]; with more than one, reading, decoding, the rules
    /// and the Parquet encoding overlap. The lake and the alerts are the same with any number
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// JSON text per batch handed to the rules and the lake: memory per batch in flight (with N
    /// threads, about 3N batches are) against per-batch overhead
    #[arg(long, value_parser = parse_size, default_value = "8MiB")]
    pub batch_bytes: usize,
}

/// A thread count: 1 or more.
fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a thread count (1 or more)")),
    }
}

/// `--threads`, or every core.
pub fn threads_or_all(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs tokens (or --insecure-no-auth)
    #[arg(long, env = "AUDITLAKE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// File of tokens, one `NAME SCOPES TOKEN` per line (scopes: ingest, query, triage, admin)
    #[arg(long, env = "AUDITLAKE_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Serve without authentication even when listening beyond loopback
    #[arg(long, env = "AUDITLAKE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,
    /// PEM certificate chain: serve HTTPS
    #[arg(long, env = "AUDITLAKE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "AUDITLAKE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: a client certificate they sign authenticates the client
    #[arg(long, env = "AUDITLAKE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Also speak the PostgreSQL wire protocol on this address (psql, Grafana, DBeaver,
    /// psycopg): user = a token's name, password = the token; the same TLS, limits and
    /// read-only rule as HTTP. Off unless given
    #[arg(long, env = "AUDITLAKE_PG_LISTEN")]
    pub pg_listen: Option<String>,
    /// Also speak Arrow Flight SQL on this address (ADBC, the Flight SQL JDBC driver): a bearer
    /// token, or username = a token's name and password = the token; the same TLS, limits and
    /// read-only rule as HTTP. Off unless given
    #[arg(long, env = "AUDITLAKE_FLIGHT_LISTEN")]
    pub flight_listen: Option<String>,
    /// Rows one Flight SQL query streams at most (0: no limit); default --query-max-rows.
    /// Flight sends batches as they are made instead of holding the answer, so this may be
    /// raised for exports to pandas or polars
    #[arg(long, env = "AUDITLAKE_FLIGHT_MAX_ROWS")]
    pub flight_max_rows: Option<usize>,
    /// Scopes a verified client certificate grants
    #[arg(
        long,
        env = "AUDITLAKE_TLS_CLIENT_SCOPES",
        value_delimiter = ',',
        default_value = "ingest"
    )]
    pub tls_client_scopes: Vec<String>,
    /// Largest webhook body, counted after decompression (e.g. 64MiB)
    #[arg(long, env = "AUDITLAKE_MAX_BODY", default_value = "64MiB", value_parser = parse_size)]
    pub max_body: usize,
    /// Oldest event the webhook and Kafka accept, by its own time (`off`: any); older events are
    /// rejected one by one, so a forged or wrong timestamp cannot open partitions without bound
    #[arg(long, env = "AUDITLAKE_MAX_EVENT_AGE", default_value = "7d", value_parser = parse_limit)]
    pub max_event_age: Limit,
    /// How far ahead of this server's clock an event's time may be (`off`: any)
    #[arg(long, env = "AUDITLAKE_MAX_EVENT_AHEAD", default_value = "1h", value_parser = parse_limit)]
    pub max_event_ahead: Limit,
    /// Connections served at once (more wait to be accepted); at most the process's file
    /// descriptor limit less 512 kept for the lake's files
    #[arg(long, env = "AUDITLAKE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// A client that sends no request headers for this long is disconnected (slowloris, idle
    /// keep-alive); so is a PostgreSQL client not logged in, or a Flight SQL client that sent
    /// nothing, this long after connecting
    #[arg(long, env = "AUDITLAKE_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// A webhook body must arrive within this long, or the request gets 408
    #[arg(long, env = "AUDITLAKE_BODY_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub body_timeout: std::time::Duration,
    /// Accepted input not yet applied to the lake, at most; beyond it the webhook answers 429
    #[arg(long, env = "AUDITLAKE_MAX_INFLIGHT", default_value = "128MiB", value_parser = parse_size)]
    pub max_inflight: usize,
    /// Longest time rows wait in the log and live buffer before their Parquet files are written
    #[arg(long, env = "AUDITLAKE_FLUSH_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub flush_interval: std::time::Duration,
    /// Delete partitions older than this (e.g. 90d); default keep everything
    #[arg(long, env = "AUDITLAKE_RETENTION", value_parser = parse_duration)]
    pub retention: Option<std::time::Duration>,
    /// How often compaction, retention and the cleanup of replaced files run
    #[arg(long, env = "AUDITLAKE_MAINTENANCE_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub maintenance_interval: std::time::Duration,
    /// Time limit of one query
    #[arg(long, env = "AUDITLAKE_QUERY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub query_timeout: std::time::Duration,
    /// Memory for one query's sorts, joins and aggregations (shared by running queries)
    #[arg(long, env = "AUDITLAKE_QUERY_MEMORY", default_value = "1GiB", value_parser = parse_size)]
    pub query_memory: usize,
    /// Rows one query returns at most (the answer says `truncated`)
    #[arg(long, env = "AUDITLAKE_QUERY_MAX_ROWS", default_value_t = 10_000)]
    pub query_max_rows: usize,
    /// Name of this server among several sharing the data directory (each its own log and files)
    #[arg(long, env = "AUDITLAKE_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Rules file the console appends false-positive exceptions to; loaded after --rules at
    /// start (exceptions added while running apply from the next start)
    #[arg(long, env = "AUDITLAKE_EXCEPTIONS_FILE")]
    pub exceptions_file: Option<PathBuf>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// The Kafka source and the alert topic of `serve`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (`host:port,...`): consume audit events from --kafka-topic
    #[arg(long, env = "AUDITLAKE_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Topics to consume; repeatable or comma-separated
    #[arg(
        long,
        env = "AUDITLAKE_KAFKA_TOPIC",
        value_delimiter = ',',
        requires = "kafka_brokers"
    )]
    pub kafka_topic: Vec<String>,
    /// Consumer group: servers with the same group split the partitions
    #[arg(long, env = "AUDITLAKE_KAFKA_GROUP", default_value = "auditlake")]
    pub kafka_group: String,
    /// Label events with their topic's name when a message has no `cluster` header
    #[arg(long, env = "AUDITLAKE_KAFKA_CLUSTER_FROM_TOPIC")]
    pub kafka_cluster_from_topic: bool,
    /// Copy messages that are not audit events to this topic
    #[arg(
        long,
        env = "AUDITLAKE_KAFKA_DEAD_LETTER_TOPIC",
        requires = "kafka_brokers"
    )]
    pub kafka_dead_letter_topic: Option<String>,
    /// Publish every alert to this topic as JSON (keyed by alert_id)
    #[arg(long, env = "AUDITLAKE_ALERTS_KAFKA_TOPIC", requires = "kafka_brokers")]
    pub alerts_kafka_topic: Option<String>,
    /// A librdkafka property, e.g. security.protocol=SASL_SSL; repeatable
    #[arg(long = "kafka-option", env = "AUDITLAKE_KAFKA_OPTIONS", value_delimiter = ';', value_parser = parse_kafka_option)]
    pub kafka_options: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Files to publish; `-` reads stdin
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Kafka bootstrap servers (`host:port,...`)
    #[arg(long, env = "AUDITLAKE_KAFKA_BROKERS")]
    pub kafka_brokers: String,
    /// Topic to publish to
    #[arg(long, env = "AUDITLAKE_KAFKA_TOPIC")]
    pub kafka_topic: String,
    /// Set the `cluster` header of every message
    #[arg(long)]
    pub cluster: Option<String>,
    /// Batch compression
    #[arg(long, default_value = "lz4", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// A librdkafka property, e.g. security.protocol=SASL_SSL; repeatable
    #[arg(long = "kafka-option", env = "AUDITLAKE_KAFKA_OPTIONS", value_delimiter = ';', value_parser = parse_kafka_option)]
    pub kafka_options: Vec<(String, String)>,
}

fn parse_kafka_option(text: &str) -> Result<(String, String), String> {
    auditlake_ingest::kafka::parse_option(text)
}

/// How events are labelled and checked, wherever they come from.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Cluster name for events whose source names none (a file; `/v1/webhook` without a cluster
    /// in the path); else a cloud wrapper's cluster name, else `default`
    #[arg(long, env = "AUDITLAKE_CLUSTER")]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub rules: RulesArgs,
    /// Do not run detection rules
    #[arg(long)]
    pub no_rules: bool,
}

/// `64MiB`, `1GiB`, `512KiB`, `1000` (bytes).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 64MiB"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}; use KiB, MiB or GiB")),
    };
    n.checked_mul(scale)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is not a positive size"))
}

/// `30s`, `10m`, `2h`, `90d`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    auditlake_schema::time::parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 30s, 10m, 2h or 90d"))
}

/// A duration bound, or none (`off`).
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub Option<std::time::Duration>);

/// `off`, or a duration as [`parse_duration`] reads it.
pub fn parse_limit(text: &str) -> Result<Limit, String> {
    if text.trim() == "off" {
        return Ok(Limit(None));
    }
    parse_duration(text).map(|d| Limit(Some(d)))
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL, e.g. "SELECT verb, count(*) FROM events GROUP BY verb"
    pub sql: String,
    /// Output format [default: table on a terminal, json otherwise]
    #[arg(long, env = "AUDITLAKE_FORMAT")]
    pub format: Option<Format>,
    /// Print the query's own time to stderr (`time: 0.084 s`): planning, reading the files and
    /// computing the answer, not starting up or printing it
    #[arg(long)]
    pub timing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Logs go to stderr; `RUST_LOG` picks the level, else `default_level` (warn for commands, so
/// their output stays clean; info for the server, whose log is its output). The Delta libraries
/// log every snapshot they load at info, a line of several kilobytes per table and query: they
/// log warnings only unless `RUST_LOG` names them.
pub fn init_logging(format: LogFormat, default_level: &str) {
    const DELTA: &[&str] = &["buoyant_kernel", "buoyant_kernel_engine", "deltalake_core"];
    let mut spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default_level.to_string());
    for target in DELTA {
        if !spec.contains(target) {
            spec.push_str(&format!(",{target}=warn"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
