//! Faults injected into a running server: clocks and event times, slow clients, a full disk, a
//! damaged lake. Each test says what it injects and checks that nothing acknowledged is lost and
//! that the server goes on by itself.

use std::path::Path;

use crate::serve::{Server, client, event_list, metric, ready_within, readyz, sql};
use crate::*;

/// `event(id)` at `time` (its request and stage times).
fn at(id: &str, time: &str) -> serde_json::Value {
    let mut e = event(id);
    e["requestReceivedTimestamp"] = time.into();
    e["stageTimestamp"] = time.into();
    e
}

fn hour_partitions(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(data.join("events"))
        .expect("events dir")
        .flatten()
    {
        let name = day.file_name().to_string_lossy().to_string();
        if name.starts_with("date=") {
            out.push(name);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn events_far_in_the_past_or_future_are_rejected_not_partitioned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // The server's defaults (7 days back, 1 hour ahead), not the tests' `off`.
    let mut server = Server::start(&data, &[], &[("AUDITLAKE_MAX_EVENT_AGE", "7d")]);
    let c = client();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut items = vec![at("now", &now)];
    for (i, time) in [
        "1970-01-01T00:00:00.000000Z",
        "9999-12-31T23:59:59.999999Z",
        "2001-09-09T01:46:40.000000Z",
    ]
    .iter()
    .enumerate()
    {
        items.push(at(&format!("forged-{i}"), time));
    }
    let answer: serde_json::Value = c
        .post(format!("{}/v1/webhook/prod", server.url))
        .body(event_list(&items))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected_count"], 3, "{answer}");
    for r in answer["rejected"].as_array().expect("rejected") {
        assert!(
            r["reason"]
                .as_str()
                .expect("reason")
                .contains("outside the accepted window"),
            "{r}"
        );
    }
    // A body of nothing but forged times: 400, the reason given, nothing stored.
    let response = c
        .post(format!("{}/v1/webhook/prod", server.url))
        .body(event_list(&[at("old", "1970-01-01T00:00:00Z")]))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    let rows = sql(&c, &server.url, "SELECT audit_id FROM events").await;
    assert_eq!(rows["rows"].as_array().expect("rows").len(), 1, "{rows}");
    assert!(server.terminate().success());
    let days = hour_partitions(&data);
    assert_eq!(days.len(), 1, "one day of partitions: {days:?}");
}

/// Open file descriptors of process `pid`.
pub(crate) fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of process `pid`, in MiB.
fn resident_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test]
async fn slow_and_idle_clients_are_dropped_and_thousands_of_them_hold_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Injected: 1500 connections sending half a request's headers (slowloris), 1000 sending
    // nothing, and one trickling a webhook body a byte at a time, all at once.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the descriptor limit");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &["--header-timeout", "1s", "--body-timeout", "2s"],
        &[],
    );
    let pid = server.pid();
    let address = server.url.trim_start_matches("http://").to_string();
    let baseline = descriptors(pid);
    let mut slow = Vec::new();
    for i in 0..2500 {
        let mut s = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        if i < 1500 {
            s.write_all(b"POST /v1/webhook HTTP/1.1\r\nHost: auditlake\r\nX-Slow: ")
                .await
                .expect("write");
        }
        slow.push(s);
    }
    let mut trickle = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    trickle
        .write_all(
            b"POST /v1/webhook/prod HTTP/1.1\r\nHost: auditlake\r\nContent-Length: 100000\r\n\r\n",
        )
        .await
        .expect("write");
    let trickling = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let _ = trickle.write_all(b"[").await;
            match tokio::time::timeout(
                std::time::Duration::from_millis(250),
                trickle.read(&mut buf),
            )
            .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if started.elapsed() > std::time::Duration::from_secs(20) {
                break;
            }
        }
        (
            String::from_utf8_lossy(&answer).to_string(),
            started.elapsed(),
        )
    });
    let held = descriptors(pid);
    let c = client();
    // The server still serves, and acknowledges, while they hang on.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let during = c
        .post(format!("{}/v1/webhook/prod", server.url))
        .body(event_list(&[at("during-the-storm", &now)]))
        .send()
        .await
        .expect("post");
    assert_eq!(during.status(), 200);

    // Every slow client is disconnected by the server within the header timeout.
    let started = std::time::Instant::now();
    for mut s in slow {
        let mut buf = [0u8; 256];
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "a slow client was kept past 10 s");
    }
    let recovered = started.elapsed();
    let (answer, trickled) = trickling.await.expect("trickle");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(trickled < std::time::Duration::from_secs(8), "{trickled:?}");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = descriptors(pid);
    let rss = resident_mib(pid);
    println!(
        "descriptors: {baseline} before, {held} with 2501 slow clients, {after} after; \
         all dropped {:.1} s after the storm; body trickle answered 408 after {:.1} s; \
         resident {rss} MiB",
        recovered.as_secs_f64(),
        trickled.as_secs_f64()
    );
    assert!(after < baseline + 50, "{after} descriptors left open");
    assert!(rss < 512, "{rss} MiB resident");
    let rows = sql(&c, &server.url, "SELECT audit_id FROM events").await;
    assert_eq!(rows["rows"].as_array().expect("rows").len(), 1, "{rows}");
}

/// A server whose `dir` (in the data directory) is a `size` tmpfs of its own, after `prepare`
/// ran in its namespace (a shell command, the binary as `$1`): `unshare` gives it a mount
/// namespace (as root, or as anyone where unprivileged user namespaces are allowed, Debian's and
/// Ubuntu's default), and the test reaches the tmpfs through [`seen_by`].
fn server_with_a_small_disk(
    data: &Path,
    dir: &str,
    size: &str,
    prepare: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Server {
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .expect("unshare runs");
    assert!(
        probe.status.success(),
        "this test needs a mount namespace: run as root, or allow unprivileged user namespaces \
         (sysctl kernel.unprivileged_userns_clone=1): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let small = data.join(dir);
    std::fs::create_dir_all(&small).expect("mount point");
    let script = format!(
        "mount -t tmpfs -o size={size} tmpfs '{}' && {prepare} && exec \"$@\"",
        small.display()
    );
    Server::start_in(
        &["unshare", "-rm", "sh", "-c", &script, "sh"],
        data,
        args,
        env,
    )
}

/// `path` as the server (in its mount namespace) sees it.
fn seen_by(server: &Server, path: &Path) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/{}/root", server.pid()))
        .join(path.strip_prefix("/").expect("absolute"))
}

/// Fills the file system of `dir` (as the server sees it) to the last byte.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    loop {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[tokio::test]
async fn a_full_disk_under_the_log_gets_503_and_ingest_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = server_with_a_small_disk(&data, "wal", "2m", "true", &[], &[]);
    let seen_wal = seen_by(&server, &data.join("wal"));
    let c = client();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let batch = |prefix: &str| -> Vec<serde_json::Value> {
        (0..50)
            .map(|i| at(&format!("{prefix}-{i}"), &now))
            .collect()
    };
    let post = |items: Vec<serde_json::Value>| {
        c.post(format!("{}/v1/webhook/prod", server.url))
            .body(event_list(&items))
            .send()
    };
    let mut acknowledged = 0;
    assert_eq!(post(batch("before")).await.expect("post").status(), 200);
    acknowledged += 50;

    // Injected: the log's file system is full.
    let filler = fill(&seen_wal);
    let refused = post(batch("during")).await.expect("post");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let why: serde_json::Value = refused.json().await.expect("json");
    assert!(
        why["error"]
            .as_str()
            .expect("error")
            .contains("No space left"),
        "{why}"
    );
    let (status, said) = readyz(&server.url).await;
    assert_eq!(status, 503);
    assert!(
        said["status"]
            .as_str()
            .expect("status")
            .contains("No space left"),
        "{said}"
    );
    // Refused again while it stays full: nothing is half taken.
    assert_eq!(post(batch("during")).await.expect("post").status(), 503);

    // Space comes back: ready again with no batch to try it (a load balancer sends none to a
    // server that is not ready), and the next post is taken, with no restart and no hand.
    std::fs::remove_file(&filler).expect("free the space");
    let freed = std::time::Instant::now();
    let (status, said) = ready_within(&server.url, std::time::Duration::from_secs(10)).await;
    assert_eq!(status, 200, "not ready again by itself: {said}");
    let ready_again = freed.elapsed();
    let mut resumed = None;
    for _ in 0..50 {
        if post(batch("after")).await.expect("post").status() == 200 {
            resumed = Some(freed.elapsed());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("ingest resumed");
    acknowledged += 50;
    assert_eq!(readyz(&server.url).await.0, 200);
    let stored = sql(&c, &server.url, "SELECT count(*) AS n FROM events").await["rows"][0]["n"]
        .as_i64()
        .expect("n");
    println!(
        "full log disk: {acknowledged} acknowledged, {stored} stored; ready again {:.2} s and \
         ingest resumed {:.2} s after space came back",
        ready_again.as_secs_f64(),
        resumed.as_secs_f64()
    );
    assert_eq!(stored, acknowledged);
    // And after a clean stop and a start on the plain disk, every acknowledged event is there.
    let mut server = server;
    assert!(server.terminate().success());
    let server = Server::start(&data, &[], &[]);
    let stored = sql(&c, &server.url, "SELECT count(*) AS n FROM events").await["rows"][0]["n"]
        .as_i64()
        .expect("n");
    assert_eq!(stored, acknowledged);
}

#[tokio::test]
async fn a_full_disk_under_the_lake_gets_503_compaction_waits_and_ingest_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Eight small files of one hour, put in the lake before its disk is filled to the last byte.
    let hour = (chrono::Utc::now() - chrono::Duration::hours(3)).format("%Y-%m-%dT%H");
    let mut prepare = String::from("true");
    for n in 0..8 {
        let items: Vec<serde_json::Value> = (0..20)
            .map(|i| {
                at(
                    &format!("old-{n}-{i}"),
                    &format!("{hour}:{:02}:00Z", n * 5 + 1),
                )
            })
            .collect();
        let file = dir.path().join(format!("old-{n}.json"));
        std::fs::write(&file, event_list(&items)).expect("write");
        prepare.push_str(&format!(
            " && \"$1\" --data-dir '{}' replay --no-rules '{}' >/dev/null",
            data.display(),
            file.display()
        ));
    }
    let events_dir = data.join("events");
    prepare.push_str(&format!(
        " && {{ cat /dev/zero > '{}/filler' 2>/dev/null; true; }}",
        events_dir.display()
    ));
    let server = server_with_a_small_disk(
        &data,
        "events",
        "4m",
        &prepare,
        &["--flush-interval", "1s", "--maintenance-interval", "2s"],
        &[],
    );
    let url = server.url.clone();
    let seen_events = seen_by(&server, &events_dir);
    let c = client();
    let count = || async {
        sql(
            &client(),
            &url,
            "SELECT count(*) AS n, count(DISTINCT audit_id) AS d FROM events",
        )
        .await["rows"][0]
            .clone()
    };
    let deadline = || std::time::Instant::now() + std::time::Duration::from_secs(30);

    // Compaction on the full disk fails, commits nothing and loses nothing.
    let until = deadline();
    while metric(&url, "auditlake_compaction_failures_total").await < 1.0 {
        assert!(std::time::Instant::now() < until, "compaction never tried");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(metric(&url, "auditlake_lake_files").await, 8.0);
    assert_eq!(count().await["n"], 160);

    // Ingest: taken into the log, then the Parquet write fails; from then on 503, saying why.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let post = |prefix: String, n: usize| {
        let items: Vec<serde_json::Value> =
            (0..n).map(|i| at(&format!("{prefix}-{i}"), &now)).collect();
        c.post(format!("{url}/v1/webhook/prod"))
            .body(event_list(&items))
            .send()
    };
    let mut acknowledged = 160;
    let mut refused = None;
    for attempt in 0..100 {
        let response = post(format!("during-{attempt}"), 10).await.expect("post");
        if response.status() == 200 {
            acknowledged += 10;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        }
        refused = Some(response);
        break;
    }
    let refused = refused.expect("the lake write failed within 20 s");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let why: serde_json::Value = refused.json().await.expect("json");
    let why = why["error"].as_str().expect("error").to_string();
    assert!(why.contains("writing the lake failed"), "{why}");
    assert!(why.contains("No space left"), "{why}");
    let (status, said) = readyz(&url).await;
    assert_eq!(status, 503);
    assert!(
        said["status"]
            .as_str()
            .expect("status")
            .contains("No space left"),
        "{said}"
    );

    // Space comes back: ingest resumes and compaction completes, with no restart and no hand.
    std::fs::remove_file(seen_events.join("filler")).expect("free the space");
    let freed = std::time::Instant::now();
    let mut resumed = None;
    for attempt in 0..300 {
        if post(format!("after-{attempt}"), 10)
            .await
            .expect("post")
            .status()
            == 200
        {
            resumed = Some(freed.elapsed());
            acknowledged += 10;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("ingest resumed within 30 s");
    let until = deadline();
    while metric(&url, "auditlake_files_compacted_total").await < 8.0 {
        assert!(
            std::time::Instant::now() < until,
            "compaction never succeeded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(readyz(&url).await.0, 200);
    let counted = count().await;
    println!(
        "full lake disk: {acknowledged} acknowledged, {} stored ({} distinct); ingest resumed \
         {:.2} s after space came back",
        counted["n"],
        counted["d"],
        resumed.as_secs_f64()
    );
    assert_eq!(counted["n"], acknowledged);
    assert_eq!(counted["d"], acknowledged);
    // The files given up were removed: once the open ones are flushed, no unfinished file is left.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let unfinished: Vec<_> = walk(&seen_events)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
            .collect();
        if unfinished.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < until, "{unfinished:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn a_damaged_parquet_file_is_named_and_a_command_sets_it_aside() {
    // Injected: one events file of the lake cut to half its length.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = replay(&data, &sample_log_files());
    assert!(out.status.success(), "{}", stderr(&out));
    let total = count(&data);
    let mut files: Vec<std::path::PathBuf> = walk(&data.join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let damaged = files[0].clone();
    let bytes = std::fs::read(&damaged).expect("read");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("damage");

    // A query fails clearly, naming the file.
    let out = auditlake(&data, &["query", "SELECT count(*) AS n FROM events"]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(said.contains(&damaged.display().to_string()), "{said}");
    assert!(!said.contains("panicked"), "{said}");

    // Set aside, the rest is queried; the copy is kept as evidence.
    let out = auditlake(
        &data,
        &["lake", "quarantine", &damaged.display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let told = stdout(&out);
    let rows: u64 = told
        .split('(')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("rows in {told:?}"));
    assert!(rows > 0);
    assert_eq!(count(&data), total - rows);
    let copies = std::fs::read_dir(
        data.join("quarantine/events")
            .join(
                damaged
                    .parent()
                    .and_then(|h| h.parent())
                    .and_then(|d| d.file_name())
                    .expect("day"),
            )
            .join(damaged.parent().and_then(|h| h.file_name()).expect("hour")),
    )
    .expect("quarantine dir")
    .count();
    assert_eq!(copies, 1);
    // Twice, or a file that is not the lake's, is refused with a reason.
    let again = auditlake(
        &data,
        &["lake", "quarantine", &damaged.display().to_string()],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("not in the table"),
        "{}",
        stderr(&again)
    );
}

/// Injected: the disk under the alert outboxes fills up after the server started, so the alerts
/// of a batch cannot be made durable for delivery: the server refuses batches, saying why, and
/// once there is room it goes on by itself, every stored alert stored once and delivered. (That
/// the lake commits nothing before the alerts are durable is the engine's
/// `alerts_a_failed_sync_lost_are_raised_again_before_their_events_are_committed`.)
#[tokio::test]
async fn alerts_that_cannot_be_queued_on_a_full_disk_are_raised_again_and_all_delivered() {
    use crate::outputs::{Received, Receiver, SECRET, receive, sample_events};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = free_port();
    let config = dir.path().join("auditlake.toml");
    std::fs::write(
        &config,
        format!(
            "[[alerts.outputs]]\nname = \"hook\"\nkind = \"webhook\"\n\
             url = \"http://127.0.0.1:{port}/hook\"\nsecret_env = \"HOOK_SECRET\"\n"
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let seen = Arc::new(Mutex::new(Received::default()));
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&seen));
    let _receiver = Receiver::start(port, app);
    let server = server_with_a_small_disk(
        &data,
        "outbox",
        "1m",
        "true",
        &["--config", &config, "--flush-interval", "1s"],
        &[("HOOK_SECRET", SECRET)],
    );
    let filler = fill(&seen_by(&server, &data.join("outbox")));
    let http = client();
    let posted = http
        .post(format!("{}/v1/webhook/demo", server.url))
        .body(event_list(&sample_events()))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), 200);

    let until = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let (_, body) = readyz(&server.url).await;
        let status = body["status"].as_str().unwrap_or_default().to_string();
        if status.contains("alerts") {
            break status;
        }
        assert!(Instant::now() < until, "{body}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(said.contains("No space left"), "{said}");

    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    let (status, said) = ready_within(&server.url, Duration::from_secs(30)).await;
    assert_eq!(status, 200, "not ready again: {said}\n{}", server.log());
    let rows = sql(&http, &server.url, "SELECT alert_id FROM alerts").await;
    let stored: Vec<String> = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["alert_id"].as_str().expect("id").to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(expected.len(), stored.len(), "an alert stored twice");
    assert!(expected.len() > 50, "{} alerts", expected.len());
    loop {
        let got = seen.lock().expect("lock").ids.clone();
        if expected.is_subset(&got) {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(60),
            "{} of {} alerts delivered\n{}",
            got.len(),
            expected.len(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "full outbox disk: {} alerts stored once each, all delivered {:.1} s after space came back",
        expected.len(),
        freed.elapsed().as_secs_f64()
    );
    assert_eq!(seen.lock().expect("lock").bad_signatures, 0);
}
