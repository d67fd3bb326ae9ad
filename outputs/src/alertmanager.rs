//! Alerts as Prometheus Alertmanager takes them (`POST /api/v2/alerts`): labels that route and
//! dedupe (the `alert_id` among them, so a redelivery after a crash is the same alert), the
//! message in the annotations, and an `endsAt` so that an alert resolves by itself instead of
//! firing forever.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::text;

/// The body of one `POST /api/v2/alerts` for `rows` (`alerts` rows as JSON).
///
/// `link` makes the `generatorURL` of an alert (the server's page for it) from its id; the alert
/// ends `ttl` after `now`, and is re-sent (same labels) only if it fires again.
pub fn body(
    rows: &[&serde_json::Value],
    now: DateTime<Utc>,
    ttl: Duration,
    link: impl Fn(&str) -> Option<String>,
) -> serde_json::Value {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let alerts: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let mut labels = serde_json::Map::new();
            labels.insert(
                "alertname".into(),
                text(row, "rule_id").unwrap_or("auditlake").into(),
            );
            for key in ["alert_id", "severity", "category", "cluster", "namespace"] {
                if let Some(v) = text(row, key) {
                    labels.insert(key.into(), v.into());
                }
            }
            labels.insert("source".into(), "auditlake".into());
            let mut annotations = serde_json::Map::new();
            for (name, key) in [
                ("summary", "rule_title"),
                ("description", "message"),
                ("user", "user_name"),
                ("source_ip", "source_ip"),
                ("event_time", "event_time"),
            ] {
                if let Some(v) = text(row, key) {
                    annotations.insert(name.into(), v.into());
                }
            }
            let starts = text(row, "detected_at")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(now, |t| t.with_timezone(&Utc));
            let mut alert = serde_json::json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": time(starts.min(now)),
                "endsAt": time(now + ttl),
            });
            if let Some(url) = text(row, "alert_id").and_then(&link) {
                alert["generatorURL"] = url.into();
            }
            alert
        })
        .collect();
    serde_json::Value::Array(alerts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_route_and_dedupe_and_the_alert_ends_by_itself() {
        let row = serde_json::json!({
            "alert_id": "a1b2", "rule_id": "exec-into-pod", "rule_title": "Exec into a pod",
            "severity": "high", "category": "exec", "cluster": "prod", "namespace": null,
            "message": "alice ran exec", "user_name": "alice", "detected_at": "2025-11-03T10:00:01Z",
        });
        let now = DateTime::parse_from_rfc3339("2025-11-03T10:00:05Z")
            .expect("time")
            .with_timezone(&Utc);
        let body = body(&[&row], now, Duration::hours(1), |id| {
            Some(format!("https://auditlake.example/#/alert/{id}"))
        });
        let alert = &body[0];
        assert_eq!(alert["labels"]["alertname"], "exec-into-pod");
        assert_eq!(alert["labels"]["alert_id"], "a1b2");
        assert_eq!(alert["labels"]["severity"], "high");
        assert!(
            alert["labels"].get("namespace").is_none(),
            "no empty labels"
        );
        assert_eq!(alert["annotations"]["description"], "alice ran exec");
        assert_eq!(alert["startsAt"], "2025-11-03T10:00:01Z");
        assert_eq!(alert["endsAt"], "2025-11-03T11:00:05Z");
        assert_eq!(
            alert["generatorURL"],
            "https://auditlake.example/#/alert/a1b2"
        );
    }
}
