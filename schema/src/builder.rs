//! Appends normalized events straight into Arrow builders, one column builder per `events` column,
//! and hashes each row's content for redelivery detection on the way.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Int32Builder, ListBuilder, PrimitiveBuilder,
    StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::datatypes::ArrowPrimitiveType;
use arrow::record_batch::RecordBatch;
use xxhash_rust::xxh3::xxh3_64;

mod null_runs;

use null_runs::Optional;

use crate::columns::events_schema;
use crate::derive::Derived;
use crate::error::{Error, Result};
use crate::model::Str;
use crate::time::TimeWindow;

/// One event, normalized, borrowing from the decoded input. Both the Event path and the GKE path
/// produce one of these, so every input shape lands in the same columns the same way.
#[derive(Debug, Default)]
pub(crate) struct Row<'r> {
    pub cluster: &'r str,
    pub audit_id: &'r str,
    pub stage: Option<&'r str>,
    pub level: Option<&'r str>,
    pub event_time: i64,
    pub stage_time: i64,
    pub verb: Option<&'r str>,
    pub request_uri: Option<&'r str>,
    pub user_name: Option<&'r str>,
    pub user_uid: Option<&'r str>,
    pub user_groups: Option<&'r [Str<'r>]>,
    pub user_extra: Option<&'r str>,
    pub impersonated_user: Option<&'r str>,
    pub impersonated_groups: Option<&'r [Str<'r>]>,
    pub source_ips: Option<&'r [Str<'r>]>,
    pub user_agent: Option<&'r str>,
    pub resource: Option<&'r str>,
    pub subresource: Option<&'r str>,
    pub namespace: Option<&'r str>,
    pub name: Option<&'r str>,
    pub api_group: Option<&'r str>,
    pub api_version: Option<&'r str>,
    pub response_code: Option<i32>,
    pub response_status: Option<&'r str>,
    pub response_reason: Option<&'r str>,
    pub response_message: Option<&'r str>,
    pub decision: Option<&'r str>,
    pub decision_reason: Option<&'r str>,
    pub annotations: Option<&'r str>,
    pub request_object: Option<&'r str>,
    pub response_object: Option<&'r str>,
}

type StrList = ListBuilder<StringBuilder>;

/// Column builders of one `events` batch.
pub(crate) struct EventBatchBuilder {
    /// Event times accepted, relative to the time of ingestion; `None`: all.
    pub(crate) window: Option<TimeWindow>,
    cluster: StringBuilder,
    audit_id: StringBuilder,
    stage: Optional<StringBuilder>,
    level: Optional<StringBuilder>,
    event_time: TimestampMicrosecondBuilder,
    stage_time: TimestampMicrosecondBuilder,
    verb: Optional<StringBuilder>,
    request_uri: Optional<StringBuilder>,
    user_name: Optional<StringBuilder>,
    user_uid: Optional<StringBuilder>,
    user_groups: Optional<StrList>,
    user_extra: Optional<StringBuilder>,
    impersonated_user: Optional<StringBuilder>,
    impersonated_groups: Optional<StrList>,
    source_ip: Optional<StringBuilder>,
    source_ips: Optional<StrList>,
    user_agent: Optional<StringBuilder>,
    resource: Optional<StringBuilder>,
    subresource: Optional<StringBuilder>,
    namespace: Optional<StringBuilder>,
    name: Optional<StringBuilder>,
    api_group: Optional<StringBuilder>,
    api_version: Optional<StringBuilder>,
    response_code: Optional<Int32Builder>,
    response_status: Optional<StringBuilder>,
    response_reason: Optional<StringBuilder>,
    response_message: Optional<StringBuilder>,
    decision: Optional<StringBuilder>,
    decision_reason: Optional<StringBuilder>,
    annotations: Optional<StringBuilder>,
    request_object: Optional<StringBuilder>,
    response_object: Optional<StringBuilder>,
    ingested_at: TimestampMicrosecondBuilder,
    exec_command: Optional<StringBuilder>,
    pod_images: Optional<StrList>,
    pod_privileged: Optional<BooleanBuilder>,
    pod_host_network: Optional<BooleanBuilder>,
    pod_host_pid: Optional<BooleanBuilder>,
    pod_host_ipc: Optional<BooleanBuilder>,
    pod_host_paths: Optional<StrList>,
    pod_capabilities_added: Optional<StrList>,
    pod_run_as_root: Optional<BooleanBuilder>,
    pod_allow_privilege_escalation: Optional<BooleanBuilder>,
    pod_service_account: Optional<StringBuilder>,
    role_ref: Optional<StringBuilder>,
    subjects: Optional<StrList>,
    rule_verbs: Optional<StrList>,
    rule_resources: Optional<StrList>,
    event_hash: UInt64Builder,
    /// Scratch space for the row being hashed, reused across rows.
    hash_buf: Vec<u8>,
}

/// A builder that hands over what it holds and starts again with the room it needed.
trait Take {
    fn take(&mut self) -> ArrayRef;
}

/// Room for the next batch's values: this batch's and an eighth more, so that a slightly bigger
/// batch does not copy the column to double its buffer.
fn room(bytes: usize) -> usize {
    bytes + bytes / 8
}

impl Take for StringBuilder {
    fn take(&mut self) -> ArrayRef {
        let array = self.finish();
        *self = StringBuilder::with_capacity(array.len(), room(array.value_data().len()));
        Arc::new(array)
    }
}

impl Take for StrList {
    fn take(&mut self) -> ArrayRef {
        let array = self.finish();
        let values = array.values().as_string::<i32>();
        *self = ListBuilder::with_capacity(
            StringBuilder::with_capacity(values.len(), room(values.value_data().len())),
            array.len(),
        );
        Arc::new(array)
    }
}

/// Int32, UInt64 and timestamp builders; the data type (a timestamp's zone) carries over.
impl<T: ArrowPrimitiveType> Take for PrimitiveBuilder<T> {
    fn take(&mut self) -> ArrayRef {
        let array = self.finish();
        *self =
            PrimitiveBuilder::with_capacity(array.len()).with_data_type(array.data_type().clone());
        Arc::new(array)
    }
}

impl Take for BooleanBuilder {
    fn take(&mut self) -> ArrayRef {
        let array = self.finish();
        *self = BooleanBuilder::with_capacity(array.len());
        Arc::new(array)
    }
}

fn ts() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

/// Lays one field into the content-hash buffer, tagged and length-prefixed so that `None`, `""` and
/// neighbouring fields never collide. The buffer is hashed once per row: one pass of xxh3 over
/// contiguous bytes is much cheaper than dozens of small streaming updates.
struct Hasher<'b>(&'b mut Vec<u8>);

impl Hasher<'_> {
    fn str(&mut self, v: Option<&str>) {
        match v {
            None => self.0.extend_from_slice(&[0]),
            Some(s) => {
                self.0.extend_from_slice(&[1]);
                self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
                self.0.extend_from_slice(s.as_bytes());
            }
        }
    }

    fn list(&mut self, v: Option<&[Str<'_>]>) {
        match v {
            None => self.0.extend_from_slice(&[0]),
            Some(items) => {
                self.0.extend_from_slice(&[2]);
                self.0
                    .extend_from_slice(&(items.len() as u64).to_le_bytes());
                for item in items {
                    self.str(Some(item));
                }
            }
        }
    }

    fn int(&mut self, v: Option<i64>) {
        match v {
            None => self.0.extend_from_slice(&[0]),
            Some(i) => {
                self.0.extend_from_slice(&[3]);
                self.0.extend_from_slice(&i.to_le_bytes());
            }
        }
    }
}

impl EventBatchBuilder {
    pub(crate) fn new() -> Self {
        let s = StringBuilder::new;
        Self {
            window: None,
            cluster: s(),
            audit_id: s(),
            stage: Optional::default(),
            level: Optional::default(),
            event_time: ts(),
            stage_time: ts(),
            verb: Optional::default(),
            request_uri: Optional::default(),
            user_name: Optional::default(),
            user_uid: Optional::default(),
            user_groups: Optional::default(),
            user_extra: Optional::default(),
            impersonated_user: Optional::default(),
            impersonated_groups: Optional::default(),
            source_ip: Optional::default(),
            source_ips: Optional::default(),
            user_agent: Optional::default(),
            resource: Optional::default(),
            subresource: Optional::default(),
            namespace: Optional::default(),
            name: Optional::default(),
            api_group: Optional::default(),
            api_version: Optional::default(),
            response_code: Optional::default(),
            response_status: Optional::default(),
            response_reason: Optional::default(),
            response_message: Optional::default(),
            decision: Optional::default(),
            decision_reason: Optional::default(),
            annotations: Optional::default(),
            request_object: Optional::default(),
            response_object: Optional::default(),
            ingested_at: ts(),
            exec_command: Optional::default(),
            pod_images: Optional::default(),
            pod_privileged: Optional::default(),
            pod_host_network: Optional::default(),
            pod_host_pid: Optional::default(),
            pod_host_ipc: Optional::default(),
            pod_host_paths: Optional::default(),
            pod_capabilities_added: Optional::default(),
            pod_run_as_root: Optional::default(),
            pod_allow_privilege_escalation: Optional::default(),
            pod_service_account: Optional::default(),
            role_ref: Optional::default(),
            subjects: Optional::default(),
            rule_verbs: Optional::default(),
            rule_resources: Optional::default(),
            event_hash: UInt64Builder::new(),
            hash_buf: Vec::with_capacity(4096),
        }
    }

    pub(crate) fn len(&self) -> usize {
        use arrow::array::ArrayBuilder;
        ArrayBuilder::len(&self.audit_id)
    }

    /// Appends one event, unless its time is outside the builder's window.
    pub(crate) fn append(
        &mut self,
        row: &Row<'_>,
        derived: &Derived,
        ingested_at: i64,
    ) -> Result<()> {
        if let Some(window) = &self.window {
            let (earliest, latest) = window.bounds(ingested_at);
            if !(earliest..=latest).contains(&row.event_time) {
                return Err(Error::OutsideTimeWindow {
                    event_time: row.event_time,
                    earliest,
                    latest,
                });
            }
        }
        self.hash_buf.clear();
        let mut h = Hasher(&mut self.hash_buf);
        macro_rules! text {
            ($($field:ident),*) => {$(
                self.$field.push(row.$field);
                h.str(row.$field);
            )*};
        }
        self.cluster.append_value(row.cluster);
        h.str(Some(row.cluster));
        self.audit_id.append_value(row.audit_id);
        h.str(Some(row.audit_id));
        text!(stage, level);
        self.event_time.append_value(row.event_time);
        self.stage_time.append_value(row.stage_time);
        h.int(Some(row.event_time));
        h.int(Some(row.stage_time));
        text!(verb, request_uri, user_name, user_uid);
        self.user_groups.push(row.user_groups);
        h.list(row.user_groups);
        text!(user_extra, impersonated_user);
        self.impersonated_groups.push(row.impersonated_groups);
        h.list(row.impersonated_groups);
        self.source_ip.push(
            row.source_ips
                .and_then(|ips| ips.first())
                .map(|ip| ip.as_ref()),
        );
        self.source_ips.push(row.source_ips);
        h.list(row.source_ips);
        text!(
            user_agent,
            resource,
            subresource,
            namespace,
            name,
            api_group,
            api_version
        );
        self.response_code.push(row.response_code);
        h.int(row.response_code.map(i64::from));
        text!(
            response_status,
            response_reason,
            response_message,
            decision,
            decision_reason,
            annotations,
            request_object,
            response_object
        );
        self.ingested_at.append_value(ingested_at);
        // Derived columns are a function of the fields above, so they need no hashing.
        self.exec_command.push(derived.exec_command.as_deref());
        let pod = derived.pod.as_ref();
        self.pod_images.push(pod.map(|p| p.images.as_slice()));
        self.pod_privileged.push(pod.map(|p| p.privileged));
        self.pod_host_network.push(pod.map(|p| p.host_network));
        self.pod_host_pid.push(pod.map(|p| p.host_pid));
        self.pod_host_ipc.push(pod.map(|p| p.host_ipc));
        self.pod_host_paths
            .push(pod.map(|p| p.host_paths.as_slice()));
        self.pod_capabilities_added
            .push(pod.map(|p| p.capabilities_added.as_slice()));
        self.pod_run_as_root.push(pod.map(|p| p.run_as_root));
        self.pod_allow_privilege_escalation
            .push(pod.map(|p| p.allow_privilege_escalation));
        self.pod_service_account
            .push(pod.and_then(|p| p.service_account.as_deref()));
        let binding = derived.binding.as_ref();
        self.role_ref
            .push(binding.and_then(|b| b.role_ref.as_deref()));
        self.subjects.push(binding.map(|b| b.subjects.as_slice()));
        let role = derived.role.as_ref();
        self.rule_verbs.push(role.map(|r| r.verbs.as_slice()));
        self.rule_resources
            .push(role.map(|r| r.resources.as_slice()));
        self.event_hash.append_value(xxh3_64(&self.hash_buf));
        Ok(())
    }

    /// Takes the rows appended so far as a batch and leaves the builder empty, with room for a
    /// batch like this one (growing buffers by doubling copied every column several times).
    pub(crate) fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            self.cluster.take(),
            self.audit_id.take(),
            self.stage.take(),
            self.level.take(),
            self.event_time.take(),
            self.stage_time.take(),
            self.verb.take(),
            self.request_uri.take(),
            self.user_name.take(),
            self.user_uid.take(),
            self.user_groups.take(),
            self.user_extra.take(),
            self.impersonated_user.take(),
            self.impersonated_groups.take(),
            self.source_ip.take(),
            self.source_ips.take(),
            self.user_agent.take(),
            self.resource.take(),
            self.subresource.take(),
            self.namespace.take(),
            self.name.take(),
            self.api_group.take(),
            self.api_version.take(),
            self.response_code.take(),
            self.response_status.take(),
            self.response_reason.take(),
            self.response_message.take(),
            self.decision.take(),
            self.decision_reason.take(),
            self.annotations.take(),
            self.request_object.take(),
            self.response_object.take(),
            self.ingested_at.take(),
            self.exec_command.take(),
            self.pod_images.take(),
            self.pod_privileged.take(),
            self.pod_host_network.take(),
            self.pod_host_pid.take(),
            self.pod_host_ipc.take(),
            self.pod_host_paths.take(),
            self.pod_capabilities_added.take(),
            self.pod_run_as_root.take(),
            self.pod_allow_privilege_escalation.take(),
            self.pod_service_account.take(),
            self.role_ref.take(),
            self.subjects.take(),
            self.rule_verbs.take(),
            self.rule_resources.take(),
            self.event_hash.take(),
        ];
        RecordBatch::try_new(events_schema(), columns)
            .expect("builders are declared in schema order with the schema's types")
    }
}
