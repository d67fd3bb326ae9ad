//! The generic webhook's signature: `X-Auditlake-Signature: t=UNIX_SECONDS,v1=HEX`, where HEX is
//! HMAC-SHA256 with the output's secret over `UNIX_SECONDS.BODY`. A receiver recomputes it and
//! refuses a timestamp too far from its clock, so a captured delivery cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "x-auditlake-signature";

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header's value for `body` sent at `timestamp` (seconds since the epoch).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Whether `header` signs `body` with `secret`, at a time within `tolerance_secs` of `now`: what a
/// receiver checks (the comparison is constant-time).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut tag = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => tag = decode_hex(v),
            _ => {}
        }
    }
    let (Some(timestamp), Some(tag)) = (timestamp, tag) else {
        return false;
    };
    (now - timestamp).abs() <= tolerance_secs
        && mac(secret, timestamp, body).verify_slice(&tag).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_old_time_or_other_key_does_not() {
        let body = br#"[{"alert_id":"a1"}]"#;
        let header = sign(b"s3cret", 1_762_164_000, body);
        assert!(header.starts_with("t=1762164000,v1="));
        assert!(verify(b"s3cret", &header, body, 1_762_164_010, 300));
        assert!(!verify(
            b"s3cret",
            &header,
            br#"[{"alert_id":"a2"}]"#,
            1_762_164_010,
            300
        ));
        assert!(!verify(b"s3cret", &header, body, 1_762_164_000 + 301, 300));
        assert!(!verify(b"other", &header, body, 1_762_164_010, 300));
        assert!(!verify(
            b"s3cret",
            "t=1762164000,v1=zz",
            body,
            1_762_164_010,
            300
        ));
        assert!(!verify(b"s3cret", "garbage", body, 1_762_164_010, 300));
    }
}
