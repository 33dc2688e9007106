# Sourced by the test scripts: the linechat binary, and starting it on a free port.
#
# LINECHAT_BIN is the binary, unless it is set: the one `cargo test` builds (and builds if
# needed).
# start_server DATA_DIR LOG starts the server on 127.0.0.1 port 0 with no config file (the
# LINECHAT_* variables of the caller apply), waits until it listens, and sets $pid and $addr.

if [ -z "${LINECHAT_BIN:-}" ]; then
    # As scripts/test.sh builds it: without the jemalloc feature (src/main.rs says why), and
    # with the dev-dependencies' features, which a `cargo build` would leave out, building
    # half the dependencies again (half a minute of the suite).
    LINECHAT_BIN=$(cargo test --quiet --no-default-features --no-run --message-format=json |
        python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    target = message.get("target", {})
    if (message.get("reason") == "compiler-artifact" and target["name"] == "linechat"
            and target["kind"] == ["bin"] and not message["profile"]["test"]):
        print(message["executable"])
')
fi

start_server() {
    local data_dir=$1 log=$2
    "$LINECHAT_BIN" --addr 127.0.0.1:0 --data-dir "$data_dir" --config /dev/null 2>"$log" &
    pid=$!
    addr=""
    for _ in $(seq 200); do
        addr=$(sed -n 's/.*listening on \(.*\)$/\1/p' "$log" 2>/dev/null || true)
        [ -n "$addr" ] && return
        sleep 0.05
    done
    echo "the server did not start:" >&2
    cat "$log" >&2
    exit 1
}
