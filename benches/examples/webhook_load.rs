//! Load test of the audit webhook: starts `auditlake serve` (a release build) on a temporary data
//! directory, drives it with many concurrent `EventList` posts for a while, and reports accepted
//! events/s, acknowledgement latency percentiles and the server's peak RSS.
//!
//! Every request carries `--events` distinct events (kube-apiserver's default webhook batch is
//! 400), made unique by writing a request counter into their audit IDs, so the server stores
//! every one rather than skipping duplicates. Run through `benches/load.sh`, or:
//!
//! ```text
//! cargo run --release -p auditlake-benches --example webhook_load -- \
//!     --binary target/release/auditlake --duration 60 --connections 16 --events 400
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditlake_benches::realistic_events;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Placeholder written into every audit ID, replaced per request by the request number.
const MARK: &[u8; 16] = b"@@@@@@@@@@@@@@@@";

struct Options {
    binary: String,
    duration: Duration,
    connections: usize,
    events: usize,
    /// A config file for the server (say, with alert outputs).
    config: Option<String>,
}

fn options() -> Options {
    let mut o = Options {
        binary: "target/release/auditlake".into(),
        duration: Duration::from_secs(60),
        connections: 16,
        events: 400,
        config: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--binary" => o.binary = value.into(),
            "--duration" => {
                o.duration = Duration::from_secs(value.parse().expect("--duration SECONDS"))
            }
            "--connections" => o.connections = value.parse().expect("--connections N"),
            "--events" => o.events = value.parse().expect("--events N"),
            "--config" => o.config = Some(value.into()),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// An EventList of `n` events whose audit IDs hold [`MARK`], and the offsets of every mark.
fn template(n: usize) -> (Vec<u8>, Vec<usize>) {
    let events = realistic_events().expect("sample-logs");
    let items: Vec<serde_json::Value> = events
        .iter()
        .cycle()
        .take(n)
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e["auditID"] = serde_json::Value::String(format!(
                "{}-{i:04x}-4000-8000-000000000000",
                std::str::from_utf8(MARK).expect("ascii")
            ));
            e
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items,
    }))
    .expect("json");
    let marks = body
        .windows(MARK.len())
        .enumerate()
        .filter(|(_, w)| *w == MARK)
        .map(|(i, _)| i)
        .collect();
    (body, marks)
}

/// User and system CPU time the process `pid` has used, in seconds (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = options();
    let (body, marks) = template(o.events);
    let data = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(&o.binary);
    if let Some(config) = &o.config {
        command.args(["--config", config]);
    }
    let mut server = command
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        // The generated events are of November 2025.
        .args(["--max-event-age", "off"])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", o.binary));
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().expect("stderr")).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("auditlake: listening on ")
                .map(str::to_string)
        })
        .expect("the server prints its address");
    std::thread::spawn(move || for _ in lines {});
    let uri: hyper::Uri = format!("{url}/v1/webhook").parse().expect("uri");
    println!(
        "webhook load: {} connections, {} events ({} KiB) per request, {} s",
        o.connections,
        o.events,
        body.len() / 1024,
        o.duration.as_secs()
    );

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(o.connections)
        .build_http();
    let counter = Arc::new(AtomicU64::new(0));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + o.duration;
    let sampler = {
        let peak = Arc::clone(&peak_rss);
        tokio::spawn(async move {
            while Instant::now() < deadline {
                peak.fetch_max(rss_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let body = Arc::new(body);
    let marks = Arc::new(marks);
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (client, uri, body, marks, counter) = (
            client.clone(),
            uri.clone(),
            Arc::clone(&body),
            Arc::clone(&marks),
            Arc::clone(&counter),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut refused, mut failed) = (0u64, 0u64);
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let mut b = body.as_ref().clone();
                let id = format!("{n:016x}");
                for &at in marks.iter() {
                    b[at..at + 16].copy_from_slice(id.as_bytes());
                }
                let request = hyper::Request::post(uri.clone())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(b)))
                    .expect("request");
                let sent = Instant::now();
                match client.request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.into_body().collect().await;
                        match status {
                            200 => latencies.push(sent.elapsed().as_micros() as u64),
                            429 | 503 => {
                                refused += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            _ => failed += 1,
                        }
                    }
                    Err(_) => failed += 1,
                }
            }
            (latencies, refused, failed)
        }));
    }
    let mut latencies = Vec::new();
    let (mut refused, mut failed) = (0, 0);
    for t in tasks {
        let (l, r, f) = t.await.expect("task");
        latencies.extend(l);
        refused += r;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = sampler.await;
    latencies.sort_unstable();
    let accepted = latencies.len() as u64 * o.events as u64;
    let hwm = rss_kib(pid, "VmHWM:");
    let cpu = cpu_seconds(pid);
    let stop = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = server.wait().expect("wait");
    println!(
        "requests acknowledged: {} (refused with 429/503: {refused}, failed: {failed})",
        latencies.len()
    );
    println!("accepted events/s:     {:.0}", accepted as f64 / elapsed);
    println!(
        "ack latency ms:        p50 {:.1}  p99 {:.1}  max {:.1}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "server CPU s per 1M:   {:.2} ({:.1} CPU-seconds in all)",
        cpu / (accepted.max(1) as f64 / 1e6),
        cpu
    );
    println!(
        "server peak RSS MiB:   {:.0} (sampled {:.0})",
        hwm as f64 / 1024.0,
        peak_rss.load(Ordering::Relaxed) as f64 / 1024.0
    );
    println!(
        "shutdown (flush) took  {:.1} s, exit {status}",
        stop.elapsed().as_secs_f64()
    );
}
