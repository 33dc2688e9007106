#!/usr/bin/env bash
# Soak test: hundreds of clients join, chat, leave and reconnect for a while (scripts/soak.py),
# then this checks that no message between the clients that stayed was lost or duplicated,
# that every connection and task (room tasks of emptied rooms included) is gone, and that
# the server's memory came back down.
#
#   bash scripts/soak.sh [seconds=60] [stayers=20] [churners=300]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60} stayers=${2:-20} churners=${3:-300}
cargo build --release --quiet --bin linechat
work=$(mktemp -d)
log="$work/server.log"
LINECHAT_STATS_LOG_SECS=1 LINECHAT_HISTORY_BATCH_MS=100 RUST_LOG=info \
    ./target/release/linechat --addr 127.0.0.1:0 --data-dir "$work/data" --config /dev/null \
    2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$log")
    [ -n "$addr" ] && break
    sleep 0.05
done
stat() { # the last stats line's field $1
    grep ' stats' "$log" | tail -1 | sed -n "s/.*$1=\([0-9]*\).*/\1/p"
}
sleep 2
base_tasks=$(stat tasks) base_rss=$(stat rss_kib)
echo "before: tasks=$base_tasks rss=${base_rss}KiB"

status=0
# Two rounds: the first warms up what is kept on purpose (allocator pools, the database's
# page cache, maps at their peak size); a leak would then show as growth in the second.
after_round=()
for round in 1 2; do
    python3 scripts/soak.py "${addr%:*}" "${addr##*:}" "$seconds" "$stayers" "$churners" || status=$?
    sleep 12  # sessions end, emptied rooms close their tasks, memory is handed back
    after_round+=("$(stat rss_kib)")
    echo "after round $round: connections=$(stat connections) tasks=$(stat tasks) rss=$(stat rss_kib)KiB"
done

peak_rss=$(grep ' stats' "$log" | sed -n 's/.*rss_kib=\([0-9]*\).*/\1/p' | sort -n | tail -1)
peak_conns=$(grep ' stats' "$log" | sed -n 's/.*connections=\([0-9]*\).*/\1/p' | sort -n | tail -1)
end_tasks=$(stat tasks) end_rss=$(stat rss_kib) end_conns=$(stat connections)
echo "peak: connections=$peak_conns rss=${peak_rss}KiB"

if [ "$end_conns" -ne 0 ]; then echo "FAIL: $end_conns connections left"; status=1; fi
if [ "$end_tasks" -gt "$base_tasks" ]; then
    echo "FAIL: $((end_tasks - base_tasks)) tasks leaked"; status=1
fi
if [ "$end_rss" -ge "$peak_rss" ]; then
    echo "FAIL: memory did not come down from its peak of ${peak_rss}KiB"; status=1
fi
if [ "${after_round[1]}" -gt $(( ${after_round[0]} + 2048 )) ]; then
    echo "FAIL: memory grew from ${after_round[0]}KiB to ${after_round[1]}KiB between rounds"
    status=1
fi
kill -TERM "$pid"
if ! wait "$pid"; then echo "FAIL: the server did not exit cleanly"; status=1; fi
grep -E ' (ERROR|WARN) ' "$log" | grep -v 'not reading\|throttled\|flooding\|refused' | head -5 || true
[ "$status" -eq 0 ] && echo "soak passed" || echo "soak FAILED"
exit "$status"
