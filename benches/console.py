"""Times the console's HTTP calls against a real `auditlake serve`; see benches/console.sh."""

import argparse
import contextlib
import datetime
import json
import os
import statistics
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

TOKEN = "bench-console-token-0123456789"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--auditlake", required=True)
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    with serving(args.auditlake, args.lake, f"bench query,triage {TOKEN}") as base:
        run(base)


@contextlib.contextmanager
def serving(auditlake, lake, tokens, env=None):
    """`auditlake serve` over `lake` on a free loopback port with `tokens` (AUDITLAKE_TOKENS),
    for the duration of the `with`; yields its base URL."""
    env = dict(env or os.environ, AUDITLAKE_TOKENS=tokens)
    server = subprocess.Popen(
        [auditlake, "--data-dir", str(lake), "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        base = None
        for line in server.stderr:
            if line.startswith("auditlake: listening on "):
                base = line.split()[-1]
                break
        if base is None:
            raise SystemExit("the server did not start")
        yield base
    finally:
        server.terminate()
        server.wait()


def call(base, path, params=None, body=None):
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{url}: {e.code} {e.read().decode(errors='replace')}")
    return (time.perf_counter() - started) * 1000, payload


def sql(base, text):
    return call(base, "/v1/query", body={"sql": text})[1]["rows"]


def timed(name, calls):
    """`calls` is a list of (path, params): a page's calls, made one after the other."""
    runs = []
    for _ in range(10):
        runs.append(sum(call(BASE, path, params)[0] for path, params in calls))
    warm = runs[1:]
    print(f"| {name} | {runs[0]:.0f} | {statistics.median(warm):.0f} | {max(warm):.0f} |")


def run(base):
    global BASE
    BASE = base
    total = sql(base, "SELECT count(*) AS n FROM events")[0]["n"]
    alerts = sql(base, "SELECT count(*) AS n FROM alerts")[0]["n"]
    newest = sql(base, "SELECT max(event_time) AS t FROM events")[0]["t"]
    print(f"lake: {total} events, {alerts} alerts, newest event {newest}\n")
    print("| console call | cold ms | warm median ms | warm max ms |")
    print("| --- | --- | --- | --- |")
    timed("alerts view: summary + newest 100, all time", [("/v1/alerts/summary", None), ("/v1/alerts", None)])
    end = datetime.datetime.fromisoformat(newest.replace("Z", "+00:00"))
    day = (end - datetime.timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    timed("alerts view, severity=high, the lake's last 24 h", [
        ("/v1/alerts/summary", {"severity": "high", "since": day}),
        ("/v1/alerts", {"severity": "high", "since": day})])
    timed("alerts view, text search `exec`", [
        ("/v1/alerts/summary", {"q": "exec"}), ("/v1/alerts", {"q": "exec"})])
    picks = {
        "newest alert": sql(base, "SELECT alert_id, event_time FROM alerts ORDER BY event_time DESC LIMIT 1"),
        "an exec alert": sql(base, "SELECT alert_id, event_time FROM alerts WHERE category = 'exec' ORDER BY event_time DESC LIMIT 1"),
        "an alert of the user with the most alerts": sql(base, """
            SELECT alert_id, event_time FROM alerts WHERE user_name = (
              SELECT user_name FROM alerts GROUP BY user_name ORDER BY count(*) DESC LIMIT 1)
            ORDER BY event_time DESC LIMIT 1"""),
    }
    for name, rows in picks.items():
        if not rows:
            print(f"| alert detail, {name} | none in the lake | | |")
            continue
        alert = rows[0]
        path = "/v1/alerts/" + urllib.parse.quote(alert["alert_id"])
        _, detail = call(base, path, {"time": alert["event_time"]})
        context = detail["context"]
        label = (f"alert detail + ±30 min context, {name} ({len(context['events'])}"
                 f"{'+' if context['truncated'] else ''} requests)")
        timed(label, [(path, {"time": alert["event_time"]})])
    for hours in (1, 24):
        since = (end - datetime.timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
        timed(f"explore: {hours} h with facets and histogram", [("/v1/events", {"since": since})])


BASE = ""

if __name__ == "__main__":
    main()
