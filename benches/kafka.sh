#!/usr/bin/env bash
# Kafka consume-to-durable benchmark: release build of the server, a local tansu broker (installed
# once by scripts/install-tansu), a topic filled by `auditlake produce`, then `auditlake serve`
# consuming it. Usage: bash benches/kafka.sh [--events N] [--partitions N]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
tansu="$(bash scripts/install-tansu)"
cargo build --release --locked --bin auditlake
cargo run --release --locked -p auditlake-benches --example kafka_load -- \
    --binary "$CARGO_TARGET_DIR/release/auditlake" --tansu "$tansu" "$@"
