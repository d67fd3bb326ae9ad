//! Derived columns on `sample-logs/` and the Falco captures.

use crate::*;

fn sample(dir: &std::path::Path) {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("sample-logs"))
        .expect("sample-logs")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let out = replay(dir, &files);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("194 events stored"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn privileged_pod_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample(dir.path());
    let rows = query(
        dir.path(),
        "SELECT pod_privileged, pod_host_pid, pod_host_network, pod_host_ipc, pod_host_paths, \
         pod_images, pod_run_as_root, pod_service_account FROM events WHERE name = 'node-debugger'",
    );
    insta::assert_json_snapshot!("privileged_pod", rows);
    let hardened = query(
        dir.path(),
        "SELECT DISTINCT pod_privileged, pod_allow_privilege_escalation, pod_service_account FROM events \
         WHERE resource = 'pods' AND verb = 'create' AND namespace = 'shop'",
    );
    assert_eq!(
        hardened,
        [
            serde_json::json!({"pod_privileged": false, "pod_allow_privilege_escalation": false, "pod_service_account": "web"})
        ]
    );
}

#[test]
fn exec_commands_and_bindings_and_roles() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample(dir.path());
    let exec = query(
        dir.path(),
        "SELECT verb, stage, response_code, exec_command FROM events WHERE subresource = 'exec' \
         ORDER BY stage_time, stage",
    );
    insta::assert_json_snapshot!("exec", exec);
    let binding = query(
        dir.path(),
        "SELECT role_ref, subjects FROM events WHERE resource = 'clusterrolebindings' AND verb = 'create'",
    );
    assert_eq!(
        binding,
        [
            serde_json::json!({"role_ref": "cluster-admin", "subjects": ["ServiceAccount:ci:ci-deployer"]})
        ]
    );
    let role = query(
        dir.path(),
        "SELECT rule_verbs, rule_resources FROM events WHERE resource = 'clusterroles' AND verb = 'create'",
    );
    assert_eq!(
        role,
        [serde_json::json!({"rule_verbs": ["*"], "rule_resources": ["*"]})]
    );
    let none = query(
        dir.path(),
        "SELECT count(*) AS n FROM events WHERE exec_command IS NOT NULL AND subresource IS DISTINCT FROM 'exec'",
    );
    assert_eq!(none[0]["n"], 0);
}

#[test]
fn falco_pods_second_container_and_host_mounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let falco = real_logs().join("falco");
    let files: Vec<_> = [
        "create_nginx_pod_privileged_2nd_container.json",
        "create_nginx_pod_sensitive_mount.json",
        "create_nginx_pod_unprivileged.json",
        "create_nginx_pod_hostnetwork.json",
        "create_cluster_role_wildcard_resources.json",
        "modify_cluster_role_node_problem_detector.json",
    ]
    .iter()
    .map(|f| falco.join(f))
    .collect();
    assert!(replay(dir.path(), &files).status.success());
    let rows = query(
        dir.path(),
        "SELECT verb, resource, pod_privileged, pod_host_network, pod_host_paths, pod_images, \
         rule_verbs, rule_resources FROM events ORDER BY event_time",
    );
    insta::assert_json_snapshot!("falco_derived", rows);
}
