#!/usr/bin/env bash
# Wall time and AWS API requests of the main job against the local emulator
# (docs/performance.md): apply, no-op plan and destroy of a spec, default
# examples/dynamic-cluster.toml (3 AZs, 38 resources).
#   scripts/bench-aws.sh [SPEC]
# Uses the debug build, as the demo does; a fresh moto server per run, so
# each phase starts from the same emulator state. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-examples/dynamic-cluster.toml}"
# shellcheck source=scripts/emulator-session.sh
. scripts/emulator-session.sh
state="$work/bench.state.json"

# One phase: its wall time and the provider's request count (-v output).
phase() {
  local name="$1"; shift
  local start end
  start=$(date +%s.%N)
  "$skyplan" -v "$@" --state "$state" >"$work/out" 2>"$work/err"
  end=$(date +%s.%N)
  local requests
  requests=$(sed -n 's/^aws API requests: //p' "$work/err" | tail -1)
  awk -v n="$name" -v s="$start" -v e="$end" -v r="${requests:-0}" 'BEGIN { printf "| %s | %.2f | %s |\n", n, e - s, r }'
}

# Warm the emulator's EC2 backend (its first call takes over a second).
python3 - "$port" <<'PY' >/dev/null 2>&1 || true
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/?Action=DescribeRegions&Version=2016-11-15")
try: urllib.request.urlopen(req, timeout=10)
except Exception: pass
PY

echo "| phase ($spec) | wall seconds | AWS API requests |"
echo "|---|---|---|"
phase "apply (create all)" apply "$spec" --auto-approve
phase "plan (no changes)" plan "$spec" --detailed-exitcode
phase "destroy" destroy "$spec" --auto-approve
