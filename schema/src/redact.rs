//! Redaction of secret values from request and response objects, before anything is stored.
//!
//! Keys stay (an investigator still sees *which* keys a Secret had and who changed them); values
//! become [`REDACTED`]. Covered: Secret `data`/`stringData` (objects, lists, merge and JSON patches),
//! a Secret's `kubectl.kubernetes.io/last-applied-configuration` (it repeats the data), the bearer
//! token a TokenRequest returns, and the token a TokenReview carries.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::model::Raw;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "REDACTED";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Which redaction an event's objects need, decided from its `objectRef` alone so that the common
/// case (nothing to redact) never parses the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redaction {
    None,
    Secret,
    TokenRequest,
    TokenReview,
}

impl Redaction {
    pub(crate) fn for_resource(resource: Option<&str>, subresource: Option<&str>) -> Self {
        match (resource, subresource) {
            (Some("secrets"), _) => Redaction::Secret,
            (Some("serviceaccounts"), Some("token")) => Redaction::TokenRequest,
            (Some("tokenreviews"), _) => Redaction::TokenReview,
            _ => Redaction::None,
        }
    }

    /// An event's object as it may be stored: borrowed when nothing needed redacting.
    pub(crate) fn apply_raw<'a>(self, raw: Option<Raw<'a>>) -> Option<Cow<'a, str>> {
        let raw = raw?.get();
        Some(self.apply(raw).map_or(Cow::Borrowed(raw), Cow::Owned))
    }

    /// Returns the redacted JSON text, or `None` when `raw` holds nothing to redact.
    pub(crate) fn apply(self, raw: &str) -> Option<String> {
        if self == Redaction::None {
            return None;
        }
        let mut value: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            // An object we cannot read might still hold the secret: keep none of it.
            Err(_) => return Some(Value::String(REDACTED.into()).to_string()),
        };
        let changed = match self {
            Redaction::None => false,
            Redaction::Secret => secret(&mut value),
            Redaction::TokenRequest => token_at(&mut value, "status"),
            Redaction::TokenReview => token_at(&mut value, "spec"),
        };
        changed.then(|| value.to_string())
    }
}

fn redacted() -> Value {
    Value::String(REDACTED.into())
}

/// A Secret, a SecretList, a merge patch of a Secret, or a JSON patch of one.
fn secret(value: &mut Value) -> bool {
    match value {
        Value::Object(obj) => {
            let mut changed = false;
            if let Some(Value::Array(items)) = obj.get_mut("items") {
                for item in items {
                    changed |= secret(item);
                }
            }
            changed | secret_object(obj)
        }
        Value::Array(ops) => {
            let mut changed = false;
            for op in ops {
                changed |= json_patch_op(op);
            }
            changed
        }
        _ => false,
    }
}

fn secret_object(obj: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    for key in ["data", "stringData"] {
        match obj.get_mut(key) {
            Some(Value::Object(data)) => {
                for v in data.values_mut() {
                    if !v.is_null() {
                        *v = redacted();
                        changed = true;
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                *other = redacted();
                changed = true;
            }
        }
    }
    if let Some(Value::Object(annotations)) = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        && let Some(v) = annotations.get_mut(LAST_APPLIED)
        && !v.is_null()
    {
        *v = redacted();
        changed = true;
    }
    changed
}

/// An RFC 6902 operation on a Secret: any value written under data, stringData or annotations.
fn json_patch_op(op: &mut Value) -> bool {
    let Value::Object(op) = op else { return false };
    let sensitive = op.get("path").and_then(Value::as_str).is_some_and(|p| {
        p.starts_with("/data")
            || p.starts_with("/stringData")
            || p.starts_with("/metadata/annotations")
    }) || op.get("path").and_then(Value::as_str) == Some("/metadata");
    match op.get_mut("value") {
        Some(v) if sensitive && !v.is_null() => {
            *v = redacted();
            true
        }
        _ => false,
    }
}

/// `<parent>.token`: a TokenRequest's `status.token`, a TokenReview's `spec.token`.
fn token_at(value: &mut Value, parent: &str) -> bool {
    match value.get_mut(parent).and_then(|p| p.get_mut("token")) {
        Some(token) if !token.is_null() => {
            *token = redacted();
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_go_keys_stay() {
        let raw = r#"{"kind":"Secret","metadata":{"name":"db","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"data\":{\"pw\":\"aHVudGVyMg==\"}}","team":"a"}},"data":{"pw":"aHVudGVyMg=="},"stringData":{"user":"root"}}"#;
        let out = Redaction::Secret.apply(raw).expect("redacted");
        assert!(!out.contains("aHVudGVyMg"), "{out}");
        assert!(!out.contains("root"), "{out}");
        assert!(out.contains(r#""pw":"REDACTED""#), "{out}");
        assert!(out.contains(r#""team":"a""#), "{out}");
    }

    #[test]
    fn secret_lists_and_patches() {
        let list = r#"{"kind":"SecretList","items":[{"data":{"a":"c2VjcmV0"}},{"data":{"b":"c2VjcmV0"}}]}"#;
        assert!(
            !Redaction::Secret
                .apply(list)
                .expect("list")
                .contains("c2VjcmV0")
        );
        let patch = r#"[{"op":"replace","path":"/data/a","value":"c2VjcmV0"},{"op":"add","path":"/metadata/labels/x","value":"y"}]"#;
        let out = Redaction::Secret.apply(patch).expect("patch");
        assert!(
            !out.contains("c2VjcmV0") && out.contains(r#""value":"y""#),
            "{out}"
        );
        assert_eq!(
            Redaction::Secret.apply(r#"{"metadata":{"name":"x"}}"#),
            None
        );
    }

    #[test]
    fn tokens() {
        let out = Redaction::TokenRequest
            .apply(r#"{"kind":"TokenRequest","status":{"token":"eyJhbGciOi","expirationTimestamp":"x"}}"#)
            .expect("token");
        assert!(!out.contains("eyJhbGciOi"));
        let out = Redaction::TokenReview
            .apply(r#"{"kind":"TokenReview","spec":{"token":"eyJhbGciOi"}}"#)
            .expect("review");
        assert!(!out.contains("eyJhbGciOi"));
        assert_eq!(Redaction::None.apply(r#"{"data":{"a":"b"}}"#), None);
    }
}
