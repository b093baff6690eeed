#!/usr/bin/env bash
# Fuzz the spec parser and the state loader for a bounded time each:
#   scripts/fuzz.sh [SECONDS]        (default 60 per target)
# Seeds come from examples/ and tests/fixtures/bad/. A crash leaves its input
# in fuzz/artifacts/TARGET/ and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags (sanitizers); this lets the stable toolchain
# accept them, since no nightly can be installed here.
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/spec fuzz/corpus/state
cp examples/*.toml tests/fixtures/bad/*.toml fuzz/corpus/spec/
cp tests/fixtures/bad/*.state.json fuzz/corpus/state/
for target in spec state; do
  echo "== fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
echo "no crashes in ${seconds}s per target"
