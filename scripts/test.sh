#!/usr/bin/env bash
# The project's test command (README.md, and what .ci/run runs):
# installs the local AWS emulator (moto) into ./.venv, the system tools
# the bootstrap tests run (scripts/tools.sh: cloud-init, shellcheck, openssl)
# and Chromium (for the HTML report's browser test) if they are missing,
# then runs every test in the workspace. Tests that need the emulator start their
# own moto server on a free 127.0.0.1 port and stop it by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/emulator.sh install
scripts/tools.sh install
scripts/browser.sh install
exec cargo test --workspace --locked "$@"
