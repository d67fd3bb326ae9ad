//! The investigator console in a real headless Chromium, driven through ChromeDriver (WebDriver),
//! against a real `auditlake serve` loaded with `sample-logs/` and one hostile event: sign-in,
//! the alerts list and a filter, the exec alert with its command and context, a pivot, triage that
//! survives a restart, the SQL page, a wrong token, and event values that stay text.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::serve::Server;
use crate::{replay, repo};

const TOKEN: &str = "console-test-token-0123456789";
const QUERY_ONLY: &str = "reader-token-0123456789abcdef";

/// ChromeDriver: `AUDITLAKE_CHROMEDRIVER`, else Debian's, which `scripts/test` installs.
fn chromedriver() -> PathBuf {
    let path = std::env::var_os("AUDITLAKE_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    assert!(
        path.exists(),
        "ChromeDriver is not installed at {}: run `bash scripts/test`, which installs Debian's \
         chromium and chromium-driver",
        path.display()
    );
    path
}

/// A ChromeDriver on a loopback port; killed when dropped, also when the test fails.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = crate::free_port();
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver {
            child,
            url,
            _profile: tempfile::tempdir().expect("profile dir"),
        }
    }

    async fn browser(&self) -> Client {
        let chromium =
            std::env::var("AUDITLAKE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        // Flags that keep Chromium from reaching out to the network, which this test has none
        // of; --no-sandbox because CI runs as root.
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1400,1500",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ],
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session through ChromeDriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `css` matches an element whose text satisfies `ok`; returns that text.
async fn wait_text(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if ok(&text) {
                return text;
            }
            last = text;
        }
        if Instant::now() > deadline {
            let shot = client.screenshot().await.unwrap_or_default();
            let path = artifacts().join("failure.png");
            let _ = std::fs::write(&path, shot);
            panic!(
                "waited 20 s for {css} (last text {last:?}); page in {}",
                path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.expect("find") {
        out.push(element.text().await.expect("text"));
    }
    out
}

async fn click(client: &Client, css: &str) {
    wait_text(client, css, |_| true).await;
    client
        .find(Locator::Css(css))
        .await
        .expect("element")
        .click()
        .await
        .expect("click");
}

async fn type_into(client: &Client, css: &str, text: &str) {
    wait_text(client, css, |_| true).await;
    let element = client.find(Locator::Css(css)).await.expect("element");
    element.clear().await.expect("clear");
    element.send_keys(text).await.expect("type");
}

/// Where the screenshots go: the test's scratch directory, and with
/// `AUDITLAKE_UPDATE_SCREENSHOTS=1` also `docs/console/`, which the README shows.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(artifacts().join(name), &png).expect("write screenshot");
    if std::env::var_os("AUDITLAKE_UPDATE_SCREENSHOTS").is_some() {
        let docs = repo().join("docs/console");
        std::fs::create_dir_all(&docs).expect("docs dir");
        std::fs::write(docs.join(name), &png).expect("write screenshot");
    }
}

/// An exec into a pod whose every free-text field carries markup and script.
fn hostile_event(dir: &Path) -> PathBuf {
    let markup = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    let event = serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": "0b5c6f0e-hostile-0001", "stage": "ResponseComplete",
        "requestURI": format!("/api/v1/namespaces/evil/pods/web/exec?command={}&command=-c",
            "%3Cscript%3Ewindow.__pwned%3D3%3C%2Fscript%3E"),
        "verb": "create",
        "user": {"username": format!("eve{markup}@example.com"), "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.66"], "userAgent": format!("kubectl {markup}"),
        "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "evil", "name": "web", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 101},
        "requestReceivedTimestamp": "2025-11-05T09:00:00.000001Z",
        "stageTimestamp": "2025-11-05T09:00:00.002000Z"
    });
    let path = dir.join("hostile.log");
    std::fs::write(&path, format!("{event}\n")).expect("write hostile event");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_investigator_triages_the_sample_alerts_in_a_real_browser() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let mut files = crate::sample_log_files();
    files.push(hostile_event(scratch.path()));
    let out = replay(&data, &files);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens = format!("ops query,triage {TOKEN}\nreader query {QUERY_ONLY}\n");
    let listen = format!("127.0.0.1:{}", crate::free_port());
    let env = [("AUDITLAKE_TOKENS", tokens.as_str())];
    let mut server = Server::start_on(&listen, &data, &[], &env);
    let base = server.url.clone();

    let driver = Driver::start();
    let client = driver.browser().await;

    // A wrong token is refused with a clear message; the right one signs in.
    client
        .goto(&format!("{base}/"))
        .await
        .expect("open console");
    type_into(&client, "#token", "not-a-valid-token-at-all").await;
    click(&client, "#sign-in-button").await;
    let refused = wait_text(&client, "#sign-in-error", |t| !t.is_empty()).await;
    assert!(refused.contains("refused"), "{refused}");
    type_into(&client, "#token", TOKEN).await;
    click(&client, "#sign-in-button").await;

    // The alerts list shows the sample alerts, newest first, with counts per rule.
    wait_text(&client, "#alert-list", |t| t.contains("Exec")).await;
    let rows = texts(&client, "#alert-list tbody tr").await;
    assert!(rows.len() >= 50, "{} alert rows", rows.len());
    let rules = texts(&client, "#by-rule tbody tr").await;
    assert!(rules.len() >= 20, "{} rules with alerts", rules.len());
    screenshot(&client, "alerts.png").await;

    // A filter narrows the list, and is in the URL.
    let before = texts(&client, "#alert-list tbody tr .sev").await;
    assert!(before.iter().any(|s| s != "high"), "{before:?}");
    click(&client, "#f-severity option[value=high]").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let severities = loop {
        let url = client.current_url().await.expect("url");
        let shown = texts(&client, "#alert-list tbody tr .sev").await;
        if url.as_str().contains("severity=high")
            && !shown.is_empty()
            && shown.iter().all(|s| s == "high")
        {
            break shown;
        }
        assert!(
            Instant::now() < deadline,
            "the filter did not narrow the list"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let total = wait_text(&client, ".summary h2", |t| t.contains("alerts over time")).await;
    assert!(
        severities.len() <= before.len() && !total.starts_with(&format!("{} ", rows.len())),
        "{total}"
    );

    // The exec alert shows the command and the user's context timeline.
    client
        .goto(&format!("{base}/#/alerts?rule=pod-exec-attach&q=mallory"))
        .await
        .expect("open filter");
    click(&client, "#alert-list tbody tr .rule-title").await;
    let command = wait_text(&client, "#exec-command", |t| !t.is_empty()).await;
    assert!(
        command.contains("sh") || command.contains("bash"),
        "{command}"
    );
    let context = wait_text(&client, "#context-timeline", |t| t.contains("exec")).await;
    assert!(context.contains("get"), "{context}");
    let flagged = texts(&client, "#context-timeline tr.alerting").await;
    assert!(!flagged.is_empty(), "the alerting requests are marked");
    let heading = texts(&client, ".view-alert h2").await.join("\n");
    assert!(heading.contains("mallory@example.com"), "{heading}");
    screenshot(&client, "alert.png").await;
    let alert_url = client.current_url().await.expect("url").to_string();

    // A pivot to the source IP lists that address's events.
    let pivot = client
        .find(Locator::LinkText("same source IP"))
        .await
        .expect("pivot link");
    pivot.click().await.expect("pivot");
    let chips = wait_text(&client, "#explore-chips", |t| t.contains("source_ip")).await;
    assert!(chips.contains("198.51.100.7"), "{chips}");
    wait_text(&client, "#explore-events", |t| t.contains("198.51.100.7")).await;
    let ips: Vec<String> = texts(&client, "#explore-events tbody tr td:nth-child(9)").await;
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| ip == "198.51.100.7"),
        "{ips:?}"
    );
    let facets = texts(&client, "#facets .facet").await.join("\n");
    assert!(facets.contains("mallory@example.com"), "{facets}");
    screenshot(&client, "explore.png").await;

    // Resolving it survives a restart of the server.
    client.goto(&alert_url).await.expect("back to the alert");
    click(&client, "#triage-status option[value=resolved]").await;
    type_into(&client, "#triage-assignee", "alice").await;
    type_into(
        &client,
        "#triage-note",
        "contractor offboarded; token revoked",
    )
    .await;
    click(&client, "#triage-save").await;
    wait_text(&client, "#triage-message", |t| t.contains("Saved")).await;
    assert_eq!(server.terminate().code(), Some(0));
    let mut server = Server::start_on(&listen, &data, &[], &env);
    client.goto(&alert_url).await.expect("reload after restart");
    client.refresh().await.expect("refresh");
    let status = wait_text(&client, "#alert-status", |t| !t.is_empty()).await;
    assert_eq!(status, "resolved");
    let history = wait_text(&client, "#triage-history", |t| !t.is_empty()).await;
    assert!(history.contains("ops: resolved → alice"), "{history}");
    let resolved = crate::query(
        &data,
        "SELECT t.status, t.changed_by, a.rule_id FROM triage t JOIN alerts a USING (alert_id)",
    );
    server.kill();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0]["rule_id"], "pod-exec-attach");
    let mut server = Server::start_on(&listen, &data, &[], &env);

    // The SQL page runs a query and shows the table.
    client
        .goto(&format!("{base}/#/sql"))
        .await
        .expect("open sql");
    type_into(
        &client,
        "#sql-editor",
        "SELECT verb, count(*) AS n FROM events GROUP BY verb ORDER BY n DESC",
    )
    .await;
    click(&client, "#sql-run").await;
    let status = wait_text(&client, "#sql-status", |t| t.contains("rows in")).await;
    assert!(status.contains("ms"), "{status}");
    let cells = texts(&client, "#sql-result tbody tr td:first-child").await;
    assert!(cells.iter().any(|v| v == "get"), "{cells:?}");
    wait_text(&client, "#sql-columns", |t| t.contains("exec_command")).await;
    screenshot(&client, "sql.png").await;

    // The rules page lists the pack with alert counts; its health part reads the server's figures.
    client
        .goto(&format!("{base}/#/rules?since="))
        .await
        .expect("open rules");
    let health = wait_text(&client, "#health", |t| t.contains("ready")).await;
    assert!(health.contains("write-ahead log"), "{health}");
    let listed = wait_text(&client, ".view-rules table", |t| {
        t.contains("pod-exec-attach")
    })
    .await;
    assert!(listed.contains("exec-from-public-ip"), "{listed}");
    let rule_rows = texts(&client, ".view-rules table tbody tr").await;
    assert!(rule_rows.len() >= 100, "{} rules listed", rule_rows.len());

    // Values from the hostile event are shown as text, and none of its script ran.
    client
        .goto(&format!("{base}/#/alerts?q=eve"))
        .await
        .expect("open hostile");
    let list = wait_text(&client, "#alert-list", |t| t.contains("<script>")).await;
    assert!(list.contains("onerror"), "{list}");
    click(&client, "#alert-list tbody tr .rule-title").await;
    let who = wait_text(&client, "#event", |t| t.contains("<img src=x")).await;
    assert!(who.contains("<script>window.__pwned=1</script>"), "{who}");
    let ran = client
        .execute(
            "return [typeof window.__pwned, document.querySelectorAll('script').length, \
             document.querySelectorAll('img').length]",
            vec![],
        )
        .await
        .expect("execute");
    assert_eq!(ran, serde_json::json!(["undefined", 1, 0]));

    // A token with only the query scope reads but cannot triage.
    let reader = client_for(&base, QUERY_ONLY);
    let id = alert_url
        .split("#/alert/")
        .nth(1)
        .and_then(|s| s.split('?').next())
        .expect("alert id in the URL");
    let refused = reader
        .patch(format!("{base}/v1/alerts/{id}"))
        .json(&serde_json::json!({"status": "open"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(refused.status(), 403);

    client.close().await.expect("close the browser");
    server.kill();
}

fn client_for(base: &str, token: &str) -> reqwest::Client {
    let _ = base;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}
