//! [`Delivery`]: every output's outbox and its sender. New alerts are handed to a thread of their
//! own ([`Delivery::push`]), which filters them per output and appends them to each outbox, so the
//! pipeline thread pays for none of it; [`Delivery::sync`] waits until everything pushed before it
//! is on disk. One task per output sends the oldest queued alerts, forgets them once the output
//! accepted them, and after a failure retries with exponential backoff and jitter, so an output
//! that is down delays only itself.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray};
use arrow::record_batch::RecordBatch;
use auditlake_schema::columns::{alert, column};
use tokio::io::AsyncWriteExt;

use crate::config::{Kind, Output};
use crate::error::Result;
use crate::group::Grouping;
use crate::outbox::{Outbox, Queued};
use crate::{alertmanager, slack, syslog, webhook};

/// Alerts sent in one request (one per request to Slack).
const BATCH: usize = 100;
/// The first wait after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Time one send may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a sender waits after new alerts woke it, for more to join them.
const LINGER: Duration = Duration::from_millis(50);
/// Batches of alerts waiting for the outbox writer; past this, pushing waits (backpressure).
const WRITER_QUEUE: usize = 64;

/// One output: its outbox and how its sending goes.
struct Channel {
    output: Output,
    outbox: Mutex<Outbox>,
    wake: tokio::sync::Notify,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When sending started failing, and the last error; `None` while it works.
    failing: Option<(Instant, String)>,
}

/// Every configured output.
#[derive(Clone)]
pub struct Delivery {
    channels: Arc<Vec<Arc<Channel>>>,
    /// Base URL of the console, for links in messages (`https://auditlake.example`).
    console_url: Option<String>,
    writer: Arc<Writer>,
}

/// The thread appending new alerts to the outboxes, and how to reach it.
struct Writer {
    jobs: mpsc::SyncSender<Job>,
    /// Why writing failed: alerts are dropped until the next push or sync fails with it, which
    /// clears it (the pipeline then replays what it wrote since its last sync).
    failed: Arc<Mutex<Option<Arc<crate::Error>>>>,
}

enum Job {
    Alerts(RecordBatch),
    /// Sync every outbox, then answer.
    Sync(mpsc::SyncSender<std::result::Result<(), Arc<crate::Error>>>),
}

impl Delivery {
    /// Opens the outbox of each output under `data_dir/outbox/NAME` (alerts a previous run
    /// queued and no output accepted are queued again).
    pub fn open(
        data_dir: &Path,
        outputs: Vec<Output>,
        console_url: Option<String>,
    ) -> Result<Self> {
        let mut channels = Vec::new();
        for output in outputs {
            let dir = data_dir.join("outbox").join(&output.name);
            let outbox = Outbox::open(&dir, &output.name, output.max_queue_bytes)?;
            if !outbox.is_empty() {
                tracing::info!(output = %output.name, alerts = outbox.len(), "alerts of an earlier run queued again");
            }
            channels.push(Arc::new(Channel {
                output,
                outbox: Mutex::new(outbox),
                wake: tokio::sync::Notify::new(),
                state: Mutex::new(State::default()),
            }));
        }
        let channels = Arc::new(channels);
        Ok(Self {
            writer: Arc::new(Writer::start(Arc::clone(&channels))?),
            channels,
            console_url: console_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// Hands `alerts` to the outbox writer, which queues each output's share, written but not
    /// synced: [`Delivery::sync`] makes them durable. Waits only when the writer is far behind.
    pub fn push(&self, alerts: &RecordBatch) -> Result<()> {
        self.writer.check()?;
        self.writer
            .jobs
            .send(Job::Alerts(alerts.clone()))
            .map_err(|_| self.writer.gone())
    }

    /// Makes every alert pushed so far durable in its outbox.
    pub fn sync(&self) -> Result<()> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.writer
            .jobs
            .send(Job::Sync(reply))
            .map_err(|_| self.writer.gone())?;
        answer
            .recv()
            .map_err(|_| self.writer.gone())?
            .map_err(|source| crate::Error::Writer { source })
    }

    /// Starts one sending task per output on `runtime`.
    pub fn start(&self, runtime: &tokio::runtime::Handle) {
        for channel in self.channels.iter() {
            let channel = Arc::clone(channel);
            let link = self.console_url.clone();
            runtime.spawn(async move { send_loop(channel, link).await });
        }
    }

    /// Each output's name, whether it is sending, and what to show about it (`/readyz`).
    pub fn health(&self) -> Vec<(String, bool, serde_json::Value)> {
        self.channels
            .iter()
            .map(|c| {
                let queued = lock(&c.outbox).len();
                let state = lock(&c.state);
                let detail = match &state.failing {
                    Some((since, error)) => serde_json::json!({
                        "queued": queued,
                        "failing_for_seconds": since.elapsed().as_secs(),
                        "error": error,
                    }),
                    None => serde_json::json!({ "queued": queued }),
                };
                (c.output.name.clone(), state.failing.is_none(), detail)
            })
            .collect()
    }
}

impl Writer {
    fn start(channels: Arc<Vec<Arc<Channel>>>) -> Result<Self> {
        let (jobs, queue) = mpsc::sync_channel(WRITER_QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let failure = Arc::clone(&failed);
        std::thread::Builder::new()
            .name("auditlake-outbox".into())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Alerts(alerts) => {
                            if lock(&failure).is_some() {
                                continue;
                            }
                            if let Err(e) = queue_for_each(&channels, &alerts) {
                                tracing::error!(error = ?e, "alerts could not be queued for delivery; the next sync fails, and the pipeline replays their events");
                                *lock(&failure) = Some(Arc::new(e));
                            }
                        }
                        Job::Sync(reply) => {
                            // Failed once, then cleared: the pipeline gives up what it wrote
                            // since its last sync and replays it, raising the same alerts again.
                            let done = match lock(&failure).take() {
                                Some(reason) => Err(reason),
                                None => channels
                                    .iter()
                                    .try_for_each(|c| lock(&c.outbox).sync())
                                    .map_err(Arc::new),
                            };
                            let _ = reply.send(done);
                        }
                    }
                }
            })
            .map_err(|e| crate::Error::WriterGone {
                reason: format!("cannot start: {e}"),
            })?;
        Ok(Self { jobs, failed })
    }

    /// A failure not yet reported, reported once: the pipeline then replays the events whose
    /// alerts the writer dropped since, and they are queued again.
    fn check(&self) -> Result<()> {
        match lock(&self.failed).take() {
            Some(source) => Err(crate::Error::Writer { source }),
            None => Ok(()),
        }
    }

    fn gone(&self) -> crate::Error {
        match lock(&self.failed).clone() {
            Some(source) => crate::Error::Writer { source },
            None => crate::Error::WriterGone {
                reason: "stopped".into(),
            },
        }
    }
}

/// Queues each output's share of `alerts` in its outbox, written but not synced.
fn queue_for_each(channels: &[Arc<Channel>], alerts: &RecordBatch) -> Result<()> {
    let rules = column(alerts, alert::RULE_ID).as_string::<i32>();
    let severities = column(alerts, alert::SEVERITY).as_string::<i32>();
    let categories = column(alerts, alert::CATEGORY).as_string::<i32>();
    let clusters = column(alerts, alert::CLUSTER).as_string::<i32>();
    for channel in channels {
        let wanted: BooleanArray = (0..alerts.num_rows())
            .map(|i| {
                Some(channel.output.wants(
                    rules.value(i),
                    severities.value(i),
                    categories.value(i),
                    clusters.value(i),
                ))
            })
            .collect();
        let mine = arrow::compute::filter_record_batch(alerts, &wanted)
            .map_err(|source| crate::Error::Json { source })?;
        if mine.num_rows() == 0 {
            continue;
        }
        lock(&channel.outbox).push_unsynced(&mine)?;
        channel.wake.notify_one();
    }
    Ok(())
}

/// Sends `alerts` to `output` once, now, with no outbox and no retry
/// (`auditlake alerts test-output`).
pub async fn send_now(
    output: &Output,
    alerts: &RecordBatch,
    console_url: Option<&str>,
) -> std::result::Result<(), String> {
    let rows = crate::outbox::queued(alerts, 0).map_err(|e| e.to_string())?;
    let sender = Sender::new(output)?;
    let console = console_url.map(|u| u.trim_end_matches('/'));
    match send(&sender, output, &rows, console).await {
        (sent, None) if sent == rows.len() => Ok(()),
        (sent, None) => Err(format!("{sent} of {} sent", rows.len())),
        (_, Some(e)) => Err(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What an output sends with: an HTTP client, and for syslog over TLS a connector.
struct Sender {
    http: reqwest::Client,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Sender {
    fn new(output: &Output) -> std::result::Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| format!("output {}: {e}", output.name);
        let mut builder = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .user_agent(concat!("auditlake/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &output.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("output {}: ca_file: {e}", output.name))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| fail(&e))?;
        let tls = match output.kind {
            Kind::SyslogTls => Some(tls_connector(output).map_err(|e| fail(&e))?),
            _ => None,
        };
        Ok(Self { http, tls })
    }
}

/// A TLS client trusting the system's CAs and the output's `ca_file`.
fn tls_connector(output: &Output) -> std::result::Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(pem) = &output.ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("ca_file: {e}"))?;
            roots.add(cert).map_err(|e| format!("ca_file: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate to verify the syslog server with (set ca_file)".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

async fn send_loop(channel: Arc<Channel>, link: Option<String>) {
    let name = channel.output.name.clone();
    let sender = match Sender::new(&channel.output) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(output = %name, error = %e, "output cannot send");
            lock(&channel.state).failing = Some((Instant::now(), e));
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut grouping = Grouping::new(channel.output.group_window);
    loop {
        let rows: Vec<Queued> = lock(&channel.outbox).oldest(BATCH).cloned().collect();
        if rows.is_empty() {
            // Also wakes now and then, should a notification have been missed.
            let woken = tokio::time::timeout(Duration::from_secs(5), channel.wake.notified()).await;
            if woken.is_ok() {
                // Alerts come in bursts: a moment's wait sends the burst in one request.
                tokio::time::sleep(LINGER).await;
            }
            continue;
        }
        let started = Instant::now();
        let plan = grouping.plan(&rows, started);
        let picked: Vec<Queued> = plan.send.iter().map(|(_, q)| q.clone()).collect();
        let (sent, error) = if picked.is_empty() {
            (0, None)
        } else {
            send(&sender, &channel.output, &picked, link.as_deref()).await
        };
        // The batch's alerts done with: all of them, or those before the first one not sent.
        let done = match &error {
            None => rows.len(),
            Some(_) => plan.send.get(sent).map_or(rows.len(), |(i, _)| *i),
        };
        if error.is_none() {
            let held = (rows.len() - picked.len()) as u64;
            if held > 0 {
                metrics::counter!("auditlake_output_grouped_total", "output" => name.clone())
                    .increment(held);
            }
            grouping.commit(plan);
        }
        if done > 0 {
            if let Err(e) = lock(&channel.outbox).ack_through(rows[done - 1].seq) {
                tracing::error!(output = %name, error = %e, "outbox could not forget sent alerts; they may be sent again");
            }
            metrics::counter!("auditlake_output_sent_total", "output" => name.clone())
                .increment(sent as u64);
            metrics::histogram!("auditlake_output_send_seconds", "output" => name.clone())
                .record(started.elapsed().as_secs_f64());
        }
        match error {
            None => {
                if lock(&channel.state).failing.take().is_some() {
                    tracing::info!(output = %name, "output accepts alerts again");
                }
                backoff = FIRST_BACKOFF;
            }
            Some(e) => {
                metrics::counter!("auditlake_output_failures_total", "output" => name.clone())
                    .increment(1);
                {
                    let mut state = lock(&channel.state);
                    if state.failing.is_none() {
                        tracing::warn!(output = %name, error = %e, "output refused alerts; retrying with backoff");
                    }
                    let since = state
                        .failing
                        .as_ref()
                        .map_or_else(Instant::now, |(s, _)| *s);
                    state.failing = Some((since, e));
                }
                // Full jitter: a random wait up to the backoff, so outputs that failed together
                // do not retry together.
                let wait = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                tokio::time::sleep(wait).await;
                metrics::counter!("auditlake_output_retries_total", "output" => name.clone())
                    .increment(1);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sends `rows` in order; returns how many the output accepted (a prefix) and why it stopped.
async fn send(
    sender: &Sender,
    output: &Output,
    rows: &[Queued],
    console: Option<&str>,
) -> (usize, Option<String>) {
    let link = |id: &str| console.map(|c| format!("{c}/#/alert/{id}"));
    let values: Vec<serde_json::Value> = match output.kind {
        // The webhook sends the rows' text as it is.
        Kind::Webhook => Vec::new(),
        _ => rows.iter().map(Queued::row).collect(),
    };
    let post = |url: &str, body: Vec<u8>| {
        let mut request = sender
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in &output.headers {
            request = request.header(k, v);
        }
        request
    };
    let outcome = |r: std::result::Result<reqwest::Response, reqwest::Error>| match r {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{} answered {}", output.name, r.status())),
        Err(e) => Err(format!("{}: {e}", output.name)),
    };
    match output.kind {
        Kind::Alertmanager => {
            let body = alertmanager::body(
                &values.iter().collect::<Vec<_>>(),
                chrono::Utc::now(),
                chrono::Duration::from_std(output.alert_ttl).unwrap_or(chrono::Duration::hours(1)),
                link,
            );
            let url = format!("{}/api/v2/alerts", output.target.trim_end_matches('/'));
            let mut request = post(&url, body.to_string().into_bytes());
            if let Some(token) = &output.secret {
                request = request.bearer_auth(token);
            }
            match outcome(request.send().await) {
                Ok(()) => (rows.len(), None),
                Err(e) => (0, Some(e)),
            }
        }
        Kind::Webhook => {
            let mut body =
                Vec::with_capacity(rows.iter().map(|q| q.json.len() + 1).sum::<usize>() + 2);
            body.push(b'[');
            for (i, q) in rows.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(q.json.as_bytes());
            }
            body.push(b']');
            let signature = webhook::sign(
                output.secret.as_deref().unwrap_or_default().as_bytes(),
                chrono::Utc::now().timestamp(),
                &body,
            );
            let request = post(&output.target, body).header(webhook::SIGNATURE_HEADER, signature);
            match outcome(request.send().await) {
                Ok(()) => (rows.len(), None),
                Err(e) => (0, Some(e)),
            }
        }
        Kind::Slack => {
            for (i, row) in values.iter().enumerate() {
                let id = row
                    .get("alert_id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let message = slack::message(row, link(id).as_deref());
                if let Err(e) = outcome(
                    post(&output.target, message.to_string().into_bytes())
                        .send()
                        .await,
                ) {
                    return (i, Some(e));
                }
            }
            (rows.len(), None)
        }
        Kind::SyslogTcp | Kind::SyslogTls | Kind::SyslogUdp => {
            let host = hostname();
            let now = chrono::Utc::now();
            let lines: Vec<String> = values.iter().map(|r| syslog::line(r, host, now)).collect();
            let sent = match (output.kind, &sender.tls) {
                (Kind::SyslogUdp, _) => send_udp(&output.target, &lines).await,
                (Kind::SyslogTls, Some(tls)) => send_tls(tls, &output.target, &lines).await,
                _ => send_tcp(&output.target, &lines).await,
            };
            match sent {
                Ok(()) => (rows.len(), None),
                Err(e) => (0, Some(format!("{}: {e}", output.name))),
            }
        }
    }
}

async fn connect(address: &str) -> std::io::Result<tokio::net::TcpStream> {
    tokio::time::timeout(SEND_TIMEOUT, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

async fn send_tcp(address: &str, lines: &[String]) -> std::io::Result<()> {
    write_framed(connect(address).await?, lines).await
}

/// Syslog over TLS (RFC 5425): the server's certificate must name the address's host.
async fn send_tls(
    tls: &tokio_rustls::TlsConnector,
    address: &str,
    lines: &[String],
) -> std::io::Result<()> {
    let host = match address.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => address,
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::other(format!("{host:?} is not a TLS server name: {e}")))?;
    let stream = connect(address).await?;
    let stream = tokio::time::timeout(SEND_TIMEOUT, tls.connect(name, stream))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))??;
    write_framed(stream, lines).await
}

/// Writes `lines` framed by octet counting (RFC 6587), then closes the stream.
async fn write_framed(
    mut stream: impl tokio::io::AsyncWrite + Unpin,
    lines: &[String],
) -> std::io::Result<()> {
    let mut out = String::new();
    for line in lines {
        out.push_str(&syslog::framed(line));
    }
    tokio::time::timeout(SEND_TIMEOUT, async {
        stream.write_all(out.as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::other("write timed out"))?
}

async fn send_udp(address: &str, lines: &[String]) -> std::io::Result<()> {
    let socket = tokio::net::UdpSocket::bind(if address.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .await?;
    for line in lines {
        socket
            .send_to(syslog::datagram(line).as_bytes(), address)
            .await?;
    }
    Ok(())
}

/// This machine's name, read once.
fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    })
}
