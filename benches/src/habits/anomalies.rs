//! The labelled anomalies of [`super`]: one kind or a few a day after the learning days, each
//! written as an attacker would, its telling event labelled with its kind.

use serde_json::json;

use super::{
    ADMIN_GROUPS, HUMAN_GROUPS, LEARN_DAYS, MINUTE, Req, Who, Writer, binding, deployment, person,
    pod, sa,
};

/// The labelled anomalies, spread over the days after learning.
pub(super) fn write(w: &mut Writer, start: i64, day: u32) {
    let stolen = |ua: &str, ip: &str| sa("shop", "web", ip, ua);
    match day - LEARN_DAYS {
        0 => {
            // The shop's token, copied out of its pod, used from a VPS with a script.
            let me = stolen("python-requests/2.31.0", "203.0.113.77");
            let t = w.at(start, 2, 3);
            let id = w.emit(
                t,
                &Req::new(&me, "get", "configmaps")
                    .ns("shop")
                    .name("web-config"),
            );
            w.label(id, "sa-token-used-outside");
            w.emit(t + 5_000_000, &Req::new(&me, "list", "pods").ns("shop"));
        }
        1 => {
            // dev05's credentials from a new network and client.
            let me = Who::new(
                "dev05@corp.example",
                HUMAN_GROUPS,
                "81.2.69.160",
                "kubectl/v1.27.1 (windows/amd64) kubernetes/4c94112",
            );
            let t = w.at(start, 21, 22);
            let id = w.emit(t, &Req::new(&me, "list", "secrets").ns("cart"));
            w.label(id, "human-new-network");
            // dev07 never opened a shell before.
            let me = person(7, "v1.29.2");
            let t = w.at(start, 11, 12);
            let id = w.emit(
                t,
                &Req::new(&me, "create", "pods")
                    .ns("checkout")
                    .name("pay-5c9")
                    .sub("exec")
                    .code(101)
                    .query("?command=bash&container=main&stdin=true&tty=true"),
            );
            w.label(id, "first-exec");
        }
        2 => {
            // dev09 never touched RBAC: binds itself to cluster-admin, then deploys a workload.
            let me = person(9, "v1.30.1");
            let t = w.at(start, 14, 15);
            let b = binding(
                "ClusterRoleBinding",
                "dev09-admin",
                "cluster-admin",
                json!({"kind": "User", "name": "dev09@corp.example"}),
            );
            let id = w.emit(
                t,
                &Req::new(&me, "create", "clusterrolebindings")
                    .name("dev09-admin")
                    .group("rbac.authorization.k8s.io")
                    .code(201)
                    .body(b),
            );
            w.label(id, "first-rbac-write");
            let id = w.emit(
                t + 2 * MINUTE,
                &Req::new(&me, "create", "daemonsets")
                    .ns("kube-system")
                    .name("sysmon")
                    .group("apps")
                    .code(201)
                    .body(deployment("sysmon", "docker.io/library/alpine:3.19")),
            );
            w.label(id, "rbac-then-workload");
        }
        3 => {
            // A stolen credential probing: denied six times, then a secret it may read.
            let me = person(12, "v1.30.1");
            let t = w.at(start, 13, 14);
            for (k, (verb, resource, ns)) in [
                ("list", "secrets", "kube-system"),
                ("get", "clusterroles", ""),
                ("list", "secrets", "billing"),
                ("create", "pods", "kube-system"),
                ("list", "nodes", ""),
                ("get", "secrets", "kube-system"),
            ]
            .into_iter()
            .enumerate()
            {
                let mut r = Req::new(&me, verb, resource).code(403);
                if !ns.is_empty() {
                    r = r.ns(ns);
                }
                if resource == "clusterroles" {
                    r = r.group("rbac.authorization.k8s.io").name("admin");
                }
                w.emit(t + k as i64 * 10_000_000, &r);
            }
            let id = w.emit(
                t + 90_000_000,
                &Req::new(&me, "get", "secrets")
                    .ns("media")
                    .name("storage-key"),
            );
            w.label(id, "forbidden-burst-then-success");
            // Grafana's service account never read a secret.
            let t = w.at(start, 3, 4);
            let grafana = sa("monitoring", "grafana", "10.244.1.12", "grafana/10.4.1");
            let id = w.emit(
                t,
                &Req::new(&grafana, "get", "secrets")
                    .ns("kube-system")
                    .name("etcd-backup"),
            );
            w.label(id, "first-secret-read");
        }
        4 => {
            // A new service account bound to cluster-admin, then a token for it.
            let admin = Who::new(
                "dev01@corp.example",
                ADMIN_GROUPS,
                "192.168.10.10",
                "kubectl/v1.30.1 (linux/amd64) kubernetes/4b8e4c6",
            );
            let t = w.at(start, 19, 20);
            w.emit(
                t,
                &Req::new(&admin, "create", "serviceaccounts")
                    .ns("kube-system")
                    .name("backup-agent")
                    .code(201),
            );
            let b = binding(
                "ClusterRoleBinding",
                "backup-agent",
                "cluster-admin",
                json!({"kind": "ServiceAccount", "name": "backup-agent", "namespace": "kube-system"}),
            );
            w.emit(
                t + 30_000_000,
                &Req::new(&admin, "create", "clusterrolebindings")
                    .name("backup-agent")
                    .group("rbac.authorization.k8s.io")
                    .code(201)
                    .body(b),
            );
            let id = w.emit(
                t + 60_000_000,
                &Req::new(&admin, "create", "serviceaccounts")
                    .ns("kube-system")
                    .name("backup-agent")
                    .sub("token")
                    .code(201),
            );
            w.label(id, "sa-admin-then-token");
            // The shop's workload asks what it may do.
            let t = w.at(start, 4, 5);
            let web = sa(
                "shop",
                "web",
                "10.244.5.11",
                "shop-web/3.2 (linux/amd64) kubernetes/$Format",
            );
            let id = w.emit(
                t,
                &Req::new(&web, "create", "selfsubjectrulesreviews")
                    .group("authorization.k8s.io")
                    .code(201),
            );
            w.label(id, "first-permission-check");
        }
        5 => {
            // Addresses of the threat list: two exact, two inside its blocks.
            let visitors = [
                ("system:anonymous", "185.220.101.77", "curl/8.4.0"),
                (
                    "dev03@corp.example",
                    "45.155.205.233",
                    "kubectl/v1.30.1 (linux/amd64) kubernetes/4b8e4c6",
                ),
                (
                    "system:serviceaccount:shop:web",
                    "193.142.146.35",
                    "shop-web/3.2 (linux/amd64) kubernetes/$Format",
                ),
                (
                    "dev04@corp.example",
                    "2001:db8:dead:1::5",
                    "kubectl/v1.30.1 (linux/amd64) kubernetes/4b8e4c6",
                ),
            ];
            for (k, (user, ip, ua)) in visitors.into_iter().enumerate() {
                let groups = if user.starts_with("system:anon") {
                    &["system:unauthenticated"][..]
                } else {
                    HUMAN_GROUPS
                };
                let me = Who::new(user, groups, ip, ua);
                let t = w.at(start, 1 + k as i64 * 5, 2 + k as i64 * 5);
                let r = if k == 0 {
                    Req::new(&me, "get", "namespaces").code(403)
                } else {
                    Req::new(&me, "list", "pods").ns("shop")
                };
                let id = w.emit(t, &r);
                w.label(id, "threat-list-address");
            }
            // dev06 starts a privileged pod mounting the host's root.
            let me = person(6, "v1.30.1");
            let t = w.at(start, 15, 16);
            let id = w.emit(
                t,
                &Req::new(&me, "create", "pods")
                    .ns("billing")
                    .name("toolbox")
                    .code(201)
                    .body(pod("toolbox", "default", true, Some("/"))),
            );
            w.label(id, "first-privileged-pod");
        }
        // Routine only, the days after.
        _ => {}
    }
}
