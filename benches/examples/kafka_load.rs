//! Kafka consume-to-durable benchmark: a local tansu broker, a topic filled with `--events`
//! realistic audit events (amplified from `sample-logs/`, one message per event, lz4 batches)
//! by `auditlake produce`, then `auditlake serve` consuming it from the start. Prints events/s
//! from the server's start until every event is durable (stored after the write-ahead log's
//! fsync, `auditlake_events_stored_total`) and until its offsets are committed (lag 0), and the
//! server's peak RSS. In the same run, a bare consumer (librdkafka with the server's fetch
//! settings, every message's payload touched, nothing decoded or stored) drains the same topic
//! from the same broker: the most any consumer gets from it here.
//!
//! ```sh
//! bash benches/kafka.sh --events 300000
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditlake_benches::{amplify, realistic_events};

struct Options {
    binary: PathBuf,
    tansu: PathBuf,
    events: usize,
    partitions: u32,
}

fn options() -> Options {
    let mut o = Options {
        binary: PathBuf::from("target/release/auditlake"),
        tansu: PathBuf::from("tansu"),
        events: 300_000,
        partitions: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        match pair[0].as_str() {
            "--binary" => o.binary = value.into(),
            "--tansu" => o.tansu = value.into(),
            "--events" => o.events = value.parse().expect("--events N"),
            "--partitions" => o.partitions = value.parse().expect("--partitions N"),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` over plain HTTP/1.0: the body.
fn get(addr: &str, path: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// A metric summed over its labels.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let o = options();
    let scratch = tempfile::tempdir().expect("tempdir");
    let broker_addr = format!("127.0.0.1:{}", free_port());
    let url = format!("tcp://{broker_addr}");
    let mut broker = Command::new(&o.tansu)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "sqlite://broker.db"])
        .current_dir(scratch.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&broker_addr).is_err() {
        assert!(Instant::now() < deadline, "the broker did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let created = Command::new(&o.tansu)
        .args([
            "topic",
            "create",
            "bench",
            "--partitions",
            &o.partitions.to_string(),
        ])
        .args(["--broker", &url])
        .status()
        .expect("tansu topic create");
    assert!(created.success());

    let events = realistic_events().expect("sample logs");
    let ndjson = amplify(&events, o.events);
    let lines = ndjson.iter().filter(|b| **b == b'\n').count();
    let file = scratch.path().join("events.ndjson");
    std::fs::write(&file, &ndjson).expect("write");
    let started = Instant::now();
    let produced = Command::new(&o.binary)
        .arg("produce")
        .arg(&file)
        .args(["--kafka-brokers", &broker_addr, "--kafka-topic", "bench"])
        .status()
        .expect("auditlake produce");
    assert!(produced.success());
    let produce_secs = started.elapsed().as_secs_f64();
    println!(
        "produced {lines} events ({:.1} MiB NDJSON) in {produce_secs:.1} s: {:.0} events/s",
        ndjson.len() as f64 / (1 << 20) as f64,
        lines as f64 / produce_secs
    );

    let bare = bare_consumer(&broker_addr, lines);
    println!(
        "bare consumer (librdkafka, nothing stored): {lines} events in {:.1} s ({:.0} events/s)",
        bare.as_secs_f64(),
        lines as f64 / bare.as_secs_f64()
    );

    let data = scratch.path().join("data");
    let started = Instant::now();
    let mut server = Command::new(&o.binary)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        // The generated events are of November 2025.
        .args(["--max-event-age", "off"])
        .args(["--kafka-brokers", &broker_addr, "--kafka-topic", "bench"])
        .args(["--kafka-group", "bench"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("auditlake serve");
    let mut stderr = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let api = stderr
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("auditlake: listening on http://")
                .map(str::to_string)
        })
        .expect("the server starts");
    std::thread::spawn(move || stderr.for_each(drop));

    let mut durable_at = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let text = get(&api, "/metrics");
        let stored = metric(&text, "auditlake_events_stored_total")
            + metric(&text, "auditlake_events_duplicate_total");
        if durable_at.is_none() && stored as usize >= lines {
            durable_at = Some(started.elapsed());
        }
        let lag = metric(&text, "auditlake_kafka_consumer_lag");
        let commits = metric(&text, "auditlake_kafka_commits_total");
        if durable_at.is_some() && lag == 0.0 && commits > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "not all events arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    let committed = started.elapsed();
    let durable = durable_at.unwrap_or(committed);
    let rss = peak_rss_kib(server.id());
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    let _ = broker.kill();
    let _ = broker.wait();
    println!(
        "consumed {lines} events from {} partitions: durable in {:.1} s ({:.0} events/s), \
         committed (lag 0) in {:.1} s ({:.0} events/s); server peak RSS {} MiB",
        o.partitions,
        durable.as_secs_f64(),
        lines as f64 / durable.as_secs_f64(),
        committed.as_secs_f64(),
        lines as f64 / committed.as_secs_f64(),
        rss / 1024
    );
    let _ = std::io::stdout().flush();
}

/// How long a librdkafka consumer of a new group takes from subscribing until it has received
/// `messages` messages of the topic (each payload's bytes summed, so none goes unread).
fn bare_consumer(brokers: &str, messages: usize) -> Duration {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bare")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .expect("a consumer");
    consumer.subscribe(&["bench"]).expect("subscribe");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(1800);
    let (mut seen, mut bytes) = (0usize, 0u64);
    while seen < messages {
        assert!(
            Instant::now() < deadline,
            "the bare consumer got {seen} of {messages}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                seen += 1;
                bytes += message
                    .payload()
                    .map_or(0, |p| p.iter().map(|&b| u64::from(b)).sum());
            }
            Some(Err(e)) => eprintln!("bare consumer: {e}"),
            None => {}
        }
    }
    let took = started.elapsed();
    assert!(bytes > 0);
    took
}
