#!/usr/bin/env bash
# Installs what the tests need beyond cargo, when it is missing: `nc` (netcat-openbsd) for the
# shell-bot test, `ss` (iproute2) and `prlimit` (util-linux) for the connection-limit tests,
# `iptables` and `setpriv` (util-linux) for the cluster's partition tests, which cut a node off
# from NATS with a firewall rule (as root, which CI is).
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
missing=()
need() { # command, package
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}
need nc netcat-openbsd
need ss iproute2
need prlimit util-linux
need setpriv util-linux
need iptables iptables
need python3 python3
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (needed by the tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
