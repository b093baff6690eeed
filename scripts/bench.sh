#!/usr/bin/env bash
# Reproduce the engine benchmark table of docs/performance.md:
#   scripts/bench.sh              # 1,000 and 10,000 resources
#   scripts/bench.sh 1000 100000  # any sizes
# Builds only the bench binary in release (no AWS SDK in it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p skyplan-bench --quiet
exec target/release/skyplan-bench "$@"
