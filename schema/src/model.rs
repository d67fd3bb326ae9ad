//! The serde model of an `audit.k8s.io` `Event` (v1, v1beta1, and the unversioned 2017-2018 form)
//! and of the wrappers it arrives in, borrowing from the input wherever JSON allows.
//!
//! One struct, [`Envelope`], holds the fields of an Event and of every wrapper at once, so a
//! document is parsed a single time whatever its shape; [`crate::decode`] then decides which it is.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A JSON value kept as its text (a request body, annotations), checked but not parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(pub &'a str);

impl<'a> Raw<'a> {
    pub fn get(self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| Raw(raw.get()))
    }
}

/// Text that borrows from the input unless it had escapes.
///
/// A newtype rather than `Cow<'a, str>` itself: serde borrows into a `Cow` only when the field is
/// exactly `Cow<'a, str>`, so `Option<Cow<'a, str>>` and `Vec<Cow<'a, str>>` would copy every
/// string into a fresh allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Str<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(Visitor)
    }
}

/// Any top-level document: an Event, an `EventList`, or a cloud wrapper of either.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<'a> {
    // --- audit.k8s.io Event ---
    #[serde(borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub api_version: Option<Str<'a>>,
    #[serde(borrow)]
    pub level: Option<Str<'a>>,
    #[serde(borrow, rename = "auditID")]
    pub audit_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub stage: Option<Str<'a>>,
    #[serde(borrow, rename = "requestURI")]
    pub request_uri: Option<Str<'a>>,
    #[serde(borrow)]
    pub verb: Option<Str<'a>>,
    #[serde(borrow)]
    pub user: Option<UserInfo<'a>>,
    #[serde(borrow)]
    pub impersonated_user: Option<UserInfo<'a>>,
    #[serde(borrow, rename = "sourceIPs")]
    pub source_ips: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    pub user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    pub object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow)]
    pub response_status: Option<Status<'a>>,
    #[serde(borrow)]
    pub request_object: Option<Raw<'a>>,
    #[serde(borrow)]
    pub response_object: Option<Raw<'a>>,
    #[serde(borrow)]
    pub request_received_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    pub stage_timestamp: Option<Str<'a>>,
    /// The pre-1.9 event time; GKE entries use the same name for theirs.
    #[serde(borrow)]
    pub timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    pub metadata: Option<Metadata<'a>>,
    #[serde(borrow)]
    pub annotations: Option<Raw<'a>>,
    /// The authorizer's two annotations, when the scanner read them on its way through
    /// `annotations`; serde leaves this `None`, and they are read from `annotations` instead.
    #[serde(skip)]
    pub authz: Option<AuthzAnnotations<'a>>,

    // --- EventList (webhook body) ---
    #[serde(borrow)]
    pub items: Option<Vec<Raw<'a>>>,

    // --- GKE Cloud Audit Logs entry ---
    #[serde(borrow)]
    pub proto_payload: Option<Raw<'a>>,
    #[serde(borrow)]
    pub insert_id: Option<Str<'a>>,
    #[serde(borrow)]
    pub operation: Option<Operation<'a>>,
    /// GKE: `resource.labels.cluster_name` names the cluster.
    #[serde(borrow)]
    pub resource: Option<Raw<'a>>,
    /// GKE: carries the `authorization.k8s.io/*` annotations.
    #[serde(borrow)]
    pub labels: Option<Raw<'a>>,

    // --- AKS diagnostic record ---
    #[serde(borrow)]
    pub properties: Option<AksProperties<'a>>,
    /// AKS: `/SUBSCRIPTIONS/../MANAGEDCLUSTERS/NAME`.
    #[serde(borrow, rename = "resourceId")]
    pub resource_id: Option<Str<'a>>,

    // --- CloudWatch (EKS) subscription payload and shippers' `{"log": ...}` / `{"message": ...}` ---
    #[serde(borrow)]
    pub log_events: Option<Vec<CloudWatchEvent<'a>>>,
    #[serde(borrow)]
    pub log_group: Option<Str<'a>>,
    #[serde(borrow)]
    pub log: Option<Raw<'a>>,
    #[serde(borrow)]
    pub message: Option<Raw<'a>>,
}

/// The authorizer's annotations of an Event.
#[derive(Debug, Default, Deserialize)]
pub struct AuthzAnnotations<'a> {
    #[serde(borrow, rename = "authorization.k8s.io/decision")]
    pub decision: Option<Str<'a>>,
    #[serde(borrow, rename = "authorization.k8s.io/reason")]
    pub reason: Option<Str<'a>>,
}

/// `user` and `impersonatedUser`.
#[derive(Debug, Default, Deserialize)]
pub struct UserInfo<'a> {
    #[serde(borrow)]
    pub username: Option<Str<'a>>,
    #[serde(borrow)]
    pub uid: Option<Str<'a>>,
    #[serde(borrow)]
    pub groups: Option<Vec<Str<'a>>>,
    #[serde(borrow)]
    pub extra: Option<Raw<'a>>,
}

/// `objectRef`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef<'a> {
    #[serde(borrow)]
    pub resource: Option<Str<'a>>,
    #[serde(borrow)]
    pub subresource: Option<Str<'a>>,
    #[serde(borrow)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub api_group: Option<Str<'a>>,
    #[serde(borrow)]
    pub api_version: Option<Str<'a>>,
}

/// `responseStatus` (a `metav1.Status`).
#[derive(Debug, Default, Deserialize)]
pub struct Status<'a> {
    pub code: Option<i32>,
    #[serde(borrow)]
    pub status: Option<Str<'a>>,
    #[serde(borrow)]
    pub reason: Option<Str<'a>>,
    #[serde(borrow)]
    pub message: Option<Str<'a>>,
}

/// `metadata` of an old event: only `creationTimestamp` matters.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata<'a> {
    #[serde(borrow)]
    pub creation_timestamp: Option<Str<'a>>,
}

/// GKE `operation`: `id` is the audit ID, `last: false` marks a response still streaming.
#[derive(Debug, Default, Deserialize)]
pub struct Operation<'a> {
    #[serde(borrow)]
    pub id: Option<Str<'a>>,
    pub last: Option<bool>,
}

/// AKS `properties`: `log` holds the Event, as an object or as escaped JSON text.
#[derive(Debug, Default, Deserialize)]
pub struct AksProperties<'a> {
    #[serde(borrow)]
    pub log: Option<Raw<'a>>,
}

/// One record of a CloudWatch Logs subscription payload.
#[derive(Debug, Default, Deserialize)]
pub struct CloudWatchEvent<'a> {
    #[serde(borrow)]
    pub message: Option<Str<'a>>,
}

/// GKE `protoPayload` (a `google.cloud.audit.AuditLog`), the parts that map onto `events`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog<'a> {
    #[serde(borrow)]
    pub service_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub method_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub resource_name: Option<Str<'a>>,
    #[serde(borrow)]
    pub authentication_info: Option<AuthenticationInfo<'a>>,
    #[serde(borrow)]
    pub request_metadata: Option<RequestMetadata<'a>>,
    #[serde(borrow)]
    pub status: Option<RpcStatus<'a>>,
    #[serde(borrow)]
    pub request: Option<Raw<'a>>,
    #[serde(borrow)]
    pub response: Option<Raw<'a>>,
}

/// GKE `authenticationInfo`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationInfo<'a> {
    #[serde(borrow)]
    pub principal_email: Option<Str<'a>>,
}

/// GKE `requestMetadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata<'a> {
    #[serde(borrow)]
    pub caller_ip: Option<Str<'a>>,
    #[serde(borrow)]
    pub caller_supplied_user_agent: Option<Str<'a>>,
}

/// GKE `status` (a `google.rpc.Status`).
#[derive(Debug, Default, Deserialize)]
pub struct RpcStatus<'a> {
    pub code: Option<i32>,
    #[serde(borrow)]
    pub message: Option<Str<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_borrow_from_the_input_unless_they_had_escapes() {
        let env: Envelope<'_> = serde_json::from_str(
            r#"{"verb":"get","userAgent":"kubectl \"v1\"","sourceIPs":["10.0.0.1"],"user":{"groups":["a"]}}"#,
        )
        .expect("valid JSON");
        let borrowed = |s: &Option<Str<'_>>| matches!(s, Some(Str(Cow::Borrowed(_))));
        assert!(borrowed(&env.verb));
        assert_eq!(env.user_agent.as_deref(), Some("kubectl \"v1\""));
        assert!(!borrowed(&env.user_agent));
        let ips = env.source_ips.expect("sourceIPs");
        assert!(matches!(ips[0], Str(Cow::Borrowed("10.0.0.1"))));
        let groups = env.user.and_then(|u| u.groups).expect("groups");
        assert!(matches!(groups[0], Str(Cow::Borrowed("a"))));
    }
}
