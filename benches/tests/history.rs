//! The history-aware detections on two weeks of a cluster with stable habits: every labelled
//! anomaly kind is caught once the baselines are learned, routine traffic stays under an on-call
//! budget, and the same alerts come out whether the days are replayed one run a day, in one run,
//! or posted to `auditlake serve` that is SIGKILLed and restarted in the middle.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditlake_benches::decode_each;
use auditlake_benches::habits::{self, Habits, LEARN_DAYS, THREAT_LIST};
use auditlake_benches::judge::{self, Verdict, replay_days};
use auditlake_engine::Pipeline;
use auditlake_rules::{CompiledPack, RuleEngine, RuleSet, THREAT_INTEL_LIST};

const DAYS: u32 = 14;
const PER_DAY: usize = 4_000;
/// Medium-and-higher alerts a day that an on-call rotation can take.
const BUDGET: u64 = 20;

fn pack(threat: &Path) -> CompiledPack {
    let mut set = RuleSet::builtin().expect("the pack parses");
    set.add_list_file(THREAT_INTEL_LIST, threat)
        .expect("the list reads");
    CompiledPack::compile(&set).expect("the pack compiles")
}

fn setup() -> (tempfile::TempDir, Habits, CompiledPack, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let threat = dir.path().join("threat-intel.txt");
    std::fs::write(&threat, THREAT_LIST).expect("write list");
    let data = habits::generate(7, DAYS, PER_DAY);
    let pack = pack(&threat);
    (dir, data, pack, threat)
}

fn alert_ids(verdict: &Verdict) -> BTreeSet<String> {
    verdict.alerts.iter().map(|a| a.alert_id.clone()).collect()
}

#[test]
fn every_anomaly_kind_is_caught_and_routine_days_stay_under_budget() {
    let (dir, data, pack, _) = setup();
    let verdict = replay_days(&data, &dir.path().join("data"), &pack).expect("replays");
    assert!(verdict.recall.len() >= 11, "{:?}", verdict.recall);
    assert!(verdict.missed().is_empty(), "missed {:?}", verdict.missed());
    for day in LEARN_DAYS as usize..DAYS as usize {
        assert!(
            verdict.noise_on(day) <= BUDGET,
            "day {}: {:?}",
            day + 1,
            verdict.noise[day]
        );
    }
    // Before learning, the routine operators' privileged node agents and debug pods alert once
    // each (first seen), then never again.
    let learning: u64 = (0..LEARN_DAYS as usize).map(|d| verdict.noise_on(d)).sum();
    assert!(
        learning <= BUDGET * 2,
        "{:?}",
        &verdict.noise[..LEARN_DAYS as usize]
    );
    // Every first-seen alert says what it was compared with.
    let tagged = verdict
        .alerts
        .iter()
        .filter(|a| a.rule == "anomalous-exec")
        .count();
    assert!(tagged >= 1);
}

#[test]
fn one_run_and_a_run_a_day_raise_the_same_alerts() {
    let (dir, data, pack, _) = setup();
    let daily = replay_days(&data, &dir.path().join("daily"), &pack).expect("replays");
    // All days through one pipeline: the state never leaves memory.
    let mut once = Verdict::default();
    let mut pipeline =
        Pipeline::open(&dir.path().join("once"), Some(RuleEngine::new(&pack))).expect("opens");
    for (day, bytes) in data.days.iter().enumerate() {
        decode_each(bytes, |batch| {
            let ingested = pipeline.ingest(&batch).expect("ingests");
            once.alerts
                .extend(judge::rows(&ingested.alerts, day as u32));
        });
    }
    pipeline.flush().expect("flushes");
    judge::judge(&data, &mut once);
    assert_eq!(alert_ids(&daily), alert_ids(&once));
    assert!(once.missed().is_empty());
}

/// The `auditlake` binary next to this test's own.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/PROFILE");
    let bin = dir.join("auditlake");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --bin auditlake)",
        bin.display()
    );
    bin
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data: &Path, threat: &Path) -> Self {
        let mut child = Command::new(binary())
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0", "--flush-interval", "2s"])
            // A generated month of history, accepted as replay would.
            .args(["--max-event-age", "off"])
            .arg("--threat-intel")
            .arg(threat)
            .env_remove("AUDITLAKE_TOKENS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("auditlake serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("auditlake: listening on http://")
                    .map(String::from)
            })
            .expect("the server says where it listens");
        std::thread::spawn(move || lines.for_each(drop));
        let server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.request("GET", "/readyz", b"").0 != 200 {
            assert!(Instant::now() < deadline, "not ready in time");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let Ok(mut stream) = TcpStream::connect(&self.addr) else {
            return (0, String::new());
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, answer)
    }

    /// Posts a day in webhook-sized bodies of NDJSON.
    fn post_day(&self, bytes: &[u8]) {
        let lines: Vec<&[u8]> = auditlake_benches::lines(bytes).collect();
        for chunk in lines.chunks(400) {
            let body = chunk.join(&b'\n');
            let (status, answer) = self.request("POST", "/v1/webhook", &body);
            assert_eq!(status, 200, "{answer}");
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn serve_killed_in_the_middle_raises_the_same_alerts_as_replay() {
    let (dir, data, pack, threat) = setup();
    let replayed = replay_days(&data, &dir.path().join("replay"), &pack).expect("replays");

    let lake = dir.path().join("served");
    let middle = (LEARN_DAYS + 2) as usize;
    let server = Server::start(&lake, &threat);
    for day in &data.days[..middle] {
        server.post_day(day);
    }
    // Half of the next day, then SIGKILL: some of it only in the write-ahead log.
    let half: Vec<&[u8]> = auditlake_benches::lines(&data.days[middle]).collect();
    let (first, rest) = half.split_at(half.len() / 2);
    server.post_day(&first.join(&b'\n'));
    let mut server = server;
    server.kill();

    let mut server = Server::start(&lake, &threat);
    server.post_day(&rest.join(&b'\n'));
    for day in &data.days[middle + 1..] {
        server.post_day(day);
    }
    server.terminate();

    let out = Command::new(binary())
        .arg("--data-dir")
        .arg(&lake)
        .args([
            "query",
            "--format",
            "csv",
            "SELECT DISTINCT alert_id FROM alerts",
        ])
        .output()
        .expect("query runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    assert_eq!(served, alert_ids(&replayed));
    assert!(replayed.missed().is_empty());
}

#[test]
fn a_backtest_over_the_stored_days_raises_what_replay_raised() {
    let (dir, data, pack, threat) = setup();
    let replayed = replay_days(&data, &dir.path().join("replay"), &pack).expect("replays");
    // The same days stored without rules, then the pack run over the last ones: first-seen and
    // sequence rules read the days before `--since` as their history.
    let lake = dir.path().join("stored");
    let mut pipeline = Pipeline::open(&lake, None).expect("opens");
    for bytes in &data.days {
        decode_each(bytes, |batch| {
            pipeline.ingest(&batch).expect("ingests");
        });
    }
    pipeline.flush().expect("flushes");
    drop(pipeline);
    let from = LEARN_DAYS + 1;
    let since = chrono::DateTime::from_timestamp_micros(
        habits::START_MICROS + i64::from(from) * 86_400_000_000,
    )
    .expect("a time")
    .to_rfc3339();
    let out = Command::new(binary())
        .arg("--data-dir")
        .arg(&lake)
        .args(["rules", "backtest", "--format", "csv", "--since", &since])
        .arg("--threat-intel")
        .arg(&threat)
        .output()
        .expect("backtest runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let backtested: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(String::from))
        .collect();
    let expected: BTreeSet<String> = replayed
        .alerts
        .iter()
        .filter(|a| a.day >= from)
        .map(|a| a.alert_id.clone())
        .collect();
    assert!(expected.len() > 10, "{expected:?}");
    assert_eq!(backtested, expected);
}
