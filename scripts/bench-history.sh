#!/usr/bin/env bash
# What storing history costs the fan-out: runs the same fan-out scenarios against a release
# build with history on and off, alternating, and prints deliveries per second, the messages
# stored per second, and the ratio. Server pinned to core 0, generator to core 1.
#
#   bash scripts/bench-history.sh [rounds]        (default 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release --quiet --bin linechat --bin loadgen
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# scenario name and loadgen arguments
scenarios=(
    "fanout-100x1|fanout --members 100 --senders 1 --messages 20000"
    "fanout-20x10|fanout --members 20 --senders 10 --messages 10000"
)

run() { # history(true|false) scenario-args -> prints "deliveries/s stored"
    local history=$1 args=$2 dir="$work/data-$RANDOM" log="$work/server.log"
    LINECHAT_HISTORY=$history RUST_LOG=info taskset -c 0 ./target/release/linechat \
        --addr 127.0.0.1:0 --data-dir "$dir" --config /dev/null 2>"$log" &
    local pid=$! addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$log")
        [ -n "$addr" ] && break
        sleep 0.05
    done
    local out
    # shellcheck disable=SC2086
    out=$(taskset -c 1 ./target/release/loadgen --addr "$addr" --json "$work/run.json" $args)
    kill -TERM "$pid"
    wait "$pid"
    local rate seconds stored
    rate=$(tail -1 "$work/run.json" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["deliveries_per_sec"]))')
    seconds=$(tail -1 "$work/run.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
    stored=$(sed -n 's/.*database closed messages=\([0-9]*\).*/\1/p' "$log")
    echo "$rate $(python3 -c "print(round(${stored:-0} / $seconds))")"
    echo "    $out" >&2
}

printf '%-14s %-8s %14s %16s\n' scenario history deliveries/s "stored msgs/s"
for entry in "${scenarios[@]}"; do
    name=${entry%%|*} args=${entry#*|}
    on=() off=()
    for _ in $(seq "$rounds"); do
        read -r rate stored < <(run false "$args")
        printf '%-14s %-8s %14s %16s\n' "$name" off "$rate" "$stored"
        off+=("$rate")
        read -r rate stored < <(run true "$args")
        printf '%-14s %-8s %14s %16s\n' "$name" on "$rate" "$stored"
        on+=("$rate")
    done
    python3 - "${on[*]}" "${off[*]}" "$name" <<'PY'
import statistics, sys
on = [float(x) for x in sys.argv[1].split()]
off = [float(x) for x in sys.argv[2].split()]
m_on, m_off = statistics.median(on), statistics.median(off)
print(f"{sys.argv[3]}: median with history {m_on:.0f}/s, without {m_off:.0f}/s, "
      f"cost {100 * (1 - m_on / m_off):.1f}%")
PY
done
