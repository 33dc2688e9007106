#!/usr/bin/env bash
# Installs what the cluster tests need beyond cargo, when it is missing: `nats-server` (Debian
# `nats-server`) and PostgreSQL's server binaries (Debian `postgresql`). The tests start their
# own instances on free ports in temporary directories; nothing is started here.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
# PostgreSQL's binaries are not on the PATH: `initdb` and `pg_ctl` live in the versioned
# directory (tests/support/postgres.rs looks there).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (needed by the cluster tests)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
