//! A seeded cluster with stable habits over many days, a little legitimate novelty and labelled
//! anomalies after a learning week: the data the history-aware detections are judged on.
//!
//! Routine, every day: nodes renew leases, patch their status and read the secrets of the pods
//! they run (a pod moves now and then); the control plane reconciles; cert-manager, Argo CD,
//! Prometheus, kube-state-metrics, an ingress controller and external-secrets read and write what
//! operators do (secrets included, cluster-wide lists too); Argo CD rolls a privileged node agent
//! with host mounts out daily; a CI deployer's service account patches deployments from its fixed
//! public runner address; humans with fixed addresses, clients, teams and working hours read
//! their namespaces, SREs exec into pods, check permissions and start privileged debug pods, an
//! admin edits role bindings twice a week. Legitimate novelty: a new application with its own
//! service account and namespace, a new hire, a kubectl upgrade for everyone.
//!
//! Anomalies, each labelled with its audit ID and kind, only after [`LEARN_DAYS`]: a workload's
//! token used from outside the cluster, a human's credentials from a new network and client, a
//! first exec, a first RBAC write, a first permission check, a first secret read, a first
//! privileged pod, three sequences and four addresses of a threat list (two inside CIDR blocks).
//!
//! The same seed gives the same bytes on any machine.

use std::fmt::Write as _;

mod anomalies;

use chrono::{DateTime, SecondsFormat};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// Days before any anomaly (the built-in first-seen rules learn for five).
pub const LEARN_DAYS: u32 = 7;
/// The first day's midnight, 2026-03-02T00:00:00Z, a Monday.
pub const START_MICROS: i64 = 1_772_409_600_000_000;
const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;
const MINUTE: i64 = 60_000_000;
/// Events per day the rates below are written for.
const FULL_DAY: usize = 54_000;

/// The threat list the anomalies' addresses are on (with entries no event uses).
pub const THREAT_LIST: &str = "# a threat-intel feed as a user downloads it\n\
185.220.101.0/24 # tor exits\n\
45.155.205.233\n\
193.142.146.35 ; scanner\n\
2001:db8:dead::/48\n\
198.18.7.0/24\n";

/// One labelled anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// The event an alert must name (for a sequence, the step that completes it).
    pub audit_id: String,
    /// What it is.
    pub kind: &'static str,
    /// Its day, from 0.
    pub day: u32,
}

/// The generated days.
#[derive(Debug)]
pub struct Habits {
    /// Per day, its events as NDJSON in time order.
    pub days: Vec<Vec<u8>>,
    /// The anomalies.
    pub labels: Vec<Label>,
    /// The audit IDs of every event an anomaly wrote (labelled or not: the denied probes before
    /// a success, the steps before a sequence completes), which are not routine traffic.
    pub attack: std::collections::HashSet<String>,
}

/// A request as the generator writes it.
#[derive(Clone)]
struct Req<'a> {
    user: &'a str,
    groups: &'a [&'a str],
    ip: &'a str,
    ua: &'a str,
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    sub: Option<&'a str>,
    ns: Option<&'a str>,
    name: Option<&'a str>,
    code: i64,
    body: Option<Value>,
    query: &'a str,
}

impl<'a> Req<'a> {
    fn new(who: &'a Who, verb: &'a str, resource: &'a str) -> Self {
        Self {
            user: &who.user,
            groups: who.groups,
            ip: &who.ip,
            ua: &who.ua,
            verb,
            group: "",
            resource,
            sub: None,
            ns: None,
            name: None,
            code: 200,
            body: None,
            query: "",
        }
    }
    fn ns(mut self, ns: &'a str) -> Self {
        self.ns = Some(ns);
        self
    }
    fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }
    fn group(mut self, group: &'a str) -> Self {
        self.group = group;
        self
    }
    fn sub(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }
    fn code(mut self, code: i64) -> Self {
        self.code = code;
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn query(mut self, query: &'a str) -> Self {
        self.query = query;
        self
    }
}

/// An identity with its fixed habits.
#[derive(Clone)]
struct Who {
    user: String,
    groups: &'static [&'static str],
    ip: String,
    ua: String,
}

impl Who {
    fn new(user: &str, groups: &'static [&'static str], ip: &str, ua: &str) -> Self {
        Self {
            user: user.into(),
            groups,
            ip: ip.into(),
            ua: ua.into(),
        }
    }
}

const SA_GROUPS: &[&str] = &["system:serviceaccounts", "system:authenticated"];
const NODE_GROUPS: &[&str] = &["system:nodes", "system:authenticated"];
const HUMAN_GROUPS: &[&str] = &["developers", "system:authenticated"];
const ADMIN_GROUPS: &[&str] = &["platform-admins", "system:authenticated"];
const APP_NAMESPACES: &[&str] = &[
    "shop", "cart", "search", "checkout", "catalog", "accounts", "mail", "reports", "billing",
    "media",
];

/// Developer `n` (from 1) at their own address, with kubectl `version`.
fn person(n: u32, version: &str) -> Who {
    Who::new(
        &format!("dev{n:02}@corp.example"),
        HUMAN_GROUPS,
        &format!("192.168.10.{}", 9 + n),
        &format!("kubectl/{version} (linux/amd64) kubernetes/4b8e4c6"),
    )
}

fn sa(ns: &str, name: &str, ip: &str, ua: &str) -> Who {
    Who::new(
        &format!("system:serviceaccount:{ns}:{name}"),
        SA_GROUPS,
        ip,
        ua,
    )
}

struct Writer {
    rng: ChaCha8Rng,
    events: Vec<(i64, Value)>,
    labels: Vec<Label>,
    day: u32,
    serial: u64,
    /// Whether what is written now is an anomaly's.
    attacking: bool,
    attack: std::collections::HashSet<String>,
}

impl Writer {
    fn id(&mut self) -> String {
        self.serial += 1;
        let r: u64 = self.rng.random();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            self.day,
            self.serial >> 32 & 0xffff,
            (self.serial >> 16) & 0xfff,
            self.serial & 0xfff,
            r & 0xffff_ffff_ffff
        )
    }

    /// Writes one event at `t`; returns its audit ID.
    fn emit(&mut self, t: i64, r: &Req) -> String {
        let id = self.id();
        let mut uri = if r.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/v1", r.group)
        };
        if let Some(ns) = r.ns {
            let _ = write!(uri, "/namespaces/{ns}");
        }
        let _ = write!(uri, "/{}", r.resource);
        if let Some(name) = r.name {
            let _ = write!(uri, "/{name}");
        }
        if let Some(sub) = r.sub {
            let _ = write!(uri, "/{sub}");
        }
        uri.push_str(r.query);
        let received = micros_text(t);
        let staged = micros_text(t + 3_000 + (t % 7_000));
        let mut object = json!({"resource": r.resource, "apiVersion": "v1"});
        if !r.group.is_empty() {
            object["apiGroup"] = r.group.into();
        }
        if let Some(ns) = r.ns {
            object["namespace"] = ns.into();
        }
        if let Some(name) = r.name {
            object["name"] = name.into();
        }
        if let Some(sub) = r.sub {
            object["subresource"] = sub.into();
        }
        let decision = if r.code == 403 { "forbid" } else { "allow" };
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": if r.body.is_some() { "RequestResponse" } else { "Metadata" },
            "auditID": id,
            "stage": if r.sub == Some("exec") { "ResponseStarted" } else { "ResponseComplete" },
            "requestURI": uri,
            "verb": r.verb,
            "user": {"username": r.user, "groups": r.groups},
            "sourceIPs": [r.ip],
            "userAgent": r.ua,
            "objectRef": object,
            "responseStatus": {"metadata": {}, "code": r.code},
            "requestReceivedTimestamp": received,
            "stageTimestamp": staged,
            "annotations": {"authorization.k8s.io/decision": decision,
                            "authorization.k8s.io/reason": ""},
        });
        if let Some(body) = &r.body {
            event["requestObject"] = body.clone();
        }
        self.events.push((t, event));
        if self.attacking {
            self.attack.insert(id.clone());
        }
        id
    }

    fn label(&mut self, id: String, kind: &'static str) {
        self.labels.push(Label {
            audit_id: id,
            kind,
            day: self.day,
        });
    }

    /// A time within `[from, to)` hours of the day.
    fn at(&mut self, day_start: i64, from: i64, to: i64) -> i64 {
        day_start + self.rng.random_range(from * HOUR..to * HOUR)
    }
}

fn micros_text(t: i64) -> String {
    DateTime::from_timestamp_micros(t)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn pod(name: &str, sa: &str, privileged: bool, host_path: Option<&str>) -> Value {
    let mut container = json!({"name": "main", "image": "registry.example.com/tools/debug:1.4"});
    if privileged {
        container["securityContext"] = json!({"privileged": true});
    }
    let mut spec = json!({"serviceAccountName": sa, "containers": [container]});
    if let Some(path) = host_path {
        spec["volumes"] = json!([{"name": "host", "hostPath": {"path": path}}]);
        spec["containers"][0]["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name}, "spec": spec})
}

fn daemonset(name: &str) -> Value {
    json!({"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": name},
           "spec": {"template": {"spec": {"hostNetwork": true, "hostPID": true,
             "serviceAccountName": name,
             "containers": [{"name": name, "image": "registry.example.com/monitoring/node-exporter:1.7",
               "securityContext": {"privileged": true},
               "volumeMounts": [{"name": "proc", "mountPath": "/host/proc"}]}],
             "volumes": [{"name": "proc", "hostPath": {"path": "/proc"}},
                         {"name": "root", "hostPath": {"path": "/"}}]}}}})
}

fn deployment(name: &str, image: &str) -> Value {
    json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": name},
           "spec": {"template": {"spec": {"serviceAccountName": name,
             "containers": [{"name": name, "image": image}]}}}})
}

fn binding(kind: &str, name: &str, role: &str, subject: Value) -> Value {
    json!({"kind": kind, "apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": name},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
           "subjects": [subject]})
}

/// `days` days of about `per_day` events each.
pub fn generate(seed: u64, days: u32, per_day: usize) -> Habits {
    let mut w = Writer {
        rng: ChaCha8Rng::seed_from_u64(seed),
        events: Vec::new(),
        labels: Vec::new(),
        day: 0,
        serial: 0,
        attacking: false,
        attack: std::collections::HashSet::new(),
    };
    // How much rarer periodic traffic is than at FULL_DAY.
    let scale = (FULL_DAY as f64 / per_day.max(1) as f64).max(1.0);
    let every = |minutes: f64| ((minutes * scale) * MINUTE as f64) as i64;
    let kubectl = |version: &str| format!("kubectl/{version} (linux/amd64) kubernetes/4b8e4c6");
    let nodes: Vec<Who> = (0..20)
        .map(|i| {
            Who::new(
                &format!("system:node:ip-10-0-{}-{}.ec2.internal", i / 10, 20 + i),
                NODE_GROUPS,
                &format!("10.0.{}.{}", i / 10, 20 + i),
                "kubelet/v1.29.3 (linux/amd64) kubernetes/6813625",
            )
        })
        .collect();
    let kcm = Who::new(
        "system:kube-controller-manager",
        &["system:authenticated"],
        "10.0.0.10",
        "kube-controller-manager/v1.29.3 (linux/amd64) kubernetes/6813625/leader-election",
    );
    let prometheus = sa(
        "monitoring",
        "prometheus",
        "10.244.1.5",
        "Prometheus/2.51.0",
    );
    let ksm = sa(
        "monitoring",
        "kube-state-metrics",
        "10.244.1.9",
        "kube-state-metrics/v2.10.1 (linux/amd64) kube-state-metrics/5a5ae8c",
    );
    let grafana = sa("monitoring", "grafana", "10.244.1.12", "grafana/10.4.1");
    let certs = sa(
        "cert-manager",
        "cert-manager",
        "10.244.2.8",
        "cert-manager-controller/v1.14.4 (linux/amd64) cert-manager/a7a3a4f",
    );
    let argocd = sa(
        "argocd",
        "argocd-application-controller",
        "10.244.3.9",
        "argocd-application-controller/v2.10.4 (linux/amd64) kubernetes/$Format",
    );
    let ingress = sa(
        "ingress-nginx",
        "ingress-nginx",
        "10.244.4.2",
        "nginx-ingress-controller/v1.10.0 (linux/amd64) ingress-nginx/71f78d4",
    );
    let eso = sa(
        "external-secrets",
        "external-secrets",
        "10.244.4.30",
        "external-secrets/v0.9.13 (linux/amd64)",
    );
    let web = sa(
        "shop",
        "web",
        "10.244.5.11",
        "shop-web/3.2 (linux/amd64) kubernetes/$Format",
    );
    let payments = sa(
        "payments",
        "api",
        "10.244.6.4",
        "payments-api/1.0 (linux/amd64) kubernetes/$Format",
    );
    let humans: Vec<(String, String, usize)> = (0..21)
        .map(|i| {
            (
                format!("dev{:02}@corp.example", i + 1),
                format!("192.168.10.{}", 10 + i),
                i % APP_NAMESPACES.len(),
            )
        })
        .collect();
    let mut days_out = Vec::new();
    for day in 0..days {
        w.day = day;
        let start = START_MICROS + i64::from(day) * DAY;
        let weekday = day % 7 < 5;
        let kubectl_version = if day >= 10 { "v1.30.1" } else { "v1.29.2" };
        let ci = sa("ci", "deployer", "34.86.12.7", &kubectl(kubectl_version));

        // Control plane and nodes, all day.
        let mut t = start;
        while t < start + DAY {
            let r = Req::new(&kcm, "update", "endpoints")
                .ns(APP_NAMESPACES[(t / MINUTE) as usize % 10])
                .name("svc");
            w.emit(t, &r);
            t += every(1.0);
        }
        for (n, node) in nodes.iter().enumerate() {
            let name = node.user.trim_start_matches("system:node:").to_string();
            let mut t = start + n as i64 * 1_700_000;
            while t < start + DAY {
                let r = Req::new(node, "get", "nodes").name(&name);
                w.emit(t, &r);
                t += every(0.9);
            }
            // The secrets of the pods a node runs: two namespaces, one moving now and then.
            let mut homes = vec![APP_NAMESPACES[n % 10], APP_NAMESPACES[(n + 3) % 10]];
            if w.rng.random_bool(0.15) {
                homes[1] = APP_NAMESPACES[w.rng.random_range(0..10)];
            }
            let mut t = start + n as i64 * 900_000;
            while t < start + DAY {
                for ns in &homes {
                    let r = Req::new(node, "get", "secrets").ns(ns).name("app-tls");
                    w.emit(t, &r);
                }
                t += every(60.0);
            }
        }
        // Operators.
        let mut t = start + 7 * MINUTE;
        while t < start + DAY {
            for resource in ["pods", "endpoints", "services", "nodes"] {
                w.emit(t, &Req::new(&prometheus, "list", resource));
            }
            w.emit(t + 1_000, &Req::new(&ksm, "list", "secrets"));
            w.emit(t + 2_000, &Req::new(&ksm, "list", "pods"));
            t += every(5.0);
        }
        let mut t = start + 3 * MINUTE;
        while t < start + DAY {
            for ns in &APP_NAMESPACES[..6] {
                w.emit(
                    t,
                    &Req::new(&certs, "get", "secrets").ns(ns).name("app-tls"),
                );
            }
            if day >= 8 {
                w.emit(
                    t,
                    &Req::new(&certs, "get", "secrets")
                        .ns("payments")
                        .name("app-tls"),
                );
            }
            t += every(20.0);
        }
        let mut t = start + 11 * MINUTE;
        while t < start + DAY {
            let ns = APP_NAMESPACES[w.rng.random_range(0..10)];
            w.emit(
                t,
                &Req::new(&argocd, "list", "deployments")
                    .ns(ns)
                    .group("apps"),
            );
            w.emit(t + 1_000, &Req::new(&argocd, "list", "secrets").ns(ns));
            w.emit(t + 2_000, &Req::new(&argocd, "list", "configmaps").ns(ns));
            t += every(6.0);
        }
        // Argo CD rolls the node agent (privileged, host mounts) out every morning, and syncs
        // the applications (roles and deployments together).
        let ds = daemonset("node-exporter");
        let t = w.at(start, 6, 7);
        w.emit(
            t,
            &Req::new(&argocd, "patch", "daemonsets")
                .ns("monitoring")
                .name("node-exporter")
                .group("apps")
                .body(ds),
        );
        for k in 0..4 {
            let ns = APP_NAMESPACES[w.rng.random_range(0..10)];
            let t = w.at(start, 7, 20);
            let role = json!({"kind": "Role", "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]});
            w.emit(
                t,
                &Req::new(&argocd, "patch", "roles")
                    .ns(ns)
                    .name("app-reader")
                    .group("rbac.authorization.k8s.io")
                    .body(role),
            );
            let name = format!("app-{k}");
            w.emit(
                t + 2_000_000,
                &Req::new(&argocd, "patch", "deployments")
                    .ns(ns)
                    .name(&name)
                    .group("apps")
                    .body(deployment(&name, "registry.example.com/apps/app:2.1")),
            );
        }
        if day >= 8 {
            let t = w.at(start, 9, 10);
            w.emit(
                t,
                &Req::new(&argocd, "create", "deployments")
                    .ns("payments")
                    .name("api")
                    .group("apps")
                    .body(deployment("api", "registry.example.com/payments/api:1.0")),
            );
        }
        let mut t = start + 17 * MINUTE;
        while t < start + DAY {
            w.emit(t, &Req::new(&ingress, "list", "secrets"));
            w.emit(
                t + 1_000,
                &Req::new(&ingress, "list", "ingresses").group("networking.k8s.io"),
            );
            t += every(30.0);
        }
        let mut t = start + 23 * MINUTE;
        while t < start + DAY {
            let ns = APP_NAMESPACES[w.rng.random_range(0..10)];
            w.emit(
                t,
                &Req::new(&eso, "get", "secrets")
                    .ns(ns)
                    .name("db-credentials"),
            );
            w.emit(
                t + 1_000,
                &Req::new(&eso, "update", "secrets")
                    .ns(ns)
                    .name("db-credentials"),
            );
            t += every(60.0);
        }
        let mut t = start + MINUTE;
        while t < start + DAY {
            w.emit(
                t,
                &Req::new(&web, "get", "configmaps")
                    .ns("shop")
                    .name("web-config"),
            );
            w.emit(
                t + 1_000,
                &Req::new(&grafana, "list", "configmaps").ns("monitoring"),
            );
            if day >= 8 {
                w.emit(
                    t + 2_000,
                    &Req::new(&payments, "get", "secrets")
                        .ns("payments")
                        .name("api-db"),
                );
            }
            t += every(10.0);
        }
        // The CI deployer, from its runner's public address, on working days.
        if weekday {
            for _ in 0..12 {
                let ns = APP_NAMESPACES[w.rng.random_range(0..10)];
                let t = w.at(start, 8, 19);
                w.emit(
                    t,
                    &Req::new(&ci, "get", "deployments")
                        .ns(ns)
                        .name("app-0")
                        .group("apps"),
                );
                w.emit(
                    t + 3_000_000,
                    &Req::new(&ci, "patch", "deployments")
                        .ns(ns)
                        .name("app-0")
                        .group("apps")
                        .body(deployment("app-0", "registry.example.com/apps/app:2.2")),
                );
            }
        }
        // Humans, on working days, in working hours.
        let requests = ((400.0 / scale) as usize).max(8);
        for (i, (user, ip, team)) in humans.iter().enumerate() {
            if !weekday || (i == 20 && day < 9) {
                continue; // dev21 is hired on day 9
            }
            let groups = if i == 0 { ADMIN_GROUPS } else { HUMAN_GROUPS };
            let me = Who::new(user, groups, ip, &kubectl(kubectl_version));
            let ns = APP_NAMESPACES[*team];
            let other = APP_NAMESPACES[(*team + 1) % 10];
            let (from, to) = (8 + (i as i64 % 3), 17 + (i as i64 % 2));
            for _ in 0..requests {
                let t = w.at(start, from, to);
                let ns = if w.rng.random_bool(0.8) { ns } else { other };
                let r = match w.rng.random_range(0..5) {
                    0 => Req::new(&me, "list", "pods").ns(ns),
                    1 => Req::new(&me, "get", "pods")
                        .ns(ns)
                        .name("web-7d4f9")
                        .sub("log"),
                    2 => Req::new(&me, "get", "deployments")
                        .ns(ns)
                        .name("app-0")
                        .group("apps"),
                    3 => Req::new(&me, "list", "events").ns(ns),
                    _ => Req::new(&me, "get", "pods").ns(ns).name("web-7d4f9"),
                };
                w.emit(t, &r);
            }
            // SREs (dev01-dev04): a shell in their pods, a permission check, a privileged debug
            // pod on a node, every working day.
            if i < 4 {
                let t = w.at(start, from, to);
                w.emit(
                    t,
                    &Req::new(&me, "create", "pods")
                        .ns(ns)
                        .name("web-7d4f9")
                        .sub("exec")
                        .code(101)
                        .query("?command=sh&container=main&stdin=true&tty=true"),
                );
                let t = w.at(start, from, to);
                w.emit(
                    t,
                    &Req::new(&me, "create", "selfsubjectaccessreviews")
                        .group("authorization.k8s.io")
                        .code(201),
                );
                let t = w.at(start, from, to);
                let name = format!("node-debugger-{day}-{i}");
                w.emit(
                    t,
                    &Req::new(&me, "create", "pods")
                        .ns("default")
                        .name(&name)
                        .code(201)
                        .body(pod(&name, "default", true, Some("/"))),
                );
            }
            // The admin edits role bindings twice a week.
            if i == 0 && (day % 7 == 1 || day % 7 == 3) {
                let t = w.at(start, 10, 16);
                let b = binding(
                    "RoleBinding",
                    "team-view",
                    "view",
                    json!({"kind": "Group", "name": "developers"}),
                );
                w.emit(
                    t,
                    &Req::new(&me, "update", "rolebindings")
                        .ns(ns)
                        .name("team-view")
                        .group("rbac.authorization.k8s.io")
                        .body(b),
                );
            }
        }
        if day >= LEARN_DAYS {
            w.attacking = true;
            anomalies::write(&mut w, start, day);
            w.attacking = false;
        }
        let mut events = std::mem::take(&mut w.events);
        events.sort_by_key(|(t, _)| *t);
        let mut bytes = Vec::with_capacity(events.len() * 700);
        for (_, e) in &events {
            serde_json::to_writer(&mut bytes, e).expect("writing JSON to a Vec cannot fail");
            bytes.push(b'\n');
        }
        days_out.push(bytes);
    }
    Habits {
        days: days_out,
        labels: w.labels,
        attack: w.attack,
    }
}
