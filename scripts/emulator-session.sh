# Sourced by scripts that run skyplan against the local AWS emulator
# (demo.sh, bench-aws.sh): installs the emulator if missing, builds the
# skyplan binary, starts moto on a free 127.0.0.1 port, points the AWS SDK
# at it with fake keys, and stops it (by its PID) and removes the scratch
# directory when the script exits. Sets: $skyplan, $work, $AWS_ENDPOINT_URL.

scripts/emulator.sh install
echo "== building skyplan (debug; the AWS SDK takes a few minutes the first time)" >&2
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
export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
