//! `[[alerts.outputs]]` tables of the config file, parsed, then checked once into [`Output`]s:
//! code after start-up never sees a missing URL or an unknown kind.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// One `[[alerts.outputs]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Unique; names the outbox directory, the metrics and the logs.
    pub name: String,
    /// `alertmanager`, `webhook`, `slack` or `syslog`.
    pub kind: String,
    /// Where HTTP outputs post (Alertmanager's base URL, the webhook's, Slack's).
    pub url: Option<String>,
    /// Where syslog goes: `tcp://HOST:PORT`, `tls://HOST:PORT` or `udp://HOST:PORT`.
    pub address: Option<String>,
    /// Alerts below this severity are not sent (default: every alert).
    pub min_severity: Option<String>,
    /// Only these rules (default: all).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only these categories (default: all).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Only these clusters (default: all).
    #[serde(default)]
    pub clusters: Vec<String>,
    /// The environment variable holding the secret (the webhook's signing key, the bearer token
    /// of Alertmanager or a webhook, or Slack's whole URL).
    pub secret_env: Option<String>,
    /// The file holding the secret, as `secret_env`.
    pub secret_file: Option<PathBuf>,
    /// Headers added to every HTTP request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// PEM CA certificates trusted for this output's HTTPS or syslog over TLS, besides the
    /// system's.
    pub ca_file: Option<PathBuf>,
    /// Bytes of alerts the outbox holds at most (default 64 MiB).
    pub max_queue_bytes: Option<usize>,
    /// How long an Alertmanager alert fires without being raised again (default `1h`).
    pub alert_ttl: Option<String>,
    /// At most one message per rule and cluster per this long (`10m`), saying how many were
    /// grouped into it; not for Alertmanager, which groups by its own route.
    pub group_window: Option<String>,
}

/// The kinds of output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Prometheus Alertmanager's `POST /api/v2/alerts`.
    Alertmanager,
    /// A generic receiver taking the `alerts` rows as JSON, signed.
    Webhook,
    /// A Slack-compatible incoming webhook.
    Slack,
    /// RFC 5424 syslog over TCP.
    SyslogTcp,
    /// RFC 5424 syslog over TLS (RFC 5425).
    SyslogTls,
    /// RFC 5424 syslog over UDP.
    SyslogUdp,
}

/// An output, checked.
#[derive(Clone)]
pub struct Output {
    /// Its name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// The URL (HTTP kinds) or `HOST:PORT` (syslog).
    pub target: String,
    /// The lowest severity sent.
    pub min_rank: u8,
    /// Rules, categories and clusters sent (empty: all).
    pub rules: Vec<String>,
    /// See [`OutputConfig::categories`].
    pub categories: Vec<String>,
    /// See [`OutputConfig::clusters`].
    pub clusters: Vec<String>,
    /// The secret, read from the environment or a file; never logged.
    pub secret: Option<String>,
    /// Extra HTTP headers.
    pub headers: BTreeMap<String, String>,
    /// Extra CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Bound of the outbox.
    pub max_queue_bytes: usize,
    /// Lifetime of an Alertmanager alert.
    pub alert_ttl: std::time::Duration,
    /// Grouping per rule and cluster; `None` sends every alert.
    pub group_window: Option<std::time::Duration>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field(
                "target",
                &if self.kind == Kind::Slack {
                    "<redacted>".to_string()
                } else {
                    redact_url(&self.target)
                },
            )
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A URL with any user information cut out, for logs.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The rank of a severity (`info` 0 to `critical` 4); `None` for an unknown one.
pub fn severity_rank(severity: &str) -> Option<u8> {
    match severity {
        "info" => Some(0),
        "low" => Some(1),
        "medium" => Some(2),
        "high" => Some(3),
        "critical" => Some(4),
        _ => None,
    }
}

impl OutputConfig {
    /// Checks the table and reads its secret.
    pub fn check(&self) -> Result<Output, String> {
        let name = &self.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "output name {name:?} must be letters, digits, `-` or `_`"
            ));
        }
        let need = |field: &Option<String>, what: &str| {
            field.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("output {name}: `{what}` is required for kind {}", self.kind)
            })
        };
        let (kind, target) = match self.kind.as_str() {
            "alertmanager" => (Kind::Alertmanager, need(&self.url, "url")?),
            "webhook" => (Kind::Webhook, need(&self.url, "url")?),
            "slack" => (Kind::Slack, self.url.clone().unwrap_or_default()),
            "syslog" => {
                let address = need(&self.address, "address")?;
                match address.split_once("://") {
                    Some(("tcp", a)) => (Kind::SyslogTcp, a.to_string()),
                    Some(("tls", a)) => (Kind::SyslogTls, a.to_string()),
                    Some(("udp", a)) => (Kind::SyslogUdp, a.to_string()),
                    _ => {
                        return Err(format!(
                            "output {name}: address {address:?} must be tcp://HOST:PORT, tls://HOST:PORT or udp://HOST:PORT"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "output {name}: unknown kind {other:?} (alertmanager, webhook, slack, syslog)"
                ));
            }
        };
        if matches!(kind, Kind::Alertmanager | Kind::Webhook)
            && !(target.starts_with("http://") || target.starts_with("https://"))
        {
            return Err(format!(
                "output {name}: url must start with http:// or https://"
            ));
        }
        let secret = match (&self.secret_env, &self.secret_file) {
            (Some(var), _) => Some(std::env::var(var).map_err(|_| {
                format!("output {name}: the environment variable {var} (secret_env) is not set")
            })?),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("output {name}: secret_file {}: {e}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        // Slack's URL is its secret: it may come from the secret instead of the file.
        let target = if kind == Kind::Slack {
            match (target.is_empty(), &secret) {
                (false, _) => target,
                (true, Some(url)) => url.clone(),
                (true, None) => {
                    return Err(format!(
                        "output {name}: slack needs `url`, or the URL in secret_env or secret_file"
                    ));
                }
            }
        } else {
            target
        };
        if kind == Kind::Webhook && secret.is_none() {
            return Err(format!(
                "output {name}: a webhook signs its deliveries; give secret_env or secret_file"
            ));
        }
        let min_rank = match &self.min_severity {
            Some(s) => severity_rank(s).ok_or_else(|| {
                format!(
                    "output {name}: min_severity {s:?} is not info, low, medium, high or critical"
                )
            })?,
            None => 0,
        };
        let ca_pem = match &self.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("output {name}: ca_file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let alert_ttl = match &self.alert_ttl {
            Some(t) => auditlake_schema::time::parse_duration(t).ok_or_else(|| {
                format!("output {name}: alert_ttl {t:?} is not a duration such as 1h")
            })?,
            None => std::time::Duration::from_secs(3600),
        };
        let group_window = match &self.group_window {
            Some(_) if kind == Kind::Alertmanager => {
                return Err(format!(
                    "output {name}: Alertmanager groups alerts itself (group_by, group_interval in its route); drop group_window"
                ));
            }
            Some(t) => Some(auditlake_schema::time::parse_duration(t).ok_or_else(|| {
                format!("output {name}: group_window {t:?} is not a duration such as 10m")
            })?),
            None => None,
        };
        Ok(Output {
            name: name.clone(),
            kind,
            target,
            min_rank,
            rules: self.rules.clone(),
            categories: self.categories.clone(),
            clusters: self.clusters.clone(),
            secret,
            headers: self.headers.clone(),
            ca_pem,
            max_queue_bytes: self.max_queue_bytes.unwrap_or(64 << 20),
            alert_ttl,
            group_window,
        })
    }
}

impl Output {
    /// Whether the alert `row` is for this output.
    pub fn wants(&self, rule: &str, severity: &str, category: &str, cluster: &str) -> bool {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        severity_rank(severity).unwrap_or(0) >= self.min_rank
            && any(&self.rules, rule)
            && any(&self.categories, category)
            && any(&self.clusters, cluster)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> OutputConfig {
        toml::from_str(text).expect("table")
    }

    #[test]
    fn tables_are_checked_once_with_clear_messages() {
        let ok = table(
            "name = \"pager\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\nmin_severity = \"high\"",
        );
        let out = ok.check().expect("valid");
        assert_eq!((out.kind, out.min_rank), (Kind::Alertmanager, 3));
        assert!(out.wants("r", "critical", "exec", "prod"));
        assert!(!out.wants("r", "medium", "exec", "prod"));

        let err = |t: &str| table(t).check().expect_err("refused");
        assert!(err("name = \"a\"\nkind = \"pager\"").contains("unknown kind"));
        assert!(err("name = \"a\"\nkind = \"webhook\"").contains("`url` is required"));
        assert!(err("name = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"").contains("secret_env"));
        assert!(err("name = \"a b\"\nkind = \"slack\"\nurl = \"https://x\"").contains("letters"));
        assert!(err("name = \"a\"\nkind = \"syslog\"\naddress = \"host:514\"").contains("tcp://"));
        assert!(
            err("name = \"a\"\nkind = \"webhook\"\nurl = \"http://x\"\nsecret_env = \"AUDITLAKE_TEST_UNSET_SECRET\"")
                .contains("is not set")
        );
        let syslog = table("name = \"siem\"\nkind = \"syslog\"\naddress = \"udp://127.0.0.1:514\"\nrules = [\"exec-into-pod\"]")
            .check()
            .expect("valid");
        assert_eq!(
            (syslog.kind, syslog.target.as_str()),
            (Kind::SyslogUdp, "127.0.0.1:514")
        );
        assert!(!syslog.wants("other", "critical", "exec", "prod"));
    }

    #[test]
    fn a_secret_in_the_url_is_not_in_the_debug_form() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("slack");
        std::fs::write(&secret, "https://hooks.example/services/T0/B0/XYZSECRET\n").expect("write");
        let out = table(&format!(
            "name = \"chat\"\nkind = \"slack\"\nsecret_file = \"{}\"",
            secret.display()
        ))
        .check()
        .expect("valid");
        assert_eq!(out.target, "https://hooks.example/services/T0/B0/XYZSECRET");
        let shown = format!("{out:?}");
        assert!(!shown.contains("XYZSECRET"), "{shown}");
    }
}
