#!/usr/bin/env bash
# A local three-node linechat cluster to try by hand: starts nats-server (with JetStream) and
# a PostgreSQL of its own in a temporary directory, then three nodes on 127.0.0.1:8080, 8081
# and 8082. Connect to any of them (`nc 127.0.0.1 8081`): they are one chat. Ctrl-C stops
# everything and deletes the directory.
#
#   bash scripts/cluster.sh [first-port]     (default 8080; NATS and PostgreSQL take the next
#                                             free ports after the nodes')
#
# Installs nats-server and PostgreSQL first if they are missing (scripts/cluster-deps.sh).
# PostgreSQL refuses to run as root: as root, its directory belongs to the `postgres` user and
# its programs run as that user.
set -euo pipefail
cd "$(dirname "$0")/.."
first=${1:-8080}
bash scripts/cluster-deps.sh
cargo build --release --quiet --bin linechat
work=$(mktemp -d)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${pg_ctl:-}" ]; then as_postgres "$pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

free_port() { # the first port from $1 on that nobody listens on
    local port=$1
    while ss -Htln "sport = :$port" | grep -q .; do port=$((port + 1)); done
    echo "$port"
}

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=postgres --regid=postgres --clear-groups "$@"; else "$@"; fi
}

nats_port=$(free_port $((first + 3)))
nats-server -js -sd "$work/nats" -a 127.0.0.1 -p "$nats_port" >"$work/nats.log" 2>&1 &
pids+=($!)

bin=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")
pg_ctl=$bin/pg_ctl
pg_port=$(free_port $((nats_port + 1)))
mkdir "$work/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$work" "$work/pg"
as_postgres "$bin/initdb" -D "$work/pg" -A trust -U postgres >"$work/initdb.log"
as_postgres "$pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
as_postgres "$bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres linechat

for node in 1 2 3; do
    port=$((first + node - 1))
    RUST_LOG=${RUST_LOG:-info} ./target/release/linechat --config /dev/null \
        --addr "127.0.0.1:$port" --data-dir "$work/node$node" --node-name "node$node" \
        --nats "nats://127.0.0.1:$nats_port" \
        --database-url "postgres://postgres@127.0.0.1:$pg_port/linechat" \
        >"$work/node$node.log" 2>&1 &
    pids+=($!)
done
for node in 1 2 3; do
    port=$((first + node - 1))
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        if ! kill -0 "${pids[$node]}" 2>/dev/null; then
            echo "node$node did not start:" >&2
            cat "$work/node$node.log" >&2
            exit 1
        fi
        sleep 0.1
    done
done
cat <<EOF
Three linechat nodes, one chat:
  node1  nc 127.0.0.1 $first
  node2  nc 127.0.0.1 $((first + 1))
  node3  nc 127.0.0.1 $((first + 2))
NATS on 127.0.0.1:$nats_port (JetStream), PostgreSQL on 127.0.0.1:$pg_port (database linechat).
Logs in $work. Try killing a node (kill -9) and watch the others: its users leave with
NOTICE OFFLINE <name> LOST. Ctrl-C stops everything.
EOF
wait "${pids[@]}"
