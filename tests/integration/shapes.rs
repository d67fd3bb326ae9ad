//! Every input shape is recognised by itself: webhook `EventList`s (one per line or pretty-printed
//! across the file), bare arrays, CloudWatch payloads, log-shipper records, gzip, stdin.

use std::io::Write;
use std::process::Stdio;

use crate::*;

fn ids(dir: &std::path::Path) -> Vec<(String, String)> {
    query(
        dir,
        "SELECT audit_id, cluster FROM events ORDER BY audit_id",
    )
    .into_iter()
    .map(|r| {
        (
            r["audit_id"].as_str().unwrap_or_default().to_string(),
            r["cluster"].as_str().unwrap_or_default().to_string(),
        )
    })
    .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn webhook_bodies_arrays_and_wrappers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pretty = dir.path().join("eventlist-pretty.json");
    let list = serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
        "items": [event("list-1"), event("list-2")]});
    std::fs::write(&pretty, serde_json::to_string_pretty(&list).expect("json")).expect("write");
    let lines = dir.path().join("mixed-shapes.log");
    let mut wrapped_beta = event("fluent-bit");
    wrapped_beta["apiVersion"] = "audit.k8s.io/v1beta1".into();
    let content = [
        serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1",
            "items": [event("line-list-1"), event("line-list-2")]})
        .to_string(),
        serde_json::json!([event("array-1"), event("array-2")]).to_string(),
        serde_json::json!({"messageType": "DATA_MESSAGE", "logGroup": "/aws/eks/prod-eu/cluster",
            "logStream": "kube-apiserver-audit-1", "logEvents": [
                {"id": "1", "timestamp": 1762167600000u64, "message": event("cloudwatch-1").to_string()}]})
        .to_string(),
        serde_json::json!({"log": wrapped_beta.to_string(), "stream": "stdout", "time": "2025-11-03T11:00:00Z"}).to_string(),
    ]
    .join("\n");
    std::fs::write(&lines, content).expect("write");
    let out = replay(dir.path(), &[pretty, lines]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        ids(dir.path()),
        pairs(&[
            ("array-1", "default"),
            ("array-2", "default"),
            ("cloudwatch-1", "prod-eu"),
            ("fluent-bit", "default"),
            ("line-list-1", "default"),
            ("line-list-2", "default"),
            ("list-1", "default"),
            ("list-2", "default"),
        ])
    );
}

#[test]
fn gzip_stdin_and_the_cluster_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gz_path = dir.path().join("rotated-audit.log.1");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    writeln!(gz, "{}", event("gzipped")).expect("compress");
    std::fs::write(&gz_path, gz.finish().expect("gzip")).expect("write");
    let data = dir.path().join("data");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .arg("--data-dir")
        .arg(&data)
        .args(["replay", "--cluster", "prod-us", "-"])
        .arg(&gz_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{}\n", event("from-stdin")).as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        ids(&data),
        pairs(&[("from-stdin", "prod-us"), ("gzipped", "prod-us")])
    );
}

#[test]
fn config_file_and_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("from-config");
    let config = dir.path().join("auditlake.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ncluster = \"staging\"\n",
            data.display().to_string()
        ),
    )
    .expect("write");
    let input = dir.path().join("one.log");
    std::fs::write(&input, event("configured").to_string()).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .env("AUDITLAKE_CONFIG", &config)
        .env_remove("AUDITLAKE_DATA_DIR")
        .env_remove("AUDITLAKE_CLUSTER")
        .arg("replay")
        .arg(&input)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ids(&data), pairs(&[("configured", "staging")]));
}
