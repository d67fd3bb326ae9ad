//! The Kafka source: consumes audit events from topics in a consumer group, at least once.
//!
//! One thread polls the consumer and gathers messages into batches (up to `batch_messages`
//! messages, `batch_bytes` bytes or `batch_wait` time). Each batch is decoded on a blocking task
//! (every input shape of one message: an Event, an `EventList`, NDJSON, a cloud wrapper, plain or
//! gzip) and handed to the [`DurableSink`]; once the sink says it is durable, the batch's offsets
//! become committable. Batches finish in any order, but an offset is committed only when every
//! batch before it has finished, so a commit never covers a message that is not durable.
//!
//! A rebalance drops the polled-but-unsent messages of the revoked partitions (the next owner
//! reads them from the committed offset), waits for the batches in flight to become durable and
//! commits synchronously, so a clean rebalance hands over without duplicates. Exact redeliveries
//! after a crash are stored once by the engine's dedup.
//!
//! A message with a document that is not an audit event (a poison message) is counted, logged
//! with topic, partition and offset, copied to the dead-letter topic when one is configured, and
//! passed over: its good events are stored and the partition moves on.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use auditlake_schema::TimeWindow;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

mod messages;

use self::messages::{Received, store};
use crate::body;
pub use crate::publish::{AlertPublisher, DeliveryCounter, Outgoing, messages_of};
use crate::webhook::DurableSink;

/// The header naming the cluster a message's events come from.
pub const CLUSTER_HEADER: &str = "cluster";
/// Longest wait, at a rebalance or at shutdown, for batches in flight to become durable.
const SETTLE_WAIT: Duration = Duration::from_secs(30);
/// How often durable offsets are committed while consuming.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Why the Kafka source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSourceError {
    /// The client configuration or the subscription was refused.
    #[error("kafka: {0}")]
    Client(#[from] KafkaError),
    /// A flag has a value Kafka cannot take.
    #[error("kafka: {0}")]
    Config(String),
    /// The consumer thread could not be started.
    #[error("kafka: cannot start the consumer thread: {0}")]
    Thread(std::io::Error),
}

/// How the source connects, labels and batches.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Consumer group; instances with the same group split the partitions.
    pub group: String,
    /// Label events with their topic's name when a message has no `cluster` header.
    pub cluster_from_topic: bool,
    /// Cluster of events whose message names none (and `cluster_from_topic` is off).
    pub default_cluster: Option<String>,
    /// Where poison messages are copied; `None` counts and logs them only.
    pub dead_letter_topic: Option<String>,
    /// Further librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*`, ...); they win
    /// over the source's own settings.
    pub options: Vec<(String, String)>,
    /// Largest message payload after gzip decompression.
    pub max_message_bytes: usize,
    /// Messages in one batch at most.
    pub batch_messages: usize,
    /// Payload bytes in one batch at most.
    pub batch_bytes: usize,
    /// Longest a batch waits for more messages.
    pub batch_wait: Duration,
    /// Event times accepted; an event outside it makes its message poison.
    pub time_window: Option<TimeWindow>,
}

impl KafkaConfig {
    /// A source for `topics` in `group` with default batching.
    pub fn new(brokers: impl Into<String>, topics: Vec<String>, group: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topics,
            group: group.into(),
            cluster_from_topic: false,
            default_cluster: None,
            dead_letter_topic: None,
            options: Vec::new(),
            max_message_bytes: 64 << 20,
            batch_messages: 5000,
            batch_bytes: 8 << 20,
            batch_wait: Duration::from_millis(50),
            time_window: None,
        }
    }
}

/// A client configuration for `brokers` with the user's `options` applied last.
pub fn client_config(brokers: &str, options: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "auditlake");
    for (key, value) in options {
        config.set(key, value);
    }
    config
}

/// `KEY=VALUE` as a librdkafka property.
pub fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{text:?} is not a KEY=VALUE librdkafka property")),
    }
}

/// What `/readyz` and the logs say about the source.
#[derive(Debug, Default)]
pub struct KafkaStatus {
    connected: AtomicBool,
    assigned: AtomicUsize,
    failure: Mutex<Option<String>>,
}

impl KafkaStatus {
    /// Whether a broker connection is up (from the client's statistics, every 2 s).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Partitions this instance consumes now.
    pub fn assigned_partitions(&self) -> usize {
        self.assigned.load(Ordering::Acquire)
    }

    /// Why the consumer stopped, if it did (until a new one has started).
    pub fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    fn fail(&self, reason: String) {
        lock(&self.failure).get_or_insert(reason);
    }
}

/// A running Kafka source. [`KafkaSource::stop`] commits what is durable and leaves the group.
pub struct KafkaSource {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    status: Arc<KafkaStatus>,
}

impl KafkaSource {
    /// Subscribes and starts consuming into `sink`; decoding and storing run on `runtime`.
    pub fn start<S: DurableSink>(
        config: KafkaConfig,
        sink: Arc<S>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, KafkaSourceError> {
        if config.topics.is_empty() {
            return Err(KafkaSourceError::Config("no topic to consume".into()));
        }
        if let Some(cluster) = &config.default_cluster
            && !body::valid_cluster_name(cluster)
        {
            return Err(KafkaSourceError::Config(format!(
                "cluster name {cluster:?} must be 1 to 253 letters, digits, `-`, `_` or `.`"
            )));
        }
        let status = Arc::new(KafkaStatus::default());
        let config = Arc::new(config);
        // Subscribed here, so a bad configuration fails the start.
        let first = connect(&config, &status)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_stop, thread_status) = (Arc::clone(&stop), Arc::clone(&status));
        let thread = std::thread::Builder::new()
            .name("auditlake-kafka".into())
            .spawn(move || {
                consume(
                    first,
                    &config,
                    &sink,
                    &runtime,
                    &thread_stop,
                    &thread_status,
                );
            })
            .map_err(KafkaSourceError::Thread)?;
        Ok(Self {
            stop,
            thread: Mutex::new(Some(thread)),
            status,
        })
    }

    /// Connection and assignment, for `/readyz`.
    pub fn status(&self) -> Arc<KafkaStatus> {
        Arc::clone(&self.status)
    }

    /// Stops polling, waits for the batches in flight, commits what is durable and leaves the
    /// group. Blocks until done.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            tracing::error!("the kafka consumer thread panicked");
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type PartitionKey = (String, i32);

/// A batch handed to the sink, waiting to be durable.
struct InFlight {
    id: u64,
    /// Per partition, the offset after the batch's last message.
    next: HashMap<PartitionKey, i64>,
    done: bool,
}

struct Done {
    id: u64,
    result: Result<(), String>,
}

/// Messages on their way from the consumer to durable, shared by the poll loop and the rebalance
/// callback (which runs inside `poll`, on the same thread).
struct Flow {
    open: Vec<Received>,
    open_bytes: usize,
    opened_at: Option<Instant>,
    pending: VecDeque<InFlight>,
    next_id: u64,
    done_tx: mpsc::Sender<Done>,
    done_rx: mpsc::Receiver<Done>,
    /// Per assigned partition, the next offset to consume after everything durable.
    durable: HashMap<PartitionKey, i64>,
    uncommitted: bool,
    assigned: HashSet<PartitionKey>,
    failed: Option<String>,
}

impl Flow {
    /// Takes the finished batches; with `wait`, blocks until none is in flight (or the wait ends).
    fn settle(&mut self, wait: Option<Duration>) {
        let deadline = wait.map(|w| Instant::now() + w);
        loop {
            let next = match deadline {
                None => self.done_rx.try_recv().ok(),
                Some(_) if self.pending.iter().all(|p| p.done) || self.failed.is_some() => None,
                Some(d) => self
                    .done_rx
                    .recv_timeout(d.saturating_duration_since(Instant::now()))
                    .ok(),
            };
            let Some(done) = next else { break };
            match done.result {
                Ok(()) => {
                    if let Some(p) = self.pending.iter_mut().find(|p| p.id == done.id) {
                        p.done = true;
                    }
                }
                Err(reason) => {
                    // Never marked done: nothing at or after this batch is committed.
                    self.failed.get_or_insert(reason);
                }
            }
            while self.pending.front().is_some_and(|p| p.done) {
                let Some(finished) = self.pending.pop_front() else {
                    break;
                };
                for (partition, next) in finished.next {
                    // A partition revoked meanwhile belongs to another consumer now.
                    if self.assigned.contains(&partition) {
                        let at = self.durable.entry(partition).or_insert(next);
                        *at = (*at).max(next);
                        self.uncommitted = true;
                    }
                }
            }
        }
    }

    /// Commits every durable offset not yet committed.
    fn commit(&mut self, consumer: &BaseConsumer<SourceContext>, mode: CommitMode) {
        if !self.uncommitted || self.durable.is_empty() {
            return;
        }
        let offsets: HashMap<PartitionKey, Offset> = self
            .durable
            .iter()
            .map(|(k, v)| (k.clone(), Offset::Offset(*v)))
            .collect();
        let list = match TopicPartitionList::from_topic_map(&offsets) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list offsets to commit");
                return;
            }
        };
        match consumer.commit(&list, mode) {
            Ok(()) => {
                self.uncommitted = false;
                metrics::counter!("auditlake_kafka_commits_total").increment(1);
            }
            Err(e) => {
                metrics::counter!("auditlake_kafka_commit_failures_total").increment(1);
                tracing::warn!(error = %e, "committing offsets failed; retrying");
            }
        }
    }
}

struct SourceContext {
    status: Arc<KafkaStatus>,
    flow: Mutex<Flow>,
}

impl SourceContext {
    fn set_connected(&self, up: bool) {
        self.status.connected.store(up, Ordering::Release);
        metrics::gauge!("auditlake_kafka_connected").set(if up { 1.0 } else { 0.0 });
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        self.set_connected(statistics.brokers.values().any(|b| b.state == "UP"));
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(
                        "auditlake_kafka_consumer_lag",
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(p.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.set_connected(false);
        }
        tracing::warn!(error = %error, reason, "kafka client error");
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut flow = lock(&self.flow);
        match rebalance {
            Rebalance::Revoke(list) => {
                let revoked: HashSet<PartitionKey> = list
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                // Never sent to the sink: the next owner reads them from the committed offset.
                flow.open
                    .retain(|m| !revoked.contains(&(m.topic.clone(), m.partition)));
                flow.open_bytes = flow.open.iter().map(|m| m.payload.len()).sum();
                flow.settle(Some(SETTLE_WAIT));
                flow.commit(consumer, CommitMode::Sync);
                flow.durable.retain(|k, _| !revoked.contains(k));
                flow.assigned.retain(|k| !revoked.contains(k));
                for (topic, partition) in &revoked {
                    metrics::gauge!(
                        "auditlake_kafka_consumer_lag",
                        "topic" => topic.clone(),
                        "partition" => partition.to_string()
                    )
                    .set(0.0);
                }
                self.status
                    .assigned
                    .store(flow.assigned.len(), Ordering::Release);
                tracing::info!(
                    partitions = revoked.len(),
                    "kafka partitions revoked; committed what is durable"
                );
            }
            Rebalance::Assign(list) => {
                for e in list.elements() {
                    flow.assigned.insert((e.topic().to_string(), e.partition()));
                }
                self.status
                    .assigned
                    .store(flow.assigned.len(), Ordering::Release);
                self.set_connected(true);
                tracing::info!(
                    partitions = list.count(),
                    assigned = flow.assigned.len(),
                    "kafka partitions assigned"
                );
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "kafka rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            metrics::counter!("auditlake_kafka_commit_failures_total").increment(1);
            tracing::warn!(error = %e, "an offset commit failed; the next one covers it");
            lock(&self.flow).uncommitted = true;
        }
    }
}

/// First wait before a consumer that stopped on a failed store is started again; it doubles up
/// to [`RESTART_MAX`].
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);

/// A consumer subscribed to the topics, and the dead-letter producer.
type Connected = (BaseConsumer<SourceContext>, Option<FutureProducer>);

fn connect(config: &KafkaConfig, status: &Arc<KafkaStatus>) -> Result<Connected, KafkaSourceError> {
    let mut client = client_config(&config.brokers, &[]);
    client
        .set("group.id", &config.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "2000")
        .set("queued.max.messages.kbytes", "16384");
    for (key, value) in &config.options {
        client.set(key, value);
    }
    let (done_tx, done_rx) = mpsc::channel();
    let context = SourceContext {
        status: Arc::clone(status),
        flow: Mutex::new(Flow {
            open: Vec::new(),
            open_bytes: 0,
            opened_at: None,
            pending: VecDeque::new(),
            next_id: 0,
            done_tx,
            done_rx,
            durable: HashMap::new(),
            uncommitted: false,
            assigned: HashSet::new(),
            failed: None,
        }),
    };
    let consumer: BaseConsumer<SourceContext> = client.create_with_context(context)?;
    let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let dead_letters = match &config.dead_letter_topic {
        Some(_) => Some(client_config(&config.brokers, &config.options).create()?),
        None => None,
    };
    Ok((consumer, dead_letters))
}

/// Runs consumers until `stop`: one that stopped because a batch could not be stored (the lake's
/// disk is full, say) has committed what is durable and left the group; after a wait a new one
/// joins and goes on from those offsets, as a restart would, so the source recovers by itself
/// once the sink takes batches again. Messages fetched but not stored are fetched again.
fn consume<S: DurableSink>(
    first: Connected,
    config: &Arc<KafkaConfig>,
    sink: &Arc<S>,
    runtime: &tokio::runtime::Handle,
    stop: &Arc<AtomicBool>,
    status: &Arc<KafkaStatus>,
) {
    let mut next = Some(first);
    let mut wait = RESTART_FIRST;
    loop {
        if let Some((consumer, dead_letters)) = next.take() {
            let worker = Worker {
                consumer,
                sink: Arc::clone(sink),
                runtime: runtime.clone(),
                dead_letters,
                config: Arc::clone(config),
                stop: Arc::clone(stop),
            };
            if worker.run() {
                wait = RESTART_FIRST;
            }
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if stop.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait = (wait * 2).min(RESTART_MAX);
        match connect(config, status) {
            Ok(connected) => {
                tracing::info!("kafka consumer started again");
                metrics::counter!("auditlake_kafka_restarts_total").increment(1);
                lock(&status.failure).take();
                next = Some(connected);
            }
            Err(e) => {
                tracing::warn!(error = %e, "starting the kafka consumer again failed; retrying");
            }
        }
    }
}

struct Worker<S> {
    consumer: BaseConsumer<SourceContext>,
    sink: Arc<S>,
    runtime: tokio::runtime::Handle,
    dead_letters: Option<FutureProducer>,
    config: Arc<KafkaConfig>,
    stop: Arc<AtomicBool>,
}

impl<S: DurableSink> Worker<S> {
    /// Consumes until stopped or until a batch cannot be stored; whether it stored any batch.
    fn run(self) -> bool {
        let mut last_commit = Instant::now();
        let mut stored_any = false;
        while !self.stop.load(Ordering::Acquire) {
            let wait = {
                let mut flow = lock(&self.consumer.context().flow);
                flow.settle(None);
                if let Some(reason) = flow.failed.clone() {
                    tracing::error!(reason = %reason, "storing kafka messages failed; the consumer stops (offsets stay at what is durable) and starts again after a wait");
                    self.consumer.context().status.fail(reason);
                    break;
                }
                stored_any |= !flow.durable.is_empty();
                if last_commit.elapsed() >= COMMIT_EVERY {
                    flow.commit(&self.consumer, CommitMode::Async);
                    last_commit = Instant::now();
                }
                match flow.opened_at {
                    Some(at) if at.elapsed() >= self.config.batch_wait => {
                        self.submit(&mut flow);
                        Duration::from_millis(100)
                    }
                    Some(at) => self.config.batch_wait.saturating_sub(at.elapsed()),
                    None => Duration::from_millis(100),
                }
            };
            // No lock held: a rebalance callback may run inside poll.
            match self.consumer.poll(wait) {
                None => {}
                Some(Ok(message)) => {
                    // A fetched message proves a live broker before the next statistics do.
                    self.consumer.context().set_connected(true);
                    let received = self.receive(&message);
                    let mut flow = lock(&self.consumer.context().flow);
                    flow.open_bytes += received.payload.len();
                    flow.opened_at.get_or_insert_with(Instant::now);
                    flow.open.push(received);
                    if flow.open.len() >= self.config.batch_messages
                        || flow.open_bytes >= self.config.batch_bytes
                    {
                        self.submit(&mut flow);
                    }
                }
                Some(Err(e)) => {
                    metrics::counter!("auditlake_kafka_errors_total").increment(1);
                    tracing::warn!(error = %e, "kafka consume error");
                }
            }
        }
        let mut flow = lock(&self.consumer.context().flow);
        if flow.failed.is_none() {
            self.submit(&mut flow);
        }
        flow.settle(Some(SETTLE_WAIT));
        flow.commit(&self.consumer, CommitMode::Sync);
        drop(flow);
        self.consumer.unsubscribe();
        tracing::info!("kafka consumer stopped");
        stored_any
    }

    fn receive(&self, message: &rdkafka::message::BorrowedMessage<'_>) -> Received {
        let topic = message.topic().to_string();
        metrics::counter!("auditlake_kafka_messages_total", "topic" => topic.clone()).increment(1);
        let header = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == CLUSTER_HEADER)
                .map(|h| h.value.unwrap_or_default().to_vec())
        });
        let cluster = match header {
            Some(value) => match String::from_utf8(value) {
                Ok(name) if body::valid_cluster_name(&name) => Ok(Some(name)),
                Ok(name) => Err(format!(
                    "`cluster` header {name:?} must be 1 to 253 letters, digits, `-`, `_` or `.`"
                )),
                Err(_) => Err("`cluster` header is not UTF-8".to_string()),
            },
            None if self.config.cluster_from_topic && body::valid_cluster_name(&topic) => {
                Ok(Some(topic.clone()))
            }
            None => Ok(self.config.default_cluster.clone()),
        };
        Received {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            cluster,
            payload: message.payload().unwrap_or_default().to_vec(),
            topic,
        }
    }

    /// Hands the open batch to the sink on a task; its offsets are committable once it is done.
    fn submit(&self, flow: &mut Flow) {
        flow.opened_at = None;
        let bytes = std::mem::take(&mut flow.open_bytes);
        let messages = std::mem::take(&mut flow.open);
        if messages.is_empty() {
            return;
        }
        let mut next: HashMap<PartitionKey, i64> = HashMap::new();
        for m in &messages {
            let at = next.entry((m.topic.clone(), m.partition)).or_insert(0);
            *at = (*at).max(m.offset + 1);
        }
        let id = flow.next_id;
        flow.next_id += 1;
        flow.pending.push_back(InFlight {
            id,
            next,
            done: false,
        });
        // Back-pressure: wait for the pipeline rather than hold more than its budget.
        let reservation = loop {
            if let Some(r) = self.sink.reserve(bytes) {
                break r;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let sink = Arc::clone(&self.sink);
        let dead_letters = self.dead_letters.clone();
        let config = Arc::clone(&self.config);
        let done = flow.done_tx.clone();
        self.runtime.spawn(async move {
            let result = store(messages, reservation, &*sink, dead_letters, &config).await;
            let _ = done.send(Done { id, result });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_key_value_pairs() {
        assert_eq!(
            parse_option(" security.protocol = SASL_SSL "),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert_eq!(
            parse_option("sasl.password=a=b"),
            Ok(("sasl.password".into(), "a=b".into()))
        );
        assert!(parse_option("novalue").is_err());
        assert!(parse_option("=x").is_err());
    }
}
