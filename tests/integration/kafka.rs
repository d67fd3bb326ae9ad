//! The Kafka source end to end: a real Kafka-protocol broker (tansu, SQLite storage, on a free
//! loopback port in a scratch directory), `auditlake produce` and `auditlake serve` as users run
//! them, crashes of the server and of the broker, two servers in one group sharing a lake, and
//! poison messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::serve::{Server, client, gzip, metric, ready_within, readyz, sql};
use crate::{auditlake, query, stderr};

/// A tansu broker on a free loopback port, storing in SQLite in its own scratch directory.
struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

/// The broker binary: `AUDITLAKE_TANSU`, else where `scripts/test` installs it.
fn tansu() -> PathBuf {
    let path = std::env::var_os("AUDITLAKE_TANSU").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/tansu-0.6.0/bin/tansu")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the Kafka-protocol broker is not installed at {}: run `bash scripts/test`, which installs it",
        path.display()
    );
    path
}

impl Broker {
    fn start() -> Broker {
        let port = crate::free_port();
        let mut broker = Broker {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port,
        };
        broker.spawn();
        broker
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://{}", self.addr());
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("log");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://broker.db"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the broker runs");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.addr())])
            .output()
            .expect("tansu topic create runs");
        assert!(out.status.success(), "creating {name}: {}", stderr(&out));
    }

    /// `auditlake produce FILES --kafka-topic TOPIC EXTRA...`.
    fn produce(&self, topic: &str, files: &[PathBuf], extra: &[&str]) {
        let mut args = vec!["produce".to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        args.extend([
            "--kafka-brokers".into(),
            self.addr(),
            "--kafka-topic".into(),
            topic.into(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = auditlake(self.dir.path(), &args);
        assert!(out.status.success(), "produce: {}", stderr(&out));
    }

    fn producer(&self) -> FutureProducer {
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .expect("producer")
    }

    /// Every message of `topic` (one partition), read from the start with a fresh group.
    fn read_all(&self, topic: &str, expect: usize) -> Vec<Read> {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("group.id", format!("reader-{}", uuid()))
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while out.len() < expect && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let v = String::from_utf8_lossy(h.value.unwrap_or_default());
                                (h.key.to_string(), v.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((m.payload().unwrap_or_default().to_vec(), headers));
            }
        }
        out
    }
}

/// A message read back: payload and headers.
type Read = (Vec<u8>, Vec<(String, String)>);

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn uuid() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    )
}

/// `n` distinct events named `{prefix}-{i}` as NDJSON in `dir`.
fn ndjson(dir: &Path, prefix: &str, n: usize) -> PathBuf {
    let path = dir.join(format!("{prefix}.ndjson"));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..n {
        let mut e = crate::event(&format!("{prefix}-{i}"));
        e["requestReceivedTimestamp"] = serde_json::json!(format!(
            "2025-11-03T11:{:02}:{:02}.000001Z",
            (i / 60) % 60,
            i % 60
        ));
        e["stageTimestamp"] = e["requestReceivedTimestamp"].clone();
        writeln!(file, "{e}").expect("write");
    }
    file.flush().expect("flush");
    path
}

/// Polls `SELECT count(*), count(DISTINCT ...)` on a server until `want` events are stored;
/// returns (rows, distinct events).
async fn wait_for_events(url: &str, want: u64, within: Duration) -> (u64, u64) {
    let client = client();
    let deadline = Instant::now() + within;
    loop {
        let body = sql(
            &client,
            url,
            "SELECT count(*) AS n, count(DISTINCT concat(cluster, '/', audit_id, '/', stage)) AS d FROM events",
        )
        .await;
        let row = &body["rows"][0];
        let got = (
            row["n"].as_u64().unwrap_or(0),
            row["d"].as_u64().unwrap_or(0),
        );
        if got.0 >= want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kafka_args<'a>(broker: &'a str, topic: &'a str, group: &'a str) -> Vec<&'a str> {
    vec![
        "--kafka-brokers",
        broker,
        "--kafka-topic",
        topic,
        "--kafka-group",
        group,
    ]
}

#[tokio::test]
async fn sample_logs_through_a_three_partition_topic_are_stored_once_with_their_alerts() {
    let broker = Broker::start();
    broker.create_topic("audit", 3);
    // Batch codecs, one per file (tansu 0.6 stores snappy batches but cannot serve them back).
    let files = crate::sample_log_files();
    for (i, file) in files.iter().enumerate() {
        let codec = ["gzip", "lz4", "zstd", "none"][i % 4];
        broker.produce(
            "audit",
            std::slice::from_ref(file),
            &["--cluster", "prod", "--compression", codec],
        );
    }
    // What replaying the same files stores: the reference.
    let reference = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["replay".to_string(), "--cluster".into(), "prod".into()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = auditlake(reference.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = crate::count(reference.path());
    // Sequence rules see events in arrival order, and the producer keys messages by audit ID,
    // so one identity's steps land on different partitions consumed at different paces: they
    // are compared by the sequence tests, not here.
    let alerts_sql = "SELECT rule_id, count(*) AS n FROM alerts \
                      WHERE NOT array_has(tags, 'sequence') GROUP BY rule_id ORDER BY rule_id";
    let expected_alerts = crate::by_rule(query(reference.path(), alerts_sql));
    assert!(
        expected > 150 && expected_alerts.len() > 30,
        "{expected} {expected_alerts:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "audit", "a1");
    args.extend(["--flush-interval", "1s"]);
    let mut server = Server::start(dir.path(), &args, &[]);
    let (rows, distinct) = wait_for_events(&server.url, expected, Duration::from_secs(60)).await;
    assert_eq!((rows, distinct), (expected, expected), "{}", server.log());
    let (status, ready) = readyz(&server.url).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["kafka"]["connected"], true, "{ready}");
    assert_eq!(ready["kafka"]["assigned_partitions"], 3, "{ready}");
    // Lag per partition reaches 0 once the commits land.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&server.url, "auditlake_kafka_consumer_lag").await > 0.0 {
        assert!(Instant::now() < deadline, "lag stays above 0");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.terminate().success(), "{}", server.log());

    assert_eq!(
        query(dir.path(), "SELECT DISTINCT cluster FROM events")[0]["cluster"],
        "prod"
    );
    assert_eq!(
        crate::by_rule(query(dir.path(), alerts_sql)),
        expected_alerts
    );
}

#[tokio::test]
async fn a_server_crash_and_a_broker_restart_lose_nothing_and_store_nothing_twice() {
    const FIRST: usize = 20_000;
    const SECOND: usize = 2_000;
    let mut broker = Broker::start();
    broker.create_topic("restart", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    broker.produce("restart", &[ndjson(dir.path(), "first", FIRST)], &[]);

    // Small batches, so the kill comes with some stored, some only polled, some uncommitted.
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "restart", "r1");
    args.extend(["--flush-interval", "1s"]);
    let options = [(
        "AUDITLAKE_KAFKA_OPTIONS",
        "fetch.max.bytes=65536;message.max.bytes=65536;max.partition.fetch.bytes=16384",
    )];
    let mut server = Server::start(&data, &args, &options);
    let (stored, _) = wait_for_events(&server.url, 1, Duration::from_secs(60)).await;
    assert!(stored > 0, "{}", server.log());
    server.kill();

    let mut server = Server::start(&data, &args, &options);
    let (rows, distinct) =
        wait_for_events(&server.url, FIRST as u64, Duration::from_secs(120)).await;
    assert_eq!(
        (rows, distinct),
        (FIRST as u64, FIRST as u64),
        "{}",
        server.log()
    );

    // The broker goes away and comes back on the same port and storage.
    broker.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.spawn();
    broker.produce("restart", &[ndjson(dir.path(), "second", SECOND)], &[]);
    let want = (FIRST + SECOND) as u64;
    let (rows, distinct) = wait_for_events(&server.url, want, Duration::from_secs(120)).await;
    assert_eq!(
        (rows, distinct),
        (want, want),
        "{}\n{}",
        server.log(),
        broker.log()
    );
    // Readiness follows the connection within one statistics interval (2 s).
    let (status, ready) = ready_within(&server.url, Duration::from_secs(5)).await;
    assert_eq!(status, 200, "{ready}");
    assert!(server.terminate().success());
}

#[tokio::test]
async fn two_servers_in_one_group_share_a_lake_split_the_partitions_and_hand_them_over() {
    const EVENTS: usize = 6_000;
    let broker = Broker::start();
    broker.create_topic("shared", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let addr = broker.addr();
    let mut servers = Vec::new();
    for id in ["a", "b"] {
        let mut args = kafka_args(&addr, "shared", "s1");
        args.extend(["--flush-interval", "1s", "--instance-id", id]);
        servers.push(Server::start(&data, &args, &[]));
    }
    // Produce only once the group is settled: no rebalance mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut split = Vec::new();
        for s in &servers {
            split.push(
                readyz(&s.url).await.1["kafka"]["assigned_partitions"]
                    .as_u64()
                    .unwrap_or(0),
            );
        }
        if split.iter().sum::<u64>() == 3 && split.iter().all(|n| *n > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group did not settle: {split:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    broker.produce("shared", &[ndjson(dir.path(), "shared", EVENTS)], &[]);
    // Each server sees the other's rows once their files are complete.
    for s in &servers {
        let (rows, distinct) =
            wait_for_events(&s.url, EVENTS as u64, Duration::from_secs(120)).await;
        assert_eq!(
            (rows, distinct),
            (EVENTS as u64, EVENTS as u64),
            "{}",
            s.log()
        );
    }
    // b leaves (SIGTERM) while more events stream in: a takes its partitions over from what b
    // committed, and the hand-over neither skips nor repeats a message.
    let more = ndjson(dir.path(), "more", EVENTS);
    let producing = {
        let broker_dir = broker.dir.path().to_path_buf();
        let addr = broker.addr();
        std::thread::spawn(move || {
            let args = [
                "produce",
                more.to_str().expect("utf-8"),
                "--kafka-brokers",
                addr.as_str(),
                "--kafka-topic",
                "shared",
            ];
            let out = auditlake(&broker_dir, &args);
            assert!(out.status.success(), "{}", stderr(&out));
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut b = servers.pop().expect("b");
    assert!(b.terminate().success(), "{}", b.log());
    producing.join().expect("produced");
    let a = &mut servers[0];
    let want = 2 * EVENTS as u64;
    let (rows, distinct) = wait_for_events(&a.url, want, Duration::from_secs(120)).await;
    assert_eq!((rows, distinct), (want, want), "{}\n{}", a.log(), b.log());
    assert!(a.terminate().success(), "{}", a.log());
    let rows = query(
        &data,
        "SELECT count(*) AS n, count(DISTINCT audit_id) AS d FROM events",
    );
    assert_eq!(
        (rows[0]["n"].as_u64(), rows[0]["d"].as_u64()),
        (Some(want), Some(want))
    );
    // Both wrote, each under its own name, each with its own log.
    let names: Vec<String> = walk(&data.join("events"))
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    for id in ["a", "b"] {
        assert!(
            names.iter().any(|n| n.starts_with(&format!("part-{id}-"))),
            "{names:?}"
        );
        assert!(data.join(format!("wal-{id}")).is_dir());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn a_poison_message_is_counted_dead_lettered_and_passed_over() {
    let broker = Broker::start();
    for topic in ["edge-cluster", "dead", "alerts"] {
        broker.create_topic(topic, 1);
    }
    let producer = broker.producer();
    let send = |payload: Vec<u8>, cluster: Option<&'static str>| {
        let producer = producer.clone();
        async move {
            let mut record = FutureRecord::<(), _>::to("edge-cluster").payload(&payload);
            if let Some(c) = cluster {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "cluster",
                    value: Some(c),
                }));
            }
            producer
                .send(record, Duration::from_secs(10))
                .await
                .expect("sent");
        }
    };
    let good = |id: &str| serde_json::to_vec(&crate::event(id)).expect("json");
    send(good("good-1"), None).await;
    send(b"{\"this is\": not json".to_vec(), None).await;
    // A gzip payload holding an EventList of two events, labelled by its header.
    let list = crate::serve::event_list(&[crate::event("zipped-1"), crate::event("zipped-2")]);
    send(gzip(&list), Some("prod-eu")).await;
    send(good("good-2"), Some("bad cluster name")).await;
    send(good("good-3"), None).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "edge-cluster", "p1");
    args.extend([
        "--kafka-cluster-from-topic",
        "--kafka-dead-letter-topic",
        "dead",
        "--alerts-kafka-topic",
        "alerts",
    ]);
    let mut server = Server::start(dir.path(), &args, &[]);
    let (rows, _) = wait_for_events(&server.url, 4, Duration::from_secs(60)).await;
    assert_eq!(rows, 4, "{}", server.log());
    let client = client();
    let labels = sql(
        &client,
        &server.url,
        "SELECT audit_id, cluster FROM events ORDER BY audit_id",
    )
    .await;
    let labels: Vec<(String, String)> = labels["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["audit_id"].as_str().unwrap_or_default().into(),
                r["cluster"].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    let pair = |a: &str, c: &str| (a.to_string(), c.to_string());
    assert_eq!(
        labels,
        vec![
            pair("good-1", "edge-cluster"),
            pair("good-3", "edge-cluster"),
            pair("zipped-1", "prod-eu"),
            pair("zipped-2", "prod-eu"),
        ]
    );
    assert_eq!(
        metric(&server.url, "auditlake_kafka_poison_messages_total").await,
        2.0
    );
    let log = server.log();
    assert!(
        log.contains("offset=1") && log.contains("offset=3"),
        "{log}"
    );

    let dead = broker.read_all("dead", 2);
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].0, b"{\"this is\": not json");
    assert!(
        dead[0]
            .1
            .contains(&("auditlake.source.offset".into(), "1".into())),
        "{:?}",
        dead[0].1
    );
    assert!(
        dead[1]
            .1
            .contains(&("auditlake.source.offset".into(), "3".into())),
        "{:?}",
        dead[1].1
    );

    // The four 403s on kube-system secrets raise alerts, published as JSON.
    let stored = sql(&client, &server.url, "SELECT count(*) AS n FROM alerts").await;
    let stored = stored["rows"][0]["n"].as_u64().expect("n") as usize;
    assert!(stored >= 4, "{stored}");
    let published = broker.read_all("alerts", stored);
    assert_eq!(published.len(), stored);
    let alert: serde_json::Value = serde_json::from_slice(&published[0].0).expect("JSON alert");
    assert!(
        alert["rule_id"].is_string() && alert["alert_id"].is_string(),
        "{alert}"
    );
    assert!(server.terminate().success());
}

/// Injected: every fsync of the write-ahead log fails (`io_errors.c`), so no batch can be stored.
/// The consumer stops with the reason on `/readyz`, commits nothing it did not store, and is
/// started again after a wait until a store succeeds; then every message is stored once.
#[tokio::test]
async fn a_consumer_stopped_by_a_failing_store_starts_again_by_itself() {
    const EVENTS: usize = 2_000;
    let broker = Broker::start();
    broker.create_topic("faults", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let library = crate::io_errors::build_injector(dir.path());
    let control = dir.path().join("faults");
    std::fs::write(&control, "fsync /wal/\n").expect("control file");
    broker.produce("faults", &[ndjson(dir.path(), "stopped", EVENTS)], &[]);
    let addr = broker.addr();
    let mut args = kafka_args(&addr, "faults", "f1");
    args.extend(["--flush-interval", "1s"]);
    let env = [
        ("LD_PRELOAD", library.to_str().expect("utf-8")),
        ("AUDITLAKE_IO_ERRORS", control.to_str().expect("utf-8")),
    ];
    let mut server = Server::start(&dir.path().join("data"), &args, &env);
    let deadline = Instant::now() + Duration::from_secs(30);
    let said = loop {
        let (status, ready) = readyz(&server.url).await;
        if let Some(error) = ready["kafka"]["error"].as_str() {
            assert_eq!(status, 503, "{ready}");
            break error.to_string();
        }
        assert!(Instant::now() < deadline, "{ready}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(said.contains("write-ahead log"), "{said}");
    assert!(said.contains("Input/output error"), "{said}");
    let (stored, _) = wait_for_events(&server.url, 1, Duration::from_secs(2)).await;
    assert_eq!(stored, 0);

    std::fs::write(&control, "").expect("control file");
    let stopped = Instant::now();
    let want = EVENTS as u64;
    let (rows, distinct) = wait_for_events(&server.url, want, Duration::from_secs(90)).await;
    assert_eq!((rows, distinct), (want, want), "{}", server.log());
    let (status, ready) = ready_within(&server.url, Duration::from_secs(10)).await;
    assert_eq!(status, 200, "{ready}");
    let restarts = metric(&server.url, "auditlake_kafka_restarts_total").await;
    println!(
        "kafka with a failing log fsync: {want} produced, {rows} stored ({distinct} distinct) \
         {:.1} s after the error stopped; consumer started again {restarts} times",
        stopped.elapsed().as_secs_f64()
    );
    assert!(restarts >= 1.0);
    assert!(server.terminate().success());
}
