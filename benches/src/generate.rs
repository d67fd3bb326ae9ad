//! A seeded generator of realistic audit traffic at any scale.
//!
//! Every event is one of the shapes of `sample-logs/`, turned into a template once: the benign
//! cluster's node leases, node status patches, leader election, endpointslice updates, watches,
//! Prometheus listing pods, kubectl users reading pods, deployments and logs, deployment patches
//! and pod creates with their bodies; and, at about 1.5%, the attack scenarios of the other files.
//! What varies per event is what varies in a real cluster: the audit ID, the time (about one event
//! every 86 ms, so a million span a day), the node (120 of them), the namespace (40), the human
//! user (60, each with their own address), the pod names. Node status patches and endpointslice
//! updates carry the request bodies a `Request`-level policy logs, so events average about 1.3 KB
//! like real clusters' do.
//!
//! With [`Ids::PerEvent`], every benign event also carries what some clusters' authenticators put
//! in every request and vary per request: the user's `uid`, and in `user.extra` an access-key ID
//! and a token ID (`credential-id`), as EKS and bound service-account tokens do. Those are the
//! high-entropy columns that decide how well a store compresses such traffic.
//!
//! The same seed gives the same bytes, on any machine.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::sample_logs_dir;

/// Marks a variable in a template; private-use, so no sample log contains it.
const MARK: char = '\u{E000}';

/// What a template slot is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    AuditId,
    Received,
    Staged,
    Node,
    NodeIp,
    Namespace,
    User,
    UserIp,
    Group,
    Pod,
    Uid,
    AccessKey,
    TokenId,
}

/// Whether user IDs, access keys and token IDs vary per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// As in the sample logs: a user's identity only.
    Stable,
    /// A fresh `uid`, access-key ID and token ID in every benign event.
    PerEvent,
}

impl Var {
    const ALL: [Var; 13] = [
        Var::AuditId,
        Var::Received,
        Var::Staged,
        Var::Node,
        Var::NodeIp,
        Var::Namespace,
        Var::User,
        Var::UserIp,
        Var::Group,
        Var::Pod,
        Var::Uid,
        Var::AccessKey,
        Var::TokenId,
    ];

    fn token(self) -> String {
        format!("{MARK}{}{MARK}", self as u8)
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(Var),
}

/// One event shape, split into literal text and slots.
#[derive(Debug, Clone)]
struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// `event` with its identity and times made slots; `swaps` turns further literal text into
    /// slots (a node name, a namespace, a user).
    fn new(event: &Value, swaps: &[(String, String)], ids: Ids) -> Self {
        let mut event = event.clone();
        if ids == Ids::PerEvent
            && let Some(user) = event.get_mut("user").and_then(Value::as_object_mut)
        {
            user.insert("uid".into(), Value::String(Var::Uid.token()));
            let extra = user
                .entry("extra")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(extra) = extra.as_object_mut() {
                extra.insert(
                    "accessKeyId".into(),
                    serde_json::json!([Var::AccessKey.token()]),
                );
                extra.insert(
                    "authentication.kubernetes.io/credential-id".into(),
                    serde_json::json!([format!("JTI={}", Var::TokenId.token())]),
                );
            }
        }
        if let Some(obj) = event.as_object_mut() {
            obj.insert("auditID".into(), Value::String(Var::AuditId.token()));
            obj.insert(
                "requestReceivedTimestamp".into(),
                Value::String(Var::Received.token()),
            );
            obj.insert("stageTimestamp".into(), Value::String(Var::Staged.token()));
        }
        let mut text = serde_json::to_string(&event).expect("a Value serializes");
        for (literal, slot) in swaps {
            text = text.replace(literal.as_str(), slot);
        }
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find(MARK) {
            pieces.push(Piece::Text(rest[..start].to_string()));
            let after = &rest[start + MARK.len_utf8()..];
            let end = after.find(MARK).expect("marks come in pairs");
            let index: u8 = after[..end].parse().expect("a slot number");
            pieces.push(Piece::Var(Var::ALL[index as usize]));
            rest = &after[end + MARK.len_utf8()..];
        }
        pieces.push(Piece::Text(rest.to_string()));
        Template { pieces }
    }
}

/// The values of one event's slots.
struct Fill {
    audit_id: String,
    received: String,
    staged: String,
    node: usize,
    namespace: usize,
    user: usize,
    pod: String,
    /// Per event with [`Ids::PerEvent`], else empty.
    uid: String,
    access_key: String,
    token_id: String,
}

const DAY_US: i64 = 86_400_000_000;
/// Events per day of event time unless [`Generator::per_day`] says otherwise.
const DEFAULT_PER_DAY: i64 = 1_000_000;
const NODES: usize = 120;
const USERS: usize = 60;
const NAMESPACES: [&str; 40] = [
    "shop",
    "payments",
    "checkout",
    "search",
    "catalog",
    "identity",
    "orders",
    "billing",
    "inventory",
    "shipping",
    "reviews",
    "recommend",
    "ads",
    "analytics",
    "etl",
    "ml-serving",
    "notebooks",
    "gateway",
    "auth",
    "cdn-edge",
    "mail",
    "chat",
    "media",
    "uploads",
    "reports",
    "ledger",
    "fraud",
    "risk",
    "partners",
    "support",
    "crm",
    "cms",
    "blog",
    "docs",
    "status",
    "ci",
    "staging",
    "sandbox",
    "data-lake",
    "observability",
];
const GROUPS: [&str; 4] = ["developers", "sre", "data", "support"];

/// The benign sample cluster's literal identities, made slots.
const NODE_NAMES: [&str; 3] = [
    "ip-10-0-1-17.ec2.internal",
    "ip-10-0-2-44.ec2.internal",
    "ip-10-0-3-91.ec2.internal",
];
const NODE_IPS: [&str; 3] = ["10.0.1.17", "10.0.2.44", "10.0.3.91"];
const HUMANS: [(&str, &str, &str); 2] = [
    ("alice@example.com", "203.0.113.10", "developers"),
    ("bob@example.com", "203.0.113.22", "sre"),
];

/// A `Request`-level kubelet node status patch: the condition heartbeats of a real one.
fn node_status_patch(node: &str) -> Value {
    let condition = |kind: &str, status: &str, reason: &str, message: &str| {
        serde_json::json!({
            "lastHeartbeatTime": "2025-11-03T09:00:11Z",
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
        })
    };
    serde_json::json!({
        "status": {
            "$setElementOrder/conditions": [
                {"type": "MemoryPressure"}, {"type": "DiskPressure"},
                {"type": "PIDPressure"}, {"type": "Ready"}
            ],
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "images": [
                {"names": ["registry.example.com/shop/web@sha256:4f1c2a6e0d7b93c5a8e21f6d0b4c9e7a3d5f8b2c1e6a9d0f3b7c4e8a2d5f1b6c9"], "sizeBytes": 48213771},
                {"names": ["602401143452.dkr.ecr.us-east-1.amazonaws.com/eks/pause:3.9"], "sizeBytes": 299821}
            ],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "containerRuntimeVersion": "containerd://1.7.22", "machineID": node}
        }
    })
}

/// A `Request`-level lease renewal body.
fn lease(name: &str, namespace: &str) -> Value {
    let owner = if namespace == "kube-node-lease" {
        serde_json::json!([{"apiVersion": "v1", "kind": "Node", "name": name, "uid": "5c0d1e7a-93b4-4f2e-a6d8-0b1c2d3e4f5a"}])
    } else {
        serde_json::json!([])
    };
    serde_json::json!({
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": name, "namespace": namespace, "uid": "9d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a",
            "resourceVersion": "918734", "creationTimestamp": "2025-10-28T14:02:11Z",
            "ownerReferences": owner,
        },
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": "2025-11-03T09:00:01.000000Z"},
    })
}

/// A `Request`-level endpointslice update body.
fn endpointslice_update() -> Value {
    let endpoint = |ip: &str, pod: &str, node: &str| {
        serde_json::json!({
            "addresses": [ip],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node,
            "targetRef": {"kind": "Pod", "namespace": "shop", "name": pod, "uid": "0b7f3c1e-6a2d-4e9f-8c5b-1d3a7e9f2c4b"},
        })
    };
    serde_json::json!({
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": "web-x7k2p", "namespace": "shop", "generateName": "web-",
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": [
            endpoint("10.0.1.201", "web-7f9c6d5b8-k2x9p", "ip-10-0-1-17.ec2.internal"),
            endpoint("10.0.2.187", "web-7f9c6d5b8-q8w4z", "ip-10-0-2-44.ec2.internal"),
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    })
}

/// Seeded, endless audit traffic.
pub struct Generator {
    rng: ChaCha8Rng,
    /// Cumulative weights (per 10,000) and their templates.
    templates: Vec<(u32, Template)>,
    ids: Ids,
    clock_us: i64,
    /// The gap between two events is uniform in `0..max_gap_us`.
    max_gap_us: i64,
    serial: u64,
}

impl Generator {
    /// A generator whose output depends only on `seed` and `sample-logs/`.
    pub fn new(seed: u64) -> io::Result<Self> {
        Self::with_ids(seed, Ids::Stable)
    }

    /// Like [`Generator::new`], with user IDs, access keys and token IDs as `ids` says.
    pub fn with_ids(seed: u64, ids: Ids) -> io::Result<Self> {
        let dir = sample_logs_dir();
        let read = |name: &str| -> io::Result<Vec<Value>> {
            std::fs::read_to_string(dir.join(name))?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).map_err(io::Error::other))
                .collect()
        };
        let benign = read("benign-busy-cluster.log")?;
        let mut attacks = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".log") && n != "benign-busy-cluster.log")
            .collect();
        names.sort();
        for name in names {
            attacks.extend(read(&name)?);
        }

        // Literal text of the benign cluster and what replaces it: a slot, delimiters kept.
        let mut swaps: Vec<(String, String)> = Vec::new();
        let mut swap = |literal: &str, var: Var| swaps.push((literal.to_string(), var.token()));
        for (node, ip) in NODE_NAMES.iter().zip(NODE_IPS) {
            swap(node, Var::Node);
            swap(ip, Var::NodeIp);
        }
        for (user, ip, _) in HUMANS {
            swap(user, Var::User);
            swap(ip, Var::UserIp);
        }
        swap("7f9c6d5b8-k2x9p", Var::Pod);
        swap("5d8f7c9b4-abcde", Var::Pod);
        for (_, _, group) in HUMANS {
            swaps.push((
                format!("\"{group}\""),
                format!("\"{}\"", Var::Group.token()),
            ));
        }
        for ns in ["shop", "payments"] {
            let slot = Var::Namespace.token();
            swaps.push((format!("\"{ns}\""), format!("\"{slot}\"")));
            swaps.push((format!("/{ns}/"), format!("/{slot}/")));
            swaps.push((format!("/{ns}\""), format!("/{slot}\"")));
        }
        let key = |e: &Value| -> (String, String, String, String) {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            let user = s(&e["user"]["username"]);
            let who = if user.starts_with("system:node:") {
                "node".to_string()
            } else if HUMANS.iter().any(|h| h.0 == user) {
                "human".to_string()
            } else {
                user
            };
            (
                who,
                s(&e["verb"]),
                s(&e["objectRef"]["resource"]),
                s(&e["stage"]),
            )
        };
        // One template per distinct shape of the benign cluster, weighted per 10,000 events.
        let weight = |k: &(String, String, String, String)| -> u32 {
            match (k.0.as_str(), k.1.as_str(), k.2.as_str()) {
                ("node", "update", "leases") => 2200,
                ("node", "patch", "nodes") => 1300,
                // Controller-manager and scheduler leader election.
                (_, "update", "leases") => 200,
                (_, "update", "endpointslices") => 900,
                (_, "watch", _) => 600,
                (u, "list", "pods") if u.contains("prometheus") => 600,
                (_, "create", "pods") => 800,
                (_, "patch", "deployments") => 300,
                // Logged at two stages, so two shapes.
                (_, "get", "configmaps") => 150,
                // The humans' reads: list pods, get deployments, pods and logs.
                _ => 650,
            }
        };
        let mut seen = std::collections::HashSet::new();
        let mut weighted: Vec<(u32, Template)> = Vec::new();
        for event in &benign {
            let k = key(event);
            if !seen.insert(k.clone()) {
                continue;
            }
            let mut event = event.clone();
            let shape_weight = weight(&k);
            match (k.1.as_str(), k.2.as_str()) {
                ("patch", "nodes") => {
                    event["level"] = "Request".into();
                    event["requestObject"] = node_status_patch(NODE_NAMES[0]);
                    weighted.push((shape_weight, Template::new(&event, &swaps, ids)));
                }
                ("update", "leases") => {
                    // Half of the renewals carry their body (`Request` level).
                    weighted.push((shape_weight / 2, Template::new(&event, &swaps, ids)));
                    let name = event["objectRef"]["name"].as_str().unwrap_or_default();
                    let namespace = event["objectRef"]["namespace"].as_str().unwrap_or_default();
                    let body = lease(name, namespace);
                    event["level"] = "Request".into();
                    event["requestObject"] = body;
                    weighted.push((shape_weight / 2, Template::new(&event, &swaps, ids)));
                }
                ("update", "endpointslices") => {
                    event["level"] = "Request".into();
                    event["requestObject"] = endpointslice_update();
                    weighted.push((shape_weight, Template::new(&event, &swaps, ids)));
                }
                _ => weighted.push((shape_weight, Template::new(&event, &swaps, ids))),
            }
        }
        // The attack scenarios share 150 per 10,000, identities kept so their rules fire.
        let attack_weight = 150 / attacks.len().max(1) as u32;
        for event in &attacks {
            weighted.push((attack_weight.max(1), Template::new(event, &[], Ids::Stable)));
        }
        let mut total = 0;
        let templates = weighted
            .into_iter()
            .map(|(w, t)| {
                total += w;
                (total, t)
            })
            .collect();
        Ok(Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            templates,
            ids,
            clock_us: DateTime::parse_from_rfc3339("2025-11-03T00:00:00Z")
                .expect("a valid time")
                .timestamp_micros(),
            max_gap_us: 2 * DAY_US / DEFAULT_PER_DAY,
            serial: 0,
        })
    }

    /// About `events` events per day of event time (a million by default): a bigger cluster.
    pub fn per_day(mut self, events: u64) -> Self {
        self.max_gap_us = (2 * DAY_US / events.max(1) as i64).max(1);
        self
    }

    /// Writes the next event as one line of JSON (no newline).
    pub fn event(&mut self, out: &mut Vec<u8>) {
        let total = self.templates.last().map_or(1, |(w, _)| *w);
        let pick = self.rng.random_range(0..total);
        let index = self.templates.partition_point(|(w, _)| *w <= pick);
        // Mean gap 86.4 ms by default: a million events a day.
        self.clock_us += self.rng.random_range(0..self.max_gap_us);
        let staged = self.clock_us + self.rng.random_range(1_000..40_000);
        self.serial += 1;
        let mut fill = Fill {
            uid: String::new(),
            access_key: String::new(),
            token_id: String::new(),
            audit_id: format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                self.rng.random::<u32>(),
                self.rng.random::<u16>(),
                self.rng.random_range(0..0x1000u16),
                self.rng.random_range(0..0x1000u16),
                self.serial
            ),
            received: micros_rfc3339(self.clock_us),
            staged: micros_rfc3339(staged),
            node: self.rng.random_range(0..NODES),
            namespace: self.rng.random_range(0..NAMESPACES.len()),
            user: self.rng.random_range(0..USERS),
            pod: format!(
                "{:09x}-{}",
                self.rng.random_range(0..0x1_0000_0000u64),
                (0..5)
                    .map(|_| char::from(
                        b"bcdfghjklmnpqrstvwxz2456789"[self.rng.random_range(0..27)]
                    ))
                    .collect::<String>()
            ),
        };
        if self.ids == Ids::PerEvent {
            // A version-4 UUID.
            let uuid = |rng: &mut ChaCha8Rng| {
                let v = rng.random::<u128>() & !(0xf << 76) | (0x4 << 76);
                let h = format!("{v:032x}");
                format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            };
            const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            fill.uid = uuid(&mut self.rng);
            fill.access_key = "ASIA".into();
            for _ in 0..16 {
                fill.access_key
                    .push(char::from(BASE32[self.rng.random_range(0..32)]));
            }
            fill.token_id = uuid(&mut self.rng);
        }
        let (_, template) = &self.templates[index.min(self.templates.len() - 1)];
        for piece in &template.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Var(v) => write_var(*v, &fill, out),
            }
        }
    }

    /// `events` events as NDJSON into `out`.
    pub fn ndjson(&mut self, events: usize, out: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::with_capacity(1 << 20);
        for _ in 0..events {
            self.event(&mut buf);
            buf.push(b'\n');
            if buf.len() >= 1 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }

    /// `events` events as `EventList` documents of `per_list` items, one per line, as the
    /// webhook backend sends them.
    pub fn event_lists(
        &mut self,
        events: usize,
        per_list: usize,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut left = events;
        while left > 0 {
            let n = left.min(per_list.max(1));
            buf.extend_from_slice(
                br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#,
            );
            for i in 0..n {
                if i > 0 {
                    buf.push(b',');
                }
                self.event(&mut buf);
            }
            buf.extend_from_slice(b"]}\n");
            left -= n;
            if buf.len() >= 1 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }
}

fn write_var(var: Var, fill: &Fill, out: &mut Vec<u8>) {
    let node = fill.node;
    let (a, b) = (node % 6 + 1, 10 + node * 7 % 240);
    match var {
        Var::AuditId => out.extend_from_slice(fill.audit_id.as_bytes()),
        Var::Received => out.extend_from_slice(fill.received.as_bytes()),
        Var::Staged => out.extend_from_slice(fill.staged.as_bytes()),
        Var::Node => {
            let _ = write!(out, "ip-10-0-{a}-{b}.ec2.internal");
        }
        Var::NodeIp => {
            let _ = write!(out, "10.0.{a}.{b}");
        }
        Var::Namespace => out.extend_from_slice(NAMESPACES[fill.namespace].as_bytes()),
        Var::User => {
            let _ = write!(out, "user{:02}@example.com", fill.user);
        }
        Var::UserIp => {
            let _ = write!(out, "203.0.113.{}", 10 + fill.user);
        }
        Var::Group => out.extend_from_slice(GROUPS[fill.user % GROUPS.len()].as_bytes()),
        Var::Pod => out.extend_from_slice(fill.pod.as_bytes()),
        Var::Uid => out.extend_from_slice(fill.uid.as_bytes()),
        Var::AccessKey => out.extend_from_slice(fill.access_key.as_bytes()),
        Var::TokenId => out.extend_from_slice(fill.token_id.as_bytes()),
    }
}

fn micros_rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .expect("times within range")
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_every_line_is_an_event() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        Generator::new(7)
            .expect("gen")
            .ndjson(5_000, &mut a)
            .expect("write");
        Generator::new(7)
            .expect("gen")
            .ndjson(5_000, &mut b)
            .expect("write");
        assert_eq!(a, b);
        let mut c = Vec::new();
        Generator::new(8)
            .expect("gen")
            .ndjson(5_000, &mut c)
            .expect("write");
        assert_ne!(a, c);
        let mut ids = std::collections::HashSet::new();
        for line in a.split(|&x| x == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).expect("valid JSON");
            assert!(ids.insert(v["auditID"].as_str().expect("id").to_string()));
            assert!(!line.windows(3).any(|w| w == "\u{E000}".as_bytes()));
        }
        assert_eq!(ids.len(), 5_000);
        let average = a.len() / 5_000;
        assert!(
            (1_200..1_400).contains(&average),
            "{average} bytes per event"
        );
    }
}
