#!/usr/bin/env python3
"""A month of a big cluster: lakes of 10M and 100M generated events (about 3.3M a day), built by
streaming the generator straight into `auditlake replay -` (nothing on disk but the lake), then
the investigator queries unbounded and bounded to one day, the alerts view of a week over HTTP
and a backtest of the whole rule pack over one day, on both; prints how each time grows.

Run through benches/month.sh, which builds auditlake and the generator first.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import QUERIES, Run, lake_bytes, measured, query_time  # noqa: E402
from console import serving  # noqa: E402

# The generator's clock starts at 2025-11-03T00:00:00Z; the second day is whole in every lake.
DAY = ("2025-11-04T00:00:00Z", "2025-11-05T00:00:00Z")
WEEK = ("2025-11-03T00:00:00Z", "2025-11-10T00:00:00Z")
TOKEN = "bench-month-token-0123456789"


def build(args, events, env):
    """The lake of `events` events, made once (`.complete` marks it, `.replay.json` keeps the
    replay's figures); the replay's figures, or None when the lake was made by a run that did
    not keep them."""
    lake = args.work / f"month-{args.seed}-{events}"
    if (lake / ".complete").exists():
        kept = lake / ".replay.json"
        return lake, (Run(None, "", **json.loads(kept.read_text())) if kept.exists() else None)
    subprocess.run(["rm", "-rf", str(lake)], check=True)
    print(f"streaming {events:,} generated events into replay ...", file=sys.stderr)
    gen = subprocess.Popen([args.examples / "generate", str(events), "--seed", str(args.seed),
                            "--per-day", str(args.per_day)], stdout=subprocess.PIPE)
    run = measured([args.auditlake, "replay", "--data-dir", str(lake), "-"], env, stdin=gen.stdout)
    if gen.wait() != 0:
        sys.exit("generate failed")
    (lake / ".replay.json").write_text(json.dumps({"wall": run.wall, "cpu": run.cpu, "rss": run.rss}))
    (lake / ".complete").touch()
    return lake, run


def bounded(sql):
    """`sql` with its WHERE clause limited to the one day DAY."""
    since, until = DAY
    return sql.replace("WHERE ", f"WHERE event_time >= TIMESTAMP '{since}' AND "
                                 f"event_time < TIMESTAMP '{until}' AND ", 1)


def best_query(args, lake, sql, runs=5):
    """The query's own time (`--timing`), best of `runs`."""
    best = float("inf")
    for _ in range(runs):
        run = measured([args.auditlake, "query", "--timing", "--format", "json", "--data-dir",
                        str(lake), sql])
        best = min(best, query_time(run))
    return best


def http_best(base, path, params, runs=5):
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    best, payload = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            payload = json.load(response)
        best = min(best, time.perf_counter() - started)
    return best, payload


def alerts_week(args, lake):
    """The console's alerts view for a week: the summary (counts by rule, histogram) and the
    newest 100, each best of five, against a running server."""
    env = dict(os.environ, AUDITLAKE_LOG="warn")
    with serving(args.auditlake, lake, f"bench query {TOKEN}", env) as base:
        since, until = WEEK
        summary, payload = http_best(base, "/v1/alerts/summary", {"since": since, "until": until})
        listed, _ = http_best(base, "/v1/alerts", {"since": since, "until": until, "limit": 100})
        return summary, listed, payload["total"]


def backtest_day(args, lake):
    since, until = DAY
    run = measured([args.auditlake, "--data-dir", str(lake), "rules", "backtest", "--since", since,
                    "--until", until, "--format", "json"])
    return run, len(json.loads(run.out))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000_000)
    parser.add_argument("--small-events", type=int, default=10_000_000)
    parser.add_argument("--per-day", type=int, default=3_300_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--auditlake", type=Path, required=True)
    parser.add_argument("--examples", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, AUDITLAKE_LOG="warn")
    sizes = [args.small_events, args.events]
    figures = {}  # name -> [value per size]
    for events in sizes:
        lake, run = build(args, events, env)
        def put(name, value):
            figures.setdefault(name, []).append(value)
        if run:
            put("replay, wall s", f"{run.wall:.0f}")
            put("replay, events per CPU-second", f"{events / run.cpu:,.0f}")
            put("replay, peak RSS MiB", f"{run.rss:.0f}")
        else:
            for name in ("replay, wall s", "replay, events per CPU-second", "replay, peak RSS MiB"):
                put(name, "(built before)")
        put("lake: events, GB", f"{lake_bytes(lake, 'events') / 1e9:.2f}")
        put("lake: alerts, GB", f"{lake_bytes(lake, 'alerts') / 1e9:.3f}")
        for title, sql, _ in QUERIES:
            print(f"{events:,}: {title} ...", file=sys.stderr)
            put(f"{title}, all, s", best_query(args, lake, sql))
            put(f"{title}, one day, s", best_query(args, lake, bounded(sql)))
        print(f"{events:,}: alerts view of a week ...", file=sys.stderr)
        summary, listed, total = alerts_week(args, lake)
        put("/v1/alerts/summary of a week, s", summary)
        put("/v1/alerts of a week, newest 100, s", listed)
        put("alerts in that week", f"{total:,}")
        print(f"{events:,}: backtest of one day ...", file=sys.stderr)
        run, raised = backtest_day(args, lake)
        put("backtest of the pack over one day, wall s", run.wall)
        put("backtest, CPU s / peak RSS MiB", f"{run.cpu:.0f} / {run.rss:.0f}")
        put("backtest, alerts raised", f"{raised:,}")

    small, big = (f"{n / 1e6:g}M" for n in sizes)
    print()
    print(f"{args.per_day:,} events a day, seed {args.seed}, {os.cpu_count()} cores")
    print()
    print(f"| figure | {small} events | {big} events | growth |")
    print("| --- | --- | --- | --- |")
    for name, (a, b) in figures.items():
        if isinstance(a, float):
            print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.2f}× |")
        else:
            print(f"| {name} | {a} | {b} | |")


if __name__ == "__main__":
    main()
