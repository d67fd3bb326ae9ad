#!/usr/bin/env bash
# Webhook load test: release build of the server, then 60 s of concurrent EventList posts.
# Usage: bash benches/load.sh [--duration S] [--connections N] [--events N] [--config FILE]
# (--config: a config file for the server, e.g. with [[alerts.outputs]] to measure delivery's cost)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
cargo build --release --locked --bin auditlake
cargo run --release --locked -p auditlake-benches --example webhook_load -- \
    --binary "$CARGO_TARGET_DIR/release/auditlake" "$@"
