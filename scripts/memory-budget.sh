#!/usr/bin/env bash
# What clients that never read can make the server hold: fills the global history with 1000
# messages of 3.9 kB, then opens CLIENTS connections (default 200) with a small receive
# buffer that each send `HISTORY * 1000` and never read. Fails when the server's resident
# memory grows by more than MAX_KIB (default 1024) per client: HISTORY is streamed, so each
# should hold about 256 KiB of queue and one page of history (before streaming: ~3.6 MiB).
#
#   bash scripts/memory-budget.sh [clients] [max KiB per client]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-200}
max_kib=${2:-1024}
. scripts/lib/server.sh
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "${KEEP_LOG:-}" ] && cp "$work/server.log" "$KEEP_LOG"
    rm -rf "$work"
}
trap cleanup EXIT
export LINECHAT_FLOOD_LINES_PER_SEC=0 LINECHAT_MAX_CONNECTIONS_PER_IP=$((clients + 10)) \
    RUST_LOG=info
start_server "$work/data" "$work/server.log"
python3 scripts/memory_probe.py --addr "$addr" --pid "$pid" --clients "$clients" \
    --settle 15 --max-kib "$max_kib"
