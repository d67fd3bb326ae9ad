//! I/O errors injected into a running server (`io_errors.c`, preloaded): a failed fsync of the
//! write-ahead log or of a Parquet file, a failed rename that puts a file in the lake, a failed
//! link that puts a Delta commit in place. Each must refuse what it cannot keep, say why, lose
//! nothing acknowledged, and resume by itself once the error stops.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::serve::{Server, client, event_list, ready_within, readyz, sql};
use crate::*;

/// Builds the preloaded library into `dir`.
pub(crate) fn build_injector(dir: &Path) -> PathBuf {
    let library = dir.join("io_errors.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&library)
        .arg(repo().join("tests/integration/io_errors.c"))
        .arg("-ldl")
        .output()
        .expect("cc runs (it links every Rust build, so it is there)");
    assert!(built.status.success(), "{}", stderr(&built));
    library
}

struct Injected {
    server: Server,
    control: PathBuf,
    acknowledged: u64,
    batches: usize,
}

impl Injected {
    async fn post(&mut self, n: usize) -> reqwest::Response {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.batches += 1;
        let items: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let mut e = event(&format!("b{}-{i}", self.batches));
                e["requestReceivedTimestamp"] = now.clone().into();
                e["stageTimestamp"] = now.clone().into();
                e
            })
            .collect();
        let response = client()
            .post(format!("{}/v1/webhook/prod", self.server.url))
            .body(event_list(&items))
            .send()
            .await
            .expect("post");
        if response.status() == 200 {
            self.acknowledged += n as u64;
        }
        response
    }

    fn inject(&self, fault: &str) {
        std::fs::write(&self.control, format!("{fault}\n")).expect("control file");
    }

    /// Injects `fault`, posts until a batch is refused (each taken one counted), checks the
    /// refusal and `/readyz` give `reason`, stops the fault, and returns how long after that a
    /// batch was taken again.
    async fn phase(&mut self, fault: &str, reason: &str) -> Duration {
        self.inject(fault);
        let until = Instant::now() + Duration::from_secs(20);
        let refused = loop {
            let response = self.post(10).await;
            if response.status() != 200 {
                break response;
            }
            assert!(Instant::now() < until, "{fault}: never refused");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(refused.status(), 503, "{fault}");
        assert!(refused.headers().contains_key("retry-after"), "{fault}");
        let why: serde_json::Value = refused.json().await.expect("json");
        let why = why["error"].as_str().expect("error").to_string();
        assert!(why.contains(reason), "{fault}: {why}");
        assert!(why.contains("Input/output error"), "{fault}: {why}");
        assert_eq!(readyz(&self.server.url).await.0, 503, "{fault}");
        // Refused while it lasts.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(self.post(10).await.status(), 503, "{fault}");

        // Ready again by itself, with no batch to try it, then taking batches.
        self.inject("");
        let stopped = Instant::now();
        let (status, said) = ready_within(&self.server.url, Duration::from_secs(30)).await;
        assert_eq!(status, 200, "{fault}: never ready again: {said}");
        loop {
            if self.post(10).await.status() == 200 {
                return stopped.elapsed();
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(30),
                "{fault}: never resumed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stored(&self) -> (u64, u64) {
        let rows = sql(
            &client(),
            &self.server.url,
            "SELECT count(*) AS n, count(DISTINCT audit_id) AS d FROM events",
        )
        .await;
        let row = &rows["rows"][0];
        (row["n"].as_u64().expect("n"), row["d"].as_u64().expect("d"))
    }
}

#[tokio::test]
async fn failed_fsync_rename_and_link_lose_nothing_and_ingest_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_injector(dir.path());
    let control = dir.path().join("faults");
    std::fs::write(&control, "").expect("control file");
    let data = dir.path().join("data");
    let env = [
        ("LD_PRELOAD", library.to_str().expect("utf-8")),
        ("AUDITLAKE_IO_ERRORS", control.to_str().expect("utf-8")),
    ];
    let server = Server::start(&data, &["--flush-interval", "1s"], &env);
    let mut run = Injected {
        server,
        control,
        acknowledged: 0,
        batches: 0,
    };
    assert_eq!(run.post(10).await.status(), 200);

    let log_sync = run
        .phase("fsync /wal/", "the write-ahead log could not be written")
        .await;
    let file_sync = run
        .phase("fsync .parquet.tmp", "writing the lake failed")
        .await;
    let publish = run
        .phase("rename .parquet", "writing the lake failed")
        .await;
    let commit = run
        .phase("link _delta_log", "writing the lake failed")
        .await;
    let (stored, distinct) = run.stored().await;
    println!(
        "injected I/O errors: {} acknowledged, {stored} stored ({distinct} distinct); resumed \
         {:.2} s (log fsync), {:.2} s (Parquet fsync), {:.2} s (rename), {:.2} s (commit link) \
         after the error stopped",
        run.acknowledged,
        log_sync.as_secs_f64(),
        file_sync.as_secs_f64(),
        publish.as_secs_f64(),
        commit.as_secs_f64()
    );
    assert_eq!(stored, run.acknowledged);
    assert_eq!(distinct, run.acknowledged);

    // Stopped cleanly and started without the injector, every acknowledged event is there once.
    assert!(run.server.terminate().success());
    let server = Server::start(&data, &[], &[]);
    let rows = sql(
        &client(),
        &server.url,
        "SELECT count(*) AS n, count(DISTINCT audit_id) AS d FROM events",
    )
    .await;
    assert_eq!(rows["rows"][0]["n"].as_u64(), Some(run.acknowledged));
    assert_eq!(rows["rows"][0]["d"].as_u64(), Some(run.acknowledged));
}
