//! Users tune the built-in pack from their own rules directory, and bad rules stop replay.

use std::collections::BTreeMap;
use std::path::Path;

use crate::*;

fn exec_alerts(data: &Path, rules_dir: Option<&Path>) -> BTreeMap<String, u64> {
    let file = repo()
        .join("sample-logs/exec-into-pod.log")
        .display()
        .to_string();
    let mut args = vec!["replay".to_string()];
    if let Some(dir) = rules_dir {
        args.extend(["--rules".to_string(), dir.display().to_string()]);
    }
    args.push(file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = auditlake(data, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    by_rule(query(
        data,
        "SELECT rule_id, max(count) AS n FROM alerts GROUP BY rule_id",
    ))
}

#[test]
fn user_files_append_except_disable_and_add_threshold_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = exec_alerts(&dir.path().join("before"), None);
    for rule in [
        "pod-exec-attach",
        "exec-from-public-ip",
        "exec-cmd-shell-or-tool",
    ] {
        assert!(
            before.contains_key(rule),
            "{rule} fires without tuning: {before:?}"
        );
    }
    assert!(!before.contains_key("exec-burst"));

    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::write(
        rules.join("10-tuning.yaml"),
        r#"
append:
  # Mallory is our break-glass operator: treat her like the control plane.
  lists: [{name: control_plane_users, items: [mallory@example.com]}]
  # The bastion's public address is expected for exec.
  exceptions: [{rule: exec-from-public-ip, name: bastion, fields: [source_ip], values: [[198.51.100.7]]}]
override:
  - {rule: exec-cmd-shell-or-tool, enabled: false}
"#,
    )
    .expect("write");
    std::fs::write(
        rules.join("20-exec-burst.yaml"),
        r#"
rules:
  - id: exec-burst
    title: Several execs by one user
    severity: medium
    category: exec
    condition: exec_request
    threshold: {count: 2, window: 10m, group_by: [user_name]}
    output: "{user_name} ran {count} execs"
    examples:
      fires: [sample-logs/exec-into-pod.log]
      silent: [sample-logs/exec-into-pod.log#2]
"#,
    )
    .expect("write");
    let after = exec_alerts(&dir.path().join("after"), Some(&rules));
    assert!(
        !after.contains_key("pod-exec-attach"),
        "list append took effect: {after:?}"
    );
    assert!(
        !after.contains_key("exec-from-public-ip"),
        "exception took effect: {after:?}"
    );
    assert!(
        !after.contains_key("exec-cmd-shell-or-tool"),
        "override took effect: {after:?}"
    );
    assert_eq!(
        after.get("exec-burst"),
        Some(&2),
        "new threshold rule fires once with its count"
    );
    assert!(
        after.contains_key("exec-cmd-credential-path"),
        "untouched rules still fire"
    );

    let test = std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["rules", "test", "--rules"])
        .arg(rules.join("20-exec-burst.yaml"))
        .current_dir(repo())
        .output()
        .expect("run");
    assert!(test.status.success(), "{}{}", stdout(&test), stderr(&test));
}

#[test]
fn bad_rules_stop_replay_before_anything_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    let bad = rules.join("bad.yaml");
    std::fs::write(
        &bad,
        "rules:\n  - {id: typo, title: t, severity: low, category: other, condition: \"verbb = 'get'\", output: x}\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let out = auditlake(
        &data,
        &[
            "replay",
            "--rules",
            &rules.display().to_string(),
            &repo()
                .join("sample-logs/wildcard-role.log")
                .display()
                .to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}: rule typo: condition:", bad.display())),
        "{err}"
    );
    assert!(err.contains("verbb"), "{err}");
    assert!(!data.join("events").exists(), "nothing stored");
}

#[test]
fn the_builtin_pack_passes_rules_test() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["rules", "test"])
        .current_dir(repo())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(", 0 failed"), "{}", stdout(&out));
}

#[test]
fn threshold_windows_survive_a_restart_of_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("exec-burst.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - {id: exec-burst, title: t, severity: medium, category: exec, condition: exec_request,\n     threshold: {count: 2, window: 10m, group_by: [user_name]}, output: \"{user_name} ran {count} execs\"}\n",
    )
    .expect("write");
    let lines: Vec<String> = std::fs::read_to_string(repo().join("sample-logs/exec-into-pod.log"))
        .expect("sample")
        .lines()
        .map(String::from)
        .collect();
    // First run: the first exec request (both stages). Second: the websocket exec, 28 s later.
    let first = dir.path().join("first.log");
    std::fs::write(&first, lines[..3].join("\n")).expect("write");
    let second = dir.path().join("second.log");
    std::fs::write(&second, &lines[3]).expect("write");
    let data = dir.path().join("data");
    let run = |file: &Path| {
        let out = auditlake(
            &data,
            &[
                "replay",
                "--rules",
                &rules.display().to_string(),
                &file.display().to_string(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert!(
        !run(&first).contains("exec-burst"),
        "one exec is below the threshold"
    );
    let out = run(&second);
    assert!(
        out.contains("exec-burst"),
        "the stored first exec counts after the restart: {out}"
    );
    let alerts = query(
        &data,
        "SELECT count, message FROM alerts WHERE rule_id = 'exec-burst'",
    );
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["count"], 2);
    // A third run over both files again: everything is a duplicate, the window already fired.
    let out = run(&first);
    assert!(
        out.contains("0 events stored") && out.contains(", 0 alerts"),
        "{out}"
    );
}

#[test]
fn backtest_runs_rules_over_history_and_stores_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [
        repo().join("sample-logs/exec-into-pod.log"),
        repo().join("sample-logs/privileged-hostpath-pod.log"),
    ];
    let mut args = vec!["replay".to_string(), "--no-rules".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(auditlake(dir.path(), &args).status.success());
    let stored = || query(dir.path(), "SELECT count(*) AS n FROM alerts")[0]["n"].as_u64();
    assert_eq!(stored(), Some(0));

    let out = auditlake(
        dir.path(),
        &[
            "rules",
            "backtest",
            "--rule",
            "privileged-pod",
            "--since",
            "2025-11-03",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["rule_id"], "privileged-pod");
    assert_eq!(stored(), Some(0), "without --store nothing is kept");

    let window = auditlake(
        dir.path(),
        &[
            "rules",
            "backtest",
            "--since",
            "2025-11-03T10:00:00Z",
            "--until",
            "2025-11-03T11:00:00Z",
            "--store",
            "--format",
            "csv",
        ],
    );
    assert!(window.status.success(), "{}", stderr(&window));
    let rules: std::collections::BTreeSet<String> =
        query(dir.path(), "SELECT DISTINCT rule_id FROM alerts")
            .into_iter()
            .filter_map(|r| r["rule_id"].as_str().map(String::from))
            .collect();
    assert!(rules.contains("pod-exec-attach"), "{rules:?}");
    assert!(
        !rules.contains("privileged-pod"),
        "13:05 is outside the window: {rules:?}"
    );
}

#[test]
fn a_bad_or_missing_threat_list_stops_replay_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = repo()
        .join("sample-logs/exec-into-pod.log")
        .display()
        .to_string();
    let list = dir.path().join("feed.txt");
    std::fs::write(&list, "# feed\n198.51.100.0/24\n198.51.100.300\n").expect("write");
    let list = list.display().to_string();
    let out = auditlake(
        &dir.path().join("a"),
        &["replay", "--threat-intel", &list, &sample],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{list}:3:")) && stderr(&out).contains("198.51.100.300"),
        "{}",
        stderr(&out)
    );
    let missing = dir.path().join("nope.txt").display().to_string();
    let out = auditlake(
        &dir.path().join("b"),
        &["replay", "--threat-intel", &missing, &sample],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&missing), "{}", stderr(&out));
    // From the config file: the exec scenario's address is listed, so it alerts.
    std::fs::write(dir.path().join("feed.txt"), "198.51.100.0/24\n").expect("write");
    let config = dir.path().join("auditlake.toml");
    std::fs::write(&config, format!("threat_intel = [{list:?}]\n")).expect("write");
    let data = dir.path().join("c");
    let out = auditlake(
        &data,
        &["--config", &config.display().to_string(), "replay", &sample],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = by_rule(query(
        &data,
        "SELECT rule_id, count(*) AS n FROM alerts GROUP BY rule_id",
    ));
    assert_eq!(alerts.get("threat-intel-source-ip"), Some(&1), "{alerts:?}");
}

#[test]
fn cloud_ranges_in_the_providers_shape_separate_routine_managed_calls_from_stolen_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = |id: &str, ip: &str, day: &str| {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": id, "stage": "ResponseComplete", "verb": "list",
            "requestURI": "/api/v1/secrets", "user": {"username": "eks:node-manager"},
            "sourceIPs": [ip], "userAgent": "kubectl/v1.30.1",
            "objectRef": {"resource": "secrets", "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": format!("{day}T10:00:00.000000Z"),
            "stageTimestamp": format!("{day}T10:00:00.100000Z")
        })
        .to_string()
    };
    let log = dir.path().join("managed.log");
    let lines = [
        // The cluster's first day, from inside: the rule learns.
        event(
            "a0000000-0000-0000-0000-000000000000",
            "10.0.1.9",
            "2026-11-29",
        ),
        // AWS, in the providers' file and the built-in snapshot.
        event(
            "a0000000-0000-0000-0000-000000000001",
            "3.5.143.250",
            "2026-11-30",
        ),
        // Nobody's cloud.
        event(
            "a0000000-0000-0000-0000-000000000002",
            "198.51.100.7",
            "2026-11-30",
        ),
        event(
            "a0000000-0000-0000-0000-000000000003",
            "2600:1f18:4::9",
            "2026-11-30",
        ),
        // Google Cloud: in the snapshot, not in the AWS file that replaces it.
        event(
            "a0000000-0000-0000-0000-000000000004",
            "35.190.0.1",
            "2026-11-30",
        ),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").expect("write");
    let log = log.display().to_string();
    // AWS's ip-ranges.json, cut down.
    let ranges = dir.path().join("ip-ranges.json");
    std::fs::write(
        &ranges,
        r#"{"syncToken": "1", "createDate": "2026-11-30-00-00-00",
  "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "us-east-1", "service": "AMAZON"}],
  "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/36", "region": "us-east-1", "service": "EC2"}]}"#,
    )
    .expect("write");
    let ranges = ranges.display().to_string();
    let outside_cloud = |name: &str, flags: &[&str]| {
        let data = dir.path().join(name);
        let mut args = vec!["replay"];
        args.extend(flags);
        args.push(&log);
        let out = auditlake(&data, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        query(
            &data,
            "SELECT audit_id FROM alerts WHERE rule_id = 'system-identity-outside-cloud-ranges' \
             ORDER BY audit_id",
        )
        .into_iter()
        .map(|row| row["audit_id"].as_str().unwrap_or_default()[35..].to_string())
        .collect::<Vec<_>>()
    };
    // The providers' file replaces the built-in snapshot: Google's address is outside it.
    assert_eq!(
        outside_cloud("file", &["--cloud-ranges", &ranges]),
        ["2", "4"]
    );
    // The built-in snapshot knows AWS's and Google's addresses.
    assert_eq!(outside_cloud("snapshot", &[]), ["2"]);
    // Emptied, the ranges cannot tell a cloud address, and the rule stays off.
    assert!(outside_cloud("emptied", &["--cloud-ranges", "/dev/null"]).is_empty());
    // A file of no known shape, or with a bad block, stops the run naming file and line.
    std::fs::write(
        dir.path().join("ip-ranges.json"),
        "{\"prefixes\": [\n{\"ip_prefix\": \"3.5.140.0/33\"}]}",
    )
    .expect("write");
    let out = auditlake(
        &dir.path().join("bad"),
        &["replay", "--cloud-ranges", &ranges, &log],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{ranges}:2:")),
        "{}",
        stderr(&out)
    );
}
