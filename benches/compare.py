#!/usr/bin/env python3
"""auditlake against DuckDB and ClickHouse (chdb) on the same generated audit traffic, in one run.

Run through benches/compare.sh, which builds auditlake and installs DuckDB and chdb first. Every figure
is measured on this machine now: CPU seconds and peak RSS of each child process come from
wait4(2), wall times from a monotonic clock.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
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


# Runs argv[2:] in a child of this small process and writes its wall time, CPU seconds and peak
# RSS (KiB) to the file descriptor argv[1]. A child's peak RSS starts at that of the process it was
# forked from (Linux keeps the larger of the two across exec): forked straight from this script,
# which holds a backtest's JSON or a table's answers, every later child would report at least
# this script's own peak.
LAUNCHER = (
    "import os, sys, time\n"
    "report = int(sys.argv[1])\n"
    "started = time.monotonic()\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.close(report)\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "figures = f'{time.monotonic() - started} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}'\n"
    "os.write(report, figures.encode())\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def measured(cmd, env=None, stdin=None):
    """Runs cmd with stdout and stderr captured; returns a Run (wall s, cpu s, peak RSS MiB), as
    measured by a small launcher process (see LAUNCHER) so that this script's memory is not
    counted. The launcher's own footprint (about 10 MiB) is the floor of the RSS figure."""
    report, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(write_end), *map(str, cmd)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, stdin=stdin,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    if stdin is not None:
        stdin.close()
    out, err = proc.communicate()
    with os.fdopen(report, "rb") as figures:
        reported = figures.read().decode().split()
    if proc.returncode != 0 or len(reported) != 3:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err.decode()[-4000:]}")
    wall, cpu, rss_kib = map(float, reported)
    return Run(out, err.decode(), wall, cpu, rss_kib / 1024)


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


# The statement's settings for ClickHouse: numbers as JSON numbers, and schema inference over the
# whole input as DuckDB's sample_size = -1 does (past the rows it looked at, ClickHouse would skip
# the fields it did not see, and the Parquet would not hold the same data).
CH_OUTPUT = "output_format_json_quote_64bit_integers = 0"
CH_INFER_ALL = ("input_format_max_rows_to_read_for_schema_inference = 1000000000, "
                "input_format_max_bytes_to_read_for_schema_inference = 1000000000000")


def clickhouse(sql, session=None):
    """One chdb statement in its own Python process (in the persistent `session` directory when
    given, for MergeTree tables); returns (rows, wall s, cpu s, RSS MiB) as duckdb() does."""
    run_with = ("from chdb import session\nrun = session.Session(sys.argv[2]).query\n" if session
                else "run = chdb.query\n")
    script = (
        "import chdb, json, resource, sys, time\n" + run_with +
        "r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.monotonic()\n"
        "res = run(sys.argv[1], 'JSONCompact')\n"
        "t1 = time.monotonic(); r1 = resource.getrusage(resource.RUSAGE_SELF)\n"
        "cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)\n"
        "out = res.bytes()\nrows = json.loads(out)['data'] if out.strip() else []\n"
        "print(json.dumps({'rows': rows, 'wall': t1 - t0, 'cpu': cpu}))\n"
    )
    run = measured([sys.executable, "-c", script, sql] + ([str(session)] if session else []))
    result = json.loads(run.out.splitlines()[-1])
    return result["rows"], result["wall"], result["cpu"], run.rss


def query_time(run):
    """The query's own time, as `auditlake query --timing` prints it on stderr."""
    return float(run.err.strip().removeprefix("time: ").removesuffix(" s"))


def lake_bytes(data_dir, table):
    return sum(p.stat().st_size for p in (Path(data_dir) / table).rglob("*.parquet"))


def generate(args, events, path, ids="stable"):
    if path.exists() and path.stat().st_size > 0:
        return
    tmp = path.with_suffix(".partial")
    measured([args.examples / "generate", str(events), "--seed", str(args.seed), "--ids", ids,
              "--out", str(tmp)])
    tmp.rename(path)


def storage_per_event_ids(args, env, n, table):
    """Storage on traffic whose user IDs, access-key IDs and token IDs vary per event: the
    high-entropy kind, where columnar stores that split nested fields gain on JSON text."""
    varied = args.work / f"traffic-{args.seed}-{n}-per-event-ids.ndjson"
    print(f"generating {n:,} events with per-event IDs ...", file=sys.stderr)
    generate(args, n, varied, ids="per-event")
    lake = fresh(args.work / "lake-per-event-ids")
    measured([args.auditlake, "replay", "--data-dir", str(lake), str(varied)], env)
    ours = lake_bytes(lake, "events")
    duck_parquet = args.work / "duckdb-per-event-ids.parquet"
    duck_parquet.unlink(missing_ok=True)
    duckdb(f"COPY (SELECT * FROM {DUCKDB_JSON.format(path=varied)}) TO '{duck_parquet}' "
           "(FORMAT parquet)")
    ch_parquet = args.work / "clickhouse-per-event-ids.parquet"
    ch_parquet.unlink(missing_ok=True)
    clickhouse(f"INSERT INTO FUNCTION file('{ch_parquet}', Parquet) "
               f"SELECT * FROM file('{varied}', JSONEachRow) SETTINGS {CH_INFER_ALL}")
    duck, ch = duck_parquet.stat().st_size, ch_parquet.stat().st_size
    per = lambda b: f"{b * 1_000_000 / n / 1e6:.1f}"
    table.append((f"storage with per-event IDs ({varied.stat().st_size / n:.0f} B each), MB per 1M",
                  per(ours), per(duck), per(ch), f"{ours / duck:.2f} of DuckDB",
                  "≤ 1.0 of DuckDB", ours <= duck))
    for path in (duck_parquet, ch_parquet):
        path.unlink(missing_ok=True)
    shutil.rmtree(lake, ignore_errors=True)


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    return path


def generate_compressed(args, events, path):
    """`events` generated events as zstd-compressed NDJSON (DuckDB and ClickHouse read it as it
    is; 10M events are 12.7 GB uncompressed)."""
    if path.exists() and path.stat().st_size > 0:
        return
    tmp = path.with_suffix(".partial")
    with open(tmp, "wb") as out:
        gen = subprocess.Popen([args.examples / "generate", str(events), "--seed", str(args.seed)],
                               stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-1", "-T0", "-c"], stdin=gen.stdout, stdout=out, check=True)
        if gen.wait() != 0:
            sys.exit("generate failed")
    tmp.rename(path)


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
    table = []  # (figure, auditlake, duckdb, clickhouse, ratio, target, met)
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
                  "", "≥ 450,000", decode["events_per_s"] >= 450_000))
    # What any decoder of this input pays before it keeps a value: the floor under the figure above.
    assert decode["json_checked"] == n, decode
    table.append(("JSON syntax check alone (serde_json, nothing kept), events/s per core",
                  f"{decode['json_check_events_per_s']:,.0f}", "", "", "", "", None))

    # Best of three runs each, alternating: on every core (the default), on one thread, and on
    # one thread without rules (the rules' share). Single runs on a shared 2-core VM vary by
    # about ±0.5 CPU-s, which alone moved the rules' share by ten points.
    env = dict(os.environ, AUDITLAKE_LOG="warn")
    data = args.work / "lake-small"
    one = args.work / "lake-small-one-thread"
    bare = args.work / "lake-small-norules"
    base_data = args.work / "lake-small-baseline"
    inf = float("inf")
    cpu = wall = cpu_one = wall_one = cpu_bare = base_cpu = base_wall = inf
    rss = rss_one = base_rss = 0
    for run in range(3):
        print(f"auditlake replay on every core, on one thread, without rules ({run + 1}/3) ...",
              file=sys.stderr)
        run = measured(
            [args.auditlake, "replay", "--data-dir", str(fresh(data)), str(small)], env)
        cpu, wall, rss = min(cpu, run.cpu), min(wall, run.wall), max(rss, run.rss)
        run = measured([args.auditlake, "replay", "--threads", "1", "--data-dir", str(fresh(one)),
                        str(small)], env)
        cpu_one, wall_one, rss_one = min(cpu_one, run.cpu), min(wall_one, run.wall), max(rss_one, run.rss)
        run = measured([args.auditlake, "replay", "--threads", "1", "--no-rules", "--data-dir",
                        str(fresh(bare)), str(small)], env)
        cpu_bare = min(cpu_bare, run.cpu)
        if args.baseline:
            run = measured(
                [args.baseline, "replay", "--data-dir", str(fresh(base_data)), str(small)], env)
            base_cpu, base_wall = min(base_cpu, run.cpu), min(base_wall, run.wall)
            base_rss = max(base_rss, run.rss)
    for lake in (one, bare, base_data):
        shutil.rmtree(lake, ignore_errors=True)
    if args.baseline:
        against.append((f"replay of {n / 1e6:g}M events, CPU-s", cpu, base_cpu))
        against.append((f"replay of {n / 1e6:g}M events, wall s", wall, base_wall))
        against.append((f"replay of {n / 1e6:g}M events, peak RSS MiB", rss, base_rss))
    replay_rate = n / cpu
    rule_share = max(0.0, (cpu_one - cpu_bare) / cpu_one)

    print("round trip check ...", file=sys.stderr)
    trip = json.loads(measured([args.examples / "roundtrip", str(small), str(data), "997"]).out)

    print("DuckDB NDJSON -> Parquet ...", file=sys.stderr)
    duck_parquet = args.work / "duckdb-small.parquet"
    duck_parquet.unlink(missing_ok=True)
    _, dwall, dcpu, drss = duckdb(
        f"COPY (SELECT * FROM {DUCKDB_JSON.format(path=small)}) TO '{duck_parquet}' (FORMAT parquet)")
    print("ClickHouse (chdb) NDJSON -> Parquet ...", file=sys.stderr)
    ch_parquet = args.work / "clickhouse-small.parquet"
    ch_parquet.unlink(missing_ok=True)
    _, cwall, ccpu, crss = clickhouse(
        f"INSERT INTO FUNCTION file('{ch_parquet}', Parquet) "
        f"SELECT * FROM file('{small}', JSONEachRow) SETTINGS {CH_INFER_ALL}")
    duck_rate, ch_rate = n / dcpu, n / ccpu
    best_peer = max(duck_rate, ch_rate)
    table.append(("replay end to end (decode, rules, Parquet), events per CPU-second",
                  f"{replay_rate:,.0f}", f"{duck_rate:,.0f}", f"{ch_rate:,.0f}",
                  f"{replay_rate / best_peer:.2f}× the faster",
                  "≥ 200,000 and ≥ 3× the faster",
                  replay_rate >= 200_000 and replay_rate >= 3 * best_peer))
    table.append(("replay wall time, s (every core)", f"{wall:.2f}", f"{dwall:.1f}", f"{cwall:.1f}",
                  "", "", None))
    table.append(("replay wall time on every core / on one thread",
                  f"{wall:.2f} / {wall_one:.2f} s", "", "", f"{wall / wall_one:.2f}",
                  "≤ 0.6", wall <= 0.6 * wall_one))
    table.append(("replay on one thread, events per CPU-second", f"{n / cpu_one:,.0f}", "", "",
                  "", "", None))
    table.append(("rule evaluation, share of ingest CPU (one thread)", f"{rule_share:.0%}", "", "",
                  "", "≤ 20%", rule_share <= 0.20))
    events_bytes = lake_bytes(data, "events")
    per_million = events_bytes * 1_000_000 / n / 1e6
    duck_bytes = duck_parquet.stat().st_size * 1_000_000 / n / 1e6
    ch_bytes = ch_parquet.stat().st_size * 1_000_000 / n / 1e6
    table.append(("storage, MB per 1M events (bodies kept)", f"{per_million:.1f}",
                  f"{duck_bytes:.1f}", f"{ch_bytes:.1f}", f"{per_million / duck_bytes:.2f} of DuckDB",
                  "≤ 1.0 of DuckDB", per_million <= duck_bytes))
    table.append(("ingest peak RSS, MiB (every core / one thread)", f"{rss:.0f} / {rss_one:.0f}",
                  f"{drss:.0f}", f"{crss:.0f}", "", "≤ 256", rss <= 256))
    table.append(("round trip (stored/distinct of events; sampled rows, values compared)",
                  f"{trip['stored']:,}/{trip['distinct']:,} of {trip['events']:,}; "
                  f"{trip['sampled']} rows, {trip['values_compared']:,} values, "
                  f"{len(trip['mismatches'])} differ", "", "", "", "all equal",
                  trip["stored"] == trip["distinct"] == trip["events"] and not trip["mismatches"]))
    if trip["mismatches"]:
        print("\n".join(trip["mismatches"]), file=sys.stderr)
    ch_parquet.unlink(missing_ok=True)
    storage_per_event_ids(args, env, n, table)

    if not args.skip_queries:
        queries(args, env, table, against)

    print()
    print(f"{n:,} events ({size / n:.0f} B each), seed {args.seed}, {os.cpu_count()} cores")
    print()
    print("| figure | auditlake | DuckDB | ClickHouse | ratio | target | met |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for figure, ours, duck, ch, ratio, target, met in table:
        mark = "" if met is None else ("yes" if met else "**no**")
        print(f"| {figure} | {ours} | {duck} | {ch} | {ratio} | {target} | {mark} |")
    if against:
        print()
        print(f"Against the baseline build {args.baseline} (measured in turns with this one):")
        print()
        print("| figure | this build | baseline | ratio |")
        print("| --- | --- | --- | --- |")
        for figure, ours, theirs in against:
            print(f"| {figure} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |")


def queries(args, env, table, against):
    """The three investigator queries over `--query-events` events: auditlake's lake against
    DuckDB over its Parquet and ClickHouse over its Parquet and over its own MergeTree table."""
    q = args.query_events
    big = args.work / f"traffic-{args.seed}-{q}.ndjson.zst"
    print(f"generating {q:,} events (zstd) ...", file=sys.stderr)
    generate_compressed(args, q, big)
    # Replayed every run: the lake is what this build writes, and the replay's peak RSS shows
    # whether ingest memory stays bounded at ten times the input.
    print(f"auditlake replay of {q:,} events ...", file=sys.stderr)
    lake = fresh(args.work / f"lake-{args.seed}-{q}")
    unzip = subprocess.Popen(["zstd", "-dc", str(big)], stdout=subprocess.PIPE)
    big_run = measured([args.auditlake, "replay", "--data-dir", str(lake), "-"], env,
                       stdin=unzip.stdout)
    unzip.wait()
    table.append((f"ingest peak RSS replaying {q / 1e6:.0f}M events, MiB", f"{big_run.rss:.0f}",
                  "", "", "", "≤ 256", big_run.rss <= 256))
    table.append((f"replay of {q / 1e6:.0f}M events, events per CPU-second / wall s",
                  f"{q / big_run.cpu:,.0f} / {big_run.wall:.1f}", "", "", "", "", None))
    table.append((f"storage of {q / 1e6:.0f}M events, MB", f"{lake_bytes(lake, 'events') / 1e6:.0f}",
                  "", "", "", "", None))
    if args.baseline:
        print(f"baseline replay of {q:,} events ...", file=sys.stderr)
        base_lake = fresh(args.work / f"lake-{args.seed}-{q}-baseline")
        unzip = subprocess.Popen(["zstd", "-dc", str(big)], stdout=subprocess.PIPE)
        measured([args.baseline, "replay", "--data-dir", str(base_lake), "-"], env,
                 stdin=unzip.stdout)
        unzip.wait()
    duck_parquet = args.work / f"duckdb-{args.seed}-{q}.parquet"
    if not duck_parquet.exists():
        print(f"DuckDB conversion of {q:,} events ...", file=sys.stderr)
        tmp = args.work / "duckdb-partial.parquet"
        duckdb(f"COPY (SELECT * FROM {DUCKDB_JSON.format(path=big)}) TO '{tmp}' (FORMAT parquet)")
        tmp.rename(duck_parquet)
    ch_parquet = args.work / f"clickhouse-{args.seed}-{q}.parquet"
    if not ch_parquet.exists():
        print(f"ClickHouse conversion of {q:,} events ...", file=sys.stderr)
        tmp = args.work / "clickhouse-partial.parquet"
        clickhouse(f"INSERT INTO FUNCTION file('{tmp}', Parquet) "
                   f"SELECT * FROM file('{big}', JSONEachRow) "
                   f"SETTINGS {CH_INFER_ALL}, engine_file_truncate_on_insert = 1")
        tmp.rename(ch_parquet)
    # ClickHouse's best case: its own MergeTree table of the same rows, sorted by the columns the
    # queries filter on.
    merge_tree = args.work / f"clickhouse-{args.seed}-{q}-mergetree"
    if not (merge_tree / "loaded").exists():
        print(f"ClickHouse MergeTree load of {q:,} events ...", file=sys.stderr)
        fresh(merge_tree)
        clickhouse("CREATE TABLE events ENGINE = MergeTree "
                   "ORDER BY (ifNull(objectRef.resource, ''), ifNull(verb, '')) "
                   f"AS SELECT * FROM file('{ch_parquet}', Parquet)", session=merge_tree)
        (merge_tree / "loaded").touch()
    worst_rss = 0
    for title, ours, theirs in QUERIES:
        print(f"query: {title} ...", file=sys.stderr)
        # Best of seven for each engine (warm page cache for all), their runs taken in turns so
        # that a slow spell of the machine falls on all. Like for like: auditlake's own time
        # (`--timing`: planning, opening the lake's hour files, reading, computing) against each
        # engine's statement in a process it has started. The whole `auditlake query` process
        # (starting it, printing) is shown beside it.
        best = best_process = duck_best = ch_best = tree_best = base_best = float("inf")
        base_rows = None
        ch_sql = theirs + f" SETTINGS {CH_OUTPUT}"
        for _ in range(7):
            run = measured([args.auditlake, "query", "--timing", "--format", "json",
                            "--data-dir", str(lake), ours])
            worst_rss = max(worst_rss, run.rss)
            best = min(best, query_time(run))
            best_process = min(best_process, run.wall)
            ours_rows = [list(r.values()) for r in json.loads(run.out)]
            rows, dwall, _, _ = duckdb(theirs.format(src=f"read_parquet('{duck_parquet}')"))
            duck_best = min(duck_best, dwall)
            ch_rows, cwall, _, _ = clickhouse(ch_sql.format(src=f"file('{ch_parquet}', Parquet)"))
            ch_best = min(ch_best, cwall)
            tree_rows, twall, _, _ = clickhouse(ch_sql.format(src="events"), session=merge_tree)
            tree_best = min(tree_best, twall)
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
        same = ours_rows == rows == ch_rows == tree_rows
        if not same:
            print(f"  answers differ:\n  auditlake {ours_rows}\n  duckdb {rows}\n"
                  f"  clickhouse {ch_rows}\n  mergetree {tree_rows}", file=sys.stderr)
        faster = min(duck_best, ch_best)
        table.append((f"query over {q / 1e6:.0f}M: {title}, s (whole process in brackets)",
                      f"{best:.3f} ({best_process:.2f})", f"{duck_best:.3f}",
                      f"{ch_best:.3f} (Parquet) / {tree_best:.3f} (MergeTree)",
                      f"{best / faster:.2f} of the faster over Parquet; {best / tree_best:.2f} of MergeTree",
                      "≤ 1.0 of the faster over Parquet, answers equal",
                      same and best <= faster))
    table.append(("query peak RSS, MiB", f"{worst_rss:.0f}", "", "", "", "≤ 256", worst_rss <= 256))


if __name__ == "__main__":
    main()
