//! Secret values and tokens never reach the data directory.

use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::*;

const SECRET_B64: &str = "c3VwZXItc2VjcmV0LXBhc3N3b3JkLTQyCg==";
const SECRET_PLAIN: &str = "plain-text-password-for-stringData-77";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.planted-token-payload.signature-xyz";
const REVIEWED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.reviewed-bearer-token.sig-abc";

fn planted_events() -> String {
    let secret = serde_json::json!({
        "kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "db", "namespace": "shop", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration":
                format!("{{\"apiVersion\":\"v1\",\"data\":{{\"password\":\"{SECRET_B64}\"}},\"kind\":\"Secret\"}}")
        }},
        "data": {"password": SECRET_B64},
        "stringData": {"dsn": SECRET_PLAIN},
        "type": "Opaque"
    });
    let event = |id: &str,
                 verb: &str,
                 uri: &str,
                 obj: serde_json::Value,
                 req: serde_json::Value,
                 resp: serde_json::Value| {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse",
            "auditID": id, "stage": "ResponseComplete", "requestURI": uri, "verb": verb,
            "user": {"username": "bob@example.com", "groups": ["system:authenticated"]},
            "sourceIPs": ["203.0.113.22"], "objectRef": obj,
            "responseStatus": {"metadata": {}, "code": 201},
            "requestObject": req, "responseObject": resp,
            "requestReceivedTimestamp": "2025-11-03T09:00:00.000001Z",
            "stageTimestamp": "2025-11-03T09:00:00.010000Z"
        })
        .to_string()
    };
    let lines = [
        event(
            "secret-create",
            "create",
            "/api/v1/namespaces/shop/secrets",
            serde_json::json!({"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"}),
            secret.clone(),
            secret.clone(),
        ),
        event(
            "secret-list",
            "list",
            "/api/v1/namespaces/shop/secrets",
            serde_json::json!({"resource": "secrets", "namespace": "shop", "apiVersion": "v1"}),
            serde_json::Value::Null,
            serde_json::json!({"kind": "SecretList", "items": [secret.clone()]}),
        ),
        event(
            "secret-patch",
            "patch",
            "/api/v1/namespaces/shop/secrets/db",
            serde_json::json!({"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"}),
            serde_json::json!([{"op": "replace", "path": "/data/password", "value": SECRET_B64}]),
            secret,
        ),
        event(
            "token-request",
            "create",
            "/api/v1/namespaces/shop/serviceaccounts/web/token",
            serde_json::json!({"resource": "serviceaccounts", "subresource": "token", "namespace": "shop", "name": "web", "apiVersion": "v1"}),
            serde_json::json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {"audiences": ["api"], "expirationSeconds": 3600}}),
            serde_json::json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {"audiences": ["api"]}, "status": {"token": TOKEN, "expirationTimestamp": "2025-11-03T10:00:00Z"}}),
        ),
        event(
            "token-review",
            "create",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            serde_json::json!({"resource": "tokenreviews", "apiGroup": "authentication.k8s.io", "apiVersion": "v1"}),
            serde_json::json!({"kind": "TokenReview", "spec": {"token": REVIEWED_TOKEN}}),
            serde_json::json!({"kind": "TokenReview", "spec": {"token": REVIEWED_TOKEN}, "status": {"authenticated": true}}),
        ),
    ];
    lines.join("\n") + "\n"
}

/// Every string value in every Parquet file under `dir` (decompressed), plus every file's raw bytes.
fn everything_stored(dir: &Path) -> (Vec<String>, Vec<Vec<u8>>) {
    let mut strings = Vec::new();
    let mut raw = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            raw.push(std::fs::read(&path).expect("readable file"));
            if path.extension().is_some_and(|e| e == "parquet") {
                let file = std::fs::File::open(&path).expect("open");
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .expect("parquet")
                    .build()
                    .expect("reader");
                for batch in reader {
                    for column in batch.expect("batch").columns() {
                        collect_strings(column.as_ref(), &mut strings);
                    }
                }
            }
        }
    }
    (strings, raw)
}

fn collect_strings(array: &dyn Array, out: &mut Vec<String>) {
    match array.data_type() {
        DataType::Utf8 => out.extend(array.as_string::<i32>().iter().flatten().map(String::from)),
        DataType::List(_) => collect_strings(array.as_list::<i32>().values().as_ref(), out),
        _ => {}
    }
}

#[test]
fn planted_secrets_and_tokens_are_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("planted.log");
    std::fs::write(&input, planted_events()).expect("write");
    let data = dir.path().join("data");
    let out = replay(&data, &[input]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&data), 5);

    let (strings, raw) = everything_stored(&data);
    assert!(
        strings
            .iter()
            .any(|s| s.contains("\"password\":\"REDACTED\"")),
        "the secret's keys are kept and the decompressed text was really read"
    );
    for planted in [
        SECRET_B64,
        SECRET_PLAIN,
        TOKEN,
        REVIEWED_TOKEN,
        "planted-token-payload",
        "c3VwZXItc2VjcmV0",
    ] {
        assert!(
            !strings.iter().any(|s| s.contains(planted)),
            "{planted} is stored in a column"
        );
        assert!(
            !raw.iter().any(|bytes| bytes
                .windows(planted.len())
                .any(|w| w == planted.as_bytes())),
            "{planted} appears in a file's bytes"
        );
    }
}
