#!/usr/bin/env bash
# The local AWS emulator (moto's server) for skyplan's emulator tests.
#
#   scripts/emulator.sh install     create ./.venv with moto[server] (pinned) and, in
#                                   ./.venv/awscli, the AWS CLI (pinned) the simulated
#                                   node boot runs (tests/it/aws_bootsim.rs), if missing
#   scripts/emulator.sh start PORT  start it on 127.0.0.1:PORT in the background
#   scripts/emulator.sh stop        stop the server that `start` started
#
# Run from the repository root (paths are relative to it). The Rust test
# harness (tests/it/emulator.rs) starts its own servers from ./.venv; `start`
# and `stop` are for running the CLI against the emulator by hand.
# What the emulator does and does not do like AWS: docs/testing.md.
set -euo pipefail

MOTO_VERSION="5.2.5"
# The AWS CLI the nodes' boot script calls; its own venv, so that its
# pinned botocore never moves moto's.
AWSCLI_VERSION="1.36.40"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PID_FILE="$ROOT/.venv/moto_server.pid"
LOG_FILE="$ROOT/.venv/moto_server.log"

die() { echo "emulator.sh: $*" >&2; exit 1; }

install() {
    install_moto
    install_awscli
}

install_awscli() {
    local cli="$VENV/awscli"
    if [[ -x "$cli/bin/aws" ]] \
        && "$cli/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('awscli') != '$AWSCLI_VERSION')" 2>/dev/null; then
        return 0
    fi
    python3 -m venv "$cli" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$cli/bin/pip" install --quiet --disable-pip-version-check "awscli==$AWSCLI_VERSION" \
        || die "pip install awscli==$AWSCLI_VERSION failed"
    echo "emulator.sh: installed the AWS CLI $AWSCLI_VERSION in $cli"
}

install_moto() {
    if [[ -x "$VENV/bin/moto_server" ]] \
        && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$MOTO_VERSION')" 2>/dev/null; then
        return 0
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    fi
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
        || die "pip install moto[server]==$MOTO_VERSION failed"
    echo "emulator.sh: installed moto $MOTO_VERSION in $VENV"
}

start() {
    local port="${1:-}"
    [[ "$port" =~ ^[0-9]+$ ]] || die "usage: emulator.sh start PORT"
    [[ -x "$VENV/bin/moto_server" ]] || die "$VENV/bin/moto_server is missing: run scripts/emulator.sh install"
    if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        die "already running (pid $(cat "$PID_FILE")); run scripts/emulator.sh stop first"
    fi
    # The cluster-api images real AWS publishes, which moto lacks: pools
    # without `ami` look them up.
    "$VENV/bin/python" "$ROOT/scripts/emulator-images.py" "$VENV/moto_amis.json" ||
        die "could not write the emulator's image list"
    MOTO_AMIS_PATH="$VENV/moto_amis.json" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$LOG_FILE" 2>&1 &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    # Ready when it answers an HTTP request; give up after ~30 s.
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            die "moto_server exited during startup; see $LOG_FILE"
        fi
        if python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
PY
        then
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    die "moto_server did not answer on 127.0.0.1:$port within 30 s; see $LOG_FILE"
}

stop() {
    [[ -f "$PID_FILE" ]] || return 0
    local pid
    pid="$(cat "$PID_FILE")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$PID_FILE"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) stop ;;
    *) die "usage: emulator.sh install | start PORT | stop" ;;
esac
