#!/usr/bin/env bash
# A month of a big cluster: lakes of 10M and 100M generated events (3.3M a day), streamed from the
# generator into `auditlake replay -`, then the investigator queries (all and one day), the alerts
# view of a week over HTTP and a backtest of the rule pack over one day on both. Prints a
# Markdown table of the times and how they grow.
#
# Usage: bash benches/month.sh [--events N] [--small-events N] [--per-day N] [--seed N]
# Needs about 7 GB free under $AUDITLAKE_BENCH_DIR (default $HOME/.cache/auditlake-bench), where
# the lakes stay between runs (each marked complete once built; delete one to build it again).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
work="${AUDITLAKE_BENCH_DIR:-$HOME/.cache/auditlake-bench}"
mkdir -p "$work"
cargo build --release --locked --bin auditlake
cargo build --release --locked -p auditlake-benches --example generate
exec python3 benches/month.py --work "$work" \
  --auditlake "$CARGO_TARGET_DIR/release/auditlake" \
  --examples "$CARGO_TARGET_DIR/release/examples" "$@"
