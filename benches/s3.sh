#!/usr/bin/env bash
# auditlake replay into a Delta lake on an S3-compatible server (moto's, on loopback, from the
# tests' Python environment) against the same replay to local disk: events/s, events per
# CPU-second, and the S3 requests by kind and per commit. Prints Markdown tables.
#
# Usage: bash benches/s3.sh [--events N] [--seed N]
# The generated traffic is shared with benches/compare.sh under $AUDITLAKE_BENCH_DIR (default
# $HOME/.cache/auditlake-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
work="${AUDITLAKE_BENCH_DIR:-$HOME/.cache/auditlake-bench}"
python="$(bash scripts/install-python)"
cargo build --release --locked --bin auditlake
cargo build --release --locked -p auditlake-benches --example generate
exec "$python" benches/s3.py --work "$work" \
  --auditlake "$CARGO_TARGET_DIR/release/auditlake" \
  --examples "$CARGO_TARGET_DIR/release/examples" "$@"
