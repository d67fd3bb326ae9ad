//! GKE Cloud Audit Logs entries (`protoPayload` with `serviceName: k8s.io`), mapped onto the
//! `events` columns as far as they carry the information.
//!
//! GKE rewrites the audit event: the user is `authenticationInfo.principalEmail`, the client
//! `requestMetadata`, the request `methodName` (`io.k8s.core.v1.pods.exec.create`) plus
//! `resourceName` (`core/v1/namespaces/default/pods/web`), the outcome a gRPC status, and the
//! authorization annotations move to the entry's `labels`. Groups, impersonation and the exact
//! request URI (with its query string) are not carried; the URI is rebuilt from `resourceName`.

use serde::Deserialize;

use crate::builder::{EventBatchBuilder, Row};
use crate::decode::timestamp;
use crate::derive::Source;
use crate::error::{Error, Result};
use crate::model::{AuditLog, Envelope, Raw, Str};
use crate::redact::Redaction;

#[derive(Deserialize)]
struct MonitoredResource<'a> {
    #[serde(borrow)]
    labels: Option<ResourceLabels<'a>>,
}

#[derive(Deserialize)]
struct ResourceLabels<'a> {
    #[serde(borrow)]
    cluster_name: Option<Str<'a>>,
}

#[derive(Default, Deserialize)]
struct AuthzLabels<'a> {
    #[serde(borrow, rename = "authorization.k8s.io/decision")]
    decision: Option<Str<'a>>,
    #[serde(borrow, rename = "authorization.k8s.io/reason")]
    reason: Option<Str<'a>>,
}

/// `resource.labels.cluster_name` of the entry.
pub(crate) fn cluster_name(resource: Option<Raw<'_>>) -> Option<String> {
    let resource: MonitoredResource<'_> = serde_json::from_str(resource?.get()).ok()?;
    resource
        .labels?
        .cluster_name
        .filter(|n| !n.is_empty())
        .map(Str::into_owned)
}

/// The request as `methodName` and `resourceName` describe it.
#[derive(Debug, Default, PartialEq)]
struct Request<'a> {
    verb: Option<&'a str>,
    api_group: Option<&'a str>,
    api_version: Option<&'a str>,
    resource: Option<&'a str>,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    request_uri: Option<String>,
}

fn is_version(token: &str) -> bool {
    let Some(rest) = token.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let tail = &rest[digits..];
    digits > 0 && (tail.is_empty() || tail.starts_with("alpha") || tail.starts_with("beta"))
}

fn parse_request<'a>(method: &'a str, resource_name: Option<&'a str>) -> Request<'a> {
    let mut req = Request::default();
    let tokens: Vec<&str> = method.split('.').collect();
    req.verb = tokens.last().copied();
    let Some(vi) = tokens.iter().position(|t| is_version(t)) else {
        // A non-resource request such as `io.k8s.get` of `readyz`.
        req.request_uri = resource_name.map(|n| format!("/{}", n.trim_start_matches('/')));
        return req;
    };
    let after = &tokens[vi + 1..tokens.len() - 1];
    req.api_version = Some(tokens[vi]);
    req.resource = after.first().copied();
    req.subresource = after.get(1).copied();
    let Some(path) = resource_name else {
        return req;
    };
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() >= 3 && is_version(parts[1]) {
        req.api_group = Some(if parts[0] == "core" { "" } else { parts[0] });
        let rest = &parts[2..];
        let named = if rest.len() >= 3 && rest[0] == "namespaces" {
            req.namespace = Some(rest[1]);
            &rest[3..]
        } else if rest.first() == Some(&"namespaces") && req.resource == Some("namespaces") {
            req.namespace = rest.get(1).copied();
            &rest[1..]
        } else {
            &rest[1..]
        };
        req.name = named.first().copied();
        req.request_uri = Some(if parts[0] == "core" {
            format!("/api/{}", parts[1..].join("/"))
        } else {
            format!("/apis/{path}")
        });
    }
    req
}

/// gRPC status code → the HTTP code the API server would have answered with.
fn http_code(grpc: i32) -> i32 {
    match grpc {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

pub(crate) fn append(
    builder: &mut EventBatchBuilder,
    env: &Envelope<'_>,
    payload: Raw<'_>,
    cluster: &str,
    ingested_at: i64,
) -> Result<()> {
    let log: AuditLog<'_> = serde_json::from_str(payload.get()).map_err(Error::from_json)?;
    match log.service_name.as_deref() {
        Some("k8s.io") => {}
        other => {
            return Err(Error::not_an_event(format!(
                "GKE entry of service {:?}, not k8s.io",
                other.unwrap_or("")
            )));
        }
    }
    let operation = env.operation.as_ref();
    let audit_id = operation
        .and_then(|o| o.id.as_deref())
        .or(env.insert_id.as_deref())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| Error::not_an_event("GKE entry without operation.id or insertId"))?;
    let event_time = match env.timestamp.as_deref() {
        Some(t) => timestamp("timestamp", t)?,
        None => return Err(Error::not_an_event("no timestamp")),
    };
    let method = log.method_name.as_deref().unwrap_or("");
    let req = parse_request(method, log.resource_name.as_deref());
    let authz: AuthzLabels<'_> = match env.labels {
        Some(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
        None => AuthzLabels::default(),
    };
    let grpc = log.status.as_ref().and_then(|s| s.code).unwrap_or(0);
    let redaction = Redaction::for_resource(req.resource, req.subresource);
    let request_object = redaction.apply_raw(log.request);
    let response_object = redaction.apply_raw(log.response);
    let source_ips: Option<Vec<Str<'_>>> = log
        .request_metadata
        .as_ref()
        .and_then(|m| m.caller_ip.clone())
        .map(|ip| vec![ip]);
    let level = if log.response.is_some() {
        "RequestResponse"
    } else if log.request.is_some() {
        "Request"
    } else {
        "Metadata"
    };
    let stage = match operation.and_then(|o| o.last) {
        Some(false) => "ResponseStarted",
        _ => "ResponseComplete",
    };
    let row = Row {
        cluster,
        audit_id,
        stage: Some(stage),
        level: Some(level),
        event_time,
        stage_time: event_time,
        verb: req.verb,
        request_uri: req.request_uri.as_deref(),
        user_name: log
            .authentication_info
            .as_ref()
            .and_then(|a| a.principal_email.as_deref()),
        source_ips: source_ips.as_deref(),
        user_agent: log
            .request_metadata
            .as_ref()
            .and_then(|m| m.caller_supplied_user_agent.as_deref()),
        resource: req.resource,
        subresource: req.subresource,
        namespace: req.namespace,
        name: req.name,
        api_group: req.api_group,
        api_version: req.api_version,
        response_code: Some(http_code(grpc)),
        response_status: (grpc != 0).then_some("Failure"),
        response_message: log
            .status
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .filter(|m| !m.is_empty()),
        decision: authz.decision.as_deref(),
        decision_reason: authz.reason.as_deref(),
        annotations: env.labels.map(Raw::get),
        request_object: request_object.as_deref(),
        response_object: response_object.as_deref(),
        ..Row::default()
    };
    let derived = Source::from_row(&row).derive();
    builder.append(&row, &derived, ingested_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_resource_names() {
        let r = parse_request(
            "io.k8s.core.v1.pods.exec.create",
            Some("core/v1/namespaces/default/pods/web/exec"),
        );
        assert_eq!(
            (
                r.verb,
                r.resource,
                r.subresource,
                r.namespace,
                r.name,
                r.api_group,
                r.api_version
            ),
            (
                Some("create"),
                Some("pods"),
                Some("exec"),
                Some("default"),
                Some("web"),
                Some(""),
                Some("v1")
            )
        );
        assert_eq!(
            r.request_uri.as_deref(),
            Some("/api/v1/namespaces/default/pods/web/exec")
        );
        let r = parse_request(
            "io.k8s.authorization.rbac.v1.clusterrolebindings.create",
            Some("rbac.authorization.k8s.io/v1/clusterrolebindings/evil"),
        );
        assert_eq!(
            (r.resource, r.name, r.api_group, r.namespace),
            (
                Some("clusterrolebindings"),
                Some("evil"),
                Some("rbac.authorization.k8s.io"),
                None
            )
        );
        let r = parse_request("io.k8s.get", Some("readyz"));
        assert_eq!(
            (r.verb, r.resource, r.request_uri.as_deref()),
            (Some("get"), None, Some("/readyz"))
        );
        let r = parse_request("io.k8s.apps.v1beta2.deployments.list", None);
        assert_eq!(
            (r.verb, r.resource, r.api_version),
            (Some("list"), Some("deployments"), Some("v1beta2"))
        );
    }

    #[test]
    fn grpc_codes() {
        assert_eq!(http_code(0), 200);
        assert_eq!(http_code(7), 403);
        assert_eq!(http_code(16), 401);
        assert_eq!(http_code(5), 404);
    }
}
