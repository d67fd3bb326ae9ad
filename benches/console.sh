#!/usr/bin/env bash
# Times the HTTP calls the console's pages make, against `auditlake serve` over a lake of
# generated traffic (10M events unless --events N): the alerts view (its summary and list, bare
# and filtered), an alert's detail with the ±30 min context timeline (the newest alert, an exec
# alert, and an alert of the user with the most alerts), and Explore over an hour and a day. Each call once
# cold, then nine times; prints a Markdown table of milliseconds.
#
# Usage: bash benches/console.sh [--events N] [--seed N]
# The lake stays under $AUDITLAKE_BENCH_DIR (default $HOME/.cache/auditlake-bench) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/auditlake-target}"
work="${AUDITLAKE_BENCH_DIR:-$HOME/.cache/auditlake-bench}"
events=10000000
seed=7
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "benches/console.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --locked --bin auditlake
cargo build --release --locked -p auditlake-benches --example generate
bin="$CARGO_TARGET_DIR/release"
lake="$work/console-$events-$seed"
if [ ! -f "$lake/.complete" ]; then
  rm -rf "$lake"
  mkdir -p "$lake"
  echo "benches/console.sh: building a lake of $events events in $lake" >&2
  "$bin/examples/generate" "$events" --seed "$seed" | "$bin/auditlake" --data-dir "$lake" replay - >&2
  touch "$lake/.complete"
fi
exec python3 benches/console.py --auditlake "$bin/auditlake" --lake "$lake"
