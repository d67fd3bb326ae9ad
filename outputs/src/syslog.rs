//! Alerts as RFC 5424 syslog lines, for SIEMs: the alert's fields as structured data
//! (`[auditlake@32473 ...]`, escaped as the RFC asks) and its message as UTF-8 text. Over TCP or
//! TLS (RFC 5425) each line is framed by its length (RFC 6587 octet counting); over UDP one
//! datagram is one line, cut to fit a datagram.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::text;

/// The structured data's id (32473 is the enterprise number RFC 5612 sets aside for
/// documentation and private use).
const SD_ID: &str = "auditlake@32473";
/// Facility 13, "log audit".
const FACILITY: u8 = 13;
/// Fields of the alert carried as structured data.
const FIELDS: [&str; 11] = [
    "alert_id",
    "rule_id",
    "severity",
    "category",
    "cluster",
    "user_name",
    "source_ip",
    "verb",
    "resource",
    "namespace",
    "name",
];

fn level(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash (RFC 5424 section 6.3.3).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        // A line break would end the record for receivers that split on them.
        out.push(if c == '\n' || c == '\r' { ' ' } else { c });
    }
    out
}

/// One RFC 5424 line for the alert `row`, from `hostname` at `now`.
pub fn line(row: &serde_json::Value, hostname: &str, now: DateTime<Utc>) -> String {
    let severity = text(row, "severity").unwrap_or("info");
    let pri = FACILITY * 8 + level(severity);
    let mut data = format!("[{SD_ID}");
    for key in FIELDS {
        if let Some(v) = text(row, key) {
            data.push_str(&format!(" {key}=\"{}\"", escape(v)));
        }
    }
    if let Some(n) = row.get("grouped").and_then(serde_json::Value::as_u64) {
        data.push_str(&format!(" grouped=\"{n}\""));
    }
    data.push(']');
    let message = text(row, "message")
        .unwrap_or_default()
        .replace(['\n', '\r'], " ");
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    format!(
        "<{pri}>1 {} {} auditlake - alert {data} \u{feff}{message}",
        now.to_rfc3339_opts(SecondsFormat::Millis, true),
        if host.is_empty() { "-".into() } else { host },
    )
}

/// The most a UDP datagram carries: an IPv4 datagram's 65,535 bytes less its headers.
pub const MAX_DATAGRAM: usize = 65_507;

/// `line` as one UDP datagram: cut at [`MAX_DATAGRAM`] bytes (on a character boundary) if it is
/// longer, as RFC 5426 allows, rather than never sent.
pub fn datagram(line: &str) -> &str {
    if line.len() <= MAX_DATAGRAM {
        return line;
    }
    let mut end = MAX_DATAGRAM;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// `line` framed for a stream (TCP, TLS): its length in bytes, a space, the line.
pub fn framed(line: &str) -> String {
    format!("{} {line}", line.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_rfc_5424_with_the_fields_escaped() {
        let row = serde_json::json!({
            "alert_id": "a1", "rule_id": "exec-into-pod", "severity": "high",
            "user_name": "eve\"] [x@1 y=\"z", "message": "eve ran exec\nsecond line",
        });
        let now = DateTime::parse_from_rfc3339("2025-11-03T10:00:05Z")
            .expect("time")
            .with_timezone(&Utc);
        let line = line(&row, "node-1", now);
        // 13 * 8 + 3 (err) = 107.
        assert!(
            line.starts_with("<107>1 2025-11-03T10:00:05.000Z node-1 auditlake - alert [auditlake@32473 alert_id=\"a1\" rule_id=\"exec-into-pod\" severity=\"high\""),
            "{line}"
        );
        assert!(
            line.contains(r#"user_name="eve\"\] [x@1 y=\"z"]"#),
            "{line}"
        );
        assert!(line.ends_with("\u{feff}eve ran exec second line"), "{line}");
        assert!(!line.contains('\n'));
        assert_eq!(framed("abc"), "3 abc");
        assert_eq!(framed("é"), "2 é");
        let long = format!("{}é{}", "a".repeat(MAX_DATAGRAM - 1), "b".repeat(100));
        assert_eq!(datagram(&long).len(), MAX_DATAGRAM - 1);
        assert_eq!(datagram("short"), "short");
    }
}
