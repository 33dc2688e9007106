#!/usr/bin/env bash
# What storing history costs: runs the same scenarios against a release build with history
# on and off, alternating, and prints deliveries per second, the server's CPU time for the
# run (until it is idle again, so that it includes the last batches written), of which the
# SQLite thread's, and the messages stored per second; then, from the medians, the throughput
# with history against without (issue 10's target: at least 0.8 for private messages), and the
# server CPU each stored message costs, in all and on SQLite's thread. Server pinned to core 0,
# generator to core 1. Then the writer alone: messages stored per second and CPU per message
# with nothing else running (a release-built `#[ignore]` test).
#
#   bash scripts/bench-history.sh [rounds]        (default 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release --quiet --bin linechat --bin loadgen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)

# scenario name and loadgen arguments. Two private-message bursts: 200,000 messages (as in
# scripts/bench.sh), which fit in what may wait for the history writer (64 MiB), so the
# writer works mostly after them; and 1,000,000, five times that, which go at the pace the
# writer keeps once the bound is reached.
scenarios=(
    "pm-100x2k|pm --pairs 100 --messages 2000"
    "pm-100|pm --pairs 100 --messages 10000"
    "fanout-100x1|fanout --members 100 --senders 1 --messages 20000"
    "fanout-20x10|fanout --members 20 --senders 10 --messages 10000"
)

cpu_ticks() { # pid -> user + system clock ticks so far
    awk '{print $14 + $15}' "/proc/$1/stat"
}

sqlite_ticks() { # pid -> clock ticks of its SQLite threads so far
    local total=0 task
    for task in /proc/"$1"/task/*; do
        if grep -q sqlite "$task/comm" 2>/dev/null; then
            total=$((total + $(awk '{print $14 + $15}' "$task/stat")))
        fi
    done
    echo "$total"
}

run() { # history(true|false) scenario-args -> prints "deliveries/s cpu-ms stored seconds sqlite-cpu-ms"
    local history=$1 args=$2 dir="$work/data-$RANDOM" log="$work/server.log"
    LINECHAT_HISTORY=$history LINECHAT_FLOOD_LINES_PER_SEC=0 \
        LINECHAT_MAX_CONNECTIONS_PER_IP=100000 RUST_LOG=info \
        taskset -c 0 ./target/release/linechat \
        --addr 127.0.0.1:0 --data-dir "$dir" --config /dev/null 2>"$log" &
    local pid=$! addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    local out start end now
    start=$(cpu_ticks "$pid")
    # shellcheck disable=SC2086
    out=$(taskset -c 1 ./target/release/loadgen --addr "$addr" --json "$work/run.json" $args)
    # The writer may still be committing the last batches: wait until the server is idle.
    end=$(cpu_ticks "$pid")
    while sleep 0.3; do
        now=$(cpu_ticks "$pid")
        [ $((now - end)) -le 1 ] && break
        end=$now
    done
    local sqlite
    sqlite=$(sqlite_ticks "$pid")
    kill -TERM "$pid"
    wait "$pid"
    local rate seconds stored
    rate=$(tail -1 "$work/run.json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["deliveries_per_sec"]))')
    seconds=$(tail -1 "$work/run.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
    stored=$(sed -n 's/.*database closed messages=\([0-9]*\).*/\1/p' "$log")
    echo "$rate $(((end - start) * 1000 / tick)) ${stored:-0} $seconds $((sqlite * 1000 / tick))"
    echo "    $out" >&2
}

printf '%-14s %-8s %14s %12s %12s %16s\n' scenario history deliveries/s "server CPU" "of SQLite" "stored msgs/s"
for entry in "${scenarios[@]}"; do
    name=${entry%%|*} args=${entry#*|}
    on=() off=()
    for _ in $(seq "$rounds"); do
        for history in false true; do
            read -r rate cpu stored seconds sqlite < <(run "$history" "$args")
            printf '%-14s %-8s %14s %10s ms %9s ms %16s\n' "$name" "$history" "$rate" "$cpu" \
                "$sqlite" "$(python3 -c "print(round($stored / $seconds))")"
            if [ "$history" = true ]; then on+=("$rate,$cpu,$stored,$sqlite"); else off+=("$rate,$cpu,$stored,$sqlite"); fi
        done
    done
    python3 - "${on[*]}" "${off[*]}" "$name" <<'PY'
import statistics, sys
on = [[float(v) for v in run.split(",")] for run in sys.argv[1].split()]
off = [[float(v) for v in run.split(",")] for run in sys.argv[2].split()]
rate_on, rate_off = (statistics.median(r[0] for r in runs) for runs in (on, off))
cpu_on, cpu_off = (statistics.median(r[1] for r in runs) for runs in (on, off))
stored = statistics.median(r[2] for r in on)
sqlite = statistics.median(r[3] for r in on)
per_message = (cpu_on - cpu_off) * 1000 / stored if stored else float("nan")
sqlite_per_message = sqlite * 1000 / stored if stored else float("nan")
spread = lambda runs: f"{min(r[0] for r in runs):.0f}-{max(r[0] for r in runs):.0f}"
print(f"{sys.argv[3]}: median with history {rate_on:.0f}/s ({spread(on)}), without "
      f"{rate_off:.0f}/s ({spread(off)}): {rate_on / rate_off:.2f}x, cost "
      f"{100 * (1 - rate_on / rate_off):.1f}%; server CPU {cpu_on:.0f} ms against "
      f"{cpu_off:.0f} ms ({cpu_on / cpu_off:.2f}x), {per_message:.2f} µs per stored message "
      f"of which {sqlite_per_message:.2f} µs on SQLite's thread")
PY
done

echo "the writer alone (records queued at once, then committed):"
cargo test --release --quiet --lib --no-run 2>/dev/null
for _ in $(seq "$rounds"); do
    taskset -c 0 cargo test --release --quiet --lib storage::tests::writer_cost -- \
        --ignored --nocapture 2>&1 | grep -o 'writer:.*'
done
