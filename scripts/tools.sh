#!/usr/bin/env bash
# The system tools skyplan's bootstrap tests run (providers/aws-blueprint/src/bootstrap/tool_tests.rs):
# cloud-init (its own schema validator, `cloud-init schema`), shellcheck,
# openssl, tar, unshare (and cloud-init's Python with PyYAML). A fresh
# Debian or Ubuntu machine has none of the first two; this installs what is
# missing with apt-get (as root, or through sudo) and does nothing when all
# are there.
#
#   scripts/tools.sh install
set -euo pipefail

die() { echo "tools.sh: $*" >&2; exit 1; }

# command -> Debian package
declare -A PACKAGES=(
    [cloud-init]=cloud-init
    [shellcheck]=shellcheck
    [openssl]=openssl
    [tar]=tar
    [unshare]=util-linux
)

install() {
    local missing=()
    for tool in "${!PACKAGES[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGES[$tool]}")
    done
    ((${#missing[@]} == 0)) && return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${missing[*]} by your system's means"
    echo "tools.sh: installing ${missing[*]}" >&2
    # Another apt-get on this machine holds the lock for a while: wait for it.
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

case "${1:-}" in
    install) install ;;
    *) die "usage: tools.sh install" ;;
esac
