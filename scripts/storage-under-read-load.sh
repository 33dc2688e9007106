#!/usr/bin/env bash
# Writes must not queue behind reads (issue 9, item 8). Many clients loop `HISTORY * 1000` on a
# big history while one client sends room messages and another times `CR` and `LOGIN`; then
# the server is killed with SIGKILL and restarted on the same data directory. Checks that:
#   - every message acknowledged more than history_batch_ms + a margin before the kill is in
#     the history after the restart (the documented loss bound of a hard kill);
#   - `CR` and `LOGIN` stay fast under the read load.
# Prints the figures (how far before the kill the newest stored message was acknowledged,
# CR and LOGIN latencies, HISTORY replies served). Exits non-zero on failure.
#
#   bash scripts/storage-under-read-load.sh [readers=100] [seconds=6]
# The binary is the one `cargo test` builds (built if needed); LINECHAT_BIN overrides it.
set -euo pipefail
cd "$(dirname "$0")/.."
readers=${1:-100} seconds=${2:-6}
. scripts/lib/server.sh
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"' EXIT

batch_ms=100
export LINECHAT_HISTORY_BATCH_MS=$batch_ms LINECHAT_FLOOD_LINES_PER_SEC=0 \
    LINECHAT_MAX_CONNECTIONS_PER_IP=100000 LINECHAT_HISTORY_MAX_COUNT=100000 \
    LINECHAT_LOGIN_FAILURES_PER_IP=0 LINECHAT_LOGIN_FAILURES_PER_ACCOUNT=0 \
    LINECHAT_ROOMS_CREATED_PER_MINUTE=0 RUST_LOG=info

start() { # the server on $work/data, run N: sets $pid and $addr
    start_server "$work/data" "$work/server-$1.log"
}

start 1
# Phase 1: load, then SIGKILL mid-traffic (the Python side kills, so that it knows when).
python3 - "$addr" "$readers" "$seconds" "$work/run.json" "$pid" <<'PY'
import asyncio, json, os, signal, sys, time

addr, readers, seconds, out, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
host, port = addr.rsplit(":", 1)

async def connect():
    r, w = await asyncio.open_connection(host, int(port), limit=1 << 22)
    hello = await r.readline()
    assert hello.startswith(b"HELLO"), hello
    return r, w

async def ask(r, w, line, expect):
    w.write(line.encode() + b"\n")
    await w.drain()
    while True:
        got = (await r.readline()).decode().rstrip("\n")
        if got.startswith(expect):
            return got
        if got.startswith("ERR") or not got:
            sys.exit(f"{line!r} got {got!r}")

async def main():
    r, w = await connect()
    await ask(r, w, "REGISTER timer pw", "OK REGISTER")
    await ask(r, w, "QUIT", "OK QUIT")
    # A big history: 1000 global messages of 1000 bytes, so that each HISTORY * 1000 is 1 MB.
    r, w = await connect()
    await ask(r, w, "NICK seed", "OK NICK")
    body = "x" * 1000
    for i in range(1000):
        w.write(f"MSG {i} {body}\n".encode())
    await w.drain()
    for _ in range(1000):
        await r.readline()

    stop = False
    served = [0]

    async def reader(k):
        r, w = await connect()
        await ask(r, w, f"NICK reader{k}", "OK NICK")
        tail = b""
        while not stop:
            w.write(b"HISTORY * 1000\n")
            await w.drain()
            while True:
                chunk = await r.read(1 << 20)
                if not chunk:
                    return
                seen = tail + chunk
                if b"OK HISTORY" in seen or b"ERR " in seen:
                    tail = b""
                    break
                tail = seen[-16:]
            served[0] += 1

    readers_tasks = [asyncio.create_task(reader(k)) for k in range(readers)]
    await asyncio.sleep(1.5)
    served_before = served[0]
    started = time.time()

    # The sender: a room message every 5 ms, each acknowledgement timed (replies come in order).
    acks = []
    async def sender():
        r, w = await connect()
        await ask(r, w, "NICK sender", "OK NICK")
        await ask(r, w, "CR w", "OK CR")
        async def read_acks():
            while True:
                line = await r.readline()
                if not line:
                    return
                if line.startswith(b"OK RM"):
                    acks.append(time.time())
        asyncio.create_task(read_acks())
        i = 0
        while True:
            w.write(f"RM w m{i}\n".encode())
            await w.drain()
            i += 1
            await asyncio.sleep(0.005)

    # The prober: CR (a write), then LOGIN (a password check, memberships, queued messages).
    cr_ms, login_ms = [], []
    async def prober():
        r, w = await connect()
        await ask(r, w, "NICK prober", "OK NICK")
        i = 0
        while True:
            t = time.time()
            await ask(r, w, f"CR p{i}", "OK CR")
            cr_ms.append((time.time() - t) * 1000)
            t = time.time()
            lr, lw = await connect()
            await ask(lr, lw, "LOGIN timer pw", "OK LOGIN")
            login_ms.append((time.time() - t) * 1000)
            lw.write(b"QUIT\n")
            lw.close()
            i += 1
            await asyncio.sleep(0.2)

    asyncio.create_task(sender())
    asyncio.create_task(prober())
    await asyncio.sleep(seconds)
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    with open(out, "w") as f:
        json.dump({"acks": acks, "killed": killed, "cr_ms": cr_ms, "login_ms": login_ms,
                   "reads_per_sec": (served[0] - served_before) / (killed - started)}, f)
    os._exit(0)

asyncio.run(main())
PY
wait "$pid" 2>/dev/null || true
pid=""

# Phase 2: what survived.
start 2
python3 - "$addr" "$work/run.json" "$batch_ms" <<'PY'
import json, socket, statistics, sys

addr, run_path, batch_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
run = json.load(open(run_path))
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)))
f = s.makefile("rwb")
f.readline()
f.write(b"NICK checker\nJR w\nHISTORY w 100000\n")
f.flush()
stored = set()
while True:
    line = f.readline().decode().rstrip("\n")
    if not line:
        sys.exit("the restarted server closed the connection")
    if line.startswith("HIST w "):
        stored.add(line.split(" ")[-1])
    elif line.startswith("OK HISTORY"):
        break
    elif line.startswith("ERR"):
        sys.exit(line)

acks, killed = run["acks"], run["killed"]
margin_ms = 400
missing = [i for i, at in enumerate(acks) if f"m{i}" not in stored]
first_missing = missing[0] if missing else None
# How long before the kill the oldest lost acknowledged message was acknowledged: the write
# delay under this load, as far as a crash can tell.
window_ms = (killed - acks[first_missing]) * 1000 if missing else 0.0
late = [i for i in missing if acks[i] < killed - (batch_ms + margin_ms) / 1000]
def describe(values):
    if not values:
        return "none"
    values = sorted(values)
    return (f"n={len(values)} median={statistics.median(values):.0f} ms "
            f"p90={values[int(len(values) * 0.9)]:.0f} ms max={values[-1]:.0f} ms")
print(f"HISTORY * 1000 replies served: {run['reads_per_sec']:.0f}/s")
print(f"messages acknowledged: {len(acks)}, stored after the kill: {len(acks) - len(missing)}, "
      f"lost: {len(missing)}")
print(f"oldest lost message acknowledged {window_ms:.0f} ms before the kill "
      f"(bound: {batch_ms} ms + {margin_ms} ms margin)")
print(f"CR latency:    {describe(run['cr_ms'])}")
print(f"LOGIN latency: {describe(run['login_ms'])}")
failed = False
if len(acks) < 100:
    print("FAIL: too few messages acknowledged to judge"); failed = True
if late:
    print(f"FAIL: {len(late)} messages acknowledged more than {batch_ms + margin_ms} ms "
          f"before the kill are missing"); failed = True
if not run["cr_ms"] or max(run["cr_ms"]) > 1000:
    print("FAIL: CR took over 1 s under read load"); failed = True
if not run["login_ms"] or max(run["login_ms"]) > 2000:
    print("FAIL: LOGIN took over 2 s under read load"); failed = True
sys.exit(1 if failed else 0)
PY
kill -TERM "$pid"
wait "$pid" 2>/dev/null || true
pid=""
echo "OK: nothing acknowledged before the loss bound was lost, and writes kept pace"
