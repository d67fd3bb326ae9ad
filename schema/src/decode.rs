//! [`Decoder`]: one input document (a log line, a webhook body, a Kafka message) in, `events` rows
//! out. Every shape is recognised from the document itself:
//!
//! - an `audit.k8s.io` Event (v1, v1beta1, or with no `apiVersion`);
//! - an `EventList`, or a bare JSON array of Events;
//! - an AKS diagnostic record (`properties.log`, an object or escaped JSON text);
//! - a GKE Cloud Audit Logs entry (`protoPayload`, see [`crate::gke`]);
//! - a CloudWatch Logs subscription payload (`logEvents[].message`, EKS);
//! - a log shipper's record whose `log` or `message` holds the Event.

use arrow::record_batch::RecordBatch;

use crate::builder::{EventBatchBuilder, Row};
use crate::derive::Source;
use crate::error::{Error, Result};
use crate::gke;
use crate::model::{AuthzAnnotations, Envelope, Raw, Str};
use crate::redact::Redaction;
use crate::scan;
use crate::time::{TimeWindow, now_micros, parse_rfc3339_micros};

/// The cluster name used when neither the source nor a cloud wrapper names one.
pub const DEFAULT_CLUSTER: &str = "default";

/// Whether `name` may label a cluster: 1 to 253 letters, digits, `-`, `_` or `.` (it becomes
/// part of queries and file-free labels, never a path).
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Wrappers nest (a shipper's record around an AKS record around an Event); deeper is garbage.
const MAX_DEPTH: u8 = 4;

/// One document, or one item of a list document, that did not become a row.
#[derive(Debug)]
pub struct Rejection {
    /// Index within an `EventList` (or array, or CloudWatch payload); `None` for the document itself.
    pub item: Option<usize>,
    /// Why.
    pub error: Error,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.item {
            Some(i) => write!(f, "item {i}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

/// Turns documents into an `events` batch.
pub struct Decoder {
    builder: EventBatchBuilder,
    /// The cluster the source says every event belongs to (a webhook path, a Kafka header, a flag);
    /// it wins over a cloud wrapper's cluster name.
    cluster: Option<String>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Decoder {
    /// A decoder; `cluster` forces the cluster of every event it decodes.
    pub fn new(cluster: Option<String>) -> Self {
        Self {
            builder: EventBatchBuilder::new(),
            cluster,
        }
    }

    /// Rejects events whose time is outside `window` of the time they are decoded (a live
    /// source's acceptance window).
    pub fn with_time_window(mut self, window: TimeWindow) -> Self {
        self.builder.window = Some(window);
        self
    }

    /// Rows decoded and not yet taken by [`Decoder::finish`].
    pub fn len(&self) -> usize {
        self.builder.len()
    }

    /// Whether no rows are waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the decoded rows as one `events` batch.
    pub fn finish(&mut self) -> RecordBatch {
        self.builder.finish()
    }

    /// Decodes one document, appending every audit event in it. Returns how many were appended;
    /// what could not be decoded is pushed onto `rejected` (the good events of a list are kept).
    pub fn decode(&mut self, doc: &[u8], rejected: &mut Vec<Rejection>) -> usize {
        // The fast check first; std's only to say where the input went wrong.
        let text = match simdutf8::basic::from_utf8(doc).or_else(|_| std::str::from_utf8(doc)) {
            Ok(t) => t,
            Err(e) => {
                rejected.push(Rejection {
                    item: None,
                    error: Error::InvalidUtf8 {
                        offset: e.valid_up_to(),
                    },
                });
                return 0;
            }
        };
        let mut ctx = Ctx {
            rejected,
            ingested_at: now_micros(),
        };
        match self.document(text, None, None, 0, &mut ctx) {
            Ok(n) => n,
            Err(error) => {
                ctx.rejected.push(Rejection { item: None, error });
                0
            }
        }
    }

    fn document(
        &mut self,
        text: &str,
        item: Option<usize>,
        cluster_hint: Option<&str>,
        depth: u8,
        ctx: &mut Ctx<'_>,
    ) -> Result<usize> {
        if depth > MAX_DEPTH {
            return Err(Error::not_an_event("wrappers nested too deep"));
        }
        if text.trim_start().starts_with('[') {
            let items: Vec<Raw<'_>> = serde_json::from_str(text).map_err(Error::from_json)?;
            return Ok(self.items(&items, cluster_hint, depth, ctx));
        }
        let env: Envelope<'_> = match scan::envelope(text) {
            Some(env) => env,
            None => serde_json::from_str(text).map_err(Error::from_json)?,
        };
        self.envelope(&env, item, cluster_hint, depth, ctx)
    }

    /// Items of a list: each is decoded on its own, so one bad item costs only itself.
    fn items(
        &mut self,
        items: &[Raw<'_>],
        cluster_hint: Option<&str>,
        depth: u8,
        ctx: &mut Ctx<'_>,
    ) -> usize {
        let mut stored = 0;
        for (i, raw) in items.iter().enumerate() {
            match self.document(raw.get(), Some(i), cluster_hint, depth + 1, ctx) {
                Ok(n) => stored += n,
                Err(error) => ctx.rejected.push(Rejection {
                    item: Some(i),
                    error,
                }),
            }
        }
        stored
    }

    fn envelope(
        &mut self,
        env: &Envelope<'_>,
        item: Option<usize>,
        cluster_hint: Option<&str>,
        depth: u8,
        ctx: &mut Ctx<'_>,
    ) -> Result<usize> {
        if let Some(items) = &env.items {
            return Ok(self.items(items, cluster_hint, depth, ctx));
        }
        if env.kind.as_deref() == Some("EventList") {
            // `"items": null` or no items at all: an empty batch, not a bad one.
            return Ok(0);
        }
        if let Some(payload) = env.proto_payload {
            let cluster = gke::cluster_name(env.resource);
            let cluster = cluster_for(&self.cluster, cluster.as_deref().or(cluster_hint));
            gke::append(&mut self.builder, env, payload, cluster, ctx.ingested_at)?;
            return Ok(1);
        }
        if let Some(log) = env.properties.as_ref().and_then(|p| p.log) {
            let cluster = env.resource_id.as_deref().and_then(aks_cluster_name);
            let hint = cluster.as_deref().or(cluster_hint);
            return self.embedded(log, item, hint, depth, ctx);
        }
        if let Some(records) = &env.log_events {
            let cluster = env.log_group.as_deref().and_then(eks_cluster_name);
            let hint = cluster.as_deref().or(cluster_hint);
            let mut stored = 0;
            for (i, record) in records.iter().enumerate() {
                let Some(message) = &record.message else {
                    continue;
                };
                match self.document(message, Some(i), hint, depth + 1, ctx) {
                    Ok(n) => stored += n,
                    Err(error) => ctx.rejected.push(Rejection {
                        item: Some(i),
                        error,
                    }),
                }
            }
            return Ok(stored);
        }
        if env.audit_id.is_none()
            && let Some(inner) = env.log.or(env.message)
        {
            return self.embedded(inner, item, cluster_hint, depth, ctx);
        }
        let cluster = cluster_for(&self.cluster, cluster_hint);
        event(&mut self.builder, env, cluster, ctx.ingested_at)?;
        Ok(1)
    }

    /// A wrapper's field holding an Event or a list, as an object or as JSON text in a string.
    fn embedded(
        &mut self,
        raw: Raw<'_>,
        item: Option<usize>,
        cluster_hint: Option<&str>,
        depth: u8,
        ctx: &mut Ctx<'_>,
    ) -> Result<usize> {
        let text = raw.get();
        if text.starts_with('"') {
            let inner: Str<'_> = serde_json::from_str(text).map_err(Error::from_json)?;
            self.document(inner.trim_end(), item, cluster_hint, depth + 1, ctx)
        } else {
            self.document(text, item, cluster_hint, depth + 1, ctx)
        }
    }
}

fn cluster_for<'c>(forced: &'c Option<String>, hint: Option<&'c str>) -> &'c str {
    forced.as_deref().or(hint).unwrap_or(DEFAULT_CLUSTER)
}

fn event(
    builder: &mut EventBatchBuilder,
    env: &Envelope<'_>,
    cluster: &str,
    ingested_at: i64,
) -> Result<()> {
    if let Some(kind) = env.kind.as_deref()
        && kind != "Event"
    {
        return Err(Error::not_an_event(format!(
            "kind {kind:?} is not an audit Event"
        )));
    }
    if let Some(version) = env.api_version.as_deref()
        && !version.starts_with("audit.k8s.io/")
    {
        return Err(Error::not_an_event(format!(
            "apiVersion {version:?} is not audit.k8s.io"
        )));
    }
    let audit_id = match env.audit_id.as_deref() {
        Some(id) if !id.is_empty() => id,
        _ => return Err(Error::not_an_event("no auditID")),
    };
    let event_time = event_time(env)?;
    let stage_time = match env.stage_timestamp.as_deref() {
        Some(s) => timestamp("stageTimestamp", s)?,
        None => event_time,
    };
    let parsed;
    let authz = match (&env.authz, env.annotations) {
        (Some(read), _) => read,
        (None, Some(raw)) => {
            parsed = match scan::authz_annotations(raw.get()) {
                Some(authz) => authz,
                None => serde_json::from_str::<AuthzAnnotations<'_>>(raw.get())
                    .map_err(|e| Error::not_an_event(format!("annotations: {e}")))?,
            };
            &parsed
        }
        (None, None) => {
            parsed = AuthzAnnotations::default();
            &parsed
        }
    };
    let object_ref = env.object_ref.as_ref();
    let resource = object_ref.and_then(|o| o.resource.as_deref());
    let subresource = object_ref.and_then(|o| o.subresource.as_deref());
    let redaction = Redaction::for_resource(resource, subresource);
    let request_object = redaction.apply_raw(env.request_object);
    let response_object = redaction.apply_raw(env.response_object);
    let user = env.user.as_ref();
    let impersonated = env.impersonated_user.as_ref();
    let status = env.response_status.as_ref();
    let row = Row {
        cluster,
        audit_id,
        stage: env.stage.as_deref(),
        level: env.level.as_deref(),
        event_time,
        stage_time,
        verb: env.verb.as_deref(),
        request_uri: env.request_uri.as_deref(),
        user_name: user.and_then(|u| u.username.as_deref()),
        user_uid: user.and_then(|u| u.uid.as_deref()),
        user_groups: user.and_then(|u| u.groups.as_deref()),
        user_extra: user.and_then(|u| u.extra).map(Raw::get),
        impersonated_user: impersonated.and_then(|u| u.username.as_deref()),
        impersonated_groups: impersonated.and_then(|u| u.groups.as_deref()),
        source_ips: env.source_ips.as_deref(),
        user_agent: env.user_agent.as_deref(),
        resource,
        subresource,
        namespace: object_ref.and_then(|o| o.namespace.as_deref()),
        name: object_ref.and_then(|o| o.name.as_deref()),
        api_group: object_ref.and_then(|o| o.api_group.as_deref()),
        api_version: object_ref.and_then(|o| o.api_version.as_deref()),
        response_code: status.and_then(|s| s.code),
        response_status: status.and_then(|s| s.status.as_deref()),
        response_reason: status.and_then(|s| s.reason.as_deref()),
        response_message: status.and_then(|s| s.message.as_deref()),
        decision: authz.decision.as_deref(),
        decision_reason: authz.reason.as_deref(),
        annotations: env.annotations.map(Raw::get),
        request_object: request_object.as_deref(),
        response_object: response_object.as_deref(),
    };
    let derived = Source::from_row(&row).derive();
    builder.append(&row, &derived, ingested_at)
}

struct Ctx<'r> {
    rejected: &'r mut Vec<Rejection>,
    ingested_at: i64,
}

/// The request's own time, falling back through the fields older API servers wrote.
fn event_time(env: &Envelope<'_>) -> Result<i64> {
    let candidates = [
        (
            "requestReceivedTimestamp",
            env.request_received_timestamp.as_deref(),
        ),
        ("timestamp", env.timestamp.as_deref()),
        (
            "metadata.creationTimestamp",
            env.metadata
                .as_ref()
                .and_then(|m| m.creation_timestamp.as_deref()),
        ),
        ("stageTimestamp", env.stage_timestamp.as_deref()),
    ];
    match candidates.into_iter().find_map(|(f, v)| Some((f, v?))) {
        Some((field, value)) => timestamp(field, value),
        None => Err(Error::not_an_event("no timestamp")),
    }
}

pub(crate) fn timestamp(field: &'static str, value: &str) -> Result<i64> {
    parse_rfc3339_micros(value).ok_or_else(|| Error::BadTimestamp {
        field,
        value: value.chars().take(64).collect(),
    })
}

/// `/SUBSCRIPTIONS/../MANAGEDCLUSTERS/NAME` → `name` (Azure upper-cases resource IDs; AKS names are
/// case-insensitive).
fn aks_cluster_name(resource_id: &str) -> Option<String> {
    let upper = resource_id.to_ascii_uppercase();
    let at = upper.find("/MANAGEDCLUSTERS/")? + "/MANAGEDCLUSTERS/".len();
    let name = resource_id[at..].split('/').next()?;
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// `/aws/eks/NAME/cluster` → `NAME`.
fn eks_cluster_name(log_group: &str) -> Option<String> {
    let rest = log_group.strip_prefix("/aws/eks/")?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| name.to_string())
}

impl<'s> Source<'s> {
    pub(crate) fn from_row(row: &Row<'s>) -> Self {
        Source {
            verb: row.verb,
            request_uri: row.request_uri,
            resource: row.resource,
            subresource: row.subresource,
            request_object: row.request_object,
            response_object: row.response_object,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_event_lists_are_not_errors() {
        let mut decoder = Decoder::default();
        let mut rejected = Vec::new();
        for doc in [
            r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[]}"#,
            r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":null}"#,
            "[]",
        ] {
            assert_eq!(decoder.decode(doc.as_bytes(), &mut rejected), 0, "{doc}");
        }
        assert!(rejected.is_empty(), "{rejected:?}");
    }

    #[test]
    fn cluster_names_from_wrappers() {
        assert_eq!(
            aks_cluster_name("/SUBSCRIPTIONS/1/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/TEST-AKS").as_deref(),
            Some("test-aks")
        );
        assert_eq!(
            eks_cluster_name("/aws/eks/prod-1/cluster").as_deref(),
            Some("prod-1")
        );
        assert_eq!(eks_cluster_name("/other"), None);
    }
}
