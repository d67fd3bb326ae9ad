#!/usr/bin/env python3
"""Every column of N events read out of one `auditlake serve` through each of its query protocols,
in turns: Arrow Flight SQL (adbc-driver-flightsql into a pyarrow table), the PostgreSQL protocol
(psql with its output thrown away, and psycopg into Python tuples) and `POST /v1/query` with
`Accept: application/vnd.apache.arrow.stream` (read into a pyarrow table). Run through
benches/wire.sh.

rows/s is N over the median wall time of a read (client and server on the same machine, so both
share its cores). MB/s divides one size by it for every protocol, the result's size as an Arrow IPC
stream (what HTTP sends), so that the columns compare protocols rather than encodings; each
protocol's own bytes are shown beside it where the client can count them.
"""

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import generate, measured  # noqa: E402

SQL = "SELECT * FROM events"


def start(args, data):
    """`auditlake serve` on loopback ports with every listener, limits raised for the read."""
    log = open(data.parent / "serve.log", "w+")
    server = subprocess.Popen(
        [args.auditlake, "serve", "--data-dir", str(data), "--listen", "127.0.0.1:0",
         "--pg-listen", "127.0.0.1:0", "--flight-listen", "127.0.0.1:0",
         "--query-max-rows", str(args.events), "--flight-max-rows", "0",
         "--query-timeout", "600s", "--query-memory", "4GiB"],
        stdout=log, stderr=log, env=dict(os.environ, AUDITLAKE_LOG="warn"))
    ports = {}
    deadline = time.monotonic() + 60
    while len(ports) < 3:
        if time.monotonic() > deadline or server.poll() is not None:
            log.seek(0)
            sys.exit("auditlake serve did not start:\n" + log.read())
        log.seek(0)
        for line in log:
            for key, prefix in (("http", "auditlake: listening on http://"),
                                ("pg", "auditlake: postgres protocol on "),
                                ("flight", "auditlake: flight sql on ")):
                if line.startswith(prefix):
                    ports[key] = int(line.strip().rsplit(":", 1)[1])
        time.sleep(0.1)
    return server, ports


def flight(ports):
    import adbc_driver_flightsql.dbapi as flight_sql
    with flight_sql.connect(f"grpc://127.0.0.1:{ports['flight']}") as conn:
        with conn.cursor() as cur:
            cur.execute(SQL)
            table = cur.fetch_arrow_table()
    return table.num_rows, None


def http_arrow(ports):
    import pyarrow.ipc
    request = urllib.request.Request(
        f"http://127.0.0.1:{ports['http']}/v1/query", data=json.dumps({"sql": SQL}).encode(),
        headers={"Content-Type": "application/json",
                 "Accept": "application/vnd.apache.arrow.stream"})
    with urllib.request.urlopen(request, timeout=600) as response:
        body = response.read()
    table = pyarrow.ipc.open_stream(io.BytesIO(body)).read_all()
    return table.num_rows, len(body)


def psql(args, ports):
    out = subprocess.run(
        [args.psql, "-X", "-A", "-t", "-q", f"postgresql://bench@127.0.0.1:{ports['pg']}/auditlake",
         "-c", SQL], capture_output=True, check=True)
    return out.stdout.count(b"\n"), len(out.stdout)


def psycopg_rows(ports):
    import psycopg
    with psycopg.connect(f"host=127.0.0.1 port={ports['pg']} dbname=auditlake user=bench") as conn:
        rows = conn.execute(SQL).fetchall()
    return len(rows), None


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--auditlake", type=Path, required=True)
    parser.add_argument("--examples", type=Path, required=True)
    parser.add_argument("--psql", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    n = args.events
    traffic = args.work / f"traffic-{args.seed}-{n}.ndjson"
    print(f"generating {n:,} events ...", file=sys.stderr)
    generate(args, n, traffic)

    scratch = Path(tempfile.mkdtemp(prefix="auditlake-wire-bench-"))
    data = scratch / "data"
    print("replay ...", file=sys.stderr)
    measured([args.auditlake, "replay", "--data-dir", str(data), str(traffic)])
    server, ports = start(args, data)
    clients = [
        ("Arrow Flight SQL (ADBC -> pyarrow)", lambda: flight(ports)),
        ("PostgreSQL protocol (psql, text)", lambda: psql(args, ports)),
        ("PostgreSQL protocol (psycopg -> tuples)", lambda: psycopg_rows(ports)),
        ("HTTP POST /v1/query, Arrow IPC stream (-> pyarrow)", lambda: http_arrow(ports)),
    ]
    times = {name: [] for name, _ in clients}
    sizes = {}
    try:
        for run in range(args.runs):
            for name, read in clients:
                print(f"{name} ({run + 1}/{args.runs}) ...", file=sys.stderr)
                started = time.perf_counter()
                rows, size = read()
                times[name].append(time.perf_counter() - started)
                if rows != n:
                    sys.exit(f"{name} read {rows:,} rows, not {n:,}")
                sizes[name] = size
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    arrow_bytes = sizes["HTTP POST /v1/query, Arrow IPC stream (-> pyarrow)"]
    print()
    print(f"{n:,} events, every column ({SQL}), seed {args.seed}, {os.cpu_count()} cores, "
          f"median of {args.runs}; the result is {arrow_bytes / 1e6:.0f} MB as an Arrow IPC stream")
    print()
    print("| protocol (client) | s | rows/s | MB/s (Arrow size) | bytes the client received |")
    print("| --- | --- | --- | --- | --- |")
    for name, _ in clients:
        s = statistics.median(times[name])
        size = f"{sizes[name] / 1e6:.0f} MB" if sizes[name] else ""
        print(f"| {name} | {s:.2f} | {n / s:,.0f} | {arrow_bytes / 1e6 / s:.0f} | {size} |")


if __name__ == "__main__":
    main()
