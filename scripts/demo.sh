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

scripts/emulator.sh install
echo "== building skyplan (debug; the AWS SDK takes a few minutes the first time)"
cargo build --locked --quiet --bin skyplan
skyplan="${CARGO_TARGET_DIR:-$PWD/target}/debug/skyplan"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
work="$(mktemp -d)"
cleanup() {
  scripts/emulator.sh stop || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/emulator.sh start "$port"

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
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
