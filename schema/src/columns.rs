//! The `events` and `alerts` Arrow schemas and their column names, the contract every other crate
//! and every user query depends on.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Column names of the `events` table, in schema order.
#[allow(missing_docs)]
pub mod event {
    pub const CLUSTER: &str = "cluster";
    pub const AUDIT_ID: &str = "audit_id";
    pub const STAGE: &str = "stage";
    pub const LEVEL: &str = "level";
    pub const EVENT_TIME: &str = "event_time";
    pub const STAGE_TIME: &str = "stage_time";
    pub const VERB: &str = "verb";
    pub const REQUEST_URI: &str = "request_uri";
    pub const USER_NAME: &str = "user_name";
    pub const USER_UID: &str = "user_uid";
    pub const USER_GROUPS: &str = "user_groups";
    pub const USER_EXTRA: &str = "user_extra";
    pub const IMPERSONATED_USER: &str = "impersonated_user";
    pub const IMPERSONATED_GROUPS: &str = "impersonated_groups";
    pub const SOURCE_IP: &str = "source_ip";
    pub const SOURCE_IPS: &str = "source_ips";
    pub const USER_AGENT: &str = "user_agent";
    pub const RESOURCE: &str = "resource";
    pub const SUBRESOURCE: &str = "subresource";
    pub const NAMESPACE: &str = "namespace";
    pub const NAME: &str = "name";
    pub const API_GROUP: &str = "api_group";
    pub const API_VERSION: &str = "api_version";
    pub const RESPONSE_CODE: &str = "response_code";
    pub const RESPONSE_STATUS: &str = "response_status";
    pub const RESPONSE_REASON: &str = "response_reason";
    pub const RESPONSE_MESSAGE: &str = "response_message";
    pub const DECISION: &str = "decision";
    pub const DECISION_REASON: &str = "decision_reason";
    pub const ANNOTATIONS: &str = "annotations";
    pub const REQUEST_OBJECT: &str = "request_object";
    pub const RESPONSE_OBJECT: &str = "response_object";
    pub const INGESTED_AT: &str = "ingested_at";
    pub const EXEC_COMMAND: &str = "exec_command";
    pub const POD_IMAGES: &str = "pod_images";
    pub const POD_PRIVILEGED: &str = "pod_privileged";
    pub const POD_HOST_NETWORK: &str = "pod_host_network";
    pub const POD_HOST_PID: &str = "pod_host_pid";
    pub const POD_HOST_IPC: &str = "pod_host_ipc";
    pub const POD_HOST_PATHS: &str = "pod_host_paths";
    pub const POD_CAPABILITIES_ADDED: &str = "pod_capabilities_added";
    pub const POD_RUN_AS_ROOT: &str = "pod_run_as_root";
    pub const POD_ALLOW_PRIVILEGE_ESCALATION: &str = "pod_allow_privilege_escalation";
    pub const POD_SERVICE_ACCOUNT: &str = "pod_service_account";
    pub const ROLE_REF: &str = "role_ref";
    pub const SUBJECTS: &str = "subjects";
    pub const RULE_VERBS: &str = "rule_verbs";
    pub const RULE_RESOURCES: &str = "rule_resources";
    /// 64-bit hash of everything the event says (all columns but `ingested_at`); with `cluster`,
    /// `audit_id` and `stage` it identifies an exact redelivery.
    pub const EVENT_HASH: &str = "event_hash";
}

/// Column names of the `alerts` table, in schema order.
#[allow(missing_docs)]
pub mod alert {
    pub const ALERT_ID: &str = "alert_id";
    pub const RULE_ID: &str = "rule_id";
    pub const RULE_TITLE: &str = "rule_title";
    pub const SEVERITY: &str = "severity";
    pub const CATEGORY: &str = "category";
    pub const MITRE: &str = "mitre";
    pub const CLUSTER: &str = "cluster";
    pub const AUDIT_ID: &str = "audit_id";
    pub const EVENT_TIME: &str = "event_time";
    pub const USER_NAME: &str = "user_name";
    pub const SOURCE_IP: &str = "source_ip";
    pub const USER_AGENT: &str = "user_agent";
    pub const VERB: &str = "verb";
    pub const RESOURCE: &str = "resource";
    pub const SUBRESOURCE: &str = "subresource";
    pub const NAMESPACE: &str = "namespace";
    pub const NAME: &str = "name";
    pub const MESSAGE: &str = "message";
    pub const TAGS: &str = "tags";
    pub const COUNT: &str = "count";
    pub const DETECTED_AT: &str = "detected_at";
    /// The audit IDs behind the alert: the event itself, or every step of a sequence.
    pub const EVIDENCE: &str = "evidence";
}

fn utf8(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn utf8_list(name: &str) -> Field {
    Field::new(name, utf8_list_type(), true)
}

fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}

fn boolean(name: &str) -> Field {
    Field::new(name, DataType::Boolean, true)
}

/// `List(Utf8)` as Arrow's `ListBuilder<StringBuilder>` produces it.
pub fn utf8_list_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// `Timestamp(µs, UTC)`, the type of every time column.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use event::*;
    Arc::new(Schema::new(vec![
        Field::new(CLUSTER, DataType::Utf8, false),
        Field::new(AUDIT_ID, DataType::Utf8, false),
        utf8(STAGE),
        utf8(LEVEL),
        timestamp(EVENT_TIME, false),
        timestamp(STAGE_TIME, false),
        utf8(VERB),
        utf8(REQUEST_URI),
        utf8(USER_NAME),
        utf8(USER_UID),
        utf8_list(USER_GROUPS),
        utf8(USER_EXTRA),
        utf8(IMPERSONATED_USER),
        utf8_list(IMPERSONATED_GROUPS),
        utf8(SOURCE_IP),
        utf8_list(SOURCE_IPS),
        utf8(USER_AGENT),
        utf8(RESOURCE),
        utf8(SUBRESOURCE),
        utf8(NAMESPACE),
        utf8(NAME),
        utf8(API_GROUP),
        utf8(API_VERSION),
        Field::new(RESPONSE_CODE, DataType::Int32, true),
        utf8(RESPONSE_STATUS),
        utf8(RESPONSE_REASON),
        utf8(RESPONSE_MESSAGE),
        utf8(DECISION),
        utf8(DECISION_REASON),
        utf8(ANNOTATIONS),
        utf8(REQUEST_OBJECT),
        utf8(RESPONSE_OBJECT),
        timestamp(INGESTED_AT, false),
        utf8(EXEC_COMMAND),
        utf8_list(POD_IMAGES),
        boolean(POD_PRIVILEGED),
        boolean(POD_HOST_NETWORK),
        boolean(POD_HOST_PID),
        boolean(POD_HOST_IPC),
        utf8_list(POD_HOST_PATHS),
        utf8_list(POD_CAPABILITIES_ADDED),
        boolean(POD_RUN_AS_ROOT),
        boolean(POD_ALLOW_PRIVILEGE_ESCALATION),
        utf8(POD_SERVICE_ACCOUNT),
        utf8(ROLE_REF),
        utf8_list(SUBJECTS),
        utf8_list(RULE_VERBS),
        utf8_list(RULE_RESOURCES),
        Field::new(EVENT_HASH, DataType::UInt64, false),
    ]))
});

static ALERTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use alert::*;
    Arc::new(Schema::new(vec![
        Field::new(ALERT_ID, DataType::Utf8, false),
        Field::new(RULE_ID, DataType::Utf8, false),
        utf8(RULE_TITLE),
        Field::new(SEVERITY, DataType::Utf8, false),
        Field::new(CATEGORY, DataType::Utf8, false),
        utf8_list(MITRE),
        Field::new(CLUSTER, DataType::Utf8, false),
        utf8(AUDIT_ID),
        timestamp(EVENT_TIME, false),
        utf8(USER_NAME),
        utf8(SOURCE_IP),
        utf8(USER_AGENT),
        utf8(VERB),
        utf8(RESOURCE),
        utf8(SUBRESOURCE),
        utf8(NAMESPACE),
        utf8(NAME),
        utf8(MESSAGE),
        utf8_list(TAGS),
        Field::new(COUNT, DataType::Int64, false),
        timestamp(DETECTED_AT, false),
        utf8_list(EVIDENCE),
    ]))
});

/// The schema of the `events` table (one row per audit event).
pub fn events_schema() -> SchemaRef {
    Arc::clone(&EVENTS)
}

/// The schema of the `alerts` table (one row per alert a rule raised).
pub fn alerts_schema() -> SchemaRef {
    Arc::clone(&ALERTS)
}

/// A column of a batch of one of this crate's schemas, by name.
///
/// # Panics
/// If the column is missing: batches of the `events` and `alerts` schemas always carry every
/// column, so a missing one is a bug in whoever built the batch, not bad input.
pub fn column<'b>(
    batch: &'b arrow::record_batch::RecordBatch,
    name: &str,
) -> &'b arrow::array::ArrayRef {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("batch has no {name} column"))
}
