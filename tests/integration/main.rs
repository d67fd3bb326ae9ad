//! End-to-end tests of the `auditlake` binary on real and sample audit logs.

mod alerts;
mod bad_input;
mod console;
mod delta;
mod derived;
mod faults;
mod flight;
mod io_errors;
mod kafka;
mod outputs;
mod pg;
mod pruning;
mod real_logs;
mod redaction;
mod serve;
mod shapes;
mod tenants;
mod threads;
mod tuning;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `sample-logs/` is).
pub fn repo() -> PathBuf {
    auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR"))
}

/// The scenario logs of `sample-logs/`, in name order.
pub fn sample_log_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("sample-logs"))
        .expect("sample-logs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// The Python of `scripts/install-python`'s environment: `AUDITLAKE_PYTHON`, else where that
/// script puts it.
pub fn python() -> PathBuf {
    let path = std::env::var_os("AUDITLAKE_PYTHON").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/auditlake-python/bin/python")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the test Python environment is not at {}: run `bash scripts/test`, which installs it",
        path.display()
    );
    path
}

/// A loopback TCP port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `../shared/real-audit-logs`, next to the repository.
pub fn real_logs() -> PathBuf {
    repo().join("../shared/real-audit-logs")
}

/// Every file of the real captures.
pub fn real_log_files() -> Vec<PathBuf> {
    let root = real_logs();
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("falco"), root.join("audit2rbac")] {
        for entry in std::fs::read_dir(&dir).expect("real-audit-logs is present") {
            let path = entry.expect("dir entry").path();
            let ext = path.extension().and_then(|e| e.to_str());
            if matches!(ext, Some("log" | "json")) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A minimal `audit.k8s.io/v1` Event: a 403 on listing secrets in kube-system, at 11:00 UTC.
pub fn event(id: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": id,
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/kube-system/secrets", "verb": "list",
        "user": {"username": "system:serviceaccount:shop:web"}, "sourceIPs": ["10.0.6.51"],
        "objectRef": {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 403},
        "requestReceivedTimestamp": "2025-11-03T11:00:00.000001Z",
        "stageTimestamp": "2025-11-03T11:00:00.002000Z"
    })
}

/// Runs `auditlake --data-dir DIR ARGS...`.
pub fn auditlake(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("AUDITLAKE_CLUSTER")
        .output()
        .expect("the auditlake binary runs")
}

/// `auditlake replay FILES...`.
pub fn replay(data_dir: &Path, files: &[PathBuf]) -> Output {
    let mut args = vec!["replay".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    auditlake(data_dir, &args)
}

/// `auditlake query SQL --format json`, parsed; panics with stderr when the query fails.
pub fn query(data_dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    let out = auditlake(data_dir, &["query", sql, "--format", "json"]);
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("query --format json prints a JSON array")
}

/// `rule_id` → `n` of the rows of a query that selects those two columns.
pub fn by_rule(rows: Vec<serde_json::Value>) -> std::collections::BTreeMap<String, u64> {
    rows.into_iter()
        .map(|r| {
            let rule = r["rule_id"].as_str().unwrap_or_default().to_string();
            (rule, r["n"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// `SELECT count(*) FROM events`.
pub fn count(data_dir: &Path) -> u64 {
    let rows = query(data_dir, "SELECT count(*) AS n FROM events");
    rows[0]["n"].as_u64().expect("count is a number")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
