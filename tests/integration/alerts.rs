//! Detections end to end: each sample scenario raises what `sample-logs/README.md` says, the
//! benign baseline nothing of medium or above, the Falco captures what they were made to show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::*;

/// Alerts stored, by rule id.
fn alerts_by_rule(data: &Path) -> BTreeMap<String, u64> {
    by_rule(query(
        data,
        "SELECT rule_id, count(*) AS n FROM alerts GROUP BY rule_id",
    ))
}

fn replay_sample(name: &str) -> (tempfile::TempDir, BTreeMap<String, u64>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = replay(dir.path(), &[repo().join("sample-logs").join(name)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = alerts_by_rule(dir.path());
    (dir, alerts)
}

/// What each scenario must raise (the README's "should fire" column), at least.
const SCENARIOS: &[(&str, &[&str])] = &[
    (
        "exec-into-pod.log",
        &[
            "pod-exec-attach",
            "exec-cmd-credential-path",
            "exec-cmd-shell-or-tool",
            "exec-from-public-ip",
        ],
    ),
    (
        "forbidden-secret-reads.log",
        &[
            "secret-get-denied",
            "secret-read-scripting-ua",
            "permission-enumeration-mixed",
            "secrets-list",
            "secret-read-by-sa-or-node",
        ],
    ),
    (
        "cluster-admin-binding.log",
        &["cluster-admin-binding", "binding-to-service-account"],
    ),
    (
        "privileged-hostpath-pod.log",
        &[
            "privileged-pod",
            "sensitive-hostpath-pod",
            "hostpid-pod",
            "hostnetwork-pod",
        ],
    ),
    (
        "anonymous-access.log",
        &["anonymous-request", "secret-read-scripting-ua"],
    ),
    ("wildcard-role.log", &["role-wildcard"]),
    (
        "persistence-webhook-cronjob.log",
        &[
            "admission-webhook-change",
            "cronjob-job-change",
            "daemonset-created",
            "sa-created-in-system-namespace",
            "auth-configmap-modified",
        ],
    ),
    (
        "recon-enumeration.log",
        &[
            "recon-tool-user-agent",
            "self-subject-review",
            "multi-resource-discovery",
            "anonymous-endpoint-enumeration",
            "unauthenticated-scanning",
            "forbidden-multi-resource-burst",
        ],
    ),
    (
        "other-anti-forensics.log",
        &[
            "psa-label-weakened",
            "coredns-config-modified",
            "node-identity-non-node-action",
            "events-deleted",
        ],
    ),
];

#[test]
fn each_scenario_raises_what_its_readme_says() {
    for (file, expected) in SCENARIOS {
        let (_dir, alerts) = replay_sample(file);
        for rule in *expected {
            assert!(
                alerts.contains_key(*rule),
                "{file}: {rule} did not fire; got {alerts:?}"
            );
        }
    }
}

/// `sample-logs/history/`: ten days of habits, then anomalies that only history shows.
#[test]
fn history_scenario_raises_its_first_seen_sequence_and_threat_intel_alerts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let history = repo().join("sample-logs/history");
    let out = auditlake(
        dir.path(),
        &[
            "replay",
            "--threat-intel",
            &history.join("threat-intel.txt").display().to_string(),
            &history
                .join("habits-then-anomalies.log")
                .display()
                .to_string(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let paged = by_rule(query(
        dir.path(),
        "SELECT rule_id, count(*) AS n FROM alerts \
         WHERE severity IN ('critical', 'high', 'medium') GROUP BY rule_id",
    ));
    for rule in [
        "sa-token-new-network",
        "sa-token-new-user-agent",
        "anomalous-permission-check",
        "self-subject-review-new-user-agent",
        "human-new-network",
        "anomalous-secret-access",
        "anomalous-exec",
        "anomalous-role-binding-created",
        "anomalous-role-created",
        "anomalous-workload-deployed",
        "anomalous-privileged-workload",
        "anomalous-sensitive-mount",
        "rbac-change-then-workload-write",
        "forbidden-burst-then-sensitive-success",
        "new-sa-cluster-admin-then-token",
        "system-identity-outside-cloud-ranges",
        "threat-intel-source-ip",
    ] {
        assert!(paged.contains_key(rule), "{rule} did not page: {paged:?}");
    }
    // With the built-in cloud ranges, the rule that knows them judges CoreDNS's public address
    // alone: one event, one page.
    assert!(!paged.contains_key("system-identity-new-public-network"));
    // Ten days of the same habits page nobody: every paging alert is on the last day.
    let habits = query(
        dir.path(),
        "SELECT count(*) AS n FROM alerts WHERE severity IN ('critical', 'high', 'medium') \
         AND event_time < '2025-11-03T20:00:00Z'",
    );
    assert_eq!(habits[0]["n"], 0, "{habits:?}");
    // Each says what it was compared with, and lists its evidence.
    let explained = query(
        dir.path(),
        "SELECT message, evidence, tags FROM alerts WHERE rule_id IN ('anomalous-exec', \
         'new-sa-cluster-admin-then-token')",
    );
    assert_eq!(explained.len(), 2, "{explained:?}");
    for alert in &explained {
        let message = alert["message"].as_str().expect("message");
        assert!(
            message.contains("14d of history") || message.contains("sequence within 1h"),
            "{message}"
        );
    }
    let sequence = explained
        .iter()
        .find(|a| a["tags"].to_string().contains("sequence"))
        .expect("the sequence alert");
    assert_eq!(sequence["evidence"].as_array().map(Vec::len), Some(3));
    // Without the list, the visitor from the Tor exit is not on any list.
    let bare = tempfile::tempdir().expect("tempdir");
    let out = replay(bare.path(), &[history.join("habits-then-anomalies.log")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !by_rule(query(bare.path(), "SELECT rule_id, 1 AS n FROM alerts"))
            .contains_key("threat-intel-source-ip")
    );
}

#[test]
fn exec_alerts_once_per_request_not_per_stage() {
    let (_dir, alerts) = replay_sample("exec-into-pod.log");
    // Two exec requests (one logged at two stages), one get of the pod.
    assert_eq!(alerts.get("pod-exec-attach"), Some(&2));
}

#[test]
fn benign_baseline_raises_nothing_medium_or_above() {
    let (dir, _) = replay_sample("benign-busy-cluster.log");
    let loud = query(
        dir.path(),
        "SELECT rule_id, message FROM alerts WHERE severity IN ('critical', 'high', 'medium')",
    );
    assert!(loud.is_empty(), "{loud:#?}");
}

#[test]
fn alerts_by_rule_in_the_replay_summary_and_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = auditlake(
        dir.path(),
        &[
            "replay",
            "--alerts-stdout",
            &repo()
                .join("sample-logs/wildcard-role.log")
                .display()
                .to_string(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON alert per line"))
        .collect();
    let rules: BTreeSet<&str> = lines.iter().filter_map(|a| a["rule_id"].as_str()).collect();
    assert!(rules.contains("role-wildcard"), "{rules:?}");
    assert!(
        stderr(&out).contains("role-wildcard"),
        "summary on stderr: {}",
        stderr(&out)
    );
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("bob@example.com")
    );
}

/// Falco capture → rules that must fire on it (empty: none of `must_not` may fire).
const FALCO: &[(&str, &[&str], &[&str])] = &[
    (
        "anonymous_creates_namespace_foo.json",
        &["anonymous-request"],
        &[],
    ),
    ("attach_pod.json", &["pod-exec-attach"], &[]),
    ("create_cluster_role_pod_exec.json", &["role-pod-exec"], &[]),
    (
        "create_cluster_role_wildcard_resources.json",
        &["role-wildcard"],
        &[],
    ),
    (
        "create_clusterrole.json",
        &["role-change"],
        &[
            "role-wildcard",
            "role-pod-exec",
            "sensitive-role-permissions",
        ],
    ),
    ("create_configmap.json", &["object-lifecycle-trail"], &[]),
    (
        "create_deployment.json",
        &["object-lifecycle-trail"],
        &["privileged-pod"],
    ),
    (
        "create_nginx_pod_hostnetwork.json",
        &["hostnetwork-pod"],
        &["privileged-pod"],
    ),
    (
        "create_nginx_pod_nohostnetwork.json",
        &[],
        &["hostnetwork-pod"],
    ),
    ("create_nginx_pod_privileged.json", &["privileged-pod"], &[]),
    (
        "create_nginx_pod_privileged_2nd_container.json",
        &["privileged-pod"],
        &[],
    ),
    (
        "create_nginx_pod_sensitive_mount.json",
        &["sensitive-hostpath-pod"],
        &[],
    ),
    (
        "create_nginx_pod_unprivileged.json",
        &[],
        &[
            "privileged-pod",
            "hostnetwork-pod",
            "hostpid-pod",
            "sensitive-hostpath-pod",
            "hostpath-any",
        ],
    ),
    (
        "create_nginx_service_nonodeport.json",
        &[],
        &["nodeport-service"],
    ),
    (
        "create_pod_kube_system_namespace.json",
        &["pod-in-system-namespace"],
        &[],
    ),
    ("create_secret.json", &["secret-write-delete"], &[]),
    (
        "create_serviceaccount.json",
        &["sa-created"],
        &["sa-created-in-system-namespace"],
    ),
    (
        "create_serviceaccount_kube_system_namespace.json",
        &["sa-created-in-system-namespace"],
        &[],
    ),
    (
        "delete_clusterrole.json",
        &["role-change"],
        &["system-role-modified"],
    ),
    (
        "modify_cluster_role_node_problem_detector.json",
        &["system-role-modified"],
        &[],
    ),
];

#[test]
fn falco_captures_raise_what_they_show_and_elastic_samples_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(replay(dir.path(), &real_log_files()).status.success());
    for (file, must, must_not) in FALCO {
        let text = std::fs::read_to_string(real_logs().join("falco").join(file)).expect("capture");
        let event: serde_json::Value =
            serde_json::from_str(text.trim()).expect("one event per file");
        let id = event["auditID"].as_str().expect("auditID");
        let fired: BTreeSet<String> = query(
            dir.path(),
            &format!("SELECT rule_id FROM alerts WHERE audit_id = '{id}'"),
        )
        .into_iter()
        .filter_map(|r| r["rule_id"].as_str().map(String::from))
        .collect();
        for rule in *must {
            assert!(
                fired.contains(*rule),
                "{file}: {rule} did not fire; fired {fired:?}"
            );
        }
        for rule in *must_not {
            assert!(!fired.contains(*rule), "{file}: {rule} fired");
        }
    }
    // Elastic's format samples hold only routine, allowed traffic.
    let elastic = query(
        dir.path(),
        "SELECT rule_id, audit_id FROM alerts WHERE cluster <> 'default' OR audit_id IN ('abcde12345', '1234abcd')",
    );
    assert!(elastic.is_empty(), "{elastic:?}");
}
