#!/usr/bin/env bash
# The main job, end to end, against the local AWS emulator (README.md):
#   scripts/demo.sh [SPEC]      (default: examples/dynamic-cluster.toml)
# Installs the emulator into ./.venv if missing, builds skyplan, starts moto
# on a free 127.0.0.1 port, then runs validate, plan, apply, plan again
# (which must show no changes), and destroy; stops the emulator by its PID
# on the way out, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-examples/dynamic-cluster.toml}"

# shellcheck source=scripts/emulator-session.sh
. scripts/emulator-session.sh
state="$work/demo.state.json"

run() {
  echo
  echo "\$ skyplan $*"
  "$skyplan" "$@"
}

run validate "$spec"
run plan "$spec" --state "$state"
run apply "$spec" --state "$state" --auto-approve
echo
echo "\$ skyplan plan $spec --detailed-exitcode   # must show no changes"
if "$skyplan" plan "$spec" --state "$state" --detailed-exitcode; then
  echo "(exit 0: no changes)"
else
  code=$?
  echo "error: the second plan was not empty (exit $code)" >&2
  exit 1
fi
run state list --state "$state"
run destroy "$spec" --state "$state" --auto-approve
echo
echo "Demo complete: created, checked for no changes, and destroyed against the emulator at $AWS_ENDPOINT_URL."
