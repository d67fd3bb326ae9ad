#!/usr/bin/env python3
"""auditlake replay into a Delta lake on an S3-compatible server against the same replay on local
disk, in one run: events per second and per CPU-second of auditlake's process, and the S3
requests it made by kind, per commit. Run through benches/s3.sh.

The server is moto's (Python, in memory, on loopback): its own speed bounds the figures, so they
say what auditlake asks of a store more than how fast a real one answers. Requests are counted
from the server's access log.
"""

import argparse
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compare import generate, measured  # noqa: E402

BUCKET = "bench"
LINE = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) (\S+) HTTP/[\d.]+" (\d+)')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kind(method, target):
    """What a request was for, from its method and path."""
    path, _, query = target.partition("?")
    if "/_delta_log/" in path:
        if method == "PUT" and re.search(r"/_delta_log/\d{20}\.json$", path):
            return "log entry written (a commit)"
        if method == "PUT":
            return "log: checkpoint written"
        return f"log: {method}"
    if method == "GET" and ("list-type" in query or path.rstrip("/") == f"/{BUCKET}"):
        return "list"
    if method == "PUT" and "partNumber" in query:
        return "data: multipart part"
    if method == "POST":
        return "data: multipart start/complete"
    if method == "PUT":
        return "data: file upload"
    return f"data: {method}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--auditlake", type=Path, required=True)
    parser.add_argument("--examples", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    n = args.events
    traffic = args.work / f"traffic-{args.seed}-{n}.ndjson"
    print(f"generating {n:,} events ...", file=sys.stderr)
    generate(args, n, traffic)

    scratch = Path(tempfile.mkdtemp(prefix="auditlake-s3-bench-"))
    port = free_port()
    access_log = scratch / "s3-access.log"
    with open(access_log, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("moto's S3 server did not start")
                time.sleep(0.2)
        env = dict(os.environ, AUDITLAKE_LOG="warn", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
                   AWS_ALLOW_HTTP="true", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   AWS_REGION="us-east-1")
        import boto3
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                     aws_access_key_id="bench", aws_secret_access_key="bench"
                     ).create_bucket(Bucket=BUCKET)
        before = access_log.read_text().count("\n")

        print("replay to local disk ...", file=sys.stderr)
        local = measured([args.auditlake, "replay", "--data-dir", str(scratch / "local"),
                          str(traffic)], env)
        print("replay to S3 ...", file=sys.stderr)
        remote = measured([args.auditlake, "replay", "--data-dir", str(scratch / "s3"),
                           "--lake", f"s3://{BUCKET}/lake", str(traffic)], env)
        stored = re.search(r"(\d+) events stored", remote.out.decode())
        counts = collections.Counter()
        for line in access_log.read_text().splitlines()[before:]:
            m = LINE.search(line)
            if m:
                counts[kind(m.group(1), m.group(2))] += 1
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    commits = counts["log entry written (a commit)"]
    total = sum(counts.values())
    print()
    print(f"{n:,} events, seed {args.seed}, {os.cpu_count()} cores; "
          f"S3: moto's server on loopback; stored: {stored.group(1) if stored else '?'}")
    print()
    print("| lake | wall s | auditlake CPU-s | events/s | events per CPU-s | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, run in (("local disk", local), ("S3 (moto)", remote)):
        print(f"| {name} | {run.wall:.1f} | {run.cpu:.2f} | {n / run.wall:,.0f} | "
              f"{n / run.cpu:,.0f} | {run.rss:.0f} |")
    print()
    print(f"S3 requests: {total:,} in all, {commits} commits (events and alerts), "
          f"{total / max(commits, 1):.1f} requests per commit")
    print()
    print("| request | count | per commit |")
    print("| --- | --- | --- |")
    for what, count in sorted(counts.items()):
        print(f"| {what} | {count:,} | {count / max(commits, 1):.1f} |")
    print(json.dumps({"commits": commits, "requests": dict(counts)}), file=sys.stderr)


if __name__ == "__main__":
    main()
