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

use crate::columns::events_schema;
use crate::derive::Derived;
use crate::model::Str;

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
    cluster: StringBuilder,
    audit_id: StringBuilder,
    stage: StringBuilder,
    level: StringBuilder,
    event_time: TimestampMicrosecondBuilder,
    stage_time: TimestampMicrosecondBuilder,
    verb: StringBuilder,
    request_uri: StringBuilder,
    user_name: StringBuilder,
    user_uid: StringBuilder,
    user_groups: StrList,
    user_extra: StringBuilder,
    impersonated_user: StringBuilder,
    impersonated_groups: StrList,
    source_ip: StringBuilder,
    source_ips: StrList,
    user_agent: StringBuilder,
    resource: StringBuilder,
    subresource: StringBuilder,
    namespace: StringBuilder,
    name: StringBuilder,
    api_group: StringBuilder,
    api_version: StringBuilder,
    response_code: Int32Builder,
    response_status: StringBuilder,
    response_reason: StringBuilder,
    response_message: StringBuilder,
    decision: StringBuilder,
    decision_reason: StringBuilder,
    annotations: StringBuilder,
    request_object: StringBuilder,
    response_object: StringBuilder,
    ingested_at: TimestampMicrosecondBuilder,
    exec_command: StringBuilder,
    pod_images: StrList,
    pod_privileged: BooleanBuilder,
    pod_host_network: BooleanBuilder,
    pod_host_pid: BooleanBuilder,
    pod_host_ipc: BooleanBuilder,
    pod_host_paths: StrList,
    pod_capabilities_added: StrList,
    pod_run_as_root: BooleanBuilder,
    pod_allow_privilege_escalation: BooleanBuilder,
    pod_service_account: StringBuilder,
    role_ref: StringBuilder,
    subjects: StrList,
    rule_verbs: StrList,
    rule_resources: StrList,
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

fn list() -> StrList {
    ListBuilder::new(StringBuilder::new())
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

fn append_list<S: AsRef<str>>(builder: &mut StrList, items: Option<&[S]>) {
    match items {
        Some(items) => {
            for item in items {
                builder.values().append_value(item.as_ref());
            }
            builder.append(true);
        }
        None => builder.append(false),
    }
}

impl EventBatchBuilder {
    pub(crate) fn new() -> Self {
        let s = StringBuilder::new;
        Self {
            cluster: s(),
            audit_id: s(),
            stage: s(),
            level: s(),
            event_time: ts(),
            stage_time: ts(),
            verb: s(),
            request_uri: s(),
            user_name: s(),
            user_uid: s(),
            user_groups: list(),
            user_extra: s(),
            impersonated_user: s(),
            impersonated_groups: list(),
            source_ip: s(),
            source_ips: list(),
            user_agent: s(),
            resource: s(),
            subresource: s(),
            namespace: s(),
            name: s(),
            api_group: s(),
            api_version: s(),
            response_code: Int32Builder::new(),
            response_status: s(),
            response_reason: s(),
            response_message: s(),
            decision: s(),
            decision_reason: s(),
            annotations: s(),
            request_object: s(),
            response_object: s(),
            ingested_at: ts(),
            exec_command: s(),
            pod_images: list(),
            pod_privileged: BooleanBuilder::new(),
            pod_host_network: BooleanBuilder::new(),
            pod_host_pid: BooleanBuilder::new(),
            pod_host_ipc: BooleanBuilder::new(),
            pod_host_paths: list(),
            pod_capabilities_added: list(),
            pod_run_as_root: BooleanBuilder::new(),
            pod_allow_privilege_escalation: BooleanBuilder::new(),
            pod_service_account: s(),
            role_ref: s(),
            subjects: list(),
            rule_verbs: list(),
            rule_resources: list(),
            event_hash: UInt64Builder::new(),
            hash_buf: Vec::with_capacity(4096),
        }
    }

    pub(crate) fn len(&self) -> usize {
        use arrow::array::ArrayBuilder;
        ArrayBuilder::len(&self.audit_id)
    }

    pub(crate) fn append(&mut self, row: &Row<'_>, derived: &Derived, ingested_at: i64) {
        self.hash_buf.clear();
        let mut h = Hasher(&mut self.hash_buf);
        macro_rules! text {
            ($($field:ident),*) => {$(
                self.$field.append_option(row.$field);
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
        append_list(&mut self.user_groups, row.user_groups);
        h.list(row.user_groups);
        text!(user_extra, impersonated_user);
        append_list(&mut self.impersonated_groups, row.impersonated_groups);
        h.list(row.impersonated_groups);
        self.source_ip.append_option(
            row.source_ips
                .and_then(|ips| ips.first())
                .map(|ip| ip.as_ref()),
        );
        append_list(&mut self.source_ips, row.source_ips);
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
        self.response_code.append_option(row.response_code);
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
        self.exec_command
            .append_option(derived.exec_command.as_deref());
        let pod = derived.pod.as_ref();
        append_list(&mut self.pod_images, pod.map(|p| p.images.as_slice()));
        self.pod_privileged.append_option(pod.map(|p| p.privileged));
        self.pod_host_network
            .append_option(pod.map(|p| p.host_network));
        self.pod_host_pid.append_option(pod.map(|p| p.host_pid));
        self.pod_host_ipc.append_option(pod.map(|p| p.host_ipc));
        append_list(
            &mut self.pod_host_paths,
            pod.map(|p| p.host_paths.as_slice()),
        );
        append_list(
            &mut self.pod_capabilities_added,
            pod.map(|p| p.capabilities_added.as_slice()),
        );
        self.pod_run_as_root
            .append_option(pod.map(|p| p.run_as_root));
        self.pod_allow_privilege_escalation
            .append_option(pod.map(|p| p.allow_privilege_escalation));
        self.pod_service_account
            .append_option(pod.and_then(|p| p.service_account.as_deref()));
        let binding = derived.binding.as_ref();
        self.role_ref
            .append_option(binding.and_then(|b| b.role_ref.as_deref()));
        append_list(&mut self.subjects, binding.map(|b| b.subjects.as_slice()));
        let role = derived.role.as_ref();
        append_list(&mut self.rule_verbs, role.map(|r| r.verbs.as_slice()));
        append_list(
            &mut self.rule_resources,
            role.map(|r| r.resources.as_slice()),
        );
        self.event_hash.append_value(xxh3_64(&self.hash_buf));
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
