//! Alerts as a Slack-compatible incoming webhook takes them (also Mattermost, Rocket.Chat): one
//! message with the severity, rule, who, what and where, and a link. Every value from an event is
//! escaped as Slack's markup asks (`&`, `<`, `>`), so an attacker's user name cannot mention
//! `@channel`, hide a link or format the message.

use crate::text;

/// A value as plain text inside Slack markup.
fn escape(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn emoji(severity: &str) -> &'static str {
    match severity {
        "critical" => ":red_circle:",
        "high" => ":large_orange_circle:",
        "medium" => ":large_yellow_circle:",
        _ => ":white_circle:",
    }
}

/// The message for one alert; `link` is the alert's page on the server, if it has one.
pub fn message(row: &serde_json::Value, link: Option<&str>) -> serde_json::Value {
    let get = |key: &str| text(row, key).map(escape);
    let severity = text(row, "severity").unwrap_or("info");
    let title = get("rule_title")
        .or_else(|| get("rule_id"))
        .unwrap_or_default();
    let mut lines = vec![format!(
        "{} *{}* {}",
        emoji(severity),
        escape(&severity.to_uppercase()),
        title
    )];
    if let Some(message) = get("message") {
        lines.push(message);
    }
    let mut facts = Vec::new();
    for (label, key) in [
        ("who", "user_name"),
        ("from", "source_ip"),
        ("cluster", "cluster"),
        ("namespace", "namespace"),
        ("rule", "rule_id"),
    ] {
        if let Some(v) = get(key) {
            facts.push(format!("{label}: `{}`", v.replace('`', "'")));
        }
    }
    if !facts.is_empty() {
        lines.push(facts.join("  "));
    }
    if let Some(n) = row.get("grouped").and_then(serde_json::Value::as_u64) {
        lines.push(format!(
            "_{n} more alert{} of this rule in this cluster since the last message_",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(link) = link {
        lines.push(format!("<{}|Open in auditlake>", escape(link)));
    }
    serde_json::json!({ "text": lines.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_the_alert_and_escapes_what_the_event_said() {
        let row = serde_json::json!({
            "rule_id": "exec-into-pod", "rule_title": "Exec into a pod", "severity": "high",
            "message": "<!channel> ran exec", "user_name": "eve <https://evil.example|bank>",
            "source_ip": "203.0.113.7", "cluster": "prod",
        });
        let text = message(&row, Some("https://auditlake.example/#/alert/a1"))["text"]
            .as_str()
            .expect("text")
            .to_string();
        assert!(
            text.starts_with(":large_orange_circle: *HIGH* Exec into a pod"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt; ran exec"), "{text}");
        assert!(
            !text.contains("<!channel>") && !text.contains("<https://evil"),
            "{text}"
        );
        assert!(text.contains("from: `203.0.113.7`"), "{text}");
        assert!(
            text.ends_with("<https://auditlake.example/#/alert/a1|Open in auditlake>"),
            "{text}"
        );
    }
}
