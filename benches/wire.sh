#!/usr/bin/env bash
# Reading every column of 1M events out of `auditlake serve` through its three query protocols,
# in one run: Arrow Flight SQL (ADBC's driver into a pyarrow table), the PostgreSQL protocol (psql,
# and psycopg into Python rows) and `POST /v1/query` answered as an Arrow IPC stream. Prints a
# Markdown table of seconds, rows/s and MB/s each.
#
# Usage: bash benches/wire.sh [--events N] [--seed N] [--runs N]
# The generated traffic is shared with benches/compare.sh under $AUDITLAKE_BENCH_DIR (default
# $HOME/.cache/auditlake-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
work="${AUDITLAKE_BENCH_DIR:-$HOME/.cache/auditlake-bench}"
python="$(bash scripts/install-python)"
psql="${AUDITLAKE_PSQL:-$(bash scripts/install-apt /usr/bin/psql postgresql-client)}"
cargo build --release --locked --bin auditlake
cargo build --release --locked -p auditlake-benches --example generate
exec "$python" benches/wire.py --work "$work" --psql "$psql" \
  --auditlake "$CARGO_TARGET_DIR/release/auditlake" \
  --examples "$CARGO_TARGET_DIR/release/examples" "$@"
