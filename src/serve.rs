//! `auditlake serve`: validates the flags into a start-up plan (auth, TLS, limits), starts the
//! engine's [`Service`] and, when brokers are given, the Kafka source, builds the routes and
//! serves them until SIGTERM or SIGINT; then stops the Kafka source (committing what is durable)
//! and flushes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use auditlake_engine::{
    AlertHook, Instance, QueryEngine, QueryLimits, Reservation, Service, ServiceConfig, TriageStore,
};
use auditlake_ingest::kafka::{AlertPublisher, KafkaConfig, KafkaSource, KafkaStatus};
use auditlake_ingest::webhook::{self, DurableSink, WebhookState};
use auditlake_outputs::Delivery;
use auditlake_query_api::flight::FlightServer;
use auditlake_query_api::pg::PgServer;
use auditlake_query_api::{ApiState, Auth, Scope, SourceHealth};
use auditlake_rules::RuleEngine;
use axum::middleware::{from_fn, from_fn_with_state};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::server::{self, Tls};

/// Environment variable holding tokens inline (`NAME SCOPES TOKEN` entries, `;`-separated).
const TOKENS_ENV: &str = "AUDITLAKE_TOKENS";

/// The engine's writer as the webhook's durable sink.
struct ServiceSink(Arc<Service>);

impl DurableSink for ServiceSink {
    type Reservation = Reservation;

    fn reserve(&self, bytes: usize) -> Option<Reservation> {
        self.0.try_reserve(bytes)
    }

    fn grow(&self, reservation: &mut Reservation, bytes: usize) -> bool {
        reservation.grow(&self.0, bytes)
    }

    async fn store(
        &self,
        batch: arrow::record_batch::RecordBatch,
        reservation: Reservation,
    ) -> Result<(), String> {
        self.0
            .store(batch, reservation)
            .await
            .map_err(|e| e.to_string())
    }
}

/// What the API reports on: the writer, the metrics, the sources.
struct Running {
    service: Arc<Service>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    sources: Vec<Arc<dyn SourceHealth>>,
    /// Where API calls are recorded.
    access: Arc<auditlake_engine::AccessLog>,
}

/// The Kafka consumer as a `/readyz` source.
struct KafkaHealth(Arc<KafkaStatus>);

impl SourceHealth for KafkaHealth {
    fn name(&self) -> &str {
        "kafka"
    }

    fn check(&self) -> (bool, serde_json::Value) {
        let status = &self.0;
        let failure = status.failure();
        let ready = status.connected() && failure.is_none();
        let detail = serde_json::json!({
            "connected": status.connected(),
            "assigned_partitions": status.assigned_partitions(),
            "error": failure,
        });
        (ready, detail)
    }
}

pub fn run(settings: &Settings, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let addr: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("--listen {:?} is not an IP:PORT address", args.listen))?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::load(cert, key, args.tls_client_ca.as_deref())?),
        _ => None,
    };
    let auth = auth(&args, addr, tls.as_ref())?;
    let pg_addr = extra_listener("--pg-listen", args.pg_listen.as_deref())?;
    let flight_addr = extra_listener("--flight-listen", args.flight_listen.as_deref())?;
    for extra in [pg_addr, flight_addr].into_iter().flatten() {
        refuse_open_beyond_loopback(&auth, extra, &args)?;
    }
    let mut rules = args.pipeline.rules.clone();
    if let Some(file) = args.exceptions_file.as_ref().filter(|f| f.exists()) {
        rules.dirs.push(file.clone());
    }
    let pack = crate::rules::load(&rules, settings)?;
    let engine = (!args.pipeline.no_rules).then(|| RuleEngine::new(&pack));
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let data_dir = settings.data_dir.as_path();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let instance = match &args.instance_id {
        Some(name) => Instance::named(name)?,
        None => Instance::unnamed(),
    };
    // Events whose source names no cluster: the flag, else the config file's.
    let default_cluster = args
        .pipeline
        .cluster
        .clone()
        .or_else(|| settings.cluster.clone());
    let kafka = &args.kafka;
    if kafka.kafka_brokers.is_some() && kafka.kafka_topic.is_empty() {
        bail!("--kafka-brokers needs --kafka-topic");
    }
    let publisher = match (&kafka.kafka_brokers, &kafka.alerts_kafka_topic) {
        (Some(brokers), Some(topic)) => Some(Arc::new(
            AlertPublisher::new(brokers, &kafka.kafka_options, topic)
                .context("creating the alert publisher")?,
        )),
        _ => None,
    };
    let delivery = delivery(settings, data_dir)?;
    let on_alerts = {
        let publisher = publisher.clone();
        let take_delivery = delivery.clone();
        let sync_delivery = delivery.clone();
        (publisher.is_some() || delivery.is_some()).then(|| AlertHook {
            // Written to every outbox before the events are acknowledged, and synced before
            // the write-ahead log that could raise them again is deleted.
            take: Arc::new(move |alerts: &arrow::record_batch::RecordBatch| {
                if let Some(d) = &take_delivery {
                    d.push(alerts)
                        .map_err(|e| auditlake_ingest::error_chain(&e))?;
                }
                if let Some(p) = &publisher {
                    p.publish(alerts);
                }
                Ok(())
            }),
            sync: Arc::new(move || match &sync_delivery {
                Some(d) => d.sync().map_err(|e| auditlake_ingest::error_chain(&e)),
                None => Ok(()),
            }),
        })
    };
    let service = Arc::new(
        Service::start(
            data_dir,
            engine,
            ServiceConfig {
                flush_interval: args.flush_interval,
                inflight_bytes: args.max_inflight,
                retention: args.retention,
                maintenance_interval: args.maintenance_interval,
                instance,
                lake: Some(settings.lake.clone()),
                on_alerts,
                ..ServiceConfig::default()
            },
        )
        .with_context(|| format!("opening the lake in {}", settings.lake.describe()))?,
    );
    let source = match (&kafka.kafka_brokers, kafka.kafka_topic.is_empty()) {
        (Some(brokers), false) => {
            let mut config =
                KafkaConfig::new(brokers, kafka.kafka_topic.clone(), &kafka.kafka_group);
            config.cluster_from_topic = kafka.kafka_cluster_from_topic;
            config.default_cluster = default_cluster.clone();
            config.dead_letter_topic = kafka.kafka_dead_letter_topic.clone();
            config.options = kafka.kafka_options.clone();
            config.max_message_bytes = args.max_body;
            config.time_window = Some(time_window(&args));
            let sink = Arc::new(ServiceSink(Arc::clone(&service)));
            let source = KafkaSource::start(config, sink, runtime.handle().clone())?;
            tracing::info!(
                brokers = %brokers,
                topics = ?kafka.kafka_topic,
                group = %kafka.kafka_group,
                "consuming from kafka"
            );
            Some(source)
        }
        _ => None,
    };
    let mut health: Vec<Arc<dyn SourceHealth>> = source
        .as_ref()
        .map(|s| Arc::new(KafkaHealth(s.status())) as Arc<dyn SourceHealth>)
        .into_iter()
        .collect();
    if let Some(d) = &delivery {
        d.start(runtime.handle());
        health.push(Arc::new(OutputsHealth(d.clone())));
    }
    let access = Arc::new(
        auditlake_engine::AccessLog::open(data_dir)
            .with_context(|| format!("opening the access log in {}", data_dir.display()))?,
    );
    if pack.list_files().next().is_some() {
        runtime.spawn(watch_lists(pack.clone(), Arc::clone(&access)));
    }
    let served = runtime.block_on(async {
        let (app, state) = app(
            data_dir,
            &settings.lake,
            default_cluster,
            &args,
            &pack,
            auth,
            Running {
                service: Arc::clone(&service),
                metrics,
                sources: health,
                access,
            },
        )?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Always printed (not a log line): scripts and tests read the bound port from it.
        eprintln!("auditlake: listening on {scheme}://{local}");
        tracing::info!(address = %local, tls = tls.is_some(), "server started");
        if let Some(pg) = pg_addr {
            let server = PgServer::new(&state, tls.as_ref().map(Tls::postgres_acceptor))
                .map_err(|e| anyhow::anyhow!("the PostgreSQL protocol: {e}"))?
                .with_login_within(args.header_timeout);
            let listener = tokio::net::TcpListener::bind(pg)
                .await
                .with_context(|| format!("cannot listen on {pg} (--pg-listen)"))?;
            let local = listener.local_addr()?;
            eprintln!("auditlake: postgres protocol on {local}");
            tracing::info!(address = %local, tls = tls.is_some(), "postgres protocol started");
            tokio::spawn(server.serve(listener));
        }
        if let Some(flight) = flight_addr {
            let max_rows = match args.flight_max_rows.unwrap_or(args.query_max_rows) {
                0 => None,
                n => Some(n),
            };
            let server =
                FlightServer::new(&state, max_rows).with_first_byte_within(args.header_timeout);
            let listener = tokio::net::TcpListener::bind(flight)
                .await
                .with_context(|| format!("cannot listen on {flight} (--flight-listen)"))?;
            let local = listener.local_addr()?;
            eprintln!("auditlake: flight sql on {local}");
            tracing::info!(address = %local, tls = tls.is_some(), "flight sql started");
            let acceptor = tls.as_ref().map(Tls::flight_acceptor);
            tokio::spawn(async move {
                if let Err(e) = server
                    .serve(listener, acceptor, std::future::pending())
                    .await
                {
                    tracing::error!(error = %e, "flight sql stopped");
                }
            });
        }
        server::serve(
            listener,
            app,
            tls,
            connection_limits(&args),
            shutdown_signal(),
        )
        .await
    });
    if let Some(source) = source {
        tracing::info!("stopping the kafka consumer");
        source.stop();
    }
    tracing::info!("flushing before exit");
    service.shutdown();
    if let Some(publisher) = publisher {
        publisher.flush(std::time::Duration::from_secs(10));
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    served?;
    eprintln!("auditlake: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The outputs' outboxes, from the config file's `[[alerts.outputs]]`; `None` without any.
fn delivery(settings: &Settings, data_dir: &Path) -> anyhow::Result<Option<Delivery>> {
    if settings.alerts.outputs.is_empty() {
        return Ok(None);
    }
    let mut outputs = Vec::new();
    for table in &settings.alerts.outputs {
        let output = table
            .check()
            .map_err(|e| anyhow::anyhow!("[[alerts.outputs]]: {e}"))?;
        if outputs
            .iter()
            .any(|o: &auditlake_outputs::config::Output| o.name == output.name)
        {
            bail!(
                "[[alerts.outputs]]: two outputs are named {:?}",
                output.name
            );
        }
        outputs.push(output);
    }
    let delivery = Delivery::open(data_dir, outputs, settings.alerts.console_url.clone())
        .context("opening the alert outboxes")?;
    Ok(Some(delivery))
}

/// The outputs in `/readyz`: shown, but a failing output does not make the server unready
/// (ingest goes on, and its alerts wait in the outbox).
struct OutputsHealth(Delivery);

impl SourceHealth for OutputsHealth {
    fn name(&self) -> &str {
        "outputs"
    }

    fn check(&self) -> (bool, serde_json::Value) {
        let mut detail = serde_json::Map::new();
        for (name, ok, mut about) in self.0.health() {
            about["sending"] = ok.into();
            detail.insert(name, about);
        }
        (true, serde_json::Value::Object(detail))
    }
}

/// How often IP list files (`--threat-intel`, rule lists with a `file`) are checked for changes.
const LIST_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// Re-reads the IP list files when one changes (size or modification time) and on SIGHUP. A
/// file that became unreadable or bad keeps its list as it was, and says why in the log.
async fn watch_lists(
    pack: auditlake_rules::CompiledPack,
    access: Arc<auditlake_engine::AccessLog>,
) {
    let stamp =
        |pack: &auditlake_rules::CompiledPack| -> Vec<Option<(u64, std::time::SystemTime)>> {
            pack.list_files()
                .map(|f| {
                    std::fs::metadata(f)
                        .ok()
                        .and_then(|m| Some((m.len(), m.modified().ok()?)))
                })
                .collect()
        };
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; list files are still polled");
            None
        }
    };
    let mut last = stamp(&pack);
    loop {
        let signalled = tokio::select! {
            _ = tokio::time::sleep(LIST_POLL) => false,
            Some(()) = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => true,
        };
        let now = stamp(&pack);
        if !signalled && now == last {
            continue;
        }
        last = now;
        let outcome = match pack.reload_lists() {
            Ok(changed) => {
                tracing::info!(lists = ?changed, signalled, "ip lists re-read");
                "ok".to_string()
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!(error = %error, "ip list file not re-read; its list is unchanged");
                }
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        };
        let (who, status) = match (signalled, outcome == "ok") {
            (true, true) => ("SIGHUP", 200),
            (true, false) => ("SIGHUP", 500),
            (false, true) => ("file change", 200),
            (false, false) => ("file change", 500),
        };
        access.record(&auditlake_engine::Access::new(
            who,
            "local",
            "signal",
            "reload ip lists",
            None,
            status,
            &outcome,
        ));
    }
}

/// Tokens from the file and the environment; refuses to run open beyond loopback.
fn auth(args: &ServeArgs, addr: SocketAddr, tls: Option<&Tls>) -> anyhow::Result<Auth> {
    let mut text = String::new();
    if let Some(path) = &args.tokens_file {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read tokens file {}", path.display()))?;
        text.push('\n');
    }
    // Inline tokens come from the environment only, so they stay out of the process list.
    if let Ok(inline) = std::env::var(TOKENS_ENV) {
        text.push_str(&inline);
    }
    let client_scopes = args
        .tls_client_scopes
        .iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| {
                anyhow::anyhow!(
                    "--tls-client-scopes: unknown scope {s:?} (ingest, query, triage, admin)"
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client_certs = tls.is_some_and(|t| t.verifies_clients());
    let mut auth = if text.trim().is_empty() {
        Auth::disabled()
    } else {
        Auth::with_tokens(&text).map_err(|e| anyhow::anyhow!("tokens: {e}"))?
    };
    if client_certs {
        auth = auth.with_client_cert_scopes(client_scopes);
    }
    refuse_open_beyond_loopback(&auth, addr, args)?;
    Ok(auth)
}

/// The address of a listener besides HTTP's (`--pg-listen`, `--flight-listen`), when given.
/// What one client may hold: `--max-connections` (within the descriptors this process may
/// open, raised to its hard limit first) and `--header-timeout`.
fn connection_limits(args: &ServeArgs) -> server::ConnectionLimits {
    /// Descriptors kept for the lake's files, the log, Kafka and the other listeners.
    const RESERVED: u64 = 512;
    let descriptors = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let fit = usize::try_from(descriptors.saturating_sub(RESERVED).max(64)).unwrap_or(usize::MAX);
    if args.max_connections > fit {
        tracing::warn!(
            max_connections = args.max_connections,
            descriptors,
            "fewer descriptors than --max-connections needs; serving {fit} connections at once"
        );
    }
    server::ConnectionLimits {
        max_connections: args.max_connections.min(fit),
        header_timeout: args.header_timeout,
    }
}

/// The event times the webhook and Kafka accept.
fn time_window(args: &ServeArgs) -> auditlake_schema::TimeWindow {
    auditlake_schema::TimeWindow {
        max_age: args.max_event_age.0,
        max_ahead: args.max_event_ahead.0,
    }
}

fn extra_listener(flag: &str, value: Option<&str>) -> anyhow::Result<Option<SocketAddr>> {
    value
        .map(|a| {
            a.parse()
                .with_context(|| format!("{flag} {a:?} is not an IP:PORT address"))
        })
        .transpose()
}

/// Refuses to listen on `addr` beyond loopback without authentication, unless told to.
fn refuse_open_beyond_loopback(
    auth: &Auth,
    addr: SocketAddr,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    if !auth.is_enabled() && !addr.ip().is_loopback() && !args.insecure_no_auth {
        bail!(
            "refusing to listen on {addr} without authentication: give --tokens-file (or \
             {TOKENS_ENV}), or --tls-client-ca, or --insecure-no-auth"
        );
    }
    if !auth.is_enabled() && !addr.ip().is_loopback() {
        tracing::warn!(address = %addr, "serving without authentication beyond loopback");
    }
    Ok(())
}

fn app(
    data_dir: &Path,
    lake: &auditlake_engine::Lake,
    default_cluster: Option<String>,
    args: &ServeArgs,
    pack: &auditlake_rules::CompiledPack,
    auth: Auth,
    running: Running,
) -> anyhow::Result<(axum::Router, ApiState)> {
    let Running {
        service,
        metrics,
        sources,
        access,
    } = running;
    let limits = QueryLimits {
        max_rows: Some(args.query_max_rows),
        timeout: Some(args.query_timeout),
        memory_bytes: args.query_memory,
        threads: None,
    };
    let query = QueryEngine::open_shared(lake, limits, service.shared())
        .context("opening the query engine")?;
    let triage = Arc::new(
        TriageStore::open(data_dir)
            .with_context(|| format!("opening the triage log in {}", data_dir.display()))?,
    );
    query
        .register_triage(Arc::clone(&triage))
        .context("registering the triage tables")?;
    let admin_query = query
        .with_access_log(Arc::new(auditlake_engine::AccessTable::new(Arc::clone(
            &access,
        ))))
        .context("registering the access log")?;
    let mut state = ApiState::new(Arc::new(query), pack, auth);
    state.access = Some((Arc::clone(&access), Arc::new(admin_query)));
    state.triage = Some(triage);
    state.data_dir = Some(data_dir.to_path_buf());
    state.exceptions_file = args.exceptions_file.clone();
    state.service = Some(Arc::clone(&service));
    state.metrics = Some(metrics);
    state.sources = sources;
    let auth = Arc::clone(&state.auth);
    let default_cluster_for_tokens = default_cluster.clone();
    let ingest = webhook::router(WebhookState {
        sink: Arc::new(ServiceSink(service)),
        max_body: args.max_body,
        default_cluster,
        time_window: Some(time_window(args)),
        body_timeout: args.body_timeout,
    })
    .route_layer(from_fn_with_state(
        default_cluster_for_tokens,
        auditlake_query_api::auth::require_own_cluster,
    ))
    .route_layer(from_fn_with_state(
        (auth, Scope::Ingest),
        auditlake_query_api::auth::require,
    ));
    let router = auditlake_query_api::router(state.clone())
        .merge(ingest)
        .layer(from_fn_with_state(
            access,
            auditlake_query_api::access::record,
        ))
        .layer(from_fn(auditlake_query_api::log::log_requests));
    Ok((router, state))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
