#!/usr/bin/env bash
# Installs what the tests need beyond cargo: `nc` (netcat-openbsd), which the shell-bot test
# runs. Does nothing when it is already there.
set -euo pipefail
if ! command -v nc >/dev/null 2>&1; then
    echo "installing netcat-openbsd (needed by the shell bot test)" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq netcat-openbsd >/dev/null
fi
