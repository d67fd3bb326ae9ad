//! The lake's tables as Delta tables, read by readers no one here wrote (Python's `deltalake`
//! and `polars`), on a local path and on a real S3-compatible server (moto's, on loopback);
//! servers writing one bucket at once, or killed in the middle of a commit; and a lake of an
//! earlier version converted in place.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::{auditlake, free_port, python, real_log_files, stderr, stdout};

/// moto's S3 server on a free loopback port, with one bucket; stopped on drop.
struct S3 {
    child: Child,
    endpoint: String,
}

const BUCKET: &str = "audit-lake";

impl S3 {
    fn start() -> S3 {
        let port = free_port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let s3 = S3 { child, endpoint };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto's server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let made = s3.python(&format!(
            "import boto3, os\n\
             boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL']).create_bucket(Bucket='{BUCKET}')"
        ));
        assert!(made.status.success(), "bucket: {}", stderr(&made));
        s3
    }

    /// The environment every client of this server gets: the standard AWS variables.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    fn python(&self, script: &str) -> Output {
        Command::new(python())
            .args(["-c", script])
            .envs(self.env())
            .output()
            .expect("python runs")
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `auditlake --data-dir DIR --lake LAKE ARGS...` with `env`.
fn on_lake(data_dir: &Path, lake: &str, env: &[(&'static str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--lake", lake])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .env_remove("AUDITLAKE_CLUSTER")
        .output()
        .expect("the auditlake binary runs")
}

/// Rows and a sample as `auditlake query` gives them.
const SAMPLE_SQL: &str = "SELECT audit_id, verb, user_name, response_code, \
     CAST(event_time AS VARCHAR) AS event_time FROM events \
     ORDER BY audit_id, event_time, verb, user_name LIMIT 25";

/// What Python's `deltalake` and `polars` read of the `events` table at `table`: its row count
/// by each, and the same sample as [`SAMPLE_SQL`], as JSON; on a local path DuckDB's count too
/// (it reads the files the table's log names: its own Delta extension is a download). These are
/// the README's snippets.
const READERS: &str = r#"
import json, os, sys
from deltalake import DeltaTable, QueryBuilder
import duckdb
import polars as pl

table = sys.argv[1]
options = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

# deltalake (its own SQL engine: `to_pyarrow_table()` reads through pyarrow's file system
# layer, which aborted the interpreter at exit about one run in three against S3)
dt = DeltaTable(table, storage_options=options)
counted = QueryBuilder().register("events", dt).execute("SELECT count(*) AS n FROM events")
rows_deltalake = counted.read_all().column("n")[0].as_py()

# DuckDB, over the Parquet files of the table's current version (local paths: reading S3 needs
# its httpfs extension)
rows_duckdb = None
if "://" not in table:
    rows_duckdb = duckdb.execute(
        "SELECT count(*) FROM read_parquet(?)", [dt.file_uris()]
    ).fetchone()[0]

# polars
df = pl.read_delta(table, storage_options=options)
sample = (
    df.select("audit_id", "verb", "user_name", "response_code", "event_time")
    .sort(["audit_id", "event_time", "verb", "user_name"], nulls_last=False)
    .head(25)
    .with_columns(pl.col("event_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f"))
)
print(json.dumps({
    "deltalake": rows_deltalake,
    "polars": df.height,
    "duckdb": rows_duckdb,
    "partitions": dt.metadata().partition_columns,
    "sample": sample.to_dicts(),
}))
"#;

/// What [`READERS`] read of the table at `table`, as JSON; panics if they fail to.
fn python_readers(table: &str, env: &[(&'static str, String)]) -> serde_json::Value {
    let read = Command::new(python())
        .args(["-c", READERS, table])
        .envs(env.iter().map(|(k, v)| (k, v.as_str())))
        .output()
        .expect("python runs");
    assert!(read.status.success(), "python readers: {}", stderr(&read));
    serde_json::from_str(&stdout(&read)).expect("json")
}

/// The rows of `events` in `lake` and their distinct audit ids, as `auditlake query` counts them.
fn stored(data_dir: &Path, lake: &str, env: &[(&'static str, String)]) -> (u64, u64) {
    let sql = "SELECT count(*) AS n, count(DISTINCT audit_id) AS d FROM events";
    let out = on_lake(data_dir, lake, env, &["query", sql, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("json");
    let count = |column: &str| rows[0][column].as_u64().expect("a count");
    (count("n"), count("d"))
}

/// Checks that the Python readers see what `auditlake query` sees in the lake `lake`.
fn readers_agree(data_dir: &Path, lake: &str, table: &str, env: &[(&'static str, String)]) {
    let out = on_lake(
        data_dir,
        lake,
        env,
        &["query", SAMPLE_SQL, "--format", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ours: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("json");
    let out = on_lake(
        data_dir,
        lake,
        env,
        &[
            "query",
            "SELECT count(*) AS n FROM events",
            "--format",
            "json",
        ],
    );
    let count: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).expect("json");
    let count = count[0]["n"].as_u64().expect("count");
    assert!(count >= 25, "the real logs hold {count} events");

    let theirs = python_readers(table, env);
    assert_eq!(
        theirs["deltalake"].as_u64(),
        Some(count),
        "deltalake's row count"
    );
    assert_eq!(theirs["polars"].as_u64(), Some(count), "polars' row count");
    if !table.contains("://") {
        assert_eq!(theirs["duckdb"].as_u64(), Some(count), "DuckDB's row count");
    }
    assert_eq!(theirs["partitions"], serde_json::json!(["date", "hour"]));
    let sample = theirs["sample"].as_array().expect("sample");
    assert_eq!(sample.len(), ours.len());
    for (a, b) in ours.iter().zip(sample) {
        for column in ["audit_id", "verb", "user_name", "response_code"] {
            assert_eq!(a[column], b[column], "{column} of {a} and {b}");
        }
        // Ours prints `2025-11-03T10:15:00.000001` (maybe without the fraction); both are µs.
        let time = |v: &serde_json::Value| {
            let s = v["event_time"]
                .as_str()
                .unwrap_or_default()
                .replace(' ', "T");
            auditlake_schema::time::parse_rfc3339_micros(&format!("{}Z", s.trim_end_matches('Z')))
        };
        assert_eq!(time(a), time(b), "event_time of {a} and {b}");
    }
}

fn replay_real(data_dir: &Path, lake: &str, env: &[(&'static str, String)]) {
    let mut args = vec!["replay".to_string()];
    args.extend(real_log_files().iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = on_lake(data_dir, lake, env, &args);
    assert!(out.status.success(), "replay: {}", stderr(&out));
}

#[test]
fn python_readers_read_the_local_events_table_as_auditlake_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let lake = lake.to_str().expect("utf-8");
    replay_real(&dir.path().join("data"), lake, &[]);
    assert!(Path::new(lake).join("events/_delta_log").is_dir());
    readers_agree(
        &dir.path().join("data"),
        lake,
        &format!("{lake}/events"),
        &[],
    );
}

#[test]
fn replay_writes_to_s3_and_python_readers_read_it_there() {
    let s3 = S3::start();
    let env = s3.env();
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = format!("s3://{BUCKET}/prod");
    replay_real(dir.path(), &lake, &env);
    // A second replay of the same logs stores nothing again: dedup reads the table's files back
    // from the bucket.
    let mut args = vec!["replay".to_string()];
    args.extend(real_log_files().iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let again = on_lake(dir.path(), &lake, &env, &args);
    assert!(
        stdout(&again).contains(" 0 events stored"),
        "{}",
        stdout(&again)
    );
    readers_agree(dir.path(), &lake, &format!("{lake}/events"), &env);
    // Nothing of the tables is on local disk: open files are spooled and uploaded.
    assert!(!dir.path().join("events").exists());
}

#[test]
fn a_lake_of_an_earlier_version_is_refused_until_converted_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::replay(dir.path(), &real_log_files());
    assert!(out.status.success(), "{}", stderr(&out));
    let before = crate::count(dir.path());
    // An earlier version wrote the same layout with no transaction log.
    for table in ["events", "alerts"] {
        std::fs::remove_dir_all(dir.path().join(table).join("_delta_log")).expect("remove log");
    }
    let refused = auditlake(dir.path(), &["query", "SELECT count(*) FROM events"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("auditlake lake convert"),
        "{}",
        stderr(&refused)
    );

    let dry = auditlake(dir.path(), &["lake", "convert", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains(" rows, "), "{}", stdout(&dry));
    assert!(stdout(&dry).contains("would add"), "{}", stdout(&dry));
    assert!(
        !dir.path().join("events/_delta_log").exists(),
        "a dry run writes nothing"
    );

    let done = auditlake(dir.path(), &["lake", "convert"]);
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(
        stdout(&done).contains(&format!("({before} rows")),
        "{}",
        stdout(&done)
    );
    assert_eq!(crate::count(dir.path()), before);
    let again = auditlake(dir.path(), &["lake", "convert"]);
    assert!(
        stdout(&again).contains("already a Delta table"),
        "{}",
        stdout(&again)
    );
}

/// Posts `batches` EventLists of `per` new events (ids `{prefix}-{batch}-{i}`) to `url`;
/// returns how many events were acknowledged.
async fn post_batches(
    url: &str,
    prefix: &str,
    batches: std::ops::Range<usize>,
    per: usize,
) -> usize {
    let client = crate::serve::client();
    let mut acked = 0;
    for b in batches {
        let items: Vec<serde_json::Value> = (0..per)
            .map(|i| {
                let mut e = crate::event(&format!("{prefix}-{b}-{i}"));
                // Spread over two hours, so flushes commit several files.
                let minute = (b * 7 + i) % 120;
                let t = format!(
                    "2025-11-03T{:02}:{:02}:00.{:06}Z",
                    10 + minute / 60,
                    minute % 60,
                    i
                );
                e["requestReceivedTimestamp"] = t.clone().into();
                e["stageTimestamp"] = t.into();
                e
            })
            .collect();
        let sent = client
            .post(format!("{url}/v1/webhook/shared"))
            .body(crate::serve::event_list(&items))
            .send()
            .await;
        if let Ok(r) = sent
            && r.status() == 200
        {
            acked += per;
        }
    }
    acked
}

/// Two servers with their own instance ids write to one bucket at once, under load, committing
/// every second; one is SIGKILLed in the middle and restarted. Every acknowledged event is in
/// the table exactly once, and a reader no one here wrote opens the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_write_one_bucket_and_a_killed_one_loses_no_acknowledged_event() {
    let s3 = S3::start();
    let env = s3.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lake = format!("s3://{BUCKET}/shared");
    let dir = tempfile::tempdir().expect("tempdir");
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let args = |id: &'static str| -> Vec<String> {
        [
            "--lake",
            &lake,
            "--instance-id",
            id,
            "--flush-interval",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (args_a, args_b) = (args("a"), args("b"));
    fn as_refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let mut a = crate::serve::Server::start(&dir_a, &as_refs(&args_a), &env_refs);
    let mut b = crate::serve::Server::start(&dir_b, &as_refs(&args_b), &env_refs);

    let (url_a, url_b) = (a.url.clone(), b.url.clone());
    let first_a = tokio::spawn(async move { post_batches(&url_a, "a", 0..40, 50).await });
    let first_b = tokio::spawn(async move { post_batches(&url_b, "b", 0..20, 50).await });
    let acked_b = first_b.await.expect("posts");
    // Killed while it keeps committing every second what it was sent.
    b.kill();
    let acked_a = first_a.await.expect("posts");
    // Restarted on its data directory: it replays its write-ahead log into the bucket.
    let mut b = crate::serve::Server::start(&dir_b, &as_refs(&args_b), &env_refs);
    let url_b = b.url.clone();
    let acked_b = acked_b + post_batches(&url_b, "b", 20..30, 50).await;
    assert_eq!(acked_a, 40 * 50, "{}", a.log());
    assert_eq!(acked_b, 30 * 50, "{}", b.log());
    assert!(a.terminate().success(), "{}", a.log());
    assert!(b.terminate().success(), "{}", b.log());

    let total = (acked_a + acked_b) as u64;
    let (rows, distinct) = stored(dir.path(), &lake, &env);
    assert_eq!(distinct, total, "every acknowledged event is there");
    assert_eq!(rows, total, "and none twice");

    let theirs = python_readers(&format!("{lake}/events"), &env);
    assert_eq!(theirs["deltalake"].as_u64(), Some(total));
    assert_eq!(theirs["polars"].as_u64(), Some(total));
}

/// Where [`Relay`] cuts the first Delta commit it sees once armed.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// The commit's PUT is held: the store never sees it (the table's data files are uploaded,
    /// the log entry naming them is not).
    BeforeStore,
    /// The store stores the commit, but its answer never reaches the writer.
    AfterStore,
}

/// A TCP relay in front of the S3 server that watches for the PUT of a log entry of the `events`
/// table (`/BUCKET/PREFIX/events/_delta_log/0…`) and, once armed, cuts the first one it sees as
/// [`Cut`] says, then reports it on the channel [`Relay::arm`] returned.
struct Relay {
    endpoint: String,
    armed: Arc<Armed>,
}

/// The cut to make and where to report it, until a commit is seen.
type Armed = Mutex<Option<(Cut, mpsc::Sender<()>)>>;

impl Relay {
    fn start(upstream: &str, prefix: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let needle = format!("PUT /{BUCKET}/{prefix}/events/_delta_log/0").into_bytes();
        let armed: Arc<Armed> = Arc::default();
        let slot = Arc::clone(&armed);
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (needle, slot) = (needle.clone(), Arc::clone(&slot));
                std::thread::spawn(move || relay_connection(client, server, &needle, &slot));
            }
        });
        Relay { endpoint, armed }
    }

    fn arm(&self, cut: Cut) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel();
        *self.armed.lock().expect("armed") = Some((cut, tx));
        rx
    }
}

/// Copies one connection both ways, cutting a watched request if the relay is armed.
fn relay_connection(mut client: TcpStream, mut server: TcpStream, needle: &[u8], armed: &Armed) {
    // Set when this connection's current request is a commit to be cut after the store: the
    // answer is swallowed and reported instead of relayed.
    let swallow: Arc<Mutex<Option<mpsc::Sender<()>>>> = Arc::default();
    let (mut from_server, mut to_client) = (
        server.try_clone().expect("clone"),
        client.try_clone().expect("clone"),
    );
    let answer = Arc::clone(&swallow);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(report) = answer.lock().expect("swallow").take() {
                // The store has answered: it holds the commit. The writer never hears so.
                let _ = report.send(());
                let _ = std::io::copy(&mut from_server, &mut std::io::sink());
                break;
            }
            if to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(std::net::Shutdown::Both);
    });
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous read, so a request line split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut window = std::mem::take(&mut tail);
        window.extend_from_slice(&buf[..n]);
        let seen = window.windows(needle.len()).any(|w| w == needle);
        tail = window[window.len().saturating_sub(needle.len())..].to_vec();
        if seen && let Some((cut, report)) = armed.lock().expect("armed").take() {
            match cut {
                Cut::BeforeStore => {
                    let _ = report.send(());
                    // Held until the writer is gone; the store sees a request cut short.
                    let _ = std::io::copy(&mut client, &mut std::io::sink());
                    break;
                }
                Cut::AfterStore => *swallow.lock().expect("swallow") = Some(report),
            }
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Both);
}

/// A server SIGKILLed in the middle of a commit to S3 (its data files uploaded and the log entry
/// not stored, or stored with the server never told) leaves a table that Python's `deltalake`
/// opens, and restarted on its data directory it commits again: every acknowledged event is in
/// the table exactly once.
async fn killed_mid_commit(cut: Cut) {
    let s3 = S3::start();
    let prefix = "cut";
    let relay = Relay::start(&s3.endpoint, prefix);
    let mut env = s3.env();
    for (k, v) in &mut env {
        if *k == "AWS_ENDPOINT_URL" {
            v.clone_from(&relay.endpoint);
        }
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lake = format!("s3://{BUCKET}/{prefix}");
    let dir = tempfile::tempdir().expect("tempdir");
    let args = [
        "--lake",
        &lake,
        "--instance-id",
        "x",
        "--flush-interval",
        "1s",
    ];
    let mut server = crate::serve::Server::start(dir.path(), &args, &env_refs);
    let mut acked = post_batches(&server.url, "x", 0..10, 50).await;

    let cut_seen = relay.arm(cut);
    acked += post_batches(&server.url, "x", 10..12, 50).await;
    let seen = tokio::task::spawn_blocking(move || cut_seen.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("join");
    assert!(seen.is_ok(), "no commit was seen: {}", server.log());
    server.kill();
    assert_eq!(acked, 12 * 50, "{}", server.log());

    // A reader opens what the killed server left.
    python_readers(&format!("{lake}/events"), &env);

    // Restarted, it replays its write-ahead log and commits on top.
    let mut server = crate::serve::Server::start(dir.path(), &args, &env_refs);
    acked += post_batches(&server.url, "x", 12..16, 50).await;
    assert_eq!(acked, 16 * 50, "{}", server.log());
    assert!(server.terminate().success(), "{}", server.log());

    let total = acked as u64;
    let (rows, distinct) = stored(dir.path(), &lake, &env);
    assert_eq!(
        distinct, total,
        "{cut:?}: every acknowledged event is there"
    );
    assert_eq!(rows, total, "{cut:?}: and none twice");
    let theirs = python_readers(&format!("{lake}/events"), &env);
    assert_eq!(theirs["deltalake"].as_u64(), Some(total), "{cut:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_before_its_commit_is_stored_leaves_a_table_that_commits_again() {
    killed_mid_commit(Cut::BeforeStore).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_before_hearing_its_commit_was_stored_stores_nothing_twice() {
    killed_mid_commit(Cut::AfterStore).await;
}
