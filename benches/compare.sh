#!/usr/bin/env bash
# auditlake against DuckDB and ClickHouse (chdb) on the same generated traffic, in one run:
# decode+normalize per core, `auditlake replay` end to end on every core and on one thread
# (events per CPU-second, wall time, peak RSS, rule share, storage, round trip) against DuckDB's
# and ClickHouse's NDJSON->Parquet conversions, and three investigator queries over 10M events
# against DuckDB over its Parquet and ClickHouse over its Parquet and its own MergeTree table.
# Prints a Markdown table.
#
# Usage: bash benches/compare.sh [--events N] [--query-events N] [--seed N] [--skip-queries]
#                                [--baseline PATH-TO-AN-EARLIER-auditlake]
# Needs about 8 GB free under $AUDITLAKE_BENCH_DIR (default $HOME/.cache/auditlake-bench), where
# the generated files (the 10M events zstd-compressed), lakes, the other engines' Parquet and
# ClickHouse's table stay between runs (delete it to start over), and `zstd`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
work="${AUDITLAKE_BENCH_DIR:-$HOME/.cache/auditlake-bench}"
mkdir -p "$work"

command -v zstd >/dev/null || { apt-get update -qq && apt-get install -y -qq zstd; }

# DuckDB's and ClickHouse's (chdb) Python wheels, in a virtual environment of their own.
venv="$HOME/.cache/auditlake-bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb, chdb' 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" \
    || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet duckdb chdb
fi
echo "DuckDB $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)')," \
  "ClickHouse $("$venv/bin/python" -c "import chdb; print(chdb.query('SELECT version()', 'TSV').bytes().decode().strip())") (chdb)" >&2

cargo build --release --locked --bin auditlake
cargo build --release --locked -p auditlake-benches \
  --example generate --example decode_file --example roundtrip
exec "$venv/bin/python" benches/compare.py --work "$work" \
  --auditlake "$CARGO_TARGET_DIR/release/auditlake" \
  --examples "$CARGO_TARGET_DIR/release/examples" "$@"
