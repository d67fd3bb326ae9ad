//! [`Delivery`]: every output's outbox and its sender. New alerts are filtered per output and
//! queued durably on the pipeline thread ([`Delivery::push`]); one task per output sends the
//! oldest queued alerts, forgets them once the output accepted them, and after a failure retries
//! with exponential backoff and jitter, so an output that is down delays only itself.

use std::path::Path;
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
        Ok(Self {
            channels: Arc::new(channels),
            console_url: console_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// Queues each output's share of `alerts`, written to its outbox but not synced:
    /// [`Delivery::sync`] makes them durable.
    pub fn push(&self, alerts: &RecordBatch) -> Result<()> {
        let rules = column(alerts, alert::RULE_ID).as_string::<i32>();
        let severities = column(alerts, alert::SEVERITY).as_string::<i32>();
        let categories = column(alerts, alert::CATEGORY).as_string::<i32>();
        let clusters = column(alerts, alert::CLUSTER).as_string::<i32>();
        for channel in self.channels.iter() {
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

    /// Makes every alert pushed so far durable in its outbox.
    pub fn sync(&self) -> Result<()> {
        for channel in self.channels.iter() {
            lock(&channel.outbox).sync()?;
        }
        Ok(())
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

/// Sends `alerts` to `output` once, now, with no outbox and no retry
/// (`auditlake alerts test-output`).
pub async fn send_now(
    output: &Output,
    alerts: &RecordBatch,
    console_url: Option<&str>,
) -> std::result::Result<(), String> {
    let rows = crate::outbox::queued(alerts, 0).map_err(|e| e.to_string())?;
    let client = http_client(output)?;
    let console = console_url.map(|u| u.trim_end_matches('/'));
    match send(&client, output, &rows, console).await {
        (sent, None) if sent == rows.len() => Ok(()),
        (sent, None) => Err(format!("{sent} of {} sent", rows.len())),
        (_, Some(e)) => Err(e),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn http_client(output: &Output) -> std::result::Result<reqwest::Client, String> {
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
    builder
        .build()
        .map_err(|e| format!("output {}: {e}", output.name))
}

async fn send_loop(channel: Arc<Channel>, link: Option<String>) {
    let name = channel.output.name.clone();
    let client = match http_client(&channel.output) {
        Ok(c) => c,
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
            let _ = tokio::time::timeout(Duration::from_secs(5), channel.wake.notified()).await;
            continue;
        }
        let started = Instant::now();
        let plan = grouping.plan(&rows, started);
        let picked: Vec<Queued> = plan.send.iter().map(|(_, q)| q.clone()).collect();
        let (sent, error) = if picked.is_empty() {
            (0, None)
        } else {
            send(&client, &channel.output, &picked, link.as_deref()).await
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
            if let Err(e) = lock(&channel.outbox).ack(done) {
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
    client: &reqwest::Client,
    output: &Output,
    rows: &[Queued],
    console: Option<&str>,
) -> (usize, Option<String>) {
    let link = |id: &str| console.map(|c| format!("{c}/#/alert/{id}"));
    let values: Vec<&serde_json::Value> = rows.iter().map(|q| q.row.as_ref()).collect();
    let post = |url: &str, body: Vec<u8>| {
        let mut request = client
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
                &values,
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
            let body = serde_json::Value::Array(values.iter().map(|v| (*v).clone()).collect())
                .to_string()
                .into_bytes();
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
        Kind::SyslogTcp | Kind::SyslogUdp => {
            let host = hostname();
            let now = chrono::Utc::now();
            let lines: Vec<String> = values.iter().map(|r| syslog::line(r, &host, now)).collect();
            let sent = if output.kind == Kind::SyslogTcp {
                send_tcp(&output.target, &lines).await
            } else {
                send_udp(&output.target, &lines).await
            };
            match sent {
                Ok(()) => (rows.len(), None),
                Err(e) => (0, Some(format!("{}: {e}", output.name))),
            }
        }
    }
}

async fn send_tcp(address: &str, lines: &[String]) -> std::io::Result<()> {
    let connect = tokio::net::TcpStream::connect(address);
    let mut stream = tokio::time::timeout(SEND_TIMEOUT, connect)
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
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
        socket.send_to(line.as_bytes(), address).await?;
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
