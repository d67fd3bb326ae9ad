#!/usr/bin/env bash
# auditlake against DuckDB on the same generated traffic, in one run: decode+normalize per core,
# `auditlake replay` end to end (events per CPU-second, peak RSS, rule share, storage, round trip)
# against DuckDB's NDJSON->Parquet conversion, and three investigator queries over 10M events
# against DuckDB over Parquet and over the raw NDJSON. Prints a Markdown table.
#
# Usage: bash benches/compare.sh [--events N] [--query-events N] [--seed N] [--skip-queries]
#                                [--baseline PATH-TO-AN-EARLIER-auditlake]
# Needs about 30 GB free under $AUDITLAKE_BENCH_DIR (default $HOME/.cache/auditlake-bench), where
# the generated files, lakes and DuckDB's Parquet stay between runs (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
work="${AUDITLAKE_BENCH_DIR:-$HOME/.cache/auditlake-bench}"
mkdir -p "$work"

# DuckDB's Python wheel, in a virtual environment of its own.
venv="$HOME/.cache/auditlake-bench-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  python3 -m venv "$venv" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet duckdb
fi
echo "DuckDB $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)')" >&2

cargo build --release --locked --bin auditlake
cargo build --release --locked -p auditlake-benches \
  --example generate --example decode_file --example roundtrip
exec "$venv/bin/python" benches/compare.py --work "$work" \
  --auditlake "$CARGO_TARGET_DIR/release/auditlake" \
  --examples "$CARGO_TARGET_DIR/release/examples" "$@"
