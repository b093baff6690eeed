#!/usr/bin/env bash
# Reproduce the engine benchmark table of docs/performance.md:
#   scripts/bench.sh              # 1,000 and 10,000 resources
#   scripts/bench.sh 1000 100000  # any sizes
#   scripts/bench.sh noop 10000 9 # only the no-op plan of 10,000, 9 times (medians)
#   scripts/bench.sh plan 100000 3 # only the plan of 100,000 on an empty state, 3 times
# Builds only the bench binary in release (no AWS SDK in it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p skyplan-bench --quiet
exec "${CARGO_TARGET_DIR:-target}/release/skyplan-bench" "$@"
