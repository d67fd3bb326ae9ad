#!/usr/bin/env python3
"""auditlake against DuckDB on the same generated audit traffic, in one run.

Run through benches/compare.sh, which builds auditlake and installs DuckDB first. Every figure
is measured on this machine now: CPU seconds and peak RSS of each child process come from
wait4(2), wall times from a monotonic clock.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

QUERIES = [
    (
        "count of pods/exec",
        "SELECT count(*) AS n FROM events WHERE resource = 'pods' AND subresource = 'exec'",
        "SELECT count(*) AS n FROM {src} WHERE objectRef.resource = 'pods' "
        "AND objectRef.subresource = 'exec'",
    ),
    (
        "top 10 users by 403s",
        "SELECT user_name, count(*) AS n FROM events WHERE response_code = 403 "
        "GROUP BY user_name ORDER BY n DESC, user_name LIMIT 10",
        "SELECT \"user\".username AS user_name, count(*) AS n FROM {src} "
        "WHERE responseStatus.code = 403 GROUP BY 1 ORDER BY n DESC, user_name LIMIT 10",
    ),
    (
        "top service accounts listing secrets",
        "SELECT user_name, count(*) AS n FROM events WHERE verb = 'list' AND resource = 'secrets' "
        "AND user_name LIKE 'system:serviceaccount:%' GROUP BY user_name "
        "ORDER BY n DESC, user_name LIMIT 10",
        "SELECT \"user\".username AS user_name, count(*) AS n FROM {src} WHERE verb = 'list' "
        "AND objectRef.resource = 'secrets' AND \"user\".username LIKE 'system:serviceaccount:%' "
        "GROUP BY 1 ORDER BY n DESC, user_name LIMIT 10",
    ),
]

DUCKDB_JSON = "read_json_auto('{path}', format = 'newline_delimited', sample_size = -1)"


Run = namedtuple("Run", "out err wall cpu rss")


def measured(cmd, env=None):
    """Runs cmd with stdout and stderr captured; returns a Run (wall s, cpu s, peak RSS MiB)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({code}):\n{err.decode()[-4000:]}")
    return Run(out, err.decode(), wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def duckdb(sql, db=None, threads=None):
    """One DuckDB statement in its own Python process; returns (rows, wall s, cpu s, RSS MiB).

    The wall and CPU time are the statement's own (import and connect excluded); RSS is the
    process's peak."""
    threads_sql = f"con.execute('SET threads = {threads}')\n" if threads else ""
    script = (
        "import duckdb, json, resource, sys, time\n"
        "con = duckdb.connect()\ncon.execute('SET enable_progress_bar = false')\n" + threads_sql +
        "r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.monotonic()\n"
        "rows = con.execute(sys.argv[1]).fetchall()\n"
        "t1 = time.monotonic(); r1 = resource.getrusage(resource.RUSAGE_SELF)\n"
        "cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)\n"
        "print(json.dumps({'rows': [list(r) for r in rows], 'wall': t1 - t0, 'cpu': cpu}, default=str))\n"
    )
    run = measured([sys.executable, "-c", script, sql])
    result = json.loads(run.out.splitlines()[-1])
    return result["rows"], result["wall"], result["cpu"], run.rss


def query_time(run):
    """The query's own time, as `auditlake query --timing` prints it on stderr."""
    return float(run.err.strip().removeprefix("time: ").removesuffix(" s"))


def lake_bytes(data_dir, table):
    return sum(p.stat().st_size for p in (Path(data_dir) / table).rglob("*.parquet"))


def generate(args, events, path):
    if path.exists() and path.stat().st_size > 0:
        return
    tmp = path.with_suffix(".partial")
    measured([args.examples / "generate", str(events), "--seed", str(args.seed), "--out", str(tmp)])
    tmp.rename(path)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--query-events", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--auditlake", type=Path, required=True)
    parser.add_argument("--examples", type=Path, required=True)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--baseline", type=Path,
                        help="an earlier build's auditlake binary, measured in turns with this one")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    table = []  # (figure, auditlake, duckdb, ratio, target, met)
    against = []  # (figure, this build, baseline): lower is better for each

    n = args.events
    small = args.work / f"traffic-{args.seed}-{n}.ndjson"
    print(f"generating {n:,} events ...", file=sys.stderr)
    generate(args, n, small)
    size = small.stat().st_size
    print(f"  {size / n:.0f} bytes per event", file=sys.stderr)

    print("decode + normalize on one thread ...", file=sys.stderr)
    decode = json.loads(measured([args.examples / "decode_file", str(small)]).out)
    assert decode["events"] == n and decode["rejected"] == 0, decode
    table.append(("decode+normalize, events/s per core", f"{decode['events_per_s']:,.0f}", "", "",
                  "≥ 450,000", decode["events_per_s"] >= 450_000))
    # What any decoder of this input pays before it keeps a value: the floor under the figure above.
    assert decode["json_checked"] == n, decode
    table.append(("JSON syntax check alone (serde_json, nothing kept), events/s per core",
                  f"{decode['json_check_events_per_s']:,.0f}", "", "", "", None))

    # Best of three runs each, with and without rules, alternating: single runs on a shared
    # 2-core VM vary by about ±0.5 CPU-s, which alone moved the rules' share by ten points.
    env = dict(os.environ, AUDITLAKE_LOG="warn")
    data = args.work / "lake-small"
    bare = args.work / "lake-small-norules"
    base_data = args.work / "lake-small-baseline"
    cpu = cpu_bare = wall = base_cpu = base_wall = float("inf")
    rss = base_rss = 0
    for run in range(3):
        print(f"auditlake replay, rule pack on, then off ({run + 1}/3) ...", file=sys.stderr)
        run = measured(
            [args.auditlake, "replay", "--data-dir", str(fresh(data)), str(small)], env)
        cpu, wall, rss = min(cpu, run.cpu), min(wall, run.wall), max(rss, run.rss)
        run = measured(
            [args.auditlake, "replay", "--no-rules", "--data-dir", str(fresh(bare)), str(small)],
            env)
        cpu_bare = min(cpu_bare, run.cpu)
        if args.baseline:
            run = measured(
                [args.baseline, "replay", "--data-dir", str(fresh(base_data)), str(small)], env)
            base_cpu, base_wall = min(base_cpu, run.cpu), min(base_wall, run.wall)
            base_rss = max(base_rss, run.rss)
    shutil.rmtree(bare, ignore_errors=True)
    shutil.rmtree(base_data, ignore_errors=True)
    if args.baseline:
        against.append((f"replay of {n / 1e6:g}M events, CPU-s", cpu, base_cpu))
        against.append((f"replay of {n / 1e6:g}M events, wall s", wall, base_wall))
        against.append((f"replay of {n / 1e6:g}M events, peak RSS MiB", rss, base_rss))
    replay_rate = n / cpu
    rule_share = max(0.0, (cpu - cpu_bare) / cpu)

    print("round trip check ...", file=sys.stderr)
    trip = json.loads(measured([args.examples / "roundtrip", str(small), str(data), "997"]).out)

    print("DuckDB NDJSON -> Parquet ...", file=sys.stderr)
    duck_parquet = args.work / "duckdb-small.parquet"
    duck_parquet.unlink(missing_ok=True)
    _, dwall, dcpu, drss = duckdb(
        f"COPY (SELECT * FROM {DUCKDB_JSON.format(path=small)}) TO '{duck_parquet}' (FORMAT parquet)")
    duck_rate = n / dcpu
    table.append(("replay end to end (decode, rules, Parquet), events per CPU-second",
                  f"{replay_rate:,.0f}", f"{duck_rate:,.0f}", f"{replay_rate / duck_rate:.2f}×",
                  "≥ 200,000 and ≥ 3× DuckDB",
                  replay_rate >= 200_000 and replay_rate >= 3 * duck_rate))
    table.append(("replay wall time, s", f"{wall:.1f}", f"{dwall:.1f}", "", "", None))
    table.append(("rule evaluation, share of ingest CPU", f"{rule_share:.0%}", "", "", "≤ 20%",
                  rule_share <= 0.20))
    events_bytes = lake_bytes(data, "events")
    per_million = events_bytes * 1_000_000 / n / 1e6
    duck_bytes = duck_parquet.stat().st_size * 1_000_000 / n / 1e6
    table.append(("storage, MB per 1M events (bodies kept)", f"{per_million:.1f}",
                  f"{duck_bytes:.1f}", f"{per_million / duck_bytes:.2f}", "≤ 60", per_million <= 60))
    table.append(("ingest peak RSS, MiB", f"{rss:.0f}", f"{drss:.0f}", "", "≤ 256", rss <= 256))
    table.append(("round trip (stored/distinct of events; sampled rows, values compared)",
                  f"{trip['stored']:,}/{trip['distinct']:,} of {trip['events']:,}; "
                  f"{trip['sampled']} rows, {trip['values_compared']:,} values, "
                  f"{len(trip['mismatches'])} differ", "", "", "all equal",
                  trip["stored"] == trip["distinct"] == trip["events"] and not trip["mismatches"]))
    if trip["mismatches"]:
        print("\n".join(trip["mismatches"]), file=sys.stderr)

    if not args.skip_queries:
        q = args.query_events
        big = args.work / f"traffic-{args.seed}-{q}.ndjson"
        print(f"generating {q:,} events ...", file=sys.stderr)
        generate(args, q, big)
        # Replayed every run: the lake is what this build writes, and the replay's peak RSS shows
        # whether ingest memory stays bounded at ten times the input.
        print(f"auditlake replay of {q:,} events ...", file=sys.stderr)
        lake = fresh(args.work / f"lake-{args.seed}-{q}")
        big_run = measured([args.auditlake, "replay", "--data-dir", str(lake), str(big)], env)
        big_cpu, big_rss = big_run.cpu, big_run.rss
        table.append((f"ingest peak RSS replaying {q / 1e6:.0f}M events, MiB", f"{big_rss:.0f}",
                      "", "", "≤ 256", big_rss <= 256))
        table.append((f"replay of {q / 1e6:.0f}M events, events per CPU-second",
                      f"{q / big_cpu:,.0f}", "", "", "", None))
        if args.baseline:
            print(f"baseline replay of {q:,} events ...", file=sys.stderr)
            base_lake = fresh(args.work / f"lake-{args.seed}-{q}-baseline")
            measured([args.baseline, "replay", "--data-dir", str(base_lake), str(big)], env)
        big_parquet = args.work / f"duckdb-{args.seed}-{q}.parquet"
        if not big_parquet.exists():
            print(f"DuckDB conversion of {q:,} events ...", file=sys.stderr)
            tmp = args.work / "duckdb-partial.parquet"
            duckdb(f"COPY (SELECT * FROM {DUCKDB_JSON.format(path=big)}) TO '{tmp}' (FORMAT parquet)")
            tmp.rename(big_parquet)
        worst_rss = 0
        for title, ours, theirs in QUERIES:
            print(f"query: {title} ...", file=sys.stderr)
            # Best of seven for the Parquet engines (warm page cache for both), their runs taken
            # in turns so that a slow spell of the machine falls on both; one run over JSON.
            # Like for like: auditlake's own time (`--timing`: planning, opening the lake's hour
            # files, reading, computing) against DuckDB's statement in a process it has started.
            # The whole `auditlake query` process (starting it, printing) is shown beside it.
            best = best_process = duck_best = base_best = float("inf")
            base_rows = None
            for _ in range(7):
                run = measured([args.auditlake, "query", "--timing", "--format", "json",
                                "--data-dir", str(lake), ours])
                worst_rss = max(worst_rss, run.rss)
                best = min(best, query_time(run))
                best_process = min(best_process, run.wall)
                ours_rows = [list(r.values()) for r in json.loads(run.out)]
                rows, dwall, _, _ = duckdb(theirs.format(src=f"read_parquet('{big_parquet}')"))
                duck_best = min(duck_best, dwall)
                if args.baseline:
                    run = measured([args.baseline, "query", "--timing", "--format", "json",
                                    "--data-dir", str(base_lake), ours])
                    base_best = min(base_best, query_time(run))
                    base_rows = [list(r.values()) for r in json.loads(run.out)]
            if args.baseline:
                if base_rows != ours_rows:
                    print(f"  the baseline answers {base_rows}, this build {ours_rows}",
                          file=sys.stderr)
                against.append((f"query over {q / 1e6:.0f}M: {title}, s", best, base_best))
            json_rows, jwall, _, _ = duckdb(theirs.format(src=DUCKDB_JSON.format(path=big)))
            same = ours_rows == rows == json_rows
            if not same:
                print(f"  answers differ:\n  auditlake {ours_rows}\n  duckdb {rows}\n  json {json_rows}",
                      file=sys.stderr)
            table.append((f"query over {q / 1e6:.0f}M: {title}, s (whole process in brackets)",
                          f"{best:.3f} ({best_process:.2f})",
                          f"{duck_best:.3f} (Parquet) / {jwall:.1f} (JSON)",
                          f"{best / duck_best:.2f} / {jwall / best_process:.0f}× faster",
                          "≤ 1.0 and ≥ 10× faster than JSON",
                          same and best <= duck_best and jwall >= 10 * best_process))
        table.append(("query peak RSS, MiB", f"{worst_rss:.0f}", "", "", "≤ 256", worst_rss <= 256))

    print()
    print(f"{n:,} events ({size / n:.0f} B each), seed {args.seed}, {os.cpu_count()} cores")
    print()
    print("| figure | auditlake | DuckDB | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for figure, ours, theirs, ratio, target, met in table:
        mark = "" if met is None else ("yes" if met else "**no**")
        print(f"| {figure} | {ours} | {theirs} | {ratio} | {target} | {mark} |")
    if against:
        print()
        print(f"Against the baseline build {args.baseline} (measured in turns with this one):")
        print()
        print("| figure | this build | baseline | ratio |")
        print("| --- | --- | --- | --- |")
        for figure, ours, theirs in against:
            print(f"| {figure} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
