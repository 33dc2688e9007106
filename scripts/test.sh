#!/usr/bin/env bash
# Runs the whole test suite. The only thing the tests need beyond cargo is `nc`
# (netcat-openbsd), which the shell-bot test runs; it is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nc >/dev/null 2>&1; then
    echo "installing netcat-openbsd (needed by the shell bot test)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq netcat-openbsd >/dev/null
fi

exec cargo test --locked "$@"
