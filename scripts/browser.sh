#!/usr/bin/env bash
# The headless browser the HTML report's test renders in (tests/it/report.rs):
# Chromium from Debian's packages.
#
#   scripts/browser.sh install   apt-get install chromium if no chromium is on PATH
#   scripts/browser.sh path      print the chromium binary's path (exit 1 if none)
#
# scripts/test.sh runs `install` before the tests, so a fresh CI machine gets
# it; the test fails (never skips) when chromium is missing.
set -euo pipefail

die() { echo "browser.sh: $*" >&2; exit 1; }

find_chromium() {
    local name
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

install() {
    if find_chromium >/dev/null; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "no chromium on PATH and no apt-get to install it: install Chromium"
    local sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    # The package lists may be missing on a fresh machine (Debian images ship none).
    if ! apt-cache show chromium >/dev/null 2>&1; then
        $sudo apt-get update -qq || die "apt-get update failed"
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
        >/dev/null || die "apt-get install chromium failed"
    find_chromium >/dev/null || die "chromium installed but not on PATH"
    echo "browser.sh: installed $(find_chromium)"
}

case "${1:-}" in
    install) install ;;
    path) find_chromium || die "no chromium on PATH: run scripts/browser.sh install" ;;
    *) die "usage: browser.sh install|path" ;;
esac
