#!/usr/bin/env bash
# Wall time and AWS API requests of the main job against the local emulator
# (docs/performance.md): apply, no-op plan and destroy of a spec, default
# examples/dynamic-cluster.toml (3 AZs, 43 resources).
#   scripts/bench-aws.sh [SPEC]
#   scripts/bench-aws.sh --clusters N [SPEC]
# With --clusters N: N copies of the spec, each its own cluster (names
# bench01..benchNN, VPC CIDRs 10.1.0.0/16, 10.2.0.0/16, ...) and state, each
# phase run for all N one after another against one emulator; the table
# gives the phase's wall time for all N and its requests per service.
# Uses the debug build, as the demo does; a fresh moto server per run of the
# script. Prints Markdown tables. Extra skyplan flags (e.g. --rate-limit
# ec2=5) can be passed in SKYPLAN_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
clusters=1
if [[ "${1:-}" == "--clusters" ]]; then
  clusters="$2"
  shift 2
fi
spec="${1:-examples/dynamic-cluster.toml}"
# shellcheck source=scripts/emulator-session.sh
. scripts/emulator-session.sh
read -r -a extra <<<"${SKYPLAN_FLAGS:-}"

# The specs and states of the run: the spec itself, or N renamed copies.
specs=()
if [[ "$clusters" == 1 ]]; then
  specs=("$spec")
else
  for i in $(seq 1 "$clusters"); do
    name=$(printf 'bench%02d' "$i")
    sed -e "/^\[cluster\]/,/^\[/ s/^name = \"[a-z0-9-]*\"/name = \"$name\"/" \
        -e "s/^# vpc_cidr = .*/vpc_cidr = \"10.$i.0.0\/16\"/" \
        -e "s/^vpc_cidr = .*/vpc_cidr = \"10.$i.0.0\/16\"/" "$spec" >"$work/$name.toml"
    specs+=("$work/$name.toml")
  done
fi

# One phase over every spec: wall time for all, requests per service (-vv
# prints one `  service:Operation N` line per operation).
phase() {
  local name="$1" verb="$2"; shift 2
  local start end s state
  : >"$work/ops"
  start=$(date +%s.%N)
  for s in "${specs[@]}"; do
    state="$work/$(basename "$s" .toml).state.json"
    "$skyplan" -vv "${extra[@]}" "$verb" "$s" "$@" --state "$state" >"$work/out" 2>"$work/err" || {
      echo "$verb $s failed:" >&2; cat "$work/err" >&2; exit 1; }
    grep -E '^  [a-z0-9]+:[A-Za-z0-9]+ [0-9]+$' "$work/err" >>"$work/ops" || true
  done
  end=$(date +%s.%N)
  awk -v n="$name" -v s="$start" -v e="$end" '
    { split($1, p, ":"); by[p[1]] += $2; total += $2 }
    END { printf "| %s | %.2f | %d | %d | %d | %d |\n", n, e - s, total, by["ec2"], by["elasticloadbalancing"], by["autoscaling"] }
  ' "$work/ops"
}

# Warm the emulator's EC2 backend (its first call takes over a second).
python3 - "$port" <<'PY' >/dev/null 2>&1 || true
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/?Action=DescribeRegions&Version=2016-11-15")
try: urllib.request.urlopen(req, timeout=10)
except Exception: pass
PY

echo "| phase ($clusters x $spec) | wall seconds | AWS API requests | ec2 | elasticloadbalancing | autoscaling |"
echo "|---|---|---|---|---|---|"
phase "apply (create all)" apply --auto-approve
phase "plan (no changes)" plan --detailed-exitcode
phase "destroy" destroy --auto-approve
